//! serde's messages without the value they did not like. serde (and
//! serde_yaml, humantime) quote the offending value: `invalid type:
//! integer `9876543210123`, expected a string` prints a client secret typed
//! as a number, and a mis-indented block prints whatever it held. These
//! messages reach `check`, the log, `POST /reload` and `/status`, so they
//! keep only the kind of value, what was expected and the position.

/// The YAML path of a serde error: `<top level>` for the root, and for
/// an unknown field that does not look like a key (a mis-indented value),
/// the path of the map that held it, not the value turned key.
pub fn serde_path(path: &str, message: &str) -> String {
    if path == "." {
        return "<top level>".into();
    }
    let field = message
        .strip_prefix("unknown field `")
        .and_then(|rest| rest.split_once('`'))
        .map(|(field, _)| field);
    match field {
        Some(f) if !is_key_like(f) => match path.strip_suffix(f) {
            Some(parent) => parent.trim_end_matches('.').to_string(),
            None => path.replace(f, "<unknown key>"),
        },
        _ => path.to_string(),
    }
}

/// The message with every quoted value removed.
pub fn serde_message(message: &str) -> String {
    let (head, position) = match message.find(" at line ") {
        Some(i) => message.split_at(i),
        None => (message, ""),
    };
    format!("{}{position}", without_value(head))
}

fn without_value(head: &str) -> String {
    for prefix in ["invalid type: ", "invalid value: "] {
        if let Some(rest) = head.strip_prefix(prefix) {
            let kind = rest
                .split([' ', ','])
                .next()
                .filter(|k| k.bytes().all(|b| b.is_ascii_alphabetic()))
                .unwrap_or("value");
            return match rest.split_once(", expected ") {
                Some((_, expected)) => format!("{prefix}{kind}, expected {expected}"),
                None => format!("{prefix}{kind}"),
            };
        }
    }
    if let Some(rest) = head.strip_prefix("unknown variant ") {
        return match rest.split_once(", expected ") {
            Some((_, expected)) => format!("unknown variant, expected {expected}"),
            None => "unknown variant".into(),
        };
    }
    if let Some(rest) = head.strip_prefix("unknown field `") {
        let (field, tail) = rest.split_once('`').unwrap_or((rest, ""));
        // A key name helps find a typo; a secret that a mis-indented block
        // made a key does not look like one.
        return if is_key_like(field) {
            head.to_string()
        } else {
            format!("unknown field{tail}")
        };
    }
    if head.contains(['"', '`', '\'']) && !head.starts_with("missing field `") {
        return "invalid value".into();
    }
    head.to_string()
}

/// `lower_snake_case` of at most 40 characters, as every key of the file
/// format is.
fn is_key_like(name: &str) -> bool {
    (1..=40).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_turned_key_leaves_the_path() {
        assert_eq!(
            serde_path(
                "clients.oic.Zq9Secret",
                "unknown field `Zq9Secret`, expected one of"
            ),
            "clients.oic"
        );
        assert_eq!(
            serde_path("clients.oic.queue_timout", "unknown field `queue_timout`"),
            "clients.oic.queue_timout"
        );
        assert_eq!(serde_path(".", "missing field `x`"), "<top level>");
    }

    #[test]
    fn values_are_dropped_and_kinds_expectations_and_positions_kept() {
        let cases = [
            (
                "invalid type: integer `9876543210123`, expected a string",
                "invalid type: integer, expected a string",
            ),
            (
                "invalid type: string \"hunter2-secret\", expected usize at line 3 column 12",
                "invalid type: string, expected usize at line 3 column 12",
            ),
            (
                "invalid value: integer `-5`, expected u32",
                "invalid value: integer, expected u32",
            ),
            (
                "unknown variant `s3cr3t`, expected one of `memory`, `redis`",
                "unknown variant, expected one of `memory`, `redis`",
            ),
            (
                "unknown field `queue_timout`, expected one of `concurrency`",
                "unknown field `queue_timout`, expected one of `concurrency`",
            ),
            (
                "unknown field `Xk9-77Qz`, expected one of `concurrency`",
                "unknown field, expected one of `concurrency`",
            ),
            ("missing field `url`", "missing field `url`"),
            (
                "invalid length 3, expected 2",
                "invalid length 3, expected 2",
            ),
            (
                "unknown time unit \"zz9secret\", supported units: ns, us",
                "invalid value",
            ),
        ];
        for (given, kept) in cases {
            assert_eq!(serde_message(given), kept, "{given}");
        }
    }
}

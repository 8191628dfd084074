//! The part of SCIM's filter language the identity domain's users write
//! for this job: `attr eq "value"` joined by `and`. Anything else is
//! refused, as an identity domain refuses filters it cannot evaluate.

/// One `attr eq "value"` term; attribute names compare case-insensitively
/// (SCIM, RFC 7644 §3.4.2.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Term {
    pub attribute: String,
    pub value: String,
}

/// Parses `filter` into its terms, or says why it cannot be evaluated.
pub fn parse(filter: &str) -> Result<Vec<Term>, String> {
    let mut terms = Vec::new();
    let mut rest = filter.trim();
    loop {
        let (attribute, after) = rest.split_once(char::is_whitespace).ok_or_else(|| {
            format!("invalid filter {filter:?}: expected `attribute eq \"value\"`")
        })?;
        let after = after.trim_start();
        let after = after
            .strip_prefix("eq ")
            .or_else(|| after.strip_prefix("EQ "))
            .ok_or_else(|| {
                format!("invalid filter {filter:?}: only the eq operator is supported")
            })?;
        let (value, after) = quoted(after.trim_start()).ok_or_else(|| {
            format!("invalid filter {filter:?}: the value must be a quoted string")
        })?;
        terms.push(Term {
            attribute: attribute.to_ascii_lowercase(),
            value,
        });
        let after = after.trim_start();
        if after.is_empty() {
            return Ok(terms);
        }
        rest = after
            .strip_prefix("and ")
            .or_else(|| after.strip_prefix("AND "))
            .ok_or_else(|| format!("invalid filter {filter:?}: terms are joined by `and`"))?
            .trim_start();
    }
}

/// A JSON-style quoted string at the start of `text` (`\"` and `\\`
/// escapes) and what follows it.
fn quoted(text: &str) -> Option<(String, &str)> {
    let body = text.strip_prefix('"')?;
    let mut value = String::new();
    let mut chars = body.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((value, &body[i + 1..])),
            '\\' => value.push(chars.next()?.1),
            c => value.push(c),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terms_joined_by_and() {
        let terms =
            parse(r#"app.value eq "abc" and displayName eq "Service \"Invoker\"""#).unwrap();
        assert_eq!(terms.len(), 2);
        assert_eq!(terms[0].attribute, "app.value");
        assert_eq!(terms[1].value, "Service \"Invoker\"");
    }

    #[test]
    fn other_operators_and_shapes_are_refused() {
        for bad in [
            r#"displayName co "x""#,
            r#"displayName eq x"#,
            r#"displayName eq "x" or name eq "y""#,
            r#"displayName eq "unterminated"#,
            "",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}

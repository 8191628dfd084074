//! `${NAME}` substitution from the environment, applied to every string
//! scalar of the parsed YAML tree so each failure can name its YAML path.

use serde_yaml::Value;

use super::error::ConfigError;

/// Replaces `${NAME}` in every string of `value`. `$${` stands for a literal
/// `${`. Missing variables and unterminated references are collected, each
/// with the YAML path of the string that held it.
pub fn substitute(
    value: &mut Value,
    lookup: &dyn Fn(&str) -> Option<String>,
    errors: &mut Vec<ConfigError>,
) {
    walk(value, String::new(), lookup, errors);
}

fn walk(
    value: &mut Value,
    path: String,
    lookup: &dyn Fn(&str) -> Option<String>,
    errors: &mut Vec<ConfigError>,
) {
    match value {
        Value::String(s) => {
            if s.contains('$') {
                match expand(s, lookup) {
                    Ok(expanded) => *s = expanded,
                    Err(message) => errors.push(ConfigError::new(path, message)),
                }
            }
        }
        Value::Sequence(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                walk(item, format!("{path}[{i}]"), lookup, errors);
            }
        }
        Value::Mapping(map) => {
            for (key, item) in map.iter_mut() {
                let key = match key {
                    Value::String(k) => k.clone(),
                    other => serde_yaml::to_string(other)
                        .unwrap_or_default()
                        .trim()
                        .to_string(),
                };
                let child = if path.is_empty() {
                    key
                } else {
                    format!("{path}.{key}")
                };
                walk(item, child, lookup, errors);
            }
        }
        Value::Tagged(tagged) => walk(&mut tagged.value, path, lookup, errors),
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

fn expand(input: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos..];
        if let Some(stripped) = after.strip_prefix("$${") {
            out.push_str("${");
            rest = stripped;
        } else if let Some(body) = after.strip_prefix("${") {
            let end = body
                .find('}')
                .ok_or_else(|| "unterminated ${...} reference".to_string())?;
            let name = &body[..end];
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(
                    "invalid environment variable name in ${...} (letters, digits and '_' only)"
                        .into(),
                );
            }
            match lookup(name) {
                Some(v) => out.push_str(&v),
                None => return Err(format!("environment variable {name} is not set")),
            }
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = &after[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "ID" => Some("abc".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn expands_and_escapes() {
        assert_eq!(expand("x-${ID}-y", &env).unwrap(), "x-abc-y");
        assert_eq!(expand("$${ID}", &env).unwrap(), "${ID}");
        assert_eq!(expand("cost $5", &env).unwrap(), "cost $5");
        assert_eq!(expand("${EMPTY}", &env).unwrap(), "");
    }

    #[test]
    fn reports_missing_and_malformed() {
        assert!(expand("${NOPE}", &env)
            .unwrap_err()
            .contains("NOPE is not set"));
        assert!(expand("${ID", &env).unwrap_err().contains("unterminated"));
        assert!(expand("${A-B}", &env).unwrap_err().contains("invalid"));
    }

    #[test]
    fn errors_carry_the_yaml_path() {
        let mut v: Value = serde_yaml::from_str(
            "clients:\n  a:\n    client_id: ${NOPE}\nroutes:\n  - x: ${NOPE2}\n",
        )
        .unwrap();
        let mut errors = Vec::new();
        substitute(&mut v, &env, &mut errors);
        let paths: Vec<_> = errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["clients.a.client_id", "routes[0].x"]);
    }
}

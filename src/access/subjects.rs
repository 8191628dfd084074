//! `caller_subjects_file`: which identity-domain user each caller acts as
//! when an `on_behalf_of: caller` client signs user assertions. A caller
//! without a line is refused (403): the file is an allow-list as much as a
//! mapping.

use std::collections::HashMap;

use super::colon_lines;

/// `caller-name: identity-domain-user` lines, as read at load or reload.
pub struct CallerSubjects {
    subjects: HashMap<String, String>,
}

impl std::fmt::Debug for CallerSubjects {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallerSubjects")
            .field("callers", &self.subjects.len())
            .finish()
    }
}

impl CallerSubjects {
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut subjects = HashMap::new();
        for entry in colon_lines(text, "caller-name: identity-domain-user") {
            let (n, caller, user) = entry?;
            let (caller, user) = (caller.trim(), user.trim());
            if caller.is_empty() || user.is_empty() {
                return Err(format!(
                    "line {n}: expected caller-name: identity-domain-user, both non-empty"
                ));
            }
            if subjects
                .insert(caller.to_string(), user.to_string())
                .is_some()
            {
                return Err(format!("line {n}: caller {caller:?} is listed twice"));
            }
        }
        if subjects.is_empty() {
            return Err("no callers in the file".into());
        }
        Ok(CallerSubjects { subjects })
    }

    /// The identity-domain user `caller` acts as, if it has a line.
    pub fn subject(&self, caller: &str) -> Option<&str> {
        self.subjects.get(caller).map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_map_callers_and_errors_name_the_line() {
        let s = CallerSubjects::parse("# erp\nerp: erp.integration@example.com\n\ncrm:crm-user\n")
            .unwrap();
        assert_eq!(s.subject("erp"), Some("erp.integration@example.com"));
        assert_eq!(s.subject("crm"), Some("crm-user"));
        assert_eq!(s.subject("other"), None);
        assert_eq!(
            CallerSubjects::parse("a: x\nb\n").unwrap_err(),
            "line 2: expected caller-name: identity-domain-user"
        );
        assert!(CallerSubjects::parse("a: x\na: y\n")
            .unwrap_err()
            .contains("line 2"));
        assert!(CallerSubjects::parse("a:\n")
            .unwrap_err()
            .contains("line 1"));
        assert!(CallerSubjects::parse("# none\n").is_err());
    }
}

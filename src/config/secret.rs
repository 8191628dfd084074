//! A value that must never reach a log, an error message, a metric or a panic.

use std::fmt;
use std::sync::Arc;

/// Holds a client secret, password, private key or token.
///
/// `Debug` and `Display` print `[redacted]`, so a secret can sit inside any
/// struct that derives `Debug` without leaking. The only way to the value is
/// [`Secret::expose`], called at the single point where a request is written.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Arc<str>);

impl Secret {
    pub fn new(value: impl Into<Arc<str>>) -> Self {
        Secret(value.into())
    }

    /// The secret value. Call only where it is written into a request.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_never_show_the_value() {
        let s = Secret::new("hunter2-very-secret");
        assert_eq!(format!("{s:?}"), "[redacted]");
        assert_eq!(format!("{s}"), "[redacted]");
        #[derive(Debug)]
        #[allow(dead_code)]
        struct Holder {
            secret: Secret,
        }
        let h = format!("{:?}", Holder { secret: s.clone() });
        assert!(!h.contains("hunter2"), "{h}");
        assert_eq!(s.expose(), "hunter2-very-secret");
    }
}

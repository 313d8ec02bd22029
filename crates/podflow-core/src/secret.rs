//! [`Secret`]: a credential or webhook URL that never prints. Its `Debug` says only that a
//! secret is there, and it has no `Display`, so a settings struct that holds one can derive
//! `Debug` and be logged without leaking it; the value comes out only through
//! [`Secret::expose`], where it is used.

use std::fmt;

/// A secret string (an API key, a webhook URL).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(redacted)")
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_holds_the_value() {
        #[derive(Debug)]
        #[allow(dead_code)] // read through Debug
        struct Settings {
            key: Option<Secret>,
        }
        let settings = Settings {
            key: Some(Secret::new("sk-MARKER")),
        };
        let shown = format!("{settings:?} {settings:#?}");
        assert!(!shown.contains("MARKER"), "{shown}");
        assert!(shown.contains("redacted"), "{shown}");
        assert_eq!(settings.key.as_ref().map(Secret::expose), Some("sk-MARKER"));
    }
}

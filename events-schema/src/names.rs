//! The shape of ids and storage keys in events: the patterns the schemas state, and the same
//! rules as Rust checks for code that takes a key or an id from elsewhere (an S3
//! notification, a queue message) and must refuse it before building a key from it.
//!
//! Ids name a folder in every key (`episodes/<episode_id>/prompts/<prompt_id>.md`), so they
//! hold no `/`, `.` or control character. Keys are relative (no leading `/`), have no empty,
//! `.` or `..` segment (the local blob store maps them to files) and no control character;
//! S3 allows at most 1024 bytes of UTF-8. JSON Schema counts characters, not bytes, so
//! [`check_key`] is stricter than [`KEY_PATTERN`] for keys of many non-ASCII characters.

use thiserror::Error;

/// Episode ids: ingest derives `<slug>-<12 hex>` (`weekly-42-3f786850e387`).
pub const EPISODE_ID_PATTERN: &str = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$";
/// Prompt ids: what the catalog accepts as a prompt file's `id`.
pub const PROMPT_ID_PATTERN: &str = r"^[A-Za-z0-9_-]{1,64}$";
/// Correlation ids: ingest derives a UUID-shaped one from the audio's hash.
pub const CORRELATION_ID_PATTERN: &str = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$";
/// Bucket names: S3's rules, loosened to what older and S3-compatible stores allow.
pub const BUCKET_PATTERN: &str = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$";
/// Keys: `/`-separated segments, none empty, `.` or `..`, no control character (C0, DEL, C1).
pub const KEY_PATTERN: &str = concat!(
    r"^(?:[^./\x00-\x1f\x7f-\x9f][^/\x00-\x1f\x7f-\x9f]*",
    r"|\.[^./\x00-\x1f\x7f-\x9f][^/\x00-\x1f\x7f-\x9f]*",
    r"|\.\.[^/\x00-\x1f\x7f-\x9f]+)",
    r"(?:/(?:[^./\x00-\x1f\x7f-\x9f][^/\x00-\x1f\x7f-\x9f]*",
    r"|\.[^./\x00-\x1f\x7f-\x9f][^/\x00-\x1f\x7f-\x9f]*",
    r"|\.\.[^/\x00-\x1f\x7f-\x9f]+))*$"
);
/// S3's limit on a key: 1024 bytes of UTF-8.
pub const MAX_KEY_BYTES: usize = 1024;
/// The most characters [`KEY_PATTERN`]'s schemas allow (JSON Schema counts characters).
pub const MAX_KEY_CHARS: u32 = 1024;
/// The longest episode id (see [`EPISODE_ID_PATTERN`]).
pub const MAX_EPISODE_ID: usize = 128;
/// The longest prompt id (see [`PROMPT_ID_PATTERN`]).
pub const MAX_PROMPT_ID: usize = 64;

/// Why a key or an id was refused. The text quotes the value escaped and shortened, so a
/// hostile one cannot break a log line or fill it.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NameError {
    #[error("{what} is empty")]
    Empty { what: &'static str },
    #[error("{what} {shown} is {len} bytes long; at most {max} are allowed")]
    TooLong {
        what: &'static str,
        shown: String,
        len: usize,
        max: usize,
    },
    #[error("{what} {shown} holds a control character")]
    Control { what: &'static str, shown: String },
    #[error("{what} {shown} starts with `/`; keys are relative")]
    Absolute { what: &'static str, shown: String },
    #[error("{what} {shown} has an empty, `.` or `..` path segment")]
    BadSegment { what: &'static str, shown: String },
    #[error("{what} {shown} may hold only ASCII letters, digits, {extra}")]
    BadCharacter {
        what: &'static str,
        shown: String,
        extra: &'static str,
    },
}

/// A value as an error message quotes it: escaped, at most 80 characters.
pub fn shown(value: &str) -> String {
    const MAX: usize = 80;
    if value.chars().count() <= MAX {
        format!("{value:?}")
    } else {
        let head: String = value.chars().take(MAX).collect();
        format!("{head:?}…")
    }
}

fn is_control(c: char) -> bool {
    matches!(c, '\0'..='\x1f' | '\x7f'..='\u{9f}')
}

/// Checks a storage key against [`KEY_PATTERN`] and S3's 1024-byte limit.
pub fn check_key(key: &str) -> Result<(), NameError> {
    let what = "key";
    if key.is_empty() {
        return Err(NameError::Empty { what });
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(NameError::TooLong {
            what,
            shown: shown(key),
            len: key.len(),
            max: MAX_KEY_BYTES,
        });
    }
    if key.chars().any(is_control) {
        return Err(NameError::Control {
            what,
            shown: shown(key),
        });
    }
    if key.starts_with('/') {
        return Err(NameError::Absolute {
            what,
            shown: shown(key),
        });
    }
    if key.split('/').any(|s| matches!(s, "" | "." | "..")) {
        return Err(NameError::BadSegment {
            what,
            shown: shown(key),
        });
    }
    Ok(())
}

/// ASCII letters, digits and `allowed`, between `min` and `max` bytes long.
fn check_id(
    what: &'static str,
    value: &str,
    max: usize,
    first_may_be: &[char],
    allowed: &[char],
    extra: &'static str,
) -> Result<(), NameError> {
    if value.is_empty() {
        return Err(NameError::Empty { what });
    }
    if value.len() > max {
        return Err(NameError::TooLong {
            what,
            shown: shown(value),
            len: value.len(),
            max,
        });
    }
    let fits = |c: char, extra: &[char]| c.is_ascii_alphanumeric() || extra.contains(&c);
    let mut chars = value.chars();
    let first_ok = chars.next().is_some_and(|c| fits(c, first_may_be));
    if !first_ok || !chars.all(|c| fits(c, allowed)) {
        return Err(NameError::BadCharacter {
            what,
            shown: shown(value),
            extra,
        });
    }
    Ok(())
}

/// Checks an episode id against [`EPISODE_ID_PATTERN`].
pub fn check_episode_id(id: &str) -> Result<(), NameError> {
    check_id(
        "episode id",
        id,
        MAX_EPISODE_ID,
        &[],
        &['-', '_'],
        "`-` and `_` (and starts with a letter or digit)",
    )
}

/// Checks a prompt id against [`PROMPT_ID_PATTERN`].
pub fn check_prompt_id(id: &str) -> Result<(), NameError> {
    check_id(
        "prompt id",
        id,
        MAX_PROMPT_ID,
        &['-', '_'],
        &['-', '_'],
        "`-` and `_`",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_podflow_writes_and_uploads_are_accepted() {
        for key in [
            "episodes/weekly-42-3f786850e387/prompts/summary.v2.input.json",
            "uploads/2026/weekly 42.m4a",
            "incoming/café — 1.m4a",
            "episodes/e/.hidden",
            "episodes/e/...",
            "episodes/e/..x",
            "a",
        ] {
            assert_eq!(check_key(key), Ok(()), "{key}");
        }
    }

    #[test]
    fn hostile_keys_are_refused_with_the_rule_they_break() {
        for (key, says) in [
            ("", "is empty"),
            ("episodes/../secrets", "`..` path segment"),
            ("episodes/./x", "`..` path segment"),
            ("episodes//x", "empty"),
            ("episodes/x/", "empty"),
            ("/etc/passwd", "starts with `/`"),
            ("episodes/a\nb.md", "control character"),
            ("episodes/a\u{85}b.md", "control character"),
        ] {
            let err = check_key(key).expect_err(key);
            assert!(err.to_string().contains(says), "{key:?}: {err}");
        }
        let long = format!("incoming/{}", "é".repeat(508));
        assert_eq!(long.len(), 1025);
        let err = check_key(&long).expect_err("too long").to_string();
        assert!(err.contains("1025 bytes long; at most 1024"), "{err}");
        // The message quotes a shortened, escaped value.
        assert!(err.chars().count() < 200, "{err}");
    }

    #[test]
    fn ids_follow_their_patterns() {
        assert_eq!(check_episode_id("weekly-42-3f786850e387"), Ok(()));
        assert_eq!(check_prompt_id("blog-post"), Ok(()));
        assert_eq!(check_prompt_id("_private"), Ok(()));
        for bad in ["", "-x", "a/b", "a.b", "ep 1", "é", &"a".repeat(129)] {
            assert!(check_episode_id(bad).is_err(), "{bad}");
        }
        for bad in ["", "a/b", "..", "x.md", &"a".repeat(65)] {
            assert!(check_prompt_id(bad).is_err(), "{bad}");
        }
    }
}

//! Content keys: expensive work is keyed by what it consumes, so the same audio is never
//! transcoded or transcribed twice — across retries, duplicate deliveries, crashes and
//! re-uploads under another name.

use sha2::{Digest, Sha256};

/// Lower-case hex SHA-256 of a byte slice.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Episode ids are `<slug of the file stem>-<first 12 hex of the audio's sha256>`: readable
/// in a Slack message or a log line, and the same for the same file every time.
pub fn episode_id(original_name: &str, sha256: &str) -> String {
    let stem = original_name
        .rsplit_once('.')
        .map_or(original_name, |(stem, _)| stem);
    let mut slug = String::new();
    for ch in stem.chars() {
        if ch.is_ascii_alphanumeric() {
            slug.push(ch.to_ascii_lowercase());
        } else if !slug.ends_with('-') && !slug.is_empty() {
            slug.push('-');
        }
        if slug.len() >= 40 {
            break;
        }
    }
    let slug = slug.trim_end_matches('-');
    let short = sha256.get(..12).unwrap_or(sha256);
    if slug.is_empty() {
        format!("episode-{short}")
    } else {
        format!("{slug}-{short}")
    }
}

/// Cache key for a unit of expensive work: the kind, the input's hash and the parameters
/// that change the result (model, bitrate...).
pub fn work_key(kind: &str, input_sha256: &str, params: &str) -> String {
    format!("{kind}:{input_sha256}:{params}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn episode_ids_are_readable_and_stable() {
        let h = sha256_hex(b"audio");
        assert_eq!(
            episode_id("Weekly Show #42 (final).m4a", &h),
            format!("weekly-show-42-final-{}", &h[..12])
        );
        assert_eq!(
            episode_id("Weekly Show #42 (final).m4a", &h),
            episode_id("Weekly Show #42 (final).m4a", &h)
        );
        assert_eq!(episode_id("???.mp3", &h), format!("episode-{}", &h[..12]));
    }

    #[test]
    fn different_content_gives_different_ids() {
        assert_ne!(
            episode_id("a.m4a", &sha256_hex(b"one")),
            episode_id("a.m4a", &sha256_hex(b"two"))
        );
    }
}

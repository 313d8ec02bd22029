//! Links that live as long as a message promises. A pre-signed S3 URL stops working when the
//! credentials that signed it expire, and a Lambda role's credentials last hours, not the
//! days a notification promises. A stable link instead names the object and its expiry, with
//! an HMAC-SHA256 over both under the stack's link secret; a small function checks it and
//! redirects to a URL pre-signed at that moment for a few minutes.

use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// How long the URL a stable link redirects to stays valid: long enough to start a
/// download, short enough that any credentials outlive it.
pub const REDIRECT_LIFETIME: Duration = Duration::from_secs(10 * 60);

/// The secret links are signed with. Its value is never printed.
#[derive(Clone)]
pub struct LinkSecret(Vec<u8>);

impl std::fmt::Debug for LinkSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LinkSecret(..)")
    }
}

/// Why a link is refused, in words for the person who opened it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkRefusal {
    #[error(
        "this link is incomplete ({0} is missing or malformed); copy the whole link from the message"
    )]
    Malformed(&'static str),
    #[error(
        "this link expired at {expired} (Unix time); a newer message about the episode has a fresh link"
    )]
    Expired { expired: u64 },
    #[error(
        "this link is not valid (its signature does not match); copy the whole link from the message"
    )]
    BadSignature,
    #[error("this link points outside the episodes' files")]
    OutsideEpisodes,
}

impl LinkSecret {
    /// `None` for a secret too short to sign with (under 32 bytes).
    pub fn new(bytes: impl Into<Vec<u8>>) -> Option<Self> {
        let bytes = bytes.into();
        (bytes.len() >= 32).then_some(Self(bytes))
    }

    fn mac(&self, key: &str, expires: u64) -> Hmac<Sha256> {
        // HMAC takes a key of any length, so this cannot fail.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
        mac.update(key.as_bytes());
        mac.update(b"\n");
        mac.update(expires.to_string().as_bytes());
        mac
    }

    /// The link to `key` at `base_url` (the link function's URL), valid until `expires`
    /// (Unix seconds).
    pub fn link(&self, base_url: &str, key: &str, expires: u64) -> String {
        let signature = hex::encode(self.mac(key, expires).finalize().into_bytes());
        let query = serde_urlencoded::to_string([
            ("key", key),
            ("expires", &expires.to_string()),
            ("signature", &signature),
        ])
        .unwrap_or_default();
        format!("{}/?{query}", base_url.trim_end_matches('/'))
    }

    /// The object key a link's query string names, when its signature holds and it has not
    /// expired at `now` (Unix seconds). Only keys under `episodes/` are ever served.
    pub fn check(&self, query: &str, now: u64) -> Result<String, LinkRefusal> {
        let pairs: Vec<(String, String)> =
            serde_urlencoded::from_str(query).map_err(|_| LinkRefusal::Malformed("the query"))?;
        let field = |name: &'static str| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
                .ok_or(LinkRefusal::Malformed(name))
        };
        let key = field("key")?;
        let expires: u64 = field("expires")?
            .parse()
            .map_err(|_| LinkRefusal::Malformed("expires"))?;
        let signature =
            hex::decode(field("signature")?).map_err(|_| LinkRefusal::Malformed("signature"))?;
        self.mac(key, expires)
            .verify_slice(&signature)
            .map_err(|_| LinkRefusal::BadSignature)?;
        if now >= expires {
            return Err(LinkRefusal::Expired { expired: expires });
        }
        if !key.starts_with("episodes/") || key.split('/').any(|part| part == "..") {
            return Err(LinkRefusal::OutsideEpisodes);
        }
        Ok(key.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret() -> LinkSecret {
        LinkSecret::new(*b"0123456789abcdef0123456789abcdef").expect("long enough")
    }

    fn query(link: &str) -> &str {
        link.split_once('?').map(|(_, q)| q).expect("a query")
    }

    #[test]
    fn a_link_opens_until_it_expires() {
        let link = secret().link(
            "https://abc.lambda-url.us-east-1.on.aws/",
            "episodes/ep 1/audio.mp3",
            1_000,
        );
        assert!(link.starts_with("https://abc.lambda-url.us-east-1.on.aws/?key=episodes%2Fep+1%2Faudio.mp3&expires=1000&signature="));
        assert_eq!(
            secret().check(query(&link), 999),
            Ok("episodes/ep 1/audio.mp3".to_owned())
        );
        assert_eq!(
            secret().check(query(&link), 1_000),
            Err(LinkRefusal::Expired { expired: 1_000 })
        );
    }

    #[test]
    fn a_changed_key_expiry_or_secret_is_refused() {
        let link = secret().link("https://x", "episodes/ep/audio.mp3", 5_000);
        let q = query(&link);
        let other_key = q.replace("audio.mp3", "summary.md");
        let later = q.replace("expires=5000", "expires=9000");
        assert_eq!(
            secret().check(&other_key, 0),
            Err(LinkRefusal::BadSignature)
        );
        assert_eq!(secret().check(&later, 0), Err(LinkRefusal::BadSignature));
        let other = LinkSecret::new(vec![7u8; 32]).expect("secret");
        assert_eq!(other.check(q, 0), Err(LinkRefusal::BadSignature));
        assert_eq!(
            secret().check("key=episodes%2Fa&expires=soon&signature=00", 0),
            Err(LinkRefusal::Malformed("expires"))
        );
        assert_eq!(
            secret().check("expires=1", 0),
            Err(LinkRefusal::Malformed("key"))
        );
        let outside = secret().link("https://x", "incoming/raw.wav", 5_000);
        assert_eq!(
            secret().check(query(&outside), 0),
            Err(LinkRefusal::OutsideEpisodes)
        );
        assert!(LinkSecret::new(b"short".to_vec()).is_none());
        assert_eq!(format!("{:?}", secret()), "LinkSecret(..)");
    }
}

//! The links in notifications, and the small function that serves them on AWS.
//!
//! On AWS a pre-signed URL stops working when the role credentials that signed it expire
//! (hours on Lambda), so with a link function configured the notifier writes stable links
//! instead (`podflow_core::links`): they last the whole promised lifetime, and the link
//! function answers each with a redirect to a URL pre-signed at that moment. Locally, and
//! on AWS without the link function, links are the blob store's own (file URLs, pre-signed
//! URLs).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use podflow_core::{
    BlobStore, PortError,
    links::{LinkRefusal, LinkSecret, REDIRECT_LIFETIME},
    secret::Secret,
};
use podflow_events::BlobRef;

/// Where stable links point and what signs them.
#[derive(Debug, Clone)]
pub struct StableLinks {
    /// The link function's URL.
    pub base_url: String,
    pub secret: LinkSecret,
    /// The bucket the link function serves.
    pub bucket: String,
}

/// How the notifier links to an episode's files.
#[derive(Debug, Clone)]
pub struct ShareLinks {
    /// How long a link works.
    pub lifetime: Duration,
    pub stable: Option<StableLinks>,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl ShareLinks {
    /// The blob store's own links (pre-signed on S3, file URLs locally).
    pub fn direct(lifetime: Duration) -> Self {
        Self {
            lifetime,
            stable: None,
        }
    }

    /// A link to `blob` that works for [`ShareLinks::lifetime`]. A blob in another bucket
    /// or outside `episodes/` (which the link function does not serve) gets the store's own
    /// link.
    pub async fn url(&self, blobs: &dyn BlobStore, blob: &BlobRef) -> Result<String, PortError> {
        match &self.stable {
            Some(stable)
                if blob.bucket.as_deref().is_none_or(|b| b == stable.bucket)
                    && blob.key.starts_with("episodes/") =>
            {
                let expires = unix_now() + self.lifetime.as_secs();
                Ok(stable.secret.link(&stable.base_url, &blob.key, expires))
            }
            _ => blobs.share_url(blob, self.lifetime).await,
        }
    }
}

/// What the link function answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkAnswer {
    /// 302 to a URL pre-signed now for [`REDIRECT_LIFETIME`].
    Redirect(String),
    /// The link is refused (403) with the reason in words.
    Refused(LinkRefusal),
    /// The store could not sign (503), with the reason.
    Unavailable(String),
}

impl LinkAnswer {
    pub fn status(&self) -> u16 {
        match self {
            Self::Redirect(_) => 302,
            Self::Refused(_) => 403,
            Self::Unavailable(_) => 503,
        }
    }

    /// The HTTP answer (status, redirect location, plain-text body), logged: a refusal
    /// says why in words; an unavailable store is logged with its cause and told briefly.
    pub fn into_http(self) -> (u16, Option<String>, String) {
        let status = self.status();
        match self {
            Self::Redirect(url) => {
                tracing::info!("link opened");
                (status, Some(url), String::new())
            }
            Self::Refused(why) => {
                tracing::info!(reason = %why, "link refused");
                (status, None, format!("{why}\n"))
            }
            Self::Unavailable(why) => {
                tracing::error!(reason = %why, "link not signed");
                (
                    status,
                    None,
                    "the file cannot be reached right now; try again in a minute\n".to_owned(),
                )
            }
        }
    }
}

/// The link function's work: checks the link's `query` and redirects to the file.
pub async fn open_link(blobs: &dyn BlobStore, secret: &LinkSecret, query: &str) -> LinkAnswer {
    let key = match secret.check(query, unix_now()) {
        Ok(key) => key,
        Err(refusal) => return LinkAnswer::Refused(refusal),
    };
    // share_url reads only the bucket and the key.
    let blob = BlobRef {
        bucket: None,
        key,
        size: 0,
        sha256: String::new(),
    };
    match blobs.share_url(&blob, REDIRECT_LIFETIME).await {
        Ok(url) => LinkAnswer::Redirect(url),
        Err(e) => LinkAnswer::Unavailable(e.to_string()),
    }
}

/// The link secret a setting names (a value, or `file:PATH` / `ssm:NAME` /
/// `secretsmanager:ID`, see [`podflow_aws::secrets::read_setting`]), refused when shorter
/// than 32 bytes.
pub async fn link_secret(
    setting: &Secret,
    aws: impl AsyncFnOnce() -> podflow_aws::SdkConfig,
) -> Result<LinkSecret, PortError> {
    let value = podflow_aws::secrets::read_setting("PODFLOW_LINK_SECRET", setting, aws).await?;
    LinkSecret::new(value.expose().as_bytes().to_vec()).ok_or_else(|| {
        let place = if podflow_aws::secrets::is_reference(setting.expose()) {
            setting.expose().trim()
        } else {
            "PODFLOW_LINK_SECRET"
        };
        PortError::setup(format!(
            "the link secret in {place} is shorter than 32 bytes; use a longer random value"
        ))
    })
}

/// Stable links to files in `bucket` from the function's settings: the link function's URL
/// (`PODFLOW_LINK_BASE_URL`) and the secret (`PODFLOW_LINK_SECRET`: a value, or `file:PATH`
/// / `ssm:NAME` / `secretsmanager:ID`, see [`link_secret`]). Neither set: `None`; one
/// without the other is a setup error that says which is missing.
pub async fn configured_stable_links(
    bucket: &str,
    base_url: Option<&str>,
    secret: Option<&Secret>,
    aws: impl AsyncFnOnce() -> podflow_aws::SdkConfig,
) -> Result<Option<StableLinks>, PortError> {
    let (base_url, setting) = match (base_url, secret) {
        (None, None) => return Ok(None),
        (Some(base_url), Some(setting)) => (base_url, setting),
        (Some(_), None) => {
            return Err(PortError::setup(
                "PODFLOW_LINK_BASE_URL is set without PODFLOW_LINK_SECRET; set both or neither",
            ));
        }
        (None, Some(_)) => {
            return Err(PortError::setup(
                "PODFLOW_LINK_SECRET is set without PODFLOW_LINK_BASE_URL; set both or neither",
            ));
        }
    };
    if !base_url.starts_with("https://") && !base_url.starts_with("http://127.0.0.1") {
        return Err(PortError::setup(format!(
            "PODFLOW_LINK_BASE_URL must be an https URL (got `{base_url}`)"
        )));
    }
    let secret = link_secret(setting, aws).await?;
    Ok(Some(StableLinks {
        base_url: base_url.to_owned(),
        secret,
        bucket: bucket.to_owned(),
    }))
}

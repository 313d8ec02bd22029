//! The show's configuration (`podflow.toml`): what the feed, the MP3's tags and the
//! transcripts say about the show as a whole — its title, author, artwork, hosts and the
//! address its files are served from.
//!
//! Layers, lowest first: `$XDG_CONFIG_HOME/podflow/podflow.toml` (local runs only),
//! `podflow.toml` at the root of the data directory or bucket, then the environment
//! (`PODFLOW_SHOW_*`, `PODFLOW_BASE_URL`), then flags. Each layer sets only what it names.

use serde::{Deserialize, Serialize};

/// The file name, in the data directory / bucket root and in `$XDG_CONFIG_HOME/podflow/`.
pub const FILE_NAME: &str = "podflow.toml";

/// One layer of show configuration: every field optional, so layers merge field by field.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShowConfig {
    pub title: Option<String>,
    pub author: Option<String>,
    pub description: Option<String>,
    /// An image for the feed and the MP3: a file under the data directory / a key in the
    /// bucket (embedded in the MP3 and served from `base_url`), or an `https://` URL (the
    /// feed only).
    pub artwork: Option<String>,
    /// Where the data directory's (or bucket's) files are served from: the feed's links are
    /// `<base_url>/episodes/<id>/...`.
    pub base_url: Option<String>,
    /// The show's language (ISO 639-1, e.g. `en`); default: the first episode's.
    pub language: Option<String>,
    /// The hosts' names, in the order their voices are usually first heard: the names the
    /// transcripts, captions and prompts use for speakers an episode does not name, and the
    /// feed's `podcast:person` entries.
    pub hosts: Option<Vec<String>>,
    /// An owner e-mail for `itunes:owner` (Apple asks for one to verify the show).
    pub email: Option<String>,
    /// An Apple Podcasts category, e.g. `Technology`.
    pub category: Option<String>,
    pub explicit: Option<bool>,
    /// `required`: each revision is proposed and published only once a person approves it
    /// (`podflow approve`, `podflow serve`, Slack); `none` (the default): published at once.
    pub approval: Option<Approval>,
    /// Hours a proposal may wait before one reminder is sent (default 24).
    pub approval_reminder_hours: Option<u32>,
}

/// Whether a person approves each revision before it is published.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Approval {
    #[default]
    None,
    Required,
}

/// The layers around the stored `podflow.toml` (which the publisher reads at each publish,
/// so a change applies to the next episode without a restart or redeploy).
#[derive(Debug, Clone, Default)]
pub struct ShowLayers {
    /// Below the stored file: defaults and the user's `$XDG_CONFIG_HOME/podflow/podflow.toml`.
    pub below: ShowConfig,
    /// Above it: the environment and flags.
    pub above: ShowConfig,
}

impl ShowLayers {
    /// The show as configured, with the stored file's layer (if any) in its place.
    pub fn with_file(&self, file: Option<ShowConfig>) -> ShowConfig {
        self.below
            .clone()
            .merged(file.unwrap_or_default())
            .merged(self.above.clone())
    }
}

impl ShowLayers {
    /// The show as configured now: these layers around the stored `podflow.toml` (read
    /// through the blob store: the data directory's root, or the bucket's). A file that
    /// cannot be parsed, or that this function may not read, is left out and said in the
    /// returned problems — never fatal.
    pub async fn resolve(
        &self,
        blobs: &dyn crate::BlobStore,
    ) -> Result<(ShowConfig, Vec<String>), crate::PortError> {
        use crate::ErrorKind;
        let mut problems = Vec::new();
        let file = match blobs.digest(FILE_NAME).await {
            Ok(blob) => {
                let text = String::from_utf8_lossy(&blobs.get(&blob).await?).into_owned();
                match ShowConfig::from_toml(&text, FILE_NAME) {
                    Ok(layer) => Some(layer),
                    Err(e) => {
                        problems.push(e.to_string());
                        None
                    }
                }
            }
            Err(e) if e.kind() == ErrorKind::NotFound => None,
            Err(e) if e.kind() == ErrorKind::Setup => {
                problems.push(format!("{FILE_NAME} not read: {}", e.report()));
                None
            }
            Err(e) => return Err(e),
        };
        Ok((self.with_file(file), problems))
    }
}

/// A `podflow.toml` that cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("{source_name} is not a valid show configuration: {reason} (see docs/publishing.md)")]
pub struct ShowConfigError {
    source_name: String,
    reason: String,
}

impl ShowConfig {
    /// Parses one layer; `source_name` names the file in the error.
    pub fn from_toml(text: &str, source_name: &str) -> Result<Self, ShowConfigError> {
        let layer: Self = toml::from_str(text).map_err(|e| ShowConfigError {
            source_name: source_name.to_owned(),
            reason: e.message().to_owned(),
        })?;
        layer.checked(source_name)
    }

    /// The environment's layer, from `lookup` (`std::env::var` in the binaries).
    pub fn from_env(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ShowConfigError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let explicit = match get("PODFLOW_SHOW_EXPLICIT") {
            None => None,
            Some(v) => Some(parse_bool(&v).ok_or_else(|| ShowConfigError {
                source_name: "PODFLOW_SHOW_EXPLICIT".into(),
                reason: format!("`{v}` is not true or false"),
            })?),
        };
        let approval = match get("PODFLOW_SHOW_APPROVAL").as_deref().map(str::trim) {
            None => None,
            Some("required") => Some(Approval::Required),
            Some("none") => Some(Approval::None),
            Some(other) => {
                return Err(ShowConfigError {
                    source_name: "PODFLOW_SHOW_APPROVAL".into(),
                    reason: format!("`{other}` is not required or none"),
                });
            }
        };
        Self {
            title: get("PODFLOW_SHOW_TITLE"),
            author: get("PODFLOW_SHOW_AUTHOR"),
            description: get("PODFLOW_SHOW_DESCRIPTION"),
            artwork: get("PODFLOW_SHOW_ARTWORK"),
            base_url: get("PODFLOW_BASE_URL"),
            language: get("PODFLOW_SHOW_LANGUAGE"),
            hosts: get("PODFLOW_SHOW_HOSTS").map(|v| names(&v)),
            email: get("PODFLOW_SHOW_EMAIL"),
            category: get("PODFLOW_SHOW_CATEGORY"),
            explicit,
            approval,
            approval_reminder_hours: None,
        }
        .checked("the environment")
    }

    /// `self` with every field `over` sets replaced by `over`'s.
    pub fn merged(self, over: Self) -> Self {
        Self {
            title: over.title.or(self.title),
            author: over.author.or(self.author),
            description: over.description.or(self.description),
            artwork: over.artwork.or(self.artwork),
            base_url: over.base_url.or(self.base_url),
            language: over.language.or(self.language),
            hosts: over.hosts.or(self.hosts),
            email: over.email.or(self.email),
            category: over.category.or(self.category),
            explicit: over.explicit.or(self.explicit),
            approval: over.approval.or(self.approval),
            approval_reminder_hours: over
                .approval_reminder_hours
                .or(self.approval_reminder_hours),
        }
    }

    /// Whether revisions wait for a person's approval.
    pub fn approval_required(&self) -> bool {
        self.approval == Some(Approval::Required)
    }

    /// The layer, if its values are well formed; `source_name` names it in the error.
    pub fn checked(self, source_name: &str) -> Result<Self, ShowConfigError> {
        let bad = |reason: String| ShowConfigError {
            source_name: source_name.to_owned(),
            reason,
        };
        if let Some(url) = &self.base_url
            && !(url.starts_with("https://")
                || url.starts_with("http://")
                || url.starts_with("file://"))
        {
            return Err(bad(format!(
                "base_url `{url}` is not an http(s):// or file:// address"
            )));
        }
        if let Some(artwork) = &self.artwork
            && !(artwork.starts_with("https://") || artwork.starts_with("http://"))
            && (artwork.starts_with('/')
                || artwork.contains('\\')
                || artwork
                    .split('/')
                    .any(|part| part.is_empty() || part == ".." || part == "."))
        {
            return Err(bad(format!(
                "artwork `{artwork}` is neither an http(s):// address nor a path inside the data directory or bucket (such as show/cover.jpg)"
            )));
        }
        if let Some(language) = &self.language
            && !is_language_code(language)
        {
            return Err(bad(format!(
                "language `{language}` is not a language code such as en or pt-BR"
            )));
        }
        Ok(self)
    }
}

/// A comma-separated list of names (`--speakers "Ana, Ben"`), blanks dropped.
pub fn names(list: &str) -> Vec<String> {
    list.split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(str::to_owned)
        .collect()
}

fn parse_bool(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "1" => Some(true),
        "false" | "no" | "0" => Some(false),
        _ => None,
    }
}

/// `en`, `pt-BR`: an RSS `<language>` value.
fn is_language_code(code: &str) -> bool {
    let mut parts = code.split('-');
    let primary = parts.next().unwrap_or_default();
    (2..=3).contains(&primary.len())
        && primary.chars().all(|c| c.is_ascii_alphabetic())
        && parts.all(|p| (2..=8).contains(&p.len()) && p.chars().all(|c| c.is_ascii_alphanumeric()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_merge_field_by_field_and_later_layers_win() {
        let file = ShowConfig::from_toml(
            "title = \"The Rust Hour\"\nauthor = \"Ana Lima\"\nhosts = [\"Ana Lima\", \"Ben Ode\"]\nbase_url = \"https://cdn.example.com/show\"\n",
            "podflow.toml",
        )
        .expect("valid");
        let env = ShowConfig::from_env(|name| match name {
            "PODFLOW_SHOW_TITLE" => Some("Rust Hour Live".into()),
            "PODFLOW_SHOW_HOSTS" => Some(" Ana , ,Ben ".into()),
            "PODFLOW_SHOW_EXPLICIT" => Some("no".into()),
            _ => None,
        })
        .expect("valid");
        let show = file.merged(env);
        assert_eq!(show.title.as_deref(), Some("Rust Hour Live"));
        assert_eq!(show.author.as_deref(), Some("Ana Lima"));
        assert_eq!(show.hosts, Some(vec!["Ana".to_owned(), "Ben".to_owned()]));
        assert_eq!(show.explicit, Some(false));
        assert_eq!(
            show.base_url.as_deref(),
            Some("https://cdn.example.com/show")
        );
    }

    #[test]
    fn a_bad_file_is_named_with_what_is_wrong() {
        let typo = ShowConfig::from_toml("titel = \"x\"\n", "/data/podflow.toml")
            .expect_err("unknown field");
        let text = typo.to_string();
        assert!(text.contains("/data/podflow.toml"), "{text}");
        assert!(text.contains("titel"), "{text}");
        let url = ShowConfig::from_toml("base_url = \"cdn.example.com\"\n", "podflow.toml")
            .expect_err("no scheme");
        assert!(url.to_string().contains("cdn.example.com"), "{url}");
        for outside in ["/srv/art.jpg", "../art.jpg", "show/../../art.jpg"] {
            let art = ShowConfig::from_toml(&format!("artwork = \"{outside}\"\n"), "podflow.toml")
                .expect_err("outside");
            assert!(art.to_string().contains(outside), "{art}");
        }
        assert!(ShowConfig::from_toml("artwork = \"show/cover.png\"\n", "podflow.toml").is_ok());
        let language = ShowConfig::from_toml("language = \"English\"\n", "podflow.toml")
            .expect_err("not a code");
        assert!(language.to_string().contains("English"), "{language}");
        assert!(ShowConfig::from_toml("language = \"pt-BR\"\n", "podflow.toml").is_ok());
        let explicit =
            ShowConfig::from_env(|n| (n == "PODFLOW_SHOW_EXPLICIT").then(|| "maybe".to_owned()))
                .expect_err("not a bool");
        assert!(
            explicit.to_string().contains("PODFLOW_SHOW_EXPLICIT"),
            "{explicit}"
        );
    }
}

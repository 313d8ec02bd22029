//! `feed.xml`: the show's podcast feed — RSS 2.0 with the iTunes and Podcasting 2.0
//! namespaces — one item per published episode.
//!
//! Each publish writes its episode's [`FeedItem`] (`episodes/<id>/feed-item.json`) and then
//! rebuilds the whole feed from every episode's item, so the feed is a pure function of the
//! items and a replayed or re-published episode simply replaces its own.

use std::collections::BTreeMap;

use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
use podflow_core::show::ShowConfig;
use rss::{
    Channel, Enclosure, Guid, Image, Item,
    extension::{
        Extension, ExtensionMap,
        itunes::{ITunesCategory, ITunesChannelExtension, ITunesItemExtension, ITunesOwner},
    },
};
use serde::{Deserialize, Serialize};

/// The Podcasting 2.0 namespace.
pub const PODCAST_NAMESPACE: &str = "https://podcastindex.org/namespace/1.0";
/// The feed's key at the root of the data directory / bucket.
pub const FEED_KEY: &str = "feed.xml";
/// The Podcasting 2.0 namespace's bounds for a soundbite's duration, in seconds.
const SOUNDBITE_SECONDS: std::ops::RangeInclusive<f64> = 15.0..=120.0;

/// The feed item's key for an episode.
pub fn item_key(episode_id: &str) -> String {
    format!("episodes/{episode_id}/feed-item.json")
}

/// What the feed says about one episode.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeedItem {
    pub episode_id: String,
    /// The episode's number in the show (by upload time, from 1).
    pub number: u32,
    pub title: String,
    /// The show notes (Markdown).
    pub description: String,
    /// When the episode was uploaded, in ms since the Unix epoch.
    pub published_ms: i64,
    pub duration_seconds: f64,
    /// The (tagged) MP3.
    pub audio: FeedFile,
    /// The transcript's language (ISO code).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    pub transcripts: Vec<FeedTranscript>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chapters: Option<String>,
    pub soundbites: Vec<Soundbite>,
    /// The episode's named speakers and their roles.
    pub persons: Vec<Person>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keywords: Option<String>,
}

/// A file under the base URL.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeedFile {
    pub key: String,
    pub bytes: u64,
}

/// One `podcast:transcript`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeedTranscript {
    pub key: String,
    /// `text/vtt`, `application/x-subrip` or `application/json`.
    pub mime_type: String,
}

/// One `podcast:soundbite`: a clip's start, length and title.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Soundbite {
    pub start: f64,
    pub duration: f64,
    pub title: String,
}

impl Soundbite {
    /// A clip as a soundbite, if its length is within what the namespace allows.
    pub fn of_clip(start: f64, end: f64, title: &str) -> Option<Self> {
        let duration = end - start;
        SOUNDBITE_SECONDS.contains(&duration).then(|| Self {
            start,
            duration,
            title: title.trim().to_owned(),
        })
    }
}

/// One `podcast:person`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Person {
    pub name: String,
    /// `host` or `guest` (the namespace's roles).
    pub role: String,
}

/// The episode's people: the hosts, then any other named speaker as a guest.
pub fn persons(hosts: &[String], speakers: &[String]) -> Vec<Person> {
    let mut people: Vec<Person> = hosts
        .iter()
        .map(|name| Person {
            name: name.clone(),
            role: "host".into(),
        })
        .collect();
    for name in speakers {
        if !people.iter().any(|p| &p.name == name) {
            people.push(Person {
                name: name.clone(),
                role: "guest".into(),
            });
        }
    }
    people
}

/// The feed needs absolute addresses: without a base URL there is none.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum FeedError {
    #[error(
        "no base URL: set base_url in podflow.toml (or PODFLOW_BASE_URL) to the address the files are served from, and the feed is written on the next publish"
    )]
    NoBaseUrl,
    #[error("the feed could not be written: {0}")]
    Xml(String),
}

/// The whole feed, newest episode first. Deterministic: the same items and show give the
/// same bytes (lastBuildDate is the newest item's date, not the clock's).
pub fn render(show: &ShowConfig, items: &[FeedItem]) -> Result<String, FeedError> {
    let show = &xml_safe_show(show);
    let items: Vec<FeedItem> = items.iter().map(xml_safe_item).collect();
    let items = items.as_slice();
    let base = show.base_url.as_deref().ok_or(FeedError::NoBaseUrl)?;
    let url = |key: &str| address(base, key);
    let mut items: Vec<&FeedItem> = items.iter().collect();
    items.sort_by(|a, b| (b.published_ms, &b.episode_id).cmp(&(a.published_ms, &a.episode_id)));
    let title = show.title.clone().unwrap_or_else(|| "Podcast".into());
    let artwork = show.artwork.as_deref().map(|a| {
        if a.starts_with("https://") || a.starts_with("http://") {
            a.to_owned()
        } else {
            url(a)
        }
    });
    let language = show
        .language
        .clone()
        .or_else(|| items.iter().find_map(|i| i.language.clone()));
    let hosts = show.hosts.clone().unwrap_or_default();
    let explicit = show.explicit.unwrap_or(false).to_string();

    let mut channel_extensions = ExtensionMap::default();
    let people: Vec<Extension> = persons(&hosts, &[]).iter().map(person).collect();
    if !people.is_empty() {
        channel_extensions.insert(
            "podcast".into(),
            BTreeMap::from([("podcast:person".to_owned(), people)]),
        );
    }
    let channel = Channel {
        title: title.clone(),
        link: address(base, ""),
        description: show.description.clone().unwrap_or_else(|| title.clone()),
        language: language.clone(),
        generator: Some(format!("podflow {}", env!("CARGO_PKG_VERSION"))),
        last_build_date: items.first().map(|i| rfc2822(i.published_ms)),
        image: artwork.as_ref().map(|href| Image {
            url: href.clone(),
            title: title.clone(),
            link: address(base, ""),
            ..Default::default()
        }),
        itunes_ext: Some(ITunesChannelExtension {
            author: show.author.clone(),
            image: artwork.clone(),
            explicit: Some(explicit.clone()),
            categories: show
                .category
                .iter()
                .map(|c| ITunesCategory {
                    text: c.clone(),
                    subcategory: None,
                })
                .collect(),
            owner: show.email.as_ref().map(|email| ITunesOwner {
                name: show.author.clone(),
                email: Some(email.clone()),
            }),
            summary: show.description.clone(),
            ..Default::default()
        }),
        namespaces: BTreeMap::from([("podcast".to_owned(), PODCAST_NAMESPACE.to_owned())]),
        extensions: channel_extensions,
        items: items
            .iter()
            .map(|i| item(i, &url, language.as_deref(), &explicit))
            .collect(),
        ..Default::default()
    };
    let mut bytes = Vec::new();
    channel
        .pretty_write_to(&mut bytes, b' ', 2)
        .map_err(|e| FeedError::Xml(e.to_string()))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned() + "\n")
}

fn item(
    episode: &FeedItem,
    url: &dyn Fn(&str) -> String,
    show_language: Option<&str>,
    explicit: &str,
) -> Item {
    let mut podcast: BTreeMap<String, Vec<Extension>> = BTreeMap::new();
    let mut add = |name: &str, ext: Extension| {
        podcast.entry(name.to_owned()).or_default().push(ext);
    };
    let language = episode.language.as_deref().or(show_language);
    for transcript in &episode.transcripts {
        let mut attrs = BTreeMap::from([
            ("url".to_owned(), url(&transcript.key)),
            ("type".to_owned(), transcript.mime_type.clone()),
        ]);
        if let Some(language) = language {
            attrs.insert("language".into(), language.to_owned());
        }
        // Timed text formats are captions (players show them in time with the audio).
        if transcript.mime_type != "application/json" {
            attrs.insert("rel".into(), "captions".into());
        }
        add(
            "podcast:transcript",
            element("podcast:transcript", attrs, None),
        );
    }
    if let Some(chapters) = &episode.chapters {
        let attrs = BTreeMap::from([
            ("url".to_owned(), url(chapters)),
            ("type".to_owned(), "application/json+chapters".to_owned()),
        ]);
        add("podcast:chapters", element("podcast:chapters", attrs, None));
    }
    for bite in &episode.soundbites {
        let attrs = BTreeMap::from([
            ("startTime".to_owned(), seconds(bite.start)),
            ("duration".to_owned(), seconds(bite.duration)),
        ]);
        add(
            "podcast:soundbite",
            element("podcast:soundbite", attrs, Some(bite.title.clone())),
        );
    }
    for p in &episode.persons {
        add("podcast:person", person(p));
    }
    let mut extensions = ExtensionMap::default();
    if !podcast.is_empty() {
        extensions.insert("podcast".into(), podcast);
    }
    Item {
        title: Some(episode.title.clone()),
        description: Some(episode.description.clone()),
        guid: Some(Guid {
            value: format!("podflow:{}", episode.episode_id),
            permalink: false,
        }),
        pub_date: Some(rfc2822(episode.published_ms)),
        enclosure: Some(Enclosure {
            url: url(&episode.audio.key),
            length: episode.audio.bytes.to_string(),
            mime_type: "audio/mpeg".into(),
        }),
        itunes_ext: Some(ITunesItemExtension {
            duration: Some(format!("{}", episode.duration_seconds.round() as u64)),
            episode: Some(episode.number.to_string()),
            episode_type: Some("full".into()),
            explicit: Some(explicit.to_owned()),
            keywords: episode.keywords.clone(),
            ..Default::default()
        }),
        extensions,
        ..Default::default()
    }
}

/// Text without the characters XML 1.0 cannot carry at all (most C0 controls, U+FFFE,
/// U+FFFF): one stray control character in a title would make the whole feed unreadable.
fn xml_text(text: &str) -> String {
    text.chars()
        .filter(|&c| {
            matches!(c, '\t' | '\n' | '\r') || (c >= '\u{20}' && c != '\u{FFFE}' && c != '\u{FFFF}')
        })
        .collect()
}

fn xml_safe_show(show: &ShowConfig) -> ShowConfig {
    let text = |v: &Option<String>| v.as_deref().map(xml_text);
    ShowConfig {
        title: text(&show.title),
        author: text(&show.author),
        description: text(&show.description),
        artwork: text(&show.artwork),
        base_url: text(&show.base_url),
        language: text(&show.language),
        hosts: show
            .hosts
            .as_ref()
            .map(|h| h.iter().map(|n| xml_text(n)).collect()),
        email: text(&show.email),
        category: text(&show.category),
        ..show.clone()
    }
}

fn xml_safe_item(item: &FeedItem) -> FeedItem {
    FeedItem {
        title: xml_text(&item.title),
        description: xml_text(&item.description),
        keywords: item.keywords.as_deref().map(xml_text),
        soundbites: item
            .soundbites
            .iter()
            .map(|b| Soundbite {
                title: xml_text(&b.title),
                ..b.clone()
            })
            .collect(),
        persons: item
            .persons
            .iter()
            .map(|p| Person {
                name: xml_text(&p.name),
                role: p.role.clone(),
            })
            .collect(),
        ..item.clone()
    }
}

fn person(p: &Person) -> Extension {
    element(
        "podcast:person",
        BTreeMap::from([("role".to_owned(), p.role.clone())]),
        Some(p.name.clone()),
    )
}

fn element(name: &str, attrs: BTreeMap<String, String>, value: Option<String>) -> Extension {
    Extension {
        name: name.to_owned(),
        value,
        attrs,
        children: BTreeMap::new(),
    }
}

/// Seconds as the namespace writes them: a decimal, at most three places.
fn seconds(value: f64) -> String {
    let text = format!("{value:.3}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// Characters escaped in a URL path segment (RFC 3986 allows the rest).
const SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}')
    .add(b'[')
    .add(b']')
    .add(b'\\')
    .add(b'^')
    .add(b'|');

/// In the base URL, escapes already there stay as they are.
const BASE: &AsciiSet = &SEGMENT.remove(b'%');

/// The address of a stored file: the base URL (a data directory with spaces in its path,
/// say, escaped) and the key, each segment escaped.
pub fn address(base: &str, key: &str) -> String {
    let path: Vec<String> = key
        .split('/')
        .map(|segment| utf8_percent_encode(segment, SEGMENT).to_string())
        .collect();
    let base = utf8_percent_encode(base.trim_end_matches('/'), BASE);
    format!("{base}/{}", path.join("/"))
}

/// RFC 2822 date, as RSS wants (`Fri, 04 Dec 2026 19:00:53 +0000`).
fn rfc2822(ms: i64) -> String {
    let at = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    at.format(&time::format_description::well_known::Rfc2822)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn show() -> ShowConfig {
        ShowConfig {
            title: Some("The Rust Hour".into()),
            author: Some("Ana Lima".into()),
            base_url: Some("https://cdn.example.com/show/".into()),
            hosts: Some(vec!["Ana Lima".into()]),
            artwork: Some("art work.jpg".into()),
            ..Default::default()
        }
    }

    fn episode(id: &str, number: u32, published_ms: i64) -> FeedItem {
        FeedItem {
            episode_id: id.into(),
            number,
            title: format!("Episode {number} & more"),
            description: "Notes <b>".into(),
            published_ms,
            duration_seconds: 1799.6,
            audio: FeedFile {
                key: format!("episodes/{id}/episode.mp3"),
                bytes: 1234,
            },
            language: Some("de".into()),
            transcripts: vec![FeedTranscript {
                key: format!("episodes/{id}/subtitles.vtt"),
                mime_type: "text/vtt".into(),
            }],
            chapters: Some(format!("episodes/{id}/chapters.json")),
            soundbites: vec![Soundbite::of_clip(60.0, 90.5, "A hook").expect("30 s")],
            persons: persons(&["Ana Lima".into()], &["Ben Ode".into()]),
            keywords: None,
        }
    }

    #[test]
    fn items_come_newest_first_with_absolute_escaped_addresses() {
        let xml = render(
            &show(),
            &[episode("a1", 1, 1_000), episode("b2", 2, 2_000_000)],
        )
        .expect("feed");
        let first = xml.find("podflow:b2").expect("b2");
        let second = xml.find("podflow:a1").expect("a1");
        assert!(first < second, "{xml}");
        assert!(
            xml.contains("https://cdn.example.com/show/episodes/a1/episode.mp3"),
            "{xml}"
        );
        assert!(
            xml.contains("https://cdn.example.com/show/art%20work.jpg"),
            "{xml}"
        );
        assert!(xml.contains("Episode 1 &amp; more"), "{xml}");
        assert!(
            xml.contains("<itunes:duration>1800</itunes:duration>"),
            "{xml}"
        );
        assert!(xml.contains("duration=\"30.5\" startTime=\"60\""), "{xml}");
        assert!(
            xml.contains("role=\"guest\">Ben Ode</podcast:person>"),
            "{xml}"
        );
        assert!(
            xml.contains(&format!("xmlns:podcast=\"{PODCAST_NAMESPACE}\"")),
            "{xml}"
        );
        // Same input, same bytes.
        assert_eq!(
            xml,
            render(
                &show(),
                &[episode("b2", 2, 2_000_000), episode("a1", 1, 1_000)]
            )
            .expect("feed")
        );
    }

    #[test]
    fn control_characters_never_make_the_feed_unreadable() {
        let mut item = episode("a1", 1, 0);
        item.title = "Bad\u{1}title\u{FFFF} & <b>".into();
        item.persons[1].name = "Ben\u{7}".into();
        let xml = render(&show(), &[item]).expect("feed");
        assert!(
            xml.contains("<title>Badtitle &amp; &lt;b&gt;</title>"),
            "{xml}"
        );
        assert!(xml.contains(">Ben</podcast:person>"), "{xml}");
        assert!(
            !xml.chars()
                .any(|c| c < '\u{20}' && !matches!(c, '\t' | '\n' | '\r'))
        );
    }

    #[test]
    fn without_a_base_url_there_is_no_feed_and_the_error_says_what_to_set() {
        let mut show = show();
        show.base_url = None;
        let err = render(&show, &[episode("a1", 1, 0)]).expect_err("no base");
        assert!(err.to_string().contains("base_url"), "{err}");
    }

    #[test]
    fn soundbites_keep_to_the_namespaces_bounds() {
        assert!(Soundbite::of_clip(0.0, 14.9, "short").is_none());
        assert!(Soundbite::of_clip(0.0, 15.0, "ok").is_some());
        assert!(Soundbite::of_clip(0.0, 120.0, "ok").is_some());
        assert!(Soundbite::of_clip(0.0, 120.5, "long").is_none());
    }
}

//! An episode's files for the page: served from `<data-dir>/episodes/<id>/` only (plain
//! path components, then canonicalised, so neither `..` nor a symlink leads out), with
//! their content types and byte ranges (the audio element seeks with them); and read for
//! display on the episode page.

use std::{
    io::SeekFrom,
    path::{Path, PathBuf},
};

use axum::{
    body::Body,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

/// Files larger than this are linked from the page, not shown in it.
const SHOWN_BYTES: u64 = 256 * 1024;

/// How deep the page looks into an episode's directory (`clips/1.mp3` is two levels).
const MAX_DEPTH: usize = 3;

/// A name that stands for itself: not empty, not `.`/`..`, no separator, not hidden.
fn plain(component: &str) -> bool {
    !component.is_empty() && !component.starts_with('.') && !component.contains(['/', '\\', '\0'])
}

/// The file `relative` (slash-separated) of episode `episode_id`, if it is a regular file
/// inside the episode's directory once every link is followed.
pub fn resolve(data_dir: &Path, episode_id: &str, relative: &str) -> Option<PathBuf> {
    if !plain(episode_id) {
        return None;
    }
    let mut path = PathBuf::new();
    for part in relative.split('/') {
        if !plain(part) {
            return None;
        }
        path.push(part);
    }
    let root = data_dir
        .join("episodes")
        .join(episode_id)
        .canonicalize()
        .ok()?;
    let file = root.join(path).canonicalize().ok()?;
    (file.starts_with(&root) && file.is_file()).then_some(file)
}

/// The content type a file is served with; unknown kinds download rather than render.
pub fn content_type(path: &Path) -> &'static str {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    match ext.as_str() {
        "mp3" => "audio/mpeg",
        "m4a" | "mp4" => "audio/mp4",
        "wav" => "audio/wav",
        "ogg" | "opus" => "audio/ogg",
        "flac" => "audio/flac",
        "vtt" => "text/vtt; charset=utf-8",
        "srt" => "application/x-subrip; charset=utf-8",
        "json" => "application/json",
        "md" => "text/markdown; charset=utf-8",
        "txt" => "text/plain; charset=utf-8",
        "xml" => "application/xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        _ => "application/octet-stream",
    }
}

/// What a `Range` header asks of a file of `len` bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum Wanted {
    Whole,
    /// Inclusive byte positions.
    Part(u64, u64),
    Unsatisfiable,
}

/// Reads a single `bytes=` range (first-last, first-, or -suffix). Anything else — several
/// ranges, other units, garbage — is answered with the whole file, as HTTP allows.
pub fn wanted(range: Option<&str>, len: u64) -> Wanted {
    let Some(spec) = range.and_then(|r| r.trim().strip_prefix("bytes=")) else {
        return Wanted::Whole;
    };
    if spec.contains(',') {
        return Wanted::Whole;
    }
    let Some((first, last)) = spec.split_once('-') else {
        return Wanted::Whole;
    };
    let (first, last) = (first.trim(), last.trim());
    let parsed = |s: &str| s.parse::<u64>().ok();
    let (start, end) = match (first.is_empty(), last.is_empty()) {
        (false, _) => {
            let Some(start) = parsed(first) else {
                return Wanted::Whole;
            };
            let end = if last.is_empty() {
                len.saturating_sub(1)
            } else {
                match parsed(last) {
                    Some(end) if end >= start => end.min(len.saturating_sub(1)),
                    _ => return Wanted::Whole,
                }
            };
            (start, end)
        }
        (true, false) => match parsed(last) {
            Some(0) => return Wanted::Unsatisfiable,
            Some(suffix) => (len.saturating_sub(suffix), len.saturating_sub(1)),
            None => return Wanted::Whole,
        },
        (true, true) => return Wanted::Whole,
    };
    if start >= len {
        Wanted::Unsatisfiable
    } else {
        Wanted::Part(start, end)
    }
}

fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        axum::response::Html(super::pages::error(
            StatusCode::NOT_FOUND,
            "no such file in this episode",
        )),
    )
        .into_response()
}

/// Serves one of an episode's files (404 for anything outside it).
pub async fn serve(
    data_dir: &Path,
    episode_id: &str,
    relative: &str,
    headers: &HeaderMap,
) -> Response {
    let Some(path) = resolve(data_dir, episode_id, relative) else {
        return not_found();
    };
    let Ok(mut file) = tokio::fs::File::open(&path).await else {
        return not_found();
    };
    let Ok(len) = file.metadata().await.map(|m| m.len()) else {
        return not_found();
    };
    let range = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    let (status, start, count) = match wanted(range, len) {
        Wanted::Whole => (StatusCode::OK, 0, len),
        Wanted::Part(start, end) => (StatusCode::PARTIAL_CONTENT, start, end - start + 1),
        Wanted::Unsatisfiable => {
            return (
                StatusCode::RANGE_NOT_SATISFIABLE,
                [(header::CONTENT_RANGE, format!("bytes */{len}"))],
            )
                .into_response();
        }
    };
    if start > 0 && file.seek(SeekFrom::Start(start)).await.is_err() {
        return not_found();
    }
    // Streamed: an hour of MP3 is tens of megabytes.
    let body = Body::from_stream(tokio_util::io::ReaderStream::new(file.take(count)));
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(&path)),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(count));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    // A new revision rewrites files under the same names.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if status == StatusCode::PARTIAL_CONTENT
        && let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{}/{len}", start + count - 1))
    {
        h.insert(header::CONTENT_RANGE, v);
    }
    response
}

/// How an output is shown on the episode page.
#[derive(Debug, Clone, PartialEq)]
pub enum Shown {
    /// Text as it is (Markdown, subtitles…).
    Text(String),
    /// JSON, pretty-printed.
    Json(String),
    Audio,
    Image,
    /// Linked only: binary, or too large to show.
    Link,
}

/// One of an episode's files, by its path under the episode's directory.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    pub name: String,
    pub bytes: u64,
    pub shown: Shown,
}

/// Every file of an episode's directory (show notes first, then by name), read for display.
pub fn outputs(dir: &Path) -> Vec<Output> {
    let mut found = Vec::new();
    collect(dir, "", 0, &mut found);
    found.sort_by(|a, b| {
        (a.name != "show-notes.md", &a.name).cmp(&(b.name != "show-notes.md", &b.name))
    });
    found
}

fn collect(dir: &Path, prefix: &str, depth: usize, found: &mut Vec<Output>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if !plain(&name) {
            continue;
        }
        let relative = format!("{prefix}{name}");
        // Not followed: only what `resolve` would serve is listed.
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            if depth + 1 < MAX_DEPTH {
                collect(&entry.path(), &format!("{relative}/"), depth + 1, found);
            }
            continue;
        }
        if !kind.is_file() {
            continue;
        }
        let bytes = entry.metadata().map(|m| m.len()).unwrap_or(0);
        found.push(Output {
            shown: shown(&entry.path(), bytes),
            name: relative,
            bytes,
        });
    }
}

fn shown(path: &Path, bytes: u64) -> Shown {
    let kind = content_type(path);
    if kind.starts_with("audio/") {
        return Shown::Audio;
    }
    if kind.starts_with("image/") {
        return Shown::Image;
    }
    let texty = kind.starts_with("text/")
        || kind.starts_with("application/json")
        || kind.starts_with("application/x-subrip")
        || kind.starts_with("application/xml");
    if !texty || bytes > SHOWN_BYTES {
        return Shown::Link;
    }
    let Ok(raw) = std::fs::read(path) else {
        return Shown::Link;
    };
    let text = String::from_utf8_lossy(&raw).into_owned();
    if kind == "application/json" {
        return match serde_json::from_str::<serde_json::Value>(&text) {
            Ok(v) => Shown::Json(serde_json::to_string_pretty(&v).unwrap_or(text)),
            Err(_) => Shown::Text(text),
        };
    }
    Shown::Text(text)
}

/// The transcript's language (ISO code), for the captions track's `srclang`.
pub fn transcript_language(dir: &Path) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Language {
        language: String,
    }
    let file = std::fs::File::open(dir.join("transcript.json")).ok()?;
    let parsed: Language = serde_json::from_reader(std::io::BufReader::new(file)).ok()?;
    let code = parsed.language.trim().to_owned();
    // Only a plausible tag goes into the attribute.
    (!code.is_empty()
        && code.len() <= 16
        && code.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
    .then_some(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_files_inside_the_episode_directory_resolve() {
        let data = tempfile::tempdir().expect("tempdir");
        let dir = data.path().join("episodes").join("ep-1");
        std::fs::create_dir_all(dir.join("clips")).expect("dirs");
        std::fs::write(dir.join("audio.mp3"), b"mp3").expect("write");
        std::fs::write(dir.join("clips").join("1.mp3"), b"clip").expect("write");
        std::fs::write(dir.join(".hidden"), b"x").expect("write");
        std::fs::write(data.path().join("podflow.db"), b"secret").expect("write");
        std::os::unix::fs::symlink(data.path().join("podflow.db"), dir.join("link.mp3"))
            .expect("symlink");
        let root = data.path();
        assert!(resolve(root, "ep-1", "audio.mp3").is_some());
        assert!(resolve(root, "ep-1", "clips/1.mp3").is_some());
        for bad in [
            "../../podflow.db",
            "../ep-1/audio.mp3",
            "clips/../audio.mp3",
            "./audio.mp3",
            "/etc/passwd",
            "clips//1.mp3",
            ".hidden",
            "link.mp3",
            "clips",
            "missing.mp3",
            "",
        ] {
            assert_eq!(resolve(root, "ep-1", bad), None, "{bad}");
        }
        assert_eq!(resolve(root, "..", "podflow.db"), None);
        assert_eq!(resolve(root, "ep-2", "audio.mp3"), None);
    }

    #[test]
    fn ranges_are_read_as_http_says() {
        assert_eq!(wanted(None, 100), Wanted::Whole);
        assert_eq!(wanted(Some("bytes=0-"), 100), Wanted::Part(0, 99));
        assert_eq!(wanted(Some("bytes=10-19"), 100), Wanted::Part(10, 19));
        assert_eq!(wanted(Some("bytes=90-500"), 100), Wanted::Part(90, 99));
        assert_eq!(wanted(Some("bytes=-10"), 100), Wanted::Part(90, 99));
        assert_eq!(wanted(Some("bytes=-500"), 100), Wanted::Part(0, 99));
        assert_eq!(wanted(Some("bytes=100-"), 100), Wanted::Unsatisfiable);
        assert_eq!(wanted(Some("bytes=-0"), 100), Wanted::Unsatisfiable);
        for whole in [
            "bytes=5-1",
            "bytes=0-1,5-9",
            "items=0-1",
            "bytes=x-",
            "bytes=-",
        ] {
            assert_eq!(wanted(Some(whole), 100), Wanted::Whole, "{whole}");
        }
    }

    #[test]
    fn players_get_audio_and_caption_types() {
        assert_eq!(content_type(Path::new("audio.mp3")), "audio/mpeg");
        assert_eq!(
            content_type(Path::new("subtitles.vtt")),
            "text/vtt; charset=utf-8"
        );
        assert_eq!(
            content_type(Path::new("page.html")),
            "application/octet-stream"
        );
    }

    #[test]
    fn outputs_list_show_notes_first_and_pretty_print_json() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("a.json"), br#"{"b":[1,2]}"#).expect("write");
        std::fs::write(dir.path().join("show-notes.md"), "# T\n").expect("write");
        std::fs::write(dir.path().join("audio.mp3"), b"\xff\xfb").expect("write");
        let found = outputs(dir.path());
        let names: Vec<&str> = found.iter().map(|o| o.name.as_str()).collect();
        assert_eq!(names, ["show-notes.md", "a.json", "audio.mp3"]);
        assert_eq!(
            found[1].shown,
            Shown::Json("{\n  \"b\": [\n    1,\n    2\n  ]\n}".into())
        );
        assert_eq!(found[2].shown, Shown::Audio);
    }
}

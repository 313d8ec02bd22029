//! The published MP3's ID3v2 tag: title, show, author, episode number, date, artwork and
//! chapters (CHAP frames under a CTOC), which Apple Podcasts, Overcast and ffprobe read.
//! Pure Rust (the `id3` crate), so the Lambda needs no ffmpeg for it.

use std::path::Path;

use id3::{
    Frame, Tag, TagLike, Timestamp, Version,
    frame::{Chapter as ChapterFrame, Picture, PictureType, TableOfContents},
};
use podflow_core::PortError;

use crate::documents::Chapter;

/// What the tag says.
#[derive(Debug, Clone, PartialEq)]
pub struct EpisodeTags<'a> {
    pub title: &'a str,
    pub show: &'a str,
    pub author: Option<&'a str>,
    pub episode: u32,
    /// Upload time, ms since the Unix epoch.
    pub published_ms: i64,
    pub duration_seconds: f64,
    pub chapters: &'a [Chapter],
    pub artwork: Option<Artwork>,
}

/// An image embedded as the front cover.
#[derive(Debug, Clone, PartialEq)]
pub struct Artwork {
    pub mime_type: String,
    pub data: Vec<u8>,
}

impl Artwork {
    /// The image, if its bytes are a JPEG or PNG (what podcast apps show).
    pub fn sniff(data: Vec<u8>) -> Option<Self> {
        let mime_type = if data.starts_with(&[0xFF, 0xD8, 0xFF]) {
            "image/jpeg"
        } else if data.starts_with(b"\x89PNG\r\n\x1a\n") {
            "image/png"
        } else {
            return None;
        };
        Some(Self {
            mime_type: mime_type.into(),
            data,
        })
    }
}

/// Builds the tag. Each chapter ends where the next starts, the last at the end of the
/// audio; the table of contents lists them in order.
pub fn tag(tags: &EpisodeTags<'_>) -> Tag {
    let mut tag = Tag::new();
    tag.set_title(tags.title);
    tag.set_album(tags.show);
    if let Some(author) = tags.author {
        tag.set_artist(author);
        tag.set_album_artist(author);
    }
    tag.set_track(tags.episode);
    tag.set_genre("Podcast");
    if let Ok(at) =
        time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(tags.published_ms) * 1_000_000)
    {
        let stamp = Timestamp {
            year: at.year(),
            month: Some(u8::from(at.month())),
            day: Some(at.day()),
            hour: None,
            minute: None,
            second: None,
        };
        tag.set_date_recorded(stamp);
        tag.set_date_released(stamp);
    }
    if let Some(art) = &tags.artwork {
        tag.add_frame(Picture {
            mime_type: art.mime_type.clone(),
            picture_type: PictureType::CoverFront,
            description: String::new(),
            data: art.data.clone(),
        });
    }
    let ms = |seconds: f64| (seconds.max(0.0) * 1000.0).round().min(f64::from(u32::MAX)) as u32;
    let end_ms = ms(tags.duration_seconds);
    let mut ids = Vec::new();
    for (i, chapter) in tags.chapters.iter().enumerate() {
        let element_id = format!("chp{i}");
        let end = tags
            .chapters
            .get(i + 1)
            .map_or(end_ms, |next| ms(next.start_time));
        tag.add_frame(ChapterFrame {
            element_id: element_id.clone(),
            start_time: ms(chapter.start_time),
            end_time: end.max(ms(chapter.start_time)),
            // Times, not byte offsets: all ones means "not given".
            start_offset: u32::MAX,
            end_offset: u32::MAX,
            frames: vec![Frame::text("TIT2", chapter.title.clone())],
        });
        ids.push(element_id);
    }
    if !ids.is_empty() {
        tag.add_frame(TableOfContents {
            element_id: "toc".into(),
            top_level: true,
            ordered: true,
            elements: ids,
            frames: Vec::new(),
        });
    }
    tag
}

/// Replaces the file's ID3v2 tag with `tag` (v2.3: what most podcast apps read best).
pub fn write(path: &Path, tag: &Tag) -> Result<(), PortError> {
    // The file is a fresh copy of ours: a tag that cannot be written (an image too large
    // for a frame, say) is the tag's fault, not a passing storage problem.
    tag.write_to_path(path, Version::Id3v23).map_err(|e| {
        PortError::input(format!(
            "the ID3 tag of {} cannot be written: {e}",
            path.display()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chapters_run_to_the_next_start_and_the_last_to_the_end() {
        let chapters = vec![
            Chapter {
                start_time: 0.0,
                title: "Intro".into(),
            },
            Chapter {
                start_time: 65.5,
                title: "Tooling".into(),
            },
        ];
        let built = tag(&EpisodeTags {
            title: "Ep",
            show: "Show",
            author: Some("Ana"),
            episode: 7,
            published_ms: 1_796_400_000_000,
            duration_seconds: 120.0,
            chapters: &chapters,
            artwork: Artwork::sniff(vec![0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1a, b'\n', 0]),
        });
        let frames: Vec<(u32, u32, String)> = built
            .chapters()
            .map(|c| (c.start_time, c.end_time, c.element_id.clone()))
            .collect();
        assert_eq!(
            frames,
            [(0, 65_500, "chp0".into()), (65_500, 120_000, "chp1".into())]
        );
        let toc: Vec<_> = built.tables_of_contents().collect();
        assert_eq!(toc.len(), 1);
        assert_eq!(toc[0].elements, ["chp0", "chp1"]);
        assert_eq!(built.track(), Some(7));
        assert_eq!(built.album(), Some("Show"));
        assert_eq!(built.pictures().count(), 1);
        assert_eq!(built.date_released().map(|d| d.year), Some(2026));
    }

    #[test]
    fn only_jpeg_and_png_count_as_artwork() {
        assert!(Artwork::sniff(vec![0xFF, 0xD8, 0xFF, 0xE0]).is_some());
        assert!(Artwork::sniff(b"<svg/>".to_vec()).is_none());
    }
}

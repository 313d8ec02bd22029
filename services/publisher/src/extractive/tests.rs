use super::*;
use crate::documents;
use podflow_core::transcript::TranscriptSegment;
use proptest::prelude::*;

/// The four-topic episode (testdata/four-topics.txt) and the times its second to fourth
/// topics start.
pub(super) fn four_topic_episode() -> (Transcript, Vec<f64>) {
    sample::assemble(&sample::passages(include_str!("testdata/four-topics.txt")))
}

#[test]
fn chapters_start_at_each_topic_shift_of_a_four_topic_episode() {
    let (transcript, truth) = four_topic_episode();
    assert!(
        (540.0..=660.0).contains(&transcript.duration_seconds),
        "a ten-minute episode: {}",
        transcript.duration_seconds
    );
    let (found, _) = sample::chapter_shifts(&transcript);
    let scores = sample::segmentation_scores(&truth, &found, transcript.duration_seconds, 15.0);
    assert_eq!(
        scores.recall, 1.0,
        "a topic shift missed: {found:?} vs {truth:?}"
    );
    let spurious = found.len() - (scores.precision * found.len() as f64).round() as usize;
    assert!(
        spurious <= 1,
        "{spurious} spurious chapters: {found:?} vs {truth:?}"
    );
    assert_eq!(Extract::of(&transcript).chapters[0].start, 0.0);
}

#[test]
fn segmentation_scores_count_near_boundaries_and_misjudged_windows() {
    // One true shift at 100 s in 200 s: k = 50 s, 150 one-second windows.
    let exact = sample::segmentation_scores(&[100.0], &[100.0], 200.0, 15.0);
    assert_eq!(
        (exact.precision, exact.recall, exact.pk, exact.window_diff),
        (1.0, 1.0, 0.0, 0.0)
    );
    // None found: the 50 windows that straddle the shift are judged wrong.
    let none = sample::segmentation_scores(&[100.0], &[], 200.0, 15.0);
    assert_eq!(
        (none.recall, none.pk, none.window_diff),
        (0.0, 50.0 / 150.0, 50.0 / 150.0)
    );
    // 20 s late: outside ±15 s, and 20 windows disagree.
    let late = sample::segmentation_scores(&[100.0], &[120.0], 200.0, 15.0);
    assert_eq!((late.precision, late.recall), (0.0, 0.0));
    assert!((late.pk - 40.0 / 150.0).abs() < 1e-9, "{late:?}");
}

#[test]
fn chapter_titles_and_keywords_name_what_was_discussed() {
    let (transcript, _) = four_topic_episode();
    let extract = Extract::of(&transcript);
    let titles: Vec<String> = extract
        .chapters
        .iter()
        .map(|c| c.title.to_lowercase())
        .collect();
    // Each topic's own words, stemmed loosely.
    let topics: [&[&str]; 4] = [
        &["bread", "starter", "dough", "loaf", "flour", "sourdough"],
        &[
            "telescope",
            "comet",
            "star",
            "astronom",
            "sky",
            "moon",
            "meteor",
        ],
        &["chain", "brake", "bike", "bicycle", "tyre", "gear", "wheel"],
        &["bee", "hive", "honey", "queen", "colony", "swarm"],
    ];
    let about = |text: &str, topic: &[&str]| topic.iter().any(|w| text.contains(w));
    for (title, topic) in titles.iter().zip(topics) {
        assert!(
            about(title, topic),
            "chapter title {title:?} is not about {topic:?}"
        );
    }
    let keywords = extract.keywords.join(" | ");
    let covered = topics.iter().filter(|t| about(&keywords, t)).count();
    assert!(
        covered >= 3,
        "keywords cover {covered} of 4 topics: {keywords}"
    );
}

#[test]
fn the_summary_is_sentences_as_said_in_their_order() {
    let (transcript, _) = four_topic_episode();
    let extract = Extract::of(&transcript);
    let summary = extract.answer("summary", "Episode").expect("a summary");
    let said = transcript.full_text();
    let mut last = 0;
    let mut sentences = 0;
    for sentence in summary.split_inclusive(['.', '!', '?']) {
        let sentence = sentence.trim();
        let at = said
            .find(sentence)
            .unwrap_or_else(|| panic!("not said: {sentence}"));
        assert!(at >= last, "out of order: {sentence}");
        last = at;
        sentences += 1;
    }
    assert!((2..=6).contains(&sentences), "{sentences}: {summary}");
    assert!(summary.split_whitespace().count() <= 130 + 60, "{summary}");
}

#[test]
fn a_long_episode_is_summarised_from_all_through_it() {
    // Twelve passages: the four topics three times over, in different orders.
    let passages = sample::passages(include_str!("testdata/four-topics.txt"));
    let order = [0, 1, 2, 3, 2, 0, 3, 1, 3, 2, 1, 0];
    let episode: Vec<Vec<&str>> = order.iter().map(|&k| passages[k].clone()).collect();
    let (transcript, _) = sample::assemble(&episode);
    let extract = Extract::of(&transcript);
    assert!(
        extract.chapters.len() > SUMMARY_SENTENCES,
        "{}",
        extract.chapters.len()
    );
    assert!(extract.summary.len() <= SUMMARY_SENTENCES);
    let half = transcript.duration_seconds / 2.0;
    let late = extract
        .summary
        .iter()
        .filter(|&&i| extract.sentences[i].start > half)
        .count();
    assert!(
        late > 0,
        "nothing from the second half: {:?}",
        extract.summary
    );
}

#[test]
fn every_answer_reads_as_the_prompt_answers_do() {
    let (transcript, _) = four_topic_episode();
    let extract = Extract::of(&transcript);
    let duration = transcript.duration_seconds;
    for output in OUTPUTS {
        let answer = extract.answer(output, "Four Things").expect(output);
        assert_eq!(
            Extract::of(&transcript)
                .answer(output, "Four Things")
                .as_deref(),
            Some(answer.as_str()),
            "{output} is deterministic"
        );
    }
    let chapters = extract.answer("chapters", "t").expect("chapters");
    let (parsed, dropped) = documents::parse_chapters(&chapters, duration).expect("chapters");
    assert!(dropped.is_empty(), "{dropped:?}");
    assert_eq!(parsed.len(), extract.chapters.len());
    let clips = extract.answer("clips", "t").expect("clips");
    let (planned, skipped) = documents::plan_clips(&clips, duration).expect("clips");
    assert!(skipped.is_empty(), "{skipped:?}");
    assert!((3..=5).contains(&planned.len()), "{planned:?}");
    let titles = documents::titles(&extract.answer("titles", "t").expect("titles"));
    assert!((3..=5).contains(&titles.len()), "{titles:?}");
    assert!(titles.iter().all(|t| t.chars().count() <= 70), "{titles:?}");
    let notes = extract.answer("show-notes", "t").expect("notes");
    assert_eq!(
        notes.matches("\n- ").count() + 1,
        extract.chapters.len() + 1,
        "{notes}"
    );
    assert!(
        notes.contains("Jupiter"),
        "a name said twice is mentioned: {notes}"
    );
    let social = extract.answer("social", "Four Things").expect("social");
    for network in ["## Mastodon", "## Bluesky", "## LinkedIn"] {
        assert!(social.contains(network), "{social}");
    }
    let bluesky = social
        .split("## Bluesky\n")
        .nth(1)
        .and_then(|s| s.split("\n\n").next())
        .expect("bluesky post");
    assert!(bluesky.chars().count() <= 280, "{bluesky}");
    let blog = extract.answer("blog-post", "Four Things").expect("blog");
    assert!(blog.starts_with("# Four Things\n"));
    assert_eq!(
        blog.matches("\n## ").count(),
        extract.chapters.len(),
        "{blog}"
    );
    assert_eq!(extract.answer("a-prompt-of-the-user", "t"), None);
}

#[test]
fn an_empty_or_tiny_transcript_gives_what_it_can_without_failing() {
    let mut t = Transcript {
        language: "xx".into(),
        duration_seconds: 0.0,
        engine: "test".into(),
        model: "test".into(),
        segments: Vec::new(),
    };
    let empty = Extract::of(&t);
    assert_eq!(empty.answer("summary", "t"), None);
    // Nothing found is no answer (an empty list would read as a failed one).
    for output in ["clips", "chapters", "show-notes", "keywords", "titles"] {
        assert_eq!(empty.answer(output, "t"), None, "{output}");
    }
    t.segments.push(TranscriptSegment {
        start: 0.0,
        end: 3.0,
        speaker: None,
        text: "Hello and welcome to a very short show about nothing much at all.".into(),
        words: Vec::new(),
    });
    t.duration_seconds = 3.0;
    let tiny = Extract::of(&t);
    assert_eq!(tiny.chapters.len(), 1);
    assert!(tiny.answer("summary", "t").is_some());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Clips lie inside the audio, last 20–60 s, start at a sentence's start and end at a
    /// sentence's end (where the speaker pauses), and never overlap.
    #[test]
    fn clips_are_whole_sentences_of_twenty_to_sixty_seconds_that_never_overlap(
        lengths in proptest::collection::vec((1usize..40, 0.0f64..2.0), 1..120),
        vocabulary in proptest::collection::vec("[a-z]{3,9}", 5..40),
    ) {
        let mut segments = Vec::new();
        let mut at = 0.0;
        for (k, (words, pause)) in lengths.iter().enumerate() {
            let text: Vec<&str> = (0..*words)
                .map(|w| vocabulary[(k * 7 + w * 3) % vocabulary.len()].as_str())
                .collect();
            let seconds = *words as f64 / 2.4;
            segments.push(TranscriptSegment {
                start: at,
                end: at + seconds,
                speaker: None,
                text: format!("{}.", text.join(" ")),
                words: Vec::new(),
            });
            at += seconds + pause;
        }
        let transcript = Transcript {
            language: "en".into(),
            duration_seconds: at,
            engine: "test".into(),
            model: "test".into(),
            segments,
        };
        let extract = Extract::of(&transcript);
        let starts: Vec<f64> = extract.sentences.iter().map(|s| s.start).collect();
        let ends: Vec<f64> = extract.sentences.iter().map(|s| s.end).collect();
        // No clip found is no answer.
        let answer = extract
            .answer("clips", "t")
            .unwrap_or_else(|| r#"{"clips": []}"#.to_owned());
        let (clips, skipped) = documents::plan_clips(&answer, transcript.duration_seconds)
            .expect("clips JSON");
        prop_assert!(skipped.is_empty());
        prop_assert!(clips.len() <= 5);
        for c in &clips {
            prop_assert!(c.start >= 0.0 && c.end <= transcript.duration_seconds);
            prop_assert!((20.0..=60.0).contains(&(c.end - c.start)), "{:?}", c);
            // serde_json reads floats to within an ulp or so.
            let near = |times: &[f64], t: f64| times.iter().any(|x| (x - t).abs() < 1e-6);
            prop_assert!(near(&starts, c.start) && near(&ends, c.end), "{:?}", c);
        }
        for (i, a) in clips.iter().enumerate() {
            for b in &clips[i + 1..] {
                prop_assert!(a.end <= b.start || b.end <= a.start, "{:?} overlaps {:?}", a, b);
            }
        }
        let chapters = extract.answer("chapters", "t").expect("chapters");
        prop_assert!(documents::parse_chapters(&chapters, transcript.duration_seconds).is_ok());
    }
}

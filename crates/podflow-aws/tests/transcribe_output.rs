//! Amazon Transcribe output recorded from AWS (crates/podflow-fakes/fixtures/aws/transcribe, see its
//! PROVENANCE.md) normalized into podflow's transcript.

use podflow_aws::transcribe_output;
use podflow_core::{
    subtitles,
    transcript::{Transcript, TranscriptView},
};
use podflow_fakes::fixtures::aws_text;

/// Each segment's speaker label and text.
fn speakers_and_text(t: &Transcript) -> Vec<(Option<&str>, &str)> {
    t.segments
        .iter()
        .map(|s| (s.speaker.as_deref(), s.text.as_str()))
        .collect()
}

fn fixture(name: &str) -> String {
    aws_text(&format!("transcribe/{name}"))
}

#[test]
fn a_real_two_speaker_transcript_keeps_segments_speakers_and_word_times() {
    let t = transcribe_output::parse(&fixture("localstack_transcript_speaker_diarization.json"))
        .expect("parses");
    let got = speakers_and_text(&t);
    assert_eq!(
        got,
        [
            (Some("spk_0"), "Hey, I am using LocalStack."),
            (
                Some("spk_1"),
                "Yeah, it's a great tool to emulate the cloud services."
            )
        ]
    );
    // Segment starts follow the first word, not Transcribe's 0.0 (leading silence).
    assert_eq!(t.segments[0].start, 0.119);
    assert_eq!(t.segments[1].start, 2.559);
    assert!(
        t.segments
            .iter()
            .all(|s| s.words.windows(2).all(|w| w[0].end <= w[1].start + 1e-9))
    );
    assert_eq!(t.segments[0].words[0].text, "Hey,");
    assert_eq!(t.duration_seconds, 5.86);
    // The prompt view labels speakers; subtitles follow the rules.
    let view = t.render(TranscriptView::Speakers);
    assert!(view.contains("Speaker 2: Yeah"), "{view}");
    let cues = subtitles::build_cues(&t);
    assert!(subtitles::rule_violations(&cues, false).is_empty());
}

#[test]
fn the_documented_output_without_audio_segments_splits_on_speaker_turns() {
    let t = transcribe_output::parse(&fixture("awsdocs-transcribe_diarization-output-batch.json"))
        .expect("parses");
    let got = speakers_and_text(&t);
    assert_eq!(
        got,
        [
            (Some("spk_0"), "I've been on hold for an hour."),
            (Some("spk_1"), "Sorry about that.")
        ]
    );
    assert_eq!(t.segments[0].start, 4.87);
}

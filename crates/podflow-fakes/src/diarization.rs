//! Speaker accuracy: how much of the speech a transcript attributes to the right speaker,
//! used by tests and the transcription benchmark to hold speaker labels to a number.

use std::collections::BTreeMap;

use podflow_core::transcript::TranscriptSegment;

/// Who really spoke when: `(start, end, speaker)` in seconds.
pub type TrueTurn = (f64, f64, String);

/// Speaker accuracy of labelled segments against the true turns.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SpeakerScore {
    /// Share of the speech (true turn time covered by segments) whose segment label maps
    /// to the true speaker, under the best one-to-one mapping of labels to speakers.
    /// Unlabelled segments count as wrong.
    pub accuracy: f64,
    /// What "everyone is one speaker" would score: the longest-talking speaker's share.
    pub one_speaker: f64,
}

/// Scores `segments` against `truth`. Time is counted where a segment and a true turn
/// overlap, so a segment spanning two turns is half right at best.
pub fn speaker_accuracy(segments: &[TranscriptSegment], truth: &[TrueTurn]) -> SpeakerScore {
    // overlap[(true speaker, label)] in seconds.
    let mut overlap: BTreeMap<(&str, Option<&str>), f64> = BTreeMap::new();
    let mut per_speaker: BTreeMap<&str, f64> = BTreeMap::new();
    for (t0, t1, who) in truth {
        for seg in segments {
            let o = t1.min(seg.end) - t0.max(seg.start);
            if o > 0.0 {
                *overlap
                    .entry((who.as_str(), seg.speaker.as_deref()))
                    .or_default() += o;
                *per_speaker.entry(who.as_str()).or_default() += o;
            }
        }
    }
    let total: f64 = per_speaker.values().sum();
    if total <= 0.0 {
        return SpeakerScore {
            accuracy: 0.0,
            one_speaker: 0.0,
        };
    }
    // Greedy one-to-one mapping, largest overlap first: exact for two speakers and close
    // enough for the few a podcast has.
    let mut pairs: Vec<((&str, &str), f64)> = overlap
        .iter()
        .filter_map(|(&(who, label), &t)| label.map(|l| ((who, l), t)))
        .collect();
    pairs.sort_by(|a, b| b.1.total_cmp(&a.1));
    let (mut used_speakers, mut used_labels) = (Vec::new(), Vec::new());
    let mut right = 0.0;
    for ((who, label), t) in pairs {
        if !used_speakers.contains(&who) && !used_labels.contains(&label) {
            used_speakers.push(who);
            used_labels.push(label);
            right += t;
        }
    }
    let longest = per_speaker.values().copied().fold(0.0, f64::max);
    SpeakerScore {
        accuracy: right / total,
        one_speaker: longest / total,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(start: f64, end: f64, speaker: Option<&str>) -> TranscriptSegment {
        TranscriptSegment {
            start,
            end,
            speaker: speaker.map(str::to_owned),
            text: "x".into(),
            words: vec![],
        }
    }

    fn truth() -> Vec<TrueTurn> {
        vec![
            (0.0, 10.0, "host".into()),
            (10.0, 15.0, "guest".into()),
            (15.0, 20.0, "host".into()),
        ]
    }

    #[test]
    fn labels_are_matched_to_speakers_whatever_their_names() {
        let segs = [
            seg(0.0, 10.0, Some("spk_1")),
            seg(10.0, 15.0, Some("spk_0")),
            seg(15.0, 20.0, Some("spk_1")),
        ];
        let s = speaker_accuracy(&segs, &truth());
        assert!((s.accuracy - 1.0).abs() < 1e-9);
        assert!((s.one_speaker - 0.75).abs() < 1e-9);
    }

    #[test]
    fn one_label_for_everyone_scores_the_one_speaker_baseline() {
        let segs = [seg(0.0, 20.0, Some("spk_0"))];
        let s = speaker_accuracy(&segs, &truth());
        assert!((s.accuracy - 0.75).abs() < 1e-9, "{s:?}");
    }

    #[test]
    fn unlabelled_and_split_segments_lose_their_time() {
        // A segment across the host→guest turn is labelled host: its guest half is wrong.
        let segs = [
            seg(0.0, 12.0, Some("a")),
            seg(12.0, 15.0, Some("b")),
            seg(15.0, 20.0, None),
        ];
        let s = speaker_accuracy(&segs, &truth());
        assert!((s.accuracy - 13.0 / 20.0).abs() < 1e-9, "{s:?}");
    }
}

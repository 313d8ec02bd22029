//! Every consumer accepts every valid example and rejects every invalid one; routing only
//! names known event types; every event but the public summary has a consumer.

use podflow_events::{
    EventEnvelope, PodflowEvent,
    routing::ROUTES,
    schema::{all_schemas, examples_dir, json_files},
};
use serde::de::DeserializeOwned;

fn check<E: PodflowEvent + DeserializeOwned>() -> usize {
    let mut checked = 0;
    for (valid, dir) in [
        (true, examples_dir(E::DETAIL_TYPE, true)),
        (false, examples_dir(E::DETAIL_TYPE, false)),
    ] {
        for file in json_files(&dir) {
            let detail: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(&file).expect("read"))
                    .expect("example is JSON");
            let envelope = EventEnvelope {
                version: "0".into(),
                id: "example".into(),
                detail_type: E::DETAIL_TYPE.into(),
                source: E::SOURCE.into(),
                account: "123456789012".into(),
                time: "2026-11-22T00:00:00Z".into(),
                region: "us-east-1".into(),
                resources: vec![],
                detail,
            };
            let decoded = envelope.decode::<E>();
            assert_eq!(
                decoded.is_ok(),
                valid,
                "{}: {:?}",
                file.display(),
                decoded.err()
            );
            if let Err(e) = decoded {
                // Rejections explain themselves.
                assert!(e.to_string().contains(E::DETAIL_TYPE), "{e}");
            }
            checked += 1;
        }
    }
    checked
}

#[test]
fn consumers_accept_valid_and_reject_invalid_examples() {
    use podflow_events::*;
    let checked = check::<EpisodeUploaded>()
        + check::<EpisodeTranscoded>()
        + check::<TranscodeFailed>()
        + check::<EpisodeTranscribed>()
        + check::<TranscriptionFailed>()
        + check::<PromptJob>()
        + check::<PromptCompleted>()
        + check::<PromptFailed>()
        + check::<EpisodeSummarized>()
        + check::<EpisodeProposed>()
        + check::<EpisodeApproved>()
        + check::<EpisodeRejected>();
    let files: usize = all_schemas()
        .iter()
        .map(|(name, _)| {
            json_files(&examples_dir(name, true)).len()
                + json_files(&examples_dir(name, false)).len()
        })
        .sum();
    assert_eq!(checked, files, "every example file was checked");
    assert!(checked >= 40);
}

#[test]
fn routing_names_only_known_events_and_covers_the_flow() {
    let known: Vec<&str> = all_schemas().iter().map(|(n, _)| *n).collect();
    for route in ROUTES {
        for t in route.detail_types {
            assert!(
                known.contains(t),
                "route to {} names unknown event {t}",
                route.service
            );
        }
    }
    for t in &known {
        let consumed = ROUTES.iter().any(|r| r.detail_types.contains(t));
        // PromptJob travels on the FIFO queue, not the bus.
        let expected = *t != "PromptJob";
        assert_eq!(consumed, expected, "{t}");
    }
}

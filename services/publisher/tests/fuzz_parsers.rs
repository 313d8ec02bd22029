//! Fuzzing (property-based, on stable, so CI runs it) of the publisher's readers of LLM
//! answers: a model's answer is text podflow does not control. Inputs are arbitrary text,
//! and answers shaped like the prompts ask for (JSON in prose or a code fence, Markdown
//! lists) with hostile values: times as `NaN`, `1e400`, `99:99`, `-0`, negative or past the
//! end; titles empty, huge or all markup; wrong types; duplicates.
//!
//! Invariants: in `fuzz_checks/parsers.rs`, which the cargo-fuzz target shares.

#[path = "fuzz_checks/parsers.rs"]
mod checks;

use checks::{any_answer, check_chapters, check_clips, check_titles};
use proptest::prelude::*;
use serde_json::{Value, json};

/// A time as a model might write one.
fn time() -> impl Strategy<Value = Value> {
    prop_oneof![
        (0.0f64..400.0).prop_map(|t| json!(t)),
        (-50i64..500).prop_map(|t| json!(t)),
        Just(json!(-0.0)),
        Just(json!(1e300)),
        Just(json!(f64::MAX)),
        Just(json!(u64::MAX)),
        prop_oneof![
            Just("NaN"),
            Just("inf"),
            Just("-inf"),
            Just("1e400"),
            Just("[00:01:05]"),
            Just("99:99"),
            Just("::"),
            Just("1:2:3:4"),
            Just("01:00"),
            Just(" 12.5 "),
        ]
        .prop_map(|s| json!(s)),
        "[0-9:.\\-e ]{0,10}".prop_map(|s| json!(s)),
        Just(json!(null)),
        Just(json!([1, 2])),
        Just(json!({"t": 1})),
    ]
}

/// A title or hook as a model might write one.
fn text() -> impl Strategy<Value = Value> {
    prop_oneof![
        "[A-Za-z ]{0,20}".prop_map(|s| json!(s)),
        Just(json!("   ")),
        Just(json!("")),
        "\\PC{0,30}".prop_map(|s| json!(s)),
        ("[a-z]{1,3}", 100usize..400).prop_map(|(s, n)| json!(s.repeat(n))),
        Just(json!(42)),
        Just(json!(null)),
    ]
}

/// The JSON wrapped the ways models wrap it.
fn wrapped(doc: Value) -> impl Strategy<Value = String> {
    let text = doc.to_string();
    prop_oneof![
        Just(text.clone()),
        Just(format!("```json\n{text}\n```")),
        Just(format!(
            "Here are the chapters:\n{text}\nHope this helps {{}}"
        )),
        (0usize..64).prop_map(move |cut| text
            .chars()
            .take(text.chars().count().saturating_sub(cut))
            .collect()),
    ]
}

fn chapters_answer() -> impl Strategy<Value = String> {
    prop::collection::vec(
        (
            prop_oneof![
                Just("startTime"),
                Just("start_time"),
                Just("start"),
                Just("at")
            ],
            time(),
            text(),
        ),
        0..12,
    )
    .prop_flat_map(|items| {
        let chapters: Vec<Value> = items
            .into_iter()
            .map(|(key, t, title)| {
                let mut c = serde_json::Map::new();
                c.insert(key.to_owned(), t);
                c.insert("title".to_owned(), title);
                Value::Object(c)
            })
            .collect();
        wrapped(json!({ "chapters": chapters }))
    })
}

fn clips_answer() -> impl Strategy<Value = String> {
    prop::collection::vec(
        (
            prop_oneof![Just("start"), Just("startTime")],
            time(),
            prop_oneof![Just("end"), Just("endTime")],
            time(),
            text(),
        ),
        0..10,
    )
    .prop_flat_map(|items| {
        let clips: Vec<Value> = items
            .into_iter()
            .map(|(sk, start, ek, end, hook)| json!({ sk: start, ek: end, "hook": hook }))
            .collect();
        wrapped(json!({ "clips": clips }))
    })
}

fn titles_answer() -> impl Strategy<Value = String> {
    prop::collection::vec(
        (
            prop_oneof![
                Just(""),
                Just("- "),
                Just("* "),
                Just("1. "),
                Just("12. "),
                Just("99999999999999999999999. "),
                Just("-"),
                Just("1."),
                Just("  - ")
            ],
            prop_oneof![
                "[A-Za-z ]{0,30}",
                Just("\"\"".to_owned()),
                Just("**".to_owned()),
                Just("\"**Bold**\"".to_owned()),
                "\\PC{0,30}",
            ],
            prop_oneof![Just("\n"), Just("\r\n"), Just("\n\n")],
        ),
        0..12,
    )
    .prop_map(|lines| {
        lines
            .into_iter()
            .map(|(bullet, t, end)| format!("{bullet}{t}{end}"))
            .collect()
    })
}

fn duration() -> impl Strategy<Value = f64> {
    prop_oneof![
        8 => 1.0f64..4000.0,
        1 => Just(0.0),
        1 => Just(-5.0),
        1 => Just(f64::NAN),
        1 => Just(f64::INFINITY),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn any_text_as_every_answer(text in "\\PC{0,300}|.{0,300}", d in duration()) {
        any_answer(&text, d)?;
    }

    #[test]
    fn chapters_answers_with_hostile_values(answer in chapters_answer(), d in duration()) {
        check_chapters(&answer, d)?;
    }

    #[test]
    fn clips_answers_with_hostile_values(answer in clips_answer(), d in duration()) {
        check_clips(&answer, d)?;
    }

    #[test]
    fn titles_answers_with_hostile_lines(answer in titles_answer()) {
        check_titles(&answer)?;
    }
}

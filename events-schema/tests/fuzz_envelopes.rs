//! Fuzzing, property-based on stable Rust so CI runs it: what every consumer does with a
//! message it did not write — parse the EventBridge envelope, then decode the detail as each
//! event type. Inputs are raw text, valid examples with bytes spliced in, and valid examples
//! with one value replaced by hostile JSON (keys with `..` or control characters, ids with
//! `/`, 2,000-character strings, deep nesting).
//!
//! Invariants: in `fuzz_checks/envelopes.rs`, which the cargo-fuzz target shares.

use std::sync::OnceLock;

#[path = "fuzz_checks/envelopes.rs"]
mod checks;

use checks::check_text;
use podflow_events::{
    EpisodeUploaded, PodflowEvent,
    names::{self, NameError},
    schema::{all_schemas, examples_dir, json_files, validator},
};
use proptest::{prelude::*, sample::Index};
use serde_json::{Value, json};

/// Every valid example: (detail-type, detail).
fn examples() -> &'static [(&'static str, Value)] {
    static EXAMPLES: OnceLock<Vec<(&'static str, Value)>> = OnceLock::new();
    EXAMPLES.get_or_init(|| {
        let mut all = Vec::new();
        for (name, _) in all_schemas() {
            for file in json_files(&examples_dir(name, true)) {
                let text = std::fs::read_to_string(&file).expect("example");
                all.push((name, serde_json::from_str(&text).expect("json")));
            }
        }
        assert!(all.len() >= 12, "examples not found");
        all
    })
}

/// Strings a hostile producer would send.
fn hostile_string() -> impl Strategy<Value = String> {
    prop_oneof![
        "\\PC{0,24}",
        ".{0,24}",
        "[a-z0-9./ _\\-\\x00\\n\\x1b\u{85}é]{0,24}",
        Just("..".to_owned()),
        Just("episodes/../other/audio.mp3".to_owned()),
        Just("/etc/passwd".to_owned()),
        Just("{{transcript}}".to_owned()),
        ("[a-zé/]{1,4}", 250usize..600).prop_map(|(s, n)| s.repeat(n)),
    ]
}

/// Any JSON value, with hostile strings and a little nesting.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        hostile_string().prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map(hostile_string(), inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// JSON pointers of every value in `v`.
fn pointers(v: &Value, at: String, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                pointers(
                    child,
                    format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")),
                    out,
                );
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                pointers(child, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
    out.push(at);
}

/// A wrapped example, its detail changed at one place: a value replaced, removed, or a
/// field added (what a newer or hostile producer might send).
fn mutated_envelope() -> impl Strategy<Value = String> {
    (
        any::<Index>(),
        any::<Index>(),
        0u8..3,
        json_value(),
        hostile_string(),
        any::<bool>(),
    )
        .prop_map(|(example, place, op, value, name, keep_type)| {
            let (detail_type, detail) = example.get(examples());
            let mut detail = detail.clone();
            let mut places = Vec::new();
            pointers(&detail, String::new(), &mut places);
            let at = place.get(&places).clone();
            match op {
                0 => {
                    if let Some(slot) = detail.pointer_mut(&at) {
                        *slot = value;
                    }
                }
                1 => {
                    if let Some((parent, last)) = at.rsplit_once('/')
                        && let Some(Value::Object(map)) = detail.pointer_mut(parent)
                    {
                        map.remove(&last.replace("~1", "/").replace("~0", "~"));
                    }
                }
                _ => {
                    if let Some(Value::Object(map)) = detail.pointer_mut(&at) {
                        map.insert(name.clone(), value);
                    }
                }
            }
            json!({
                "version": "0",
                "id": name,
                "detail-type": if keep_type { (*detail_type).to_owned() } else { name.clone() },
                "source": "podflow.fuzz",
                "time": "2026-01-01T00:00:00Z",
                "detail": detail,
            })
            .to_string()
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    /// Anything at all as a message body.
    #[test]
    fn any_text_is_refused_with_a_reason_or_decoded_on_schema(text in "\\PC{0,200}|.{0,200}") {
        check_text(&text)?;
    }

    /// A valid event with one value changed.
    #[test]
    fn mutated_examples_decode_on_schema_or_fail_with_a_reason(text in mutated_envelope()) {
        check_text(&text)?;
    }

    /// A valid event's text with bytes cut or spliced in.
    #[test]
    fn spliced_examples_never_panic(
        example in any::<Index>(),
        at in any::<Index>(),
        cut in 0usize..16,
        insert in ".{0,8}",
    ) {
        let (detail_type, detail) = example.get(examples());
        let text = json!({
            "id": "e-1", "detail-type": detail_type, "source": "podflow.fuzz",
            "time": "2026-01-01T00:00:00Z", "detail": detail,
        })
        .to_string();
        let mut at = at.index(text.len());
        while !text.is_char_boundary(at) {
            at -= 1;
        }
        let mut end = (at + cut).min(text.len());
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        let spliced = format!("{}{insert}{}", &text[..at], &text[end..]);
        check_text(&spliced)?;
    }

    /// The Rust key check and the schema's pattern agree (the Rust check also counts S3's
    /// 1024 bytes, which JSON Schema cannot: a longer key of non-ASCII characters is the
    /// one difference allowed).
    #[test]
    fn the_key_check_agrees_with_the_schema(
        key in prop_oneof![
            "[a-z./ \\x00\\x1f\\x7f\u{85}é]{0,12}",
            "(\\.{0,3}[a-zé ]{0,3}/){0,4}\\.{0,3}[a-z]{0,3}",
            ("[a-zé]{1,2}", 500usize..1100).prop_map(|(s, n)| s.repeat(n)),
        ],
    ) {
        let schema = validator(EpisodeUploaded::DETAIL_TYPE).expect("validator");
        let mut doc = examples()
            .iter()
            .find(|(t, _)| *t == EpisodeUploaded::DETAIL_TYPE)
            .map(|(_, d)| d.clone())
            .expect("an EpisodeUploaded example");
        doc["source"]["key"] = Value::from(key.clone());
        let by_schema = schema.is_valid(&doc);
        match names::check_key(&key) {
            Ok(()) => prop_assert!(by_schema, "{key:?} passes the check, not the schema"),
            Err(NameError::TooLong { .. }) if key.chars().count() <= 1024 => {
                prop_assert!(by_schema, "{key:?}");
            }
            Err(e) => {
                prop_assert!(!by_schema, "{key:?} passes the schema, not the check ({e})");
                prop_assert!(!e.to_string().is_empty());
            }
        }
    }
}

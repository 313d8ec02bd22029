//! Fuzzing (property-based, on stable, so CI runs it) of the prompt catalog: a prompt file
//! is text a user writes, and the values a template is filled with come from the episode
//! (its file name is the title). Inputs are arbitrary text, the bundled prompt files with
//! bytes spliced in, prompt files built from hostile field values, and templates and values
//! full of `{{`/`}}` markers.
//!
//! Invariants: in `fuzz_checks/catalog.rs`, which the cargo-fuzz target shares.

#[path = "fuzz_checks/catalog.rs"]
mod checks;

use checks::{check_parse, check_render};
use podflow_core::{PromptInput, TRANSCRIPT_MARKER};
use proptest::{prelude::*, sample::Index};

/// The bundled prompt files, read from the repository.
fn bundled() -> Vec<String> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../prompts");
    let mut texts: Vec<String> = std::fs::read_dir(dir)
        .expect("prompts/")
        .filter_map(|e| {
            let path = e.ok()?.path();
            (path.extension()? == "toml").then(|| std::fs::read_to_string(path).ok())?
        })
        .collect();
    texts.sort();
    assert!(texts.len() >= 8, "bundled prompts not found");
    texts
}

/// Text with template markers in it, whole or broken.
fn marked_text() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            "[a-z ]{0,6}",
            Just("{{".to_owned()),
            Just("}}".to_owned()),
            Just("{{transcript}}".to_owned()),
            Just("{{ title }}".to_owned()),
            Just("{{language".to_owned()),
            Just("{{{{transcript}}}}".to_owned()),
            "\\PC{0,4}",
        ],
        0..12,
    )
    .prop_map(|parts| parts.concat())
}

/// A prompt file from field values that may be hostile (quoted as TOML strings).
fn built_prompt() -> impl Strategy<Value = String> {
    (
        prop_oneof!["[a-z_-]{1,8}", "\\PC{0,70}", Just("a".repeat(65))],
        0u32..3,
        prop_oneof![Just("default".to_owned()), "\\PC{0,20}"],
        0u32..3,
        prop_oneof![Just(0.3f64), -1.0f64..3.0, Just(f64::NAN)],
        marked_text(),
        any::<bool>(),
    )
        .prop_map(
            |(id, version, model, max_tokens, temperature, template, add_transcript)| {
                let template = if add_transcript {
                    format!("{template} {TRANSCRIPT_MARKER}")
                } else {
                    template
                };
                let mut table = toml::Table::new();
                table.insert("id".into(), id.into());
                table.insert("version".into(), i64::from(version).into());
                table.insert("model".into(), model.into());
                table.insert("max_tokens".into(), i64::from(max_tokens).into());
                table.insert("temperature".into(), temperature.into());
                table.insert("template".into(), template.into());
                toml::to_string(&table).unwrap_or_default()
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn any_text_is_a_prompt_or_a_problem_with_a_reason(text in "\\PC{0,300}|.{0,300}") {
        check_parse(&text)?;
    }

    #[test]
    fn bundled_prompts_with_bytes_spliced_in(
        which in any::<Index>(),
        at in any::<Index>(),
        cut in 0usize..24,
        insert in prop_oneof![".{0,6}", Just("{{".to_owned()), Just("\"\"\"".to_owned())],
    ) {
        let texts = bundled();
        let text = which.get(&texts);
        let mut at = at.index(text.len());
        while !text.is_char_boundary(at) {
            at -= 1;
        }
        let mut end = (at + cut).min(text.len());
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        check_parse(&format!("{}{insert}{}", &text[..at], &text[end..]))?;
    }

    #[test]
    fn prompts_built_from_hostile_values(text in built_prompt()) {
        check_parse(&text)?;
    }

    /// Values are text: the transcript lands exactly where the template asked, once per
    /// place, however many markers the values (a title, a language) hold.
    #[test]
    fn values_never_expand(
        template in marked_text(),
        title in marked_text(),
        language in marked_text(),
    ) {
        check_render(&template, &title, &language)?;
    }

    /// A stored input edited by hand (slots that hold no marker, out of range, inside a
    /// character, out of order) is sent with the marker text left alone, never a panic.
    #[test]
    fn hand_edited_slots_never_panic(
        user in marked_text(),
        slots in prop::collection::vec(0usize..80, 0..8),
    ) {
        let input = PromptInput {
            user: user.clone(),
            transcript_at: Some(slots),
            ..PromptInput::default()
        };
        let sent = input.user_with("T");
        prop_assert!(sent.len() <= user.len());
    }
}

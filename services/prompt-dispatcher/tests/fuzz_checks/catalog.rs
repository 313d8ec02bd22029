//! The prompt catalog's invariants, shared by the proptest targets (`cargo test`) and the
//! cargo-fuzz target (`fuzz/`): nothing panics; a refused file has a reason (and a line
//! inside the file when one is named); an accepted prompt has an id the events' schemas
//! accept and a template that uses `{{transcript}}`; rendering inserts values as text, so the
//! transcript appears exactly where the template asked for it, whatever the values hold, and
//! the output is no larger than the template plus the values it used.

use std::collections::BTreeMap;

use podflow_core::{PromptInput, TRANSCRIPT_MARKER};
use prompt_dispatcher::catalog::{self, parse_prompt, render, render_marking};
use proptest::prelude::*;

/// Values are text: `template` rendered with a `title` and a `language` holding markers
/// puts the transcript exactly where the template asked, once per place.
pub fn check_render(template: &str, title: &str, language: &str) -> Result<(), TestCaseError> {
    // What stands for the transcript, counted in what is sent: it must come from nowhere
    // else (the cargo-fuzz target found inputs holding it in a value).
    let transcript = "\u{1F4DC}TRANSCRIPT\u{1F4DC}";
    if [template, title, language]
        .iter()
        .any(|text| text.contains(transcript))
    {
        return Ok(());
    }
    let mut values: BTreeMap<&str, String> = BTreeMap::new();
    values.insert("transcript", TRANSCRIPT_MARKER.to_owned());
    values.insert("title", title.to_owned());
    values.insert("language", language.to_owned());
    let (user, at) = render_marking(template, &values, "transcript");
    prop_assert_eq!(&user, &render(template, &values));
    let slots = catalog::template_variables(template)
        .iter()
        .filter(|v| *v == "transcript")
        .count();
    prop_assert_eq!(at.len(), slots);
    // No larger than the template plus one value per variable it uses.
    let longest = title.len().max(language.len()).max(TRANSCRIPT_MARKER.len());
    let vars = catalog::template_variables(template).len();
    prop_assert!(user.len() <= template.len() + vars * longest);
    let input = PromptInput {
        user,
        transcript_at: Some(at),
        ..PromptInput::default()
    };
    let sent = input.user_with(transcript);
    prop_assert_eq!(sent.matches(transcript).count(), slots, "{}", sent);
    Ok(())
}

/// The checks on one prompt file's text.
pub fn check_parse(text: &str) -> Result<(), TestCaseError> {
    match parse_prompt("fuzz.toml", text) {
        Ok(def) => {
            prop_assert!(
                podflow_events::names::check_prompt_id(&def.id).is_ok(),
                "{:?}",
                def.id
            );
            prop_assert!(def.template.contains(TRANSCRIPT_MARKER));
            prop_assert!(def.version >= 1 && def.max_tokens >= 1);
            for var in catalog::template_variables(&def.template) {
                prop_assert!(catalog::VARIABLES.contains(&var.as_str()), "{var}");
            }
        }
        Err(problem) => {
            prop_assert!(
                !problem.message.trim().is_empty(),
                "a problem without a reason"
            );
            prop_assert!(problem.to_string().starts_with("fuzz.toml"));
            if let Some(line) = problem.line {
                prop_assert!(line >= 1 && line <= text.lines().count() + 1, "line {line}");
            }
        }
    }
    Ok(())
}

//! JSON Schema generation from the Rust types (the source of truth).

use std::path::{Path, PathBuf};

use schemars::{JsonSchema, generate::SchemaSettings};

use crate::events::*;

/// Every event type: its detail-type and its generated schema.
pub fn all_schemas() -> Vec<(&'static str, serde_json::Value)> {
    fn one<T: JsonSchema + PodflowEvent>() -> (&'static str, serde_json::Value) {
        let generator = SchemaSettings::draft2020_12().into_generator();
        let schema = generator.into_root_schema_for::<T>();
        (T::DETAIL_TYPE, schema.to_value())
    }
    vec![
        one::<EpisodeUploaded>(),
        one::<EpisodeTranscoded>(),
        one::<TranscodeFailed>(),
        one::<EpisodeTranscribed>(),
        one::<TranscriptionFailed>(),
        one::<PromptJob>(),
        one::<PromptCompleted>(),
        one::<PromptFailed>(),
        one::<EpisodeSummarized>(),
        one::<EpisodeProposed>(),
        one::<EpisodeApproved>(),
        one::<EpisodeRejected>(),
    ]
}

/// The compiled validator for a detail-type's generated schema (built once per process).
pub fn validator(detail_type: &str) -> Option<&'static jsonschema::Validator> {
    static VALIDATORS: std::sync::OnceLock<Vec<(&'static str, jsonschema::Validator)>> =
        std::sync::OnceLock::new();
    VALIDATORS
        .get_or_init(|| {
            all_schemas()
                .into_iter()
                .filter_map(|(name, schema)| Some((name, jsonschema::validator_for(&schema).ok()?)))
                .collect()
        })
        .iter()
        .find(|(name, _)| *name == detail_type)
        .map(|(_, v)| v)
}

/// The directory holding this crate (schemas and examples live under it). Under `cargo`
/// (tests, examples), the one in the running package's checkout: `CARGO_MANIFEST_DIR` is
/// set to that package, and `events-schema/` is beside it or above it. A target directory
/// shared between checkouts (CI's cache) can hold this crate compiled in another checkout,
/// so the directory it was built in is only the fallback.
pub fn crate_dir() -> PathBuf {
    // This crate's own directory holds its source and its schemas.
    let is_this_crate =
        |dir: &Path| dir.join("src/schema.rs").is_file() && dir.join("schemas").is_dir();
    let running = std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from);
    running
        .iter()
        .flat_map(|package| package.ancestors())
        .flat_map(|dir| [dir.to_path_buf(), dir.join("events-schema")])
        .find(|dir| is_this_crate(dir))
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

/// `events-schema/schemas/<DetailType>.schema.json`
pub fn schema_path(detail_type: &str) -> PathBuf {
    crate_dir()
        .join("schemas")
        .join(format!("{detail_type}.schema.json"))
}

/// `events-schema/examples/<DetailType>/{valid,invalid}/`
pub fn examples_dir(detail_type: &str, valid: bool) -> PathBuf {
    crate_dir()
        .join("examples")
        .join(detail_type)
        .join(if valid { "valid" } else { "invalid" })
}

/// The pretty JSON text a schema file must contain.
pub fn render(schema: &serde_json::Value) -> String {
    let mut text = serde_json::to_string_pretty(schema).unwrap_or_default();
    text.push('\n');
    text
}

/// JSON files in a directory, sorted.
pub fn json_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "json"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The drift check: regenerate every schema and compare with the committed file.
    #[test]
    fn committed_schemas_match_the_rust_types() {
        for (name, schema) in all_schemas() {
            let path = schema_path(name);
            let committed = std::fs::read_to_string(&path).unwrap_or_default();
            assert_eq!(
                committed,
                render(&schema),
                "{} drifted from the Rust type; run `cargo run -p podflow-events --example write-schemas`",
                path.display()
            );
        }
    }

    #[test]
    fn every_schema_has_valid_and_invalid_examples_that_behave() {
        for (name, schema) in all_schemas() {
            let validator = jsonschema::validator_for(&schema).expect("schema compiles");
            let valid = json_files(&examples_dir(name, true));
            let invalid = json_files(&examples_dir(name, false));
            assert!(!valid.is_empty(), "{name} has no valid examples");
            assert!(!invalid.is_empty(), "{name} has no invalid examples");
            for file in valid {
                let doc: serde_json::Value =
                    serde_json::from_str(&std::fs::read_to_string(&file).expect("read"))
                        .expect("json");
                let errors: Vec<String> =
                    validator.iter_errors(&doc).map(|e| e.to_string()).collect();
                assert!(
                    errors.is_empty(),
                    "{} should be valid: {errors:?}",
                    file.display()
                );
            }
            for file in invalid {
                let doc: serde_json::Value =
                    serde_json::from_str(&std::fs::read_to_string(&file).expect("read"))
                        .expect("json");
                assert!(
                    !validator.is_valid(&doc),
                    "{} should be invalid",
                    file.display()
                );
            }
        }
    }
}

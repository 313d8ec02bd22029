//! The prompt catalog: TOML files with an id, a version, a model, an explicit token budget
//! and a template. Bundled prompts are compiled in; a user directory adds or replaces them
//! by id. A bad file is reported with its path and line and skipped — it never stops the
//! valid prompts.

use std::{collections::BTreeMap, path::Path};

use podflow_core::transcript::TranscriptView;
use serde::Deserialize;

/// Compiles in `prompts/<name>.toml` for each name, with its repository path.
macro_rules! bundled {
    ($($name:literal),* $(,)?) => {
        &[$((
            concat!("prompts/", $name, ".toml"),
            include_str!(concat!("../../../prompts/", $name, ".toml")),
        )),*]
    };
}

/// The prompts shipped with podflow (`prompts/` at the repository root).
const BUNDLED: &[(&str, &str)] = bundled![
    "titles",
    "summary",
    "show-notes",
    "chapters",
    "blog-post",
    "social",
    "clips",
    "keywords",
];

/// Variables a template may use. `language` is the transcript's ISO code (`de`),
/// `language_name` its English name (`German`), so a prompt can ask for the texts in the
/// episode's language.
pub const VARIABLES: &[&str] = &[
    "transcript",
    "title",
    "duration",
    "episode_id",
    "language",
    "language_name",
];

/// One prompt of the catalog.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromptDefinition {
    pub id: String,
    pub version: u32,
    /// A model id (Bedrock model or inference profile, or an OpenAI-compatible name), or
    /// `default` for the configured default model.
    pub model: String,
    /// Always explicit: providers reserve it against the tokens-per-minute quota.
    pub max_tokens: u32,
    #[serde(default = "default_temperature")]
    pub temperature: f32,
    #[serde(default)]
    pub view: TranscriptView,
    #[serde(default = "default_output")]
    pub output: String,
    #[serde(default)]
    pub system: String,
    pub template: String,
}

fn default_temperature() -> f32 {
    0.3
}

fn default_output() -> String {
    "markdown".into()
}

/// A catalog entry that was rejected, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct CatalogProblem {
    pub file: String,
    pub line: Option<usize>,
    pub message: String,
}

impl std::fmt::Display for CatalogProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}: {}", self.file, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

/// The loaded catalog: valid prompts by id, and the problems found.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    pub prompts: BTreeMap<String, PromptDefinition>,
    pub problems: Vec<CatalogProblem>,
}

fn line_of(text: &str, byte: usize) -> usize {
    text[..byte.min(text.len())].matches('\n').count() + 1
}

/// Parses and checks one file's text.
pub fn parse_prompt(file: &str, text: &str) -> Result<PromptDefinition, CatalogProblem> {
    let problem = |line: Option<usize>, message: String| CatalogProblem {
        file: file.to_owned(),
        line,
        message,
    };
    let def: PromptDefinition = toml::from_str(text).map_err(|e| {
        let line = e.span().map(|s| line_of(text, s.start));
        problem(line, e.message().to_owned())
    })?;
    let line_with = |needle: &str| text.find(needle).map(|i| line_of(text, i));
    // The id names files and keys (`episodes/<id>/prompts/<prompt id>.md`): the events'
    // schemas hold it to this shape, and a job with another would be refused.
    if podflow_events::names::check_prompt_id(&def.id).is_err() {
        return Err(problem(
            line_with("id"),
            format!(
                "id {} must be 1 to {} letters, digits, - or _",
                podflow_events::names::shown(&def.id),
                podflow_events::names::MAX_PROMPT_ID
            ),
        ));
    }
    if def.version == 0 {
        return Err(problem(
            line_with("version"),
            "version must be 1 or more".into(),
        ));
    }
    if def.max_tokens == 0 {
        return Err(problem(
            line_with("max_tokens"),
            "max_tokens must be 1 or more".into(),
        ));
    }
    if !(0.0..=2.0).contains(&def.temperature) {
        return Err(problem(
            line_with("temperature"),
            "temperature must be between 0 and 2".into(),
        ));
    }
    for var in template_variables(&def.template) {
        if !VARIABLES.contains(&var.as_str()) {
            return Err(problem(
                line_with(&format!("{{{{{var}}}}}")),
                format!(
                    "unknown variable `{{{{{var}}}}}`; templates may use {}",
                    VARIABLES.join(", ")
                ),
            ));
        }
    }
    if !def.template.contains("{{transcript}}") {
        return Err(problem(
            line_with("template"),
            "template never uses {{transcript}}".into(),
        ));
    }
    Ok(def)
}

/// The `{{name}}` variables a template uses.
pub fn template_variables(template: &str) -> Vec<String> {
    let mut vars = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        match after.find("}}") {
            Some(end) => {
                vars.push(after[..end].trim().to_owned());
                rest = &after[end + 2..];
            }
            None => break,
        }
    }
    vars
}

/// Fills a template's variables. Each value is inserted as it is and never read for
/// variables itself: a title `{{transcript}}.mp3` stays that text.
pub fn render(template: &str, values: &BTreeMap<&str, String>) -> String {
    render_marking(template, values, "").0
}

/// [`render`], also saying where (byte offsets into the result) the variable `marked` was
/// filled in: what tells the marker the template placed from the same text inside a value.
pub fn render_marking(
    template: &str,
    values: &BTreeMap<&str, String>,
    marked: &str,
) -> (String, Vec<usize>) {
    let mut out = String::with_capacity(template.len());
    let mut at = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find("}}") {
            Some(end) => {
                let name = after[..end].trim();
                if !marked.is_empty() && name == marked {
                    at.push(out.len());
                }
                out.push_str(values.get(name).map_or("", String::as_str));
                rest = &after[end + 2..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    (out, at)
}

impl Catalog {
    /// The bundled prompts, then every `*.toml` in `override_dir` (same id replaces).
    pub fn load(override_dir: Option<&Path>) -> Catalog {
        let mut sources: Vec<(String, String)> = BUNDLED
            .iter()
            .map(|(f, t)| ((*f).to_owned(), (*t).to_owned()))
            .collect();
        let mut catalog = Catalog::default();
        if let Some(dir) = override_dir.filter(|d| d.is_dir()) {
            let mut files: Vec<_> = std::fs::read_dir(dir)
                .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
                .unwrap_or_default();
            files.retain(|p: &std::path::PathBuf| p.extension().is_some_and(|e| e == "toml"));
            files.sort();
            for path in files {
                match std::fs::read_to_string(&path) {
                    Ok(text) => sources.push((path.display().to_string(), text)),
                    Err(e) => catalog.problems.push(CatalogProblem {
                        file: path.display().to_string(),
                        line: None,
                        message: e.to_string(),
                    }),
                }
            }
        }
        let mut seen_in: BTreeMap<String, (String, bool)> = BTreeMap::new();
        for (file, text) in sources {
            let bundled = file.starts_with("prompts/");
            match parse_prompt(&file, &text) {
                Ok(def) => {
                    if let Some((first, first_bundled)) = seen_in.get(&def.id)
                        && (!*first_bundled || bundled)
                    {
                        catalog.problems.push(CatalogProblem {
                            file: file.clone(),
                            line: text.find("id").map(|i| line_of(&text, i)),
                            message: format!("duplicate id `{}` (also in {first})", def.id),
                        });
                        continue;
                    }
                    seen_in.insert(def.id.clone(), (file, bundled));
                    catalog.prompts.insert(def.id.clone(), def);
                }
                Err(problem) => catalog.problems.push(problem),
            }
        }
        catalog
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "id = \"x\"\nversion = 2\nmodel = \"m\"\nmax_tokens = 10\ntemplate = \"Say {{title}}: {{transcript}}\"\n";

    #[test]
    fn bundled_catalog_is_valid_and_ships_every_prompt_file() {
        let c = Catalog::load(None);
        assert!(c.problems.is_empty(), "{:?}", c.problems);
        let ids: Vec<&str> = c.prompts.keys().map(String::as_str).collect();
        assert_eq!(
            ids,
            [
                "blog-post",
                "chapters",
                "clips",
                "keywords",
                "show-notes",
                "social",
                "summary",
                "titles"
            ]
        );
        // Every file in prompts/ is compiled in (a new file must not be silently left out).
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../prompts");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .expect("prompts dir")
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.ends_with(".toml"))
            .map(|n| format!("prompts/{n}"))
            .collect();
        files.sort();
        let mut bundled: Vec<String> = BUNDLED.iter().map(|(f, _)| (*f).to_owned()).collect();
        bundled.sort();
        assert_eq!(files, bundled);
    }

    #[test]
    fn bad_entries_are_rejected_with_file_and_line() {
        let p = parse_prompt(
            "p.toml",
            "id = \"x\"\nversion = 1\nmodel = \"m\"\ntemplate = \"{{transcript}}\"\n",
        )
        .expect_err("no max_tokens");
        assert!(p.message.contains("max_tokens"), "{p}");
        let p = parse_prompt("p.toml", "id = \"x\"\nversion = 1\nmodel = \"m\"\nmax_tokens = 5\ntemplate = \"\"\"\nhello\n{{speaker_count}} {{transcript}}\"\"\"\n").expect_err("unknown var");
        assert_eq!((p.line, p.file.as_str()), (Some(7), "p.toml"));
        assert!(
            p.to_string()
                .starts_with("p.toml:7: unknown variable `{{speaker_count}}`"),
            "{p}"
        );
    }

    #[test]
    fn overrides_replace_by_id_and_duplicates_do_not_stop_the_rest() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("a.toml"),
            GOOD.replace("\"x\"", "\"summary\""),
        )
        .expect("w");
        std::fs::write(dir.path().join("b.toml"), GOOD).expect("w");
        std::fs::write(dir.path().join("c.toml"), GOOD).expect("w");
        std::fs::write(dir.path().join("d.toml"), "id = ").expect("w");
        let c = Catalog::load(Some(dir.path()));
        assert_eq!(
            c.prompts["summary"].version, 2,
            "override replaced the bundled summary"
        );
        assert!(c.prompts.contains_key("x") && c.prompts.contains_key("titles"));
        assert_eq!(c.problems.len(), 2, "{:?}", c.problems);
        assert!(
            c.problems
                .iter()
                .any(|p| p.message.contains("duplicate id `x`"))
        );
    }

    #[test]
    fn every_bundled_prompt_asks_for_the_transcripts_language() {
        // The outputs are read by the show's listeners: in the episode's language, whatever
        // the model would answer in by itself.
        for (file, text) in BUNDLED {
            let def = parse_prompt(file, text).expect("valid");
            let vars = template_variables(&def.template);
            assert!(
                vars.iter().any(|v| v == "language") && vars.iter().any(|v| v == "language_name"),
                "{file} does not name the language"
            );
        }
    }

    #[test]
    fn render_fills_variables() {
        let mut v = BTreeMap::new();
        v.insert("title", "Ep 1".to_owned());
        v.insert("transcript", "hello".to_owned());
        assert_eq!(
            render("Say {{title}}: {{ transcript }}", &v),
            "Say Ep 1: hello"
        );
    }
}

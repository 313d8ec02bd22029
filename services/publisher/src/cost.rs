//! What an episode cost, estimated from a price table: pure, no I/O beyond reading the
//! table.

use std::{collections::BTreeMap, path::Path};

use podflow_core::PromptState;
use podflow_events::{CostBlock, ModelCost};
use serde::Deserialize;

const BUNDLED: &str = include_str!("../config/prices.toml");

/// Price of one model, per 1,000 tokens.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
pub struct TokenPrice {
    pub input_per_1k: f64,
    pub output_per_1k: f64,
}

/// Prices by transcription engine (per audio minute) and by model.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct PriceTable {
    #[serde(default)]
    pub transcription: BTreeMap<String, f64>,
    #[serde(default)]
    pub models: BTreeMap<String, TokenPrice>,
}

/// Why a price file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum PriceError {
    #[error("cannot read price table {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("price table {path} is not valid: {message}")]
    Invalid { path: String, message: String },
}

impl PriceTable {
    /// The bundled prices, with the entries of `override_file` replacing them by name.
    pub fn load(override_file: Option<&Path>) -> Result<Self, PriceError> {
        let parse = |text: &str, path: &str| {
            toml::from_str::<PriceTable>(text).map_err(|e| PriceError::Invalid {
                path: path.to_owned(),
                message: e.to_string(),
            })
        };
        let mut table = parse(BUNDLED, "bundled prices.toml")?;
        if let Some(file) = override_file {
            let path = file.display().to_string();
            let text = std::fs::read_to_string(file).map_err(|source| PriceError::Read {
                path: path.clone(),
                source,
            })?;
            let extra = parse(&text, &path)?;
            table.transcription.extend(extra.transcription);
            table.models.extend(extra.models);
        }
        Ok(table)
    }

    /// A model's price; inference profiles (`us.…`, `eu.…`, ARNs) share their model's.
    pub fn model(&self, model: &str) -> Option<TokenPrice> {
        let base = model.rsplit('/').next().unwrap_or(model);
        self.models
            .get(model)
            .or_else(|| self.models.get(base))
            .copied()
            .or_else(|| {
                let (_, rest) = base.split_once('.')?;
                self.models.get(rest).copied()
            })
    }
}

fn cents(usd: f64) -> f64 {
    // Four decimals: per-episode LLM costs are often fractions of a cent.
    (usd * 10_000.0).round() / 10_000.0
}

/// The cost block for an episode.
pub fn estimate(
    prices: &PriceTable,
    audio_seconds: f64,
    engine: &str,
    prompts: &[PromptState],
) -> CostBlock {
    let audio_minutes = (audio_seconds.max(0.0) / 60.0 * 100.0).round() / 100.0;
    let mut unpriced = Vec::new();
    let transcription_usd = match prices.transcription.get(engine) {
        Some(per_minute) => Some(cents(per_minute * audio_minutes)),
        None => {
            unpriced.push(format!("transcription engine {engine}"));
            None
        }
    };
    let mut tokens: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for p in prompts {
        let entry = tokens.entry(p.model.as_str()).or_default();
        entry.0 += u64::from(p.input_tokens);
        entry.1 += u64::from(p.output_tokens);
    }
    let models: Vec<ModelCost> = tokens
        .into_iter()
        .filter(|(_, (i, o))| i + o > 0)
        .map(|(model, (input_tokens, output_tokens))| {
            let usd = prices.model(model).map(|p| {
                cents(
                    input_tokens as f64 / 1000.0 * p.input_per_1k
                        + output_tokens as f64 / 1000.0 * p.output_per_1k,
                )
            });
            if usd.is_none() {
                unpriced.push(format!("model {model}"));
            }
            ModelCost {
                model: model.to_owned(),
                input_tokens,
                output_tokens,
                usd,
            }
        })
        .collect();
    let total_usd =
        cents(transcription_usd.unwrap_or(0.0) + models.iter().filter_map(|m| m.usd).sum::<f64>());
    CostBlock {
        audio_minutes,
        transcription_engine: engine.to_owned(),
        transcription_usd,
        models,
        total_usd,
        unpriced,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use podflow_core::PromptStatus;

    fn prompt(model: &str, input: u32, output: u32) -> PromptState {
        PromptState {
            prompt_id: "p".into(),
            prompt_version: 1,
            model: model.into(),
            status: PromptStatus::Completed,
            attempts: 1,
            last_error: None,
            output: None,
            input_tokens: input,
            output_tokens: output,
            throttles: 0,
            throttled_since_ms: None,
        }
    }

    #[test]
    fn transcribe_minutes_and_tokens_per_model_add_up() {
        let prices = PriceTable::load(None).expect("bundled");
        let haiku = "anthropic.claude-3-haiku-20240307-v1:0";
        let prompts = [
            prompt(haiku, 30_000, 1_000),
            prompt(&format!("us.{haiku}"), 40_000, 2_000),
            prompt(haiku, 20_000, 3_000),
            prompt("llama3.2", 5_000, 500),
        ];
        let cost = estimate(&prices, 3600.0, "amazon-transcribe", &prompts);
        assert_eq!(cost.audio_minutes, 60.0);
        assert_eq!(cost.transcription_usd, Some(1.44));
        // 50k in × 0.00025 + 4k out × 0.00125 = 0.0125 + 0.005 (no half-cent rounding)
        let direct = cost
            .models
            .iter()
            .find(|m| m.model == haiku)
            .expect("haiku");
        assert_eq!((direct.input_tokens, direct.output_tokens), (50_000, 4_000));
        assert_eq!(direct.usd, Some(0.0175));
        let profile = cost
            .models
            .iter()
            .find(|m| m.model.starts_with("us."))
            .expect("profile");
        assert_eq!(
            profile.usd,
            Some(0.0125),
            "inference profile priced as its model"
        );
        assert_eq!(cost.unpriced, ["model llama3.2"]);
        assert_eq!(cost.total_usd, 1.47);
    }

    #[test]
    fn local_runs_cost_nothing_for_transcription_and_overrides_replace_prices() {
        let dir = tempfile::tempdir().expect("dir");
        let file = dir.path().join("prices.toml");
        std::fs::write(
            &file,
            "[models.\"llama3.2\"]\ninput_per_1k = 0.001\noutput_per_1k = 0.002\n",
        )
        .expect("write");
        let prices = PriceTable::load(Some(&file)).expect("override");
        let cost = estimate(
            &prices,
            90.0,
            "whisper.cpp",
            &[prompt("llama3.2", 1000, 1000)],
        );
        assert_eq!(cost.transcription_usd, Some(0.0));
        assert_eq!(cost.total_usd, 0.003);
        assert!(cost.unpriced.is_empty());
    }

    #[test]
    fn a_broken_price_file_is_named() {
        let dir = tempfile::tempdir().expect("dir");
        let file = dir.path().join("prices.toml");
        std::fs::write(&file, "[models.x]\ninput_per_1k = \"cheap\"\n").expect("write");
        let e = PriceTable::load(Some(&file)).expect_err("invalid");
        assert!(e.to_string().contains("prices.toml is not valid"), "{e}");
    }
}

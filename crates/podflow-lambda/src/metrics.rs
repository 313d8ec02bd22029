//! CloudWatch metrics from what the functions publish, as embedded-metric-format (EMF) log
//! lines: Lambda sends a function's stdout to CloudWatch Logs, which turns each such line
//! into metrics without an API call. Derived here, at the Lambda edge, from the events a
//! handler emits, so the handlers stay the same locally and on AWS.
//!
//! Metrics (namespace `podflow`, dimension `Service`, and `Service, Model` for tokens):
//! `PromptsCompleted`, `PromptsFailed`, `InputTokens`, `OutputTokens` (invoker);
//! `RevisionsPublished`, `EpisodesComplete`, `AudioMinutes`, `EstimatedCostUSD` (publisher,
//! per published revision).

use std::time::{SystemTime, UNIX_EPOCH};

use podflow_events::{EpisodeSummarized, EventEnvelope, PromptCompleted, SummaryStatus};
use serde_json::{Map, Value, json};

/// Where metric lines go.
pub trait MetricsSink: Send + Sync {
    fn line(&self, line: String);
}

/// Lambda's stdout, which CloudWatch Logs reads EMF from.
pub struct StdoutMetrics;

impl MetricsSink for StdoutMetrics {
    fn line(&self, line: String) {
        println!("{line}");
    }
}

pub const NAMESPACE: &str = "podflow";

/// One metric value and its CloudWatch unit (`Count`, `None`).
pub struct Metric<'a> {
    pub name: &'a str,
    pub value: f64,
    pub unit: &'a str,
}

/// One EMF line: `dimensions` (name, value) and `metrics` at `timestamp_ms`.
pub fn emf_line(dimensions: &[(&str, &str)], metrics: &[Metric<'_>], timestamp_ms: u64) -> String {
    let mut line = Map::new();
    line.insert(
        "_aws".into(),
        json!({
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [dimensions.iter().map(|(name, _)| *name).collect::<Vec<_>>()],
                "Metrics": metrics.iter()
                    .map(|m| json!({"Name": m.name, "Unit": m.unit}))
                    .collect::<Vec<_>>(),
            }]
        }),
    );
    for (name, value) in dimensions {
        line.insert((*name).to_owned(), json!(value));
    }
    for m in metrics {
        line.insert(m.name.to_owned(), json!(m.value));
    }
    Value::Object(line).to_string()
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The metric lines for events a function of `service` published.
pub fn lines_for(service: &str, events: &[EventEnvelope], timestamp_ms: u64) -> Vec<String> {
    let count = |name| Metric {
        name,
        value: 1.0,
        unit: "Count",
    };
    let mut lines = Vec::new();
    for event in events {
        match event.detail_type.as_str() {
            "PromptCompleted" => {
                let Ok(done) = event.decode::<PromptCompleted>() else {
                    continue;
                };
                lines.push(emf_line(
                    &[("Service", service)],
                    &[count("PromptsCompleted")],
                    timestamp_ms,
                ));
                lines.push(emf_line(
                    &[("Service", service), ("Model", &done.model)],
                    &[
                        Metric {
                            name: "InputTokens",
                            value: f64::from(done.input_tokens),
                            unit: "Count",
                        },
                        Metric {
                            name: "OutputTokens",
                            value: f64::from(done.output_tokens),
                            unit: "Count",
                        },
                    ],
                    timestamp_ms,
                ));
            }
            "PromptFailed" => lines.push(emf_line(
                &[("Service", service)],
                &[count("PromptsFailed")],
                timestamp_ms,
            )),
            "EpisodeSummarized" => {
                let Ok(summary) = event.decode::<EpisodeSummarized>() else {
                    continue;
                };
                let mut metrics = vec![count("RevisionsPublished")];
                if summary.status == SummaryStatus::Complete {
                    metrics.push(count("EpisodesComplete"));
                }
                if let Some(cost) = &summary.cost {
                    metrics.push(Metric {
                        name: "AudioMinutes",
                        value: cost.audio_minutes,
                        unit: "None",
                    });
                    metrics.push(Metric {
                        name: "EstimatedCostUSD",
                        value: cost.total_usd,
                        unit: "None",
                    });
                }
                lines.push(emf_line(&[("Service", service)], &metrics, timestamp_ms));
            }
            _ => {}
        }
    }
    lines
}

/// Writes the metric lines for `events` to `sink`.
pub fn record(sink: &dyn MetricsSink, events: &[EventEnvelope]) {
    let service = std::env::var("PODFLOW_SERVICE").unwrap_or_else(|_| "podflow".to_owned());
    for line in lines_for(&service, events, now_ms()) {
        sink.line(line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_emf_line_declares_its_metrics_and_carries_their_values() {
        let line: Value = serde_json::from_str(&emf_line(
            &[("Service", "bedrock-invoker"), ("Model", "m1")],
            &[Metric {
                name: "InputTokens",
                value: 1200.0,
                unit: "Count",
            }],
            1_700_000_000_000,
        ))
        .expect("JSON");
        let declared = &line["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(line["_aws"]["Timestamp"], 1_700_000_000_000u64);
        assert_eq!(declared["Namespace"], "podflow");
        assert_eq!(declared["Dimensions"], json!([["Service", "Model"]]));
        assert_eq!(
            declared["Metrics"],
            json!([{"Name": "InputTokens", "Unit": "Count"}])
        );
        assert_eq!(line["InputTokens"], 1200.0);
        assert_eq!(line["Model"], "m1");
        assert_eq!(line["Service"], "bedrock-invoker");
    }

    #[test]
    fn published_prompts_and_revisions_become_counts_tokens_and_cost() {
        let completed: PromptCompleted = serde_json::from_str(include_str!(
            "../../../events-schema/examples/PromptCompleted/valid/01.json"
        ))
        .expect("example");
        let summary: EpisodeSummarized = serde_json::from_str(include_str!(
            "../../../events-schema/examples/EpisodeSummarized/valid/03.json"
        ))
        .expect("example");
        let cost = summary.cost.clone().expect("the example has a cost");
        let events = [
            EventEnvelope::wrap(&completed),
            EventEnvelope::wrap(&summary),
        ];
        let lines: Vec<Value> = lines_for("svc", &events, 1)
            .iter()
            .map(|l| serde_json::from_str(l).expect("JSON"))
            .collect();
        assert_eq!(lines.len(), 3, "{lines:?}");
        assert_eq!(lines[0]["PromptsCompleted"], 1.0);
        assert_eq!(lines[1]["Model"], completed.model.as_str());
        assert_eq!(lines[1]["InputTokens"], f64::from(completed.input_tokens));
        assert_eq!(lines[2]["RevisionsPublished"], 1.0);
        assert_eq!(lines[2]["EstimatedCostUSD"], cost.total_usd);
        assert_eq!(lines[2]["AudioMinutes"], cost.audio_minutes);
        assert_eq!(
            lines[2].get("EpisodesComplete").is_some(),
            summary.status == SummaryStatus::Complete
        );
        // Events without metrics produce none.
        assert!(lines_for("svc", &[], 1).is_empty());
    }
}

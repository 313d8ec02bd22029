//! Reading `infra/template.yaml`: its functions, the EventBridge rules that feed them (with
//! CloudFormation `Ref`s resolved), and their IAM statements. The template uses long-form
//! intrinsics (`Ref:`, `Fn::Sub:`), so it is plain YAML to any parser.

use std::{collections::BTreeMap, path::Path};

use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not valid YAML: {source}")]
    Yaml {
        path: String,
        #[source]
        source: serde_norway::Error,
    },
    #[error("{function}: {why}")]
    Function { function: String, why: String },
}

/// Where a rule listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bus {
    /// The account's default bus: AWS service events (S3, MediaConvert, Transcribe).
    Default,
    /// podflow's own bus.
    Podflow,
}

/// One `EventBridgeRule` event source of a function.
#[derive(Debug, Clone)]
pub struct FunctionRule {
    pub function: String,
    /// The function's `PODFLOW_SERVICE`: its name in `podflow_events::routing`.
    pub service: String,
    pub event: String,
    pub bus: Bus,
    /// The pattern with every `Ref` replaced by its test value.
    pub pattern: Value,
}

/// The template as JSON.
pub fn load(path: &Path) -> Result<Value, TemplateError> {
    let text = std::fs::read_to_string(path).map_err(|source| TemplateError::Read {
        path: path.display().to_string(),
        source,
    })?;
    serde_norway::from_str(&text).map_err(|source| TemplateError::Yaml {
        path: path.display().to_string(),
        source,
    })
}

/// Resources of one type, by logical id.
pub fn resources<'a>(template: &'a Value, kind: &str) -> Vec<(&'a str, &'a Value)> {
    template["Resources"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(_, r)| r["Type"] == kind)
        .map(|(id, r)| (id.as_str(), r))
        .collect()
}

/// Replaces `{"Ref": name}` with `refs[name]`; an unknown name is left as it is, so a
/// pattern that depends on it matches nothing rather than everything.
pub fn resolve_refs(value: &Value, refs: &BTreeMap<&str, &str>) -> Value {
    match value {
        Value::Object(map) if map.len() == 1 && map.contains_key("Ref") => map["Ref"]
            .as_str()
            .and_then(|name| refs.get(name))
            .map_or_else(|| value.clone(), |v| Value::String((*v).to_owned())),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), resolve_refs(v, refs)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(|v| resolve_refs(v, refs)).collect()),
        other => other.clone(),
    }
}

/// Every EventBridge rule of every function.
pub fn function_rules(
    template: &Value,
    refs: &BTreeMap<&str, &str>,
) -> Result<Vec<FunctionRule>, TemplateError> {
    let mut rules = Vec::new();
    for (id, function) in resources(template, "AWS::Serverless::Function") {
        let props = &function["Properties"];
        let service = props["Environment"]["Variables"]["PODFLOW_SERVICE"]
            .as_str()
            .ok_or_else(|| TemplateError::Function {
                function: id.into(),
                why: "has no Environment.Variables.PODFLOW_SERVICE".into(),
            })?;
        for (name, event) in props["Events"].as_object().into_iter().flatten() {
            if event["Type"] != "EventBridgeRule" {
                continue;
            }
            let rule = &event["Properties"];
            let bus = match &rule["EventBusName"] {
                Value::Null => Bus::Default,
                v if v == &serde_json::json!({"Ref": "PodflowBus"}) => Bus::Podflow,
                other => {
                    return Err(TemplateError::Function {
                        function: id.into(),
                        why: format!("rule {name} listens on an unexpected bus {other}"),
                    });
                }
            };
            rules.push(FunctionRule {
                function: id.into(),
                service: service.into(),
                event: name.clone(),
                bus,
                pattern: resolve_refs(&rule["Pattern"], refs),
            });
        }
    }
    Ok(rules)
}

/// Every IAM statement a function or role grants: (owner, statement).
pub fn iam_statements(template: &Value) -> Vec<(String, &Value)> {
    let mut out = Vec::new();
    for (id, function) in resources(template, "AWS::Serverless::Function") {
        for policy in function["Properties"]["Policies"]
            .as_array()
            .into_iter()
            .flatten()
        {
            for s in policy["Statement"].as_array().into_iter().flatten() {
                out.push((id.to_owned(), s));
            }
        }
    }
    for (id, role) in resources(template, "AWS::IAM::Role") {
        for policy in role["Properties"]["Policies"]
            .as_array()
            .into_iter()
            .flatten()
        {
            for s in policy["PolicyDocument"]["Statement"]
                .as_array()
                .into_iter()
                .flatten()
            {
                out.push((id.to_owned(), s));
            }
        }
    }
    out
}

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
    #[error("{0} has no value here: give one to resolve_intrinsics")]
    Unresolved(String),
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

/// Resolves `Ref`, `Fn::GetAtt`, `Fn::Sub` and `Fn::If` with `values`: a `Ref` by its name,
/// a `Fn::GetAtt [A, B]` and a `${A.B}` by `"A.B"`, pseudo parameters (`AWS::Region`) by
/// their names, a condition by `"Condition:Name"` (`"true"` or `"false"`). A branch that is
/// `AWS::NoValue` leaves its list item or key out, as CloudFormation does. Anything else
/// without a value is an error naming it, so a statement that depends on something the
/// caller did not provide is never silently wrong.
pub fn resolve_intrinsics(
    value: &Value,
    values: &BTreeMap<String, String>,
) -> Result<Value, TemplateError> {
    Ok(resolve_or_none(value, values)?.unwrap_or(Value::Null))
}

/// [`resolve_intrinsics`], with `None` for `AWS::NoValue`.
fn resolve_or_none(
    value: &Value,
    values: &BTreeMap<String, String>,
) -> Result<Option<Value>, TemplateError> {
    let lookup = |name: &str| {
        values
            .get(name)
            .cloned()
            .ok_or_else(|| TemplateError::Unresolved(name.to_owned()))
    };
    let resolved = match value {
        Value::Object(map)
            if map.len() == 1 && map.get("Ref").is_some_and(|r| r == "AWS::NoValue") =>
        {
            return Ok(None);
        }
        Value::Object(map) if map.len() == 1 && map.contains_key("Fn::If") => {
            let branches = map["Fn::If"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default();
            let [condition, then, otherwise] = branches else {
                return Err(TemplateError::Unresolved(format!(
                    "Fn::If {}",
                    map["Fn::If"]
                )));
            };
            let name = format!("Condition:{}", condition.as_str().unwrap_or_default());
            let chosen = match lookup(&name)?.as_str() {
                "true" => then,
                "false" => otherwise,
                other => {
                    return Err(TemplateError::Unresolved(format!("{name} = {other:?}")));
                }
            };
            return resolve_or_none(chosen, values);
        }
        Value::Object(map) if map.len() == 1 && map.contains_key("Ref") => Ok(Value::String(
            lookup(map["Ref"].as_str().unwrap_or_default())?,
        )),
        Value::Object(map) if map.len() == 1 && map.contains_key("Fn::GetAtt") => {
            let parts: Vec<&str> = map["Fn::GetAtt"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            Ok(Value::String(lookup(&parts.join("."))?))
        }
        Value::Object(map) if map.len() == 1 && map.contains_key("Fn::Sub") => {
            let Some(text) = map["Fn::Sub"].as_str() else {
                return Err(TemplateError::Unresolved(format!(
                    "Fn::Sub with variables {}",
                    map["Fn::Sub"]
                )));
            };
            let mut out = String::new();
            let mut rest = text;
            while let Some(start) = rest.find("${") {
                out.push_str(&rest[..start]);
                let after = &rest[start + 2..];
                let end = after
                    .find('}')
                    .ok_or_else(|| TemplateError::Unresolved(text.to_owned()))?;
                out.push_str(&lookup(&after[..end])?);
                rest = &after[end + 1..];
            }
            out.push_str(rest);
            Ok(Value::String(out))
        }
        Value::Object(map) => {
            let mut out = serde_json::Map::new();
            for (k, v) in map {
                if let Some(v) = resolve_or_none(v, values)? {
                    out.insert(k.clone(), v);
                }
            }
            Ok(Value::Object(out))
        }
        Value::Array(items) => {
            let mut out = Vec::new();
            for v in items {
                out.extend(resolve_or_none(v, values)?);
            }
            Ok(Value::Array(out))
        }
        other => Ok(other.clone()),
    };
    resolved.map(Some)
}

/// A function's IAM policy as a plain policy document (intrinsics resolved with `values`).
pub fn function_policy(
    template: &Value,
    function: &str,
    values: &BTreeMap<String, String>,
) -> Result<Value, TemplateError> {
    let policies = &template["Resources"][function]["Properties"]["Policies"];
    let mut statements = Vec::new();
    for policy in policies.as_array().into_iter().flatten() {
        for s in policy["Statement"].as_array().into_iter().flatten() {
            statements.push(resolve_intrinsics(s, values)?);
        }
    }
    if statements.is_empty() {
        return Err(TemplateError::Function {
            function: function.to_owned(),
            why: "has no policy statements".into(),
        });
    }
    Ok(serde_json::json!({"Version": "2012-10-17", "Statement": statements}))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn intrinsics_resolve_or_name_what_is_missing() {
        let values: BTreeMap<String, String> = [
            ("EpisodeBucket.Arn", "arn:aws:s3:::b"),
            ("AWS::Region", "us-east-1"),
            ("PromptQueue.Arn", "arn:aws:sqs:us-east-1:1:q"),
            ("ModelArns", "arn:m"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let resolved = resolve_intrinsics(
            &json!({
                "A": {"Fn::Sub": "${EpisodeBucket.Arn}/episodes/* in ${AWS::Region}"},
                "B": [{"Fn::GetAtt": ["PromptQueue", "Arn"]}, {"Ref": "ModelArns"}],
                "C": "plain"
            }),
            &values,
        )
        .expect("resolved");
        assert_eq!(
            resolved,
            json!({
                "A": "arn:aws:s3:::b/episodes/* in us-east-1",
                "B": ["arn:aws:sqs:us-east-1:1:q", "arn:m"],
                "C": "plain"
            })
        );
        let err = resolve_intrinsics(&json!({"Fn::GetAtt": ["EventDlq", "Arn"]}), &values)
            .expect_err("not given");
        assert!(err.to_string().contains("EventDlq.Arn"), "{err}");
    }

    #[test]
    fn a_condition_chooses_its_branch_and_no_value_leaves_the_item_out() {
        let with = |on: &str| -> BTreeMap<String, String> {
            [("Condition:HasToken", on), ("Name", "/p/token")]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect()
        };
        let statement = json!({"Resource": [
            "arn:one",
            {"Fn::If": ["HasToken", {"Fn::Sub": "arn:param${Name}"}, {"Ref": "AWS::NoValue"}]}
        ]});
        assert_eq!(
            resolve_intrinsics(&statement, &with("true")).expect("resolved"),
            json!({"Resource": ["arn:one", "arn:param/p/token"]})
        );
        assert_eq!(
            resolve_intrinsics(&statement, &with("false")).expect("resolved"),
            json!({"Resource": ["arn:one"]})
        );
        let unknown = resolve_intrinsics(&statement, &BTreeMap::new()).expect_err("no condition");
        assert!(
            unknown.to_string().contains("Condition:HasToken"),
            "{unknown}"
        );
    }
}

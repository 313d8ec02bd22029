//! The EventBridge Schema Registry form of an event: OpenAPI 3.0 with the `AWSEvent`
//! envelope and the `x-amazon-events-*` marks the registry's code bindings read, made from
//! the same generated JSON Schema as everything else (so the registry cannot drift from the
//! types; a test compares it with `infra/template.yaml`).
//!
//! OpenAPI 3.0's schema objects are an older dialect than the JSON Schema 2020-12 schemars
//! writes; the differences podflow's types produce are translated here by hand (no crate
//! does this conversion): `$defs` become `components/schemas`, `type: [T, "null"]` and
//! `anyOf: [X, {type: null}]` become `nullable`, `const` becomes a one-value `enum`.

use serde_json::{Map, Value, json};

use crate::{PodflowEvent, schema::all_schemas};

/// The OpenAPI 3.0 registry document for event type `E`.
pub fn openapi<E: PodflowEvent>() -> Value {
    let Some((_, schema)) = all_schemas()
        .into_iter()
        .find(|(detail_type, _)| *detail_type == E::DETAIL_TYPE)
    else {
        return Value::Null;
    };
    let mut schemas = Map::new();
    if let Some(defs) = schema.get("$defs").and_then(Value::as_object) {
        for (name, def) in defs {
            schemas.insert(name.clone(), to_openapi(def));
        }
    }
    let mut detail = schema.clone();
    if let Some(map) = detail.as_object_mut() {
        map.remove("$defs");
        map.remove("$schema");
    }
    schemas.insert(E::DETAIL_TYPE.to_owned(), to_openapi(&detail));
    schemas.insert(
        "AWSEvent".to_owned(),
        json!({
            "type": "object",
            "required": ["detail-type", "resources", "detail", "id", "source", "time",
                         "region", "version", "account"],
            "x-amazon-events-detail-type": E::DETAIL_TYPE,
            "x-amazon-events-source": E::SOURCE,
            "properties": {
                "detail": {"$ref": format!("#/components/schemas/{}", E::DETAIL_TYPE)},
                "account": {"type": "string"},
                "detail-type": {"type": "string"},
                "id": {"type": "string"},
                "region": {"type": "string"},
                "resources": {"type": "array", "items": {"type": "string"}},
                "source": {"type": "string"},
                "time": {"type": "string", "format": "date-time"},
                "version": {"type": "string"}
            }
        }),
    );
    json!({
        "openapi": "3.0.0",
        "info": {"version": "1.0.0", "title": E::DETAIL_TYPE},
        "paths": {},
        "components": {"schemas": schemas}
    })
}

fn is_null_type(v: &Value) -> bool {
    v.get("type") == Some(&json!("null")) && v.as_object().is_some_and(|m| m.len() == 1)
}

/// One JSON Schema 2020-12 object as an OpenAPI 3.0 schema object.
fn to_openapi(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut out = Map::new();
            for (key, v) in map {
                match key.as_str() {
                    "$ref" => {
                        let target = v.as_str().unwrap_or_default();
                        out.insert(
                            key.clone(),
                            json!(target.replace("#/$defs/", "#/components/schemas/")),
                        );
                    }
                    "type" => match v {
                        Value::Array(types) => {
                            let named: Vec<&Value> =
                                types.iter().filter(|t| *t != "null").collect();
                            if named.len() < types.len() {
                                out.insert("nullable".into(), json!(true));
                            }
                            if let [only] = named.as_slice() {
                                out.insert("type".into(), (*only).clone());
                            }
                        }
                        other => {
                            out.insert("type".into(), other.clone());
                        }
                    },
                    "const" => {
                        out.insert("enum".into(), json!([v]));
                    }
                    "anyOf" | "oneOf" => {
                        let options: Vec<&Value> = v
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter(|o| !is_null_type(o))
                            .collect();
                        let nullable = options.len() < v.as_array().map_or(0, Vec::len);
                        if nullable {
                            out.insert("nullable".into(), json!(true));
                        }
                        match options.as_slice() {
                            // A single option: OpenAPI 3.0 ignores siblings of `$ref`, so
                            // it is wrapped in `allOf` to keep `nullable`.
                            [only] => {
                                out.insert("allOf".into(), json!([to_openapi(only)]));
                            }
                            _ => {
                                out.insert(
                                    key.clone(),
                                    Value::Array(options.into_iter().map(to_openapi).collect()),
                                );
                            }
                        }
                    }
                    // Property names are names, not keywords: only their schemas change.
                    "properties" | "$defs" => {
                        let schemas = v
                            .as_object()
                            .into_iter()
                            .flatten()
                            .map(|(name, schema)| (name.clone(), to_openapi(schema)))
                            .collect();
                        out.insert(key.clone(), Value::Object(schemas));
                    }
                    _ => {
                        out.insert(key.clone(), to_openapi(v));
                    }
                }
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(to_openapi).collect()),
        other => other.clone(),
    }
}

/// `template` (infra/template.yaml's text) with the `Content: |-` block of the resource
/// `resource` replaced by `document`, pretty-printed; `None` when the resource has no such
/// block. Lines of the block are those after `Content: |-` indented deeper than it.
pub fn with_content(template: &str, resource: &str, document: &Value) -> Option<String> {
    let lines: Vec<&str> = template.lines().collect();
    let start = lines
        .iter()
        .position(|l| l.trim_end() == format!("  {resource}:"))?;
    // Within the resource: up to the next line indented as a resource or less.
    let resource_end = start
        + 1
        + lines[start + 1..]
            .iter()
            .position(|l| !l.trim().is_empty() && l.len() - l.trim_start().len() <= 2)
            .unwrap_or(lines.len() - start - 1);
    let content = start
        + lines[start..resource_end]
            .iter()
            .position(|l| l.trim() == "Content: |-")?;
    let indent = lines[content].len() - lines[content].trim_start().len() + 2;
    let end = content
        + 1
        + lines[content + 1..]
            .iter()
            .take_while(|l| l.trim().is_empty() || l.len() - l.trim_start().len() >= indent)
            .count();
    let pretty = serde_json::to_string_pretty(document).ok()?;
    let mut out: Vec<String> = lines[..=content].iter().map(|l| (*l).to_owned()).collect();
    out.extend(pretty.lines().map(|l| format!("{}{l}", " ".repeat(indent))));
    out.extend(lines[end..].iter().map(|l| (*l).to_owned()));
    let mut text = out.join("\n");
    text.push('\n');
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::EpisodeSummarized;

    #[test]
    fn the_registry_form_speaks_openapi_3_0_only() {
        let doc = openapi::<EpisodeSummarized>();
        let text = doc.to_string();
        assert!(
            !text.contains("$defs") && !text.contains("\"null\""),
            "{text}"
        );
        assert!(!text.contains("\"const\""), "{text}");
        let schemas = &doc["components"]["schemas"];
        assert_eq!(
            schemas["AWSEvent"]["x-amazon-events-source"],
            "podflow.publisher"
        );
        assert_eq!(
            schemas["AWSEvent"]["properties"]["detail"]["$ref"],
            "#/components/schemas/EpisodeSummarized"
        );
        let audio = &schemas["EpisodeSummarized"]["properties"]["audio"];
        assert_eq!(audio["nullable"], true);
        assert_eq!(audio["allOf"][0]["$ref"], "#/components/schemas/BlobRef");
        // Every reference resolves.
        for reference in text.split("\"$ref\":\"").skip(1) {
            let name = reference
                .split('"')
                .next()
                .and_then(|r| r.strip_prefix("#/components/schemas/"))
                .expect("a component reference");
            assert!(schemas.get(name).is_some(), "{name} is missing");
        }
    }

    #[test]
    fn property_names_are_kept_and_blocks_are_found_only_in_their_resource() {
        let schema =
            json!({"properties": {"type": {"type": ["string", "null"]}, "const": {"const": 1}}});
        assert_eq!(
            to_openapi(&schema),
            json!({"properties": {
                "type": {"type": "string", "nullable": true},
                "const": {"enum": [1]}
            }})
        );
        let template = "Resources:\n  First:\n    Type: X\n  Second:\n    Properties:\n      Content: |-\n        {}\n";
        assert_eq!(with_content(template, "First", &json!({"a": 1})), None);
        let rewritten = with_content(template, "Second", &json!({"a": 1})).expect("block");
        assert!(
            rewritten.contains("      Content: |-\n        {\n          \"a\": 1\n        }\n"),
            "{rewritten}"
        );
    }
}

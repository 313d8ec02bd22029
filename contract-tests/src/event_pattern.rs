//! EventBridge event-pattern matching, for checking the template's rules against real
//! events offline. Written by hand because no maintained crate implements the pattern
//! language, and moto's `TestEventPattern` answers nothing.
//! Only the operators podflow's template may use are implemented; any other operator is an
//! error, so a rule using one fails the test instead of being judged wrongly.

use serde_json::{Map, Value};

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PatternError {
    #[error("unsupported event-pattern operator {0:?}: add it to the matcher or avoid it")]
    Unsupported(String),
    #[error("malformed event pattern at {path}: {why}")]
    Malformed { path: String, why: String },
}

/// Whether `event` matches `pattern` (EventBridge semantics: every field of the pattern
/// must match; a list matches when any of its values does; arrays in the event match when
/// any element does).
pub fn matches(pattern: &Value, event: &Value) -> Result<bool, PatternError> {
    match pattern {
        Value::Object(fields) => object_matches(fields, Some(event), ""),
        _ => Err(PatternError::Malformed {
            path: "/".into(),
            why: "a pattern is a JSON object".into(),
        }),
    }
}

fn object_matches(
    fields: &Map<String, Value>,
    event: Option<&Value>,
    path: &str,
) -> Result<bool, PatternError> {
    for (key, expected) in fields {
        if key.starts_with('$') {
            return Err(PatternError::Unsupported(key.clone()));
        }
        let here = format!("{path}/{key}");
        let actual = event.and_then(|e| e.get(key));
        let ok = match expected {
            Value::Object(inner) => match actual {
                Some(v @ Value::Object(_)) => object_matches(inner, Some(v), &here)?,
                _ => false,
            },
            Value::Array(alternatives) => field_matches(alternatives, actual, &here)?,
            _ => {
                return Err(PatternError::Malformed {
                    path: here,
                    why: "leaf values must be lists".into(),
                });
            }
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

fn field_matches(
    alternatives: &[Value],
    actual: Option<&Value>,
    path: &str,
) -> Result<bool, PatternError> {
    let values: Vec<&Value> = match actual {
        Some(Value::Array(items)) => items.iter().collect(),
        Some(v) => vec![v],
        None => Vec::new(),
    };
    for alternative in alternatives {
        let hit = match alternative {
            Value::Object(op) => operator_matches(op, actual, &values, path)?,
            scalar => values.contains(&scalar),
        };
        if hit {
            return Ok(true);
        }
    }
    Ok(false)
}

fn operator_matches(
    op: &Map<String, Value>,
    actual: Option<&Value>,
    values: &[&Value],
    path: &str,
) -> Result<bool, PatternError> {
    let (name, arg) = match op.iter().next() {
        Some(pair) if op.len() == 1 => pair,
        _ => {
            return Err(PatternError::Malformed {
                path: path.into(),
                why: "an operator object has exactly one key".into(),
            });
        }
    };
    let strings = || values.iter().filter_map(|v| v.as_str());
    let text = |arg: &Value| {
        arg.as_str()
            .map(str::to_owned)
            .ok_or_else(|| PatternError::Malformed {
                path: path.into(),
                why: format!("{name} takes a string"),
            })
    };
    Ok(match name.as_str() {
        "prefix" => {
            let p = text(arg)?;
            strings().any(|s| s.starts_with(&p))
        }
        "suffix" => {
            let p = text(arg)?;
            strings().any(|s| s.ends_with(&p))
        }
        "equals-ignore-case" => {
            let p = text(arg)?;
            strings().any(|s| s.eq_ignore_ascii_case(&p))
        }
        "exists" => {
            let wanted = arg.as_bool().ok_or_else(|| PatternError::Malformed {
                path: path.into(),
                why: "exists takes true or false".into(),
            })?;
            // EventBridge: exists matches leaf values only; an object is not "existing".
            let present = matches!(actual, Some(v) if !v.is_object());
            present == wanted
        }
        "anything-but" => {
            let excluded: Vec<&Value> = match arg {
                Value::Array(list) => list.iter().collect(),
                Value::Object(_) => return Err(PatternError::Unsupported(format!("{name} {arg}"))),
                v => vec![v],
            };
            !values.is_empty() && values.iter().any(|v| !excluded.contains(v))
        }
        other => return Err(PatternError::Unsupported(other.to_owned())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event() -> Value {
        json!({
            "source": "aws.s3",
            "detail-type": "Object Created",
            "detail": {"bucket": {"name": "shows"}, "object": {"key": "incoming/a b.m4a", "size": 10},
                       "tags": ["x", "y"]}
        })
    }

    #[test]
    fn exact_lists_and_nesting() {
        let e = event();
        assert_eq!(
            matches(&json!({"source": ["aws.s3", "aws.ec2"]}), &e),
            Ok(true)
        );
        assert_eq!(matches(&json!({"source": ["aws.ec2"]}), &e), Ok(false));
        assert_eq!(
            matches(&json!({"detail": {"bucket": {"name": ["shows"]}}}), &e),
            Ok(true)
        );
        assert_eq!(
            matches(&json!({"detail": {"bucket": {"name": ["other"]}}}), &e),
            Ok(false)
        );
        // A missing field never equals a value.
        assert_eq!(
            matches(&json!({"detail": {"nope": ["shows"]}}), &e),
            Ok(false)
        );
        // Event arrays match when any element does.
        assert_eq!(matches(&json!({"detail": {"tags": ["y"]}}), &e), Ok(true));
        // Numbers compare as numbers.
        assert_eq!(
            matches(&json!({"detail": {"object": {"size": [10]}}}), &e),
            Ok(true)
        );
        assert_eq!(
            matches(&json!({"detail": {"object": {"size": ["10"]}}}), &e),
            Ok(false)
        );
    }

    #[test]
    fn operators() {
        let e = event();
        let key = |op: Value| json!({"detail": {"object": {"key": [op]}}});
        assert_eq!(matches(&key(json!({"prefix": "incoming/"})), &e), Ok(true));
        assert_eq!(matches(&key(json!({"prefix": "episodes/"})), &e), Ok(false));
        assert_eq!(matches(&key(json!({"suffix": ".m4a"})), &e), Ok(true));
        assert_eq!(matches(&key(json!({"anything-but": "x"})), &e), Ok(true));
        assert_eq!(
            matches(&key(json!({"anything-but": ["incoming/a b.m4a"]})), &e),
            Ok(false)
        );
        assert_eq!(matches(&key(json!({"exists": true})), &e), Ok(true));
        assert_eq!(
            matches(&json!({"detail": {"gone": [{"exists": false}]}}), &e),
            Ok(true)
        );
        assert_eq!(
            matches(&json!({"detail": {"gone": [{"exists": true}]}}), &e),
            Ok(false)
        );
        assert_eq!(
            matches(&json!({"source": [{"equals-ignore-case": "AWS.S3"}]}), &e),
            Ok(true)
        );
    }

    #[test]
    fn unknown_operators_are_errors_not_guesses() {
        let e = event();
        assert!(matches!(
            matches(
                &json!({"detail": {"object": {"size": [{"numeric": [">", 1]}]}}}),
                &e
            ),
            Err(PatternError::Unsupported(_))
        ));
        assert!(matches!(
            matches(&json!({"$or": [{"source": ["aws.s3"]}]}), &e),
            Err(PatternError::Unsupported(_))
        ));
        assert!(matches!(
            matches(&json!({"source": "aws.s3"}), &e),
            Err(PatternError::Malformed { .. })
        ));
    }
}

//! Events that never reached their function's handler or failed there, as the event
//! dead-letter queue holds them on AWS, read for an operator. Three kinds of message arrive
//! there: podflow's own dead letters (the event as the body, the reason in a message
//! attribute), Lambda's on-failure records for an asynchronous invocation whose retries
//! were used up (the event inside `requestPayload`, the error in `responsePayload`), and
//! EventBridge's dead letters for events it could not hand to a target (the event as the
//! body, the error in the `ERROR_CODE` / `ERROR_MESSAGE` / `TARGET_ARN` attributes).

use serde_json::Value;

/// A Lambda on-failure record (the invocation record Lambda sends to an asynchronous
/// invocation's on-failure destination).
#[derive(Debug, Clone, PartialEq)]
pub struct LambdaFailure {
    /// The function's name (from `requestContext.functionArn`).
    pub function: String,
    /// `RetriesExhausted` or `EventAgeExceeded`.
    pub condition: String,
    pub attempts: u32,
    /// `responsePayload.errorMessage`, or the kind of error when there is none.
    pub error: String,
    /// The event the function was invoked with.
    pub event: Value,
}

impl LambdaFailure {
    /// Reads an SQS message body; `None` when it is not an invocation record.
    pub fn read(body: &str) -> Option<Self> {
        let record: Value = serde_json::from_str(body).ok()?;
        let context = record.get("requestContext")?;
        let event = record.get("requestPayload")?.clone();
        let arn = context["functionArn"].as_str().unwrap_or_default();
        let function = function_name(arn).unwrap_or(arn).to_owned();
        let error = record["responsePayload"]["errorMessage"]
            .as_str()
            .or_else(|| record["responseContext"]["functionError"].as_str())
            .unwrap_or("no error message")
            .to_owned();
        Some(Self {
            function,
            condition: context["condition"].as_str().unwrap_or_default().to_owned(),
            attempts: context["approximateInvokeCount"]
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .unwrap_or(0),
            error,
            event,
        })
    }

    /// One line for the operator: which function gave up, how often it tried, and why.
    pub fn reason(&self) -> String {
        format!(
            "Lambda gave up on {} after {} attempt(s) ({}): {}",
            self.function, self.attempts, self.condition, self.error
        )
    }
}

/// EventBridge's reason for an event it could not deliver, from its dead letter's message
/// attributes (`attribute` looks one up by name).
pub fn eventbridge_reason(attribute: impl Fn(&str) -> Option<String>) -> Option<String> {
    let code = attribute("ERROR_CODE")?;
    let message = attribute("ERROR_MESSAGE").unwrap_or_default();
    let target = attribute("TARGET_ARN")
        .map(|arn| function_name(&arn).map_or(arn.clone(), str::to_owned))
        .unwrap_or_else(|| "its target".to_owned());
    Some(format!(
        "EventBridge could not deliver it to {target}: {code}: {message}"
    ))
}

/// `my-function` from `arn:aws:lambda:region:account:function:my-function[:qualifier]`.
fn function_name(arn: &str) -> Option<&str> {
    let (_, rest) = arn.split_once(":function:")?;
    Some(rest.split(':').next().unwrap_or(rest))
}

/// The event a dead letter carries: a Lambda on-failure record's `requestPayload`, else the
/// body itself when it is an EventBridge event; `None` for anything else.
pub fn event_of(body: &str) -> Option<Value> {
    if let Some(failure) = LambdaFailure::read(body) {
        return Some(failure.event);
    }
    let event: Value = serde_json::from_str(body).ok()?;
    event.get("detail-type").is_some().then_some(event)
}

/// "EpisodeUploaded weekly-42-3f786850e387" for one of podflow's events, "Object Created
/// incoming/a.m4a" for an S3 upload, else the event's detail-type; `None` for a body that
/// is not an EventBridge event.
pub fn event_summary(event: &Value) -> Option<String> {
    let detail_type = event.get("detail-type")?.as_str()?;
    let detail = &event["detail"];
    let what = detail["episode_id"]
        .as_str()
        .or_else(|| detail["object"]["key"].as_str())
        .or_else(|| detail["TranscriptionJobName"].as_str())
        .or_else(|| detail["jobId"].as_str());
    Some(match what {
        Some(what) => format!("{detail_type} {what}"),
        None => detail_type.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The layout of Lambda's documented invocation record, around one of podflow's events.
    fn record() -> String {
        json!({
            "version": "1.0",
            "timestamp": "2026-12-04T09:30:00.000Z",
            "requestContext": {
                "requestId": "e4b46cbf-b738-4f0b-8880-a18cdf61200e",
                "functionArn": "arn:aws:lambda:us-east-1:123456789012:function:podflow-TranscriberFunction-AbC123:$LATEST",
                "condition": "RetriesExhausted",
                "approximateInvokeCount": 3
            },
            "requestPayload": {
                "version": "0", "id": "ev-1", "detail-type": "EpisodeTranscoded",
                "source": "podflow.transcode-watcher", "account": "123456789012",
                "time": "2026-12-04T09:00:00Z", "region": "us-east-1", "resources": [],
                "detail": {"schema_version": "1.0", "episode_id": "weekly-42-3f786850e387"}
            },
            "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
            "responsePayload": {"errorMessage": "RequestId: e4b4 Error: Runtime exited with error: signal: killed"}
        })
        .to_string()
    }

    #[test]
    fn a_lambda_record_names_the_function_the_attempts_the_error_and_the_event() {
        let failure = LambdaFailure::read(&record()).expect("an invocation record");
        assert_eq!(failure.function, "podflow-TranscriberFunction-AbC123");
        assert_eq!(failure.attempts, 3);
        assert_eq!(
            failure.reason(),
            "Lambda gave up on podflow-TranscriberFunction-AbC123 after 3 attempt(s) \
             (RetriesExhausted): RequestId: e4b4 Error: Runtime exited with error: signal: killed"
        );
        assert_eq!(
            event_summary(&failure.event).as_deref(),
            Some("EpisodeTranscoded weekly-42-3f786850e387")
        );
    }

    #[test]
    fn other_bodies_are_not_lambda_records() {
        for body in ["", "not json", "{}", r#"{"detail-type":"EpisodeUploaded"}"#] {
            assert_eq!(LambdaFailure::read(body), None, "{body}");
        }
    }

    #[test]
    fn eventbridge_dead_letters_say_which_target_refused_and_why() {
        let attributes = |name: &str| {
            match name {
                "ERROR_CODE" => Some("SDK_CLIENT_ERROR"),
                "ERROR_MESSAGE" => Some("Unable to invoke Lambda function: AccessDeniedException"),
                "TARGET_ARN" => {
                    Some("arn:aws:lambda:us-east-1:123456789012:function:podflow-Ingest")
                }
                _ => None,
            }
            .map(str::to_owned)
        };
        assert_eq!(
            eventbridge_reason(attributes).as_deref(),
            Some(
                "EventBridge could not deliver it to podflow-Ingest: SDK_CLIENT_ERROR: \
                 Unable to invoke Lambda function: AccessDeniedException"
            )
        );
        assert_eq!(eventbridge_reason(|_| None), None);
    }

    #[test]
    fn uploads_are_summarised_by_their_key() {
        let upload = json!({"detail-type": "Object Created", "detail": {"object": {"key": "incoming/a b.m4a"}}});
        assert_eq!(
            event_summary(&upload).as_deref(),
            Some("Object Created incoming/a b.m4a")
        );
        assert_eq!(event_summary(&json!({"Records": []})), None);
    }
}

//! `infra/template.yaml` against the rest of the repository: its EventBridge rules route
//! exactly what `podflow_events::routing` declares (checked on the schema examples and on
//! real AWS events from crates/podflow-fakes/fixtures/aws), and the structure cfn-lint does not check
//! (dead letters, alarms, log retention, least-privilege IAM) is there.

use std::{collections::BTreeMap, path::PathBuf};

use contract_tests::{
    event_pattern::matches,
    template::{self, Bus, FunctionRule},
};
use podflow_events::{
    EpisodeApproved, EpisodeProposed, EpisodeRejected, EpisodeSummarized, EpisodeTranscoded,
    EpisodeTranscribed, EpisodeUploaded, PodflowEvent, PromptCompleted, PromptFailed, PromptJob,
    TranscodeFailed, TranscriptionFailed,
    routing::ROUTES,
    schema::{examples_dir, json_files},
};
use podflow_fakes::fixtures::aws_text;
use serde_json::{Value, json};

const BUCKET: &str = "podflow-test-bucket";
const STACK: &str = "podflow-test";

fn template() -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../infra/template.yaml");
    template::load(&path).unwrap_or_else(|e| panic!("{e}"))
}

fn rules(t: &Value) -> Vec<FunctionRule> {
    let refs = BTreeMap::from([("EpisodeBucket", BUCKET), ("AWS::StackName", STACK)]);
    template::function_rules(t, &refs).unwrap_or_else(|e| panic!("{e}"))
}

fn fixture(relative: &str) -> Value {
    // The one doc-verbatim event used here writes its status as `"COMPLETED" (or "FAILED")`
    // (see PROVENANCE.md); everything else is strict JSON.
    let text = aws_text(relative).replace(r#""COMPLETED" (or "FAILED")"#, r#""COMPLETED""#);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{relative}: {e}"))
}

/// (detail-type, source) of every podflow event.
fn podflow_events() -> Vec<(&'static str, &'static str)> {
    fn pair<E: PodflowEvent>() -> (&'static str, &'static str) {
        (E::DETAIL_TYPE, E::SOURCE)
    }
    vec![
        pair::<EpisodeUploaded>(),
        pair::<EpisodeTranscoded>(),
        pair::<TranscodeFailed>(),
        pair::<EpisodeTranscribed>(),
        pair::<TranscriptionFailed>(),
        pair::<PromptJob>(),
        pair::<PromptCompleted>(),
        pair::<PromptFailed>(),
        pair::<EpisodeSummarized>(),
        pair::<EpisodeProposed>(),
        pair::<EpisodeApproved>(),
        pair::<EpisodeRejected>(),
    ]
}

/// An example detail in the envelope EventBridge delivers.
fn envelope(detail_type: &str, source: &str, detail: Value) -> Value {
    json!({
        "version": "0",
        "id": "0d7b2b3c-1f2a-4c1e-9a3b-4b7e9f0a1c2d",
        "detail-type": detail_type,
        "source": source,
        "account": "123456789012",
        "time": "2026-11-22T10:00:00Z",
        "region": "us-east-1",
        "resources": [],
        "detail": detail
    })
}

/// The services whose podflow-bus rules match `event`.
fn routed_to(rules: &[FunctionRule], event: &Value) -> Vec<String> {
    let mut services: Vec<String> = rules
        .iter()
        .filter(|r| r.bus == Bus::Podflow)
        .filter(|r| matches(&r.pattern, event).unwrap_or_else(|e| panic!("{}: {e}", r.function)))
        .map(|r| r.service.clone())
        .collect();
    services.sort();
    services.dedup();
    services
}

#[test]
fn podflow_bus_rules_route_exactly_what_the_routing_table_declares() {
    let t = template();
    let rules = rules(&t);
    let mut checked = 0;
    for (detail_type, source) in podflow_events() {
        let mut expected: Vec<String> = ROUTES
            .iter()
            .filter(|r| r.detail_types.contains(&detail_type))
            .map(|r| r.service.to_owned())
            .collect();
        expected.sort();
        let examples = json_files(&examples_dir(detail_type, true));
        assert!(!examples.is_empty(), "{detail_type} has no valid examples");
        for file in examples {
            let detail: Value =
                serde_json::from_str(&std::fs::read_to_string(&file).expect("read"))
                    .expect("example is JSON");
            let event = envelope(detail_type, source, detail.clone());
            assert_eq!(
                routed_to(&rules, &event),
                expected,
                "{detail_type} ({}) is routed differently in infra/template.yaml than in events-schema/src/routing.rs",
                file.display()
            );
            // A new major is a new detail-type: no v1 rule may take it.
            let v2 = envelope(&format!("{detail_type}.v2"), source, detail.clone());
            assert!(
                routed_to(&rules, &v2).is_empty(),
                "{detail_type}.v2 was routed"
            );
            // Another producer claiming the type is not trusted.
            let spoofed = envelope(detail_type, "someone.else", detail);
            assert!(
                routed_to(&rules, &spoofed).is_empty(),
                "{detail_type} from another source was routed"
            );
            checked += 1;
        }
    }
    assert!(checked >= 9, "only {checked} examples checked");
    // Every consumer in the routing table has a function.
    for route in ROUTES {
        assert!(
            rules.iter().any(|r| r.service == route.service),
            "routing names {} but no function in the template has PODFLOW_SERVICE={0}",
            route.service
        );
    }
}

/// The rules on the default bus: (service, event) pairs that match.
fn aws_routed(rules: &[FunctionRule], event: &Value) -> Vec<(String, String)> {
    rules
        .iter()
        .filter(|r| r.bus == Bus::Default)
        .filter(|r| matches(&r.pattern, event).unwrap_or_else(|e| panic!("{}: {e}", r.function)))
        .map(|r| (r.service.clone(), r.event.clone()))
        .collect()
}

#[test]
fn aws_service_rules_take_the_recorded_events_they_should_and_no_others() {
    let t = template();
    let rules = rules(&t);
    let to = |service: &str, event: &str| vec![(service.to_owned(), event.to_owned())];

    // S3 "Object Created" (EventBridge notifications), re-pointed at our bucket.
    let mut created = fixture(
        "s3-eventbridge/powertools-python_s3EventBridgeNotificationObjectCreatedEvent.json",
    );
    created["detail"]["bucket"]["name"] = json!(BUCKET);
    created["detail"]["object"]["key"] = json!("incoming/weekly+42%281%29.m4a");
    assert_eq!(aws_routed(&rules, &created), to("ingest", "Upload"));
    let mut outputs = created.clone();
    outputs["detail"]["object"]["key"] = json!("episodes/weekly-42/audio.mp3");
    assert!(
        aws_routed(&rules, &outputs).is_empty(),
        "podflow's own outputs must not re-trigger ingest"
    );
    let mut elsewhere = created.clone();
    elsewhere["detail"]["bucket"]["name"] = json!("someone-elses-bucket");
    assert!(aws_routed(&rules, &elsewhere).is_empty());
    for other in [
        "s3-eventbridge/powertools-python_s3EventBridgeNotificationObjectDeletedEvent.json",
        "s3-eventbridge/powertools-python_s3EventBridgeNotificationObjectExpiredEvent.json",
        "s3-eventbridge/powertools-python_s3EventBridgeNotificationObjectRestoreCompletedEvent.json",
    ] {
        let mut event = fixture(other);
        event["detail"]["bucket"]["name"] = json!(BUCKET);
        event["detail"]["object"]["key"] = json!("incoming/weekly-42.m4a");
        assert!(aws_routed(&rules, &event).is_empty(), "{other} was routed");
    }

    // MediaConvert job state changes: final states of this stack's jobs only.
    for (file, is_final) in [
        (
            "mediaconvert/awsdocs-mediaconvert_ev_status_error.ERROR.json",
            true,
        ),
        (
            "mediaconvert/awsdocs-mediaconvert_ev_status_canceled.CANCELED.json",
            true,
        ),
        (
            "mediaconvert/awsdocs-mediaconvert_ev_status_progressing.PROGRESSING.json",
            false,
        ),
        (
            "mediaconvert/awsdocs-mediaconvert_ev_status_status_update.STATUS_UPDATE.json",
            false,
        ),
    ] {
        let mut event = fixture(file);
        assert!(
            aws_routed(&rules, &event).is_empty(),
            "{file}: a job without podflow's metadata was routed"
        );
        event["detail"]["userMetadata"] =
            json!({"podflow_stack": STACK, "episode_id": "weekly-42-3f786850e387"});
        let expected = if is_final {
            to("transcode-watcher", "MediaConvertState")
        } else {
            vec![]
        };
        assert_eq!(aws_routed(&rules, &event), expected, "{file}");
    }

    // Transcribe job state changes: podflow's jobs only (their names start with podflow-).
    let mut done = fixture(
        "transcribe/awsdocs-transcribe_monitoring-events_TranscribeJobStateChange.doc-verbatim.jsonc",
    );
    assert!(
        aws_routed(&rules, &done).is_empty(),
        "someone else's transcription job was routed"
    );
    done["detail"]["TranscriptionJobName"] = json!("podflow-3f786850e387550f");
    assert_eq!(
        aws_routed(&rules, &done),
        to("transcriber", "TranscribeState")
    );
    done["detail"]["TranscriptionJobStatus"] = json!("FAILED");
    assert_eq!(
        aws_routed(&rules, &done),
        to("transcriber", "TranscribeState")
    );
    done["detail"]["TranscriptionJobStatus"] = json!("IN_PROGRESS");
    assert!(aws_routed(&rules, &done).is_empty());
}

#[test]
fn every_function_has_dead_letters_retries_logs_and_an_errors_alarm() {
    let t = template();
    let functions = template::resources(&t, "AWS::Serverless::Function");
    assert_eq!(
        functions.len(),
        9,
        "six services, the publisher four times (fan-in, notify, its link function and Slack's buttons)"
    );
    let log_groups = template::resources(&t, "AWS::Logs::LogGroup");
    let alarms = template::resources(&t, "AWS::CloudWatch::Alarm");
    for (id, function) in &functions {
        let logged = log_groups.iter().any(|(_, g)| {
            g["Properties"]["LogGroupName"]["Fn::Sub"] == json!(format!("/aws/lambda/${{{id}}}"))
                && g["Properties"]["RetentionInDays"].is_object()
        });
        assert!(logged, "{id} has no log group with a retention");
        let alarmed = alarms.iter().any(|(_, a)| {
            a["Properties"]["MetricName"] == "Errors"
                && a["Properties"]["Dimensions"][0]["Value"] == json!({"Ref": id})
                && a["Properties"]["AlarmActions"][0] == json!({"Ref": "AlarmTopic"})
        });
        assert!(alarmed, "{id} has no Errors alarm to the alarm topic");
        for (name, event) in function["Properties"]["Events"]
            .as_object()
            .into_iter()
            .flatten()
        {
            if event["Type"] == "EventBridgeRule" {
                let p = &event["Properties"];
                assert_drains_its_undelivered_events(&t, id, function, name, p);
                assert!(
                    p["RetryPolicy"]["MaximumRetryAttempts"]
                        .as_u64()
                        .is_some_and(|n| n > 0),
                    "{id}.{name}"
                );
            }
        }
    }
    // Failed async invocations land in the same dead-letter queue as undeliverable events.
    let invoke = &t["Globals"]["Function"]["EventInvokeConfig"];
    assert_eq!(
        invoke["DestinationConfig"]["OnFailure"]["Destination"],
        json!({"Fn::GetAtt": ["EventDlq", "Arn"]})
    );
    // The functions count an event's deliveries and end its step on the last one, which is
    // the first delivery plus Lambda's retries.
    let retries = invoke["MaximumRetryAttempts"]
        .as_u64()
        .expect("MaximumRetryAttempts");
    assert_eq!(
        t["Globals"]["Function"]["Environment"]["Variables"]["PODFLOW_EVENT_MAX_DELIVERIES"],
        json!((retries + 1).to_string())
    );
    for queue in ["PromptDlq", "EventDlq"] {
        let alarmed = alarms.iter().any(|(_, a)| {
            a["Properties"]["MetricName"] == "ApproximateNumberOfMessagesVisible"
                && a["Properties"]["Dimensions"][0]["Value"]
                    == json!({"Fn::GetAtt": [queue, "QueueName"]})
        });
        assert!(alarmed, "no depth alarm on {queue}");
    }
}

/// A rule target's dead-letter queue is the function's own undelivered-events queue: the
/// function drains it (so each event's step ends), EventBridge may send to it, its redrive
/// parks what cannot be drained in EventDlq, and an alarm watches it.
fn assert_drains_its_undelivered_events(
    t: &Value,
    id: &str,
    function: &Value,
    rule: &str,
    rule_properties: &Value,
) {
    let arn = &rule_properties["DeadLetterConfig"]["Arn"];
    let queue = arn["Fn::GetAtt"][0]
        .as_str()
        .unwrap_or_else(|| panic!("{id}.{rule}: dead letters to {arn}"));
    assert_ne!(queue, "EventDlq", "{id}.{rule}: nothing would end the step");
    let q = &t["Resources"][queue];
    assert_eq!(q["Type"], "AWS::SQS::Queue", "{id}.{rule}: {queue}");
    assert_eq!(
        q["Properties"]["RedrivePolicy"]["deadLetterTargetArn"],
        json!({"Fn::GetAtt": ["EventDlq", "Arn"]}),
        "{queue}"
    );
    let drained = function["Properties"]["Events"]
        .as_object()
        .into_iter()
        .flatten()
        .any(|(_, e)| {
            e["Type"] == "SQS"
                && e["Properties"]["Queue"] == *arn
                && e["Properties"]["FunctionResponseTypes"] == json!(["ReportBatchItemFailures"])
        });
    assert!(drained, "{id} does not drain {queue}");
    let drainers = template::resources(t, "AWS::Serverless::Function")
        .into_iter()
        .filter(|(_, f)| {
            f["Properties"]["Events"]
                .to_string()
                .contains(&arn.to_string())
        })
        .count();
    assert_eq!(drainers, 1, "{queue} is one function's alone");
    let sendable = template::resources(t, "AWS::SQS::QueuePolicy")
        .into_iter()
        .any(|(_, policy)| {
            let p = &policy["Properties"];
            p["Queues"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|r| r == &json!({"Ref": queue}))
                && p["PolicyDocument"]["Statement"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|s| {
                        s["Principal"]["Service"] == "events.amazonaws.com"
                            && s["Action"] == "sqs:SendMessage"
                            && s["Resource"]
                                .as_array()
                                .into_iter()
                                .flatten()
                                .any(|r| r == arn)
                    })
        });
    assert!(sendable, "EventBridge may not send to {queue}");
    let watched = template::resources(t, "AWS::CloudWatch::Alarm")
        .into_iter()
        .any(|(_, a)| {
            a["Properties"]["Metrics"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|m| {
                    m["MetricStat"]["Metric"]["Dimensions"][0]["Value"]
                        == json!({"Fn::GetAtt": [queue, "QueueName"]})
                })
        });
    assert!(watched, "no alarm watches {queue}");
}

#[test]
fn the_prompt_queue_is_fifo_with_a_dlq_and_the_invoker_reports_partial_failures() {
    let t = template();
    let res = &t["Resources"];
    let queue = &res["PromptQueue"]["Properties"];
    let dlq = &res["PromptDlq"]["Properties"];
    for q in [queue, dlq] {
        assert_eq!(q["FifoQueue"], true);
        assert!(
            q["QueueName"]["Fn::Sub"]
                .as_str()
                .is_some_and(|n| n.ends_with(".fifo"))
        );
    }
    assert_eq!(
        queue["RedrivePolicy"]["deadLetterTargetArn"],
        json!({"Fn::GetAtt": ["PromptDlq", "Arn"]})
    );
    assert_eq!(
        queue["RedrivePolicy"]["maxReceiveCount"],
        json!({"Ref": "PromptMaxReceiveCount"})
    );
    let max_receive = &t["Parameters"]["PromptMaxReceiveCount"];
    assert!(
        max_receive["MinValue"].as_u64().is_some_and(|n| n >= 10)
            && max_receive["MaxValue"].as_u64().is_some_and(|n| n <= 1000)
    );

    let invoker = &res["BedrockInvokerFunction"]["Properties"];
    let source = &invoker["Events"]["PromptJobs"];
    assert_eq!(source["Type"], "SQS");
    assert_eq!(
        source["Properties"]["Queue"],
        json!({"Fn::GetAtt": ["PromptQueue", "Arn"]})
    );
    assert_eq!(
        source["Properties"]["FunctionResponseTypes"],
        json!(["ReportBatchItemFailures"])
    );
    assert!(source["Properties"]["ScalingConfig"]["MaximumConcurrency"].is_object());
    // Lambda's SQS guidance: visibility at least six times the function's timeout, or a
    // batch still being worked on is delivered again.
    let timeout = invoker["Timeout"].as_u64().expect("invoker timeout");
    let visibility = queue["VisibilityTimeout"].as_u64().expect("visibility");
    assert!(
        visibility >= 6 * timeout,
        "visibility {visibility} < 6 × {timeout}"
    );
}

#[test]
fn iam_is_least_privilege() {
    let t = template();
    let statements = template::iam_statements(&t);
    assert!(
        statements.len() > 20,
        "only {} statements found",
        statements.len()
    );
    for (owner, s) in &statements {
        let actions: Vec<&str> = match &s["Action"] {
            Value::String(a) => vec![a.as_str()],
            Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
            other => panic!("{owner}: Action {other}"),
        };
        for action in &actions {
            assert!(
                !action.contains('*'),
                "{owner} grants the wildcard action {action}"
            );
        }
        let resources = match &s["Resource"] {
            Value::Array(r) => r.clone(),
            other => vec![other.clone()],
        };
        for r in resources {
            assert_ne!(
                r,
                json!("*"),
                "{owner} grants {actions:?} on every resource"
            );
        }
        if actions.contains(&"bedrock:InvokeModel") {
            assert_eq!(
                s["Resource"],
                json!({"Ref": "BedrockModelArns"}),
                "{owner}: Bedrock must be scoped to the configured models"
            );
        }
    }
    // Only the invoker may call Bedrock.
    let callers: Vec<&String> = statements
        .iter()
        .filter(|(_, s)| s["Action"].to_string().contains("bedrock:"))
        .map(|(o, _)| o)
        .collect();
    assert_eq!(callers, ["BedrockInvokerFunction"]);
}

/// `sam build` runs `make build-<LogicalId>` in infra/Makefile for every function: each must
/// have that target, and the entry point it builds must exist in the service it names.
#[test]
fn every_function_is_built_by_the_makefile_from_an_existing_lambda_entry_point() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let makefile = std::fs::read_to_string(root.join("infra/Makefile")).expect("infra/Makefile");
    let t = template();
    for (id, function) in template::resources(&t, "AWS::Serverless::Function") {
        assert_eq!(function["Metadata"]["BuildMethod"], "makefile", "{id}");
        assert_eq!(function["Metadata"]["ContextPath"], ".", "{id}: infra/");
        let target = format!("build-{id}:");
        let recipe = makefile
            .split("\n\n")
            .find(|block| block.lines().any(|l| l.starts_with(&target)))
            .unwrap_or_else(|| panic!("infra/Makefile has no target {target}"));
        let call = recipe
            .split("$(call build_lambda,")
            .nth(1)
            .and_then(|rest| rest.split(')').next())
            .unwrap_or_else(|| panic!("{target} does not call build_lambda"));
        let mut args = call.split(',');
        let (package, bin) = (args.next().unwrap_or(""), args.next().unwrap_or(""));
        let entry = root.join(format!("services/{package}/src/bin/{bin}.rs"));
        assert!(
            entry.is_file(),
            "{target} builds {}, which is missing",
            entry.display()
        );
    }
}

#[test]
fn the_bucket_takes_only_tls_is_versioned_and_outlives_the_stack() {
    let t = template();
    let bucket = &t["Resources"]["EpisodeBucket"];
    assert_eq!(bucket["DeletionPolicy"], "Retain");
    assert_eq!(bucket["UpdateReplacePolicy"], "Retain");
    assert_eq!(
        bucket["Properties"]["VersioningConfiguration"]["Status"],
        "Enabled"
    );
    let policies = template::resources(&t, "AWS::S3::BucketPolicy");
    let tls_only = policies.iter().any(|(_, p)| {
        p["Properties"]["Bucket"] == json!({"Ref": "EpisodeBucket"})
            && p["Properties"]["PolicyDocument"]["Statement"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|s| {
                    s["Effect"] == "Deny"
                        && s["Principal"] == "*"
                        && s["Action"] == "s3:*"
                        && s["Condition"]["Bool"]["aws:SecureTransport"] == "false"
                        && s["Resource"].as_array().is_some_and(|r| r.len() == 2)
                })
    });
    assert!(
        tls_only,
        "a Deny of s3:* without TLS on the bucket and its objects"
    );
}

#[test]
fn the_table_outlives_the_stack_and_every_store_of_data_is_encrypted() {
    let t = template();
    let table = &t["Resources"]["EpisodeTable"];
    assert_eq!(table["DeletionPolicy"], "Retain");
    assert_eq!(table["UpdateReplacePolicy"], "Retain");
    assert_eq!(table["Properties"]["SSESpecification"]["SSEEnabled"], true);
    let queues = template::resources(&t, "AWS::SQS::Queue");
    assert!(queues.len() >= 3);
    for (id, q) in queues {
        assert_eq!(
            q["Properties"]["SqsManagedSseEnabled"], true,
            "{id}: encryption declared"
        );
    }
    for (id, topic) in template::resources(&t, "AWS::SNS::Topic") {
        let key = &topic["Properties"]["KmsMasterKeyId"];
        assert!(!key.is_null(), "{id} is encrypted");
        // CloudWatch can publish only under a key whose policy lets it.
        let name = key["Ref"].as_str().expect("a key of the stack");
        let statements = &t["Resources"][name]["Properties"]["KeyPolicy"]["Statement"];
        assert!(
            statements.as_array().into_iter().flatten().any(|s| {
                s["Principal"]["Service"] == "cloudwatch.amazonaws.com"
                    && s["Action"].to_string().contains("kms:GenerateDataKey")
            }),
            "{id}'s key lets CloudWatch alarms publish"
        );
    }
}

#[test]
fn service_roles_trust_only_this_account_and_functions_put_only_their_own_events() {
    let t = template();
    for (id, role) in template::resources(&t, "AWS::IAM::Role") {
        for s in role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
            .as_array()
            .into_iter()
            .flatten()
        {
            if s["Principal"]["Service"].is_string() {
                assert_eq!(
                    s["Condition"]["StringEquals"]["aws:SourceAccount"],
                    json!({"Ref": "AWS::AccountId"}),
                    "{id}: a service may assume it only for this account"
                );
            }
        }
    }
    // Each function may put only the events whose source it is: its service's, or for the
    // function behind Slack's buttons, a person's decisions.
    let mut checked = 0;
    for (owner, s) in template::iam_statements(&t) {
        if s["Action"] != "events:PutEvents" {
            continue;
        }
        let source = s["Condition"]["StringEquals"]["events:source"]
            .as_str()
            .unwrap_or_else(|| panic!("{owner}: PutEvents without an events:source condition"));
        let service = t["Resources"][owner.as_str()]["Properties"]["Environment"]["Variables"]
            ["PODFLOW_SERVICE"]
            .as_str()
            .expect("service");
        let own_source = match service {
            "publisher-slack" => "podflow.approval".to_owned(),
            service => format!("podflow.{service}"),
        };
        assert_eq!(source, own_source, "{owner}");
        let own: Vec<_> = podflow_events()
            .into_iter()
            .filter(|(_, s)| *s == source)
            .collect();
        assert!(
            !own.is_empty(),
            "{owner}: no podflow event has source {source}"
        );
        checked += 1;
    }
    assert_eq!(checked, 6, "every producer of events is conditioned");
}

#[test]
fn the_bus_is_archived_for_replay_and_subscribers_see_only_episode_summarized() {
    let t = template();
    let archives = template::resources(&t, "AWS::Events::Archive");
    assert_eq!(archives.len(), 1);
    assert_eq!(
        archives[0].1["Properties"]["SourceArn"],
        json!({"Fn::GetAtt": ["PodflowBus", "Arn"]})
    );
    let policies = template::resources(&t, "AWS::Events::EventBusPolicy");
    assert_eq!(policies.len(), 2);
    for (id, policy) in &policies {
        assert_eq!(policy["Condition"], "HasSubscribers", "{id}");
        let statement = &policy["Properties"]["Statement"];
        assert_eq!(
            statement["Principal"]["AWS"],
            json!({"Ref": "SubscriberAccountIds"}),
            "{id}"
        );
        let condition = &statement["Condition"];
        assert_eq!(
            condition["StringEqualsIfExists"]["events:creatorAccount"], "${aws:PrincipalAccount}",
            "{id}: only rules they created"
        );
        let actions = statement["Action"].to_string();
        assert!(
            !actions.contains("PutEvents") && !actions.contains('*'),
            "{actions}"
        );
        if statement["Action"] == "events:PutRule" {
            // Creating a rule: EpisodeSummarized only, and the rule must say so.
            assert_eq!(
                condition["StringEqualsIfExists"]["events:detail-type"],
                "EpisodeSummarized"
            );
            assert_eq!(condition["Null"]["events:source"], "false");
            assert_eq!(condition["Null"]["events:detail-type"], "false");
        } else {
            // Other actions carry no source or detail-type, so no condition may ask for one.
            assert!(condition.get("Null").is_none(), "{id}");
            assert!(!actions.contains("PutRule"), "{id}");
        }
    }
    assert_eq!(t["Globals"]["Function"]["Tracing"], "Active");
}

#[test]
fn notification_links_go_through_the_link_function_and_outlive_their_signers() {
    let t = template();
    let link = &t["Resources"]["LinkFunction"]["Properties"];
    assert_eq!(link["FunctionUrlConfig"]["AuthType"], "NONE");
    let notify =
        &t["Resources"]["PublisherNotifyFunction"]["Properties"]["Environment"]["Variables"];
    assert_eq!(
        notify["PODFLOW_LINK_BASE_URL"],
        json!({"Fn::GetAtt": ["LinkFunctionUrl", "FunctionUrl"]})
    );
    // Both sign with the stack's generated secret, and each may read only that one.
    for function in ["LinkFunction", "PublisherNotifyFunction"] {
        let variables = &t["Resources"][function]["Properties"]["Environment"]["Variables"];
        assert_eq!(
            variables["PODFLOW_LINK_SECRET"],
            json!({"Fn::Sub": "secretsmanager:${LinkSecret}"}),
            "{function}"
        );
        let reads_secret = template::iam_statements(&t).into_iter().any(|(owner, s)| {
            owner == function
                && s["Action"] == "secretsmanager:GetSecretValue"
                && s["Resource"] == json!({"Ref": "LinkSecret"})
        });
        assert!(reads_secret, "{function} reads the link secret");
    }
    assert!(
        t["Resources"]["LinkSecret"]["Properties"]["GenerateSecretString"]["PasswordLength"]
            .as_u64()
            .is_some_and(|n| n >= 32)
    );
    // Links may be promised for longer than SigV4's seven days: they are not pre-signed.
    assert!(
        t["Parameters"]["LinkLifetimeSeconds"]["MaxValue"]
            .as_u64()
            .is_some_and(|n| n > 604_800)
    );
}

#[test]
fn slacks_buttons_reach_a_function_that_checks_slacks_signature_and_only_reads_the_table() {
    let t = template();
    let slack = &t["Resources"]["SlackActionsFunction"]["Properties"];
    // Slack cannot sign the AWS way: the URL is public and the function checks Slack's
    // signature with the secret from SSM.
    assert_eq!(slack["FunctionUrlConfig"]["AuthType"], "NONE");
    let variables = &slack["Environment"]["Variables"];
    assert_eq!(
        variables["PODFLOW_SLACK_SIGNING_SECRET"],
        json!({"Fn::Sub": "ssm:${SlackSigningSecretParameterName}"})
    );
    assert_eq!(
        t["Outputs"]["SlackInteractivityUrl"]["Value"],
        json!({"Fn::GetAtt": ["SlackActionsFunctionUrl", "FunctionUrl"]})
    );
    let actions: Vec<String> = template::iam_statements(&t)
        .into_iter()
        .filter(|(owner, _)| owner == "SlackActionsFunction")
        .flat_map(|(_, s)| match &s["Action"] {
            Value::String(a) => vec![a.clone()],
            Value::Array(a) => a
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
            _ => Vec::new(),
        })
        .collect();
    // Reads for the checks, its decisions onto the bus, its secrets: nothing that writes
    // the table or touches the files.
    assert_eq!(
        actions,
        [
            "dynamodb:GetItem",
            "dynamodb:Query",
            "events:PutEvents",
            "ssm:GetParameter"
        ]
    );
}

#[test]
fn the_registry_schema_of_episode_summarized_is_generated_from_the_types() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../infra/template.yaml");
    let text = std::fs::read_to_string(&path).expect("template");
    let generated = podflow_events::registry::openapi::<EpisodeSummarized>();
    let rewritten =
        podflow_events::registry::with_content(&text, "EpisodeSummarizedSchema", &generated)
            .expect("EpisodeSummarizedSchema has a `Content: |-` block");
    assert!(
        rewritten == text,
        "infra/template.yaml's EpisodeSummarizedSchema differs from the event types; \
         run `cargo run -p podflow-events --example write-schemas`"
    );
    let t = template();
    let schema = &t["Resources"]["EpisodeSummarizedSchema"]["Properties"];
    assert_eq!(schema["Type"], "OpenApi3");
    assert_eq!(
        schema["RegistryName"],
        json!({"Fn::GetAtt": ["EventsRegistry", "RegistryName"]})
    );
    let content: Value =
        serde_json::from_str(schema["Content"].as_str().expect("content")).expect("JSON");
    assert_eq!(content, generated);
}

#[test]
fn the_cost_alarm_watches_the_metric_the_publisher_writes() {
    let t = template();
    let alarm = &t["Resources"]["EpisodeCostAlarm"]["Properties"];
    assert_eq!(alarm["Namespace"], podflow_lambda::metrics::NAMESPACE);
    assert_eq!(alarm["MetricName"], "EstimatedCostUSD");
    assert_eq!(alarm["Dimensions"][0]["Name"], "Service");
    let service = alarm["Dimensions"][0]["Value"].as_str().expect("service");
    // The publisher function's PODFLOW_SERVICE is the dimension its lines carry.
    assert_eq!(
        t["Resources"]["PublisherFunction"]["Properties"]["Environment"]["Variables"]["PODFLOW_SERVICE"],
        service
    );
    assert_eq!(alarm["AlarmActions"][0], json!({"Ref": "AlarmTopic"}));
}

//! Deploy gate: every function's IAM statements in `infra/template.yaml` allow what its code
//! does. moto server runs with IAM enforcement on; each service's handlers run under an IAM
//! user whose only policy is its function's statements, parsed from the template with the
//! intrinsic functions resolved against the emulated resources; one episode goes from the
//! upload's "Object Created" event to its Slack messages through the AWS adapters, with
//! events travelling over the emulated bus. A denied call fails the test with the function
//! and the action's name.
//!
//! What moto checks (moto/core/authorization.py): the action of every call; the resource
//! only for S3 objects and SQS queues (other services are matched against `*`, so their
//! statements are given `Resource: *` here); conditions are not evaluated (the template
//! tests check them); a DynamoDB transaction and an SQS batch are checked as actions of
//! their own, where AWS checks the puts and updates inside the transaction and the single
//! action of the batch. MediaConvert and Bedrock are faithful fakes with no IAM: their
//! statements are checked by reading only.

use std::{
    collections::BTreeMap,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use aws_credential_types::Credentials;
use bedrock_invoker::{
    InvokeHandler, RetryPolicy,
    bedrock::BedrockConverse,
    ratelimit::{LimitsConfig, Throttle},
};
use podflow_aws::mediaconvert::MediaConvertJobs;
use podflow_aws::transcribe::TranscribeJobs;
use podflow_core::{Delivery, MessageHandler, Outcome, secret::Secret};
use podflow_events::routing::{PROMPT_QUEUE, subscribers};
use podflow_fakes::{
    FakeLlm, FakeLlmConfig, mediaconvert::FakeMediaConvert, moto::MotoServer, slack::FakeSlack,
};
use podflow_lambda::{Effects, handle_event, wiring::AwsWiring};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const ACCOUNT: &str = "123456789012";
const REGION: &str = "us-east-1";
const BUCKET: &str = "podflow-iam";
const TABLE: &str = "podflow-iam-episodes";
const BUS: &str = "podflow-iam-podflow";
const STACK: &str = "podflow-iam";
const WEBHOOK_PARAMETER: &str = "/podflow/slack-webhook";
const SIGNING_SECRET_PARAMETER: &str = "/podflow/slack-signing-secret";
const BOT_TOKEN_PARAMETER: &str = "/podflow/slack-bot-token";
/// The Slack app's signing secret in this account.
const SIGNING_SECRET: &str = "e3b98fd4a4c1d5b8a17c26f4d8e0b7a2";
const MODEL: &str = "anthropic.claude-3-haiku-20240307-v1:0";

/// The template's functions, each run under its own IAM user.
const FUNCTIONS: [&str; 9] = [
    "IngestFunction",
    "TranscodeWatcherFunction",
    "TranscriberFunction",
    "PromptDispatcherFunction",
    "BedrockInvokerFunction",
    "PublisherFunction",
    "PublisherNotifyFunction",
    "LinkFunction",
    "SlackActionsFunction",
];
/// The link function's URL (links are only made and checked here, never fetched).
/// Deliveries of one event to a rule target, as the template's functions count them.
const EVENT_MAX_DELIVERIES: u32 = 3;
const LINK_BASE: &str = "https://links.lambda-url.us-east-1.on.aws/";

fn template() -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../infra/template.yaml");
    contract_tests::template::load(&path).expect("template")
}

/// What the template's intrinsics stand for in this emulated account.
fn values(queues: &Queues) -> BTreeMap<String, String> {
    let arn = |url: &str| {
        let name = url.rsplit('/').next().unwrap_or_default();
        format!("arn:aws:sqs:{REGION}:{ACCOUNT}:{name}")
    };
    [
        ("AWS::Partition", "aws".to_owned()),
        ("AWS::Region", REGION.to_owned()),
        ("AWS::AccountId", ACCOUNT.to_owned()),
        ("AWS::StackName", STACK.to_owned()),
        ("EpisodeBucket", BUCKET.to_owned()),
        ("EpisodeBucket.Arn", format!("arn:aws:s3:::{BUCKET}")),
        (
            "EpisodeTable.Arn",
            format!("arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{TABLE}"),
        ),
        (
            "PodflowBus.Arn",
            format!("arn:aws:events:{REGION}:{ACCOUNT}:event-bus/{BUS}"),
        ),
        ("EventDlq.Arn", arn(&queues.event_dlq)),
        ("PromptQueue.Arn", arn(&queues.prompts)),
        ("PromptDlq.Arn", arn(&queues.prompt_dlq)),
        (
            "MediaConvertRole.Arn",
            format!("arn:aws:iam::{ACCOUNT}:role/{STACK}-mediaconvert"),
        ),
        (
            "BedrockModelArns",
            format!("arn:aws:bedrock:{REGION}::foundation-model/{MODEL}"),
        ),
        ("SlackWebhookParameterName", WEBHOOK_PARAMETER.to_owned()),
        (
            "SlackSigningSecretParameterName",
            SIGNING_SECRET_PARAMETER.to_owned(),
        ),
        ("SlackBotTokenParameterName", BOT_TOKEN_PARAMETER.to_owned()),
        // Deployed with a bot token, so its statement is exercised too.
        ("Condition:HasSlackBotToken", "true".to_owned()),
        ("LinkSecret", queues.link_secret.clone()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// The function's policy as moto can enforce it: resources kept for S3 and SQS (which moto
/// matches), `*` for the rest (which moto matches only against `*`), conditions dropped
/// (which moto does not evaluate).
fn as_moto_enforces(policy: &Value) -> Value {
    let statements: Vec<Value> = policy["Statement"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            let actions: Vec<&str> = match &s["Action"] {
                Value::String(a) => vec![a.as_str()],
                Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
                _ => Vec::new(),
            };
            let mut s = s.clone();
            if let Some(map) = s.as_object_mut() {
                map.remove("Condition");
                // AWS authorises a transaction by the actions inside it (podflow's hold
                // puts and updates); moto asks for a `TransactWriteItems` action instead.
                // Likewise SQS authorises a batch call by its single action's permission.
                let mut with = actions.clone();
                if actions.contains(&"dynamodb:PutItem") && actions.contains(&"dynamodb:UpdateItem")
                {
                    with.push("dynamodb:TransactWriteItems");
                }
                for (single, batch) in [
                    ("sqs:SendMessage", "sqs:SendMessageBatch"),
                    ("sqs:DeleteMessage", "sqs:DeleteMessageBatch"),
                    (
                        "sqs:ChangeMessageVisibility",
                        "sqs:ChangeMessageVisibilityBatch",
                    ),
                ] {
                    if actions.contains(&single) {
                        with.push(batch);
                    }
                }
                map.insert("Action".into(), json!(with));
                if !actions
                    .iter()
                    .all(|a| a.starts_with("s3:") || a.starts_with("sqs:"))
                {
                    map.insert("Resource".into(), json!("*"));
                }
            }
            s
        })
        .collect();
    json!({"Version": "2012-10-17", "Statement": statements})
}

struct Queues {
    event_dlq: String,
    prompts: String,
    prompt_dlq: String,
    /// Every podflow event on the bus, as EventBridge delivers it.
    tap: String,
    /// The ARN of the secret stable links are signed with.
    link_secret: String,
}

/// moto's IAM API (query protocol), for users and their keys. Called before enforcement
/// starts, so the request needs only the credential scope moto routes by.
struct Iam {
    http: reqwest::Client,
    url: String,
}

impl Iam {
    async fn call(&self, params: &[(&str, &str)]) -> String {
        let response = self
            .http
            .post(format!("{}/", self.url))
            .header(
                "authorization",
                format!(
                    "AWS4-HMAC-SHA256 Credential=testing/20261204/{REGION}/iam/aws4_request, SignedHeaders=host, Signature=0"
                ),
            )
            .form(&[params, &[("Version", "2010-05-08")]].concat())
            .send()
            .await
            .expect("moto answers");
        let status = response.status();
        let text = response.text().await.expect("body");
        assert!(status.is_success(), "IAM {params:?}: {status} {text}");
        text
    }

    /// A user whose only policy is `policy`, and its credentials.
    async fn principal(&self, name: &str, policy: &Value) -> Credentials {
        self.call(&[("Action", "CreateUser"), ("UserName", name)])
            .await;
        self.call(&[
            ("Action", "PutUserPolicy"),
            ("UserName", name),
            ("PolicyName", "function"),
            ("PolicyDocument", &policy.to_string()),
        ])
        .await;
        let key = self
            .call(&[("Action", "CreateAccessKey"), ("UserName", name)])
            .await;
        let field = |tag: &str| {
            let open = format!("<{tag}>");
            let start = key.find(&open).expect(tag) + open.len();
            let end = start + key[start..].find('<').expect(tag);
            key[start..end].to_owned()
        };
        Credentials::new(
            field("AccessKeyId"),
            field("SecretAccessKey"),
            None,
            None,
            "iam-test",
        )
    }

    /// From now on every call is authorised against its caller's policies.
    async fn enforce(&self) {
        let response = self
            .http
            .post(format!("{}/moto-api/reset-auth", self.url))
            .body("0")
            .send()
            .await
            .expect("moto answers");
        assert!(response.status().is_success(), "reset-auth");
    }
}

/// A TCP relay in front of moto that notes every refusal: moto's message names the action
/// for most services; S3's `AccessDenied` does not, so the action is told from the request.
/// Bytes pass unchanged (SigV4 signs the host header).
#[derive(Clone, Default)]
struct Denials(Arc<Mutex<Vec<String>>>);

impl Denials {
    fn list(&self) -> Vec<String> {
        self.0.lock().map(|d| d.clone()).unwrap_or_default()
    }

    async fn relay(&self, upstream: &str) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let upstream = upstream.trim_start_matches("http://").to_owned();
        let denials = self.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = tokio::net::TcpStream::connect(&upstream).await else {
                    continue;
                };
                tokio::spawn(denials.clone().pipe(client, server));
            }
        });
        url
    }

    async fn pipe(self, client: tokio::net::TcpStream, server: tokio::net::TcpStream) {
        let (mut client_read, mut client_write) = client.into_split();
        let (mut server_read, mut server_write) = server.into_split();
        let last_request = Arc::new(Mutex::new(String::new()));
        let seen = last_request.clone();
        let upward = tokio::spawn(async move {
            let mut buf = vec![0u8; 64 * 1024];
            while let Ok(n) = client_read.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                let text = String::from_utf8_lossy(&buf[..n]);
                if let Some(line) = text.lines().next().filter(|l| l.contains(" HTTP/1."))
                    && let Ok(mut last) = seen.lock()
                {
                    *last = line.to_owned();
                }
                if server_write.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
        });
        let mut buf = vec![0u8; 64 * 1024];
        // A refusal being read: (its request line, the response so far).
        let mut refusal: Option<(String, String)> = None;
        while let Ok(n) = server_read.read(&mut buf).await {
            if n == 0 {
                break;
            }
            let text = String::from_utf8_lossy(&buf[..n]);
            match &mut refusal {
                Some((_, response)) => response.push_str(&text),
                None if text.starts_with("HTTP/1.")
                    && text.lines().next().is_some_and(|l| l.contains(" 403 ")) =>
                {
                    let request = last_request.lock().map(|l| l.clone()).unwrap_or_default();
                    refusal = Some((request, text.into_owned()));
                }
                None => {}
            }
            if let Some((request, response)) = &refusal
                && (response.contains("not authorized to perform: ")
                    || response.contains("</Error>")
                    || request.starts_with("HEAD "))
            {
                self.note(request, response);
                refusal = None;
            }
            if client_write.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        if let Some((request, response)) = refusal {
            self.note(&request, &response);
        }
        upward.abort();
    }

    fn note(&self, request: &str, response: &str) {
        let denial = match response.find("not authorized to perform: ") {
            Some(at) => response[at..]
                .split('<')
                .next()
                .unwrap_or_default()
                .to_owned(),
            None => format!("not authorized to perform: {}", s3_action(request)),
        };
        let user = response
            .find("User: ")
            .map(|at| {
                response[at..]
                    .split(' ')
                    .nth(1)
                    .unwrap_or_default()
                    .to_owned()
            })
            .unwrap_or_default();
        if let Ok(mut d) = self.0.lock() {
            d.push(format!("{user} {denial} ({request})"));
        }
    }
}

/// The S3 action a request line asks for (moto's `s3/responses.py` action map).
fn s3_action(request_line: &str) -> String {
    let mut parts = request_line.split(' ');
    let method = parts.next().unwrap_or_default();
    let target = parts.next().unwrap_or_default();
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let on_object = path.trim_start_matches('/').contains('/');
    let action = match (method, on_object) {
        ("GET" | "HEAD", true) => "GetObject",
        ("PUT" | "POST", true) => "PutObject",
        ("DELETE", true) => "DeleteObject",
        ("GET", false) if query.contains("list-type") || query.is_empty() => "ListBucket",
        _ => "(an S3 bucket action)",
    };
    format!("s3:{action}")
}

/// One function as Lambda runs it: its handler and where its outcome goes, under its role.
struct Function {
    name: &'static str,
    handler: Arc<dyn MessageHandler>,
    effects: Effects,
}

struct Account {
    _moto: MotoServer,
    endpoint: String,
    iam: Iam,
    queues: Queues,
    denials: Denials,
    /// The operator's configuration: everything allowed (uploads, MediaConvert's and
    /// Transcribe's outputs, Lambda's polling of the queues).
    operator: aws_config::SdkConfig,
}

async fn config(endpoint: &str, credentials: Credentials) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(REGION))
        .endpoint_url(endpoint)
        .credentials_provider(credentials)
        .load()
        .await
}

/// The stack's resources in moto, made before enforcement starts.
async fn account(slack_url: &str) -> Account {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let moto = MotoServer::start();
    let admin = moto.sdk_config().await;
    podflow_fakes::moto::create_bucket(&admin, BUCKET).await;
    podflow_fakes::moto::create_episode_table(&admin, TABLE).await;
    let sqs = aws_sdk_sqs::Client::new(&admin);
    let queue = |name: &'static str, fifo: bool| {
        let sqs = sqs.clone();
        async move {
            let mut request = sqs.create_queue().queue_name(name);
            if fifo {
                request = request
                    .attributes(aws_sdk_sqs::types::QueueAttributeName::FifoQueue, "true")
                    .attributes(
                        aws_sdk_sqs::types::QueueAttributeName::ContentBasedDeduplication,
                        "true",
                    );
            }
            request
                .send()
                .await
                .expect("queue")
                .queue_url()
                .expect("url")
                .to_owned()
        }
    };
    let link_secret = aws_sdk_secretsmanager::Client::new(&admin)
        .create_secret()
        .name("podflow-iam-link-secret")
        .secret_string("k".repeat(64))
        .send()
        .await
        .expect("secret")
        .arn()
        .expect("arn")
        .to_owned();
    let queues = Queues {
        event_dlq: queue("podflow-iam-events-dlq", false).await,
        prompts: queue("podflow-iam-prompts.fifo", true).await,
        prompt_dlq: queue("podflow-iam-prompts-dlq.fifo", true).await,
        tap: queue("podflow-iam-tap", false).await,
        link_secret,
    };
    let events = aws_sdk_eventbridge::Client::new(&admin);
    events
        .create_event_bus()
        .name(BUS)
        .send()
        .await
        .expect("bus");
    events
        .put_rule()
        .name("tap")
        .event_bus_name(BUS)
        .event_pattern(
            json!({"source": [
                "podflow.ingest", "podflow.transcode-watcher", "podflow.transcriber",
                "podflow.bedrock-invoker", "podflow.publisher", "podflow.approval"
            ]})
            .to_string(),
        )
        .send()
        .await
        .expect("rule");
    events
        .put_targets()
        .rule("tap")
        .event_bus_name(BUS)
        .targets(
            aws_sdk_eventbridge::types::Target::builder()
                .id("tap")
                .arn(format!("arn:aws:sqs:{REGION}:{ACCOUNT}:podflow-iam-tap"))
                .build()
                .expect("target"),
        )
        .send()
        .await
        .expect("target");
    for (name, value) in [
        (WEBHOOK_PARAMETER, slack_url),
        (SIGNING_SECRET_PARAMETER, SIGNING_SECRET),
        (BOT_TOKEN_PARAMETER, podflow_fakes::slack::BOT_TOKEN),
    ] {
        aws_sdk_ssm::Client::new(&admin)
            .put_parameter()
            .name(name)
            .value(value)
            .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
            .send()
            .await
            .expect("parameter");
    }

    let denials = Denials::default();
    let endpoint = denials.relay(&moto.url).await;
    let iam = Iam {
        http: reqwest::Client::new(),
        url: moto.url.clone(),
    };
    let operator = iam
        .principal(
            "operator",
            &json!({"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Action": "*", "Resource": "*"}
            ]}),
        )
        .await;
    Account {
        operator: config(&endpoint, operator).await,
        _moto: moto,
        endpoint,
        iam,
        queues,
        denials,
    }
}

impl Account {
    /// The function's principal: an IAM user with exactly its template policy.
    async fn principal(&self, function: &str) -> aws_config::SdkConfig {
        let policy =
            contract_tests::template::function_policy(&template(), function, &values(&self.queues))
                .expect("the function's policy resolves");
        let credentials = self
            .iam
            .principal(function, &as_moto_enforces(&policy))
            .await;
        config(&self.endpoint, credentials).await
    }

    fn wiring(&self, config: aws_config::SdkConfig) -> AwsWiring {
        AwsWiring::new(config, BUCKET, TABLE, BUS, true)
    }

    /// Fails the test with what was refused, when anything was.
    fn no_denials(&self, during: &str) {
        let denied = self.denials.list();
        assert!(
            denied.is_empty(),
            "{during}: IAM refused {} call(s); add the action to the function's policy in \
             infra/template.yaml:\n{}",
            denied.len(),
            denied.join("\n")
        );
    }
}

/// The recorded "Object Created" event, for this upload.
fn object_created(key: &str, size: usize) -> Value {
    let mut event: Value = serde_json::from_str(&podflow_fakes::fixtures::aws_text(
        "s3-eventbridge/powertools-python_s3EventBridgeNotificationObjectCreatedEvent.json",
    ))
    .expect("json");
    event["detail"]["bucket"]["name"] = json!(BUCKET);
    event["detail"]["object"]["key"] = json!(key);
    event["detail"]["object"]["size"] = json!(size);
    event["resources"] = json!([format!("arn:aws:s3:::{BUCKET}")]);
    event["region"] = json!(REGION);
    event
}

/// A recorded MediaConvert state change for `job`, with its output.
fn transcode_complete(job: &Value, output: &str) -> Value {
    let text = podflow_fakes::fixtures::aws_text(
        "mediaconvert/awsdocs-mediaconvert_ev_status_complete.COMPLETE.doc-verbatim.jsonc",
    );
    let mut event: Value = serde_json::from_str(&text.replace("000000", "0")).expect("json");
    event["detail"]["jobId"] = job["id"].clone();
    event["detail"]["userMetadata"] = job["userMetadata"].clone();
    event["detail"]["outputGroupDetails"][0]["outputDetails"][0]["outputFilePaths"] =
        json!([output]);
    event
}

/// Transcribe's state change for `job` (the documented event with real values).
fn transcription_complete(job: &str) -> Value {
    json!({
        "version": "0",
        "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
        "detail-type": "Transcribe Job State Change",
        "source": "aws.transcribe",
        "account": ACCOUNT,
        "time": "2026-12-04T08:00:00Z",
        "region": REGION,
        "resources": [],
        "detail": {"TranscriptionJobName": job, "TranscriptionJobStatus": "COMPLETED"}
    })
}

fn tone(seconds: u32, format: &str) -> Vec<u8> {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join(format!("tone.{format}"));
    let ok = std::process::Command::new("ffmpeg")
        .args(["-loglevel", "error", "-y", "-f", "lavfi", "-i"])
        .arg(format!("sine=f=330:d={seconds}"))
        .arg(&path)
        .status()
        .expect("ffmpeg")
        .success();
    assert!(ok, "ffmpeg makes the tone");
    std::fs::read(path).expect("tone")
}

/// Runs `function` on an EventBridge event as Lambda would; a failure names what IAM
/// refused, if anything.
async fn deliver(account: &Account, function: &Function, event: Value) {
    let result = handle_event(function.handler.as_ref(), &function.effects, event.clone()).await;
    account.no_denials(&format!(
        "{} handling {}",
        function.name, event["detail-type"]
    ));
    if let Err(e) = result {
        panic!("{} failed on {}: {e}", function.name, event["detail-type"]);
    }
}

#[tokio::test]
async fn one_episode_runs_through_every_function_under_its_template_policy() {
    let slack = FakeSlack::start(Vec::new()).await.expect("slack");
    let llm = FakeLlm::start(FakeLlmConfig::default()).await.expect("llm");
    let mediaconvert = FakeMediaConvert::start(0).await.expect("mediaconvert");
    let account = account(&slack.url).await;

    let mut principals = BTreeMap::new();
    for function in FUNCTIONS {
        principals.insert(function, account.principal(function).await);
    }
    account.iam.enforce().await;
    let role = |f: &str| principals[f].clone();
    let ingest_wiring = account.wiring(role("IngestFunction"));
    let rule_target = |wiring: &AwsWiring, prompt_queue: Option<&str>| {
        wiring.rule_target_effects(
            PROMPT_QUEUE,
            &account.queues.event_dlq,
            prompt_queue,
            EVENT_MAX_DELIVERIES,
        )
    };
    let ingest = Function {
        name: "ingest",
        effects: rule_target(&ingest_wiring, None),
        handler: Arc::new(ingest::upload::UploadHandler {
            service: Arc::new(ingest::IngestService {
                store: ingest_wiring.store.clone(),
                blobs: ingest_wiring.blobs.clone(),
                probe: Arc::new(podflow_media::Ffmpeg::default()),
            }),
        }),
    };
    let watcher_wiring = account.wiring(role("TranscodeWatcherFunction"));
    let watcher = Function {
        name: "transcode-watcher",
        effects: rule_target(&watcher_wiring, None),
        handler: Arc::new(transcode_watcher::mediaconvert::MediaConvertHandler {
            store: watcher_wiring.store.clone(),
            blobs: watcher_wiring.blobs.clone(),
            jobs: Arc::new(MediaConvertJobs::new(
                &podflow_fakes::moto::sdk_config(&mediaconvert.url).await,
                &values(&account.queues)["MediaConvertRole.Arn"],
                BUCKET,
            )),
            bucket: BUCKET.into(),
            bitrate_kbps: 128,
            stack: STACK.into(),
        }),
    };
    let transcriber_wiring = account.wiring(role("TranscriberFunction"));
    let transcriber = Function {
        name: "transcriber",
        effects: rule_target(&transcriber_wiring, None),
        handler: Arc::new(transcriber::batch::BatchTranscriberHandler {
            store: transcriber_wiring.store.clone(),
            blobs: transcriber_wiring.blobs.clone(),
            jobs: Arc::new(TranscribeJobs::new(
                &transcriber_wiring.config,
                BUCKET,
                "en-US".parse().expect("a Transcribe code"),
            )),
            speakers: Default::default(),
        }),
    };
    let dispatcher_wiring = account.wiring(role("PromptDispatcherFunction"));
    let dispatcher = Function {
        name: "prompt-dispatcher",
        effects: rule_target(&dispatcher_wiring, Some(&account.queues.prompts)),
        handler: Arc::new(prompt_dispatcher::DispatchHandler {
            store: dispatcher_wiring.store.clone(),
            blobs: dispatcher_wiring.blobs.clone(),
            override_dir: None,
            default_model: MODEL.into(),
            queue: PROMPT_QUEUE.into(),
            text_engine: podflow_core::TextEngine::Auto,
        }),
    };
    let invoker_wiring = account.wiring(role("BedrockInvokerFunction"));
    let retry = RetryPolicy::default();
    let invoker = Function {
        name: "bedrock-invoker",
        effects: invoker_wiring.consumer_effects(
            PROMPT_QUEUE,
            &account.queues.prompts,
            &account.queues.prompt_dlq,
            200,
        ),
        handler: Arc::new(InvokeHandler {
            store: invoker_wiring.store.clone(),
            blobs: invoker_wiring.blobs.clone(),
            throttle: Arc::new(Throttle::new(
                LimitsConfig::load_or_default(None).expect("limits"),
                Duration::from_secs(60),
            )),
            llm: Arc::new(BedrockConverse::from_conf(
                aws_sdk_bedrockruntime::config::Builder::from(&invoker_wiring.config)
                    .endpoint_url(&llm.bedrock_endpoint),
                retry.call_time,
            )),
            retry,
        }),
    };
    let publisher_wiring = account.wiring(role("PublisherFunction"));
    let publisher = Function {
        name: "publisher",
        effects: rule_target(&publisher_wiring, None),
        handler: Arc::new(publisher::PublishHandler {
            store: publisher_wiring.store.clone(),
            blobs: publisher_wiring.blobs.clone(),
            clips: Arc::new(podflow_media::Ffmpeg::default()),
            prices: publisher::cost::PriceTable::load(None).expect("prices"),
            text_engine: podflow_core::TextEngine::Auto,
            show: Default::default(),
        }),
    };
    let notify_wiring = account.wiring(role("PublisherNotifyFunction"));
    // The webhook comes from SSM under the notifier's own role, as on Lambda.
    let notifier = publisher::notify::configured_notifier(
        Some(&Secret::new(format!("ssm:{WEBHOOK_PARAMETER}"))),
        None,
        async || notify_wiring.config.clone(),
    )
    .await
    .expect("the notifier reads its webhook");
    account.no_denials("publisher-notify reading its webhook");
    let link_secret = Secret::new(format!("secretsmanager:{}", account.queues.link_secret));
    let stable = publisher::links::configured_stable_links(
        BUCKET,
        Some(LINK_BASE),
        Some(&link_secret),
        async || notify_wiring.config.clone(),
    )
    .await
    .expect("the notifier reads the link secret");
    account.no_denials("publisher-notify reading the link secret");
    let notify = Function {
        name: "publisher-notify",
        effects: rule_target(&notify_wiring, None),
        handler: Arc::new(publisher::notify::NotifyHandler {
            store: notify_wiring.store.clone(),
            blobs: notify_wiring.blobs.clone(),
            notifier,
            links: publisher::links::ShareLinks {
                lifetime: Duration::from_secs(7 * 24 * 3600),
                stable,
            },
            show: Default::default(),
        }),
    };
    let by_service: BTreeMap<&str, &Function> =
        [&watcher, &transcriber, &dispatcher, &publisher, &notify]
            .into_iter()
            .map(|f| (f.name, f))
            .collect();

    // The upload, and S3's event for it to ingest.
    let s3 = aws_sdk_s3::Client::new(&account.operator);
    let upload_key = "incoming/weekly show.wav";
    let wav = tone(20, "wav");
    s3.put_object()
        .bucket(BUCKET)
        .key(upload_key)
        .body(wav.clone().into())
        .send()
        .await
        .expect("upload");
    deliver(&account, &ingest, object_created(upload_key, wav.len())).await;

    // Events go over the bus to their subscribers; MediaConvert, Transcribe and Lambda's
    // queue polling are played by the operator.
    let sqs = aws_sdk_sqs::Client::new(&account.operator);
    let mut seen: Vec<String> = Vec::new();
    let mut transcoded_by_service = false;
    let mut upload_sha: Option<String> = None;
    let mut transcribed = false;
    let started = Instant::now();
    while !seen.iter().any(|t| t == "EpisodeSummarized") || slack.accepted().len() < 2 {
        assert!(
            started.elapsed() < Duration::from_secs(240),
            "the episode did not finish; events so far: {seen:?}"
        );
        let received = sqs
            .receive_message()
            .queue_url(&account.queues.tap)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .expect("tap");
        for message in received.messages() {
            let event: Value =
                serde_json::from_str(message.body().unwrap_or_default()).expect("event");
            let detail_type = event["detail-type"].as_str().unwrap_or_default().to_owned();
            seen.push(detail_type.clone());
            if detail_type == "EpisodeUploaded" {
                upload_sha = event["detail"]["source"]["sha256"]
                    .as_str()
                    .map(str::to_owned);
            }
            for service in subscribers(&detail_type) {
                deliver(&account, by_service[service], event.clone()).await;
            }
            sqs.delete_message()
                .queue_url(&account.queues.tap)
                .receipt_handle(message.receipt_handle().unwrap_or_default())
                .send()
                .await
                .expect("delete");
        }
        // MediaConvert finishes the job the watcher created.
        if let Some(job) = mediaconvert.jobs().first()
            && !transcoded_by_service
        {
            let destination = job["settings"]["outputGroups"][0]["outputGroupSettings"]
                ["fileGroupSettings"]["destination"]
                .as_str()
                .expect("destination")
                .to_owned();
            let output = format!("{destination}.mp3");
            let key = output
                .strip_prefix(&format!("s3://{BUCKET}/"))
                .expect("our bucket");
            s3.put_object()
                .bucket(BUCKET)
                .key(key)
                .body(tone(20, "mp3").into())
                .send()
                .await
                .expect("MediaConvert's output");
            deliver(&account, &watcher, transcode_complete(job, &output)).await;
            transcoded_by_service = true;
        }
        // Transcribe finishes its job (moto moves it one state per look).
        if let Some(sha) = upload_sha.as_deref()
            && !transcribed
        {
            let job = transcriber::batch::job_name(sha);
            let output = transcriber::batch::output_key(&job);
            if s3
                .head_object()
                .bucket(BUCKET)
                .key(&output)
                .send()
                .await
                .is_err()
            {
                s3.put_object()
                    .bucket(BUCKET)
                    .key(&output)
                    .body(
                        podflow_fakes::fixtures::aws_text(
                            "transcribe/localstack_transcript_speaker_diarization.json",
                        )
                        .into_bytes()
                        .into(),
                    )
                    .send()
                    .await
                    .expect("Transcribe's output");
            }
            let outcome = transcriber
                .handler
                .handle(&Delivery {
                    message_id: "transcribe-state".into(),
                    body: transcription_complete(&job).to_string(),
                    attempt: 1,
                    deadline: None,
                })
                .await;
            account.no_denials("transcriber on Transcribe's state change");
            match outcome {
                Outcome::Done { emit, .. } if !emit.is_empty() => {
                    transcriber
                        .effects
                        .events
                        .publish(&emit)
                        .await
                        .expect("published");
                    account.no_denials("transcriber publishing");
                    transcribed = true;
                }
                // Not yet COMPLETED in moto: EventBridge would deliver it again.
                Outcome::Retry { .. } | Outcome::Done { .. } => {}
                other => panic!("transcriber: {other:?}"),
            }
        }
        // Lambda's poller hands the prompt jobs to the invoker.
        let jobs = sqs
            .receive_message()
            .queue_url(&account.queues.prompts)
            .max_number_of_messages(10)
            .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
            .send()
            .await
            .expect("prompt jobs");
        for message in jobs.messages() {
            let attributes: serde_json::Map<String, Value> = message
                .attributes()
                .map(|a| {
                    a.iter()
                        .map(|(k, v)| (k.as_str().to_owned(), json!(v)))
                        .collect()
                })
                .unwrap_or_default();
            let payload = json!({"Records": [{
                "messageId": message.message_id(),
                "receiptHandle": message.receipt_handle(),
                "body": message.body(),
                "attributes": attributes,
                "messageAttributes": {},
                "eventSource": "aws:sqs",
                "eventSourceARN": values(&account.queues)["PromptQueue.Arn"],
                "awsRegion": REGION
            }]});
            let response = podflow_lambda::handle_sqs_payload(
                invoker.handler.as_ref(),
                &invoker.effects,
                payload,
            )
            .await
            .expect("a batch");
            account.no_denials("bedrock-invoker on a prompt job");
            assert!(
                response.batch_item_failures.is_empty(),
                "the invoker failed a prompt job: {response:?}"
            );
            sqs.delete_message()
                .queue_url(&account.queues.prompts)
                .receipt_handle(message.receipt_handle().unwrap_or_default())
                .send()
                .await
                .expect("delete");
        }
    }
    account.no_denials("the episode");
    let messages = Value::Array(slack.accepted()).to_string();
    assert!(
        messages.contains("weekly"),
        "Slack heard of the episode: {messages}"
    );
    assert!(seen.iter().any(|t| t == "PromptCompleted"), "{seen:?}");

    // The link function opens a link from the messages under its own role.
    let link_role = role("LinkFunction");
    let secret = publisher::links::link_secret(&link_secret, async || link_role.clone())
        .await
        .expect("the link function reads the secret");
    account.no_denials("the link function reading its secret");
    let start = messages
        .find(LINK_BASE)
        .expect("a stable link in the messages");
    let link: String = messages[start..]
        .chars()
        .take_while(|c| !matches!(c, '|' | '>' | '"' | ' '))
        .collect::<String>()
        // Slack's mrkdwn escapes `&`.
        .replace("&amp;", "&");
    let query = link.split_once('?').map(|(_, q)| q).expect("a query");
    let blobs = podflow_aws::s3::S3BlobStore::new(&link_role, BUCKET, true);
    match publisher::links::open_link(&blobs, &secret, query).await {
        publisher::links::LinkAnswer::Redirect(url) => {
            assert!(url.contains("X-Amz-Expires=600"), "{url}");
        }
        other => panic!("{link}: {other:?}"),
    }
    assert!(
        !seen.iter().any(|t| t.ends_with("Failed")),
        "no step or prompt failed: {seen:?}"
    );
}

#[tokio::test]
async fn a_missing_action_fails_with_its_name() {
    let slack = FakeSlack::start(Vec::new()).await.expect("slack");
    let account = account(&slack.url).await;
    // The dispatcher's policy without dynamodb:Query, which it needs to list prompts.
    let mut policy = contract_tests::template::function_policy(
        &template(),
        "PromptDispatcherFunction",
        &values(&account.queues),
    )
    .expect("policy");
    for statement in policy["Statement"].as_array_mut().into_iter().flatten() {
        if let Some(actions) = statement["Action"].as_array_mut() {
            actions.retain(|a| a != "dynamodb:Query");
        }
    }
    let credentials = account
        .iam
        .principal("dispatcher-without-query", &as_moto_enforces(&policy))
        .await;
    let wiring = account.wiring(config(&account.endpoint, credentials).await);
    account.iam.enforce().await;
    let listed = wiring.store.prompts("ep-1").await;
    assert!(listed.is_err(), "refused");
    let denied = account.denials.list();
    assert_eq!(denied.len(), 1, "{denied:?}");
    assert!(
        denied[0].contains("dispatcher-without-query")
            && denied[0].contains("not authorized to perform: dynamodb:Query"),
        "{denied:?}"
    );
}

/// Slack's request for `payload`, signed with [`SIGNING_SECRET`] now.
fn slack_request(payload: &Value) -> (Vec<(String, String)>, Vec<u8>, u64) {
    use hmac::Mac;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let body = serde_urlencoded::to_string([("payload", payload.to_string())]).expect("form");
    let mut mac =
        hmac::Hmac::<sha2::Sha256>::new_from_slice(SIGNING_SECRET.as_bytes()).expect("key");
    mac.update(format!("v0:{now}:{body}").as_bytes());
    let headers = vec![
        ("x-slack-request-timestamp".to_owned(), now.to_string()),
        (
            "x-slack-signature".to_owned(),
            format!("v0={}", hex::encode(mac.finalize().into_bytes())),
        ),
    ];
    (headers, body.into_bytes(), now)
}

#[tokio::test]
async fn a_decision_from_slack_is_checked_and_sent_under_the_slack_functions_template_policy() {
    use podflow_aws::secrets::read_setting;
    use podflow_core::EpisodeStore;
    use publisher::slack_actions::{SlackActions, SlackHttp, Timing};

    const EPISODE: &str = "slack-iam-0123456789ab";
    let slack = FakeSlack::start(Vec::new()).await.expect("slack");
    let account = account(&slack.url).await;
    let role = account.principal("SlackActionsFunction").await;
    account.iam.enforce().await;

    // The episode and its proposal as the publisher leaves them.
    let operator = podflow_aws::dynamodb::DynamoEpisodeStore::new(&account.operator, TABLE);
    operator
        .upsert_episode(&podflow_core::EpisodeRecord {
            episode_id: EPISODE.into(),
            correlation_id: "corr-1".into(),
            original_name: "slack iam.wav".into(),
            source: podflow_events::BlobRef {
                bucket: None,
                key: format!("incoming/{EPISODE}.wav"),
                size: 1,
                sha256: "0".repeat(64),
            },
            created_at_ms: 0,
        })
        .await
        .expect("episode");
    operator
        .plan_prompts(EPISODE, &[("titles".into(), 1, MODEL.into())])
        .await
        .expect("prompts");
    let proposed = |proposal: u32| {
        podflow_events::EventEnvelope::wrap(&podflow_events::EpisodeProposed {
            schema_version: podflow_events::SCHEMA_VERSION.into(),
            episode_id: EPISODE.into(),
            correlation_id: "corr-1".into(),
            proposal,
            status: podflow_events::SummaryStatus::Complete,
            titles: vec!["Retries Without Tears".into()],
            summary: Some("We talk about retries.".into()),
            chapters: Vec::new(),
            files: Vec::new(),
            failed_prompts: Vec::new(),
        })
    };
    operator
        .record_revision(
            &publisher::approval::proposals_of(EPISODE),
            "outcome-1",
            &proposed,
        )
        .await
        .expect("proposal");
    operator
        .record_work(
            &podflow_core::approval::outcome_key(EPISODE, 1),
            EPISODE,
            &serde_json::Value::String("outcome-1".into()),
        )
        .await
        .expect("the proposal's outcome");

    // Its secrets, read under its role as at its start.
    let secret = read_setting(
        "PODFLOW_SLACK_SIGNING_SECRET",
        &Secret::new(format!("ssm:{SIGNING_SECRET_PARAMETER}")),
        async || role.clone(),
    )
    .await
    .expect("the signing secret");
    let token = read_setting(
        "PODFLOW_SLACK_BOT_TOKEN",
        &Secret::new(format!("ssm:{BOT_TOKEN_PARAMETER}")),
        async || role.clone(),
    )
    .await
    .expect("the bot token");
    account.no_denials("publisher-slack reading its secrets");
    let wiring = account.wiring(role.clone());
    let actions = SlackActions {
        store: wiring.store.clone(),
        events: Arc::new(podflow_aws::eventbridge::EventBridgePublisher::new(
            &role, BUS,
        )),
        slack: Arc::new(
            SlackHttp::with_endpoints(&slack.api_base(), &slack.response_prefix(), Some(token))
                .expect("client"),
        ),
        signing_secret: secret,
        // The emulator is slower than AWS; this test is about permissions, not time.
        timing: Timing {
            answer_within: Duration::from_secs(30),
            views_open: Duration::from_secs(5),
            response_url: Duration::from_secs(5),
        },
    };

    // Reject opens its form (the proposal and the prompts are read), and the submitted
    // form is checked and sent.
    let value = json!({"e": EPISODE, "p": 1}).to_string();
    let click = json!({
        "type": "block_actions",
        "user": {"id": "U0KRQLJ9H", "username": "coyote", "team_id": "T00000000"},
        "trigger_id": slack.trigger_id(),
        "response_url": slack.response_url(),
        "actions": [{"action_id": "podflow_reject", "block_id": "podflow_decide_p1", "value": value, "type": "button"}]
    });
    let (headers, body, now) = slack_request(&click);
    let answered = actions.answer(&headers, &body, now).await;
    account.no_denials("publisher-slack opening the Reject form");
    assert_eq!(answered.status, 200, "{answered:?}");
    let view = slack.views().pop().expect("the form opened");
    let submission = json!({
        "type": "view_submission",
        "user": {"id": "U0KRQLJ9H", "username": "coyote", "team_id": "T00000000"},
        "view": {
            "callback_id": view["callback_id"],
            "private_metadata": view["private_metadata"],
            "state": {"values": {
                "note": {"note": {"type": "plain_text_input", "value": "Too long"}},
                "rerun": {"rerun": {"type": "checkboxes", "selected_options": [{"value": "titles"}]}}
            }}
        }
    });
    let (headers, body, now) = slack_request(&submission);
    let answered = actions.answer(&headers, &body, now).await;
    account.no_denials("publisher-slack sending a rejection");
    assert_eq!(
        (answered.status, answered.body.as_str()),
        (200, ""),
        "{answered:?}"
    );

    // On the bus, as a person's decision.
    let sqs = aws_sdk_sqs::Client::new(&account.operator);
    let started = Instant::now();
    let rejected = loop {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no EpisodeRejected on the bus"
        );
        let received = sqs
            .receive_message()
            .queue_url(&account.queues.tap)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .expect("tap");
        let found = received.messages().iter().find_map(|m| {
            let event: Value = serde_json::from_str(m.body().unwrap_or_default()).ok()?;
            (event["detail-type"] == "EpisodeRejected").then_some(event)
        });
        if let Some(event) = found {
            break event;
        }
    };
    assert_eq!(rejected["source"], "podflow.approval");
    assert_eq!(rejected["detail"]["rerun"], json!(["titles"]));
    assert_eq!(rejected["detail"]["rejected_by"], "U0KRQLJ9H");
    account.no_denials("the Slack actions");
}

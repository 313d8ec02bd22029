//! Slack's interactivity endpoint on Lambda (a function URL): the Approve / Edit / Reject
//! buttons of a proposal's message and the forms they open. Each request is checked against
//! the Slack app's signing secret `PODFLOW_SLACK_SIGNING_SECRET`; a decision is checked
//! against the table (`PODFLOW_TABLE`) and sent to the bus (`PODFLOW_EVENT_BUS`). With
//! `PODFLOW_SLACK_BOT_TOKEN`, Edit and Reject open forms; without, they answer with the
//! `podflow` command to run. Both settings are values or `ssm:NAME` / `secretsmanager:ID` /
//! `file:PATH`, read once at start.
use std::sync::Arc;

use podflow_aws::secrets::read_setting;
use podflow_aws::{dynamodb::DynamoEpisodeStore, eventbridge::EventBridgePublisher};
use podflow_lambda::wiring::{
    WiringError, env, lambda_sdk_config, on_lambda, required_secret_env, secret_env,
};
use publisher::slack_actions::{SlackActions, SlackHttp, Timing};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    podflow_core::telemetry::init("info");
    if !on_lambda() {
        return Err(WiringError::NotOnLambda.into());
    }
    let config = lambda_sdk_config()?;
    const SIGNING_SECRET: &str = "PODFLOW_SLACK_SIGNING_SECRET";
    const BOT_TOKEN: &str = "PODFLOW_SLACK_BOT_TOKEN";
    let setting = required_secret_env(SIGNING_SECRET)?;
    let signing_secret = read_setting(SIGNING_SECRET, &setting, async || config.clone()).await?;
    let bot_token = match secret_env(BOT_TOKEN) {
        Some(setting) => Some(read_setting(BOT_TOKEN, &setting, async || config.clone()).await?),
        None => None,
    };
    let actions = Arc::new(SlackActions {
        store: Arc::new(DynamoEpisodeStore::new(&config, &env("PODFLOW_TABLE")?)),
        events: Arc::new(EventBridgePublisher::new(
            &config,
            &env("PODFLOW_EVENT_BUS")?,
        )),
        slack: Arc::new(SlackHttp::new(bot_token)?),
        signing_secret,
        timing: Timing::default(),
    });
    podflow_lambda::run_http_function_url(move |request| {
        let actions = actions.clone();
        async move {
            if request.method != "POST" {
                return (
                    405,
                    "text/plain; charset=utf-8",
                    "Slack POSTs here\n".to_owned(),
                );
            }
            let answer = actions
                .answer_now(&request.headers, &request.body, request.received_at_ms)
                .await;
            (answer.status, answer.content_type, answer.body)
        }
    })
    .await
    .map_err(|e| anyhow::anyhow!("the Lambda runtime stopped: {e}"))
}

//! Amazon Bedrock through the model-agnostic Converse API. The model is a model id or an
//! inference profile (ARN or id) per prompt.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_bedrockruntime::{
    Client,
    config::{
        ConfigBag, Intercept, RuntimeComponents,
        interceptors::BeforeDeserializationInterceptorContextMut, retry::RetryConfig,
        timeout::TimeoutConfig,
    },
    error::{ProvideErrorMetadata, SdkError},
    operation::converse::ConverseError,
    types::{ContentBlock, ConversationRole, InferenceConfiguration, Message, SystemContentBlock},
};
use aws_smithy_types::body::SdkBody;
use http_body_util::{LengthLimitError, Limited};
use podflow_core::PortError;

use crate::llm::{ChatRequest, ChatResponse, LlmClient, MAX_ANSWER_BYTES, answer_too_large};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Bedrock Converse as an [`LlmClient`].
pub struct BedrockConverse {
    client: Client,
}

impl BedrockConverse {
    /// Credentials, region and endpoint from the usual AWS sources (environment, profile,
    /// instance or Lambda role; `AWS_ENDPOINT_URL_BEDROCK_RUNTIME` for a test double).
    pub async fn from_env(timeout: Duration) -> Self {
        let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        Self::from_conf(aws_sdk_bedrockruntime::config::Builder::from(&sdk), timeout)
    }

    /// From an explicit client configuration. The SDK's own retries are turned off: the
    /// invoker retries through the queue (with backoff, jitter and a DLQ), and two layers
    /// of retries would multiply attempts and hide throttling from the rate limiter.
    pub fn from_conf(builder: aws_sdk_bedrockruntime::config::Builder, timeout: Duration) -> Self {
        let config = builder
            .retry_config(RetryConfig::disabled())
            .timeout_config(TimeoutConfig::builder().operation_timeout(timeout).build())
            .interceptor(CapAnswer)
            .build();
        Self {
            client: Client::from_conf(config),
        }
    }
}

/// Bounds the answer body the SDK reads to [`MAX_ANSWER_BYTES`]: the SDK reads a Converse
/// answer whole before parsing it, so its body is wrapped in a limit before that read, and
/// the read fails once the limit is passed (with [`LengthLimitError`] at the root).
#[derive(Debug)]
struct CapAnswer;

impl Intercept for CapAnswer {
    fn name(&self) -> &'static str {
        "CapAnswer"
    }

    fn modify_before_deserialization(
        &self,
        context: &mut BeforeDeserializationInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let body = context.response_mut().take_body();
        *context.response_mut().body_mut() =
            SdkBody::from_body_1_x(Limited::new(body, MAX_ANSWER_BYTES));
        Ok(())
    }
}

/// Whether an error was caused by the answer passing [`MAX_ANSWER_BYTES`].
fn over_the_cap(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut at = Some(err);
    while let Some(e) = at {
        if e.is::<LengthLimitError>() {
            return true;
        }
        at = e.source();
    }
    false
}

/// Classifies Converse's errors (service-2.json lists exactly these).
fn classify(err: SdkError<ConverseError>) -> PortError {
    if over_the_cap(&err) {
        return answer_too_large("Bedrock");
    }
    match err {
        SdkError::ServiceError(service) => {
            let e = service.into_err();
            let message = format!(
                "Bedrock {}: {}",
                e.code().unwrap_or("error"),
                e.message().unwrap_or("no message")
            );
            match e {
                ConverseError::ThrottlingException(_)
                | ConverseError::ModelNotReadyException(_) => {
                    PortError::throttled(format!("throttled: {message}"), None)
                }
                ConverseError::ModelTimeoutException(_)
                | ConverseError::InternalServerException(_)
                | ConverseError::ServiceUnavailableException(_)
                | ConverseError::ModelErrorException(_) => PortError::transient(message),
                ConverseError::ValidationException(_) => PortError::input(message),
                ConverseError::AccessDeniedException(_)
                | ConverseError::ResourceNotFoundException(_) => PortError::setup(message),
                _ => PortError::transient(message),
            }
        }
        SdkError::TimeoutError(_) => PortError::transient("Bedrock did not answer in time"),
        SdkError::DispatchFailure(e) => {
            PortError::transient(format!("could not reach Bedrock: {e:?}"))
        }
        SdkError::ResponseError(_) => {
            PortError::transient("Bedrock sent an answer that could not be read")
        }
        other => PortError::setup(format!("Bedrock request could not be built: {other}")),
    }
}

#[async_trait]
impl LlmClient for BedrockConverse {
    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse, PortError> {
        let message = Message::builder()
            .role(ConversationRole::User)
            .content(ContentBlock::Text(request.user.clone()))
            .build()
            .map_err(|e| PortError::input(format!("Bedrock message: {e}")))?;
        let mut call = self
            .client
            .converse()
            .model_id(&request.model)
            .messages(message)
            .inference_config(
                InferenceConfiguration::builder()
                    .max_tokens(i32::try_from(request.max_tokens).unwrap_or(i32::MAX))
                    .temperature(request.temperature)
                    .build(),
            );
        if !request.system.is_empty() {
            call = call.system(SystemContentBlock::Text(request.system.clone()));
        }
        let out = call.send().await.map_err(classify)?;
        let text: String = out
            .output()
            .and_then(|o| o.as_message().ok())
            .map(|m| {
                m.content()
                    .iter()
                    .filter_map(|c| c.as_text().ok())
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("")
            })
            .unwrap_or_default();
        if text.trim().is_empty() {
            return Err(PortError::transient("Bedrock answered with no text"));
        }
        let usage = out.usage();
        Ok(ChatResponse {
            text,
            input_tokens: usage.map_or(0, |u| u.input_tokens().max(0) as u32),
            output_tokens: usage.map_or(0, |u| u.output_tokens().max(0) as u32),
        })
    }
}

//! Settings that are secrets (the Slack webhook URL) read from SSM Parameter Store or
//! Secrets Manager, so they never sit in a Lambda's environment in clear text.
//!
//! A setting's value is a reference when it starts with `ssm:` (a parameter name, decrypted)
//! or `secretsmanager:` (a secret id or ARN); anything else is the value itself.

use aws_config::SdkConfig;
use aws_sdk_secretsmanager::error::ProvideErrorMetadata as _;

/// Why a secret could not be read. Names the reference, never the value.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("cannot read {reference}: {code}: {message}")]
    Unreadable {
        reference: String,
        code: String,
        message: String,
    },
    #[error("{reference} holds no text value")]
    Empty { reference: String },
}

/// Whether a setting names a secret (and so needs AWS to be read).
pub fn is_reference(setting: &str) -> bool {
    setting.starts_with("ssm:") || setting.starts_with("secretsmanager:")
}

/// The value a setting names.
pub async fn resolve(config: &SdkConfig, setting: &str) -> Result<String, SecretError> {
    let unreadable = |code: Option<&str>, message: Option<&str>| SecretError::Unreadable {
        reference: setting.to_owned(),
        code: code.unwrap_or("no answer").to_owned(),
        message: message.unwrap_or("the service did not answer").to_owned(),
    };
    let value = if let Some(name) = setting.strip_prefix("ssm:") {
        let out = aws_sdk_ssm::Client::new(config)
            .get_parameter()
            .name(name)
            .with_decryption(true)
            .send()
            .await
            .map_err(|e| unreadable(e.code(), e.message()))?;
        out.parameter.and_then(|p| p.value)
    } else if let Some(id) = setting.strip_prefix("secretsmanager:") {
        let out = aws_sdk_secretsmanager::Client::new(config)
            .get_secret_value()
            .secret_id(id)
            .send()
            .await
            .map_err(|e| unreadable(e.code(), e.message()))?;
        out.secret_string
    } else {
        return Ok(setting.to_owned());
    };
    value
        .filter(|v| !v.trim().is_empty())
        .map(|v| v.trim().to_owned())
        .ok_or_else(|| SecretError::Empty {
            reference: setting.to_owned(),
        })
}

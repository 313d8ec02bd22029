//! Settings that are secrets (the Slack webhook URL) read from SSM Parameter Store or
//! Secrets Manager, so they never sit in a Lambda's environment in clear text.
//!
//! A setting's value is a reference when it starts with `ssm:` (a parameter name, decrypted)
//! or `secretsmanager:` (a secret id or ARN); anything else is the value itself.

use aws_config::SdkConfig;
use serde_json::json;

use crate::signed::{CallError, SignedHttp};

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

/// The value a setting names. (GetParameter and GetSecretValue are called over their
/// awsJson1.1 APIs, see `crate::signed`.)
pub async fn resolve(config: &SdkConfig, setting: &str) -> Result<String, SecretError> {
    let unreadable = |e: CallError| SecretError::Unreadable {
        reference: setting.to_owned(),
        code: e.code.unwrap_or_else(|| "no answer".to_owned()),
        message: e.message,
    };
    let aws = || SignedHttp::new(config);
    let value = if let Some(name) = setting.strip_prefix("ssm:") {
        let out = aws()
            .json_rpc(
                "ssm",
                "AmazonSSM.GetParameter",
                &json!({"Name": name, "WithDecryption": true}),
            )
            .await
            .map_err(unreadable)?;
        out["Parameter"]["Value"].as_str().map(str::to_owned)
    } else if let Some(id) = setting.strip_prefix("secretsmanager:") {
        let out = aws()
            .json_rpc(
                "secretsmanager",
                "secretsmanager.GetSecretValue",
                &json!({"SecretId": id}),
            )
            .await
            .map_err(unreadable)?;
        out["SecretString"].as_str().map(str::to_owned)
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

//! Settings that are secrets (the LLM key, the Slack webhook URL, Slack's signing secret and
//! bot token, the link secret), read from SSM Parameter Store, Secrets Manager or a file, so
//! they need not sit in an environment in clear text. Values travel as [`Secret`]s, which
//! never print.
//!
//! A setting's value is a reference when it starts with `ssm:` (a parameter name, decrypted),
//! `secretsmanager:` (a secret id or ARN) or `file:` (a file holding the value, such as a
//! mounted secret); anything else is the value itself.

use aws_config::SdkConfig;
use podflow_core::{PortError, secret::Secret};
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

/// Whether a setting names a secret in AWS (and so needs AWS to be read).
fn is_aws_reference(setting: &str) -> bool {
    setting.starts_with("ssm:") || setting.starts_with("secretsmanager:")
}

/// Whether a setting names where its secret is rather than holding it.
pub fn is_reference(setting: &str) -> bool {
    is_aws_reference(setting) || setting.starts_with("file:")
}

/// A secret setting's value: the setting itself, or what its reference names, read with
/// `aws`'s credentials (asked for only then). `name` (the setting's name) is in every error;
/// the value never is.
pub async fn read_setting(
    name: &str,
    setting: &Secret,
    aws: impl AsyncFnOnce() -> SdkConfig,
) -> Result<Secret, PortError> {
    let value = if let Some(path) = setting.expose().strip_prefix("file:") {
        // The error names the file, never what it holds.
        let text = std::fs::read_to_string(path).map_err(|e| {
            PortError::setup(format!(
                "{name}: cannot read {path}: {}; give a readable file holding only the secret",
                e.kind()
            ))
        })?;
        Secret::new(text.trim())
    } else if is_aws_reference(setting.expose()) {
        resolve(&aws().await, setting)
            .await
            .map_err(|e| PortError::setup(format!("{name}: {e}")))?
    } else {
        Secret::new(setting.expose().trim())
    };
    if value.expose().is_empty() {
        return Err(PortError::setup(format!("{name} is empty")));
    }
    Ok(value)
}

/// The value a setting names. (GetParameter and GetSecretValue are called over their
/// awsJson1.1 APIs, see `crate::signed`.)
pub async fn resolve(config: &SdkConfig, setting: &Secret) -> Result<Secret, SecretError> {
    let setting = setting.expose();
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
        return Ok(Secret::new(setting));
    };
    value
        .filter(|v| !v.trim().is_empty())
        .map(|v| Secret::new(v.trim()))
        .ok_or_else(|| SecretError::Empty {
            reference: setting.to_owned(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn read(setting: &str) -> Result<Secret, PortError> {
        read_setting("PODFLOW_LLM_API_KEY", &Secret::new(setting), async || {
            unreachable!("no AWS call for a value or a file")
        })
        .await
    }

    #[tokio::test]
    async fn a_file_reference_is_read_and_its_errors_hold_no_value() {
        let path = std::env::temp_dir().join(format!("podflow-secret-{}", std::process::id()));
        std::fs::write(&path, "sk-MARKER\n").expect("write");
        let value = read(&format!("file:{}", path.display()))
            .await
            .expect("read");
        assert_eq!(value.expose(), "sk-MARKER");
        std::fs::write(&path, " \n").expect("write");
        let empty = read(&format!("file:{}", path.display()))
            .await
            .expect_err("empty");
        assert_eq!(empty.to_string(), "PODFLOW_LLM_API_KEY is empty");
        std::fs::remove_file(&path).expect("remove");
        let missing = read(&format!("file:{}", path.display()))
            .await
            .expect_err("missing")
            .to_string();
        assert!(
            missing.starts_with("PODFLOW_LLM_API_KEY: cannot read /")
                && missing.contains("not found"),
            "{missing}"
        );
        assert_eq!(
            read(" sk-plain ").await.expect("value").expose(),
            "sk-plain"
        );
    }
}

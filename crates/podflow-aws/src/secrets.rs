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

/// Where in AWS a setting says its secret is.
enum AwsReference<'a> {
    /// An SSM parameter's name (a SecureString is decrypted).
    Ssm(&'a str),
    /// A Secrets Manager secret's id or ARN.
    SecretsManager(&'a str),
}

fn aws_reference(setting: &str) -> Option<AwsReference<'_>> {
    if let Some(name) = setting.strip_prefix("ssm:") {
        Some(AwsReference::Ssm(name))
    } else {
        setting
            .strip_prefix("secretsmanager:")
            .map(AwsReference::SecretsManager)
    }
}

/// Whether a setting names where its secret is rather than holding it.
pub fn is_reference(setting: &str) -> bool {
    let setting = setting.trim();
    aws_reference(setting).is_some() || setting.starts_with("file:")
}

/// A secret setting's value: the setting itself, or what its reference names, read with
/// `aws`'s credentials (asked for only then). `name` (the setting's name) is in every error;
/// the value never is. Surrounding whitespace is no part of a setting or a value.
pub async fn read_setting(
    name: &str,
    setting: &Secret,
    aws: impl AsyncFnOnce() -> SdkConfig,
) -> Result<Secret, PortError> {
    let setting = setting.expose().trim();
    let value = if let Some(path) = setting.strip_prefix("file:") {
        // The error names the file, never what it holds.
        let text = std::fs::read_to_string(path).map_err(|e| {
            PortError::setup(format!(
                "{name}: cannot read {path}: {}; give a readable file holding only the secret",
                e.kind()
            ))
        })?;
        Secret::new(text.trim())
    } else if let Some(reference) = aws_reference(setting) {
        resolve(&aws().await, setting, reference)
            .await
            .map_err(|e| PortError::setup(format!("{name}: {e}")))?
    } else {
        Secret::new(setting)
    };
    if value.expose().is_empty() {
        return Err(PortError::setup(format!("{name} is empty")));
    }
    Ok(value)
}

/// The value `setting` names in AWS. (GetParameter and GetSecretValue are called over their
/// awsJson1.1 APIs, see `crate::signed`.)
async fn resolve(
    config: &SdkConfig,
    setting: &str,
    reference: AwsReference<'_>,
) -> Result<Secret, SecretError> {
    let unreadable = |e: CallError| SecretError::Unreadable {
        reference: setting.to_owned(),
        code: e.code.unwrap_or_else(|| "no answer".to_owned()),
        message: e.message,
    };
    let aws = SignedHttp::new(config);
    let value = match reference {
        AwsReference::Ssm(name) => {
            let out = aws
                .json_rpc(
                    "ssm",
                    "AmazonSSM.GetParameter",
                    &json!({"Name": name, "WithDecryption": true}),
                )
                .await
                .map_err(unreadable)?;
            out["Parameter"]["Value"].as_str().map(str::to_owned)
        }
        AwsReference::SecretsManager(id) => {
            let out = aws
                .json_rpc(
                    "secretsmanager",
                    "secretsmanager.GetSecretValue",
                    &json!({"SecretId": id}),
                )
                .await
                .map_err(unreadable)?;
            out["SecretString"].as_str().map(str::to_owned)
        }
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
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("llm-key");
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
        // A reference with whitespace around it is still a reference, never the value.
        std::fs::write(&path, "sk-FROM-FILE").expect("write");
        let spaced = read(&format!("  file:{}\n", path.display()))
            .await
            .expect("read");
        assert_eq!(spaced.expose(), "sk-FROM-FILE");
    }
}

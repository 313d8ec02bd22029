//! AWS Elemental MediaConvert as podflow's transcode jobs: one audio-only job per episode
//! audio, m4a (or any input MediaConvert reads) → a loudness-normalised CBR MP3.
//!
//! Written against MediaConvert's REST-JSON API (`POST /2017-08-29/jobs`, SigV4-signed)
//! rather than with `aws-sdk-mediaconvert`: that client carries serialisers and parsers for
//! every job setting MediaConvert has — 1.1 MiB of code, measured, in a function whose whole
//! budget is 10 MB — while podflow sends one fixed job shape and reads back only its id.
//! Signing is `aws-sigv4`'s, the same code the SDK clients use.

use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sigv4::{
    http_request::{SignableBody, SignableRequest, SigningSettings, sign},
    sign::v4,
};
use podflow_core::{JobError, TranscodeJobSpec, TranscodeJobs};
use serde_json::{Value, json};

use crate::{Transience, failure_kind};

/// Podcast loudness for stereo (what the local ffmpeg transcoder aims at too).
const TARGET_LKFS: f64 = -16.0;

pub struct MediaConvertJobs {
    http: reqwest::Client,
    /// `https://mediaconvert.<region>.amazonaws.com`, or the configuration's endpoint URL.
    endpoint: String,
    region: String,
    credentials: Option<SharedCredentialsProvider>,
    /// The role MediaConvert assumes to read the upload and write the MP3.
    role_arn: String,
    bucket: String,
}

impl MediaConvertJobs {
    pub fn new(config: &SdkConfig, role_arn: &str, bucket: &str) -> Self {
        // reqwest is built without a default crypto provider (to share the AWS SDK's).
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let region = config
            .region()
            .map_or_else(|| "us-east-1".to_owned(), ToString::to_string);
        let endpoint = config.endpoint_url().map_or_else(
            || format!("https://mediaconvert.{region}.amazonaws.com"),
            |url| url.trim_end_matches('/').to_owned(),
        );
        Self {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap_or_default(),
            endpoint,
            region,
            credentials: config.credentials_provider(),
            role_arn: role_arn.to_owned(),
            bucket: bucket.to_owned(),
        }
    }

    /// The CreateJob request body: one input (its default audio track), one file output:
    /// MP3 at the bitrate, 44.1 kHz stereo, ITU BS.1770-3 loudness correction to −16 LKFS.
    fn create_job_body(&self, job: &TranscodeJobSpec) -> Value {
        let bucket = job.media.bucket.as_deref().unwrap_or(&self.bucket);
        let metadata: serde_json::Map<String, Value> = job
            .metadata
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        json!({
            "role": self.role_arn,
            "clientRequestToken": job.idempotency_token,
            "userMetadata": metadata,
            "settings": {
                "inputs": [{
                    "fileInput": format!("s3://{bucket}/{}", job.media.key),
                    "audioSelectors": {
                        "Audio Selector 1": { "defaultSelection": "DEFAULT" }
                    }
                }],
                "outputGroups": [{
                    "name": "podcast mp3",
                    "outputGroupSettings": {
                        "type": "FILE_GROUP_SETTINGS",
                        "fileGroupSettings": {
                            "destination": format!("s3://{}/{}", self.bucket, job.output_base)
                        }
                    },
                    "outputs": [{
                        "containerSettings": { "container": "RAW" },
                        "extension": "mp3",
                        "audioDescriptions": [{
                            "audioSourceName": "Audio Selector 1",
                            "codecSettings": {
                                "codec": "MP3",
                                "mp3Settings": {
                                    "bitrate": job.bitrate_kbps * 1000,
                                    "channels": 2,
                                    "rateControlMode": "CBR",
                                    "sampleRate": 44_100
                                }
                            },
                            "audioNormalizationSettings": {
                                "algorithm": "ITU_BS_1770_3",
                                "algorithmControl": "CORRECT_AUDIO",
                                "targetLkfs": TARGET_LKFS
                            }
                        }]
                    }]
                }]
            }
        })
    }

    /// The SigV4 headers for `body` sent to `url`.
    async fn signed_headers(
        &self,
        url: &str,
        body: &[u8],
    ) -> Result<Vec<(String, String)>, String> {
        let provider = self
            .credentials
            .as_ref()
            .ok_or("no AWS credentials are configured")?;
        let identity = provider
            .provide_credentials()
            .await
            .map_err(|e| format!("no AWS credentials: {e}"))?
            .into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name("mediaconvert")
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| format!("signing: {e}"))?
            .into();
        let request = SignableRequest::new(
            "POST",
            url,
            [("content-type", "application/json")].into_iter(),
            SignableBody::Bytes(body),
        )
        .map_err(|e| format!("signing: {e}"))?;
        let (instructions, _) = sign(request, &params)
            .map_err(|e| format!("signing: {e}"))?
            .into_parts();
        Ok(instructions
            .headers()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect())
    }
}

fn job_error(kind: Transience, message: String) -> JobError {
    match kind {
        Transience::Transient => JobError::Transient(message),
        Transience::Permanent => JobError::Permanent(message),
    }
}

/// The error's code as the REST-JSON protocol carries it: the `x-amzn-errortype` header
/// (`Code:namespace…`) or the body's `__type`.
fn error_code(header: Option<&str>, body: &Value) -> Option<String> {
    let raw = header.or_else(|| body["__type"].as_str())?;
    let code = raw.rsplit('#').next().unwrap_or(raw);
    Some(code.split(':').next().unwrap_or(code).to_owned())
}

#[async_trait]
impl TranscodeJobs for MediaConvertJobs {
    async fn create(&self, job: &TranscodeJobSpec) -> Result<String, JobError> {
        let what = format!("creating the MediaConvert job for {}", job.media.key);
        let url = format!("{}/2017-08-29/jobs", self.endpoint);
        let body = self.create_job_body(job).to_string();
        let headers = self
            .signed_headers(&url, body.as_bytes())
            .await
            .map_err(|e| JobError::Transient(format!("{what}: {e}")))?;
        let mut request = self
            .http
            .post(&url)
            .header("content-type", "application/json");
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let response = request
            .body(body)
            .send()
            .await
            // No answer: a network problem or a timeout.
            .map_err(|e| JobError::Transient(format!("{what}: no answer ({e})")))?;
        let status = response.status().as_u16();
        let header = response
            .headers()
            .get("x-amzn-errortype")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let answer: Value = response.json().await.unwrap_or(Value::Null);
        if !(200..300).contains(&status) {
            let code = error_code(header.as_deref(), &answer);
            let message = answer["message"]
                .as_str()
                .or_else(|| answer["Message"].as_str())
                .unwrap_or("no message");
            return Err(job_error(
                failure_kind(code.as_deref(), Some(status)),
                format!(
                    "{what}: {} ({message})",
                    code.as_deref().unwrap_or("HTTP error")
                ),
            ));
        }
        answer["job"]["id"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| JobError::Transient("MediaConvert answered without a job id".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_are_read_from_the_header_or_the_body() {
        assert_eq!(
            error_code(
                Some("TooManyRequestsException:http://internal.amazon.com/coral/"),
                &Value::Null
            )
            .as_deref(),
            Some("TooManyRequestsException")
        );
        let body = json!({"__type": "com.amazonaws.mediaconvert#BadRequestException"});
        assert_eq!(
            error_code(None, &body).as_deref(),
            Some("BadRequestException")
        );
        assert_eq!(error_code(None, &Value::Null), None);
    }
}

//! AWS Elemental MediaConvert as podflow's transcode jobs: one audio-only job per episode
//! audio, m4a (or any input MediaConvert reads) → a loudness-normalised CBR MP3.
//!
//! Written against MediaConvert's REST-JSON API (`POST /2017-08-29/jobs`, SigV4-signed, see
//! `crate::signed`) rather than with `aws-sdk-mediaconvert`: podflow sends one fixed job
//! shape and reads back only its id.

use async_trait::async_trait;
use aws_config::SdkConfig;
use podflow_core::{PortError, TranscodeJobSpec, TranscodeJobs};
use serde_json::{Value, json};

use crate::signed::SignedHttp;

/// Podcast loudness for stereo (what the local ffmpeg transcoder aims at too).
const TARGET_LKFS: f64 = -16.0;
const TRUE_PEAK_LIMIT_DBFS: f64 = -2.0;

pub struct MediaConvertJobs {
    http: SignedHttp,
    /// The role MediaConvert assumes to read the upload and write the MP3.
    role_arn: String,
    bucket: String,
}

impl MediaConvertJobs {
    pub fn new(config: &SdkConfig, role_arn: &str, bucket: &str) -> Self {
        Self {
            http: SignedHttp::new(config),
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
                                "targetLkfs": TARGET_LKFS,
                                // Podcast platforms ask for true peaks at or under -1 dBTP;
                                // -2 leaves room for what MP3 encoding adds (MediaConvert's
                                // default, 0, limits nothing).
                                "truePeakLimiterThreshold": TRUE_PEAK_LIMIT_DBFS
                            }
                        }]
                    }]
                }]
            }
        })
    }
}

#[async_trait]
impl TranscodeJobs for MediaConvertJobs {
    async fn create(&self, job: &TranscodeJobSpec) -> Result<String, PortError> {
        let what = format!("creating the MediaConvert job for {}", job.media.key);
        let url = format!("{}/2017-08-29/jobs", self.http.endpoint("mediaconvert"));
        let answer = self
            .http
            .post_json(
                "mediaconvert",
                &url,
                &[("content-type", "application/json")],
                &self.create_job_body(job),
            )
            .await
            .map_err(|e| PortError::new(e.kind, format!("{what}: {e}")))?;
        answer["job"]["id"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| PortError::transient("MediaConvert answered without a job id"))
    }
}

//! Amazon Transcribe as podflow's batch transcription jobs.

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_transcribe::{
    Client,
    types::{LanguageCode, Media, Settings, TranscriptionJobStatus},
};
use podflow_core::{JobState, PortError, TranscriptionJobSpec, TranscriptionJobs};

use crate::sdk_failure;

/// Starts jobs with speaker labels on, writing their output into podflow's bucket.
pub struct TranscribeJobs {
    client: Client,
    bucket: String,
    language: LanguageCode,
}

impl TranscribeJobs {
    /// `bucket`: where outputs go (the media's bucket); `language`: a Transcribe language
    /// code such as `en-US`.
    pub fn new(config: &SdkConfig, bucket: &str, language: &str) -> Self {
        Self {
            client: Client::new(config),
            bucket: bucket.to_owned(),
            language: LanguageCode::from(language),
        }
    }
}

#[async_trait]
impl TranscriptionJobs for TranscribeJobs {
    async fn start(&self, job: &TranscriptionJobSpec) -> Result<bool, PortError> {
        let bucket = job.media.bucket.as_deref().unwrap_or(&self.bucket);
        let uri = format!("s3://{bucket}/{}", job.media.key);
        let settings = Settings::builder()
            .show_speaker_labels(true)
            .max_speaker_labels(job.max_speakers as i32)
            .build();
        let sent = self
            .client
            .start_transcription_job()
            .transcription_job_name(&job.name)
            .media(Media::builder().media_file_uri(&uri).build())
            .language_code(self.language.clone())
            .output_bucket_name(&self.bucket)
            .output_key(&job.output_key)
            .settings(settings)
            .send()
            .await;
        match sent {
            Ok(_) => Ok(true),
            // The name is the audio's hash: the job exists, so the work is under way.
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conflict_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(sdk_failure(
                &format!("starting Transcribe job {}", job.name),
                &e,
            )),
        }
    }

    async fn state(&self, name: &str) -> Result<JobState, PortError> {
        let got = self
            .client
            .get_transcription_job()
            .transcription_job_name(name)
            .send()
            .await
            .map_err(|e| sdk_failure(&format!("reading Transcribe job {name}"), &e))?;
        let job = got.transcription_job();
        Ok(match job.and_then(|j| j.transcription_job_status()) {
            Some(TranscriptionJobStatus::Completed) => JobState::Completed,
            Some(TranscriptionJobStatus::Failed) => JobState::Failed(
                job.and_then(|j| j.failure_reason())
                    .unwrap_or("no reason given")
                    .to_owned(),
            ),
            _ => JobState::Running,
        })
    }
}

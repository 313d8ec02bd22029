//! AWS Elemental MediaConvert as podflow's transcode jobs: one audio-only job per episode
//! audio, m4a (or any input MediaConvert reads) → a loudness-normalised CBR MP3.

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_mediaconvert::{
    Client,
    types::{
        AudioCodec, AudioCodecSettings, AudioDefaultSelection, AudioDescription,
        AudioNormalizationAlgorithm, AudioNormalizationAlgorithmControl,
        AudioNormalizationSettings, AudioSelector, ContainerSettings, ContainerType,
        FileGroupSettings, Input, JobSettings, Mp3RateControlMode, Mp3Settings, Output,
        OutputGroup, OutputGroupSettings, OutputGroupType,
    },
};
use podflow_core::{JobError, TranscodeJobSpec, TranscodeJobs};

use crate::{Transience, sdk_failure};

/// Podcast loudness for stereo (what the local ffmpeg transcoder aims at too).
const TARGET_LKFS: f64 = -16.0;

pub struct MediaConvertJobs {
    client: Client,
    /// The role MediaConvert assumes to read the upload and write the MP3.
    role_arn: String,
    bucket: String,
}

impl MediaConvertJobs {
    pub fn new(config: &SdkConfig, role_arn: &str, bucket: &str) -> Self {
        Self {
            client: Client::new(config),
            role_arn: role_arn.to_owned(),
            bucket: bucket.to_owned(),
        }
    }

    /// One input (its default audio track), one file output: MP3 at the bitrate, 44.1 kHz
    /// stereo, ITU BS.1770-3 loudness correction to −16 LKFS.
    fn settings(&self, job: &TranscodeJobSpec) -> JobSettings {
        let bucket = job.media.bucket.as_deref().unwrap_or(&self.bucket);
        let input = Input::builder()
            .file_input(format!("s3://{bucket}/{}", job.media.key))
            .audio_selectors(
                "Audio Selector 1",
                AudioSelector::builder()
                    .default_selection(AudioDefaultSelection::Default)
                    .build(),
            )
            .build();
        let mp3 = Mp3Settings::builder()
            .bitrate(job.bitrate_kbps as i32 * 1000)
            .channels(2)
            .rate_control_mode(Mp3RateControlMode::Cbr)
            .sample_rate(44_100)
            .build();
        let audio = AudioDescription::builder()
            .audio_source_name("Audio Selector 1")
            .codec_settings(
                AudioCodecSettings::builder()
                    .codec(AudioCodec::Mp3)
                    .mp3_settings(mp3)
                    .build(),
            )
            .audio_normalization_settings(
                AudioNormalizationSettings::builder()
                    .algorithm(AudioNormalizationAlgorithm::ItuBs17703)
                    .algorithm_control(AudioNormalizationAlgorithmControl::CorrectAudio)
                    .target_lkfs(TARGET_LKFS)
                    .build(),
            )
            .build();
        let output = Output::builder()
            .container_settings(
                ContainerSettings::builder()
                    .container(ContainerType::Raw)
                    .build(),
            )
            .audio_descriptions(audio)
            .extension("mp3")
            .build();
        let group = OutputGroup::builder()
            .name("podcast mp3")
            .output_group_settings(
                OutputGroupSettings::builder()
                    .r#type(OutputGroupType::FileGroupSettings)
                    .file_group_settings(
                        FileGroupSettings::builder()
                            .destination(format!("s3://{}/{}", self.bucket, job.output_base))
                            .build(),
                    )
                    .build(),
            )
            .outputs(output)
            .build();
        JobSettings::builder()
            .inputs(input)
            .output_groups(group)
            .build()
    }
}

#[async_trait]
impl TranscodeJobs for MediaConvertJobs {
    async fn create(&self, job: &TranscodeJobSpec) -> Result<String, JobError> {
        let mut request = self
            .client
            .create_job()
            .role(&self.role_arn)
            .settings(self.settings(job))
            .client_request_token(&job.idempotency_token);
        for (k, v) in &job.metadata {
            request = request.user_metadata(k, v);
        }
        let created = request.send().await.map_err(|e| {
            let (kind, message) = sdk_failure(
                &format!("creating the MediaConvert job for {}", job.media.key),
                &e,
            );
            match kind {
                Transience::Transient => JobError::Transient(message),
                Transience::Permanent => JobError::Permanent(message),
            }
        })?;
        created
            .job()
            .and_then(|j| j.id())
            .map(str::to_owned)
            .ok_or_else(|| JobError::Transient("MediaConvert answered without a job id".into()))
    }
}

//! Amazon Transcribe as podflow's batch transcription jobs, and the language they are
//! given (`PODFLOW_TRANSCRIBE_LANGUAGE`).

use std::str::FromStr;

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_transcribe::{
    Client,
    types::{LanguageCode, Media, Settings, TranscriptionJobStatus},
};
use podflow_core::{
    JobState, PortError, TranscriptionJobSpec, TranscriptionJobs,
    language::{self, Language, LanguageError},
};

use crate::sdk_failure;

/// The language a job transcribes in.
#[derive(Debug, Clone, PartialEq)]
pub enum TranscribeLanguage {
    /// `auto`: Transcribe identifies the file's dominant language (`IdentifyLanguage`, and
    /// no `LanguageCode`, which Transcribe refuses beside it).
    Identify,
    /// One of Transcribe's language codes (`de-DE`).
    Code(LanguageCode),
}

/// Why a `PODFLOW_TRANSCRIBE_LANGUAGE` was refused.
#[derive(Debug, thiserror::Error)]
pub enum TranscribeLanguageError {
    #[error(
        "language `{0}` is not one of Amazon Transcribe's language codes: give `auto`, a code such as en-US or de-DE, or a two-letter language such as de"
    )]
    UnknownCode(String),
    #[error(
        "Amazon Transcribe has no language code for `{code}` ({name}): give `auto` or one of its codes (en-US, de-DE…)"
    )]
    NotInTranscribe { code: String, name: String },
    #[error(transparent)]
    Language(#[from] LanguageError),
}

/// The code a two-letter language maps to where Transcribe has it in several regions: the
/// one with the most speakers or the language's home country. A language in one region
/// only (`nl` → nl-NL) needs no entry; a full code (`en-GB`, `pt-PT`) chooses another.
const DEFAULT_REGIONS: &[(&str, &str)] = &[
    ("ar", "ar-SA"),
    ("cy", "cy-GB"),
    ("de", "de-DE"),
    ("en", "en-US"),
    ("es", "es-ES"),
    ("et", "et-EE"),
    ("fa", "fa-IR"),
    ("fr", "fr-FR"),
    ("pt", "pt-BR"),
    ("sw", "sw-KE"),
    ("zh", "zh-CN"),
];

impl FromStr for TranscribeLanguage {
    type Err = TranscribeLanguageError;

    /// `auto`, a Transcribe code in any case (`de-DE`, `de-de`), or a two-letter ISO 639-1
    /// code mapped to a region ([`DEFAULT_REGIONS`], else the one region Transcribe has).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        if let Some((lang, region)) = text.split_once(['-', '_']) {
            let code = format!(
                "{}-{}",
                lang.to_ascii_lowercase(),
                region.to_ascii_uppercase()
            );
            return if LanguageCode::values().contains(&code.as_str()) {
                Ok(Self::Code(LanguageCode::from(code.as_str())))
            } else {
                Err(TranscribeLanguageError::UnknownCode(text.to_owned()))
            };
        }
        let code = match text.parse::<Language>()? {
            Language::Auto => return Ok(Self::Identify),
            Language::Code(code) => code,
        };
        let preferred = DEFAULT_REGIONS
            .iter()
            .find(|(lang, _)| *lang == code)
            .map(|(_, full)| *full);
        let prefix = format!("{code}-");
        let regional: Vec<&str> = LanguageCode::values()
            .iter()
            .copied()
            .filter(|c| c.starts_with(&prefix))
            .collect();
        match (preferred, regional.as_slice()) {
            (Some(full), _) => Ok(Self::Code(LanguageCode::from(full))),
            (None, [only]) => Ok(Self::Code(LanguageCode::from(*only))),
            _ => Err(TranscribeLanguageError::NotInTranscribe {
                name: language::display_name(&code),
                code,
            }),
        }
    }
}

/// Starts jobs with speaker labels on, writing their output into podflow's bucket.
pub struct TranscribeJobs {
    client: Client,
    bucket: String,
    language: TranscribeLanguage,
}

impl TranscribeJobs {
    /// `bucket`: where outputs go (the media's bucket); `language`: identified, or a
    /// Transcribe language code.
    pub fn new(config: &SdkConfig, bucket: &str, language: TranscribeLanguage) -> Self {
        Self {
            client: Client::new(config),
            bucket: bucket.to_owned(),
            language,
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
        let request = self
            .client
            .start_transcription_job()
            .transcription_job_name(&job.name)
            .media(Media::builder().media_file_uri(&uri).build())
            .output_bucket_name(&self.bucket)
            .output_key(&job.output_key)
            .settings(settings);
        // Exactly one of the two: Transcribe fails a job that has both. Speaker labels work
        // with either.
        let request = match &self.language {
            TranscribeLanguage::Identify => request.identify_language(true),
            TranscribeLanguage::Code(code) => request.language_code(code.clone()),
        };
        let sent = request.send().await;
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
            Some(TranscriptionJobStatus::Completed) => JobState::Completed {
                language: job
                    .and_then(|j| j.language_code())
                    .map(|c| c.as_str().to_owned()),
            },
            Some(TranscriptionJobStatus::Failed) => JobState::Failed(
                job.and_then(|j| j.failure_reason())
                    .unwrap_or("no reason given")
                    .to_owned(),
            ),
            _ => JobState::Running,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> String {
        match text.parse::<TranscribeLanguage>() {
            Ok(TranscribeLanguage::Identify) => "identify".into(),
            Ok(TranscribeLanguage::Code(code)) => code.as_str().to_owned(),
            Err(e) => format!("error: {e}"),
        }
    }

    #[test]
    fn auto_identifies_and_codes_map_to_transcribes() {
        assert_eq!(parsed("auto"), "identify");
        assert_eq!(parsed("AUTO"), "identify");
        // Full codes, in any case, as they are.
        assert_eq!(parsed("en-GB"), "en-GB");
        assert_eq!(parsed("pt_pt"), "pt-PT");
        // Two letters: the documented default region, or the only one there is.
        assert_eq!(parsed("de"), "de-DE");
        assert_eq!(parsed("en"), "en-US");
        assert_eq!(parsed("pt"), "pt-BR");
        assert_eq!(parsed("nl"), "nl-NL");
        assert_eq!(parsed("ja"), "ja-JP");
    }

    #[test]
    fn every_default_region_is_a_transcribe_code() {
        for (lang, full) in DEFAULT_REGIONS {
            assert!(LanguageCode::values().contains(full), "{full}");
            assert!(full.starts_with(&format!("{lang}-")), "{full}");
        }
    }

    #[test]
    fn what_transcribe_cannot_take_is_refused_with_the_reason() {
        assert!(parsed("de-XX").contains("not one of Amazon Transcribe's language codes"));
        assert!(parsed("xx").contains("is not an ISO 639-1 code"));
        assert!(parsed("German").contains("two-letter ISO 639-1 code"));
        // An ISO language Transcribe does not have.
        assert!(
            parsed("kl").contains("no language code for `kl` (Kalaallisut)"),
            "{}",
            parsed("kl")
        );
    }
}

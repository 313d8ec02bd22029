//! Which service consumes which event — declared once. The local router delivers by this
//! table, and `infra/` must declare an EventBridge rule per entry (checked by a test there).

/// The FIFO queue of prompt jobs (the invoker drains it) and its dead-letter queue: their
/// names locally; on AWS the stack's queues, found by URL.
pub const PROMPT_QUEUE: &str = "prompts.fifo";
pub const PROMPT_DLQ: &str = "prompts-dlq.fifo";

/// One subscription: events of these detail-types go to this service's inbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// The consuming service (also the name of its local inbox queue).
    pub service: &'static str,
    pub detail_types: &'static [&'static str],
}

/// The routing table (design §2).
pub const ROUTES: &[Route] = &[
    Route {
        service: "transcode-watcher",
        detail_types: &["EpisodeUploaded"],
    },
    Route {
        service: "transcriber",
        detail_types: &["EpisodeUploaded"],
    },
    // A rejected proposal's chosen prompts run again.
    Route {
        service: "prompt-dispatcher",
        detail_types: &["EpisodeTranscribed", "EpisodeRejected"],
    },
    Route {
        service: "publisher",
        detail_types: &[
            "EpisodeTranscoded",
            "TranscodeFailed",
            "EpisodeTranscribed",
            "TranscriptionFailed",
            "PromptCompleted",
            "PromptFailed",
            "EpisodeApproved",
            "EpisodeRejected",
        ],
    },
    // The publisher's notifier: the MP3 is announced as soon as it exists, and each
    // summary revision once; a Slack outage never holds back EpisodeSummarized.
    Route {
        service: "publisher-notify",
        detail_types: &["EpisodeTranscoded", "EpisodeSummarized", "EpisodeProposed"],
    },
];

/// The services an event of this detail-type is delivered to.
pub fn subscribers(detail_type: &str) -> impl Iterator<Item = &'static str> + '_ {
    ROUTES
        .iter()
        .filter(move |r| r.detail_types.contains(&detail_type))
        .map(|r| r.service)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uploads_fan_out_to_transcode_and_transcription_in_parallel() {
        let subs: Vec<_> = subscribers("EpisodeUploaded").collect();
        assert_eq!(subs, ["transcode-watcher", "transcriber"]);
    }

    #[test]
    fn summaries_go_only_to_the_notifier() {
        let subs: Vec<_> = subscribers("EpisodeSummarized").collect();
        assert_eq!(subs, ["publisher-notify"]);
        assert_eq!(subscribers("NoSuchEvent").count(), 0);
    }
}

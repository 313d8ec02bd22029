//! The one error every port returns: what failed (in words), what retrying can do about it,
//! and the cause underneath (`source`, so a caller can walk the chain or look for an
//! `std::io::Error`).
//!
//! One shape for every adapter so handlers decide the same way everywhere: a throttle
//! waits, a transient failure retries, bad input goes back to its producer, and a setup
//! problem waits for an operator.

use std::{error::Error as StdError, fmt, time::Duration};

use podflow_events::FailureKind;

/// Any error, boxed: the cause a [`PortError`] carries.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// What retrying can do about a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The service asked the caller to slow down (HTTP 429, `ThrottlingException`): not a
    /// failure. `retry_after` when it said how long.
    Throttled { retry_after: Option<Duration> },
    /// Trouble on the other side or on the way (5xx, a timeout, the network, a busy
    /// database): the same call may work soon.
    Transient,
    /// The input is wrong (unreadable media, a request the service refuses): the same input
    /// fails the same way, so its producer is told.
    Input,
    /// What was asked for does not exist (a file, an object, a job): asking again finds
    /// nothing until someone makes it.
    NotFound,
    /// This machine or its configuration is wrong (a tool missing, access denied, a bad
    /// setting): retrying helps only after an operator fixes it.
    Setup,
}

/// A port's failure.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct PortError {
    kind: ErrorKind,
    message: String,
    #[source]
    source: Option<BoxError>,
}

impl PortError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            source: None,
        }
    }

    pub fn throttled(message: impl Into<String>, retry_after: Option<Duration>) -> Self {
        Self::new(ErrorKind::Throttled { retry_after }, message)
    }

    pub fn transient(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Transient, message)
    }

    pub fn input(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Input, message)
    }

    pub fn setup(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Setup, message)
    }

    /// A storage or database call that failed while doing `context`: worth a retry, the
    /// handler's input was fine — unless the file it needed is not there (`NotFound`).
    pub fn storage(context: impl Into<String>, cause: impl Into<BoxError>) -> Self {
        let cause = cause.into();
        let missing = cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::NotFound);
        let kind = if missing {
            ErrorKind::NotFound
        } else {
            ErrorKind::Transient
        };
        Self::new(kind, context).because(cause)
    }

    /// The same failure, caused by `cause`.
    pub fn because(mut self, cause: impl Into<BoxError>) -> Self {
        self.source = Some(cause.into());
        self
    }

    /// Adds what to do about it (" — check …") when only someone's fix can help.
    pub fn with_fix(mut self, fix: &str) -> Self {
        if !self.is_retryable() {
            self.message = format!("{} — {fix}", self.message);
        }
        self
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// Throttled or transient: the same call may work later without anyone's help.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self.kind,
            ErrorKind::Throttled { .. } | ErrorKind::Transient
        )
    }

    /// How long the service asked to wait, when it did.
    pub fn retry_after(&self) -> Option<Duration> {
        match self.kind {
            ErrorKind::Throttled { retry_after } => retry_after,
            _ => None,
        }
    }

    /// The message and every cause under it, for notes, dead-letter reasons and logs.
    pub fn report(&self) -> String {
        report(self)
    }

    /// How an event reports this failure.
    pub fn failure_kind(&self) -> FailureKind {
        match self.kind {
            ErrorKind::Throttled { .. } => FailureKind::Throttled,
            ErrorKind::Transient => FailureKind::Transient,
            ErrorKind::Input | ErrorKind::NotFound | ErrorKind::Setup => FailureKind::Permanent,
        }
    }
}

/// An error and its causes on one line (`what: why: why`), the way `anyhow` prints `{:#}`;
/// a cause whose text the message already ends with is not repeated.
pub fn report(error: &(dyn StdError + 'static)) -> String {
    let mut line = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        let text = e.to_string();
        if !text.is_empty() && !line.ends_with(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        cause = e.source();
    }
    line
}

/// The chain as [`report`] prints it, for `tracing` fields (`error = %Report(&e)`).
pub struct Report<'a>(pub &'a (dyn StdError + 'static));

impl fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&report(self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_walks_the_cause_chain_without_repeating_it() {
        let io = std::io::Error::new(std::io::ErrorKind::StorageFull, "no space left on device");
        let error = PortError::storage("writing episodes/e1/audio.mp3", io);
        assert_eq!(error.to_string(), "writing episodes/e1/audio.mp3");
        assert_eq!(
            error.report(),
            "writing episodes/e1/audio.mp3: no space left on device"
        );
        let cause = error
            .source()
            .and_then(|s| s.downcast_ref::<std::io::Error>())
            .map(std::io::Error::kind);
        assert_eq!(cause, Some(std::io::ErrorKind::StorageFull));

        let gone = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        assert_eq!(
            PortError::storage("reading x", gone).kind(),
            ErrorKind::NotFound
        );

        let said_twice = PortError::setup("ffmpeg: not found").because("not found");
        assert_eq!(said_twice.report(), "ffmpeg: not found");
    }

    #[test]
    fn kinds_say_whether_to_retry_and_how_long_to_wait() {
        let wait = Duration::from_secs(7);
        let throttled = PortError::throttled("slow down", Some(wait));
        assert!(throttled.is_retryable());
        assert_eq!(throttled.retry_after(), Some(wait));
        assert_eq!(throttled.failure_kind(), FailureKind::Throttled);
        assert!(PortError::transient("503").is_retryable());
        for permanent in [PortError::input("bad"), PortError::setup("denied")] {
            assert!(!permanent.is_retryable());
            assert_eq!(permanent.retry_after(), None);
            assert_eq!(permanent.failure_kind(), FailureKind::Permanent);
        }
    }
}

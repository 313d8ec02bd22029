//! [`RecordingBus`]: the event bus, job queue and delivery control a handler's effects go
//! to (and the table that counts an event's deliveries), in memory: it keeps what was
//! published, sent, delayed and dead-lettered, and refuses
//! or slows PutEvents when told to, as EventBridge does when throttled or degraded.

use std::{collections::HashMap, sync::Mutex, time::Duration};

use async_trait::async_trait;
use podflow_core::{
    DeadLetter, DeliveryControl, DeliveryCounter, EventPublisher, JobSender, PortError, QueuedJob,
};
use podflow_events::EventEnvelope;

#[derive(Default)]
pub struct RecordingBus {
    pub published: Mutex<Vec<EventEnvelope>>,
    pub jobs: Mutex<Vec<QueuedJob>>,
    /// Receipt handles whose visibility was extended, and by how much.
    pub delayed: Mutex<Vec<(String, Duration)>>,
    pub letters: Mutex<Vec<DeadLetter>>,
    /// How many PutEvents calls to refuse before accepting (`u32::MAX`: every one).
    pub refusals: Mutex<u32>,
    /// How long each PutEvents call takes.
    pub publish_delay: Duration,
    /// Deliveries of each event to each consumer, as the table counts them.
    pub deliveries: Mutex<HashMap<(String, String), u32>>,
}

impl RecordingBus {
    /// A bus that refuses the next `n` PutEvents calls.
    pub fn refusing(n: u32) -> Self {
        Self {
            refusals: Mutex::new(n),
            ..Self::default()
        }
    }

    pub fn published(&self) -> Vec<EventEnvelope> {
        self.published.lock().map(|p| p.clone()).unwrap_or_default()
    }

    /// The detail-types published, in order.
    pub fn detail_types(&self) -> Vec<String> {
        self.published()
            .into_iter()
            .map(|e| e.detail_type)
            .collect()
    }

    /// The dedup ids of the jobs sent, in order.
    pub fn job_ids(&self) -> Vec<String> {
        self.jobs
            .lock()
            .map(|j| j.iter().map(|j| j.dedup_id.clone()).collect())
            .unwrap_or_default()
    }

    pub fn letters(&self) -> Vec<DeadLetter> {
        self.letters.lock().map(|l| l.clone()).unwrap_or_default()
    }

    pub fn delayed(&self) -> Vec<(String, Duration)> {
        self.delayed.lock().map(|d| d.clone()).unwrap_or_default()
    }
}

#[async_trait]
impl EventPublisher for RecordingBus {
    async fn publish(&self, events: &[EventEnvelope]) -> Result<(), PortError> {
        tokio::time::sleep(self.publish_delay).await;
        {
            let mut refusals = self
                .refusals
                .lock()
                .map_err(|_| PortError::transient("bus lock poisoned"))?;
            if *refusals > 0 {
                if *refusals != u32::MAX {
                    *refusals -= 1;
                }
                return Err(PortError::transient(
                    "PutEvents: ThrottlingException: Rate exceeded",
                ));
            }
        }
        if let Ok(mut p) = self.published.lock() {
            p.extend_from_slice(events);
        }
        Ok(())
    }
}

#[async_trait]
impl JobSender for RecordingBus {
    async fn send_jobs(&self, jobs: &[QueuedJob]) -> Result<(), PortError> {
        if let Ok(mut j) = self.jobs.lock() {
            j.extend_from_slice(jobs);
        }
        Ok(())
    }
}

#[async_trait]
impl DeliveryControl for RecordingBus {
    async fn delay(&self, receipt_handle: &str, delay: Duration) -> Result<(), PortError> {
        if let Ok(mut d) = self.delayed.lock() {
            d.push((receipt_handle.to_owned(), delay));
        }
        Ok(())
    }

    async fn dead_letter(&self, letter: &DeadLetter) -> Result<(), PortError> {
        if let Ok(mut l) = self.letters.lock() {
            l.push(letter.clone());
        }
        Ok(())
    }
}

#[async_trait]
impl DeliveryCounter for RecordingBus {
    async fn count_delivery(&self, consumer: &str, event_id: &str) -> Result<u32, PortError> {
        let mut counts = self
            .deliveries
            .lock()
            .map_err(|_| PortError::transient("delivery counts lock poisoned"))?;
        let n = counts
            .entry((consumer.to_owned(), event_id.to_owned()))
            .or_insert(0);
        *n += 1;
        Ok(*n)
    }
}

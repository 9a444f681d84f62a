//! Typed progress events. The library reports; front-ends decide how to draw.

use std::sync::Mutex;

use serde::Serialize;

/// Something that happened while a plan runs.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum Event {
    /// A plan started.
    PlanStarted {
        /// Plan id.
        plan_id: String,
        /// Environment.
        environment: String,
        /// Number of steps.
        steps: usize,
    },
    /// A step started.
    StepStarted {
        /// Step id.
        step: String,
        /// Artifact, if the step belongs to one.
        #[serde(skip_serializing_if = "Option::is_none")]
        artifact: Option<String>,
        /// What the step does.
        description: String,
    },
    /// A step finished.
    StepFinished {
        /// Step id.
        step: String,
        /// Wall time in milliseconds.
        elapsed_ms: u64,
    },
    /// A step failed; the plan stops.
    StepFailed {
        /// Step id.
        step: String,
        /// The error, rendered.
        error: String,
    },
    /// The undo of a completed step started (a later step failed or the run was cancelled).
    UndoStarted {
        /// Step id.
        step: String,
        /// What the undo does.
        description: String,
    },
    /// A step's undo finished: its change is reverted.
    UndoFinished {
        /// Step id.
        step: String,
    },
    /// A step's undo failed: its change stays.
    UndoFailed {
        /// Step id.
        step: String,
        /// The error, rendered.
        error: String,
    },
    /// Bytes moved (uploads, copies).
    BytesTransferred {
        /// Artifact.
        artifact: String,
        /// What is moving (blob digest, file path).
        item: String,
        /// Bytes done so far for this item.
        done: u64,
        /// Total bytes of this item, when known.
        #[serde(skip_serializing_if = "Option::is_none")]
        total: Option<u64>,
    },
    /// A rollout advanced.
    RolloutProgress {
        /// Artifact.
        artifact: String,
        /// Percent of traffic or tasks on the new version.
        percent: u8,
        /// What the rollout is waiting for.
        detail: String,
        /// How long the wait may still take before it gives up, when it has a deadline.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        remaining_ms: Option<u64>,
    },
    /// A step waits for something outside it to finish: a migration task, a health check, an
    /// image scan, a Lambda function's update. Reported at each poll.
    Waiting {
        /// Artifact (for an image scan, its repository).
        artifact: String,
        /// What it waits for and how that stands (`migration task 0f3c: RUNNING`).
        detail: String,
        /// How long the wait may still take before it gives up.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        remaining_ms: Option<u64>,
    },
    /// Waiting for someone else's lock.
    LockWaiting {
        /// Environment.
        environment: String,
        /// Who holds it.
        holder: String,
        /// Since when.
        since: String,
    },
    /// The environment lock was taken.
    LockAcquired {
        /// Environment.
        environment: String,
        /// Lease id.
        lease_id: String,
        /// When the lease runs out unless renewed.
        expires_at: String,
    },
    /// The environment lock was given back.
    LockReleased {
        /// Environment.
        environment: String,
    },
    /// The lock could not be given back (S3 kept failing, or the lease had been taken): the
    /// run's outcome stands, and the lease stays until it expires or is released by hand.
    LockKept {
        /// Environment.
        environment: String,
        /// The lease still held.
        lease_id: String,
        /// When it expires by itself (RFC 3339).
        expires_at: String,
        /// Why it could not be given back.
        error: String,
    },
    /// A release record was written.
    ReleaseRecorded {
        /// Artifact.
        artifact: String,
        /// Release id.
        release_id: String,
        /// `succeeded`, `failed` or `rolled-back`.
        outcome: String,
    },
    /// Free-form note.
    Note {
        /// The text.
        message: String,
    },
    /// Every preflight found nothing to change: the run ends before the lock, with no record.
    Unchanged {
        /// The environment.
        environment: String,
    },
    /// The plan ended.
    PlanFinished {
        /// Whether every step succeeded.
        success: bool,
        /// Wall time in milliseconds.
        elapsed_ms: u64,
    },
}

/// Receives events. Implementations must be cheap and must not block: events arrive from the
/// async tasks doing the work.
pub trait Reporter: Send + Sync {
    /// Called for every event, in order per task.
    fn report(&self, event: &Event);
}

/// Discards every event.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoReporter;

impl Reporter for NoReporter {
    fn report(&self, _event: &Event) {}
}

/// Keeps every event in memory (tests, embedders that render at the end).
#[derive(Debug, Default)]
pub struct Recorder {
    events: Mutex<Vec<Event>>,
}

impl Recorder {
    /// The events so far.
    pub fn events(&self) -> Vec<Event> {
        self.events.lock().map(|e| e.clone()).unwrap_or_default()
    }
}

impl Reporter for Recorder {
    fn report(&self, event: &Event) {
        if let Ok(mut events) = self.events.lock() {
            events.push(event.clone());
        }
    }
}

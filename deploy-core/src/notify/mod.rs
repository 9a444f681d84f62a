//! Telling people about a run. [`Slack`] is a [`Reporter`]: it turns the run's events into
//! messages (the start, each step of an artifact as it completes or fails) and sends them from
//! a task of its own, so the run never waits on Slack; [`Slack::finish`] sends the end and waits
//! a bounded time for what is queued. Slack down, slow or answering 429 is a warning, never a
//! failure of the run.

mod slack;

pub use slack::{RunInfo, Slack, SlackError};

use crate::events::{Event, Reporter};

/// Sends every event to two reporters: what the command prints, and a notifier.
pub struct Both<A, B>(pub A, pub B);

impl<A, B> std::fmt::Debug for Both<A, B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Both")
    }
}

impl<A: Reporter, B: Reporter> Reporter for Both<A, B> {
    fn report(&self, event: &Event) {
        self.0.report(event);
        self.1.report(event);
    }
}

impl<T: Reporter + ?Sized> Reporter for std::sync::Arc<T> {
    fn report(&self, event: &Event) {
        (**self).report(event);
    }
}

//! Waiting for something to happen: poll, pause, poll again, until it is done, the deadline
//! comes or the run is cancelled.
//!
//! A [`Wait`] holds the timing (deadline, pause between polls, backoff, what the deadline does
//! to the last pause: [`LastPause`]) and, optionally, the cancellation token that stops it. [`Wait::until`]
//! runs the polls; each says whether the wait is [`Poll::Done`], [`Poll::NotYet`] (pause as
//! usual), [`Poll::After`] a pause of its choosing, or must [`Poll::BackOff`] (the pause
//! doubles, up to a cap, until a poll says `NotYet` again). The answer, [`Waited`], tells
//! done from timed out from cancelled, so each caller words its own outcome; the one message
//! for a run being cancelled is [`Cancelled`].
//!
//! A poll is a closure returning a future (`move || async move { .. }`); what it keeps from
//! one poll to the next lives outside it, behind a shared reference.
//!
//! A leaf module: it knows nothing of the engine or the kinds.

use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How a stopped run's waits explain themselves.
pub(crate) const CANCELLED: &str = "stopped: the run is being cancelled";

/// A wait was stopped because the run is being cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{}", CANCELLED)]
pub(crate) struct Cancelled;

/// What one poll found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Poll<T, P = ()> {
    /// The wait is over, with its result.
    Done(T),
    /// Not yet, with what is pending: poll again after the usual pause.
    NotYet(P),
    /// Not yet: poll again after this pause (the deadline still cuts it).
    After(Duration, P),
    /// Not yet, and the other side is busy or throttling: poll again after a pause that
    /// doubles with each such poll, up to the wait's cap, and starts over after `NotYet`.
    BackOff(P),
}

/// How a wait ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Waited<T, P = ()> {
    /// A poll said done.
    Done(T),
    /// The deadline came; with what the last poll found pending.
    TimedOut(P),
    /// The token was cancelled during a pause; with what the last poll found pending.
    Cancelled(P),
}

/// What becomes of the pause that would cross a wait's deadline, and so where the last poll
/// falls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LastPause {
    /// Cut to end on the deadline, where the last poll falls.
    Cut,
    /// Not taken: the wait times out after the last poll before the deadline.
    Skipped,
    /// Taken whole: the last poll falls up to a pause past the deadline.
    Whole,
}

/// The timing of a wait and what may cancel it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Wait<'a> {
    deadline: Instant,
    interval: Duration,
    backoff_cap: Duration,
    last_pause: LastPause,
    cancel: Option<&'a CancellationToken>,
}

impl<'a> Wait<'a> {
    /// Polls every `interval` until `deadline`: the last pause is cut to end on it, backing
    /// off does not grow the pause, and nothing cancels the wait.
    pub(crate) fn new(deadline: impl Into<Instant>, interval: Duration) -> Wait<'a> {
        Wait {
            deadline: deadline.into(),
            interval,
            backoff_cap: interval,
            last_pause: LastPause::Cut,
            cancel: None,
        }
    }

    /// Polls every `interval` for `timeout` from now (at most about thirty years).
    pub(crate) fn within(timeout: Duration, interval: Duration) -> Wait<'a> {
        Wait::new(deadline_after(timeout), interval)
    }

    /// Lets [`Poll::BackOff`] double the pause up to `cap`.
    #[must_use]
    pub(crate) fn backing_off_to(mut self, cap: Duration) -> Wait<'a> {
        self.backoff_cap = cap;
        self
    }

    /// Meets the deadline as `last_pause` says (rather than [`LastPause::Cut`]).
    #[must_use]
    pub(crate) fn last_pause(mut self, last_pause: LastPause) -> Wait<'a> {
        self.last_pause = last_pause;
        self
    }

    /// Stops the wait when `token` is cancelled (`None`: nothing stops it).
    #[must_use]
    pub(crate) fn cancelled_by(mut self, token: Option<&'a CancellationToken>) -> Wait<'a> {
        self.cancel = token;
        self
    }

    /// How long until the deadline.
    pub(crate) fn left(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    /// The [`crate::events::Event::Waiting`] of `artifact` at this moment of the wait.
    pub(crate) fn event(&self, artifact: &str, detail: String) -> crate::events::Event {
        crate::events::Event::Waiting {
            artifact: artifact.to_owned(),
            detail,
            remaining_ms: Some(u64::try_from(self.left().as_millis()).unwrap_or(u64::MAX)),
        }
    }

    /// Polls at once and after every pause until a poll is done, the deadline comes or the
    /// token is cancelled. A poll's error ends the wait with it.
    pub(crate) async fn until<T, P, E, F>(&self, poll: impl FnMut() -> F) -> Result<Waited<T, P>, E>
    where
        F: Future<Output = Result<Poll<T, P>, E>>,
    {
        self.until_noting(poll, |_| {}).await
    }

    /// As [`Wait::until`], telling `before_pause` what is pending before each pause, that is
    /// once the deadline is known not to have come.
    pub(crate) async fn until_noting<T, P, E, F>(
        &self,
        mut poll: impl FnMut() -> F,
        mut before_pause: impl FnMut(&P),
    ) -> Result<Waited<T, P>, E>
    where
        F: Future<Output = Result<Poll<T, P>, E>>,
    {
        let mut backoff = self.interval;
        loop {
            let (pause, pending) = match poll().await? {
                Poll::Done(value) => return Ok(Waited::Done(value)),
                Poll::NotYet(pending) => {
                    backoff = self.interval;
                    (self.interval, pending)
                }
                Poll::After(pause, pending) => {
                    backoff = self.interval;
                    (pause, pending)
                }
                Poll::BackOff(pending) => {
                    let pause = backoff;
                    backoff = backoff.saturating_mul(2).min(self.backoff_cap);
                    (pause, pending)
                }
            };
            let Some(pause) = self.next_pause(pause) else {
                return Ok(Waited::TimedOut(pending));
            };
            before_pause(&pending);
            if sleep(pause, self.cancel).await.is_err() {
                return Ok(Waited::Cancelled(pending));
            }
        }
    }

    /// Pauses for `pause`, cut to end at the deadline, unless the token is cancelled first.
    pub(crate) async fn pause(&self, pause: Duration) -> Result<(), Cancelled> {
        sleep(pause.min(self.left()), self.cancel).await
    }

    /// The pause to take after a poll that was not done, as `last_pause` allows it; `None`
    /// when the wait is out of time.
    fn next_pause(&self, pause: Duration) -> Option<Duration> {
        let now = Instant::now();
        match self.last_pause {
            LastPause::Cut => (now < self.deadline).then(|| pause.min(self.deadline - now)),
            LastPause::Skipped => now
                .checked_add(pause)
                .is_some_and(|end| end <= self.deadline)
                .then_some(pause),
            LastPause::Whole => (now < self.deadline).then_some(pause),
        }
    }
}

/// Sleeps for `pause`, unless `cancel` is cancelled first (or already).
pub(crate) async fn sleep(
    pause: Duration,
    cancel: Option<&CancellationToken>,
) -> Result<(), Cancelled> {
    let Some(cancel) = cancel else {
        tokio::time::sleep(pause).await;
        return Ok(());
    };
    tokio::select! {
        biased;
        () = cancel.cancelled() => Err(Cancelled),
        () = tokio::time::sleep(pause) => Ok(()),
    }
}

/// `timeout` from now, saturating at about thirty years.
pub(crate) fn deadline_after(timeout: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(timeout)
        .or_else(|| now.checked_add(Duration::from_secs(30 * 365 * 86_400)))
        .unwrap_or(now)
}

#[cfg(test)]
mod tests;

//! The health gate (`health_check`): after a rollout, GET the URL until it answers the expected
//! status, with backoff, within the check's timeout. A failure stops the release; the engine
//! then puts back what the rollout changed (exit 3).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::engine::{BoxFuture, Done, Engine, StepContext, StepError, StepHandler};
use crate::plan::{Action, ActionInput, Chain, Step};
use crate::rollout::HealthCheck;
use crate::wait::{Cancelled, LastPause, Poll, Wait, Waited};

/// Wait until an HTTP endpoint answers the expected status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckHealth {
    /// The URL to GET.
    pub url: String,
    /// The status that means healthy.
    pub expect_status: u16,
    /// A substring the body must contain, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect_body: Option<String>,
    /// How long to keep trying.
    #[serde(with = "crate::duration_serde")]
    pub timeout: Duration,
}

impl ActionInput for CheckHealth {
    const TYPE: &'static str = "check-health";

    fn reversibility(&self) -> crate::plan::Reversibility {
        crate::plan::Reversibility::Nothing
    }
}

impl CheckHealth {
    /// The check of `url` with `check`'s expectations (its `url`, or its `test_url`).
    pub fn of(check: &HealthCheck, url: &str) -> CheckHealth {
        CheckHealth {
            url: url.to_owned(),
            expect_status: check.expect_status,
            expect_body: check.expect_body.clone(),
            timeout: check.timeout,
        }
    }
}

/// The health check never answered as expected.
#[derive(Debug, thiserror::Error)]
#[error("health check of {url} failed: expected {expected} within {}s, last {last}", waited.as_secs())]
pub struct Unhealthy {
    /// The URL (credentials removed).
    pub url: String,
    /// The expected status.
    pub expected: u16,
    /// What the last attempt got.
    pub last: String,
    /// How long it tried.
    pub waited: Duration,
}

/// Adds the health gate of `check` to `chain`.
pub fn plan_step(check: &HealthCheck, chain: &mut Chain<'_>) {
    chain.then(
        format!(
            "check the health of {} at {} (expect {})",
            chain.artifact(),
            crate::registry::redact(&check.url),
            check.expect_status
        ),
        Action::new(&CheckHealth::of(check, &check.url)),
        vec![],
    );
}

/// Registers the health gate with `engine`; `poll` is the first pause between attempts.
pub fn register(engine: &mut Engine, poll: Duration) {
    engine.register(CheckHealth::TYPE, Arc::new(HealthGate { poll }));
}

struct HealthGate {
    poll: Duration,
}

impl StepHandler for HealthGate {
    fn is_gate(&self) -> bool {
        true
    }

    fn run<'a>(
        &'a self,
        step: &'a Step,
        cx: &'a StepContext<'a>,
    ) -> BoxFuture<'a, Result<Done, StepError>> {
        Box::pin(async move {
            let input: CheckHealth = step.action.input()?;
            let artifact = step.artifact_name();
            wait_healthy(cx, artifact, &input, self.poll).await?;
            Ok(Done::nothing())
        })
    }
}

/// GETs `check.url` until it answers as expected, with backoff, within `check.timeout`.
pub(crate) async fn wait_healthy(
    cx: &StepContext<'_>,
    artifact: &str,
    check: &CheckHealth,
    poll: Duration,
) -> Result<(), StepError> {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::limited(5))
        .build()
        .map_err(StepError::failure)?;
    let client = &client;
    let started = Instant::now();
    let wait = Wait::within(check.timeout, poll.max(Duration::from_millis(50)))
        .backing_off_to(Duration::from_secs(5))
        .last_pause(LastPause::Skipped)
        .cancelled_by(Some(cx.cancel));
    let Ok(waited) = wait
        .until(move || async move {
            let answer = attempt(client, check, wait.left().min(Duration::from_secs(10))).await;
            let last = match answer {
                Some((status, true)) if status == check.expect_status => {
                    return Ok(Poll::Done(()));
                }
                Some((status, false)) if status == check.expect_status => format!(
                    "answered {status} without `{}` in the body",
                    check.expect_body.as_deref().unwrap_or_default()
                ),
                Some((status, _)) => format!("answered {status}"),
                None => "no answer".to_owned(),
            };
            cx.reporter().report(&wait.event(
                artifact,
                format!("health check {last}, expecting {}", check.expect_status),
            ));
            Ok::<_, Infallible>(Poll::BackOff(last))
        })
        .await;
    match waited {
        Waited::Done(()) => Ok(()),
        Waited::TimedOut(last) => Err(StepError::blocked(Unhealthy {
            url: crate::registry::redact(&check.url),
            expected: check.expect_status,
            last,
            waited: started.elapsed(),
        })),
        Waited::Cancelled(_) => Err(StepError::failure(Cancelled)),
    }
}

/// The status of one GET and whether its body holds `expect_body` (read only when one is
/// expected, at most 64 KiB), or `None` when nothing answered in time.
async fn attempt(
    client: &reqwest::Client,
    check: &CheckHealth,
    limit: Duration,
) -> Option<(u16, bool)> {
    let answer = client
        .get(&check.url)
        .timeout(limit.max(Duration::from_millis(100)))
        .send()
        .await
        .ok()?;
    let status = answer.status().as_u16();
    let Some(expected) = &check.expect_body else {
        return Some((status, true));
    };
    let mut body = Vec::new();
    let mut answer = answer;
    while let Ok(Some(chunk)) = answer.chunk().await {
        body.extend_from_slice(&chunk);
        if body.len() > 64 * 1024 {
            break;
        }
    }
    Some((
        status,
        String::from_utf8_lossy(&body).contains(expected.as_str()),
    ))
}

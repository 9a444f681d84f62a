//! The health gate (`health_check`): after a rollout, GET the URL until it answers the expected
//! status, with backoff, within the check's timeout. A failure stops the release; the engine
//! then puts back what the rollout changed (exit 3).

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::engine::{BoxFuture, Done, Engine, StepContext, StepError, StepHandler};
use crate::events::Event;
use crate::plan::{Action, ActionInput, Chain, Step};
use crate::rollout::HealthCheck;

/// Wait until an HTTP endpoint answers the expected status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckHealth {
    /// The URL to GET.
    pub url: String,
    /// The status that means healthy.
    pub expect_status: u16,
    /// How long to keep trying.
    #[serde(with = "crate::duration_serde")]
    pub timeout: Duration,
}

impl ActionInput for CheckHealth {
    const TYPE: &'static str = "check-health";
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
        Action::new(&CheckHealth {
            url: check.url.clone(),
            expect_status: check.expect_status,
            timeout: check.timeout,
        }),
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
    fn run<'a>(
        &'a self,
        step: &'a Step,
        cx: &'a StepContext<'a>,
    ) -> BoxFuture<'a, Result<Done, StepError>> {
        Box::pin(async move {
            let input: CheckHealth = step.action.input().map_err(StepError::failure)?;
            let artifact = step.artifact.as_deref().unwrap_or_default();
            wait_healthy(cx, artifact, &input, self.poll).await?;
            Ok(Done::nothing())
        })
    }
}

async fn wait_healthy(
    cx: &StepContext<'_>,
    artifact: &str,
    check: &CheckHealth,
    poll: Duration,
) -> Result<(), StepError> {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::limited(5))
        .build()
        .map_err(StepError::failure)?;
    let started = Instant::now();
    let deadline = started + check.timeout;
    let mut pause = poll.max(Duration::from_millis(50));
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let last = attempt(&client, &check.url, left.min(Duration::from_secs(10))).await;
        if last == Some(check.expect_status) {
            return Ok(());
        }
        let last = last.map_or_else(|| "no answer".to_owned(), |s| format!("answered {s}"));
        cx.reporter().report(&Event::Note {
            message: format!(
                "{artifact}: health check {last}, expecting {}",
                check.expect_status
            ),
        });
        if Instant::now() + pause >= deadline {
            return Err(StepError::blocked(Unhealthy {
                url: crate::registry::redact(&check.url),
                expected: check.expect_status,
                last,
                waited: started.elapsed(),
            }));
        }
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            () = cx.cancelled() => return Err(StepError::failure("stopped: the run is being cancelled")),
        }
        pause = (pause * 2).min(Duration::from_secs(5));
    }
}

/// The status of one GET, or `None` when nothing answered in time.
async fn attempt(client: &reqwest::Client, url: &str, limit: Duration) -> Option<u16> {
    let answer = client
        .get(url)
        .timeout(limit.max(Duration::from_millis(100)))
        .send()
        .await
        .ok()?;
    Some(answer.status().as_u16())
}

//! Slack for a run the CLI applies: started when `[notifications.slack]` is set and the
//! environment does not say `notify = false`, fed the run's events beside the terminal, and
//! finished with the outcome. Problems with Slack are warnings on stderr.

use std::sync::Arc;
use std::time::Duration;

use deploy_core::config::Config;
use deploy_core::events::Reporter;
use deploy_core::ledger::Actor;
use deploy_core::notify::{Both, RunInfo, Slack};
use deploy_core::plan::Plan;

/// How long the end of a run waits for Slack, at most.
const GRACE: Duration = Duration::from_secs(5);

/// The notifier for `plan`, if the configuration asks for one.
pub fn start(config: &Config, plan: &Plan) -> Option<Arc<Slack>> {
    let settings = config.notifications.slack.as_ref()?;
    let env = config.environment(&plan.environment).ok()?;
    if !env.notify {
        return None;
    }
    let mut artifacts: Vec<String> = plan
        .steps
        .iter()
        .filter_map(|s| s.artifact.clone())
        .collect();
    artifacts.dedup();
    let info = RunInfo {
        environment: plan.environment.clone(),
        operation: plan.operation.as_str().to_owned(),
        version: plan.version.clone(),
        artifacts,
        actor: Actor::detect().to_string(),
        run_url: run_url(),
    };
    match Slack::start(settings, info) {
        Ok(slack) => Some(Arc::new(slack)),
        Err(err) => {
            eprintln!("warning: {err}");
            None
        }
    }
}

/// `terminal`, and `slack` beside it when there is one.
pub fn reporter(terminal: Arc<dyn Reporter>, slack: Option<&Arc<Slack>>) -> Arc<dyn Reporter> {
    match slack {
        Some(slack) => Arc::new(Both(terminal, slack.clone())),
        None => terminal,
    }
}

/// Sends the end and prints what went wrong with Slack.
pub async fn finish(slack: Option<Arc<Slack>>, outcome: &str) {
    let Some(slack) = slack else {
        return;
    };
    for warning in slack.finish(outcome, GRACE).await {
        eprintln!("warning: {warning}");
    }
}

/// The GitHub Actions run, from the variables GitHub sets (each checked to be what GitHub
/// writes there, so nothing else reaches the message).
fn run_url() -> Option<String> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let server = var("GITHUB_SERVER_URL")?;
    let repository = var("GITHUB_REPOSITORY")?;
    let run = var("GITHUB_RUN_ID")?;
    let plain = |s: &str, extra: &str| {
        s.chars()
            .all(|c| c.is_ascii_alphanumeric() || extra.contains(c))
    };
    let ok = server.starts_with("https://")
        && plain(&server["https://".len()..], ".-:")
        && plain(&repository, "._-/")
        && plain(&run, "");
    ok.then(|| format!("{server}/{repository}/actions/runs/{run}"))
}

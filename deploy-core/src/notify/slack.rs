//! Slack: an incoming webhook (one message per event) or the Web API with a bot token (one
//! message per run, updated in place with `chat.update`, each step a reply in its thread).
//!
//! Each call is bounded to [`CALL_BOUND`]; a `429` whose `Retry-After` fits in what is left of
//! that bound is waited out once, a longer one drops the message. After the first call that
//! fails, Slack is taken as down for the rest of the run and later messages are dropped: one
//! warning, and no run waits on a dead server more than once. The webhook URL and the token are
//! read from the environment when the notifier starts, are sent only to Slack, and appear in
//! no error, event or record (request errors are stripped of their URL).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::config::SlackConfig;
use crate::events::{Event, Reporter};

/// The longest one call to Slack may take, a `Retry-After` wait included.
pub const CALL_BOUND: Duration = Duration::from_secs(5);

/// Who runs what where, for the messages.
#[derive(Debug, Clone, Default)]
pub struct RunInfo {
    /// The environment.
    pub environment: String,
    /// `release`, `promote`, `rollback`, ...
    pub operation: String,
    /// The version, when there is one.
    pub version: Option<String>,
    /// The artifacts of the plan.
    pub artifacts: Vec<String>,
    /// Who (`user@host`, the CI actor).
    pub actor: String,
    /// The CI run, when there is one.
    pub run_url: Option<String>,
}

/// Why the notifier could not start (a warning for the caller to print; the run goes on).
#[derive(Debug, thiserror::Error)]
pub enum SlackError {
    /// The variable holding the URL or token is not set.
    #[error("${0} is not set, so Slack is not told about this run")]
    Unset(String),
    /// The HTTP client could not be built.
    #[error("cannot start the HTTP client for Slack: {0}")]
    Client(String),
}

enum Target {
    Webhook {
        url: String,
    },
    Bot {
        api: String,
        token: String,
        channel: String,
    },
}

enum Message {
    Start(String),
    Step(String),
    End(String),
}

/// A [`crate::events::Reporter`] that tells Slack.
pub struct Slack {
    info: RunInfo,
    tx: Mutex<Option<mpsc::UnboundedSender<Message>>>,
    task: Mutex<Option<tokio::task::JoinHandle<Vec<String>>>>,
    steps: Mutex<HashMap<String, String>>,
}

impl std::fmt::Debug for Slack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the URL or the token.
        f.debug_struct("Slack")
            .field("environment", &self.info.environment)
            .finish_non_exhaustive()
    }
}

impl Slack {
    /// Starts the notifier for `config` (reading the URL or token from the environment) on
    /// the current Tokio runtime.
    pub fn start(config: &SlackConfig, info: RunInfo) -> Result<Slack, SlackError> {
        let read = |name: &str| {
            std::env::var(name)
                .ok()
                .filter(|v| !v.trim().is_empty())
                .ok_or_else(|| SlackError::Unset(name.to_owned()))
        };
        let target = match config {
            SlackConfig::Webhook { webhook_env } => Target::Webhook {
                url: read(webhook_env)?,
            },
            SlackConfig::Bot {
                token_env,
                channel,
                api_url,
            } => Target::Bot {
                api: api_url.clone(),
                token: read(token_env)?,
                channel: channel.clone(),
            },
        };
        let client = reqwest::Client::builder()
            .timeout(CALL_BOUND)
            .connect_timeout(CALL_BOUND)
            .build()
            .map_err(|e| SlackError::Client(e.without_url().to_string()))?;
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(deliver(client, target, rx));
        let slack = Slack {
            info,
            tx: Mutex::new(Some(tx)),
            task: Mutex::new(Some(task)),
            steps: Mutex::default(),
        };
        slack.send(Message::Start(slack.started()));
        Ok(slack)
    }

    /// Sends the end (`outcome`, one line: succeeded, rolled back and why, failed and what is
    /// left) and waits up to `grace` for what is queued; the warnings to print.
    pub async fn finish(&self, outcome: &str, grace: Duration) -> Vec<String> {
        let text = format!(
            "deploy {} {} in *{}*: {outcome}{}",
            self.info.operation,
            self.info.version.as_deref().unwrap_or(""),
            self.info.environment,
            self.link()
        );
        self.send(Message::End(text));
        self.tx.lock().map(|mut tx| tx.take()).ok();
        let task = self.task.lock().ok().and_then(|mut t| t.take());
        let Some(mut task) = task else {
            return Vec::new();
        };
        match tokio::time::timeout(grace, &mut task).await {
            Ok(Ok(warnings)) => warnings,
            Ok(Err(_)) => vec!["Slack: the sender stopped unexpectedly".into()],
            Err(_) => {
                task.abort();
                vec![format!(
                    "Slack: messages still queued after {}s were dropped",
                    grace.as_secs()
                )]
            }
        }
    }

    fn send(&self, message: Message) {
        if let Ok(tx) = self.tx.lock()
            && let Some(tx) = tx.as_ref()
        {
            let _ = tx.send(message);
        }
    }

    fn started(&self) -> String {
        let info = &self.info;
        format!(
            "deploy {} {} to *{}* started by {}: {}{}",
            info.operation,
            info.version.as_deref().unwrap_or(""),
            info.environment,
            info.actor,
            info.artifacts.join(", "),
            self.link()
        )
    }

    fn link(&self) -> String {
        self.info
            .run_url
            .as_deref()
            .map_or_else(String::new, |url| format!(" ({url})"))
    }
}

impl Reporter for Slack {
    fn report(&self, event: &Event) {
        let env = &self.info.environment;
        let text = match event {
            Event::StepStarted {
                step,
                artifact: Some(_),
                description,
            } if !step.ends_with(".record-release") => {
                if let Ok(mut steps) = self.steps.lock() {
                    steps.insert(step.clone(), description.clone());
                }
                return;
            }
            Event::StepFinished { step, elapsed_ms } => {
                let Some(description) = self.steps.lock().ok().and_then(|s| s.get(step).cloned())
                else {
                    return;
                };
                format!(
                    "{env}: {description}: done ({:.0}s)",
                    *elapsed_ms as f64 / 1000.0
                )
            }
            Event::StepFailed { step, error } => format!("{env}: {step} failed: {error}"),
            Event::UndoFinished { step } => format!("{env}: {step} undone"),
            Event::UndoFailed { step, error } => format!("{env}: undo of {step} failed: {error}"),
            _ => return,
        };
        self.send(Message::Step(text));
    }
}

/// Sends each message in turn until the channel closes; the warnings.
async fn deliver(
    client: reqwest::Client,
    target: Target,
    mut rx: mpsc::UnboundedReceiver<Message>,
) -> Vec<String> {
    let mut warnings = Vec::new();
    let mut thread: Option<String> = None;
    let mut down = false;
    while let Some(message) = rx.recv().await {
        if down {
            continue;
        }
        let sent = match (&target, &message) {
            (
                Target::Webhook { url },
                Message::Start(text) | Message::Step(text) | Message::End(text),
            ) => post(&client, url, None, &serde_json::json!({ "text": text }))
                .await
                .map(drop),
            (Target::Bot { .. }, _) => bot(&client, &target, &message, &mut thread).await,
        };
        if let Err(warning) = sent {
            warnings.push(format!(
                "Slack: {warning}; later messages of this run are dropped"
            ));
            down = true;
        }
    }
    warnings
}

/// One message through the Web API: the start is the run's message, steps reply in its
/// thread, the end updates it and replies.
async fn bot(
    client: &reqwest::Client,
    target: &Target,
    message: &Message,
    thread: &mut Option<String>,
) -> Result<(), String> {
    let Target::Bot {
        api,
        token,
        channel,
    } = target
    else {
        return Ok(());
    };
    let call = |method: &str| format!("{api}/{method}");
    let reply = |text: &str, thread: &Option<String>| {
        let mut body = serde_json::json!({ "channel": channel, "text": text });
        if let Some(ts) = thread {
            body["thread_ts"] = serde_json::json!(ts);
        }
        body
    };
    match message {
        Message::Start(text) => {
            let answer = post(
                client,
                &call("chat.postMessage"),
                Some(token),
                &reply(text, &None),
            )
            .await?;
            *thread = answer["ts"].as_str().map(str::to_owned);
            Ok(())
        }
        Message::Step(text) => post(
            client,
            &call("chat.postMessage"),
            Some(token),
            &reply(text, thread),
        )
        .await
        .map(drop),
        Message::End(text) => {
            if let Some(ts) = thread.as_deref() {
                let update = serde_json::json!({ "channel": channel, "ts": ts, "text": text });
                post(client, &call("chat.update"), Some(token), &update).await?;
            }
            post(
                client,
                &call("chat.postMessage"),
                Some(token),
                &reply(text, thread),
            )
            .await
            .map(drop)
        }
    }
}

/// One POST, bounded by [`CALL_BOUND`] with one wait for a `Retry-After` that fits in it; the
/// answer's JSON (`{}` for a webhook's `ok`). Errors name no URL and no token.
async fn post(
    client: &reqwest::Client,
    url: &str,
    token: Option<&str>,
    body: &serde_json::Value,
) -> Result<serde_json::Value, String> {
    let deadline = Instant::now() + CALL_BOUND;
    loop {
        let mut request = client.post(url).json(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let response = request
            .timeout(left.max(Duration::from_millis(1)))
            .send()
            .await
            .map_err(|e| e.without_url().to_string())?;
        let status = response.status();
        if status.as_u16() == 429 {
            let wait = retry_after(&response);
            let left = deadline.saturating_duration_since(Instant::now());
            match wait {
                Some(wait) if wait < left => {
                    tokio::time::sleep(wait).await;
                    continue;
                }
                _ => return Err("rate limited (429) beyond the 5 s bound".into()),
            }
        }
        if !status.is_success() {
            return Err(format!("answered {status}"));
        }
        let text = response
            .text()
            .await
            .map_err(|e| e.without_url().to_string())?;
        let json: serde_json::Value = serde_json::from_str(&text).unwrap_or(serde_json::json!({}));
        if json["ok"] == false {
            let error = json["error"].as_str().unwrap_or("unknown error");
            return Err(format!("the API refused the message: {error}"));
        }
        return Ok(json);
    }
}

fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    let value = response.headers().get("retry-after")?.to_str().ok()?;
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

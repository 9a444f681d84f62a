//! Slack, against a local server standing in for it: an incoming webhook gets the start, each
//! step and the end; a bot posts one message, replies in its thread and updates it in place;
//! the URL and the token appear in no output and no ledger object; Slack down, slow or
//! answering 429 leaves the release green within a few seconds, with a warning; `notify =
//! false` keeps an environment quiet.

use std::time::{Duration, Instant};

use deploy_tests::dags::{Project, ok, read_all};
use deploy_tests::slack_double::{Behaviour, SlackDouble, down_url};

const WEBHOOK: &str = "[notifications.slack]\nwebhook_env = \"SLACK_WEBHOOK_URL\"\n";
const SECRET_PATH: &str = "/services/T0001/B0001/webhooksecret42";
const TOKEN: &str = "xoxb-bot-token-secret-42";

async fn project(notifications: &str) -> Project {
    let p = Project::new(notifications).await;
    p.write("etl.py", "from airflow import DAG\n");
    p
}

/// Releases `version` with `env`; the output (stdout and stderr) and how long it took.
fn release(p: &Project, version: &str, env: &[(&str, &str)]) -> (String, Duration) {
    let started = Instant::now();
    let out = p.release(version, env);
    let took = started.elapsed();
    ok(&out);
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (text, took)
}

/// Neither the output nor any object of the state bucket holds `secret`.
async fn nowhere(p: &Project, output: &str, secret: &str) {
    assert!(!output.contains(secret), "the secret was printed: {output}");
    for (key, bytes) in read_all(&p.state, "").await {
        assert!(
            !String::from_utf8_lossy(&bytes).contains(secret),
            "the secret is in s3://{}/{key}",
            p.state
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_webhook_hears_the_start_each_step_and_the_end() {
    let slack = SlackDouble::start(Behaviour::Answer);
    let p = project(WEBHOOK).await;
    let url = format!("{}{SECRET_PATH}", slack.url);
    let (output, _) = release(&p, "v1", &[("SLACK_WEBHOOK_URL", &url)]);
    let texts: Vec<String> = slack
        .requests()
        .iter()
        .map(|r| {
            assert_eq!(r.path, SECRET_PATH);
            r.body["text"].as_str().expect("text").to_owned()
        })
        .collect();
    assert!(texts.len() >= 3, "{texts:?}");
    assert!(
        texts[0].contains("started") && texts[0].contains("*dev*") && texts[0].contains("v1"),
        "{texts:?}"
    );
    assert!(texts.iter().any(|t| t.contains("done (")), "{texts:?}");
    let end = texts.last().expect("the end");
    assert!(end.contains("succeeded: dags release"), "{end}");
    nowhere(&p, &output, "webhooksecret42").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bot_posts_one_message_replies_in_its_thread_and_updates_it() {
    let slack = SlackDouble::start(Behaviour::Answer);
    let bot = format!(
        "[notifications.slack]\ntoken_env = \"SLACK_BOT_TOKEN\"\nchannel = \"C0DEPLOYS\"\napi_url = \"{}/api\"\n",
        slack.url
    );
    let p = project(&bot).await;
    let (output, _) = release(&p, "v1", &[("SLACK_BOT_TOKEN", TOKEN)]);
    let requests = slack.requests();
    let bearer = format!("Bearer {TOKEN}");
    assert!(
        requests
            .iter()
            .all(|r| r.authorization.as_deref() == Some(bearer.as_str()))
    );
    let first = &requests[0];
    assert_eq!(first.path, "/api/chat.postMessage");
    assert_eq!(first.body["channel"], "C0DEPLOYS");
    assert!(
        first.body.get("thread_ts").is_none(),
        "the run's own message"
    );
    let ts = "1700000000.000001";
    let replies: Vec<_> = requests[1..]
        .iter()
        .filter(|r| r.path == "/api/chat.postMessage")
        .collect();
    assert!(!replies.is_empty());
    assert!(
        replies.iter().all(|r| r.body["thread_ts"] == ts),
        "{requests:?}"
    );
    let update = requests
        .iter()
        .find(|r| r.path == "/api/chat.update")
        .expect("chat.update");
    assert_eq!(update.body["ts"], ts);
    assert!(
        update.body["text"]
            .as_str()
            .is_some_and(|t| t.contains("succeeded")),
        "{update:?}"
    );
    nowhere(&p, &output, TOKEN).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn slack_down_slow_or_rate_limited_leaves_the_release_green_and_quick() {
    let (_, baseline) = release(&project("").await, "v1", &[]);
    let slow = SlackDouble::start(Behaviour::Slow(Duration::from_secs(30)));
    let limited = SlackDouble::start(Behaviour::RateLimited(60));
    for url in [down_url(), slow.url.clone(), limited.url.clone()] {
        let p = project(WEBHOOK).await;
        let hook = format!("{url}{SECRET_PATH}");
        let (output, took) = release(&p, "v1", &[("SLACK_WEBHOOK_URL", &hook)]);
        assert!(output.contains("warning: Slack"), "{output}");
        assert!(
            took < baseline + Duration::from_secs(8),
            "{url}: {took:?} against {baseline:?} without Slack"
        );
        nowhere(&p, &output, "webhooksecret42").await;
    }
    assert_eq!(
        limited.requests().len(),
        1,
        "a 429 beyond the bound: given up at once"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn notify_false_and_an_unset_variable_keep_slack_out() {
    let slack = SlackDouble::start(Behaviour::Answer);
    let p = project(WEBHOOK).await;
    let text = std::fs::read_to_string(&p.config).expect("config");
    std::fs::write(
        &p.config,
        text.replace(
            "[environments.dev]\n",
            "[environments.dev]\nnotify = false\n",
        ),
    )
    .expect("write");
    let url = format!("{}{SECRET_PATH}", slack.url);
    release(&p, "v1", &[("SLACK_WEBHOOK_URL", &url)]);
    assert!(slack.requests().is_empty(), "dev says notify = false");

    let p = project(WEBHOOK).await;
    let (output, _) = release(&p, "v1", &[]);
    assert!(output.contains("$SLACK_WEBHOOK_URL is not set"), "{output}");
}

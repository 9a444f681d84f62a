//! The ledger and the lock against moto, raced by separate processes; results are read back
//! with a plain S3 client.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use deploy_tests::{
    ACCOUNT, create_bucket, deploy, get_json, list_keys, moto, scratch_dir, unique, write_config,
};

fn probe_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_deploy-probe"))
}

fn probe(moto_url: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(probe_bin());
    deploy_tests::isolate_aws_env(&mut cmd);
    cmd.env("AWS_ENDPOINT_URL", moto_url)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .args(args);
    cmd
}

/// A project with its own state bucket.
async fn project(lock_ttl: &str) -> (String, String, PathBuf) {
    let url = moto().url.clone();
    let bucket = unique("state");
    create_bucket(&url, &bucket).await;
    let config = write_config(&scratch_dir("ledger"), &bucket, lock_ttl);
    (url, bucket, config)
}

fn soon_ms(ms: i128) -> String {
    let now = time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
    (now + ms).to_string()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn race(url: &str, config: &Path, command: &str, ids: [&str; 2]) -> Vec<(u32, Output)> {
    let at = soon_ms(1500);
    let children: Vec<_> = ids
        .iter()
        .map(|id| {
            probe(
                url,
                &[
                    command,
                    config.to_str().unwrap_or_default(),
                    "e2e",
                    "app",
                    id,
                    &at,
                ],
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn probe")
        })
        .collect();
    children
        .into_iter()
        .map(|c| (c.id(), c.wait_with_output().expect("probe output")))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn two_processes_creating_the_same_record_one_wins() {
    let (url, bucket, config) = project("10s").await;
    let outs = race(&url, &config, "record", ["same-id", "same-id"]);
    let mut results: Vec<String> = outs.iter().map(|(_, o)| stdout(o)).collect();
    results.sort();
    assert_eq!(results, ["conflict", "won"], "{outs:?}");
    let keys = list_keys(&url, &bucket, "deploy/t/e2e/artifacts/app/releases/").await;
    assert_eq!(keys.len(), 1, "{keys:?}");
    let record = get_json(&url, &bucket, &keys[0]).await;
    let (winner_pid, _) = outs
        .iter()
        .find(|(_, o)| stdout(o) == "won")
        .expect("a winner");
    // The stored record is the winner's, untouched by the loser.
    assert_eq!(record["version"], format!("pid-{winner_pid}"), "{record}");
}

#[tokio::test(flavor = "multi_thread")]
async fn two_processes_moving_the_pointer_one_wins() {
    let (url, bucket, config) = project("10s").await;
    let outs = race(&url, &config, "pointer", ["release-a", "release-b"]);
    let mut results: Vec<String> = outs.iter().map(|(_, o)| stdout(o)).collect();
    results.sort();
    assert_eq!(results, ["conflict", "won"], "{outs:?}");
    let winner = if stdout(&outs[0].1) == "won" {
        "release-a"
    } else {
        "release-b"
    };
    let pointer = get_json(&url, &bucket, "deploy/t/e2e/artifacts/app/live.json").await;
    assert_eq!(pointer["release_id"], winner);
}

/// Starts a process that takes the lock and holds it for `hold_ms`; returns once it holds it.
fn start_holder(url: &str, config: &str, hold_ms: &str) -> std::process::Child {
    let mut holder = probe(url, &["hold", config, "e2e", hold_ms, "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn holder");
    let mut line = String::new();
    let mut reader = std::io::BufReader::new(holder.stdout.take().expect("stdout"));
    std::io::BufRead::read_line(&mut reader, &mut line).expect("holder line");
    assert!(line.contains("holding"), "{line}");
    holder
}

#[derive(Debug)]
struct Run {
    code: Option<i32>,
    interval: Option<(i64, i64)>,
}

fn parse_run(out: &Output) -> Run {
    let interval = stdout(out).lines().find_map(|line| {
        let v: serde_json::Value = serde_json::from_str(line).ok()?;
        Some((v["start"].as_i64()?, v["end"].as_i64()?))
    });
    Run {
        code: out.status.code(),
        interval,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn ten_processes_taking_the_lock_never_overlap_and_lose_no_record() {
    let (url, bucket, config) = project("10s").await;
    let config = config.to_str().unwrap_or_default().to_owned();
    // Half wait for the lock, half give up at once: every one ends with 0 or 4.
    let children: Vec<_> = (0..10)
        .map(|i| {
            let wait = if i % 2 == 0 { "20000" } else { "0" };
            probe(&url, &["hold", &config, "e2e", "300", wait])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn probe")
        })
        .collect();
    let runs: Vec<Run> = children
        .into_iter()
        .map(|c| parse_run(&c.wait_with_output().expect("probe output")))
        .collect();
    for run in &runs {
        assert!(matches!(run.code, Some(0 | 4)), "unexpected exit: {runs:?}");
    }
    let mut held: Vec<(i64, i64)> = runs
        .iter()
        .filter(|r| r.code == Some(0))
        .filter_map(|r| r.interval)
        .collect();
    let winners = runs.iter().filter(|r| r.code == Some(0)).count();
    assert!(winners >= 1, "{runs:?}");
    assert_eq!(held.len(), winners, "{runs:?}");
    held.sort();
    for pair in held.windows(2) {
        assert!(pair[0].1 <= pair[1].0, "two holders at once: {pair:?}");
    }
    let records = list_keys(&url, &bucket, "deploy/t/e2e/artifacts/app/releases/").await;
    assert_eq!(records.len(), winners, "one record per successful process");
    let lock = get_json(&url, &bucket, "deploy/t/e2e/lock.json").await;
    assert!(lock["released"].is_object(), "lock left held: {lock}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_lease_is_taken_over() {
    let (url, bucket, config) = project("10s").await;
    let expired = serde_json::json!({
        "lease_id": "old-lease",
        "holder": { "user": "ghost", "host": "gone", "pid": 1 },
        "operation": "release plan x",
        "acquired_at": "2026-01-01T00:00:00Z",
        "expires_at": "2026-01-01T00:02:00Z"
    });
    deploy_tests::s3(&url)
        .await
        .put_object()
        .bucket(&bucket)
        .key("deploy/t/e2e/lock.json")
        .body(serde_json::to_vec(&expired).unwrap_or_default().into())
        .send()
        .await
        .expect("plant an expired lock");
    let out = probe(
        &url,
        &[
            "hold",
            config.to_str().unwrap_or_default(),
            "e2e",
            "10",
            "0",
        ],
    )
    .output()
    .expect("probe");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lock = get_json(&url, &bucket, "deploy/t/e2e/lock.json").await;
    assert_ne!(lock["lease_id"], "old-lease");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crashed_holder_blocks_until_its_lease_expires() {
    // The shortest lease a configuration may ask for.
    let (url, _bucket, config) = project("10s").await;
    let config = config.to_str().unwrap_or_default().to_owned();
    let mut holder = start_holder(&url, &config, "60000");
    // Kill it without letting it clean up.
    holder.kill().expect("kill holder");
    let _ = holder.wait();

    let blocked = probe(&url, &["hold", &config, "e2e", "10", "0"])
        .output()
        .expect("probe");
    assert_eq!(
        blocked.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&blocked.stderr)
    );
    assert!(String::from_utf8_lossy(&blocked.stderr).contains("is locked by"));

    let started = Instant::now();
    let waited = probe(&url, &["hold", &config, "e2e", "10", "25000"])
        .output()
        .expect("probe");
    assert_eq!(
        waited.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&waited.stderr)
    );
    assert!(started.elapsed() < Duration::from_secs(20));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_step_records_the_failure_and_releases_the_lock() {
    let (url, bucket, config) = project("10s").await;
    let out = probe(
        &url,
        &[
            "hold",
            config.to_str().unwrap_or_default(),
            "e2e",
            "10",
            "0",
            "fail",
        ],
    )
    .output()
    .expect("probe");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("failed on purpose"));
    let keys = list_keys(&url, &bucket, "deploy/t/e2e/artifacts/app/releases/").await;
    assert_eq!(keys.len(), 1, "{keys:?}");
    let record = get_json(&url, &bucket, &keys[0]).await;
    assert_eq!(record["outcome"]["result"], "failed", "{record}");
    let live = list_keys(&url, &bucket, "deploy/t/e2e/artifacts/app/live.json").await;
    assert!(
        live.is_empty(),
        "a failed release must not move the live pointer"
    );
    let lock = get_json(&url, &bucket, "deploy/t/e2e/lock.json").await;
    assert!(lock["released"].is_object(), "{lock}");
}

#[tokio::test(flavor = "multi_thread")]
async fn lock_status_and_forced_release_through_the_cli() {
    let (url, bucket, config) = project("10s").await;
    let config = config.to_str().unwrap_or_default().to_owned();
    let holder = start_holder(&url, &config, "8000");

    let status = deploy(&url)
        .args([
            "--config", &config, "--output", "json", "lock", "e2e", "status",
        ])
        .output()
        .expect("status");
    assert_eq!(status.status.code(), Some(0));
    let doc: serde_json::Value = serde_json::from_slice(&status.stdout).expect("json");
    assert_eq!(doc["state"], "held", "{doc}");

    let no_yes = deploy(&url)
        .args(["--config", &config, "lock", "e2e", "release"])
        .stdin(Stdio::null())
        .output()
        .expect("release");
    assert_eq!(
        no_yes.status.code(),
        Some(2),
        "no terminal and no --yes must refuse"
    );
    let dry = deploy(&url)
        .args(["--config", &config, "lock", "e2e", "release", "--dry-run"])
        .output()
        .expect("dry");
    assert_eq!(dry.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&dry.stdout).contains("would force-release"));
    assert!(
        list_keys(&url, &bucket, "deploy/t/e2e/lock-events/")
            .await
            .is_empty(),
        "dry run changed something"
    );

    let released = deploy(&url)
        .args(["--config", &config, "lock", "e2e", "release", "--yes"])
        .output()
        .expect("release");
    assert_eq!(
        released.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&released.stderr)
    );
    let events = list_keys(&url, &bucket, "deploy/t/e2e/lock-events/").await;
    assert_eq!(events.len(), 1);
    let event = get_json(&url, &bucket, &events[0]).await;
    assert_eq!(event["event"], "force-release");
    assert!(
        event["by"]["aws_arn"]
            .as_str()
            .is_some_and(|a| a.contains(ACCOUNT)),
        "{event}"
    );

    // The holder notices at its next renewal and stops before writing a successful record.
    let out = holder.wait_with_output().expect("holder");
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("lost the lock"));
    let keys = list_keys(&url, &bucket, "deploy/t/e2e/artifacts/app/releases/").await;
    for key in keys {
        let record = get_json(&url, &bucket, &key).await;
        assert_eq!(
            record["outcome"]["result"],
            "failed",
            "{record}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// A lock object that is not a lease (unparseable, or another schema) is cleared by a forced
/// release, recorded like any other, instead of failing to parse.
#[tokio::test(flavor = "multi_thread")]
async fn releasing_a_garbage_lock_clears_it_and_records_it() {
    for garbage in ["{ not json", r#"{"schema": 7, "owner": "someone"}"#] {
        let (url, bucket, config) = project("10s").await;
        let config = config.to_str().unwrap_or_default().to_owned();
        let s3 = deploy_tests::s3(&url).await;
        s3.put_object()
            .bucket(&bucket)
            .key("deploy/t/e2e/lock.json")
            .body(garbage.as_bytes().to_vec().into())
            .send()
            .await
            .expect("put garbage");

        let status = deploy(&url)
            .args(["--config", &config, "lock", "e2e", "status"])
            .output()
            .expect("status");
        let stderr = String::from_utf8_lossy(&status.stderr);
        assert!(
            stderr.contains("deploy lock e2e release --yes"),
            "{garbage}: {stderr}"
        );

        let released = deploy(&url)
            .args(["--config", &config, "lock", "e2e", "release", "--yes"])
            .output()
            .expect("release");
        assert_eq!(
            released.status.code(),
            Some(0),
            "{garbage}: {}",
            String::from_utf8_lossy(&released.stderr)
        );
        let lock = get_json(&url, &bucket, "deploy/t/e2e/lock.json").await;
        assert_eq!(lock["released"]["forced"], true, "{garbage}: {lock}");
        let events = list_keys(&url, &bucket, "deploy/t/e2e/lock-events/").await;
        assert_eq!(events.len(), 1, "{garbage}");
        let event = get_json(&url, &bucket, &events[0]).await;
        assert_eq!(event["event"], "force-release", "{event}");
        assert_eq!(event["unreadable"]["content"], garbage, "{event}");

        // The environment can be locked again.
        let status = deploy(&url)
            .args(["--config", &config, "lock", "e2e", "status"])
            .output()
            .expect("status");
        assert_eq!(status.status.code(), Some(0));
        assert!(
            String::from_utf8_lossy(&status.stdout).contains("e2e: free"),
            "{}",
            String::from_utf8_lossy(&status.stdout)
        );
    }
}

//! How `history` and `status` scale with the ledger: writes N release records (default
//! 10,000) for two artifacts into a moto S3 bucket, then times `deploy history -n 20`,
//! `deploy history --since 90d` and `deploy status` next to a plain `aws s3api list-objects-v2` of the same prefix (the floor
//! for any reader of that bucket), and prints the ratios.
//!
//! ```text
//! cargo run --release -p deploy-tests --bin ledger-bench -- [records]
//! ```

use std::process::Command;
use std::time::{Duration, Instant};

use deploy_core::aws::AwsClients;
use deploy_core::config::Config;
use deploy_core::kinds::ArtifactKind;
use deploy_core::ledger::{
    Actor, Ledger, Operation, Outcome, ReleaseRecord, SCHEMA, new_release_id,
};
use deploy_tests::{create_bucket, deploy, moto, scratch_dir, unique, write_config};
use futures::StreamExt;
use time::OffsetDateTime;

const RUNS: usize = 5;

fn main() {
    let records: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(10_000);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let url = moto().url.clone();
    let bucket = unique("bench");
    let config_path = write_config(&scratch_dir("bench"), &bucket, "1m");
    runtime.block_on(write_records(&url, &bucket, &config_path, records));
    let config = config_path.to_str().unwrap_or_default();
    let timed = |args: &[&str]| {
        median(|| {
            let out = deploy(&url)
                .args(["--config", config, "--output", "json"])
                .args(args)
                .output()
                .expect("run deploy");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        })
    };
    let history = timed(&["history", "e2e", "-n", "20"]);
    let window = timed(&["history", "e2e", "--since", "90d"]);
    let status = timed(&["status", "e2e"]);
    let list = median(|| {
        let mut cmd = Command::new("aws");
        deploy_tests::isolate_aws_env(&mut cmd);
        let out = cmd
            .env("AWS_ENDPOINT_URL", &url)
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .args([
                "s3api",
                "list-objects-v2",
                "--bucket",
                &bucket,
                "--prefix",
                "deploy/t/e2e/artifacts/app/releases/",
                "--max-items",
                "20",
            ])
            .output()
            .expect("aws cli (from the emulators venv) on PATH");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    });
    report(records, [history, window, status, list]);
}

/// Prints the medians of `history -n 20`, `history --since 90d`, `status` and the plain S3
/// listing, their ratios and whether the targets were met.
fn report(records: usize, [history, window, status, list]: [Duration; 4]) {
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!("median of {RUNS} runs, {records} records in the ledger:");
    println!("  deploy history -n 20      {:8.1} ms", ms(history));
    println!(
        "  deploy history --since 90d {:7.1} ms (~860 records in the window)",
        ms(window)
    );
    println!("  deploy status             {:8.1} ms", ms(status));
    println!("  aws s3api list (20 keys)  {:8.1} ms", ms(list));
    println!(
        "  ratio history/list {:.2}x, status/list {:.2}x; target: about 1 s each -> {}",
        ms(history) / ms(list),
        ms(status) / ms(list),
        if history < Duration::from_millis(1500) && status < Duration::from_millis(1500) {
            "met"
        } else {
            "MISSED"
        }
    );
    println!(
        "  history --since 90d: target a few seconds (< 5 s) -> {}",
        if window < Duration::from_secs(5) {
            "met"
        } else {
            "MISSED"
        }
    );
}

/// Writes `records` release records for two artifacts into the ledger of `config_path`'s
/// environment in `bucket` (the last two through the commit, so the live pointers exist).
async fn write_records(url: &str, bucket: &str, config_path: &std::path::Path, records: usize) {
    create_bucket(url, bucket).await;
    let config = Config::load(config_path).expect("config");
    let env = config.environment("e2e").expect("env");
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(deploy_tests::REGION))
        .endpoint_url(url)
        .credentials_provider(aws_credential_types::Credentials::for_tests())
        .load()
        .await;
    let clients = AwsClients::from_sdk_config(&env.target, &sdk);
    let ledger = Ledger::new(clients.s3.clone(), &env.target);
    let started = Instant::now();
    let start = OffsetDateTime::now_utc() - time::Duration::days(3 * 365);
    futures::stream::iter(0..records)
        .map(|i| {
            let ledger = ledger.clone();
            async move {
                let at = start + time::Duration::minutes(i as i64 * 150);
                let mut record = ReleaseRecord {
                    schema: SCHEMA,
                    id: new_release_id(at),
                    project: "t".into(),
                    environment: "e2e".into(),
                    artifact: if i % 2 == 0 {
                        "app".into()
                    } else {
                        "worker".into()
                    },
                    kind: ArtifactKind::Image,
                    operation: Operation::Release,
                    version: Some(format!("v{i}")),
                    artifact_ref: None,
                    source_environment: None,
                    started_at: at,
                    finished_at: at + time::Duration::minutes(3),
                    actor: Actor::detect(),
                    touched: vec![],
                    outcome: if i % 17 == 0 {
                        Outcome::Failed {
                            error: "health check".into(),
                        }
                    } else {
                        Outcome::Succeeded
                    },
                    previous: None,
                    restored: None,
                    commit_time: None,
                    dirty: false,
                    plan_id: None,
                };
                if i + 2 >= records {
                    ledger.commit(&mut record).await.map(drop)
                } else {
                    ledger.put_record(&record).await.map(drop)
                }
            }
        })
        .buffer_unordered(32)
        .for_each(|r| async move { r.expect("write record") })
        .await;
    println!(
        "wrote {records} records in {:.1}s",
        started.elapsed().as_secs_f64()
    );
}

fn median(mut run: impl FnMut()) -> Duration {
    let mut times: Vec<Duration> = (0..RUNS)
        .map(|_| {
            let start = Instant::now();
            run();
            start.elapsed()
        })
        .collect();
    times.sort();
    times[RUNS / 2]
}

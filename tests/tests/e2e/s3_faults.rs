//! `deploy publish` with S3 behind a fault-injecting proxy: lost answers to conditional writes,
//! `503 SlowDown`, resets, a process killed in the middle of its ledger writes. The ledger is
//! read back with a plain S3 client and checked against the rules of docs/ledger.md.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use deploy_tests::s3_proxy::{Fault, Rule, S3Proxy};
use deploy_tests::{
    REGION, copy_dir, create_bucket, create_repository, deploy, moto, oci_registry, scratch_dir,
    unique, workspace_root,
};
use serde_json::Value;

const ROOT: &str = "deploy/t/dev";
const POINTER: &str = "deploy/t/dev/artifacts/api/published.json";

/// A project publishing the example `api` image, with S3 behind its own proxy.
struct Project {
    config: PathBuf,
    bucket: String,
    proxy: S3Proxy,
}

async fn project(retry_max_attempts: u32) -> Project {
    let url = moto().url.clone();
    let bucket = unique("faults-state");
    create_bucket(&url, &bucket).await;
    let repo = format!("faults/{}", unique("api"));
    create_repository(&url, &repo).await;
    let dir = scratch_dir("faults");
    copy_dir(
        &workspace_root().join("examples/planwise/build/api"),
        &dir.join("layout"),
    );
    let proxy = S3Proxy::start(&url);
    let config = dir.join("deploy.toml");
    let text = format!(
        r#"project = "t"
[settings]
retry_max_attempts = {retry_max_attempts}
lock_ttl = "30s"
timeout = "2m"
[environments.dev]
region = "{REGION}"
account = "123456789012"
state_bucket = "{bucket}"
endpoints = {{ registry = "http://{registry}", s3 = "{s3}" }}
[artifacts.api]
kind = "image"
repository = "{repo}"
source = "oci:./layout:latest"
"#,
        registry = oci_registry().host,
        s3 = proxy.url,
    );
    std::fs::write(&config, text).expect("write config");
    Project {
        config,
        bucket,
        proxy,
    }
}

fn run(config: &Path, args: &[&str]) -> Output {
    deploy(&moto().url)
        .arg("--config")
        .arg(config)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run deploy")
}

fn publish(project: &Project, version: &str) -> Output {
    run(
        &project.config,
        &["publish", "dev", "api", "--version", version],
    )
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The state bucket as a plain S3 client sees it.
#[derive(Debug)]
struct LedgerView {
    lock: Option<Value>,
    pointer: Option<Value>,
    /// Records by key, newest first.
    records: Vec<(String, Value)>,
}

async fn get(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Option<Value> {
    let out = match s3.get_object().bucket(bucket).key(key).send().await {
        Ok(out) => out,
        Err(err) if err.as_service_error().is_some_and(|e| e.is_no_such_key()) => return None,
        Err(err) => panic!("get {key}: {err:?}"),
    };
    let bytes = out.body.collect().await.expect("body").into_bytes();
    Some(serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{key} is not JSON: {e}")))
}

async fn read_ledger(bucket: &str) -> LedgerView {
    let s3 = deploy_tests::s3(&moto().url).await;
    let keys = deploy_tests::list_keys(
        &moto().url,
        bucket,
        &format!("{ROOT}/artifacts/api/releases/"),
    )
    .await;
    let mut records = Vec::new();
    for key in keys {
        let record = get(&s3, bucket, &key).await.expect("listed record");
        records.push((key, record));
    }
    LedgerView {
        lock: get(&s3, bucket, &format!("{ROOT}/lock.json")).await,
        pointer: get(&s3, bucket, POINTER).await,
        records,
    }
}

fn succeeded(record: &Value) -> bool {
    record["outcome"]["result"] == "succeeded"
}

fn file(key: &str) -> &str {
    key.rsplit('/').next().unwrap_or_default()
}

impl LedgerView {
    /// Ids listed in `supersedes` by records that count: failure records, and succeeded
    /// records the pointer names or that are older than the one it names (a success whose
    /// pointer never moved replaces nothing).
    fn superseded(&self) -> HashSet<String> {
        let pointed = self
            .pointer
            .as_ref()
            .and_then(|p| p["record_key"].as_str())
            .unwrap_or_default();
        self.records
            .iter()
            .filter(|(key, r)| !succeeded(r) || (!pointed.is_empty() && file(key) >= file(pointed)))
            .flat_map(|(_, r)| r["supersedes"].as_array().cloned().unwrap_or_default())
            .filter_map(|id| id.as_str().map(str::to_owned))
            .collect()
    }

    fn record(&self, key: &str) -> Option<&Value> {
        self.records.iter().find(|(k, _)| k == key).map(|(_, r)| r)
    }

    /// The rules of docs/ledger.md, plus "no lock left".
    fn check(&self) -> Result<(), String> {
        match self.orphans().as_slice() {
            [] => self.check_rest(),
            [first, ..] => Err(format!("orphan succeeded record {first}")),
        }
    }

    /// After a failed run: as [`LedgerView::check`], except that the run may have left its own
    /// succeeded record orphaned (its failure record could not be written either), as the
    /// newest record; the next commit reconciles it.
    fn check_after_failure(&self) -> Result<(), String> {
        match self.orphans().as_slice() {
            [] => {}
            [only] if self.records.first().is_some_and(|(k, _)| k == only) => {}
            more => return Err(format!("orphans after a failed run: {more:?}")),
        }
        self.check_rest()
    }

    /// Keys of succeeded records newer than what the pointer names, that nothing supersedes.
    fn orphans(&self) -> Vec<String> {
        let pointed = self.pointer.as_ref().and_then(|p| p["record_key"].as_str());
        let superseded = self.superseded();
        self.records
            .iter()
            .filter(|(key, record)| {
                let id = record["id"].as_str().unwrap_or_default();
                succeeded(record)
                    && pointed.is_none_or(|p| file(key) < file(p))
                    && !superseded.contains(id)
            })
            .map(|(key, _)| key.clone())
            .collect()
    }

    fn check_rest(&self) -> Result<(), String> {
        if let Some(lock) = &self.lock
            && !lock["released"].is_object()
        {
            return Err(format!("lock left held: {lock}"));
        }
        let pointed = match &self.pointer {
            Some(pointer) => {
                let key = pointer["record_key"].as_str().unwrap_or_default();
                let record = self
                    .record(key)
                    .ok_or_else(|| format!("pointer names a missing record: {pointer}"))?;
                if !succeeded(record) || record["id"] != pointer["release_id"] {
                    return Err(format!("pointer {pointer} names {record}"));
                }
                Some(key)
            }
            None => None,
        };
        if pointed.is_none() && self.records.iter().any(|(_, r)| succeeded(r)) {
            return Err("succeeded records but no pointer".into());
        }
        let superseded = self.superseded();
        let mut per_plan: HashMap<&str, usize> = HashMap::new();
        for (_, record) in &self.records {
            let id = record["id"].as_str().unwrap_or_default();
            if !superseded.contains(id) {
                *per_plan
                    .entry(record["plan_id"].as_str().unwrap_or_default())
                    .or_default() += 1;
            }
        }
        if let Some((plan, n)) = per_plan.iter().find(|(_, n)| **n > 1) {
            return Err(format!("plan {plan} has {n} records that count"));
        }
        Ok(())
    }

    fn pointer_version(&self) -> Option<&str> {
        self.pointer.as_ref()?["version"].as_str()
    }
}

/// Publishes v1 with a lost answer somewhere, checks the run succeeds and the ledger is right.
async fn lost_answer(rule: Rule, prepare: bool) {
    let project = project(3).await;
    if prepare {
        let out = publish(&project, "v0");
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    }
    project.proxy.add(rule.clone());
    let out = publish(&project, "v1");
    assert_eq!(out.status.code(), Some(0), "{rule:?}: {}", stderr(&out));
    assert_eq!(
        project.proxy.faults(),
        1,
        "the fault was injected: {:?}",
        project.proxy.seen()
    );
    let ledger = read_ledger(&project.bucket).await;
    ledger.check().unwrap_or_else(|e| panic!("{rule:?}: {e}"));
    let lock = ledger.lock.as_ref().expect("lock object");
    assert_eq!(lock["released"]["forced"], false, "released by its holder");
    assert_eq!(ledger.pointer_version(), Some("v1"), "{ledger:?}");
    assert!(
        ledger.records.iter().all(|(_, r)| succeeded(r)),
        "no failure recorded: {ledger:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lost_answer_to_taking_the_lock() {
    lost_answer(Rule::new("PUT", "/lock.json", Fault::ResetAfter, 1), false).await;
}

/// Taking over a released lease is an `If-Match` write, not a create.
#[tokio::test(flavor = "multi_thread")]
async fn a_lost_answer_to_taking_a_released_lock() {
    lost_answer(Rule::new("PUT", "/lock.json", Fault::ResetAfter, 1), true).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lost_answer_to_releasing_the_lock() {
    lost_answer(
        Rule::new("PUT", "/lock.json", Fault::ResetAfter, 1).after(1),
        false,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lost_answer_to_writing_the_record() {
    lost_answer(Rule::new("PUT", "/releases/", Fault::ResetAfter, 1), false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lost_answer_to_creating_the_pointer() {
    lost_answer(
        Rule::new("PUT", "/published.json", Fault::ResetAfter, 1),
        false,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lost_answer_to_moving_the_pointer() {
    lost_answer(
        Rule::new("PUT", "/published.json", Fault::ResetAfter, 1),
        true,
    )
    .await;
}

/// The record is written, then S3 refuses the pointer every time (all the attempts of every
/// round): the run fails (exit 1) saying what it did and that the ledger could not record it,
/// with the S3 error; no failure record contradicts what was done, so its succeeded record is
/// the one orphan (`incomplete` in history), the pointer still names v1, and a rerun
/// reconciles it.
#[tokio::test(flavor = "multi_thread")]
async fn a_pointer_that_cannot_be_moved_leaves_the_record_incomplete_until_the_next_run() {
    let project = project(3).await;
    let out = publish(&project, "v1");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    project
        .proxy
        .add(Rule::new("PUT", "/published.json", Fault::SlowDown, 1000));
    let out = publish(&project, "v2");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = stderr(&out);
    let line = format!(
        "s3://{}/{POINTER}: PutObject failed: SlowDown (503): Please reduce your request rate.",
        project.bucket
    );
    assert!(text.contains(&line), "{text}");
    assert!(
        text.contains("the publish of api is done") && text.contains("could not record it"),
        "{text}"
    );
    assert!(
        !text.contains("ServiceError {"),
        "no SDK debug dump: {text}"
    );

    let ledger = read_ledger(&project.bucket).await;
    ledger
        .check_after_failure()
        .unwrap_or_else(|e| panic!("{e}: {ledger:?}"));
    assert_eq!(ledger.pointer_version(), Some("v1"));
    let v2: Vec<&Value> = ledger
        .records
        .iter()
        .map(|(_, r)| r)
        .filter(|r| r["version"] == "v2")
        .collect();
    assert_eq!(v2.len(), 1, "only the succeeded record: {v2:?}");
    assert!(succeeded(v2[0]), "{v2:?}");

    project.proxy.calm();
    let history = run(&project.config, &["history", "dev"]);
    assert_eq!(history.status.code(), Some(0), "{}", stderr(&history));
    let listed = String::from_utf8_lossy(&history.stdout).into_owned();
    assert!(
        listed
            .lines()
            .any(|l| l.contains(" v2 ") && l.contains(" incomplete ")),
        "{listed}"
    );
    let out = publish(&project, "v2");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let ledger = read_ledger(&project.bucket).await;
    ledger.check().unwrap_or_else(|e| panic!("{e}: {ledger:?}"));
    assert_eq!(ledger.pointer_version(), Some("v2"));
}

/// Publishes v1, then kills (SIGKILL) the publish of v2 while its pointer write hangs; checks
/// `history` calls that record incomplete and force-releases the lock the dead run held.
/// Returns the killed run's record and its key.
async fn killed_in_the_pointer_write(project: &Project) -> (String, Value) {
    let out = publish(project, "v1");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    project
        .proxy
        .add(Rule::new("PUT", "/published.json", Fault::Hold, 1));
    let mut child = deploy(&moto().url)
        .arg("--config")
        .arg(&project.config)
        .args(["publish", "dev", "api", "--version", "v2"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn deploy");
    project.proxy.wait_holding(Duration::from_secs(60));
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    project.proxy.release_held();

    let ledger = read_ledger(&project.bucket).await;
    assert_eq!(ledger.pointer_version(), Some("v1"));
    let (killed_key, killed) = ledger
        .records
        .iter()
        .find(|(_, r)| r["version"] == "v2")
        .cloned()
        .expect("the killed run's record");
    assert!(succeeded(&killed), "{killed}");
    let history = run(&project.config, &["history", "dev"]);
    let text = String::from_utf8_lossy(&history.stdout).into_owned();
    assert!(
        text.lines()
            .any(|l| l.contains("v2") && l.contains("incomplete")),
        "{text}"
    );

    let released = run(&project.config, &["lock", "dev", "release", "--yes"]);
    assert_eq!(released.status.code(), Some(0), "{}", stderr(&released));
    (killed_key, killed)
}

/// SIGKILL while the pointer write hangs: the record says succeeded, no pointer names it.
/// `history` shows it incomplete; after a forced lock release the rerun supersedes it, and
/// `status` shows the rerun.
#[tokio::test(flavor = "multi_thread")]
async fn a_run_killed_in_the_pointer_write_converges_on_rerun() {
    let project = project(3).await;
    let (killed_key, killed) = killed_in_the_pointer_write(&project).await;
    let out = publish(&project, "v2");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    let ledger = read_ledger(&project.bucket).await;
    ledger.check().unwrap_or_else(|e| panic!("{e}: {ledger:?}"));
    let pointer = ledger.pointer.as_ref().expect("pointer");
    assert_eq!(pointer["version"], "v2");
    assert_ne!(
        pointer["record_key"],
        killed_key.as_str(),
        "the rerun's record"
    );
    assert!(
        ledger
            .superseded()
            .contains(killed["id"].as_str().unwrap_or_default())
    );
    assert!(
        !ledger.records.iter().any(|(_, r)| !succeeded(r)),
        "no failure was recorded for the killed run: {ledger:?}"
    );

    let history = run(&project.config, &["history", "dev"]);
    let text = String::from_utf8_lossy(&history.stdout).into_owned();
    let v2: Vec<&str> = text.lines().filter(|l| l.contains(" v2 ")).collect();
    assert_eq!(v2.len(), 2, "{text}");
    assert!(v2.iter().any(|l| l.contains("superseded")), "{text}");
    assert!(v2.iter().any(|l| l.contains(" ok ")), "{text}");
    let status = run(&project.config, &["status", "dev"]);
    let text = String::from_utf8_lossy(&status.stdout).into_owned();
    assert!(
        text.lines().any(|l| l.contains("api") && l.contains("v2")),
        "{text}"
    );
}

/// One cell of the fault matrix.
#[derive(Debug, Clone, Copy)]
struct Cell {
    /// Share of the requests that get a random fault.
    percent: u64,
    seed: u64,
    /// Only requests whose path contains this (empty: all).
    pattern: &'static str,
    /// `retry_max_attempts`.
    attempts: u32,
    runs: usize,
    /// Before the second run, make S3 refuse the next pointer write on every attempt, so that
    /// at least one run fails between its record and its pointer.
    refuse_a_pointer: bool,
}

/// Random faults (`SlowDown`, reset before, reset after) on S3 requests: after each run the
/// ledger follows the rules and no lock is left; a run that exits 0 is what the pointer names;
/// a last run without faults leaves no orphan at all. Returns how many runs passed and failed.
async fn fault_matrix(cell: Cell) -> (usize, usize) {
    let project = project(cell.attempts).await;
    project
        .proxy
        .random_matching(cell.percent, cell.seed, cell.pattern);
    let (mut passed, mut failed) = (0, 0);
    for n in 1..=cell.runs {
        if cell.refuse_a_pointer && n == 2 {
            // Every attempt of every round of the ledger's persistence.
            let rounds = deploy_core::ledger::Persistence::default().rounds;
            let refuse = Rule::new(
                "PUT",
                "/published.json",
                Fault::SlowDown,
                cell.attempts * rounds,
            );
            project.proxy.add(refuse);
        }
        let version = format!("v{n}");
        let out = publish(&project, &version);
        let ledger = read_ledger(&project.bucket).await;
        let checked = if out.status.code() == Some(0) {
            passed += 1;
            ledger.check().and_then(|()| {
                (ledger.pointer_version() == Some(version.as_str()))
                    .then_some(())
                    .ok_or_else(|| "the pointer does not name this run's release".to_owned())
            })
        } else {
            failed += 1;
            ledger.check_after_failure()
        };
        checked.unwrap_or_else(|e| {
            panic!(
                "{cell:?} run {n} (exit {:?}): {e}\n{}\n{ledger:?}",
                out.status.code(),
                stderr(&out)
            )
        });
    }
    assert!(
        project.proxy.faults() > 0,
        "{cell:?}: no fault in {} requests",
        project.proxy.seen().len()
    );
    assert!(passed > 0, "{cell:?}: no run passed");
    eprintln!(
        "{cell:?}: {passed} runs passed, {failed} failed, {} of {} requests faulted",
        project.proxy.faults(),
        project.proxy.seen().len()
    );
    project.proxy.calm();
    let out = publish(&project, "final");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let ledger = read_ledger(&project.bucket).await;
    ledger
        .check()
        .unwrap_or_else(|e| panic!("{cell:?} final: {e}"));
    assert_eq!(ledger.pointer_version(), Some("final"));
    (passed, failed)
}

/// Enough attempts that a request giving up is rare: the lock is never left behind.
#[tokio::test(flavor = "multi_thread")]
async fn ten_percent_random_faults() {
    fault_matrix(Cell {
        percent: 10,
        seed: 6,
        pattern: "",
        attempts: 8,
        runs: 4,
        refuse_a_pointer: false,
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn thirty_percent_random_faults() {
    fault_matrix(Cell {
        percent: 30,
        seed: 0x5EED_0030,
        pattern: "",
        attempts: 8,
        runs: 4,
        refuse_a_pointer: false,
    })
    .await;
}

/// Faults on the records and pointers only, with the default three attempts: some runs fail
/// between the record and the pointer, and must leave one outcome per run.
#[tokio::test(flavor = "multi_thread")]
async fn forty_percent_faults_on_records_and_pointers() {
    let (_, failed) = fault_matrix(Cell {
        percent: 40,
        seed: 0x5EED_0040,
        pattern: "/artifacts/",
        attempts: 3,
        runs: 6,
        refuse_a_pointer: true,
    })
    .await;
    assert!(failed > 0, "a pointer write was refused");
}

/// The answer to a lease renewal is lost: the holder must not think its lease was taken.
#[tokio::test(flavor = "multi_thread")]
async fn a_lost_answer_to_renewing_the_lock() {
    let url = moto().url.clone();
    let bucket = unique("faults-renew");
    create_bucket(&url, &bucket).await;
    let config = deploy_tests::write_config(&scratch_dir("faults-renew"), &bucket, "10s");
    let proxy = S3Proxy::start(&url);
    // The first PUT of lock.json takes the lease, the second renews it (after a third of 10 s).
    proxy.add(Rule::new("PUT", "/lock.json", Fault::ResetAfter, 1).after(1));
    let mut probe = std::process::Command::new(env!("CARGO_BIN_EXE_deploy-probe"));
    deploy_tests::isolate_aws_env(&mut probe);
    let out = probe
        .env("AWS_ENDPOINT_URL", &proxy.url)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .args([
            "hold",
            config.to_str().unwrap_or_default(),
            "e2e",
            "4500",
            "0",
        ])
        .output()
        .expect("run probe");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(proxy.faults(), 1, "{:?}", proxy.seen());
    let lock_puts = proxy
        .seen()
        .iter()
        .filter(|s| s.method == "PUT" && s.path.contains("/lock.json"))
        .count();
    assert!(
        lock_puts >= 3,
        "take, renew (lost, retried), release: {lock_puts}"
    );
    let lock = deploy_tests::get_json(&url, &bucket, "deploy/t/e2e/lock.json").await;
    assert_eq!(lock["released"]["forced"], false, "{lock}");
}

/// The run after a killed one cannot move the pointer: it says what it did and that the
/// ledger could not record it, leaves its own record as the newest orphan (listing the killed
/// run's, which its pointers would have replaced), and the next run converges: every record
/// counts or is superseded, none is left incomplete.
#[tokio::test(flavor = "multi_thread")]
async fn a_run_after_a_killed_one_that_cannot_record_is_reconciled_by_the_next() {
    let project = project(3).await;
    let (killed_key, _) = killed_in_the_pointer_write(&project).await;
    project
        .proxy
        .add(Rule::new("PUT", "/published.json", Fault::SlowDown, 1000));
    let out = publish(&project, "v3");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("could not record it"),
        "{}",
        stderr(&out)
    );
    let ledger = read_ledger(&project.bucket).await;
    let newest = &ledger.records.first().expect("records").1;
    assert_eq!(newest["version"], "v3", "{ledger:?}");
    let killed_id = ledger.record(&killed_key).expect("killed record")["id"].clone();
    assert_eq!(
        newest["supersedes"],
        serde_json::json!([killed_id]),
        "{newest}"
    );
    assert_eq!(ledger.pointer_version(), Some("v1"));

    project.proxy.calm();
    let out = publish(&project, "v4");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let ledger = read_ledger(&project.bucket).await;
    ledger.check().unwrap_or_else(|e| panic!("{e}: {ledger:?}"));
    assert_eq!(ledger.pointer_version(), Some("v4"));
    let history = run(&project.config, &["history", "dev"]);
    let text = String::from_utf8_lossy(&history.stdout).into_owned();
    assert!(!text.lines().any(|l| l.contains(" incomplete ")), "{text}");
}

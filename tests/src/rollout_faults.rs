//! What a run under faults left, read back through plain S3 reads of the state bucket (never
//! through deploy's own code): the lock, the newest record and the `live.json` pointer of an
//! artifact of project `t`, environment `dev` (docs/ledger.md), and the checks every fault run
//! of a rollout shares.

pub mod ecs;

use std::process::Output;

use serde_json::Value;

use crate::moto;

/// The ledger of one artifact of project `t` in `dev`.
#[derive(Debug, Clone)]
pub struct Ledger {
    /// The state bucket.
    pub bucket: String,
    /// The artifact.
    pub artifact: String,
}

/// One object as JSON, or `None` when it does not exist.
pub async fn read_json(bucket: &str, key: &str) -> Option<Value> {
    let s3 = crate::s3(&moto().url).await;
    match s3.get_object().bucket(bucket).key(key).send().await {
        Ok(out) => {
            let bytes = out.body.collect().await.expect("read body").into_bytes();
            Some(serde_json::from_slice(&bytes).expect("object is JSON"))
        }
        Err(err) if err.as_service_error().is_some_and(|e| e.is_no_such_key()) => None,
        Err(err) => panic!("get s3://{bucket}/{key}: {err:?}"),
    }
}

impl Ledger {
    /// The ledger of `artifact` in `bucket`.
    pub fn new(bucket: &str, artifact: &str) -> Ledger {
        Ledger {
            bucket: bucket.to_owned(),
            artifact: artifact.to_owned(),
        }
    }

    /// `lock.json` is absent or holds a released marker; otherwise the lock document.
    pub async fn lock_given_back(&self) -> Result<(), Value> {
        match read_json(&self.bucket, "deploy/t/dev/lock.json").await {
            Some(lock) if lock.get("released").is_none_or(Value::is_null) => Err(lock),
            _ => Ok(()),
        }
    }

    /// The newest record of the artifact (records sort newest first).
    pub async fn newest(&self) -> Option<Value> {
        let prefix = format!("deploy/t/dev/artifacts/{}/releases/", self.artifact);
        let keys = crate::list_keys(&moto().url, &self.bucket, &prefix).await;
        let key = keys.first()?;
        read_json(&self.bucket, key).await
    }

    /// The outcome of every record of the artifact, newest first.
    pub async fn outcomes(&self) -> Vec<String> {
        let prefix = format!("deploy/t/dev/artifacts/{}/releases/", self.artifact);
        let mut outcomes = Vec::new();
        for key in crate::list_keys(&moto().url, &self.bucket, &prefix).await {
            let record = read_json(&self.bucket, &key).await.unwrap_or_default();
            outcomes.push(outcome(&record).to_owned());
        }
        outcomes
    }

    /// The `live.json` pointer.
    pub async fn live(&self) -> Option<Value> {
        let key = format!("deploy/t/dev/artifacts/{}/live.json", self.artifact);
        read_json(&self.bucket, &key).await
    }
}

/// The result name of a record (`succeeded`, `failed`, `rolled-back`).
pub fn outcome(record: &Value) -> &str {
    record["outcome"]["result"].as_str().unwrap_or("?")
}

/// Exit code and the whole output of a run, for messages.
pub fn exit(out: &Output) -> (i32, String) {
    let text = format!(
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

/// What a rollout left running, as the test reads it from the service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Running {
    /// What ran before the release, exactly (no routing to anything else).
    Previous,
    /// The new release, exactly, as `live.json` names it.
    New,
    /// Anything else (a partial shift, a third revision): the description.
    Other(String),
}

/// The checks every run under faults must pass, given its output and what runs now: exit 0,
/// 1 or 3; the lock given back; exit 0 means the new release runs and `live.json` and the
/// newest record say so; exit 3 means the previous one runs and the newest record says
/// `rolled-back`; exit 1 means the previous one runs, or the newest record says `failed`
/// (and names what it left).
pub async fn check_run(ledger: &Ledger, out: &Output, running: &Running, label: &str) -> i32 {
    let (code, text) = exit(out);
    assert!(
        [0, 1, 3].contains(&code),
        "{label}: exit {code}, expected 0, 1 or 3\n{text}"
    );
    if let Err(lock) = ledger.lock_given_back().await {
        panic!("{label}: the lock was not given back: {lock}\n{text}");
    }
    let newest = ledger.newest().await;
    let result = newest.as_ref().map(outcome);
    match code {
        0 => {
            assert_eq!(*running, Running::New, "{label}: exit 0\n{text}");
            assert_eq!(result, Some("succeeded"), "{label}\n{text}");
            let live = ledger.live().await.expect("exit 0 moved live.json");
            let newest = newest.unwrap_or_default();
            assert_eq!(
                live["release_id"], newest["id"],
                "{label}: live.json\n{text}"
            );
        }
        3 => {
            assert_eq!(*running, Running::Previous, "{label}: exit 3\n{text}");
            assert_eq!(result, Some("rolled-back"), "{label}\n{text}");
        }
        _ => {
            let told = *running == Running::Previous || result == Some("failed");
            assert!(
                told,
                "{label}: exit 1 left {running:?}, the newest record says {result:?}\n{text}"
            );
        }
    }
    code
}

//! The ledger's writes and the lock's return under bursts of faults on the state bucket (a
//! proxy in front of S3): a burst longer than the SDK's attempts is outlasted, a lock that
//! cannot be given back is a warning naming the lease (the release's own exit code stands), a
//! lost pointer write that cannot be read back is not called a conflict, a stop that comes
//! after the work is done says the run finished, and releases that waited for the lock plan
//! again. Read back with a plain S3 client.

use std::process::{Child, Output, Stdio};
use std::time::Duration;

use deploy_tests::dags::{Project, ok};
use deploy_tests::s3_proxy::{Fault, Rule, Seen};
use deploy_tests::{deploy, get_json, moto};
use serde_json::Value;

const LOCK: &str = "deploy/t/dev/lock.json";
const LIVE: &str = "deploy/t/dev/artifacts/dags/live.json";

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

async fn lock(p: &Project) -> Value {
    get_json(&moto().url, &p.state, LOCK).await
}

async fn live_version(p: &Project) -> Value {
    get_json(&moto().url, &p.state, LIVE).await["version"].clone()
}

/// A project with v1 released and a change in its folder waiting for the next release.
async fn released_once() -> Project {
    let p = Project::new("").await;
    p.write("a.py", "A = 1\n");
    ok(&p.release("v1", &[]));
    p.write("b.py", "B = 1\n");
    p
}

/// How many of `seen` are reads (`GET`) of the state bucket, up to the first request that
/// `stop` matches (all of them without one).
fn state_reads(p: &Project, seen: &[Seen], stop: impl Fn(&Seen) -> bool) -> u32 {
    let state = format!("/{}/", p.state);
    let reads = seen
        .iter()
        .take_while(|s| !stop(s))
        .filter(|s| s.method == "GET" && s.path.starts_with(&state))
        .count();
    u32::try_from(reads).expect("few reads")
}

/// Three `503 SlowDown` on the unlock (all of the SDK's attempts) are outlasted: the release
/// exits 0, the lock is given back by its holder, the next release takes it at once.
#[tokio::test(flavor = "multi_thread")]
async fn three_slowdowns_on_the_unlock_are_outlasted() {
    let p = released_once().await;
    p.proxy
        .add(Rule::new("PUT", "/lock.json", Fault::SlowDown, 3).after(1));
    let out = p.release("v2", &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(p.proxy.faults(), 3, "{:?}", p.proxy.seen());
    let lock = lock(&p).await;
    assert_eq!(lock["released"]["forced"], false, "given back: {lock}");
    assert!(!stderr(&out).contains("not given back"), "{}", stderr(&out));
    p.write("c.py", "C = 1\n");
    ok(&p.release_with("v3", &["--wait-lock", "0s"], &[]));
}

/// An unlock that keeps failing does not fail the release: exit 0, a warning naming the
/// lease and when it expires; the lease is still held in S3 and `deploy lock release` frees it.
#[tokio::test(flavor = "multi_thread")]
async fn a_lock_that_cannot_be_given_back_is_a_warning_naming_the_lease() {
    let p = released_once().await;
    p.proxy
        .add(Rule::new("PUT", "/lock.json", Fault::SlowDown, 1000).after(1));
    let out = p.release_with("v2", &["--quiet"], &[]);
    let text = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert_eq!(live_version(&p).await, "v2", "{text}");
    p.proxy.calm();
    let held = lock(&p).await;
    assert!(held["released"].is_null(), "still held: {held}");
    let lease = held["lease_id"].as_str().expect("lease id");
    let expires = held["expires_at"].as_str().expect("expiry");
    assert!(
        text.contains("warning: the lock of dev was not given back")
            && text.contains(lease)
            && text.contains(&expires[..16]),
        "{text}"
    );
    let freed = deploy(&moto().url)
        .arg("--config")
        .arg(&p.config)
        .args(["lock", "dev", "release", "--yes"])
        .stdin(Stdio::null())
        .output()
        .expect("run deploy");
    ok(&freed);
    p.write("c.py", "C = 1\n");
    ok(&p.release_with("v3", &["--wait-lock", "0s"], &[]));
}

/// Seven `503`s on the last read of the state bucket before the pointer moves (more than the
/// SDK's three attempts): the release still records what it made live.
#[tokio::test(flavor = "multi_thread")]
async fn a_burst_on_the_ledger_reads_of_the_record_is_outlasted() {
    let p = released_once().await;
    ok(&p.release("v2", &[]));
    let clean = p.proxy.seen();
    let reads = state_reads(&p, &clean, |s| {
        s.method == "PUT" && s.path.contains("/live.json")
    });
    assert!(reads > 0, "{clean:?}");
    p.write("c.py", "C = 1\n");
    let state = format!("/{}/", p.state);
    p.proxy.calm();
    p.proxy
        .add(Rule::new("GET", &state, Fault::SlowDown, 7).after(reads - 1));
    let out = p.release("v3", &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(p.proxy.faults(), 7, "{:?}", p.proxy.seen());
    assert_eq!(live_version(&p).await, "v3");
    assert_eq!(lock(&p).await["released"]["forced"], false);
}

/// The pointer write's answer is lost after S3 wrote it, and every read after it fails: the
/// run is not called "changed by someone else"; it exits 1 saying that v2 runs and that the
/// ledger could not confirm it; once S3 answers, the pointer names v2 (the write did land).
#[tokio::test(flavor = "multi_thread")]
async fn a_lost_pointer_write_that_cannot_be_read_back_is_not_a_conflict() {
    let p = released_once().await;
    // v2's release has the same shape as v3's: count its reads up to its pointer write.
    p.proxy.calm();
    ok(&p.release("v2", &[]));
    let seen = p.proxy.seen();
    let reads = state_reads(&p, &seen, |s| {
        s.method == "PUT" && s.path.contains("/live.json")
    });
    p.write("c.py", "C = 1\n");
    p.proxy.calm();
    p.proxy
        .add(Rule::new("PUT", "/live.json", Fault::ResetAfter, 1));
    let state = format!("/{}/", p.state);
    p.proxy
        .add(Rule::new("GET", &state, Fault::SlowDown, 1000).after(reads));
    let out = p.release("v3", &[]);
    let text = stderr(&out);
    p.proxy.calm();
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(!text.contains("someone else"), "{text}");
    assert!(
        text.contains("version v3") && text.contains("runs in dev") && text.contains("could not"),
        "{text}"
    );
    assert_eq!(live_version(&p).await, "v3", "the write had landed");
}

fn spawn_release(p: &Project, version: &str, args: &[&str]) -> Child {
    deploy(&moto().url)
        .arg("--config")
        .arg(&p.config)
        .args(["release", "dev", "dags", "--version", version])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn deploy")
}

fn signal(child: &Child, name: &str) {
    let status = std::process::Command::new("kill")
        .arg(format!("-{name}"))
        .arg(child.id().to_string())
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{name}");
}

/// SIGINT while the pointer write hangs (the DAGs are live, the record written): the run
/// finishes its record, says so, and exits 0, with the lock given back.
#[tokio::test(flavor = "multi_thread")]
async fn a_stop_after_the_work_is_done_says_the_run_finished() {
    let p = released_once().await;
    p.proxy.add(Rule::new("PUT", "/live.json", Fault::Hold, 1));
    let child = spawn_release(&p, "v2", &[]);
    p.proxy.wait_holding(Duration::from_secs(60));
    signal(&child, "INT");
    std::thread::sleep(Duration::from_millis(300));
    p.proxy.release_held();
    let out = child.wait_with_output().expect("wait");
    let text = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("the run had already finished"), "{text}");
    assert!(!text.contains("was cancelled"), "{text}");
    assert_eq!(live_version(&p).await, "v2");
    assert_eq!(lock(&p).await["released"]["forced"], false);
}

/// Six releases at once, each waiting for the lock: each plans again once it holds it, and
/// all exit 0; none asks for a new plan.
#[tokio::test(flavor = "multi_thread")]
async fn releases_that_waited_for_the_lock_plan_again() {
    let p = released_once().await;
    let children: Vec<(String, Child)> = (2..8)
        .map(|n| {
            let version = format!("v{n}");
            let child = spawn_release(&p, &version, &["--wait-lock", "3m"]);
            (version, child)
        })
        .collect();
    let mut replanned = 0;
    let mut versions = Vec::new();
    for (version, child) in children {
        let out = child.wait_with_output().expect("wait");
        let text = stderr(&out);
        assert_eq!(out.status.code(), Some(0), "{version}: {text}");
        assert!(!text.contains("Make a new plan"), "{version}: {text}");
        if text.contains("planning again") {
            replanned += 1;
        }
        versions.push(version);
    }
    assert!(replanned > 0, "some release waited behind another");
    let live = live_version(&p).await;
    assert!(versions.iter().any(|v| live == v.as_str()), "{live}");
    assert_eq!(lock(&p).await["released"]["forced"], false);
}

//! DAG syncs under faults, injected by a proxy in front of S3: connections reset before and
//! after S3 acted, throttled listings and deletes, random faults, and a run killed (SIGKILL)
//! in the middle of its uploads. A run either succeeds or leaves the previous set (or says
//! what it left); a rerun converges on exactly the folder. Read back with a plain S3 client.

use std::process::Stdio;
use std::time::Duration;

use deploy_tests::dags::{Project, expected, ok};
use deploy_tests::s3_proxy::{Fault, Rule};
use deploy_tests::{deploy, get_json, moto};

/// Writes `dag_0.py` .. `dag_{count-1}.py` with content of `round`; returns their names.
fn write_round(p: &Project, count: usize, round: u32) -> Vec<String> {
    (0..count)
        .map(|i| {
            let name = format!("dag_{i}.py");
            p.write(&name, &format!("N = {i}\nROUND = {round}\n"));
            name
        })
        .collect()
}

fn names(paths: &[String]) -> Vec<&str> {
    paths.iter().map(String::as_str).collect()
}

async fn live_version(p: &Project) -> serde_json::Value {
    get_json(
        &moto().url,
        &p.state,
        "deploy/t/dev/artifacts/dags/live.json",
    )
    .await["version"]
        .clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn resets_before_and_after_s3_acted_and_throttling_are_retried() {
    let p = Project::new("").await;
    let first = write_round(&p, 6, 1);
    ok(&p.release("v1", &[]));
    let dags = format!("/{}/dags/", p.dags);
    let written = write_round(&p, 4, 2);
    // A PUT cut before S3 saw it, one whose answer was lost after S3 wrote it, a throttled
    // listing and a delete whose answer was lost after S3 deleted.
    p.proxy.add(Rule::new(
        "PUT",
        &format!("{dags}dag_1.py"),
        Fault::ResetBefore,
        1,
    ));
    p.proxy.add(Rule::new(
        "PUT",
        &format!("{dags}dag_2.py"),
        Fault::ResetAfter,
        1,
    ));
    p.proxy
        .add(Rule::new("GET", "list-type=2", Fault::SlowDown, 1));
    p.proxy
        .add(Rule::new("POST", "?delete", Fault::ResetAfter, 1));
    for gone in &first[4..] {
        std::fs::remove_file(p.folder().join(gone)).expect("rm");
    }
    ok(&p.release("v2", &[]));
    assert_eq!(p.proxy.faults(), 4, "every fault was met");
    assert_eq!(
        p.objects().await,
        expected(&p.folder(), &names(&written), false)
    );
    assert_eq!(live_version(&p).await, "v2");
}

/// One upload keeps failing after the others went through: the step puts every file it may
/// have touched back before it fails, so the run is rolled back (exit 3) with the previous set
/// exactly, and the live release stays v1.
#[tokio::test(flavor = "multi_thread")]
async fn an_upload_that_keeps_failing_puts_the_previous_set_back() {
    let p = Project::new("").await;
    let first = write_round(&p, 6, 1);
    ok(&p.release("v1", &[]));
    let v1 = p.objects().await;
    write_round(&p, 6, 2);
    p.write("added.py", "A = 1\n");
    std::fs::remove_file(p.folder().join(&first[5])).expect("rm");
    // Every attempt of the upload (retry_max_attempts = 3, the default) is throttled; the
    // put-back's copy to the same key then goes through.
    p.proxy.add(Rule::new(
        "PUT",
        &format!("/{}/dags/dag_3.py", p.dags),
        Fault::SlowDown,
        3,
    ));
    let out = p.release("v2", &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("were put back"), "{stderr}");
    p.proxy.calm();
    assert_eq!(p.objects().await, v1, "the previous set, byte for byte");
    assert_eq!(live_version(&p).await, "v1");
}

/// Random faults on almost half of the DAG bucket's requests, over several seeds: each run
/// ends with the new set (exit 0), the previous set exactly (exit 3), nothing changed or a
/// failure that says the put-back failed too (exit 1); the rerun without faults always
/// converges on the folder.
#[tokio::test(flavor = "multi_thread")]
async fn random_faults_leave_a_known_set_and_a_rerun_converges() {
    for seed in [1, 3, 5, 8] {
        let p = Project::new("").await;
        let before = write_round(&p, 10, 1);
        ok(&p.release("v1", &[]));
        let v1 = p.objects().await;
        let mut now = write_round(&p, 6, 2);
        for gone in &before[8..] {
            std::fs::remove_file(p.folder().join(gone)).expect("rm");
        }
        p.write("new_a.py", "A = 1\n");
        now.extend(before[6..8].iter().cloned());
        now.push("new_a.py".into());
        let wanted = expected(&p.folder(), &names(&now), false);

        p.proxy.random_matching(45, seed, &format!("/{}", p.dags));
        let out = p.release("v2", &[]);
        p.proxy.calm();
        let left = p.objects().await;
        match out.status.code() {
            Some(0) => assert_eq!(left, wanted, "seed {seed}: success means the new set"),
            Some(3) => assert_eq!(left, v1, "seed {seed}: rolled back means the old set"),
            Some(1) => {
                // Stopped before any change, or the put-back met faults too: the run says so.
                let stderr = String::from_utf8_lossy(&out.stderr);
                let said = stderr.contains("rerun to converge")
                    || (stderr.contains("nothing was changed") && left == v1);
                assert!(said, "seed {seed}: {stderr}");
            }
            other => panic!(
                "seed {seed}: exit {other:?}\n{}",
                String::from_utf8_lossy(&out.stderr)
            ),
        }
        ok(&p.release("v2", &[]));
        assert_eq!(
            p.objects().await,
            wanted,
            "seed {seed}: the rerun converges"
        );
        assert_eq!(live_version(&p).await, "v2");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sync_killed_in_the_middle_of_its_uploads_converges_on_rerun() {
    let p = Project::new("").await;
    write_round(&p, 8, 1);
    ok(&p.release("v1", &[]));
    let now = write_round(&p, 8, 2);
    p.proxy.add(Rule::new(
        "PUT",
        &format!("/{}/dags/dag_5.py", p.dags),
        Fault::Hold,
        1,
    ));
    let mut child = deploy(&moto().url)
        .arg("--config")
        .arg(&p.config)
        .args(["release", "dev", "dags", "--version", "v2"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn deploy");
    p.proxy.wait_holding(Duration::from_secs(60));
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    p.proxy.release_held();
    assert_eq!(
        live_version(&p).await,
        "v1",
        "the killed run recorded nothing live"
    );
    assert_ne!(
        p.objects().await,
        expected(&p.folder(), &names(&now), false),
        "the killed run stopped part way"
    );

    let unlock = deploy(&moto().url)
        .arg("--config")
        .arg(&p.config)
        .args(["lock", "dev", "release", "--yes"])
        .stdin(Stdio::null())
        .output()
        .expect("run deploy");
    ok(&unlock);
    ok(&p.release("v2", &[]));
    assert_eq!(
        p.objects().await,
        expected(&p.folder(), &names(&now), false)
    );
    assert_eq!(live_version(&p).await, "v2");
}

/// A DAG bucket that does not exist: named, with what to do, exit 2 before the lock; no
/// `NoSuchBucket` dump and nothing recorded.
#[tokio::test(flavor = "multi_thread")]
async fn a_missing_dag_bucket_is_named_with_the_fix() {
    let p = Project::new("").await;
    p.write("a.py", "x = 1\n");
    let text = std::fs::read_to_string(&p.config).expect("config");
    let gone = format!("{}-typo", p.dags);
    std::fs::write(
        &p.config,
        text.replace(
            &format!("bucket = \"{}\"", p.dags),
            &format!("bucket = \"{gone}\""),
        ),
    )
    .expect("write");
    let out = p.release("v1", &[]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("the DAG bucket `{gone}` does not exist"))
            && stderr.contains("fix the artifact's `bucket`"),
        "{stderr}"
    );
    let records = deploy_tests::list_keys(
        &moto().url,
        &p.state,
        "deploy/t/dev/artifacts/dags/releases/",
    )
    .await;
    assert!(records.is_empty(), "nothing recorded: {records:?}");
}

//! Stopping a publish midway: `--timeout`, SIGINT and SIGTERM while the push hangs on a
//! registry that never answers. Each time the run records the release as failed, gives the lock
//! back before it exits, and exits 1, 130 or 143. Read back with plain SDK clients.

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use deploy_tests::{
    REGION, copy_dir, create_bucket, create_repository, deploy, get_json, list_keys, moto,
    scratch_dir, unique, workspace_root,
};

/// A registry that accepts connections and never answers.
fn silent_registry() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let host = listener.local_addr().expect("addr").to_string();
    std::thread::spawn(move || {
        let mut held: Vec<TcpStream> = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    host
}

/// A project whose `api` image is pushed to a registry that never answers.
async fn project() -> (PathBuf, String) {
    project_with_s3(None).await
}

/// [`project`], with S3 reached at `s3` when given.
async fn project_with_s3(s3: Option<&str>) -> (PathBuf, String) {
    let url = moto().url.clone();
    let bucket = unique("cancel");
    create_bucket(&url, &bucket).await;
    let repo = format!("cancel/{}", unique("api"));
    create_repository(&url, &repo).await;
    let dir = scratch_dir("cancel");
    copy_dir(
        &workspace_root().join("examples/planwise/build/api"),
        &dir.join("layout"),
    );
    let config = dir.join("deploy.toml");
    let text = format!(
        "project = \"t\"\n[environments.dev]\nregion = \"{REGION}\"\naccount = \"123456789012\"\n\
         state_bucket = \"{bucket}\"\nendpoints = {{ registry = \"http://{}\"{s3} }}\n\
         [artifacts.api]\nkind = \"image\"\nrepository = \"{repo}\"\nsource = \"oci:./layout:latest\"\n",
        silent_registry(),
        s3 = s3
            .map(|url| format!(", s3 = \"{url}\""))
            .unwrap_or_default(),
    );
    std::fs::write(&config, text).expect("write config");
    (config, bucket)
}

fn start(config: &PathBuf, extra: &[&str]) -> Child {
    deploy(&moto().url)
        .arg("--config")
        .arg(config)
        .args(["publish", "dev", "api", "--version", "v1"])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start deploy")
}

/// Waits until the push step has started (its line on stderr); returns the thread that reads
/// all of stderr.
fn wait_for_push(child: &mut Child) -> std::thread::JoinHandle<String> {
    wait_for_line(child, "[api.publish-image] push")
}

/// Waits until `child` writes a line containing `needle` on stderr; returns the thread that
/// reads all of stderr.
fn wait_for_line(child: &mut Child, needle: &'static str) -> std::thread::JoinHandle<String> {
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains(needle) {
                let _ = tx.send(());
            }
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    rx.recv_timeout(Duration::from_secs(30))
        .unwrap_or_else(|_| panic!("no `{needle}` on stderr"));
    reader
}

fn signal(child: &Child, signal: &str) {
    let status = std::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(child.id().to_string())
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{signal}");
}

/// After the run: the lock is released and one failed record names the push.
async fn assert_given_back(bucket: &str, stderr: &str) {
    let lock = get_json(&moto().url, bucket, "deploy/t/dev/lock.json").await;
    assert!(
        !lock["released"].is_null(),
        "the lock was given back before exit: {lock}\n{stderr}"
    );
    let records = list_keys(&moto().url, bucket, "deploy/t/dev/artifacts/api/releases/").await;
    assert_eq!(records.len(), 1, "{stderr}");
    let record = get_json(&moto().url, bucket, &records[0]).await;
    assert_eq!(record["outcome"]["result"], "failed", "{record}");
    let pointers = list_keys(
        &moto().url,
        bucket,
        "deploy/t/dev/artifacts/api/published.json",
    )
    .await;
    assert!(pointers.is_empty(), "nothing was published");
}

async fn stopped_by(signal_name: &str, code: i32, said: &str) {
    let (config, bucket) = project().await;
    let mut child = start(&config, &[]);
    let reader = wait_for_push(&mut child);
    signal(&child, signal_name);
    let sent = Instant::now();
    let status = child.wait().expect("wait");
    let stderr = reader.join().expect("stderr");
    assert!(
        sent.elapsed() < Duration::from_secs(20),
        "stopped promptly: {stderr}"
    );
    assert_eq!(status.code(), Some(code), "{stderr}");
    assert!(stderr.contains(said), "{stderr}");
    assert_given_back(&bucket, &stderr).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sigint_mid_push_records_the_failure_and_gives_the_lock_back() {
    stopped_by("INT", 130, "interrupted (SIGINT)").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_mid_push_records_the_failure_and_gives_the_lock_back() {
    stopped_by("TERM", 143, "terminated (SIGTERM)").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_timeout_mid_push_records_the_failure_and_gives_the_lock_back() {
    let (config, bucket) = project().await;
    let started = Instant::now();
    let mut child = start(&config, &["--timeout", "4s"]);
    let reader = wait_for_push(&mut child);
    let status = child.wait().expect("wait");
    let stderr = reader.join().expect("stderr");
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "the timeout stopped it: {stderr}"
    );
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("timed out after 4s"), "{stderr}");
    assert_given_back(&bucket, &stderr).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sigint_while_waiting_for_a_lock_stops_at_once_and_leaves_the_holder_alone() {
    let (config, bucket) = project().await;
    let mut holder = start(&config, &[]);
    let holder_log = wait_for_push(&mut holder);
    let mut waiter = start(&config, &["--wait-lock", "60s"]);
    let waiter_log = wait_for_line(&mut waiter, "waiting for the lock");
    signal(&waiter, "INT");
    let sent = Instant::now();
    let status = waiter.wait().expect("wait");
    let log = waiter_log.join().expect("stderr");
    assert!(sent.elapsed() < Duration::from_secs(5), "{log}");
    assert_eq!(status.code(), Some(130), "{log}");
    let lock = get_json(&moto().url, &bucket, "deploy/t/dev/lock.json").await;
    assert!(
        lock["released"].is_null(),
        "the holder keeps its lock: {lock}"
    );

    signal(&holder, "INT");
    let status = holder.wait().expect("wait");
    let log = holder_log.join().expect("stderr");
    assert_eq!(status.code(), Some(130), "{log}");
    assert_given_back(&bucket, &log).await;
}

/// A second signal while the first one's clean-up waits on S3 ends the process at once; the
/// lock is then left to expire.
#[tokio::test(flavor = "multi_thread")]
async fn a_second_signal_exits_at_once() {
    use deploy_tests::s3_proxy::{Fault, Rule, S3Proxy};
    let proxy = S3Proxy::start(&moto().url);
    let (config, bucket) = project_with_s3(Some(&proxy.url)).await;
    proxy.add(Rule::new("PUT", "/releases/", Fault::Hold, 1));
    let mut child = start(&config, &[]);
    let reader = wait_for_push(&mut child);
    signal(&child, "INT");
    proxy.wait_holding(Duration::from_secs(30));
    signal(&child, "INT");
    let sent = Instant::now();
    let status = child.wait().expect("wait");
    let stderr = reader.join().expect("stderr");
    proxy.release_held();
    assert!(sent.elapsed() < Duration::from_secs(3), "{stderr}");
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("stopped at once"), "{stderr}");
    let lock = get_json(&moto().url, &bucket, "deploy/t/dev/lock.json").await;
    assert!(lock["released"].is_null(), "left to expire: {lock}");
}

//! A run killed with SIGKILL in the middle of its work (a DAG sync between uploads, an ECS
//! deployment being followed, a Lambda canary between steps): the next run of the environment,
//! once the lock is released, finds the dead run's journal in the state bucket, undoes what it
//! left (prefix exact, service back, alias on one version with no routing) before its own work,
//! and records the dead run as `abandoned`. Read back through S3, the ECS double and Lambda.

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use deploy_tests::codedeploy_double::Lifecycle;
use deploy_tests::dags::{Project, expected, ok, read_all};
use deploy_tests::ecs_double::Script;
use deploy_tests::s3_proxy::{Fault, Rule};
use deploy_tests::{deploy, get_json, list_keys, moto};

use super::lambda::{Fixture as LambdaFixture, code};

/// Every record of `artifact` in `bucket`, newest first.
async fn records(bucket: &str, artifact: &str) -> Vec<serde_json::Value> {
    let prefix = format!("deploy/t/dev/artifacts/{artifact}/releases/");
    let mut out = Vec::new();
    for key in list_keys(&moto().url, bucket, &prefix).await {
        out.push(get_json(&moto().url, bucket, &key).await);
    }
    out
}

/// The one `abandoned` record among `records`.
fn abandoned(records: &[serde_json::Value]) -> &serde_json::Value {
    let found: Vec<_> = records
        .iter()
        .filter(|r| r["outcome"]["result"] == "abandoned")
        .collect();
    assert_eq!(found.len(), 1, "one abandoned record: {records:#?}");
    found[0]
}

/// `deploy --config CONFIG ARGS...` started in the background, its output discarded.
fn spawn(config: &std::path::Path, args: &[&str]) -> Child {
    deploy(&moto().url)
        .arg("--config")
        .arg(config)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn deploy")
}

/// `deploy lock dev release --yes` with `config`.
fn release_lock(config: &std::path::Path) {
    let out = deploy(&moto().url)
        .arg("--config")
        .arg(config)
        .args(["lock", "dev", "release", "--yes"])
        .stdin(Stdio::null())
        .output()
        .expect("run deploy");
    ok(&out);
}

/// Waits (up to 60 s) until `done` holds, then kills `child` with SIGKILL.
async fn kill_when<F, Fut>(mut child: Child, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done().await {
        assert!(Instant::now() < deadline, "the run never got there");
        if let Ok(Some(status)) = child.try_wait() {
            panic!("deploy ended before the kill: {status}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    child.kill().expect("SIGKILL");
    let _ = child.wait();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dag_sync_killed_between_uploads_is_put_back_by_the_next_release() {
    let p = Project::new("").await;
    let v1: Vec<String> = (0..6).map(|i| format!("dag_{i}.py")).collect();
    for (i, name) in v1.iter().enumerate() {
        p.write(name, &format!("N = {i}\nROUND = 1\n"));
    }
    ok(&p.release("v1", &[]));
    let first = read_all(&p.dags, "dags/").await;
    for (i, name) in v1.iter().enumerate() {
        p.write(name, &format!("N = {i}\nROUND = 2\n"));
    }
    p.proxy.add(Rule::new(
        "PUT",
        &format!("/{}/dags/dag_4.py", p.dags),
        Fault::Hold,
        1,
    ));
    let child = spawn(&p.config, &["release", "dev", "dags", "--version", "v2"]);
    p.proxy.wait_holding(Duration::from_secs(60));
    kill_when(child, || async { true }).await;
    p.proxy.release_held();
    assert_ne!(read_all(&p.dags, "dags/").await, first, "stopped part way");

    // The folder goes back to v1's content: the next release settles the dead run (the prefix
    // back to v1's versions), then finds nothing of its own to sync.
    for (i, name) in v1.iter().enumerate() {
        p.write(name, &format!("N = {i}\nROUND = 1\n"));
    }
    release_lock(&p.config);
    let out = p.release("v3", &[]);
    ok(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("ended without finishing"), "{stderr}");
    assert_eq!(read_all(&p.dags, "dags/").await, first, "v1, byte for byte");
    let names: Vec<&str> = v1.iter().map(String::as_str).collect();
    assert_eq!(p.objects().await, expected(&p.folder(), &names, false));

    let records = records(&p.state, "dags").await;
    let dead = abandoned(&records);
    assert_eq!(dead["version"], "v2");
    let undone = dead["outcome"]["undone"].to_string();
    assert!(undone.contains("put back the previous"), "{dead:#}");
    assert_eq!(dead["outcome"]["left"], serde_json::json!([]));
    let v3 = &records[0];
    assert_eq!(v3["version"], "v3");
    assert_eq!(dead["outcome"]["settled_by"], v3["plan_id"]);
    let journal = get_json(&moto().url, &p.state, "deploy/t/dev/journal.json").await;
    assert_eq!(journal["finished"], true, "{journal:#}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_ecs_deployment_left_by_a_killed_run_is_rolled_back_before_the_next_release() {
    let f = super::ecs_rolling::fixture("2m").await;
    f.double.script_service(&f.cluster, "api", Script::Stuck);
    let child = spawn(&f.config, &["release", "dev", "api", "--version", "v1"]);
    // Killed while it follows the stuck deployment.
    kill_when(child, || {
        let updated = f.updates() == 1;
        async move { updated }
    })
    .await;
    let left = f.running().await;
    assert_ne!(left, f.first, "the dead run's revision was deployed");

    release_lock(&f.config);
    let (status, stderr) = f.release("v2");
    assert_eq!(status, Some(0), "{stderr}");
    let updates: Vec<Option<String>> = f
        .double
        .requests_of("UpdateService")
        .into_iter()
        .map(|r| r.task_definition)
        .collect();
    assert_eq!(updates.len(), 3, "{updates:?}");
    assert_eq!(
        updates[1].as_deref(),
        Some(f.first.as_str()),
        "the service went back to what it ran before the dead run, first"
    );
    assert_eq!(f.running().await, updates[2].clone().expect("v2 revision"));

    let records = records(&f.bucket, "api").await;
    let dead = abandoned(&records);
    assert_eq!(dead["version"], "v1");
    assert!(
        dead["outcome"]["undone"].to_string().contains(&f.first),
        "{dead:#}"
    );
    assert_eq!(records[0]["outcome"]["result"], "succeeded");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lambda_canary_killed_between_steps_leaves_no_routing_after_the_next_run() {
    let fx = LambdaFixture::new().await;
    let slow = "{ strategy = \"lambda-canary\", steps = [10, 100], interval = \"60s\" }";
    fx.configure("v1", slow);
    let (status, text) = code(&fx.release("v1"));
    assert_eq!(status, Some(0), "{text}");
    let first = fx.alias().await.0;

    fx.configure("v2", slow);
    let child = deploy(&moto().url)
        .env("AWS_ENDPOINT_URL_CLOUDWATCH", &fx.bridge.url)
        .arg("--config")
        .arg(fx.dir.join("deploy.toml"))
        .args(["release", "dev", "--version", "v2"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn deploy");
    kill_when(child, || async { !fx.alias().await.1.is_empty() }).await;
    let (version, routing) = fx.alias().await;
    assert_eq!(version, first);
    assert_eq!(routing.len(), 1, "killed with 10% on the new version");

    release_lock(&fx.dir.join("deploy.toml"));
    fx.configure(
        "v2",
        "{ strategy = \"lambda-canary\", steps = [10, 100], interval = \"1s\" }",
    );
    let (status, text) = code(&fx.release("v2"));
    assert_eq!(status, Some(0), "{text}");
    let (version, routing) = fx.alias().await;
    assert_ne!(version, first, "the new release went live");
    assert!(routing.is_empty(), "no routing left: {routing:?}");

    let records = records(&fx.bucket, "fn").await;
    let dead = abandoned(&records);
    assert!(
        dead["outcome"]["undone"]
            .to_string()
            .contains(&format!("back at version {first}")),
        "{dead:#}"
    );
    assert_eq!(records[0]["outcome"]["result"], "succeeded");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_codedeploy_deployment_left_at_its_gate_is_stopped_before_the_next_release() {
    let f = super::codedeploy::fixture("timeout = \"5m\"").await;
    f.script(Lifecycle::Stuck);
    let child = spawn(&f.config, &["release", "dev", "api", "--version", "v1"]);
    kill_when(child, || {
        let created = f.codedeploy.requests_of("CreateDeployment").len() == 1;
        async move { created }
    })
    .await;
    assert!(f.codedeploy.requests_of("StopDeployment").is_empty());

    release_lock(&f.config);
    let (status, stderr) = f.release();
    assert_eq!(status, Some(0), "{stderr}");
    assert!(stderr.contains("stopping it"), "{stderr}");
    assert_eq!(
        f.codedeploy.requests_of("StopDeployment").len(),
        1,
        "the dead run's deployment was stopped"
    );
    let created = f.codedeploy.requests_of("CreateDeployment");
    assert_eq!(
        created.len(),
        3,
        "the dead one, the previous again, the new one"
    );
    assert!(
        created[1].body.to_string().contains(&f.first),
        "the previous revision was deployed again first"
    );
    assert_ne!(f.running().await, f.first, "the new release runs");
    let records = records(&f.bucket, "api").await;
    abandoned(&records);
    assert_eq!(records[0]["outcome"]["result"], "succeeded");
}

//! `deploy release` of an image on `ecs-rolling`, against moto behind the scripted ECS double:
//! the service ends on a revision with the published digest and the merged env and secrets,
//! everything else as it was; a rerun changes nothing; a circuit-breaker failure and a
//! deployment that never finishes end rolled back (exit 3) on the previous revision. The
//! service is read back through moto's ECS API directly, the ledger through plain S3 reads.

use std::path::PathBuf;

use aws_sdk_ecs::types::{ContainerDefinition, KeyValuePair};
use deploy_tests::ecs_double::{self, EcsDouble, Script};
use deploy_tests::{
    REGION, answering, create_repository, deploy, get_json, list_keys, moto, oci_registry,
    skopeo_inspect, unique,
};

/// A cluster with service `api` on revision 1 of a two-container task definition, and a
/// project releasing the example image to it.
pub(crate) struct Fixture {
    pub double: EcsDouble,
    pub config: PathBuf,
    pub bucket: String,
    pub repo: String,
    pub cluster: String,
    pub first: String,
}

pub(crate) async fn fixture(timeout: &str) -> Fixture {
    let double = EcsDouble::start(&moto().url);
    let ecs = ecs_double::client(&moto().url).await;
    let cluster = ecs_double::cluster(&ecs, "roll").await;
    let env = |name: &str, value: &str| KeyValuePair::builder().name(name).value(value).build();
    let api = ContainerDefinition::builder()
        .name("api")
        .image("public.ecr.aws/old/api:1")
        .memory(256)
        .essential(true)
        .environment(env("LOG_LEVEL", "debug"))
        .environment(env("KEEP", "1"))
        .build();
    let proxy = ContainerDefinition::builder()
        .name("proxy")
        .image("public.ecr.aws/nginx/nginx:1.27")
        .memory(64)
        .essential(false)
        .build();
    let registered = ecs
        .register_task_definition()
        .family(unique("api"))
        .container_definitions(api)
        .container_definitions(proxy)
        .cpu("256")
        .memory("512")
        .send()
        .await
        .expect("register task definition");
    let first = ecs_double::service_on(&ecs, &cluster, "api", &registered, 2).await;

    db_secret().await;
    let project = deploy_tests::image_project("roll").await;
    let (bucket, repo) = (project.bucket.clone(), project.repo.clone());
    let config = project.dir.join("deploy.toml");
    let head = deploy_tests::dev_head(&bucket, &double.endpoints());
    let text = head
        + &format!(
            r#"[artifacts.api]
kind = "image"
repository = "{repo}"
source = "oci:./layout:latest"
rollout = {{ strategy = "ecs-rolling", cluster = "{cluster}", service = "api", container = "api", timeout = "{timeout}" }}
[artifacts.api.env]
LOG_LEVEL = "info"
PUBLIC_URL = "https://api-{{env}}.example"
[artifacts.api.secrets]
DATABASE_URL = "arn:aws:secretsmanager:{{region}}:{{account}}:secret:t/{{env}}/db"
"#
        );
    std::fs::write(&config, text).expect("write config");
    Fixture {
        double,
        config,
        bucket,
        repo,
        cluster,
        first,
    }
}

/// The secret the artifact's `DATABASE_URL` names, which a release checks exists once the
/// service runs a revision that references it. Shared by every test of this file.
async fn db_secret() {
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(REGION))
        .endpoint_url(&moto().url)
        .credentials_provider(aws_credential_types::Credentials::for_tests())
        .load()
        .await;
    let created = aws_sdk_secretsmanager::Client::new(&config)
        .create_secret()
        .name("t/dev/db")
        .secret_string("postgres://db")
        .send()
        .await;
    if let Err(e) = created {
        let exists = e
            .as_service_error()
            .is_some_and(|s| s.is_resource_exists_exception());
        assert!(exists, "create secret: {e:?}");
    }
}

impl Fixture {
    pub(crate) fn release(&self, version: &str) -> (Option<i32>, String) {
        let out = deploy(&moto().url)
            .arg("--config")
            .arg(&self.config)
            .args(["release", "dev", "api", "--version", version])
            .output()
            .expect("run deploy");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// The task definition the service runs, read from moto.
    pub(crate) async fn running(&self) -> String {
        let ecs = ecs_double::client(&moto().url).await;
        let out = ecs
            .describe_services()
            .cluster(&self.cluster)
            .services("api")
            .send()
            .await
            .expect("describe service");
        out.services()[0]
            .task_definition()
            .expect("task definition")
            .to_owned()
    }

    /// The outcome of every record of `api`, newest first.
    pub(crate) async fn outcomes(&self) -> Vec<String> {
        let prefix = "deploy/t/dev/artifacts/api/releases/";
        let mut outcomes = Vec::new();
        for key in list_keys(&moto().url, &self.bucket, prefix).await {
            let record = get_json(&moto().url, &self.bucket, &key).await;
            outcomes.push(
                record["outcome"]["result"]
                    .as_str()
                    .unwrap_or("?")
                    .to_owned(),
            );
        }
        outcomes
    }

    pub(crate) fn updates(&self) -> usize {
        self.double.requests_of("UpdateService").len()
    }
}

pub(crate) async fn describe(arn: &str) -> aws_sdk_ecs::types::TaskDefinition {
    let ecs = ecs_double::client(&moto().url).await;
    ecs.describe_task_definition()
        .task_definition(arn)
        .send()
        .await
        .expect("describe task definition")
        .task_definition()
        .expect("task definition")
        .clone()
}

fn env_of(container: &ContainerDefinition) -> Vec<(String, String)> {
    container
        .environment()
        .iter()
        .map(|kv| {
            (
                kv.name().unwrap_or_default().to_owned(),
                kv.value().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// What the rollout waits for, how far it is and the time left, as one plain line.
fn assert_progress_line(stderr: &str) {
    let progress = stderr
        .lines()
        .find(|l| l.contains(" api: 100% ") && l.contains("/api: 2/2 running"))
        .unwrap_or_else(|| panic!("no progress line:\n{stderr}"));
    assert!(progress.ends_with("s left)"), "{progress}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_release_runs_the_published_digest_and_keeps_everything_else() {
    let f = fixture("30s").await;
    let (code, stderr) = f.release("v1");
    assert_eq!(code, Some(0), "{stderr}");
    assert_progress_line(&stderr);
    let digest = skopeo_inspect(&format!("{}/{}:v1", oci_registry().host, f.repo), false)
        .expect("skopeo")["Digest"]
        .as_str()
        .expect("digest")
        .to_owned();

    let running = f.running().await;
    assert_ne!(running, f.first, "the service moved to a new revision");
    let (before, after) = (describe(&f.first).await, describe(&running).await);
    let api = |t: &aws_sdk_ecs::types::TaskDefinition| {
        t.container_definitions()
            .iter()
            .find(|c| c.name() == Some("api"))
            .cloned()
            .expect("api container")
    };
    let (old, new) = (api(&before), api(&after));
    assert_eq!(
        new.image(),
        Some(format!("{}/{}@{digest}", oci_registry().host, f.repo).as_str())
    );
    assert_eq!(
        env_of(&new),
        [
            ("LOG_LEVEL".to_owned(), "info".to_owned()),
            ("KEEP".to_owned(), "1".to_owned()),
            (
                "PUBLIC_URL".to_owned(),
                "https://api-dev.example".to_owned()
            ),
        ],
        "env merged key by key, existing order kept"
    );
    let secret = &new.secrets()[0];
    assert_eq!(secret.name(), "DATABASE_URL");
    assert_eq!(
        secret.value_from(),
        "arn:aws:secretsmanager:eu-west-1:123456789012:secret:t/dev/db"
    );
    assert_eq!(old.memory(), new.memory());
    let proxy = |t: &aws_sdk_ecs::types::TaskDefinition| {
        t.container_definitions()
            .iter()
            .find(|c| c.name() == Some("proxy"))
            .cloned()
    };
    assert_eq!(
        proxy(&before),
        proxy(&after),
        "the other container is untouched"
    );
    assert_eq!(before.cpu(), after.cpu());
    assert_eq!(before.memory(), after.memory());
    assert_eq!(before.family(), after.family());
    assert_eq!(f.outcomes().await, ["succeeded"]);
    let live = get_json(
        &moto().url,
        &f.bucket,
        "deploy/t/dev/artifacts/api/live.json",
    )
    .await;
    let record = get_json(
        &moto().url,
        &f.bucket,
        live["record_key"].as_str().expect("key"),
    )
    .await;
    let touched = record["touched"].to_string();
    assert!(
        touched.contains(&running),
        "the record names the revision: {touched}"
    );

    let (code, stderr) = f.release("v1");
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(f.updates(), 1, "a rerun updates nothing");
    assert_eq!(f.outcomes().await, ["succeeded"], "and records nothing");
    assert_eq!(f.running().await, running);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_circuit_breaker_failure_ends_rolled_back_on_the_previous_revision() {
    let f = fixture("30s").await;
    f.double.script_service(
        &f.cluster,
        "api",
        Script::FailAndRollBack { after_polls: 2 },
    );
    let (code, stderr) = f.release("v1");
    assert_eq!(code, Some(3), "{stderr}");
    assert!(stderr.contains("circuit breaker"), "{stderr}");
    assert_eq!(
        f.running().await,
        f.first,
        "ECS put the previous revision back"
    );
    assert_eq!(f.updates(), 1, "deploy did not roll back a second time");
    assert_eq!(f.outcomes().await, ["rolled-back"]);
    let live = list_keys(
        &moto().url,
        &f.bucket,
        "deploy/t/dev/artifacts/api/live.json",
    )
    .await;
    assert!(live.is_empty(), "nothing went live");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deployment_that_never_finishes_is_put_back_by_deploy() {
    let f = fixture("2s").await;
    f.double.script_service(&f.cluster, "api", Script::Stuck);
    let (code, stderr) = f.release("v1");
    assert_eq!(code, Some(3), "{stderr}");
    assert!(stderr.contains("did not finish within 2s"), "{stderr}");
    assert_eq!(f.running().await, f.first);
    let updates = f.double.requests_of("UpdateService");
    assert_eq!(updates.len(), 2, "the new revision, then the previous one");
    assert_eq!(
        updates[1].task_definition.as_deref(),
        Some(f.first.as_str())
    );
    assert_eq!(f.outcomes().await, ["rolled-back"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_container_is_refused_before_anything_changes() {
    let f = fixture("30s").await;
    let text = std::fs::read_to_string(&f.config)
        .expect("config")
        .replace("container = \"api\"", "container = \"web\"");
    std::fs::write(&f.config, text).expect("write config");
    let (code, stderr) = f.release("v1");
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("container `web` is not in task definition")
            && stderr.contains("api, proxy"),
        "{stderr}"
    );
    assert_eq!(f.updates(), 0);
    assert!(f.outcomes().await.is_empty(), "nothing was recorded");
    assert!(
        skopeo_inspect(&format!("{}/{}:v1", oci_registry().host, f.repo), false).is_err(),
        "nothing was pushed"
    );
}

/// Two services released together: when the second one's deployment fails, the first one,
/// already complete, is put back by its undo, and both records say rolled back.
#[tokio::test(flavor = "multi_thread")]
async fn a_failure_of_one_service_undoes_the_other() {
    let f = fixture("30s").await;
    let ecs = ecs_double::client(&moto().url).await;
    ecs.create_service()
        .cluster(&f.cluster)
        .service_name("worker")
        .task_definition(&f.first)
        .desired_count(1)
        .send()
        .await
        .expect("create worker service");
    let repo = format!("roll/{}", unique("worker"));
    create_repository(&moto().url, &repo).await;
    let worker = format!(
        "[artifacts.worker]\nkind = \"image\"\nrepository = \"{repo}\"\nsource = \"oci:./layout:latest\"\n\
         rollout = {{ strategy = \"ecs-rolling\", cluster = \"{}\", service = \"worker\", container = \"api\" }}\n",
        f.cluster
    );
    let text = std::fs::read_to_string(&f.config).expect("config") + &worker;
    std::fs::write(&f.config, text).expect("write config");
    f.double
        .script_service(&f.cluster, "api", Script::Complete { after_polls: 1 });
    f.double.script_service(
        &f.cluster,
        "worker",
        Script::FailAndRollBack { after_polls: 8 },
    );

    let out = deploy(&moto().url)
        .arg("--config")
        .arg(&f.config)
        .args(["release", "dev", "--version", "v1"])
        .output()
        .expect("run deploy");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("[api.rollout-image] undone"), "{stderr}");
    assert_eq!(
        f.running().await,
        f.first,
        "api is back on the first revision"
    );
    let updates: Vec<_> = f
        .double
        .requests_of("UpdateService")
        .into_iter()
        .filter(|r| r.services.iter().any(|s| s == "api"))
        .collect();
    assert_eq!(updates.len(), 2, "the release, then the undo");
    assert_eq!(
        updates[1].task_definition.as_deref(),
        Some(f.first.as_str())
    );
    assert_eq!(f.outcomes().await, ["rolled-back"]);
    let worker_records = list_keys(
        &moto().url,
        &f.bucket,
        "deploy/t/dev/artifacts/worker/releases/",
    )
    .await;
    let record = get_json(&moto().url, &f.bucket, &worker_records[0]).await;
    assert_eq!(record["outcome"]["result"], "rolled-back");
}

pub(crate) fn with_health(f: &Fixture, url: &str) {
    let text = std::fs::read_to_string(&f.config).expect("config").replace(
        "container = \"api\", timeout",
        &format!(
            "container = \"api\", health_check = {{ url = \"{url}\", expect_status = 200, timeout = \"2s\" }}, timeout"
        ),
    );
    std::fs::write(&f.config, text).expect("write config");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_healthy_service_passes_the_gate() {
    let f = fixture("30s").await;
    with_health(&f, &answering(200));
    let (code, stderr) = f.release("v1");
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("[api.check-health] done"), "{stderr}");
    assert_ne!(f.running().await, f.first);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_health_check_puts_the_previous_revision_back() {
    let f = fixture("30s").await;
    let url = answering(500);
    with_health(&f, &url);
    let (code, stderr) = f.release("v1");
    assert_eq!(code, Some(3), "{stderr}");
    assert!(
        stderr.contains(&format!("health check of {url} failed")),
        "{stderr}"
    );
    assert!(stderr.contains("last answered 500"), "{stderr}");
    assert_eq!(
        f.running().await,
        f.first,
        "the undo put the first revision back"
    );
    assert_eq!(f.updates(), 2);
    assert_eq!(f.outcomes().await, ["rolled-back"]);
}

/// Registers a migration family whose container `api` logs with awslogs; returns the family.
pub(crate) async fn migration_family() -> String {
    let ecs = ecs_double::client(&moto().url).await;
    let family = unique("migrate");
    let logs = aws_sdk_ecs::types::LogConfiguration::builder()
        .log_driver(aws_sdk_ecs::types::LogDriver::Awslogs)
        .options("awslogs-group", "/t/migrate")
        .options("awslogs-stream-prefix", "migrate")
        .options("awslogs-region", REGION)
        .build()
        .expect("log configuration");
    ecs.register_task_definition()
        .family(&family)
        .container_definitions(
            ContainerDefinition::builder()
                .name("api")
                .image("public.ecr.aws/old/api:1")
                .memory(128)
                .essential(true)
                .log_configuration(logs)
                .build(),
        )
        .send()
        .await
        .expect("register migration");
    family
}

pub(crate) fn with_migration(f: &Fixture, family: &str) {
    let text = std::fs::read_to_string(&f.config).expect("config").replace(
        "container = \"api\", timeout",
        &format!(
            "container = \"api\", pre_deploy = {{ task_definition = \"{family}\", command = [\"./migrate\", \"up\"], timeout = \"20s\" }}, timeout"
        ),
    );
    std::fs::write(&f.config, text).expect("write config");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_migration_stops_the_release_before_the_service_changes() {
    let f = fixture("30s").await;
    let family = migration_family().await;
    with_migration(&f, &family);
    f.double.script_task(
        &family,
        ecs_double::TaskScript {
            exit_code: 1,
            after_polls: 2,
            reason: "Essential container in task exited".into(),
        },
    );
    let (code, stderr) = f.release("v1");
    assert_eq!(code, Some(6), "{stderr}");
    assert!(stderr.contains("exited with code 1"), "{stderr}");
    assert!(
        stderr.contains("log stream /t/migrate:migrate/api/"),
        "{stderr}"
    );
    assert_eq!(f.updates(), 0, "no UpdateService at all");
    let runs = f.double.requests_of("RunTask");
    assert_eq!(runs.len(), 1);
    let ran = runs[0].task_definition.clone().expect("task definition");
    assert!(
        ran.contains(&format!("{family}:2")),
        "a new revision with the image: {ran}"
    );
    assert_eq!(f.running().await, f.first);
    assert_eq!(f.outcomes().await, ["failed"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_passing_migration_runs_the_new_image_then_the_rollout() {
    let f = fixture("30s").await;
    let family = migration_family().await;
    with_migration(&f, &family);
    let (code, stderr) = f.release("v1");
    assert_eq!(code, Some(0), "{stderr}");
    let operations: Vec<String> = f
        .double
        .requests()
        .into_iter()
        .map(|r| r.operation)
        .filter(|o| o == "RunTask" || o == "UpdateService")
        .collect();
    assert_eq!(
        operations,
        ["RunTask", "UpdateService"],
        "the migration first"
    );
    let ran = f.double.requests_of("RunTask")[0]
        .task_definition
        .clone()
        .expect("task definition");
    let image = describe(&ran).await.container_definitions()[0]
        .image()
        .unwrap_or_default()
        .to_owned();
    assert!(image.contains(&format!("{}@sha256:", f.repo)), "{image}");
    assert_ne!(f.running().await, f.first);
}

/// A migration cannot be undone: when the rollout after it fails, the service goes back but
/// the run is `failed` (exit 1), not rolled back, and says the schema stays migrated.
#[tokio::test(flavor = "multi_thread")]
async fn a_failure_after_a_migration_is_not_called_a_rollback() {
    let f = fixture("30s").await;
    let family = migration_family().await;
    let url = answering(500);
    with_rollout_keys(
        &f,
        &format!(
            "pre_deploy = {{ task_definition = \"{family}\", command = [\"./migrate\", \"up\"], timeout = \"20s\" }}, health_check = {{ url = \"{url}\", expect_status = 200, timeout = \"2s\" }}"
        ),
    );
    let (code, stderr) = f.release("v1");
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("the schema stays migrated"), "{stderr}");
    assert_eq!(f.double.requests_of("RunTask").len(), 1);
    assert_eq!(f.running().await, f.first, "the service went back");
    assert_eq!(f.outcomes().await, ["failed"]);
}

/// With `rollback_command`, a rollout that fails after its migration is rolled back whole:
/// the service goes back first, then the down migration runs as a task with the image the
/// migration ran with (exit 3, `rolled-back`).
#[tokio::test(flavor = "multi_thread")]
async fn a_down_migration_runs_after_the_service_is_back() {
    let f = fixture("30s").await;
    let family = migration_family().await;
    let url = answering(500);
    with_rollout_keys(
        &f,
        &format!(
            "pre_deploy = {{ task_definition = \"{family}\", command = [\"./migrate\", \"up\"], rollback_command = [\"./migrate\", \"down\"], timeout = \"20s\" }}, health_check = {{ url = \"{url}\", expect_status = 200, timeout = \"2s\" }}"
        ),
    );
    let (code, stderr) = f.release("v1");
    assert_eq!(code, Some(3), "{stderr}");
    assert!(
        stderr.contains("the down migration ran as task"),
        "{stderr}"
    );
    let operations: Vec<String> = f
        .double
        .requests()
        .into_iter()
        .map(|r| r.operation)
        .filter(|o| o == "RunTask" || o == "UpdateService")
        .collect();
    assert_eq!(
        operations,
        ["RunTask", "UpdateService", "UpdateService", "RunTask"],
        "up, the rollout, the service back, then down"
    );
    let runs = f.double.requests_of("RunTask");
    let command = |i: usize| runs[i].body["overrides"]["containerOverrides"][0]["command"].clone();
    assert_eq!(command(0), serde_json::json!(["./migrate", "up"]));
    assert_eq!(command(1), serde_json::json!(["./migrate", "down"]));
    assert_eq!(
        runs[0].task_definition, runs[1].task_definition,
        "the same image"
    );
    assert_eq!(f.running().await, f.first, "the service went back");
    assert_eq!(f.outcomes().await, ["rolled-back"]);
}

pub(crate) fn with_rollout_keys(f: &Fixture, keys: &str) {
    let text = std::fs::read_to_string(&f.config).expect("config").replace(
        "container = \"api\", timeout",
        &format!("container = \"api\", {keys}, timeout"),
    );
    std::fs::write(&f.config, text).expect("write config");
}

#[tokio::test(flavor = "multi_thread")]
async fn alarms_go_into_the_deployment_configuration() {
    let f = fixture("30s").await;
    with_rollout_keys(&f, "alarms = [\"t-5xx-{env}\"]");
    // The alarm must exist (checked before the lock); CloudWatch is reached through the bridge.
    let bridge = deploy_tests::cloudwatch_bridge::CloudWatchBridge::start(&moto().url);
    deploy_tests::metric_alarm(&bridge.url, "t-5xx-dev").await;
    let out = deploy(&moto().url)
        .env("AWS_ENDPOINT_URL_CLOUDWATCH", &bridge.url)
        .arg("--config")
        .arg(&f.config)
        .args(["release", "dev", "api", "--version", "v1"])
        .output()
        .expect("run deploy");
    let (code, stderr) = (out.status.code(), String::from_utf8_lossy(&out.stderr));
    assert_eq!(code, Some(0), "{stderr}");
    let described = ecs_double::client(&f.double.url)
        .await
        .describe_services()
        .cluster(&f.cluster)
        .services("api")
        .send()
        .await
        .expect("describe through the double");
    let config = described.services()[0]
        .deployment_configuration()
        .expect("deployment configuration");
    let alarms = config.alarms().expect("alarms");
    assert_eq!(alarms.alarm_names(), ["t-5xx-dev"]);
    assert!(alarms.enable() && alarms.rollback());
    let breaker = config.deployment_circuit_breaker().expect("breaker");
    assert!(breaker.enable() && breaker.rollback());
}

#[tokio::test(flavor = "multi_thread")]
async fn fail_fast_gives_up_before_the_circuit_breaker() {
    let f = fixture("30s").await;
    with_rollout_keys(&f, "fail_fast = true");
    f.double.script_service(
        &f.cluster,
        "api",
        Script::FailAndRollBack { after_polls: 50 },
    );
    let (code, stderr) = f.release("v1");
    assert_eq!(code, Some(3), "{stderr}");
    assert!(stderr.contains("failed to start (fail_fast)"), "{stderr}");
    let updates = f.double.requests_of("UpdateService");
    assert_eq!(updates.len(), 2, "deploy put the service back itself");
    assert_eq!(
        updates[1].task_definition.as_deref(),
        Some(f.first.as_str())
    );
    assert_eq!(f.running().await, f.first);
    assert_eq!(f.outcomes().await, ["rolled-back"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_body_without_the_expected_text_fails_the_gate() {
    let f = fixture("30s").await;
    let url = answering(200);
    let text = std::fs::read_to_string(&f.config).expect("config").replace(
        "container = \"api\", timeout",
        &format!(
            "container = \"api\", health_check = {{ url = \"{url}\", expect_body = \"healthy\", timeout = \"1s\" }}, timeout"
        ),
    );
    std::fs::write(&f.config, text).expect("write config");
    let (code, stderr) = f.release("v1");
    assert_eq!(code, Some(3), "{stderr}");
    assert!(stderr.contains("without `healthy` in the body"), "{stderr}");
    assert_eq!(f.running().await, f.first);
}

#[tokio::test(flavor = "multi_thread")]
async fn old_revisions_beyond_keep_revisions_are_deregistered() {
    let f = fixture("30s").await;
    let ecs = ecs_double::client(&moto().url).await;
    let family = describe(&f.first)
        .await
        .family()
        .expect("family")
        .to_owned();
    let template = describe(&f.first).await;
    for _ in 0..3 {
        ecs.register_task_definition()
            .family(&family)
            .set_container_definitions(Some(template.container_definitions().to_vec()))
            .cpu("256")
            .memory("512")
            .send()
            .await
            .expect("register an unused revision");
    }
    with_rollout_keys(&f, "keep_revisions = 1");
    let (code, stderr) = f.release("v1");
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("deregistered 2 old revisions"), "{stderr}");
    let active = ecs
        .list_task_definitions()
        .family_prefix(&family)
        .status(aws_sdk_ecs::types::TaskDefinitionStatus::Active)
        .send()
        .await
        .expect("list");
    let mut revisions: Vec<String> = active
        .task_definition_arns()
        .iter()
        .filter_map(|arn| arn.rsplit(':').next().map(str::to_owned))
        .collect();
    revisions.sort();
    assert_eq!(
        revisions,
        ["1", "4", "5"],
        "the new one, the one before it, and the previous running one the undo needs"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn status_shows_what_the_service_runs_and_drift() {
    let f = fixture("30s").await;
    let (code, stderr) = f.release("v1");
    assert_eq!(code, Some(0), "{stderr}");
    let status = |extra: &[&str]| {
        deploy(&moto().url)
            .arg("--config")
            .arg(&f.config)
            .args(["--output", "json", "status", "dev"])
            .args(extra)
            .output()
            .expect("run deploy")
    };
    let running = |out: &std::process::Output| {
        let rows: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        rows[0]["running"].clone()
    };
    let out = status(&["--exit-code"]);
    assert_eq!(out.status.code(), Some(0));
    let revision = f.running().await;
    let short = revision.rsplit('/').next().expect("family:revision");
    assert_eq!(running(&out)["runs"], short);
    assert_eq!(running(&out)["drift"], serde_json::json!([]));

    // Someone points the service elsewhere behind deploy's back (through the double, which
    // plays ECS for this cluster).
    ecs_double::client(&f.double.url)
        .await
        .update_service()
        .cluster(&f.cluster)
        .service("api")
        .task_definition(&f.first)
        .send()
        .await
        .expect("update behind deploy's back");
    let out = status(&[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "without --exit-code drift is not an error"
    );
    let drift = &running(&out)["drift"][0];
    assert_eq!(drift["object"], format!("{}/api", f.cluster));
    let difference = drift["difference"].as_str().expect("difference");
    assert!(
        difference.contains("public.ecr.aws/old/api:1"),
        "{difference}"
    );
    assert_eq!(status(&["--exit-code"]).status.code(), Some(1));
}

//! Every input that reaches AWS is checked before anything changes (issue 25):
//!
//! - a DAG artifact whose location holds the environment's release ledger is refused by
//!   `validate` and by `release` (even with `--allow-mass-delete`), exit 2, and every ledger
//!   object, `lock.json` included, is still there byte for byte (read back with the S3 API);
//! - two DAG artifacts whose prefixes overlap are refused, nothing written;
//! - the objects an image rollout names (an ECS alarm, a lifecycle hook function, the
//!   `pre_deploy` task definition) are looked up before the lock: a missing one is exit 2
//!   naming the key and the value, with no `lock.json` written and no task definition
//!   registered (the ECS double logs every call).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Output, Stdio};

use aws_sdk_ecs::types::ContainerDefinition;
use deploy_tests::cloudwatch_bridge::CloudWatchBridge;
use deploy_tests::dags::{Project, read_all};
use deploy_tests::ecs_double::{self, EcsDouble};
use deploy_tests::{ACCOUNT, REGION, deploy, list_keys, moto, unique};

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Replaces the DAG artifact's `bucket` and `prefix` lines of `project`'s config by `with`.
fn retarget(project: &Project, with: &str) {
    let text = std::fs::read_to_string(&project.config).expect("config");
    let text = text.replace(
        &format!("bucket = \"{}\"\nprefix = \"dags/\"\n", project.dags),
        with,
    );
    std::fs::write(&project.config, text).expect("write config");
}

fn validate(config: &std::path::Path) -> Output {
    deploy(&moto().url)
        .arg("--config")
        .arg(config)
        .arg("validate")
        .stdin(Stdio::null())
        .output()
        .expect("run deploy")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dag_location_over_the_ledger_is_refused_and_the_ledger_left_intact() {
    let project = Project::new("").await;
    project.write("a.py", "x = 1\n");
    let first = project.release("v1", &[]);
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    let before: BTreeMap<String, Vec<u8>> = read_all(&project.state, "").await;
    assert!(
        before.keys().any(|k| k.ends_with("/lock.json")),
        "the first release leaves a lock.json: {:?}",
        before.keys()
    );
    assert!(before.len() > 3, "{:?}", before.keys());

    // The configuration: the project's whole ledger folder, every file may go.
    retarget(
        &project,
        &format!(
            "bucket = \"{}\"\nprefix = \"deploy/t/\"\nmax_delete_share = 1.0\n",
            project.state
        ),
    );
    let checked = validate(&project.config);
    let message = stderr(&checked);
    assert_eq!(checked.status.code(), Some(2), "{message}");
    assert!(
        message.contains(&format!(
            "overlaps the release ledger and lock of environment `dev` at s3://{}/deploy/t/dev/",
            project.state
        )),
        "{message}"
    );
    assert!(message.contains("deploy.toml:14:10:"), "{message}");

    let released = project.release_with("v2", &["--allow-mass-delete"], &[]);
    let message = stderr(&released);
    assert_eq!(released.status.code(), Some(2), "{message}");
    assert!(message.contains("release ledger and lock"), "{message}");
    let after = read_all(&project.state, "").await;
    assert_eq!(
        after.keys().collect::<Vec<_>>(),
        before.keys().collect::<Vec<_>>()
    );
    assert!(after == before, "a ledger object changed");
}

#[tokio::test(flavor = "multi_thread")]
async fn overlapping_dag_artifacts_are_refused_and_nothing_is_written() {
    let project = Project::new("").await;
    project.write("a.py", "x = 1\n");
    std::fs::create_dir_all(project.dir.join("team")).expect("mkdir team");
    std::fs::write(project.dir.join("team/b.py"), "y = 2\n").expect("write team dag");
    let mut text = std::fs::read_to_string(&project.config).expect("config");
    text.push_str(&format!(
        "[artifacts.team]\nkind = \"dags\"\nsource = \"./team\"\nbucket = \"{}\"\nprefix = \"dags/team/\"\n",
        project.dags
    ));
    std::fs::write(&project.config, text).expect("write config");

    let checked = validate(&project.config);
    let message = stderr(&checked);
    assert_eq!(checked.status.code(), Some(2), "{message}");
    assert!(
        message.contains(&format!(
            "DAG artifact `team` of environment `dev` writes to s3://{0}/dags/team/, which overlaps DAG artifact `dags` of environment `dev` at s3://{0}/dags/",
            project.dags
        )),
        "{message}"
    );
    let out = deploy(&moto().url)
        .arg("--config")
        .arg(&project.config)
        .args(["release", "dev", "--version", "v1"])
        .stdin(Stdio::null())
        .output()
        .expect("run deploy");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(list_keys(&moto().url, &project.dags, "").await.is_empty());
    assert!(list_keys(&moto().url, &project.state, "").await.is_empty());
}

/// An ECS service `api` on a one-container task definition, and a project releasing the
/// example image to it with `rollout` (the inside of the rollout's inline table).
struct Service {
    double: EcsDouble,
    bridge: CloudWatchBridge,
    dir: PathBuf,
    bucket: String,
    repo: String,
    cluster: String,
    family: String,
}

impl Service {
    async fn new() -> Service {
        let double = EcsDouble::start(&moto().url);
        let ecs = ecs_double::client(&moto().url).await;
        let cluster = ecs_double::cluster(&ecs, "inputs").await;
        let family = unique("inputs-api");
        let api = ContainerDefinition::builder()
            .name("api")
            .image("public.ecr.aws/old/api:1")
            .memory(256)
            .essential(true)
            .build();
        let registered = ecs
            .register_task_definition()
            .family(&family)
            .container_definitions(api)
            .cpu("256")
            .memory("512")
            .send()
            .await
            .expect("register task definition");
        ecs_double::service_on(&ecs, &cluster, "api", &registered, 1).await;
        let project = deploy_tests::image_project("inputs").await;
        Service {
            double,
            bridge: CloudWatchBridge::start(&moto().url),
            dir: project.dir,
            bucket: project.bucket,
            repo: project.repo,
            cluster,
            family,
        }
    }

    /// `deploy release dev api` with `rollout` keys after cluster, service and container.
    fn release(&self, strategy: &str, rollout: &str) -> Output {
        let config = self.dir.join("deploy.toml");
        let text = deploy_tests::dev_head(&self.bucket, &self.double.endpoints())
            + &format!(
                "[artifacts.api]\nkind = \"image\"\nrepository = \"{}\"\nsource = \"oci:./layout:latest\"\n\
                 [artifacts.api.rollout]\nstrategy = \"{strategy}\"\ncluster = \"{}\"\nservice = \"api\"\n\
                 container = \"api\"\ntimeout = \"30s\"\n{rollout}\n",
                self.repo, self.cluster
            );
        std::fs::write(&config, text).expect("write config");
        deploy(&moto().url)
            .env("AWS_ENDPOINT_URL_CLOUDWATCH", &self.bridge.url)
            .arg("--config")
            .arg(&config)
            .args(["release", "dev", "api", "--version", &unique("v")])
            .stdin(Stdio::null())
            .output()
            .expect("run deploy")
    }

    /// Exit 2 with `expected` in the message, no lock taken and no revision registered.
    async fn refused(&self, out: &Output, expected: &str) {
        let message = stderr(out);
        assert_eq!(out.status.code(), Some(2), "{message}");
        assert!(message.contains(expected), "{message}");
        let keys = list_keys(&moto().url, &self.bucket, "").await;
        assert!(!keys.iter().any(|k| k.ends_with("lock.json")), "{keys:?}");
        assert!(
            self.double.requests_of("RegisterTaskDefinition").is_empty(),
            "{:?}",
            self.double.requests()
        );
        assert!(self.double.requests_of("UpdateService").is_empty());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_ecs_alarm_is_refused_before_the_lock() {
    let s = Service::new().await;
    let present = unique("inputs-5xx");
    deploy_tests::metric_alarm(&s.bridge.url, &present).await;
    let missing = unique("inputs-gone");
    let out = s.release(
        "ecs-rolling",
        &format!("alarms = [\"{present}\", \"{missing}\"]"),
    );
    let expected = format!(
        "`rollout.alarms`: CloudWatch alarm {missing} not found in the environment's account and region"
    );
    s.refused(&out, &expected).await;
    assert!(!stderr(&out).contains(&present), "{}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_hook_function_is_refused_before_the_lock() {
    let s = Service::new().await;
    let function = format!(
        "arn:aws:lambda:{REGION}:{ACCOUNT}:function:{}",
        unique("no-such-hook")
    );
    let hooks = format!(
        "lifecycle_hooks = [{{ function = \"{function}\", stages = [\"POST_TEST_TRAFFIC_SHIFT\"], role = \"arn:aws:iam::{ACCOUNT}:role/hooks\" }}]"
    );
    let out = s.release("ecs-blue-green", &hooks);
    let expected =
        format!("`rollout.lifecycle_hooks.function`: Lambda function {function} not found");
    s.refused(&out, &expected).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_or_foreign_migration_task_definition_is_refused_before_the_lock() {
    let s = Service::new().await;
    let family = unique("no-such-migrate");
    let out = s.release(
        "ecs-rolling",
        &format!("pre_deploy = {{ task_definition = \"{family}\", command = [\"./migrate\"] }}"),
    );
    let expected =
        format!("`rollout.pre_deploy.task_definition`: task definition {family} not found");
    s.refused(&out, &expected).await;

    let foreign = format!(
        "arn:aws:ecs:{REGION}:222222222222:task-definition/{}:1",
        s.family
    );
    let out = s.release(
        "ecs-rolling",
        &format!("pre_deploy = {{ task_definition = \"{foreign}\", command = [\"./migrate\"] }}"),
    );
    let expected = format!(
        "task definition `{foreign}` is in account 222222222222, not in the environment's account {ACCOUNT}"
    );
    s.refused(&out, &expected).await;

    // The family that exists passes the check: the release goes on to the migration.
    let out = s.release(
        "ecs-rolling",
        &format!(
            "pre_deploy = {{ task_definition = \"{}\", command = [\"./migrate\"] }}",
            s.family
        ),
    );
    assert_ne!(out.status.code(), Some(2), "{}", stderr(&out));
}

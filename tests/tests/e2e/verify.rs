//! Before an `ecs-rolling` release changes anything, every object the service's task definition
//! references must exist: secrets (Secrets Manager and SSM), the task and execution roles, and
//! the awslogs log group. Missing ones are all named, exit 1, and nothing is pushed, updated or
//! recorded; once they exist the release goes through. Objects are created and read back in
//! moto with plain SDK clients; secret values never appear in deploy's output.

use std::path::PathBuf;

use aws_sdk_ecs::types::{ContainerDefinition, LogConfiguration, LogDriver, Secret};
use deploy_tests::ecs_double::{self, EcsDouble};
use deploy_tests::{
    ACCOUNT, REGION, deploy, get_json, list_keys, moto, oci_registry, skopeo_inspect, unique,
};

/// Values that must never be printed.
const SECRET_VALUE: &str = "s3cr3t-db-password-7f1c";
const PARAMETER_VALUE: &str = "s3cr3t-token-42a9";

/// The names one test's task definition references.
struct Names {
    secret: String,
    parameter: String,
    task_role: String,
    execution_role: String,
    log_group: String,
}

impl Names {
    fn new() -> Names {
        let id = unique("v");
        Names {
            secret: format!("{id}/db"),
            parameter: format!("/{id}/token"),
            task_role: format!("{id}-task"),
            execution_role: format!("{id}-exec"),
            log_group: format!("/ecs/{id}"),
        }
    }

    fn secret_arn(&self) -> String {
        format!(
            "arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:{}",
            self.secret
        )
    }
}

struct Fixture {
    double: EcsDouble,
    config: PathBuf,
    bucket: String,
    repo: String,
}

async fn sdk_config() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(REGION))
        .endpoint_url(&moto().url)
        .credentials_provider(aws_credential_types::Credentials::for_tests())
        .load()
        .await
}

/// Service `api` on a task definition referencing every object of `names`, none created yet.
async fn fixture(names: &Names) -> Fixture {
    let double = EcsDouble::start(&moto().url);
    let ecs = ecs_double::client(&moto().url).await;
    let cluster = ecs_double::cluster(&ecs, "verify").await;
    let secret = |name: &str, from: &str| {
        Secret::builder()
            .name(name)
            .value_from(from)
            .build()
            .expect("secret")
    };
    let logs = LogConfiguration::builder()
        .log_driver(LogDriver::Awslogs)
        .options("awslogs-group", &names.log_group)
        .options("awslogs-region", REGION)
        .options("awslogs-stream-prefix", "api")
        .build()
        .expect("log configuration");
    let api = ContainerDefinition::builder()
        .name("api")
        .image("public.ecr.aws/old/api:1")
        .memory(256)
        .essential(true)
        .secrets(secret(
            "DATABASE_PASSWORD",
            &format!("{}:password::", names.secret_arn()),
        ))
        .secrets(secret("TOKEN", &names.parameter))
        .log_configuration(logs)
        .build();
    let registered = ecs
        .register_task_definition()
        .family(unique("api"))
        .container_definitions(api)
        .task_role_arn(format!(
            "arn:aws:iam::{ACCOUNT}:role/app/{}",
            names.task_role
        ))
        .execution_role_arn(format!(
            "arn:aws:iam::{ACCOUNT}:role/{}",
            names.execution_role
        ))
        .cpu("256")
        .memory("512")
        .send()
        .await
        .expect("register task definition");
    ecs_double::service_on(&ecs, &cluster, "api", &registered, 1).await;

    let project = deploy_tests::image_project("verify").await;
    let config = project.dir.join("deploy.toml");
    let head = deploy_tests::dev_head(&project.bucket, &double.endpoints());
    let text = head
        + &format!(
            r#"[artifacts.api]
kind = "image"
repository = "{}"
source = "oci:./layout:latest"
rollout = {{ strategy = "ecs-rolling", cluster = "{cluster}", service = "api", container = "api", timeout = "30s" }}
"#,
            project.repo
        );
    std::fs::write(&config, text).expect("write config");
    Fixture {
        double,
        config,
        bucket: project.bucket,
        repo: project.repo,
    }
}

impl Fixture {
    /// `deploy release dev api --version v1`: exit code and stdout + stderr.
    fn release(&self) -> (Option<i32>, String) {
        self.release_with(&[])
    }

    /// [`Fixture::release`] with `extra` flags.
    fn release_with(&self, extra: &[&str]) -> (Option<i32>, String) {
        let out = deploy(&moto().url)
            .arg("--config")
            .arg(&self.config)
            .args(["release", "dev", "api", "--version", "v1"])
            .args(extra)
            .output()
            .expect("run deploy");
        let text = format!(
            "{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            !text.contains(SECRET_VALUE) && !text.contains(PARAMETER_VALUE),
            "a secret value was printed: {text}"
        );
        (out.status.code(), text)
    }

    async fn records(&self) -> Vec<String> {
        list_keys(
            &moto().url,
            &self.bucket,
            "deploy/t/dev/artifacts/api/releases/",
        )
        .await
    }

    fn pushed(&self) -> bool {
        skopeo_inspect(&format!("{}/{}:v1", oci_registry().host, self.repo), false).is_ok()
    }
}

async fn create_secret(names: &Names) {
    let client = aws_sdk_secretsmanager::Client::new(&sdk_config().await);
    client
        .create_secret()
        .name(&names.secret)
        .secret_string(format!("{{\"password\":\"{SECRET_VALUE}\"}}"))
        .send()
        .await
        .expect("create secret");
}

async fn create_role(name: &str) {
    let client = aws_sdk_iam::Client::new(&sdk_config().await);
    let trust = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ecs-tasks.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
    client
        .create_role()
        .role_name(name)
        .path("/app/")
        .assume_role_policy_document(trust)
        .send()
        .await
        .expect("create role");
}

async fn create_parameter(names: &Names) {
    let client = aws_sdk_ssm::Client::new(&sdk_config().await);
    client
        .put_parameter()
        .name(&names.parameter)
        .value(PARAMETER_VALUE)
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .send()
        .await
        .expect("put parameter");
}

async fn create_log_group(names: &Names) {
    let client = aws_sdk_cloudwatchlogs::Client::new(&sdk_config().await);
    client
        .create_log_group()
        .log_group_name(&names.log_group)
        .send()
        .await
        .expect("create log group");
}

/// A log group whose name only starts like the referenced one, so a prefix match alone would
/// wrongly pass.
async fn create_longer_log_group(names: &Names) {
    let client = aws_sdk_cloudwatchlogs::Client::new(&sdk_config().await);
    client
        .create_log_group()
        .log_group_name(format!("{}-old", names.log_group))
        .send()
        .await
        .expect("create log group");
}

/// What the error lists as missing.
fn missing_list(text: &str) -> &str {
    let start = text
        .find("references objects that do not exist: ")
        .map(|at| at + "references objects that do not exist: ".len())
        .unwrap_or_else(|| panic!("no list of missing objects: {text}"));
    let rest = &text[start..];
    &rest[..rest.find("; create them").unwrap_or(rest.len())]
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_references_are_all_named_and_nothing_changes_until_they_exist() {
    let names = Names::new();
    let f = fixture(&names).await;
    create_secret(&names).await;
    create_role(&names.execution_role).await;
    create_longer_log_group(&names).await;

    let (code, text) = f.release();
    assert_eq!(code, Some(1), "{text}");
    assert_eq!(
        missing_list(&text),
        format!(
            "SSM parameter {} (container api), role {} (taskRoleArn), log group {} (container api)",
            names.parameter, names.task_role, names.log_group
        ),
        "{text}"
    );
    assert!(text.contains("--skip-verify"), "{text}");
    assert!(
        f.double.requests_of("UpdateService").is_empty(),
        "the service was not touched"
    );
    assert!(f.double.requests_of("RegisterTaskDefinition").is_empty());
    assert!(!f.pushed(), "nothing was pushed");
    assert!(f.records().await.is_empty(), "no release record");

    create_parameter(&names).await;
    create_role(&names.task_role).await;
    create_log_group(&names).await;
    let (code, text) = f.release();
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(f.double.requests_of("UpdateService").len(), 1);
    assert!(f.pushed(), "the image was pushed");
    let records = f.records().await;
    assert_eq!(records.len(), 1, "{records:?}");
    let record = get_json(&moto().url, &f.bucket, &records[0]).await;
    assert_eq!(record["outcome"]["result"], "succeeded");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_secret_is_named_by_its_arn() {
    let names = Names::new();
    let f = fixture(&names).await;
    create_parameter(&names).await;
    create_role(&names.task_role).await;
    create_role(&names.execution_role).await;
    create_log_group(&names).await;

    let (code, text) = f.release();
    assert_eq!(code, Some(1), "{text}");
    assert_eq!(
        missing_list(&text),
        format!("secret {} (container api)", names.secret_arn()),
        "{text}"
    );
    assert!(f.double.requests_of("UpdateService").is_empty());
    assert!(!f.pushed(), "nothing was pushed");
    assert!(f.records().await.is_empty(), "no release record");
}

#[tokio::test(flavor = "multi_thread")]
async fn skip_verify_rolls_out_without_the_check() {
    let names = Names::new();
    let f = fixture(&names).await;
    let (code, text) = f.release_with(&["--skip-verify"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(!text.contains("do not exist"), "{text}");
    assert_eq!(f.double.requests_of("UpdateService").len(), 1);
}

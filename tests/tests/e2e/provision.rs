//! `scripts/provision-project.py`: a project's own `deploy.toml` is enough to create, in the
//! emulators, what its first release needs. Read back through the AWS APIs; a rerun changes
//! nothing; the DAG folder then releases to the bucket it made; a non-loopback endpoint is
//! refused before anything is created.

use std::path::Path;
use std::process::{Command, Output};

use deploy_tests::{
    ACCOUNT, REGION, copy_dir, deploy, deploy_bin, isolate_aws_env, moto, moto_config, scratch_dir,
    tool, unique, workspace_root,
};

fn provision(config: &Path, endpoint: &str) -> Output {
    let mut cmd = Command::new(tool("python3"));
    isolate_aws_env(&mut cmd);
    cmd.arg(workspace_root().join("scripts/provision-project.py"))
        .arg("--config")
        .arg(config)
        .args(["--environments", "dev"])
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("DEPLOY_BIN", deploy_bin())
        .output()
        .expect("run provision-project.py")
}

/// A project `name` of its own: an image on `ecs-rolling`, a DAG folder, a Lambda function;
/// its `deploy.toml`.
fn own_project(name: &str) -> std::path::PathBuf {
    let dir = scratch_dir("provision");
    copy_dir(
        &workspace_root().join("examples/planwise/dags"),
        &dir.join("dags"),
    );
    std::fs::create_dir_all(dir.join("greet/app")).expect("mkdir");
    std::fs::write(
        dir.join("greet/app/main.py"),
        "def handler(event, context):\n    return 1\n",
    )
    .expect("write handler");
    let config = dir.join("deploy.toml");
    let text = format!(
        r#"project = "{name}"
[environments.dev]
region = "{REGION}"
account = "{ACCOUNT}"
state_bucket = "{{project}}-state-{{env}}"
[environments.prod]
region = "{REGION}"
account = "{ACCOUNT}"
state_bucket = "{{project}}-state-{{env}}"
[artifacts.web]
kind = "image"
repository = "{{project}}/web"
rollout = {{ strategy = "ecs-rolling", cluster = "{{project}}-{{env}}", service = "web", container = "app" }}
[artifacts.dags]
kind = "dags"
source = "./dags"
bucket = "{{project}}-dags-{{env}}"
[artifacts.greet]
kind = "lambda"
source = "./greet"
function = "{{project}}-greet-{{env}}"
handler = "app.main.handler"
"#
    );
    std::fs::write(&config, text).expect("write config");
    config
}

/// What provisioning `name`'s dev must have made, read back through the AWS APIs.
async fn assert_provisioned(url: &str, name: &str) {
    let aws = moto_config(url).await;
    let s3 = deploy_tests::s3(url).await;
    for bucket in [format!("{name}-state-dev"), format!("{name}-dags-dev")] {
        let versioning = s3
            .get_bucket_versioning()
            .bucket(&bucket)
            .send()
            .await
            .expect("bucket");
        assert_eq!(
            versioning.status().map(|s| s.as_str()),
            Some("Enabled"),
            "{bucket}"
        );
    }
    let prod = s3
        .head_bucket()
        .bucket(format!("{name}-state-prod"))
        .send()
        .await;
    assert!(prod.is_err(), "only dev was asked for");
    let repos = aws_sdk_ecr::Client::new(&aws)
        .describe_repositories()
        .repository_names(format!("{name}/web"))
        .send()
        .await
        .expect("the repository");
    assert_eq!(repos.repositories().len(), 1);
    let services = aws_sdk_ecs::Client::new(&aws)
        .describe_services()
        .cluster(format!("{name}-dev"))
        .services("web")
        .send()
        .await
        .expect("describe services");
    let service = services.services().first().expect("the service");
    let family = service.task_definition().unwrap_or_default();
    assert!(family.contains(":task-definition/web:"), "{family}");
    let function = aws_sdk_lambda::Client::new(&aws)
        .get_function_configuration()
        .function_name(format!("{name}-greet-dev"))
        .send()
        .await
        .expect("the function");
    assert_eq!(function.handler(), Some("app.main.handler"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_project_s_own_config_is_provisioned_and_released() {
    let name = unique("own");
    let config = own_project(&name);
    let url = &moto().url;
    let out = provision(&config, url);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("created         ECS service {name}-dev/web")),
        "{stdout}"
    );

    assert_provisioned(url, &name).await;

    let again = provision(&config, url);
    let stdout = String::from_utf8_lossy(&again.stdout);
    assert!(again.status.success(), "{stdout}");
    assert!(
        !stdout.contains("created"),
        "a rerun creates nothing:\n{stdout}"
    );

    let released = deploy(url)
        .arg("--config")
        .arg(&config)
        .args(["release", "dev", "dags", "--version", "v1"])
        .output()
        .expect("release");
    assert_eq!(
        released.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&released.stderr)
    );
}

#[test]
fn an_endpoint_that_is_not_local_is_refused() {
    let dir = scratch_dir("provision-remote");
    let config = dir.join("deploy.toml");
    std::fs::write(&config, "project = \"x\"\n").expect("write config");
    let out = provision(&config, "https://s3.eu-west-1.amazonaws.com");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("must point at the local emulators"),
        "{stderr}"
    );
}

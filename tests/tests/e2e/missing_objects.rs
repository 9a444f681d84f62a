//! What the configuration names and AWS does not have: a Lambda function, an ECS cluster, a
//! CodeDeploy deployment group, an ECR repository. Each is named with the key to fix and the
//! place of its value in the file (`deploy.toml:L:C:`), exit 2, without the raw AWS error, and
//! nothing is recorded.

use std::path::Path;

use deploy_tests::ecs_double::EcsDouble;
use deploy_tests::{list_keys, moto, unique};

/// The error line, which must start at the value of the line of `config` holding `key = `.
fn error_at<'a>(stderr: &'a str, config: &Path, key: &str) -> &'a str {
    let text = std::fs::read_to_string(config).expect("read config");
    let (line, column) = text
        .lines()
        .enumerate()
        .find_map(|(i, l)| {
            let at = l.find(&format!("{key} = "))?;
            Some((i + 1, at + key.len() + 4))
        })
        .unwrap_or_else(|| panic!("no `{key} = ` in {text}"));
    let error = stderr
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("no error line:\n{stderr}"));
    let place = format!("error: {}:{line}:{column}: ", config.display());
    assert!(error.starts_with(&place), "expected {place}\n{stderr}");
    error
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cluster_that_does_not_exist_is_named_with_the_key_to_fix() {
    let project = deploy_tests::image_project("nocluster").await;
    let gone = unique("gone");
    let double = EcsDouble::start(&moto().url);
    let config = project.dir.join("deploy.toml");
    let text = deploy_tests::dev_head(&project.bucket, &double.endpoints())
        + &format!(
            "[artifacts.api]\nkind = \"image\"\nrepository = \"{}\"\nsource = \"oci:./layout:latest\"\n\
             rollout = {{ strategy = \"ecs-rolling\", cluster = \"{gone}\", service = \"api\", container = \"api\" }}\n",
            project.repo
        );
    std::fs::write(&config, text).expect("write config");
    let (code, stderr) = deploy_tests::release_dev_v1(&config);
    assert_eq!(code, Some(2), "{stderr}");
    let error = error_at(&stderr, &config, "cluster");
    assert!(
        error.contains(&format!(
            "ECS cluster `{gone}` (rollout.cluster) does not exist in this environment's account"
        )),
        "{stderr}"
    );
    assert!(!stderr.contains("ClusterNotFoundException"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_function_that_does_not_exist_is_named_with_the_fix() {
    let url = moto().url.clone();
    let function = unique("nofn");
    let (config, state) = deploy_tests::lambda_project("nofn", &function, "").await;
    let (code, stderr) = deploy_tests::release_dev_v1(&config);
    assert_eq!(code, Some(2), "{stderr}");
    let error = error_at(&stderr, &config, "function");
    assert!(
        error.contains(&format!("the Lambda function `{function}` does not exist")),
        "{error}"
    );
    assert!(error.contains("fix the artifact's `function`"), "{error}");
    assert!(!stderr.contains("ResourceNotFoundException"), "{stderr}");
    let records = list_keys(&url, &state, "deploy/t/dev/artifacts/").await;
    assert!(records.is_empty(), "nothing recorded: {records:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deployment_group_that_does_not_exist_is_named_with_the_key_to_fix() {
    let f = super::codedeploy::fixture("").await;
    let text = std::fs::read_to_string(&f.config).expect("read config");
    std::fs::write(
        &f.config,
        text.replace("deployment_group = \"api\"", "deployment_group = \"nope\""),
    )
    .expect("write config");
    let (code, stderr) = deploy_tests::release_dev_v1(&f.config);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "CodeDeploy deployment group `{}/nope` (rollout.deployment_group) does not exist",
            f.application
        )),
        "{stderr}"
    );
    assert!(!stderr.contains("DoesNotExistException"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_repository_that_does_not_exist_is_named_at_its_key() {
    let project = deploy_tests::image_project("norepo").await;
    let missing = format!("t/{}", unique("norepo"));
    let config = project.dir.join("deploy.toml");
    let url = &moto().url;
    let endpoints = format!(
        "sts = \"{url}\", s3 = \"{url}\", ecr = \"{url}\", registry = \"http://{}\"",
        deploy_tests::oci_registry().host
    );
    let text = deploy_tests::dev_head(&project.bucket, &endpoints)
        + &format!(
            "[artifacts.api]\nkind = \"image\"\nrepository = \"{missing}\"\n\
             source = \"oci:./layout:latest\"\nrollout = {{ strategy = \"none\" }}\n"
        );
    std::fs::write(&config, text).expect("write config");
    let (code, stderr) = deploy_tests::release_dev_v1(&config);
    assert_eq!(code, Some(2), "{stderr}");
    let error = error_at(&stderr, &config, "repository");
    assert!(
        error.contains(&format!("ECR repository `{missing}` does not exist")),
        "{error}"
    );
    assert!(!stderr.contains("RepositoryNotFoundException"), "{stderr}");
}

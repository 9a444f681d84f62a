//! Task definitions written by others (`tests/corpus/task-definitions`) through the whole
//! `ecs-rolling` path: each is registered in moto as its author wrote it, a service runs it,
//! `deploy release` rolls the published image out (through the ECS double, with `env` and
//! `secrets` in `deploy.toml`), and the revision the service ends on, read back through moto's
//! ECS API, is the previous one with only that container's image, environment and secrets
//! changed: several containers, secrets, log configuration, volumes and mount points,
//! `dependsOn`, health checks, runtime platform, ephemeral storage and tags all kept. A rerun
//! registers nothing.
//!
//! `--skip-verify`: the corpus references roles, secrets and log groups of its authors'
//! accounts, which do not exist here (verification has its own tests).

use std::collections::BTreeMap;

use aws_sdk_ecs::types::{ContainerDefinition, Tag, TaskDefinition};
use deploy_tests::corpus::{
    changes, corpus, describe, env_pairs, merged, moto_call, moto_ready, pick, secret_pairs,
    with_old_changeables,
};
use deploy_tests::ecs_double::{self, EcsDouble, Script};
use deploy_tests::{deploy, moto, oci_registry, skopeo_inspect, unique};
use serde_json::Value;

fn toml_table(name: &str, entries: &BTreeMap<String, String>) -> String {
    let mut text = format!("[artifacts.app.{name}]\n");
    for (key, value) in entries {
        text += &format!(
            "{} = {}\n",
            serde_json::json!(key),
            serde_json::json!(value)
        );
    }
    text
}

#[tokio::test(flavor = "multi_thread")]
async fn each_corpus_definition_rolls_out_changing_only_the_container() {
    let double = EcsDouble::start(&moto().url);
    let corpus = corpus();
    assert!(corpus.len() >= 3, "{} corpus files", corpus.len());
    for (file, raw) in corpus {
        roll_out(&double, &file, &raw).await;
    }
}

/// The service running one corpus definition, and the project rolling it out.
struct Case {
    file: String,
    family: String,
    cluster: String,
    old: TaskDefinition,
    old_tags: Vec<Tag>,
    container: ContainerDefinition,
    env: BTreeMap<String, String>,
    secrets: BTreeMap<String, String>,
    repo: String,
    config: std::path::PathBuf,
}

impl Case {
    /// Registers `raw` as a new family, runs it as service `app`, and writes a project that
    /// rolls `app` out changing the picked container's image, environment and secrets.
    async fn new(double: &EcsDouble, file: &str, raw: &Value) -> Case {
        let ecs = ecs_double::client(&moto().url).await;
        let family = unique("corpus");
        let (status, answer) = moto_call(
            &moto().url,
            "RegisterTaskDefinition",
            &moto_ready(raw, &family),
        );
        assert_eq!(status, 200, "{file}: {answer}");
        let (old, old_tags) = describe(&ecs, &family).await;
        let old_arn = old.task_definition_arn().expect("arn").to_owned();
        let cluster = ecs_double::cluster(&ecs, "corpus").await;
        ecs.create_service()
            .cluster(&cluster)
            .service_name("app")
            .task_definition(&old_arn)
            .desired_count(1)
            .send()
            .await
            .expect("create service");
        double.script_service(&cluster, "app", Script::Complete { after_polls: 2 });
        let container = pick(&old);
        let (env, secrets) = changes(&container);
        let project = deploy_tests::image_project("corpus").await;
        let config = project.dir.join("deploy.toml");
        let name = container.name().expect("named").to_owned();
        let text = deploy_tests::dev_head(&project.bucket, &double.endpoints())
            + &format!(
                "[artifacts.app]\nkind = \"image\"\nrepository = \"{}\"\nsource = \"oci:./layout:latest\"\n\
                 rollout = {{ strategy = \"ecs-rolling\", cluster = \"{cluster}\", service = \"app\", container = {} }}\n",
                project.repo,
                serde_json::json!(name)
            )
            + &toml_table("env", &env)
            + &toml_table("secrets", &secrets);
        std::fs::write(&config, text).expect("write config");
        Case {
            file: file.to_owned(),
            family,
            cluster,
            old,
            old_tags,
            container,
            env,
            secrets,
            repo: project.repo,
            config,
        }
    }

    /// `deploy release dev --version v1`: its exit code, stderr and stdout.
    fn release(&self) -> (Option<i32>, String) {
        let out = deploy(&moto().url)
            .arg("--config")
            .arg(&self.config)
            .args(["release", "dev", "--version", "v1", "--skip-verify"])
            .output()
            .expect("run deploy");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned()
                + &String::from_utf8_lossy(&out.stdout),
        )
    }

    /// What the service runs now, read back through ECS: the new revision and its tags.
    async fn running(&self, ecs: &aws_sdk_ecs::Client) -> (TaskDefinition, Vec<Tag>) {
        let file = &self.file;
        let running = ecs
            .describe_services()
            .cluster(&self.cluster)
            .services("app")
            .send()
            .await
            .expect("describe service");
        let now = running.services()[0]
            .task_definition()
            .expect("task definition")
            .to_owned();
        let old_arn = self.old.task_definition_arn().expect("arn");
        assert_ne!(now, old_arn, "{file}: the service moved");
        describe(ecs, &now).await
    }
}

/// Rolls one corpus definition out, checks that only the container changed, then that a
/// rerun registers nothing.
async fn roll_out(double: &EcsDouble, file: &str, raw: &Value) {
    let case = Case::new(double, file, raw).await;
    let (code, stderr) = case.release();
    assert_eq!(code, Some(0), "{file}: {stderr}");
    let ecs = ecs_double::client(&moto().url).await;
    let (new, new_tags) = case.running(&ecs).await;
    let old = &case.old;
    assert_eq!(new.revision(), old.revision() + 1, "{file}");
    assert_eq!(new_tags, case.old_tags, "{file}: tags kept");
    let digest = skopeo_inspect(&format!("{}/{}:v1", oci_registry().host, case.repo), false)
        .expect("skopeo")["Digest"]
        .as_str()
        .expect("digest")
        .to_owned();
    let name = case.container.name().expect("named");
    let changed = new
        .container_definitions()
        .iter()
        .find(|c| c.name() == Some(name))
        .expect("container kept");
    let image = format!("{}/{}@{digest}", oci_registry().host, case.repo);
    assert_eq!(changed.image(), Some(image.as_str()), "{file}");
    assert_eq!(
        env_pairs(changed),
        merged(env_pairs(&case.container), &case.env),
        "{file}: environment merged key by key"
    );
    assert_eq!(
        secret_pairs(changed),
        merged(secret_pairs(&case.container), &case.secrets),
        "{file}: secrets merged key by key"
    );
    assert_eq!(
        with_old_changeables(&new, old, name),
        *old,
        "{file}: all else kept"
    );

    let (code, stderr) = case.release();
    assert_eq!(code, Some(0), "{file}: {stderr}");
    assert!(
        stderr.contains("unchanged: app in dev already runs this"),
        "{file}: {stderr}"
    );
    let revisions = ecs
        .list_task_definitions()
        .family_prefix(&case.family)
        .send()
        .await
        .expect("list");
    assert_eq!(
        revisions.task_definition_arns().len(),
        2,
        "{file}: a rerun registers nothing"
    );
}

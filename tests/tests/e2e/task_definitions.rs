//! `task-definitions`: a release registers a revision with the published digest in every
//! configured family (the next job run uses it), a rerun registers nothing, and a release that
//! fails elsewhere deregisters what it registered. Read back through moto's ECS API directly.

use std::path::PathBuf;

use aws_sdk_ecs::types::{ContainerDefinition, KeyValuePair};
use deploy_tests::ecs_double::{self, EcsDouble, Script};
use deploy_tests::{deploy, get_json, list_keys, moto, oci_registry, skopeo_inspect, unique};

struct Fixture {
    double: EcsDouble,
    config: PathBuf,
    bucket: String,
    repo: String,
    families: [String; 2],
    cluster: String,
}

/// Two job families with container `etl`, a cluster with service `api`, and a project whose
/// `etl` image goes to the families.
async fn fixture() -> Fixture {
    let double = EcsDouble::start(&moto().url);
    let ecs = ecs_double::client(&moto().url).await;
    let mut families = Vec::new();
    for name in ["etl-daily", "etl-backfill"] {
        let family = unique(name);
        ecs.register_task_definition()
            .family(&family)
            .container_definitions(
                ContainerDefinition::builder()
                    .name("etl")
                    .image("public.ecr.aws/old/etl:1")
                    .memory(512)
                    .command("python")
                    .command("-m")
                    .command(name)
                    .environment(KeyValuePair::builder().name("MODE").value(name).build())
                    .build(),
            )
            .send()
            .await
            .expect("register family");
        families.push(family);
    }
    let cluster = ecs_double::cluster(&ecs, "jobs").await;
    let api = ecs
        .register_task_definition()
        .family(unique("api"))
        .container_definitions(
            ContainerDefinition::builder()
                .name("api")
                .image("public.ecr.aws/old/api:1")
                .memory(128)
                .build(),
        )
        .send()
        .await
        .expect("register api");
    ecs_double::service_on(&ecs, &cluster, "api", &api, 1).await;

    let project = deploy_tests::image_project("jobs").await;
    let (bucket, repo) = (project.bucket.clone(), project.repo.clone());
    let config = project.dir.join("deploy.toml");
    let head = deploy_tests::dev_head(&bucket, &double.endpoints());
    let text = head
        + &format!(
            r#"[artifacts.etl]
kind = "image"
repository = "{repo}"
source = "oci:./layout:latest"
rollout = {{ strategy = "task-definitions", families = ["{daily}", "{backfill}"], container = "etl" }}
env = {{ WAREHOUSE = "wh-{{env}}" }}
"#,
            daily = families[0],
            backfill = families[1],
        );
    std::fs::write(&config, text).expect("write config");
    Fixture {
        double,
        config,
        bucket,
        repo,
        families: [families[0].clone(), families[1].clone()],
        cluster,
    }
}

impl Fixture {
    fn release(&self, artifacts: &[&str]) -> (Option<i32>, String) {
        let out = deploy(&moto().url)
            .arg("--config")
            .arg(&self.config)
            .args(["release", "dev"])
            .args(artifacts)
            .args(["--version", "v1"])
            .output()
            .expect("run deploy");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned()
                + &String::from_utf8_lossy(&out.stdout),
        )
    }

    async fn outcome(&self, artifact: &str) -> String {
        let prefix = format!("deploy/t/dev/artifacts/{artifact}/releases/");
        let keys = list_keys(&moto().url, &self.bucket, &prefix).await;
        let record = get_json(&moto().url, &self.bucket, &keys[0]).await;
        record["outcome"]["result"]
            .as_str()
            .unwrap_or("?")
            .to_owned()
    }
}

/// The latest ACTIVE revision of `family`, as moto describes it.
async fn latest(family: &str) -> aws_sdk_ecs::types::TaskDefinition {
    ecs_double::client(&moto().url)
        .await
        .describe_task_definition()
        .task_definition(family)
        .send()
        .await
        .expect("describe family")
        .task_definition()
        .expect("definition")
        .clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_family_gets_a_revision_with_the_digest_once() {
    let f = fixture().await;
    let (code, stderr) = f.release(&["etl"]);
    assert_eq!(code, Some(0), "{stderr}");
    let digest = skopeo_inspect(&format!("{}/{}:v1", oci_registry().host, f.repo), false)
        .expect("skopeo")["Digest"]
        .as_str()
        .expect("digest")
        .to_owned();
    for (family, mode) in f.families.iter().zip(["etl-daily", "etl-backfill"]) {
        let definition = latest(family).await;
        assert_eq!(definition.revision(), 2, "{family}");
        let etl = &definition.container_definitions()[0];
        assert_eq!(
            etl.image(),
            Some(format!("{}/{}@{digest}", oci_registry().host, f.repo).as_str())
        );
        assert_eq!(etl.command(), ["python", "-m", mode], "the rest is kept");
        let env: Vec<(&str, &str)> = etl
            .environment()
            .iter()
            .map(|kv| (kv.name().unwrap_or(""), kv.value().unwrap_or("")))
            .collect();
        assert_eq!(env, [("MODE", mode), ("WAREHOUSE", "wh-dev")]);
    }
    assert_eq!(f.outcome("etl").await, "succeeded");
    assert!(
        f.double.requests_of("UpdateService").is_empty(),
        "nothing runs now"
    );

    let (code, stderr) = f.release(&["etl"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains("unchanged: etl in dev already runs this"),
        "{stderr}"
    );
    for family in &f.families {
        assert_eq!(
            latest(family).await.revision(),
            2,
            "a rerun registers nothing"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_release_that_fails_elsewhere_deregisters_the_new_revisions() {
    let f = fixture().await;
    let api = format!(
        "[artifacts.api]\nkind = \"image\"\nrepository = \"{}\"\nsource = \"oci:./layout:latest\"\n\
         rollout = {{ strategy = \"ecs-rolling\", cluster = \"{}\", service = \"api\", container = \"api\" }}\n",
        f.repo, f.cluster
    );
    let text = std::fs::read_to_string(&f.config).expect("config") + &api;
    std::fs::write(&f.config, text).expect("write config");
    f.double.script_service(
        &f.cluster,
        "api",
        Script::FailAndRollBack { after_polls: 6 },
    );
    let (code, stderr) = f.release(&[]);
    assert_eq!(code, Some(3), "{stderr}");
    assert!(stderr.contains("[etl.rollout-image] undone"), "{stderr}");
    let ecs = ecs_double::client(&moto().url).await;
    for family in &f.families {
        // ECS describes a bare family as its latest ACTIVE revision; moto describes the latest
        // whatever its status, so the revisions are read one by one here.
        let second = ecs
            .describe_task_definition()
            .task_definition(format!("{family}:2"))
            .send()
            .await
            .expect("describe revision 2");
        let status = second.task_definition().and_then(|t| t.status());
        assert_eq!(
            status,
            Some(&aws_sdk_ecs::types::TaskDefinitionStatus::Inactive),
            "{family}: revision 2 was deregistered"
        );
        let active = ecs
            .list_task_definitions()
            .family_prefix(family)
            .status(aws_sdk_ecs::types::TaskDefinitionStatus::Active)
            .send()
            .await
            .expect("list revisions");
        let arns = active.task_definition_arns();
        assert!(
            arns.len() == 1 && arns[0].ends_with(&format!("{family}:1")),
            "{family}: the next run uses revision 1: {arns:?}"
        );
    }
    assert_eq!(f.outcome("etl").await, "rolled-back");
    assert_eq!(f.outcome("api").await, "rolled-back");
}

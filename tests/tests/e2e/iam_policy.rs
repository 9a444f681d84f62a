//! `deploy iam-policy` proven against a moto that enforces IAM: a user whose only policy is the
//! one generated for an environment releases, promotes and rolls back an image on
//! `ecs-rolling` (behind the ECS double), a task-definition family and a DAG folder; with any
//! one statement moto enforces removed, the run is refused. moto judges S3 and IAM requests
//! against their ARNs (the generated scoping and conditions are kept) and other services'
//! actions against `*` (those statements are widened for moto: the action lists are what is
//! proven there, the ARNs are checked by the policy's content).

use std::path::PathBuf;

use aws_sdk_ecs::types::{ContainerDefinition, LaunchType, Secret};
use deploy_tests::ecs_double::EcsDouble;
use deploy_tests::iam_moto::{EnforcingMoto, Keys, as_moto_judges, enforced};
use deploy_tests::layouts::tiny_layout;
use deploy_tests::{
    ACCOUNT, REGION, copy_dir, deploy, oci_registry, scratch_dir, unique, workspace_root,
};
use serde_json::Value;

/// One project in the enforcing moto: its buckets, repository, roles, parameter, families,
/// cluster and service, all with names of its own.
struct Project {
    config: PathBuf,
    state: String,
    dags: [String; 2],
    cluster: String,
    family: String,
    roles: [String; 2],
}

impl Project {
    async fn new(moto: &EnforcingMoto, double: &EcsDouble) -> Project {
        let admin = moto.config(&moto.admin).await;
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&admin)
                .force_path_style(true)
                .build(),
        );
        let state = unique("iam-state");
        let stem = unique("iam-dags");
        let dags = [format!("{stem}-dev"), format!("{stem}-prod")];
        for bucket in [&state, &dags[0], &dags[1]] {
            bucket_with_versions(&s3, bucket).await;
        }
        let repo = format!("iam/{}", unique("api"));
        aws_sdk_ecr::Client::new(&admin)
            .create_repository()
            .repository_name(&repo)
            .send()
            .await
            .expect("create repository");
        let roles = [role(&admin, "task").await, role(&admin, "exec").await];
        let parameter = format!("/iam/{}", unique("db"));
        aws_sdk_ssm::Client::new(&admin)
            .put_parameter()
            .name(&parameter)
            .value("postgres://never-read")
            .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
            .send()
            .await
            .expect("put parameter");
        let ecs = aws_sdk_ecs::Client::new(&admin);
        let cluster = unique("iam");
        ecs.create_cluster()
            .cluster_name(&cluster)
            .send()
            .await
            .expect("cluster");
        let family = unique("iam-api");
        let jobs = unique("iam-jobs");
        let secret = Secret::builder()
            .name("DATABASE_URL")
            .value_from(&parameter)
            .build()
            .expect("secret");
        for name in [&family, &jobs] {
            let container = ContainerDefinition::builder()
                .name("api")
                .image("public.ecr.aws/old/api:1")
                .memory(256)
                .essential(true)
                .secrets(secret.clone())
                .build();
            ecs.register_task_definition()
                .family(name)
                .task_role_arn(&roles[0])
                .execution_role_arn(&roles[1])
                .container_definitions(container)
                .send()
                .await
                .expect("register task definition");
        }
        ecs.create_service()
            .cluster(&cluster)
            .service_name("api")
            .task_definition(&family)
            .desired_count(1)
            .launch_type(LaunchType::Fargate)
            .send()
            .await
            .expect("create service");
        let dir = scratch_dir("iam-project");
        copy_dir(
            &workspace_root().join("examples/planwise/dags"),
            &dir.join("dags"),
        );
        copy_dir(
            &workspace_root().join("examples/planwise/build/api"),
            &dir.join("layout"),
        );
        let config = dir.join("deploy.toml");
        let endpoints = format!(
            "registry = \"http://{}\", ecs = \"{}\"",
            oci_registry().host,
            double.url
        );
        let text = format!(
            r#"project = "t"
[settings]
poll_interval = "100ms"
[environments.dev]
region = "{REGION}"
account = "{ACCOUNT}"
state_bucket = "{state}"
endpoints = {{ {endpoints} }}
[environments.prod]
region = "{REGION}"
account = "{ACCOUNT}"
state_bucket = "{state}"
promote_from = "dev"
endpoints = {{ {endpoints} }}
[artifacts.api]
kind = "image"
repository = "{repo}"
source = "oci:./layout:latest"
rollout = {{ strategy = "ecs-rolling", cluster = "{cluster}", service = "api", container = "api", timeout = "30s" }}
[artifacts.api.secrets]
DATABASE_URL = "{parameter}"
[artifacts.jobs]
kind = "image"
repository = "{repo}"
source = "oci:./layout:latest"
rollout = {{ strategy = "task-definitions", families = ["{jobs}"], container = "api" }}
[artifacts.dags]
kind = "dags"
source = "./dags"
bucket = "{stem}-{{env}}"
prefix = "dags/"
"#
        );
        std::fs::write(&config, text).expect("write config");
        Project {
            config,
            state,
            dags,
            cluster,
            family,
            roles,
        }
    }

    /// `deploy` signed with `keys`, talking to the enforcing moto.
    fn deploy(
        &self,
        moto: &EnforcingMoto,
        keys: &Keys,
        args: &[&str],
    ) -> (Option<i32>, String, String) {
        let out = deploy(&moto.url)
            .env("AWS_ACCESS_KEY_ID", &keys.0)
            .env("AWS_SECRET_ACCESS_KEY", &keys.1)
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .output()
            .expect("run deploy");
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        (out.status.code(), text(&out.stdout), text(&out.stderr))
    }

    /// The generated policy of `env`, read as the administrator (it reads the live task
    /// definitions).
    fn policy(&self, moto: &EnforcingMoto, env: &str) -> Value {
        let (code, stdout, stderr) =
            self.deploy(moto, &moto.admin, &["iam-policy", env, "--output", "json"]);
        assert_eq!(code, Some(0), "{stderr}");
        serde_json::from_str(&stdout).expect("a policy document")
    }

    fn dag_file(&self) -> PathBuf {
        self.config.parent().expect("dir").join("dags/iam_probe.py")
    }
}

async fn bucket_with_versions(s3: &aws_sdk_s3::Client, bucket: &str) {
    let location = aws_sdk_s3::types::CreateBucketConfiguration::builder()
        .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::from(REGION))
        .build();
    s3.create_bucket()
        .bucket(bucket)
        .create_bucket_configuration(location)
        .send()
        .await
        .unwrap_or_else(|e| panic!("create bucket {bucket}: {e:?}"));
    let enabled = aws_sdk_s3::types::VersioningConfiguration::builder()
        .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
        .build();
    s3.put_bucket_versioning()
        .bucket(bucket)
        .versioning_configuration(enabled)
        .send()
        .await
        .expect("versioning");
}

async fn role(admin: &aws_config::SdkConfig, what: &str) -> String {
    let trust = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ecs-tasks.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
    aws_sdk_iam::Client::new(admin)
        .create_role()
        .role_name(unique(&format!("iam-{what}")))
        .assume_role_policy_document(trust)
        .send()
        .await
        .expect("create role")
        .role()
        .map(|r| r.arn().to_owned())
        .expect("role arn")
}

/// The release, promotion and rollback this file proves, each as the user of its
/// environment: v1 to dev and prod, v2 (another image, another DAG file) to dev and prod, prod
/// back to v1. The first refusal ends the run: its exit code and stderr.
fn run_through(p: &Project, moto: &EnforcingMoto, dev: &Keys, prod: &Keys) -> Result<(), String> {
    let step = |keys: &Keys, args: &[&str]| match p.deploy(moto, keys, args) {
        (Some(0), _, _) => Ok(()),
        (code, _, stderr) => Err(format!(
            "`deploy {}` exited {code:?}: {stderr}",
            args.join(" ")
        )),
    };
    step(dev, &["release", "dev", "--version", "v1"])?;
    step(prod, &["promote", "dev", "prod"])?;
    tiny_layout(
        &p.config.parent().expect("dir").join("layout"),
        b"the second build",
    );
    std::fs::write(p.dag_file(), "# the second DAG folder\n").expect("write a DAG file");
    step(dev, &["release", "dev", "--version", "v2"])?;
    step(prod, &["promote", "dev", "prod"])?;
    step(prod, &["rollback", "prod"])
}

/// `document` without the statement `sid`.
fn without(document: &Value, sid: &str) -> Value {
    let mut out = document.clone();
    if let Some(statements) = out["Statement"].as_array_mut() {
        statements.retain(|s| s["Sid"] != sid);
    }
    out
}

fn sids(document: &Value) -> Vec<String> {
    document["Statement"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| enforced(s))
        .filter_map(|s| s["Sid"].as_str().map(str::to_owned))
        .collect()
}

fn refused(error: &str) -> bool {
    ["AccessDenied", "not authorized", "403"]
        .iter()
        .any(|m| error.contains(m))
}

#[tokio::test(flavor = "multi_thread")]
async fn the_generated_policy_is_enough_to_release_promote_and_roll_back() {
    let moto = EnforcingMoto::start().await;
    let double = EcsDouble::start_signed(&moto.url, moto.admin.clone());
    let p = Project::new(&moto, &double).await;
    let (dev_policy, prod_policy) = (p.policy(&moto, "dev"), p.policy(&moto, "prod"));
    // The roles the live task definitions name, and only those, may be passed, to ECS tasks.
    let pass = dev_policy["Statement"]
        .as_array()
        .and_then(|all| all.iter().find(|s| s["Sid"] == "PassRoleToEcsTasks"))
        .expect("a PassRole statement")
        .clone();
    let mut passed: Vec<&str> = pass["Resource"]
        .as_array()
        .expect("two roles")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    passed.sort_unstable();
    let mut roles = p.roles.clone();
    roles.sort();
    assert_eq!(passed, roles);
    assert_eq!(
        pass["Condition"]["StringEquals"]["iam:PassedToService"],
        "ecs-tasks.amazonaws.com"
    );
    let text = prod_policy.to_string();
    assert!(
        text.contains(&format!("arn:aws:s3:::{}/dags/*", p.dags[1])),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "arn:aws:ecs:{REGION}:{ACCOUNT}:service/{}/api",
            p.cluster
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!("task-definition/{}:*", p.family)),
        "{text}"
    );

    let (_, dev) = moto.user(&as_moto_judges(&dev_policy)).await;
    let (_, prod) = moto.user(&as_moto_judges(&prod_policy)).await;
    run_through(&p, &moto, &dev, &prod).expect("the generated policies are enough");

    // Read back as the administrator: prod runs v1's DAG folder again, not v2's file.
    let admin = moto.config(&moto.admin).await;
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&admin)
            .force_path_style(true)
            .build(),
    );
    let listed = s3
        .list_objects_v2()
        .bucket(&p.dags[1])
        .prefix("dags/")
        .send()
        .await
        .expect("list");
    let keys: Vec<&str> = listed.contents().iter().filter_map(|o| o.key()).collect();
    assert!(
        keys.contains(&"dags/example_dag.py") || !keys.is_empty(),
        "{keys:?}"
    );
    assert!(
        !keys.contains(&"dags/iam_probe.py"),
        "rolled back: {keys:?}"
    );
    let _ = &p.state;
}

#[tokio::test(flavor = "multi_thread")]
async fn each_statement_moto_enforces_is_needed() {
    let moto = EnforcingMoto::start().await;
    let double = EcsDouble::start_signed(&moto.url, moto.admin.clone());
    let first = Project::new(&moto, &double).await;
    let (dev_policy, prod_policy) = (first.policy(&moto, "dev"), first.policy(&moto, "prod"));
    let dev_sids = sids(&dev_policy);
    let prod_only: Vec<String> = sids(&prod_policy)
        .into_iter()
        .filter(|s| !dev_sids.contains(s))
        .collect();
    assert!(dev_sids.len() >= 8, "{dev_sids:?}");
    assert!(
        !prod_only.is_empty(),
        "prod reads dev's ledger and DAG versions"
    );
    let mut needed = Vec::new();
    for (sid, in_dev) in dev_sids
        .iter()
        .map(|s| (s, true))
        .chain(prod_only.iter().map(|s| (s, false)))
    {
        // A project of its own: nothing an earlier run left makes this one unchanged.
        let p = Project::new(&moto, &double).await;
        let (dev_doc, prod_doc) = (p.policy(&moto, "dev"), p.policy(&moto, "prod"));
        let (dev_doc, prod_doc) = match in_dev {
            true => (without(&dev_doc, sid), without(&prod_doc, sid)),
            false => (dev_doc, without(&prod_doc, sid)),
        };
        let (_, dev) = moto.user(&as_moto_judges(&dev_doc)).await;
        let (_, prod) = moto.user(&as_moto_judges(&prod_doc)).await;
        match run_through(&p, &moto, &dev, &prod) {
            Ok(()) => panic!("without {sid} the run still succeeded"),
            Err(error) => {
                assert!(refused(&error), "without {sid}: {error}");
                needed.push(sid.clone());
            }
        }
    }
    assert_eq!(needed.len(), dev_sids.len() + prod_only.len());
}

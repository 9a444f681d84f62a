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
        let names = Names::new();
        let admin = moto.config(&moto.admin).await;
        let roles = [role(&admin, "task").await, role(&admin, "exec").await];
        names.storage(&admin).await;
        names.services(&admin, &roles).await;
        let dir = scratch_dir("iam-project");
        let root = workspace_root().join("examples/planwise");
        copy_dir(&root.join("dags"), &dir.join("dags"));
        copy_dir(&root.join("build/api"), &dir.join("layout"));
        let config = dir.join("deploy.toml");
        std::fs::write(&config, names.config(double)).expect("write config");
        Project {
            config,
            state: names.state,
            dags: [
                format!("{}-dev", names.dags),
                format!("{}-prod", names.dags),
            ],
            cluster: names.cluster,
            family: names.family,
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

/// The names of one project's AWS objects, unique to it.
struct Names {
    state: String,
    dags: String,
    repo: String,
    parameter: String,
    cluster: String,
    family: String,
    jobs: String,
}

impl Names {
    fn new() -> Names {
        Names {
            state: unique("iam-state"),
            dags: unique("iam-dags"),
            repo: format!("iam/{}", unique("api")),
            parameter: format!("/iam/{}", unique("db")),
            cluster: unique("iam"),
            family: unique("iam-api"),
            jobs: unique("iam-jobs"),
        }
    }

    /// The state and DAG buckets of dev and prod (versioned), the repository, the parameter.
    async fn storage(&self, admin: &aws_config::SdkConfig) {
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(admin)
                .force_path_style(true)
                .build(),
        );
        for stem in [&self.state, &self.dags] {
            for env in ["dev", "prod"] {
                bucket_with_versions(&s3, &format!("{stem}-{env}")).await;
            }
        }
        aws_sdk_ecr::Client::new(admin)
            .create_repository()
            .repository_name(&self.repo)
            .send()
            .await
            .expect("create repository");
        aws_sdk_ssm::Client::new(admin)
            .put_parameter()
            .name(&self.parameter)
            .value("postgres://never-read")
            .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
            .send()
            .await
            .expect("put parameter");
    }

    /// The cluster, the service's and the job's task definitions (naming `roles` and the
    /// parameter), the service.
    async fn services(&self, admin: &aws_config::SdkConfig, roles: &[String; 2]) {
        let ecs = aws_sdk_ecs::Client::new(admin);
        ecs.create_cluster()
            .cluster_name(&self.cluster)
            .send()
            .await
            .expect("cluster");
        let secret = Secret::builder()
            .name("DATABASE_URL")
            .value_from(&self.parameter)
            .build()
            .expect("secret");
        for name in [&self.family, &self.jobs] {
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
            .cluster(&self.cluster)
            .service_name("api")
            .task_definition(&self.family)
            .desired_count(1)
            .launch_type(LaunchType::Fargate)
            .send()
            .await
            .expect("create service");
    }

    /// `deploy.toml`: dev and prod (promoted from dev), the service on `ecs-rolling` through
    /// `double`, the job family, the DAG folder.
    fn config(&self, double: &EcsDouble) -> String {
        let Names {
            state,
            dags,
            repo,
            parameter,
            cluster,
            jobs,
            ..
        } = self;
        let endpoints = format!(
            "registry = \"http://{}\", ecs = \"{}\"",
            oci_registry().host,
            double.url
        );
        let env = |name: &str, extra: &str| {
            format!(
                "[environments.{name}]\nregion = \"{REGION}\"\naccount = \"{ACCOUNT}\"\n\
                 state_bucket = \"{state}-{{env}}\"\n{extra}endpoints = {{ {endpoints} }}\n"
            )
        };
        let head = format!(
            "project = \"t\"\n[settings]\npoll_interval = \"100ms\"\n{}{}",
            env("dev", ""),
            env("prod", "promote_from = \"dev\"\n")
        );
        head + &format!(
            r#"[artifacts.api]
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
bucket = "{dags}-{{env}}"
prefix = "dags/"
"#
        )
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

/// Statements of services moto authorizes whose requests moto still does not judge, and why:
/// they are checked by the policy's content (the unit tests of `deploy-core`'s `iam`).
const NOT_JUDGED: &[(&str, &str)] = &[
    (
        "DagsSource",
        "moto authorizes a CopyObject by its destination only, never by its source",
    ),
    (
        "EcrSourcePull",
        "layers and manifests move through the OCI registry, which is not moto",
    ),
];

/// The `Sid`s of `document` moto judges.
fn sids(document: &Value) -> Vec<String> {
    document["Statement"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| enforced(s))
        .filter_map(|s| s["Sid"].as_str().map(str::to_owned))
        .filter(|sid| !NOT_JUDGED.iter().any(|(prefix, _)| sid.starts_with(prefix)))
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

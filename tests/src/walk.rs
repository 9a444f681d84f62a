//! The environments of the fault walk (`tests/tests/e2e/fault_walk.rs`): for every kind and
//! strategy, a fresh environment whose release plan the walk applies through the library with
//! one step failing, and what that environment runs, read back through the AWS APIs (moto and
//! the doubles), never through deploy-core. What runs comes in parts, each keyed by the id of
//! the step that changes it (`api.rollout-image`, `api.run-migration`, `dags.sync-dags`,
//! `fn.publish-lambda`, `fn.shift-lambda-alias`), so the walk knows which part a completed step
//! may leave changed.

mod jobs;
mod lambda;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use deploy_core::aws::AwsClients;
use deploy_core::config::Config;
use deploy_core::engine::{ApplyFailure, ApplyReport, StepError};
use deploy_core::events::{Event, Recorder};
use deploy_core::ledger::{Ledger as CoreLedger, Operation};
use deploy_core::ops::{self, ApplyOptions, Prepared};
use deploy_core::plan::{Plan, PlanRequest, Step};
use serde_json::{Value, json};

use crate::dags::{Project, read_all};
use crate::ecs_double;
use crate::rollout_faults::Ledger;
use crate::rollout_faults::ecs::{Fixture, Kind};
use crate::{answering, moto, moto_config, unique};

pub use jobs::{JobsExtras, jobs};
pub use lambda::{LambdaVariant, lambda};

/// What runs, by the id of the step that changes each part.
pub type Truth = BTreeMap<String, Value>;

/// The error every injected failure carries.
pub const INJECTED: &str = "injected fault";

/// One fresh environment ready for a release of one artifact.
#[derive(Debug)]
pub struct Walked {
    /// `deploy.toml`, in a scratch folder.
    pub path: std::path::PathBuf,
    /// The configuration read from it.
    pub config: Config,
    /// The artifact's ledger in the state bucket.
    pub ledger: Ledger,
    /// The CloudWatch endpoint deploy must use (the bridge), when the release asks CloudWatch.
    cloudwatch: Option<String>,
    probe: Probe,
}

/// Where what runs is read, and what keeps the doubles and proxies serving.
#[derive(Debug)]
enum Probe {
    Service {
        fixture: Box<Fixture>,
        migration: bool,
    },
    Jobs(jobs::Jobs),
    Dags {
        project: Box<Project>,
        /// Each DAG artifact and its prefix.
        prefixes: Vec<(String, String)>,
    },
    Lambda(lambda::Function),
}

/// A run of a plan with one step failing (or none).
#[derive(Debug)]
pub struct Run {
    /// The step ids the engine came to, in order (its intercept saw them).
    pub reached: Vec<String>,
    /// Every event.
    pub events: Vec<Event>,
    /// How it ended.
    pub result: Result<ApplyReport, Box<ApplyFailure>>,
}

impl Walked {
    fn new(path: &std::path::Path, bucket: &str, artifact: &str, probe: Probe) -> Walked {
        Walked {
            path: path.to_owned(),
            config: Config::load(path).expect("the walk's configuration is valid"),
            ledger: Ledger::new(bucket, artifact),
            cloudwatch: None,
            probe,
        }
    }

    /// Writes `text` to `deploy.toml` and reads it again.
    pub fn configure(&mut self, text: &str) {
        std::fs::write(&self.path, text).expect("write config");
        self.config = Config::load(&self.path).expect("the walk's configuration is valid");
    }

    /// Clients of `dev`: moto for every service the configuration names no endpoint for,
    /// CloudWatch through the bridge.
    pub async fn clients(&self) -> AwsClients {
        let env = self.config.environment("dev").expect("dev");
        let mut clients = AwsClients::from_sdk_config(&env.target, &moto_config(&moto().url).await);
        if let Some(url) = &self.cloudwatch {
            clients =
                clients.with_cloudwatch(aws_sdk_cloudwatch::Client::new(&moto_config(url).await));
        }
        clients
    }

    /// The release plan of every artifact, made against the ledger as `deploy release` makes it.
    pub async fn plan(&self, clients: &AwsClients, version: &str) -> Plan {
        let env = self.config.environment("dev").expect("dev");
        let artifacts = env.select(&[]).expect("all artifacts");
        let names: Vec<String> = artifacts.iter().map(|a| a.name.clone()).collect();
        let status = CoreLedger::new(clients.s3.clone(), &env.target)
            .status(&names)
            .await
            .expect("ledger status");
        Plan::build(&PlanRequest {
            environment: env,
            artifacts,
            operation: Operation::Release,
            version: Some(version.to_owned()),
            config_sha256: self.config.sha256(),
            lock_ttl: self.config.settings.lock_ttl,
            status: &status,
            promote: &[],
            gradual: false,
            commit_time: None,
        })
    }

    /// Applies the release plan with the built-in kinds; the step `failing` fails without
    /// running.
    pub async fn release(&self, version: &str, failing: Option<&str>) -> Run {
        let clients = self.clients().await;
        let plan = self.plan(&clients, version).await;
        let prepared = Prepared {
            plan,
            clients,
            sources: Vec::new(),
        };
        let recorder = Arc::new(Recorder::default());
        let options = ApplyOptions::default();
        let mut engine = ops::engine(&self.config, &prepared, recorder.clone(), &options);
        let reached = Arc::new(Mutex::new(Vec::new()));
        let (log, target) = (reached.clone(), failing.map(str::to_owned));
        engine.intercept(Arc::new(move |step: &Step| {
            log.lock().expect("log").push(step.id.clone());
            match &target {
                Some(id) if *id == step.id => Err(StepError::failure(INJECTED)),
                _ => Ok(()),
            }
        }));
        let result = engine.apply(&prepared.plan).await;
        let reached = reached.lock().expect("log").clone();
        Run {
            reached,
            events: recorder.events(),
            result,
        }
    }

    /// What runs now, read through the AWS APIs.
    pub async fn truth(&self) -> Truth {
        match &self.probe {
            Probe::Service { fixture, migration } => service_truth(fixture, *migration).await,
            Probe::Jobs(jobs) => jobs.truth().await,
            Probe::Dags { project, prefixes } => {
                let mut truth = Truth::new();
                for (artifact, prefix) in prefixes {
                    let objects = read_all(&project.dags, prefix).await;
                    let text: BTreeMap<String, String> = objects
                        .into_iter()
                        .map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned()))
                        .collect();
                    truth.insert(format!("{artifact}.sync-dags"), json!(text));
                }
                truth
            }
            Probe::Lambda(function) => function.truth().await,
        }
    }
}

/// The service's task definition as moto has it; with a migration, the tasks run in the
/// cluster.
async fn service_truth(fixture: &Fixture, migration: bool) -> Truth {
    let ecs = ecs_double::client(&moto().url).await;
    let described = ecs
        .describe_services()
        .cluster(&fixture.cluster)
        .services("api")
        .send()
        .await
        .expect("describe service");
    let running = described.services()[0]
        .task_definition()
        .unwrap_or_default();
    let mut truth = BTreeMap::from([("api.rollout-image".to_owned(), json!(running))]);
    if migration {
        truth.insert(
            "api.run-migration".to_owned(),
            tasks(&fixture.cluster).await,
        );
    }
    truth
}

/// How many tasks `cluster` ran or runs, as moto lists them (every one-off task of the walk
/// is a migration).
async fn tasks(cluster: &str) -> Value {
    let ecs = ecs_double::client(&moto().url).await;
    let mut tasks = 0;
    for status in [
        aws_sdk_ecs::types::DesiredStatus::Running,
        aws_sdk_ecs::types::DesiredStatus::Stopped,
    ] {
        let listed = ecs
            .list_tasks()
            .cluster(cluster)
            .desired_status(status)
            .send()
            .await
            .expect("list tasks");
        tasks += listed.task_arns().len();
    }
    json!({ "tasks": tasks })
}

/// What an image rollout to a service adds to the fixture's `[artifacts.api.rollout]` table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServiceExtras {
    /// A `pre_deploy` migration.
    pub migration: bool,
    /// A health gate after the rollout (a server answering 200).
    pub health: bool,
}

/// A service `api` on its first revision and a project rolling the example image out to it
/// with `kind` (the fixture of the ECS fault tests), with `extras`.
pub async fn service(kind: Kind, extras: ServiceExtras) -> Walked {
    let fixture = Fixture::new(kind).await;
    let mut keys = String::new();
    if extras.migration {
        let family = migration_family("api").await;
        keys += &format!(
            "pre_deploy = {{ task_definition = \"{family}\", command = [\"./migrate\", \"up\"], timeout = \"20s\" }}\n"
        );
    }
    if extras.health {
        keys += &format!(
            "health_check = {{ url = \"{}\", expect_status = 200, timeout = \"5s\" }}\n",
            answering(200)
        );
    }
    let text = std::fs::read_to_string(&fixture.config).expect("config") + &keys;
    std::fs::write(&fixture.config, text).expect("write config");
    let (path, bucket) = (fixture.config.clone(), fixture.ledger.bucket.clone());
    let probe = Probe::Service {
        fixture: Box::new(fixture),
        migration: extras.migration,
    };
    Walked::new(&path, &bucket, "api", probe)
}

/// A migration family with one container, nothing it references.
async fn migration_family(container: &str) -> String {
    let family = unique("migrate");
    ecs_double::client(&moto().url)
        .await
        .register_task_definition()
        .family(&family)
        .container_definitions(
            aws_sdk_ecs::types::ContainerDefinition::builder()
                .name(container)
                .image("public.ecr.aws/old/api:1")
                .memory(128)
                .essential(true)
                .build(),
        )
        .send()
        .await
        .expect("register the migration family");
    family
}

/// A DAG project (the fixture of the DAG tests) whose v1 (`a.py`, `b.py`, `sub/c.py`) is
/// released; its folder then changes one file, drops one and adds one. With `pair`, a second
/// artifact `more` (folder `more/`, prefix `more/` of the same bucket) goes the same way.
pub async fn dags(pair: bool) -> Walked {
    let more = "[artifacts.more]\nkind = \"dags\"\nsource = \"./more\"\nbucket = \"BUCKET\"\nprefix = \"more/\"\n";
    let project = Project::new("").await;
    let mut prefixes = vec![("dags".to_owned(), "dags/".to_owned())];
    let mut folders = vec![project.folder()];
    if pair {
        let text = std::fs::read_to_string(&project.config).expect("config");
        let text = text + &more.replace("BUCKET", &project.dags);
        std::fs::write(&project.config, text).expect("write config");
        prefixes.push(("more".to_owned(), "more/".to_owned()));
        folders.push(project.dir.join("more"));
    }
    let write = |folder: &std::path::Path, path: &str, text: &str| {
        let file = folder.join(path);
        std::fs::create_dir_all(file.parent().expect("a parent")).expect("mkdir");
        std::fs::write(file, text).expect("write");
    };
    for folder in &folders {
        write(folder, "a.py", "a = 1\n");
        write(folder, "b.py", "b = 1\n");
        write(folder, "sub/c.py", "c = 1\n");
    }
    let (config, state) = (project.config.clone(), project.state.clone());
    let probe = Probe::Dags {
        project: Box::new(project),
        prefixes,
    };
    let walked = Walked::new(&config, &state, "dags", probe);
    walked.release("v1", None).await.result.expect("release v1");
    for folder in &folders {
        write(folder, "a.py", "a = 2\n");
        std::fs::remove_file(folder.join("b.py")).expect("remove b.py");
        write(folder, "d.py", "d = 1\n");
    }
    walked
}

//! `task-definitions`: two job families (`daily`, `backfill`), an EventBridge rule whose ECS
//! target pins `daily:1`, a Scheduler schedule pinning `backfill:1` (as in the schedules
//! tests), and a project whose `etl` image goes to both families with the rule and schedule
//! following. What runs: each family's ACTIVE revisions and what the rule and schedule name.

use aws_sdk_ecs::types::{ContainerDefinition, TaskDefinitionStatus};
use aws_sdk_eventbridge::types::{EcsParameters, LaunchType, Target};
use aws_sdk_scheduler::types::{FlexibleTimeWindow, FlexibleTimeWindowMode};
use serde_json::json;

use super::{Probe, Truth, Walked};
use crate::ecs_double::{self, EcsDouble};
use crate::{ACCOUNT, REGION, dev_head, image_project, moto, moto_config, unique};

/// The families, the rule and the schedule of a jobs walk; with a migration, its cluster and
/// the ECS double that plays its task.
#[derive(Debug)]
pub(super) struct Jobs {
    families: [String; 2],
    rule: String,
    schedule: String,
    migration: Option<(String, EcsDouble)>,
}

/// What a jobs walk adds to the plain case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobsExtras {
    /// A `pre_deploy` migration in a cluster of its own, launched as the rule runs the jobs.
    pub migration: bool,
    /// Someone registered `daily:2` after the revision the rule pins, and the rollout keeps
    /// one revision besides the newest.
    pub crowded: bool,
}

fn arn(family: &str, revision: u32) -> String {
    format!("arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/{family}:{revision}")
}

fn cluster() -> String {
    format!("arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/jobs")
}

/// The walk's `task-definitions` environment.
pub async fn jobs(extras: JobsExtras) -> Walked {
    let families = [unique("etl-daily"), unique("etl-backfill")];
    for family in &families {
        register(family).await;
    }
    let mut keys = String::new();
    if extras.crowded {
        register(&families[0]).await;
        keys += "keep_revisions = 1\n";
    }
    let mut endpoints = format!("registry = \"http://{}\"", crate::oci_registry().host);
    let mut migration = None;
    if extras.migration {
        let double = EcsDouble::start(&moto().url);
        let ecs = ecs_double::client(&moto().url).await;
        let cluster = ecs_double::cluster(&ecs, "walk-jobs").await;
        let family = super::migration_family("etl").await;
        keys += &format!(
            "cluster = \"{cluster}\"\npre_deploy = {{ task_definition = \"{family}\", command = [\"./migrate\"] }}\n"
        );
        endpoints = double.endpoints();
        migration = Some((cluster, double));
    }
    let rule = rule(&families[0]).await;
    let schedule = schedule(&families[1]).await;
    let project = image_project("walk-jobs").await;
    let text = dev_head(&project.bucket, &endpoints)
        + &format!(
            "[artifacts.etl]\nkind = \"image\"\nrepository = \"{}\"\nsource = \"oci:./layout:latest\"\n\
             [artifacts.etl.rollout]\nstrategy = \"task-definitions\"\nfamilies = [\"{}\", \"{}\"]\n\
             container = \"etl\"\nschedules = [\"{rule}\"]\nscheduler_schedules = [\"default/{schedule}\"]\n{keys}",
            project.repo, families[0], families[1],
        );
    let path = project.dir.join("deploy.toml");
    std::fs::write(&path, text).expect("write config");
    let probe = Probe::Jobs(Jobs {
        families,
        rule,
        schedule,
        migration,
    });
    Walked::new(&path, &project.bucket, "etl", probe)
}

/// The next revision of `family`: container `etl`.
async fn register(family: &str) {
    let etl = ContainerDefinition::builder()
        .name("etl")
        .image("public.ecr.aws/old/etl:1")
        .memory(512)
        .build();
    ecs_double::client(&moto().url)
        .await
        .register_task_definition()
        .family(family)
        .container_definitions(etl)
        .send()
        .await
        .expect("register a job family");
}

/// A rule whose ECS target `pinned` runs `family:1`.
async fn rule(family: &str) -> String {
    let events = aws_sdk_eventbridge::Client::new(&moto_config(&moto().url).await);
    let rule = unique("etl-nightly");
    events
        .put_rule()
        .name(&rule)
        .schedule_expression("cron(0 3 * * ? *)")
        .send()
        .await
        .expect("put rule");
    let parameters = EcsParameters::builder()
        .task_definition_arn(arn(family, 1))
        .task_count(1)
        .launch_type(LaunchType::Fargate)
        .build()
        .expect("ecs parameters");
    let target = Target::builder()
        .id("pinned")
        .arn(cluster())
        .role_arn(format!("arn:aws:iam::{ACCOUNT}:role/events-ecs"))
        .ecs_parameters(parameters)
        .build()
        .expect("target");
    events
        .put_targets()
        .rule(&rule)
        .targets(target)
        .send()
        .await
        .expect("put targets");
    rule
}

/// A schedule running `family:1`.
async fn schedule(family: &str) -> String {
    let scheduler = aws_sdk_scheduler::Client::new(&moto_config(&moto().url).await);
    let schedule = unique("etl-hourly");
    let parameters = aws_sdk_scheduler::types::EcsParameters::builder()
        .task_definition_arn(arn(family, 1))
        .task_count(1)
        .build()
        .expect("ecs parameters");
    let target = aws_sdk_scheduler::types::Target::builder()
        .arn(cluster())
        .role_arn(format!("arn:aws:iam::{ACCOUNT}:role/scheduler-ecs"))
        .ecs_parameters(parameters)
        .build()
        .expect("target");
    let window = FlexibleTimeWindow::builder()
        .mode(FlexibleTimeWindowMode::Off)
        .build()
        .expect("window");
    scheduler
        .create_schedule()
        .name(&schedule)
        .schedule_expression("rate(1 hour)")
        .flexible_time_window(window)
        .target(target)
        .send()
        .await
        .expect("create schedule");
    schedule
}

impl Jobs {
    /// Each family's ACTIVE revisions, the task definition of each of the rule's targets and
    /// the schedule's, as moto has them.
    pub(super) async fn truth(&self) -> Truth {
        let config = moto_config(&moto().url).await;
        let ecs = aws_sdk_ecs::Client::new(&config);
        let mut families = serde_json::Map::new();
        for family in &self.families {
            let active = ecs
                .list_task_definitions()
                .family_prefix(family)
                .status(TaskDefinitionStatus::Active)
                .send()
                .await
                .expect("list revisions");
            families.insert(family.clone(), json!(active.task_definition_arns()));
        }
        let targets = aws_sdk_eventbridge::Client::new(&config)
            .list_targets_by_rule()
            .rule(&self.rule)
            .send()
            .await
            .expect("list targets");
        let rule: serde_json::Map<String, serde_json::Value> = targets
            .targets()
            .iter()
            .map(|t| {
                let task = t.ecs_parameters().map(EcsParameters::task_definition_arn);
                (t.id().to_owned(), json!(task))
            })
            .collect();
        let schedule = aws_sdk_scheduler::Client::new(&config)
            .get_schedule()
            .name(&self.schedule)
            .send()
            .await
            .expect("get schedule");
        let scheduled = schedule
            .target()
            .and_then(|t| t.ecs_parameters())
            .map(aws_sdk_scheduler::types::EcsParameters::task_definition_arn);
        let truth = json!({ "families": families, "rule": rule, "schedule": scheduled });
        let mut truth = Truth::from([("etl.rollout-image".to_owned(), truth)]);
        if let Some((cluster, _)) = &self.migration {
            truth.insert("etl.run-migration".to_owned(), super::tasks(cluster).await);
        }
        truth
    }
}

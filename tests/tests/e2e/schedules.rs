//! `task-definitions` with `schedules` and `scheduler_schedules`: the ECS targets of the
//! configured EventBridge rules and Scheduler schedules follow the new revisions, everything
//! else about them stays; a failure elsewhere points them back; a missing rule stops the
//! release before anything is registered; cleanup keeps what services and kept releases use.
//! Everything is read back through moto's EventBridge, Scheduler and ECS APIs.

use std::path::PathBuf;

use aws_sdk_ecs::types::ContainerDefinition;
use aws_sdk_eventbridge::types::{
    AssignPublicIp, AwsVpcConfiguration, EcsParameters, LaunchType, NetworkConfiguration, Target,
};
use aws_sdk_scheduler::types::{FlexibleTimeWindow, FlexibleTimeWindowMode, RetryPolicy};
use deploy_tests::ecs_double::{self, EcsDouble, Script};
use deploy_tests::{ACCOUNT, REGION, deploy, get_json, list_keys, moto, moto_config, unique};

pub(crate) struct Fixture {
    pub double: EcsDouble,
    pub config: PathBuf,
    pub bucket: String,
    pub repo: String,
    /// `daily`, `backfill`.
    pub families: [String; 2],
    pub rule: String,
    pub schedule: String,
}

fn arn(family: &str, revision: u32) -> String {
    format!("arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/{family}:{revision}")
}

async fn register(family: &str) -> String {
    let out = ecs_double::client(&moto().url)
        .await
        .register_task_definition()
        .family(family)
        .container_definitions(
            ContainerDefinition::builder()
                .name("etl")
                .image("public.ecr.aws/old/etl:1")
                .memory(512)
                .build(),
        )
        .send()
        .await
        .expect("register");
    out.task_definition()
        .and_then(|t| t.task_definition_arn())
        .expect("arn")
        .to_owned()
}

/// A rule with three targets: the daily family pinned at revision 1, the daily family by
/// name (its latest revision), and a queue. A schedule of the backfill family at revision 1.
async fn schedules(families: &[String; 2]) -> (String, String) {
    let config = moto_config(&moto().url).await;
    let events = aws_sdk_eventbridge::Client::new(&config);
    let rule = unique("etl-nightly");
    events
        .put_rule()
        .name(&rule)
        .schedule_expression("cron(0 3 * * ? *)")
        .send()
        .await
        .expect("put rule");
    let cluster = format!("arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/jobs");
    let network = NetworkConfiguration::builder()
        .awsvpc_configuration(
            AwsVpcConfiguration::builder()
                .subnets("subnet-0a1b2c")
                .security_groups("sg-0d1e2f")
                .assign_public_ip(AssignPublicIp::Disabled)
                .build()
                .expect("awsvpc"),
        )
        .build();
    let ecs_target = |id: &str, task_definition: String| {
        Target::builder()
            .id(id)
            .arn(&cluster)
            .role_arn(format!("arn:aws:iam::{ACCOUNT}:role/events-ecs"))
            .input(r#"{"containerOverrides":[]}"#)
            .ecs_parameters(
                EcsParameters::builder()
                    .task_definition_arn(task_definition)
                    .task_count(2)
                    .launch_type(LaunchType::Fargate)
                    .network_configuration(network.clone())
                    .platform_version("1.4.0")
                    .build()
                    .expect("ecs parameters"),
            )
            .build()
            .expect("target")
    };
    let latest = format!(
        "arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/{}",
        families[0]
    );
    events
        .put_targets()
        .rule(&rule)
        .targets(ecs_target("pinned", arn(&families[0], 1)))
        .targets(ecs_target("latest", latest))
        .targets(
            Target::builder()
                .id("queue")
                .arn(format!("arn:aws:sqs:{REGION}:{ACCOUNT}:audit"))
                .build()
                .expect("target"),
        )
        .send()
        .await
        .expect("put targets");

    let schedule = backfill_schedule(&config, &cluster, &families[1]).await;
    (rule, schedule)
}

/// A Scheduler schedule running `family` at revision 1 hourly in `cluster`; its name.
async fn backfill_schedule(config: &aws_config::SdkConfig, cluster: &str, family: &str) -> String {
    let scheduler = aws_sdk_scheduler::Client::new(config);
    let schedule = unique("etl-hourly");
    scheduler
        .create_schedule()
        .name(&schedule)
        .schedule_expression("rate(1 hour)")
        .schedule_expression_timezone("Europe/Paris")
        .description("hourly backfill")
        .flexible_time_window(
            FlexibleTimeWindow::builder()
                .mode(FlexibleTimeWindowMode::Flexible)
                .maximum_window_in_minutes(15)
                .build()
                .expect("window"),
        )
        .target(
            aws_sdk_scheduler::types::Target::builder()
                .arn(cluster)
                .role_arn(format!("arn:aws:iam::{ACCOUNT}:role/scheduler-ecs"))
                .retry_policy(RetryPolicy::builder().maximum_retry_attempts(3).build())
                .ecs_parameters(
                    aws_sdk_scheduler::types::EcsParameters::builder()
                        .task_definition_arn(arn(family, 1))
                        .task_count(1)
                        .build()
                        .expect("ecs parameters"),
                )
                .build()
                .expect("target"),
        )
        .send()
        .await
        .expect("create schedule");
    schedule
}

pub(crate) async fn fixture() -> Fixture {
    let double = EcsDouble::start(&moto().url);
    let families = [unique("etl-daily"), unique("etl-backfill")];
    for family in &families {
        register(family).await;
    }
    let (rule, schedule) = schedules(&families).await;
    let project = deploy_tests::image_project("sched").await;
    let config = project.dir.join("deploy.toml");
    let text = deploy_tests::dev_head(&project.bucket, &double.endpoints())
        + &format!(
            r#"[artifacts.etl]
kind = "image"
repository = "{repo}"
source = "oci:./layout:latest"
[artifacts.etl.rollout]
strategy = "task-definitions"
families = ["{daily}", "{backfill}"]
container = "etl"
schedules = ["{rule}"]
scheduler_schedules = ["default/{schedule}"]
"#,
            repo = project.repo,
            daily = families[0],
            backfill = families[1],
        );
    std::fs::write(&config, text).expect("write config");
    Fixture {
        double,
        config,
        bucket: project.bucket,
        repo: project.repo,
        families,
        rule,
        schedule,
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

    fn append(&self, text: &str) {
        let config = std::fs::read_to_string(&self.config).expect("config") + text;
        std::fs::write(&self.config, config).expect("write config");
    }

    async fn record(&self, artifact: &str) -> serde_json::Value {
        let prefix = format!("deploy/t/dev/artifacts/{artifact}/releases/");
        let keys = list_keys(&moto().url, &self.bucket, &prefix).await;
        get_json(&moto().url, &self.bucket, &keys[0]).await
    }

    pub(crate) async fn rule_targets(&self) -> Vec<Target> {
        let config = moto_config(&moto().url).await;
        let mut targets = aws_sdk_eventbridge::Client::new(&config)
            .list_targets_by_rule()
            .rule(&self.rule)
            .send()
            .await
            .expect("list targets")
            .targets
            .unwrap_or_default();
        targets.sort_by(|a, b| a.id.cmp(&b.id));
        targets
    }

    pub(crate) async fn schedule(
        &self,
    ) -> aws_sdk_scheduler::operation::get_schedule::GetScheduleOutput {
        let config = moto_config(&moto().url).await;
        aws_sdk_scheduler::Client::new(&config)
            .get_schedule()
            .name(&self.schedule)
            .send()
            .await
            .expect("get schedule")
    }
}

pub(crate) fn task_definition_of(target: &Target) -> &str {
    target
        .ecs_parameters()
        .map(|p| p.task_definition_arn())
        .unwrap_or_default()
}

pub(crate) fn scheduled_task_definition(
    schedule: &aws_sdk_scheduler::operation::get_schedule::GetScheduleOutput,
) -> &str {
    schedule
        .target()
        .and_then(|t| t.ecs_parameters())
        .map(|p| p.task_definition_arn())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn rule_targets_and_schedules_follow_the_new_revisions_and_keep_the_rest() {
    let f = fixture().await;
    let before_targets = f.rule_targets().await;
    let before_schedule = f.schedule().await;
    let (code, stderr) = f.release(&["etl"]);
    assert_eq!(code, Some(0), "{stderr}");

    let after = f.rule_targets().await;
    assert_eq!(after.len(), 3);
    for (old, new) in before_targets.iter().zip(&after) {
        let mut expected = old.clone();
        if old.id == "pinned" {
            let params = expected.ecs_parameters.as_mut().expect("ecs parameters");
            params.task_definition_arn = arn(&f.families[0], 2);
        }
        assert_eq!(new, &expected, "target {} is otherwise unchanged", old.id);
    }
    assert!(
        task_definition_of(&after[0]).ends_with(&f.families[0]),
        "a target naming the family follows its latest revision by itself and is left alone"
    );

    let schedule = f.schedule().await;
    assert_eq!(scheduled_task_definition(&schedule), arn(&f.families[1], 2));
    let mut expected = before_schedule.target().cloned().expect("target");
    if let Some(params) = expected.ecs_parameters.as_mut() {
        params.task_definition_arn = arn(&f.families[1], 2);
    }
    assert_eq!(
        schedule.target(),
        Some(&expected),
        "the rest of the target is kept"
    );
    assert_eq!(schedule.description(), Some("hourly backfill"));
    assert_eq!(schedule.schedule_expression(), Some("rate(1 hour)"));
    assert_eq!(
        schedule.schedule_expression_timezone(),
        Some("Europe/Paris")
    );
    assert_eq!(
        schedule.flexible_time_window(),
        before_schedule.flexible_time_window()
    );

    let record = f.record("etl").await;
    let touched = record["touched"].to_string();
    assert!(
        touched.contains(&f.rule) && touched.contains(&f.schedule),
        "{touched}"
    );

    let (code, stderr) = f.release(&["etl"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        !stderr.contains("now runs"),
        "a rerun changes nothing: {stderr}"
    );
    assert_eq!(
        task_definition_of(&f.rule_targets().await[1]),
        arn(&f.families[0], 2)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failure_elsewhere_points_the_schedules_back() {
    let f = fixture().await;
    let ecs = ecs_double::client(&moto().url).await;
    let cluster = ecs_double::cluster(&ecs, "web").await;
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
    f.append(&format!(
        "[artifacts.api]\nkind = \"image\"\nrepository = \"{}\"\nsource = \"oci:./layout:latest\"\n\
         rollout = {{ strategy = \"ecs-rolling\", cluster = \"{cluster}\", service = \"api\", container = \"api\" }}\n",
        f.repo
    ));
    f.double
        .script_service(&cluster, "api", Script::FailAndRollBack { after_polls: 8 });
    let (code, stderr) = f.release(&[]);
    assert_eq!(code, Some(3), "{stderr}");
    assert!(stderr.contains("[etl.rollout-image] undone"), "{stderr}");
    let targets = f.rule_targets().await;
    assert_eq!(task_definition_of(&targets[1]), arn(&f.families[0], 1));
    assert_eq!(
        scheduled_task_definition(&f.schedule().await),
        arn(&f.families[1], 1)
    );
    assert_eq!(f.record("etl").await["outcome"]["result"], "rolled-back");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_rule_stops_the_release_before_anything_is_registered() {
    let f = fixture().await;
    let text = std::fs::read_to_string(&f.config).expect("config");
    let gone = unique("gone");
    std::fs::write(&f.config, text.replace(&f.rule, &gone)).expect("write config");
    let (code, stderr) = f.release(&["etl"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("EventBridge rule {gone} does not exist")),
        "{stderr}"
    );
    assert!(f.double.requests_of("RegisterTaskDefinition").is_empty());
    assert_eq!(
        scheduled_task_definition(&f.schedule().await),
        arn(&f.families[1], 1)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rule_running_none_of_the_families_is_refused() {
    let f = fixture().await;
    let config = moto_config(&moto().url).await;
    let other = unique("other");
    aws_sdk_eventbridge::Client::new(&config)
        .put_rule()
        .name(&other)
        .schedule_expression("rate(1 day)")
        .send()
        .await
        .expect("put rule");
    let text = std::fs::read_to_string(&f.config).expect("config");
    std::fs::write(&f.config, text.replace(&f.rule, &other)).expect("write config");
    let (code, stderr) = f.release(&["etl"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "EventBridge rule {other} has no ECS target running"
        )),
        "{stderr}"
    );
    assert!(f.double.requests_of("RegisterTaskDefinition").is_empty());
}

/// Revisions 1 (initial) and 2 (the first release) of the daily family; 3, 4 and 5 registered
/// by someone else, 3 run by a service of the cluster; the second release registers 6. With
/// `keep_revisions = 1`: 6 and 5 are the newest, 3 is run by the service, 2 is recorded by a
/// kept release; only 1 and 4 go.
#[tokio::test(flavor = "multi_thread")]
async fn cleanup_keeps_what_services_schedules_and_kept_releases_use() {
    let f = fixture().await;
    let ecs = ecs_double::client(&moto().url).await;
    let cluster = ecs_double::cluster(&ecs, "jobs").await;
    let text = std::fs::read_to_string(&f.config).expect("config").replace(
        "container = \"etl\"\n",
        &format!("container = \"etl\"\nkeep_revisions = 1\ncluster = \"{cluster}\"\n"),
    );
    std::fs::write(&f.config, text).expect("write config");
    let (code, stderr) = f.release(&["etl"]);
    assert_eq!(code, Some(0), "{stderr}");
    let daily = &f.families[0];
    for _ in 3..=5 {
        register(daily).await;
    }
    let third = ecs
        .describe_task_definition()
        .task_definition(arn(daily, 3))
        .send()
        .await
        .expect("describe 3");
    let third =
        aws_sdk_ecs::operation::register_task_definition::RegisterTaskDefinitionOutput::builder()
            .set_task_definition(third.task_definition)
            .build();
    ecs_double::service_on(&ecs, &cluster, "worker", &third, 1).await;
    f.append("[artifacts.etl.env]\nBATCH = \"2\"\n");
    let (code, stderr) = f.release(&["etl"]);
    assert_eq!(code, Some(0), "{stderr}");

    let active = ecs
        .list_task_definitions()
        .family_prefix(daily)
        .status(aws_sdk_ecs::types::TaskDefinitionStatus::Active)
        .send()
        .await
        .expect("list");
    let mut revisions: Vec<&str> = active
        .task_definition_arns()
        .iter()
        .filter_map(|a| a.rsplit(':').next())
        .collect();
    revisions.sort_unstable();
    assert_eq!(revisions, ["2", "3", "5", "6"], "{stderr}");
}

/// `pre_deploy` of jobs: the migration runs first, launched as the first configured rule runs
/// the jobs (its launch type, network configuration and platform version), before any family
/// gets a revision.
#[tokio::test(flavor = "multi_thread")]
async fn a_migration_of_jobs_runs_first_launched_like_the_rule_runs_them() {
    let f = fixture().await;
    let migrate = unique("etl-migrate");
    register(&migrate).await;
    let ecs = ecs_double::client(&moto().url).await;
    let cluster = ecs_double::cluster(&ecs, "jobs").await;
    let text = std::fs::read_to_string(&f.config).expect("config").replace(
        "container = \"etl\"\n",
        &format!(
            "container = \"etl\"\ncluster = \"{cluster}\"\npre_deploy = {{ task_definition = \"{migrate}\", command = [\"./migrate\", \"up\"] }}\n"
        ),
    );
    std::fs::write(&f.config, text).expect("write config");
    let (code, stderr) = f.release(&["etl"]);
    assert_eq!(code, Some(0), "{stderr}");

    let requests = f.double.requests();
    let run = requests
        .iter()
        .position(|r| r.operation == "RunTask")
        .expect("a RunTask");
    let body = &requests[run].body;
    assert_eq!(body["launchType"], "FARGATE", "{body}");
    assert_eq!(body["platformVersion"], "1.4.0", "{body}");
    let vpc = &body["networkConfiguration"]["awsvpcConfiguration"];
    assert_eq!(
        vpc["subnets"],
        serde_json::json!(["subnet-0a1b2c"]),
        "{body}"
    );
    assert_eq!(
        vpc["securityGroups"],
        serde_json::json!(["sg-0d1e2f"]),
        "{body}"
    );
    assert_eq!(vpc["assignPublicIp"], "DISABLED", "{body}");
    let command = &body["overrides"]["containerOverrides"][0]["command"];
    assert_eq!(command, &serde_json::json!(["./migrate", "up"]));
    let families_registered = requests
        .iter()
        .position(|r| {
            r.operation == "RegisterTaskDefinition"
                && r.body["family"].as_str() == Some(f.families[0].as_str())
        })
        .expect("the family registered");
    assert!(run < families_registered, "the migration first");
}

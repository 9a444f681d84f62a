//! `codedeploy-blue-green` end to end: moto keeps the service, the task definitions and the
//! CodeDeploy application and group; the CodeDeploy double plays the deployment (and moves the
//! service in moto when it succeeds); the ECS double plays the service. Results are read back
//! through moto's ECS API, the doubles' request logs and the ledger.

use std::path::PathBuf;

use aws_sdk_codedeploy::types::{
    AutoRollbackConfiguration, AutoRollbackEvent, BlueGreenDeploymentConfiguration,
    ComputePlatform, DeploymentOption, DeploymentReadyAction, DeploymentReadyOption,
    DeploymentStyle, DeploymentType, EcsService, LoadBalancerInfo, TargetGroupInfo,
    TargetGroupPairInfo, TrafficRoute,
};
use aws_sdk_ecs::types::{
    ContainerDefinition, DeploymentController, DeploymentControllerType, LoadBalancer, PortMapping,
};
use deploy_tests::codedeploy_double::{CodeDeployDouble, Lifecycle};
use deploy_tests::ecs_double::{self, EcsDouble};
use deploy_tests::{REGION, answering, deploy, get_json, list_keys, moto, moto_config, unique};
use serde_json::Value;

pub(crate) struct Fixture {
    pub ecs: EcsDouble,
    pub codedeploy: CodeDeployDouble,
    pub config: PathBuf,
    pub bucket: String,
    pub cluster: String,
    pub application: String,
    pub first: String,
}

/// A service `api` under CodeDeploy's control (container `api`, port 8080 behind a target
/// group), its application and deployment group (blue/green, waiting before production
/// traffic, automatic rollback on failure), and a project rolling `api` out with it.
pub(crate) async fn fixture(rollout_extra: &str) -> Fixture {
    let ecs_double = EcsDouble::start(&moto().url);
    let codedeploy = CodeDeployDouble::start(&moto().url, REGION);
    let ecs = ecs_double::client(&moto().url).await;
    let cluster = ecs_double::cluster(&ecs, "bg").await;
    let first = codedeploy_service(&ecs, &cluster).await;
    let application = unique("api-bg");
    let test_listener = !rollout_extra.contains("no test listener");
    deployment_group(&application, &cluster, test_listener).await;

    let project = deploy_tests::image_project("bg").await;
    let config = project.dir.join("deploy.toml");
    let endpoints = format!(
        "{}, codedeploy = \"{}\"",
        ecs_double.endpoints(),
        codedeploy.url
    );
    let text = deploy_tests::dev_head(&project.bucket, &endpoints)
        + &format!(
            r#"[artifacts.api]
kind = "image"
repository = "{repo}"
source = "oci:./layout:latest"
[artifacts.api.rollout]
strategy = "codedeploy-blue-green"
cluster = "{cluster}"
service = "api"
container = "api"
application = "{application}"
deployment_group = "api"
{rollout_extra}
"#,
            repo = project.repo
        );
    std::fs::write(&config, text).expect("write config");
    Fixture {
        ecs: ecs_double,
        codedeploy,
        config,
        bucket: project.bucket,
        cluster,
        application,
        first,
    }
}

/// Registers the first revision of `api` and creates the service `api` in `cluster` under
/// CodeDeploy's control, behind the blue target group; the revision's ARN.
async fn codedeploy_service(ecs: &aws_sdk_ecs::Client, cluster: &str) -> String {
    let registered = ecs
        .register_task_definition()
        .family(unique("api"))
        .container_definitions(
            ContainerDefinition::builder()
                .name("api")
                .image("public.ecr.aws/old/api:1")
                .memory(256)
                .port_mappings(PortMapping::builder().container_port(8080).build())
                .build(),
        )
        .send()
        .await
        .expect("register");
    let first = registered
        .task_definition()
        .and_then(|t| t.task_definition_arn())
        .expect("arn")
        .to_owned();
    ecs.create_service()
        .cluster(cluster)
        .service_name("api")
        .task_definition(&first)
        .desired_count(2)
        .launch_type(aws_sdk_ecs::types::LaunchType::Fargate)
        .deployment_controller(
            DeploymentController::builder()
                .r#type(DeploymentControllerType::CodeDeploy)
                .build()
                .expect("controller"),
        )
        .load_balancers(
            LoadBalancer::builder()
                .target_group_arn(format!(
                    "arn:aws:elasticloadbalancing:{REGION}:123456789012:targetgroup/{cluster}-blue/1"
                ))
                .container_name("api")
                .container_port(8080)
                .build(),
        )
        .send()
        .await
        .expect("create service");
    first
}

fn listener(cluster: &str, name: &str) -> String {
    format!("arn:aws:elasticloadbalancing:{REGION}:123456789012:listener/app/{cluster}/1/{name}")
}

/// The group of `cluster`'s service `api`; with a test listener when `test_listener`.
async fn deployment_group(application: &str, cluster: &str, test_listener: bool) {
    let client = aws_sdk_codedeploy::Client::new(&moto_config(&moto().url).await);
    client
        .create_application()
        .application_name(application)
        .compute_platform(ComputePlatform::Ecs)
        .send()
        .await
        .expect("create application");
    client
        .create_deployment_group()
        .application_name(application)
        .deployment_group_name("api")
        .service_role_arn("arn:aws:iam::123456789012:role/codedeploy")
        .deployment_style(
            DeploymentStyle::builder()
                .deployment_type(DeploymentType::BlueGreen)
                .deployment_option(DeploymentOption::WithTrafficControl)
                .build(),
        )
        .blue_green_deployment_configuration(
            BlueGreenDeploymentConfiguration::builder()
                .deployment_ready_option(
                    DeploymentReadyOption::builder()
                        .action_on_timeout(DeploymentReadyAction::StopDeployment)
                        .wait_time_in_minutes(10)
                        .build(),
                )
                .build(),
        )
        .auto_rollback_configuration(
            AutoRollbackConfiguration::builder()
                .enabled(true)
                .events(AutoRollbackEvent::DeploymentFailure)
                .events(AutoRollbackEvent::DeploymentStopOnRequest)
                .build(),
        )
        .ecs_services(
            EcsService::builder()
                .cluster_name(cluster)
                .service_name("api")
                .build(),
        )
        .load_balancer_info(
            LoadBalancerInfo::builder()
                .target_group_pair_info_list(
                    TargetGroupPairInfo::builder()
                        .target_groups(
                            TargetGroupInfo::builder()
                                .name(format!("{cluster}-blue"))
                                .build(),
                        )
                        .target_groups(
                            TargetGroupInfo::builder()
                                .name(format!("{cluster}-green"))
                                .build(),
                        )
                        .prod_traffic_route(
                            TrafficRoute::builder()
                                .listener_arns(listener(cluster, "prod"))
                                .build(),
                        )
                        .set_test_traffic_route(test_listener.then(|| {
                            TrafficRoute::builder()
                                .listener_arns(listener(cluster, "test"))
                                .build()
                        }))
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .expect("create deployment group");
}

impl Fixture {
    pub(crate) fn release(&self) -> (Option<i32>, String) {
        let out = deploy(&moto().url)
            .arg("--config")
            .arg(&self.config)
            .args(["release", "dev", "api", "--version", "v1"])
            .output()
            .expect("run deploy");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    pub(crate) async fn running(&self) -> String {
        let ecs = ecs_double::client(&moto().url).await;
        let out = ecs
            .describe_services()
            .cluster(&self.cluster)
            .services("api")
            .send()
            .await
            .expect("describe");
        out.services()[0].task_definition().expect("td").to_owned()
    }

    async fn outcome(&self) -> String {
        let keys = list_keys(
            &moto().url,
            &self.bucket,
            "deploy/t/dev/artifacts/api/releases/",
        )
        .await;
        let record = get_json(&moto().url, &self.bucket, &keys[0]).await;
        record["outcome"]["result"]
            .as_str()
            .unwrap_or("?")
            .to_owned()
    }

    pub(crate) fn script(&self, lifecycle: Lifecycle) {
        self.codedeploy.script(&self.application, "api", lifecycle);
    }

    fn appspec(&self) -> Value {
        let created = self.codedeploy.requests_of("CreateDeployment");
        assert_eq!(created.len(), 1, "one deployment");
        let content = created[0].body["revision"]["appSpecContent"]["content"]
            .as_str()
            .expect("appSpecContent")
            .to_owned();
        serde_json::from_str(&content).expect("AppSpec JSON")
    }
}

fn health(url: &str) -> String {
    format!(
        "health_check = {{ url = \"{url}\", test_url = \"{url}\", expect_status = 200, timeout = \"2s\" }}"
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deployment_passes_the_test_gate_and_the_service_runs_the_digest() {
    let hook = "lifecycle_hooks = [{ function = \"arn:aws:lambda:eu-west-1:123456789012:function:smoke\", stages = [\"AfterAllowTestTraffic\"] }]";
    deploy_tests::lambda_function(&moto().url, "smoke").await;
    let f = fixture(&format!("{}\n{hook}", health(&answering(200)))).await;
    let (code, stderr) = f.release();
    assert_eq!(code, Some(0), "{stderr}");
    let running = f.running().await;
    assert_ne!(running, f.first, "{stderr}");
    let appspec = f.appspec();
    let properties = &appspec["Resources"][0]["TargetService"]["Properties"];
    assert_eq!(properties["TaskDefinition"], running.as_str());
    assert_eq!(properties["LoadBalancerInfo"]["ContainerName"], "api");
    assert_eq!(properties["LoadBalancerInfo"]["ContainerPort"], 8080);
    assert_eq!(
        appspec["Hooks"][0]["AfterAllowTestTraffic"],
        "arn:aws:lambda:eu-west-1:123456789012:function:smoke"
    );
    let ecs = ecs_double::client(&moto().url).await;
    let new = ecs
        .describe_task_definition()
        .task_definition(&running)
        .send()
        .await
        .expect("describe");
    let image = new.task_definition().expect("td").container_definitions()[0]
        .image()
        .expect("image")
        .to_owned();
    assert!(image.contains("@sha256:"), "{image}");
    assert_eq!(f.codedeploy.requests_of("ContinueDeployment").len(), 1);
    assert!(f.codedeploy.requests_of("StopDeployment").is_empty());
    assert!(
        f.ecs.requests_of("UpdateService").is_empty(),
        "CodeDeploy moves the service"
    );
    assert_eq!(f.outcome().await, "succeeded");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_hook_is_rolled_back_by_the_group() {
    let f = fixture("").await;
    f.script(Lifecycle::FailHook("AfterAllowTestTraffic"));
    let (code, stderr) = f.release();
    assert_eq!(code, Some(3), "{stderr}");
    assert!(stderr.contains("HOOK_EXECUTION_FAILURE"), "{stderr}");
    assert!(stderr.contains("rollback deployment"), "{stderr}");
    assert_eq!(f.running().await, f.first);
    assert_eq!(f.outcome().await, "rolled-back");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_test_listener_stops_the_deployment_with_rollback() {
    let f = fixture(&health(&answering(500))).await;
    let (code, stderr) = f.release();
    assert_eq!(code, Some(3), "{stderr}");
    let stops = f.codedeploy.requests_of("StopDeployment");
    assert_eq!(stops.len(), 1, "{stderr}");
    assert_eq!(stops[0].body["autoRollbackEnabled"], true);
    assert!(f.codedeploy.requests_of("ContinueDeployment").is_empty());
    assert_eq!(f.running().await, f.first);
    assert_eq!(f.outcome().await, "rolled-back");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deployment_that_never_finishes_is_stopped_and_rolled_back() {
    let f = fixture("timeout = \"1s\"").await;
    f.script(Lifecycle::Stuck);
    let (code, stderr) = f.release();
    assert_eq!(code, Some(3), "{stderr}");
    assert!(stderr.contains("did not finish within 1s"), "{stderr}");
    assert_eq!(f.codedeploy.requests_of("StopDeployment").len(), 1);
    assert_eq!(f.running().await, f.first);
    assert_eq!(f.outcome().await, "rolled-back");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_container_port_is_refused_before_any_change() {
    let f = fixture("container_port = 8081").await;
    let (code, stderr) = f.release();
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("`container_port` is 8081"), "{stderr}");
    assert!(stderr.contains("maps 8080"), "{stderr}");
    assert!(f.codedeploy.requests_of("CreateDeployment").is_empty());
    assert!(f.ecs.requests_of("RegisterTaskDefinition").is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deployment_already_in_progress_is_named() {
    let f = fixture("timeout = \"1s\"").await;
    f.script(Lifecycle::Stuck);
    let (code, _) = f.release();
    assert_eq!(code, Some(3), "the first one is stuck and rolled back");
    f.script(Lifecycle::Stuck);
    let client = {
        let config = aws_sdk_codedeploy::config::Builder::from(&moto_config(&moto().url).await)
            .endpoint_url(&f.codedeploy.url)
            .build();
        aws_sdk_codedeploy::Client::from_conf(config)
    };
    let appspec = f.codedeploy.requests_of("CreateDeployment")[0].body["revision"].clone();
    let content = appspec["appSpecContent"]["content"]
        .as_str()
        .expect("content");
    let busy = client
        .create_deployment()
        .application_name(&f.application)
        .deployment_group_name("api")
        .revision(
            aws_sdk_codedeploy::types::RevisionLocation::builder()
                .revision_type(aws_sdk_codedeploy::types::RevisionLocationType::AppSpecContent)
                .app_spec_content(
                    aws_sdk_codedeploy::types::AppSpecContent::builder()
                        .content(content)
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .expect("someone else's deployment");
    let id = busy.deployment_id().expect("id").to_owned();
    let text =
        std::fs::read_to_string(&f.config).expect("config") + "[artifacts.api.env]\nNEXT = \"1\"\n";
    std::fs::write(&f.config, text).expect("write config");
    let (code, stderr) = f.release();
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("already has deployment {id} in progress")),
        "{stderr}"
    );
    assert_eq!(
        f.codedeploy.requests_of("CreateDeployment").len(),
        2,
        "none of ours"
    );
}

/// A failing production health check after a successful deployment: the undo deploys the
/// previous revision again, blue/green.
#[tokio::test(flavor = "multi_thread")]
async fn a_failing_health_check_after_the_shift_deploys_the_previous_revision_again() {
    let url = answering(500);
    let f = fixture(&format!(
        "health_check = {{ url = \"{url}\", expect_status = 200, timeout = \"1s\" }}"
    ))
    .await;
    let (code, stderr) = f.release();
    assert_eq!(code, Some(3), "{stderr}");
    let created = f.codedeploy.requests_of("CreateDeployment");
    assert_eq!(created.len(), 2, "the release, then the undo: {stderr}");
    let content = created[1].body["revision"]["appSpecContent"]["content"]
        .as_str()
        .expect("content");
    let appspec: Value = serde_json::from_str(content).expect("json");
    assert_eq!(
        appspec["Resources"][0]["TargetService"]["Properties"]["TaskDefinition"],
        f.first.as_str()
    );
    assert_eq!(f.running().await, f.first);
    assert_eq!(f.outcome().await, "rolled-back");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_test_url_without_a_test_listener_is_refused_before_any_change() {
    let f = fixture(&format!("# no test listener\n{}", health(&answering(200)))).await;
    let (code, stderr) = f.release();
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("has no test listener"), "{stderr}");
    assert!(f.codedeploy.requests_of("CreateDeployment").is_empty());
    assert!(f.ecs.requests_of("RegisterTaskDefinition").is_empty());
}

/// `keep_revisions` cleans up after a blue/green deployment as after a rolling one: of three
/// unused revisions registered before, those beyond the newest `keep_revisions` and the one the
/// service ran before (the undo's target) are deregistered.
#[tokio::test(flavor = "multi_thread")]
async fn old_revisions_beyond_keep_revisions_are_deregistered() {
    let f = fixture("keep_revisions = 1").await;
    let ecs = ecs_double::client(&moto().url).await;
    let first = ecs
        .describe_task_definition()
        .task_definition(&f.first)
        .send()
        .await
        .expect("describe")
        .task_definition
        .expect("task definition");
    let family = first.family().expect("family").to_owned();
    for _ in 0..3 {
        ecs.register_task_definition()
            .family(&family)
            .set_container_definitions(Some(first.container_definitions().to_vec()))
            .send()
            .await
            .expect("register an unused revision");
    }
    let (code, stderr) = f.release();
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("deregistered 2 old revisions"), "{stderr}");
    let active = ecs
        .list_task_definitions()
        .family_prefix(&family)
        .status(aws_sdk_ecs::types::TaskDefinitionStatus::Active)
        .send()
        .await
        .expect("list");
    let mut revisions: Vec<String> = active
        .task_definition_arns()
        .iter()
        .filter_map(|arn| arn.rsplit(':').next().map(str::to_owned))
        .collect();
    revisions.sort();
    assert_eq!(
        revisions,
        ["1", "4", "5"],
        "new, the one before, the previous"
    );
}

/// A rollback is a CodeDeploy deployment of the revision the earlier release recorded, through
/// the test-listener gate like a release: a failing test URL keeps the live release running.
#[tokio::test(flavor = "multi_thread")]
async fn a_rollback_deploys_the_recorded_revision_through_the_test_gate() {
    let ok = answering(200);
    let f = fixture(&health(&ok)).await;
    let run = |args: &[&str]| {
        let out = deploy(&moto().url)
            .arg("--config")
            .arg(&f.config)
            .args(args)
            .output()
            .expect("run deploy");
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        (out.status.code(), stderr)
    };
    assert_eq!(
        run(&["release", "dev", "api", "--version", "v1"]).0,
        Some(0)
    );
    let v1 = f.running().await;
    let layout = f.config.parent().expect("dir").join("layout");
    deploy_tests::layouts::tiny_layout(&layout, b"another build");
    assert_eq!(
        run(&["release", "dev", "api", "--version", "v2"]).0,
        Some(0)
    );
    let v2 = f.running().await;
    assert_ne!(v2, v1);

    let text = std::fs::read_to_string(&f.config).expect("config");
    let failing = text.replace(
        &format!("test_url = \"{ok}\""),
        &format!("test_url = \"{}\"", answering(503)),
    );
    std::fs::write(&f.config, &failing).expect("write config");
    let (code, stderr) = run(&["rollback", "dev", "api"]);
    assert_eq!(code, Some(3), "the test gate stops it: {stderr}");
    assert_eq!(f.running().await, v2, "the live release still runs");

    std::fs::write(&f.config, &text).expect("write config");
    let (code, stderr) = run(&["rollback", "dev", "api"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(f.running().await, v1, "the recorded revision runs");
    let created = f.codedeploy.requests_of("CreateDeployment");
    let content =
        created.last().expect("a deployment").body["revision"]["appSpecContent"]["content"]
            .as_str()
            .expect("appSpecContent");
    let appspec: Value = serde_json::from_str(content).expect("AppSpec JSON");
    let properties = &appspec["Resources"][0]["TargetService"]["Properties"];
    assert_eq!(properties["TaskDefinition"], v1.as_str());
}

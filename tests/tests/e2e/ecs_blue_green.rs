//! `ecs-blue-green` end to end: ECS's own BLUE_GREEN and CANARY deployments, played by the ECS
//! double in front of moto (moto knows no service deployments). The `deploymentConfiguration`
//! sent is read from the double's log, the service's task definition from moto.

use std::path::PathBuf;

use aws_sdk_ecs::types::{AdvancedConfiguration, ContainerDefinition, LoadBalancer, PortMapping};
use deploy_tests::ecs_double::{self, EcsDouble, Script};
use deploy_tests::{REGION, answering, deploy, get_json, list_keys, moto, unique};
use serde_json::Value;

struct Fixture {
    double: EcsDouble,
    config: PathBuf,
    bucket: String,
    cluster: String,
    first: String,
}

async fn fixture(rollout_extra: &str) -> Fixture {
    let double = EcsDouble::start(&moto().url);
    let ecs = ecs_double::client(&moto().url).await;
    let cluster = ecs_double::cluster(&ecs, "ebg").await;
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
    let elb = format!("arn:aws:elasticloadbalancing:{REGION}:123456789012");
    ecs.create_service()
        .cluster(&cluster)
        .service_name("api")
        .task_definition(&first)
        .desired_count(2)
        .launch_type(aws_sdk_ecs::types::LaunchType::Fargate)
        .load_balancers(
            LoadBalancer::builder()
                .target_group_arn(format!("{elb}:targetgroup/{cluster}-blue/1"))
                .container_name("api")
                .container_port(8080)
                .advanced_configuration(
                    AdvancedConfiguration::builder()
                        .alternate_target_group_arn(format!("{elb}:targetgroup/{cluster}-green/2"))
                        .production_listener_rule(format!("{elb}:listener-rule/app/lb/1/2/3"))
                        .role_arn("arn:aws:iam::123456789012:role/ecs-infrastructure")
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .expect("create service");
    let project = deploy_tests::image_project("ebg").await;
    let config = project.dir.join("deploy.toml");
    let text = deploy_tests::dev_head(&project.bucket, &double.endpoints())
        + &format!(
            "[artifacts.api]\nkind = \"image\"\nrepository = \"{}\"\nsource = \"oci:./layout:latest\"\n\
             [artifacts.api.rollout]\nstrategy = \"ecs-blue-green\"\ncluster = \"{cluster}\"\nservice = \"api\"\ncontainer = \"api\"\n{rollout_extra}\n",
            project.repo
        );
    std::fs::write(&config, text).expect("write config");
    Fixture {
        double,
        config,
        bucket: project.bucket,
        cluster,
        first,
    }
}

impl Fixture {
    fn release(&self) -> (Option<i32>, String) {
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

    async fn running(&self) -> String {
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
        let prefix = "deploy/t/dev/artifacts/api/releases/";
        let keys = list_keys(&moto().url, &self.bucket, prefix).await;
        let record = get_json(&moto().url, &self.bucket, &keys[0]).await;
        record["outcome"]["result"]
            .as_str()
            .unwrap_or("?")
            .to_owned()
    }

    fn sent(&self) -> Value {
        let updates = self.double.requests_of("UpdateService");
        assert_eq!(updates.len(), 1, "{updates:?}");
        updates[0].body["deploymentConfiguration"].clone()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn blue_green_is_followed_to_the_end() {
    let f = fixture("bake = \"1m\"").await;
    let (code, stderr) = f.release();
    assert_eq!(code, Some(0), "{stderr}");
    let sent = f.sent();
    assert_eq!(sent["strategy"], "BLUE_GREEN");
    assert_eq!(sent["bakeTimeInMinutes"], 1);
    assert_eq!(sent["deploymentCircuitBreaker"]["rollback"], true);
    assert!(
        stderr.contains("BAKE_TIME") && stderr.contains("CLEAN_UP"),
        "{stderr}"
    );
    assert_ne!(f.running().await, f.first);
    assert!(f.double.requests_of("StopServiceDeployment").is_empty());
    assert_eq!(f.outcome().await, "succeeded");
}

#[tokio::test(flavor = "multi_thread")]
async fn canary_sends_its_percentage_and_bake() {
    deploy_tests::lambda_function(&moto().url, "smoke").await;
    let f = fixture(
        "ecs_strategy = \"CANARY\"\ncanary = { percent = 10, bake = \"2m\" }\nlifecycle_hooks = [{ function = \"arn:aws:lambda:eu-west-1:123456789012:function:smoke\", stages = [\"POST_TEST_TRAFFIC_SHIFT\"], role = \"arn:aws:iam::123456789012:role/ecs-hooks\" }]",
    )
    .await;
    let (code, stderr) = f.release();
    assert_eq!(code, Some(0), "{stderr}");
    let sent = f.sent();
    assert_eq!(sent["strategy"], "CANARY");
    assert_eq!(sent["canaryConfiguration"]["canaryPercent"], 10.0);
    assert_eq!(sent["canaryConfiguration"]["canaryBakeTimeInMinutes"], 2);
    let hook = &sent["lifecycleHooks"][0];
    assert_eq!(hook["lifecycleStages"][0], "POST_TEST_TRAFFIC_SHIFT");
    assert!(
        hook["hookTargetArn"]
            .as_str()
            .is_some_and(|a| a.ends_with(":smoke"))
    );
    assert_eq!(f.outcome().await, "succeeded");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_health_gate_stops_the_deployment_with_rollback() {
    let url = answering(500);
    let f = fixture(&format!(
        "health_check = {{ url = \"{url}\", expect_status = 200, timeout = \"1s\" }}"
    ))
    .await;
    let (code, stderr) = f.release();
    assert_eq!(code, Some(3), "{stderr}");
    let stops = f.double.requests_of("StopServiceDeployment");
    assert_eq!(stops.len(), 1, "{stderr}");
    assert_eq!(stops[0].body["stopType"], "ROLLBACK");
    assert_eq!(f.running().await, f.first, "back on the first revision");
    assert_eq!(f.outcome().await, "rolled-back");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rollback_by_ecs_itself_is_never_a_success() {
    let f = fixture("").await;
    f.double.script_service(
        &f.cluster,
        "api",
        Script::FailAndRollBack { after_polls: 1 },
    );
    let (code, stderr) = f.release();
    assert_eq!(code, Some(3), "{stderr}");
    assert!(stderr.contains("was rolled back by ECS"), "{stderr}");
    assert!(f.double.requests_of("StopServiceDeployment").is_empty());
    assert_eq!(f.running().await, f.first);
    assert_eq!(f.outcome().await, "rolled-back");
}

/// A rollback deploys the recorded revision with ECS's own all-at-once BLUE_GREEN, whatever the
/// configured shift; `--gradual` uses the configured canary.
#[tokio::test(flavor = "multi_thread")]
async fn a_rollback_is_all_at_once_unless_gradual() {
    let f = fixture("ecs_strategy = \"CANARY\"\ncanary = { percent = 10, bake = \"2m\" }").await;
    let run = |args: &[&str]| {
        let out = deploy(&moto().url)
            .arg("--config")
            .arg(&f.config)
            .args(args)
            .output()
            .expect("run deploy");
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
    };
    run(&["release", "dev", "api", "--version", "v1"]);
    let v1 = f.running().await;
    let layout = f.config.parent().expect("dir").join("layout");
    deploy_tests::layouts::tiny_layout(&layout, b"another build");
    run(&["release", "dev", "api", "--version", "v2"]);
    let v2 = f.running().await;
    assert_ne!(v1, v2);

    run(&["rollback", "dev", "api"]);
    assert_eq!(f.running().await, v1, "the recorded revision");
    let strategies = || -> Vec<Value> {
        let updates = f.double.requests_of("UpdateService");
        let sent = updates
            .iter()
            .map(|u| u.body["deploymentConfiguration"]["strategy"].clone());
        sent.collect()
    };
    assert_eq!(strategies(), ["CANARY", "CANARY", "BLUE_GREEN"]);
    run(&["rollback", "dev", "api", "--gradual"]);
    assert_eq!(f.running().await, v2);
    assert_eq!(strategies()[3], "CANARY");
}

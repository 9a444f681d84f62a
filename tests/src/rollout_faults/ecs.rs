//! A service `api` on revision 1 of a task definition, rolled out to the example image by one
//! of the ECS strategies, with ECS (the scripted double), CodeDeploy (its double) and the
//! state bucket each behind a fault proxy ([`S3Proxy`]); what runs is read back through
//! moto's ECS API.

use std::path::PathBuf;
use std::process::Output;

use aws_sdk_codedeploy::types::{
    AutoRollbackConfiguration, AutoRollbackEvent, BlueGreenDeploymentConfiguration,
    ComputePlatform, DeploymentOption, DeploymentReadyAction, DeploymentReadyOption,
    DeploymentStyle, DeploymentType, EcsService, LoadBalancerInfo, TargetGroupInfo,
    TargetGroupPairInfo, TrafficRoute,
};
use aws_sdk_ecs::types::{
    AdvancedConfiguration, ContainerDefinition, DeploymentController, DeploymentControllerType,
    LaunchType, LoadBalancer, PortMapping,
};

use super::{Ledger, Running, check_run, exit};
use crate::codedeploy_double::CodeDeployDouble;
use crate::ecs_double::{self, EcsDouble};
use crate::s3_proxy::S3Proxy;
use crate::{REGION, deploy, moto, moto_config, oci_registry, unique};

/// The strategy a fixture rolls out with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `ecs-rolling`.
    Rolling,
    /// `codedeploy-blue-green`.
    CodeDeploy,
    /// `ecs-blue-green` (ECS's own `BLUE_GREEN`).
    BlueGreen,
}

/// The service, the doubles, the proxies and the project.
#[derive(Debug)]
pub struct Fixture {
    /// The strategy.
    pub kind: Kind,
    /// The ECS double (behind [`Fixture::ecs`]).
    pub double: EcsDouble,
    /// The CodeDeploy double, for [`Kind::CodeDeploy`].
    pub codedeploy: Option<CodeDeployDouble>,
    /// The proxy deploy's ECS calls go through.
    pub ecs: S3Proxy,
    /// The proxy deploy's CodeDeploy calls go through.
    pub codedeploy_proxy: S3Proxy,
    /// The proxy deploy's S3 calls (the state bucket) go through.
    pub s3: S3Proxy,
    /// The artifact's ledger.
    pub ledger: Ledger,
    /// `deploy.toml`.
    pub config: PathBuf,
    /// The cluster.
    pub cluster: String,
    /// The task definition the service ran before.
    pub first: String,
    /// The ECR repository (its path in the local registry).
    pub repo: String,
}

const ELB: &str = "arn:aws:elasticloadbalancing:eu-west-1:123456789012";

impl Fixture {
    /// Sets up the service and the project for `kind`.
    pub async fn new(kind: Kind) -> Fixture {
        let url = moto().url.clone();
        let double = EcsDouble::start(&url);
        let ecs = ecs_double::client(&url).await;
        let cluster = ecs_double::cluster(&ecs, "faults").await;
        let first = register(&ecs).await;
        create_service(&ecs, kind, &cluster, &first).await;
        let project = crate::image_project("faults").await;
        let (ecs_proxy, s3) = (S3Proxy::start(&double.url), S3Proxy::start(&url));
        let codedeploy = (kind == Kind::CodeDeploy).then(|| CodeDeployDouble::start(&url, REGION));
        let codedeploy_proxy = S3Proxy::start(codedeploy.as_ref().map_or(&url, |d| &d.url));
        let application = unique("api-bg");
        if kind == Kind::CodeDeploy {
            deployment_group(&application, &cluster).await;
        }
        let endpoints = format!(
            "registry = \"http://{}\", ecs = \"{}\", codedeploy = \"{}\", s3 = \"{}\"",
            oci_registry().host,
            ecs_proxy.url,
            codedeploy_proxy.url,
            s3.url
        );
        let config = project.dir.join("deploy.toml");
        let text = crate::dev_head(&project.bucket, &endpoints)
            + &format!(
                "[artifacts.api]\nkind = \"image\"\nrepository = \"{}\"\nsource = \"oci:./layout:latest\"\n\
                 [artifacts.api.rollout]\ncluster = \"{cluster}\"\nservice = \"api\"\ncontainer = \"api\"\n{}\n",
                project.repo,
                strategy(kind, &application)
            );
        std::fs::write(&config, text).expect("write config");
        Fixture {
            kind,
            double,
            codedeploy,
            ecs: ecs_proxy,
            codedeploy_proxy,
            s3,
            ledger: Ledger::new(&project.bucket, "api"),
            config,
            cluster,
            first,
            repo: project.repo,
        }
    }

    /// The proxies of the services the rollout calls: ECS, and CodeDeploy for
    /// [`Kind::CodeDeploy`].
    pub fn service_proxies(&self) -> Vec<&S3Proxy> {
        match self.kind {
            Kind::CodeDeploy => vec![&self.ecs, &self.codedeploy_proxy],
            Kind::Rolling | Kind::BlueGreen => vec![&self.ecs],
        }
    }

    /// `deploy release dev api --version v1`.
    pub fn release(&self) -> Output {
        deploy(&moto().url)
            .arg("--config")
            .arg(&self.config)
            .args(["release", "dev", "api", "--version", "v1"])
            .output()
            .expect("run deploy")
    }

    /// What the service runs, read through moto's ECS API: the first revision, a revision
    /// whose `api` image is the digest `live.json` names, or something else.
    pub async fn running(&self) -> Running {
        let ecs = ecs_double::client(&moto().url).await;
        let out = ecs
            .describe_services()
            .cluster(&self.cluster)
            .services("api")
            .send()
            .await
            .expect("describe service");
        let running = out.services()[0]
            .task_definition()
            .unwrap_or_default()
            .to_owned();
        if running == self.first {
            return Running::Previous;
        }
        let described = ecs
            .describe_task_definition()
            .task_definition(&running)
            .send()
            .await
            .expect("describe task definition");
        let image = described
            .task_definition()
            .and_then(|t| t.container_definitions().first())
            .and_then(|c| c.image())
            .unwrap_or_default()
            .to_owned();
        let live = self.ledger.live().await.unwrap_or_default();
        let digest = live["artifact_ref"]["digest"].as_str().unwrap_or("none");
        let expected = format!("{}/{}@{digest}", oci_registry().host, self.repo);
        if image == expected {
            Running::New
        } else {
            Running::Other(format!("{running} with {image}; live.json names {digest}"))
        }
    }

    /// The checks of a run, then a clean rerun that must converge on the new image.
    pub async fn check_and_converge(&self, out: &Output, label: &str) -> i32 {
        let code = check_run(&self.ledger, out, &self.running().await, label).await;
        for proxy in [&self.ecs, &self.codedeploy_proxy, &self.s3] {
            proxy.calm();
        }
        let again = self.release();
        let (rerun, text) = exit(&again);
        assert_eq!(rerun, 0, "{label}: the clean rerun\n{text}");
        let running = self.running().await;
        assert_eq!(running, Running::New, "{label}: after the rerun\n{text}");
        code
    }
}

/// The operation of each request a proxy passed, in order (`X-Amz-Target`'s last part).
pub fn operations(proxy: &S3Proxy) -> Vec<String> {
    proxy
        .seen()
        .into_iter()
        .map(|s| {
            let target = s.target.unwrap_or(s.path);
            target.rsplit('.').next().unwrap_or_default().to_owned()
        })
        .collect()
}

fn strategy(kind: Kind, application: &str) -> String {
    match kind {
        Kind::Rolling => "strategy = \"ecs-rolling\"\ntimeout = \"20s\"".to_owned(),
        Kind::CodeDeploy => format!(
            "strategy = \"codedeploy-blue-green\"\napplication = \"{application}\"\ndeployment_group = \"api\"\ntimeout = \"20s\""
        ),
        Kind::BlueGreen => "strategy = \"ecs-blue-green\"\ntimeout = \"20s\"".to_owned(),
    }
}

/// Revision 1 of a new family: container `api` on port 8080; its ARN.
async fn register(ecs: &aws_sdk_ecs::Client) -> String {
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
        .expect("register task definition");
    registered
        .task_definition()
        .and_then(|t| t.task_definition_arn())
        .expect("a task definition ARN")
        .to_owned()
}

/// Service `api` on `first`, two Fargate tasks behind a target group; under CodeDeploy's
/// control for [`Kind::CodeDeploy`], with ECS's blue/green settings for [`Kind::BlueGreen`].
async fn create_service(ecs: &aws_sdk_ecs::Client, kind: Kind, cluster: &str, first: &str) {
    let mut balancer = LoadBalancer::builder()
        .target_group_arn(format!("{ELB}:targetgroup/{cluster}-blue/1"))
        .container_name("api")
        .container_port(8080);
    if kind == Kind::BlueGreen {
        balancer = balancer.advanced_configuration(
            AdvancedConfiguration::builder()
                .alternate_target_group_arn(format!("{ELB}:targetgroup/{cluster}-green/2"))
                .production_listener_rule(format!("{ELB}:listener-rule/app/lb/1/2/3"))
                .role_arn("arn:aws:iam::123456789012:role/ecs-infrastructure")
                .build(),
        );
    }
    let mut create = ecs
        .create_service()
        .cluster(cluster)
        .service_name("api")
        .task_definition(first)
        .desired_count(2)
        .launch_type(LaunchType::Fargate)
        .load_balancers(balancer.build());
    if kind == Kind::CodeDeploy {
        let controller = DeploymentController::builder()
            .r#type(DeploymentControllerType::CodeDeploy)
            .build()
            .expect("controller");
        create = create.deployment_controller(controller);
    }
    create.send().await.expect("create service");
}

/// The application and its group `api` for `cluster`'s service `api`: blue/green, waiting
/// before production traffic, automatic rollback on failure and on a stop.
async fn deployment_group(application: &str, cluster: &str) {
    let client = aws_sdk_codedeploy::Client::new(&moto_config(&moto().url).await);
    client
        .create_application()
        .application_name(application)
        .compute_platform(ComputePlatform::Ecs)
        .send()
        .await
        .expect("create application");
    let route = |name: &str| {
        TrafficRoute::builder()
            .listener_arns(format!("{ELB}:listener/app/{cluster}/1/{name}"))
            .build()
    };
    let target_group = |colour: &str| {
        TargetGroupInfo::builder()
            .name(format!("{cluster}-{colour}"))
            .build()
    };
    let pair = TargetGroupPairInfo::builder()
        .target_groups(target_group("blue"))
        .target_groups(target_group("green"))
        .prod_traffic_route(route("prod"))
        .test_traffic_route(route("test"))
        .build();
    let ready = DeploymentReadyOption::builder()
        .action_on_timeout(DeploymentReadyAction::StopDeployment)
        .wait_time_in_minutes(10)
        .build();
    let rollback = AutoRollbackConfiguration::builder()
        .enabled(true)
        .events(AutoRollbackEvent::DeploymentFailure)
        .events(AutoRollbackEvent::DeploymentStopOnRequest)
        .build();
    let style = DeploymentStyle::builder()
        .deployment_type(DeploymentType::BlueGreen)
        .deployment_option(DeploymentOption::WithTrafficControl)
        .build();
    client
        .create_deployment_group()
        .application_name(application)
        .deployment_group_name("api")
        .service_role_arn("arn:aws:iam::123456789012:role/codedeploy")
        .deployment_style(style)
        .blue_green_deployment_configuration(
            BlueGreenDeploymentConfiguration::builder()
                .deployment_ready_option(ready)
                .build(),
        )
        .auto_rollback_configuration(rollback)
        .ecs_services(
            EcsService::builder()
                .cluster_name(cluster)
                .service_name("api")
                .build(),
        )
        .load_balancer_info(
            LoadBalancerInfo::builder()
                .target_group_pair_info_list(pair)
                .build(),
        )
        .send()
        .await
        .expect("create deployment group");
}

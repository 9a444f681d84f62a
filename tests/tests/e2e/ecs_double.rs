//! The scripted ECS double, driven with the real `aws-sdk-ecs` client: deployments that
//! complete, fail and roll back, stay stuck; one-off tasks that exit; moto kept in step; the
//! request log. What moto holds is read back from moto directly, not through the double.

use aws_sdk_ecs::Client;
use aws_sdk_ecs::types::{
    ContainerDefinition, ContainerOverride, Deployment, DeploymentCircuitBreaker,
    DeploymentConfiguration, DeploymentRolloutState, LaunchType, Service, TaskOverride,
};
use deploy_tests::ecs_double::{self, EcsDouble, ROLLBACK_POLLS, Script, TaskScript};
use deploy_tests::{moto, unique};

/// A cluster with a service on revision 1 of a family that has two revisions.
struct Fixture {
    double: EcsDouble,
    ecs: Client,
    cluster: String,
    service: String,
    family: String,
    revisions: [String; 2],
}

async fn fixture() -> Fixture {
    let double = EcsDouble::start(&moto().url);
    let ecs = ecs_double::client(&double.url).await;
    let cluster = ecs_double::cluster(&ecs, "double").await;
    let family = unique("web");
    let mut revisions = Vec::new();
    for image in ["web:1", "web:2"] {
        let container = ContainerDefinition::builder()
            .name("web")
            .image(image)
            .memory(128)
            .essential(true)
            .build();
        let out = ecs
            .register_task_definition()
            .family(&family)
            .container_definitions(container)
            .send()
            .await
            .expect("register task definition");
        let arn = out.task_definition().and_then(|t| t.task_definition_arn());
        revisions.push(arn.expect("a task definition ARN").to_owned());
    }
    let service = unique("svc");
    ecs.create_service()
        .cluster(&cluster)
        .service_name(&service)
        .task_definition(&revisions[0])
        .desired_count(2)
        .send()
        .await
        .expect("create service");
    let revisions = [revisions[0].clone(), revisions[1].clone()];
    Fixture {
        double,
        ecs,
        cluster,
        service,
        family,
        revisions,
    }
}

fn breaker(enable: bool, rollback: bool) -> DeploymentConfiguration {
    DeploymentConfiguration::builder()
        .deployment_circuit_breaker(
            DeploymentCircuitBreaker::builder()
                .enable(enable)
                .rollback(rollback)
                .build(),
        )
        .minimum_healthy_percent(100)
        .maximum_percent(200)
        .build()
}

impl Fixture {
    async fn update(&self, revision: usize, config: Option<DeploymentConfiguration>) -> Service {
        let out = self
            .ecs
            .update_service()
            .cluster(&self.cluster)
            .service(&self.service)
            .task_definition(&self.revisions[revision])
            .set_deployment_configuration(config)
            .send()
            .await
            .expect("update service");
        out.service().cloned().expect("the updated service")
    }

    /// One DescribeServices through `client` (the double's, or moto's own).
    async fn describe_with(&self, client: &Client) -> Service {
        let out = client
            .describe_services()
            .cluster(&self.cluster)
            .services(&self.service)
            .send()
            .await
            .expect("describe services");
        out.services().first().cloned().expect("the service")
    }

    async fn poll(&self) -> Service {
        self.describe_with(&self.ecs).await
    }

    /// The service as moto itself holds it.
    async fn in_moto(&self) -> Service {
        self.describe_with(&ecs_double::client(&moto().url).await)
            .await
    }
}

fn primary(service: &Service) -> &Deployment {
    let primary = service.deployments().first().expect("a deployment");
    assert_eq!(primary.status(), Some("PRIMARY"));
    primary
}

fn rollout(deployment: &Deployment) -> DeploymentRolloutState {
    deployment
        .rollout_state()
        .cloned()
        .expect("a rollout state")
}

fn events(service: &Service) -> Vec<&str> {
    service
        .events()
        .iter()
        .filter_map(|e| e.message())
        .collect()
}

#[tokio::test]
async fn a_scripted_deployment_completes_after_its_polls() {
    let f = fixture().await;
    let before = f.poll().await;
    assert_eq!(rollout(primary(&before)), DeploymentRolloutState::Completed);
    assert_eq!(
        before.running_count(),
        2,
        "a created service runs its tasks"
    );
    f.double
        .script_service(&f.cluster, &f.service, Script::Complete { after_polls: 3 });

    let updated = f.update(1, Some(breaker(true, true))).await;
    let new = primary(&updated);
    assert_eq!(new.task_definition(), Some(f.revisions[1].as_str()));
    assert_eq!(rollout(new), DeploymentRolloutState::InProgress);
    assert!(new.id().is_some_and(|id| id.starts_with("ecs-svc/")));
    assert_eq!((new.desired_count(), new.running_count()), (2, 0));
    let old = &updated.deployments()[1];
    assert_eq!(old.status(), Some("ACTIVE"));
    assert_eq!(old.task_definition(), Some(f.revisions[0].as_str()));
    let config = updated.deployment_configuration().expect("a configuration");
    let cb = config
        .deployment_circuit_breaker()
        .expect("a circuit breaker");
    assert!(cb.enable() && cb.rollback());

    for _ in 1..3 {
        let service = f.poll().await;
        assert_eq!(
            rollout(primary(&service)),
            DeploymentRolloutState::InProgress
        );
        assert_eq!(service.deployments().len(), 2);
    }
    let done = f.poll().await;
    let deployment = primary(&done);
    assert_eq!(rollout(deployment), DeploymentRolloutState::Completed);
    assert_eq!(deployment.id(), new.id());
    assert_eq!(
        (deployment.running_count(), deployment.pending_count()),
        (2, 0)
    );
    assert_eq!(done.deployments().len(), 1, "the old deployment is gone");
    assert_eq!(done.task_definition(), Some(f.revisions[1].as_str()));
    let cb = done
        .deployment_configuration()
        .and_then(|c| c.deployment_circuit_breaker());
    assert!(cb.is_some_and(|cb| cb.enable()), "the configuration stays");
    let steady = format!("(service {}) has reached a steady state.", f.service);
    assert_eq!(events(&done).first().copied(), Some(steady.as_str()));
    assert_eq!(
        f.in_moto().await.task_definition(),
        Some(f.revisions[1].as_str())
    );

    let updates = f.double.requests_of("UpdateService");
    assert_eq!(updates.len(), 1);
    assert_eq!(updates[0].services, vec![f.service.clone()]);
    assert_eq!(
        updates[0].task_definition.as_deref(),
        Some(f.revisions[1].as_str())
    );
}

#[tokio::test]
async fn the_circuit_breaker_fails_the_deployment_and_rolls_back() {
    let f = fixture().await;
    f.double.script_service(
        &f.cluster,
        &f.service,
        Script::FailAndRollBack { after_polls: 2 },
    );
    let updated = f.update(1, Some(breaker(true, true))).await;
    let failing_id = primary(&updated).id().map(str::to_owned);

    let first = f.poll().await;
    assert_eq!(rollout(primary(&first)), DeploymentRolloutState::InProgress);
    assert_eq!(primary(&first).failed_tasks(), 1);

    let tripped = f.poll().await;
    let back = primary(&tripped);
    assert_eq!(back.task_definition(), Some(f.revisions[0].as_str()));
    assert_eq!(rollout(back), DeploymentRolloutState::InProgress);
    let failed = tripped
        .deployments()
        .iter()
        .find(|d| d.id().map(str::to_owned) == failing_id)
        .expect("the failed deployment is still shown");
    assert_eq!(rollout(failed), DeploymentRolloutState::Failed);
    assert_eq!(failed.failed_tasks(), 2);
    assert!(
        failed
            .rollout_state_reason()
            .is_some_and(|r| r.contains("circuit breaker")),
        "{failed:?}"
    );
    assert_eq!(tripped.task_definition(), Some(f.revisions[0].as_str()));
    assert_eq!(
        f.in_moto().await.task_definition(),
        Some(f.revisions[0].as_str())
    );
    assert!(
        events(&tripped)
            .iter()
            .any(|e| e.contains("deployment failed: tasks failed to start")),
        "{:?}",
        events(&tripped)
    );

    let mut last = tripped;
    for _ in 0..ROLLBACK_POLLS {
        last = f.poll().await;
    }
    assert_eq!(rollout(primary(&last)), DeploymentRolloutState::Completed);
    assert_eq!(
        primary(&last).task_definition(),
        Some(f.revisions[0].as_str())
    );
    assert_eq!(last.deployments().len(), 1);
    assert_eq!(last.task_definition(), Some(f.revisions[0].as_str()));
    let updates = f.double.requests_of("UpdateService");
    assert_eq!(
        updates.len(),
        1,
        "the rollback is ECS's own, not a client's"
    );
}

#[tokio::test]
async fn without_the_circuit_breaker_a_failing_deployment_keeps_failing() {
    let f = fixture().await;
    f.double.script_service(
        &f.cluster,
        &f.service,
        Script::FailAndRollBack { after_polls: 1 },
    );
    f.update(1, None).await;
    let mut last = None;
    for _ in 0..4 {
        last = Some(f.poll().await);
    }
    let last = last.expect("polled");
    assert_eq!(rollout(primary(&last)), DeploymentRolloutState::InProgress);
    assert_eq!(primary(&last).failed_tasks(), 4);
    assert_eq!(last.task_definition(), Some(f.revisions[1].as_str()));
    let cb = last
        .deployment_configuration()
        .and_then(|c| c.deployment_circuit_breaker());
    assert!(
        cb.is_some_and(|cb| !cb.enable()),
        "ECS's default: breaker off"
    );
    assert_eq!(
        f.in_moto().await.task_definition(),
        Some(f.revisions[1].as_str())
    );
}

#[tokio::test]
async fn the_breaker_without_rollback_leaves_a_failed_deployment() {
    let f = fixture().await;
    f.double.script_service(
        &f.cluster,
        &f.service,
        Script::FailAndRollBack { after_polls: 1 },
    );
    f.update(1, Some(breaker(true, false))).await;
    for _ in 0..3 {
        let service = f.poll().await;
        assert_eq!(rollout(primary(&service)), DeploymentRolloutState::Failed);
        assert_eq!(service.task_definition(), Some(f.revisions[1].as_str()));
    }
}

#[tokio::test]
async fn a_stuck_deployment_stays_in_progress() {
    let f = fixture().await;
    f.double
        .script_service(&f.cluster, &f.service, Script::Stuck);
    f.update(1, Some(breaker(true, true))).await;
    for _ in 0..6 {
        let service = f.poll().await;
        let deployment = primary(&service);
        assert_eq!(rollout(deployment), DeploymentRolloutState::InProgress);
        assert!(deployment.pending_count() > 0);
        assert_eq!(service.deployments().len(), 2);
    }
}

#[tokio::test]
async fn a_script_is_used_once_and_a_client_rollback_completes() {
    let f = fixture().await;
    f.double
        .script_service(&f.cluster, &f.service, Script::Stuck);
    f.update(1, None).await;
    assert_eq!(
        rollout(primary(&f.poll().await)),
        DeploymentRolloutState::InProgress
    );

    let back = f.update(0, None).await;
    assert_eq!(
        primary(&back).task_definition(),
        Some(f.revisions[0].as_str())
    );
    assert_eq!(
        back.deployments().len(),
        3,
        "both earlier deployments are ACTIVE"
    );
    let done = f.poll().await;
    assert_eq!(rollout(primary(&done)), DeploymentRolloutState::Completed);
    assert_eq!(done.task_definition(), Some(f.revisions[0].as_str()));
    assert_eq!(
        f.in_moto().await.task_definition(),
        Some(f.revisions[0].as_str())
    );
}

#[tokio::test]
async fn a_one_off_task_stops_with_its_scripted_exit_code() {
    let f = fixture().await;
    f.double.script_task(
        &f.family,
        TaskScript {
            exit_code: 1,
            after_polls: 2,
            reason: "Essential container in task exited".into(),
        },
    );
    let command = ["migrate", "--to", "42"];
    let overrides = TaskOverride::builder()
        .container_overrides(
            ContainerOverride::builder()
                .name("web")
                .set_command(Some(command.map(str::to_owned).to_vec()))
                .build(),
        )
        .build();
    let run = f
        .ecs
        .run_task()
        .cluster(&f.cluster)
        .launch_type(LaunchType::Fargate)
        .task_definition(&f.revisions[1])
        .overrides(overrides)
        .send()
        .await
        .expect("run task");
    let task = run.tasks().first().expect("a task");
    assert_eq!(task.last_status(), Some("PROVISIONING"));
    let arn = task.task_arn().expect("a task ARN").to_owned();

    let describe = || async {
        let out = f
            .ecs
            .describe_tasks()
            .cluster(&f.cluster)
            .tasks(&arn)
            .send()
            .await
            .expect("describe tasks");
        out.tasks().first().cloned().expect("the task")
    };
    let running = describe().await;
    assert_eq!(running.last_status(), Some("RUNNING"));
    assert_eq!(running.containers()[0].exit_code(), None);
    let stopped = describe().await;
    assert_eq!(stopped.last_status(), Some("STOPPED"));
    assert_eq!(
        stopped.stop_code().map(|c| c.as_str()),
        Some("EssentialContainerExited")
    );
    assert_eq!(
        stopped.stopped_reason(),
        Some("Essential container in task exited")
    );
    assert_eq!(stopped.containers()[0].exit_code(), Some(1));
    let kept = stopped
        .overrides()
        .map(|o| o.container_overrides()[0].command().to_vec());
    assert_eq!(kept, Some(command.map(str::to_owned).to_vec()));
}

#[tokio::test]
async fn an_unscripted_task_exits_zero_at_the_first_poll_and_stop_task_stops_one() {
    let f = fixture().await;
    let mut arns = Vec::new();
    for _ in 0..2 {
        let run = f
            .ecs
            .run_task()
            .cluster(&f.cluster)
            .launch_type(LaunchType::Fargate)
            .task_definition(&f.revisions[0])
            .send()
            .await
            .expect("run task");
        arns.push(run.tasks()[0].task_arn().expect("an ARN").to_owned());
    }
    f.ecs
        .stop_task()
        .cluster(&f.cluster)
        .task(&arns[1])
        .reason("cancelled")
        .send()
        .await
        .expect("stop task");
    let out = f
        .ecs
        .describe_tasks()
        .cluster(&f.cluster)
        .set_tasks(Some(arns.clone()))
        .send()
        .await
        .expect("describe tasks");
    let by_arn = |arn: &str| {
        out.tasks()
            .iter()
            .find(|t| t.task_arn() == Some(arn))
            .expect("the task")
    };
    let exited = by_arn(&arns[0]);
    assert_eq!(exited.last_status(), Some("STOPPED"));
    assert_eq!(exited.containers()[0].exit_code(), Some(0));
    let stopped = by_arn(&arns[1]);
    assert_eq!(
        stopped.stop_code().map(|c| c.as_str()),
        Some("UserInitiated")
    );
    assert_eq!(stopped.stopped_reason(), Some("cancelled"));
    assert_eq!(stopped.containers()[0].exit_code(), None);
}

#[tokio::test]
async fn errors_pass_through_and_every_request_is_logged() {
    let f = fixture().await;
    let err = f
        .ecs
        .update_service()
        .cluster(&f.cluster)
        .service("no-such-service")
        .task_definition(&f.revisions[1])
        .send()
        .await
        .expect_err("an unknown service");
    let err = err.into_service_error();
    assert!(err.is_service_not_found_exception(), "{err:?}");

    f.poll().await;
    let operations: Vec<String> = f
        .double
        .requests()
        .into_iter()
        .map(|r| r.operation)
        .collect();
    assert_eq!(
        operations,
        [
            "CreateCluster",
            "RegisterTaskDefinition",
            "RegisterTaskDefinition",
            "CreateService",
            "UpdateService",
            "DescribeServices",
        ]
    );
    let describe = f.double.requests_of("DescribeServices");
    assert_eq!(describe[0].cluster.as_deref(), Some(f.cluster.as_str()));
    assert_eq!(describe[0].services, vec![f.service.clone()]);
    let service = f.poll().await;
    assert_eq!(
        service.deployments().len(),
        1,
        "a failed update starts nothing"
    );
    assert_eq!(service.task_definition(), Some(f.revisions[0].as_str()));
}

#[tokio::test]
async fn deploys_own_ecs_client_reaches_the_double_through_the_endpoints_table() {
    let f = fixture().await;
    let dir = deploy_tests::scratch_dir("double-config");
    let config = dir.join("deploy.toml");
    let text = format!(
        r#"project = "t"
[environments.e2e]
region = "{region}"
account = "{account}"
state_bucket = "unused"
endpoints = {{ ecs = "{ecs}", sts = "{moto}", s3 = "{moto}" }}
[artifacts.app]
kind = "image"
repository = "t/app"
source = "docker://registry.example/t/app:1"
"#,
        region = deploy_tests::REGION,
        account = deploy_tests::ACCOUNT,
        ecs = f.double.url,
        moto = moto().url,
    );
    std::fs::write(&config, text).expect("write config");
    let config = deploy_core::config::Config::load(&config).expect("a valid config");
    let env = config.environment("e2e").expect("the environment");
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(deploy_tests::REGION))
        .credentials_provider(aws_credential_types::Credentials::for_tests())
        .load()
        .await;
    let clients = deploy_core::aws::AwsClients::from_sdk_config(&env.target, &sdk);
    let out = clients
        .ecs()
        .describe_services()
        .cluster(&f.cluster)
        .services(&f.service)
        .send()
        .await
        .expect("describe services through deploy's client");
    let service = out.services().first().expect("the service");
    assert!(
        service.deployment_configuration().is_some(),
        "the double's overlay"
    );
    let described = f.double.requests_of("DescribeServices");
    assert_eq!(described.len(), 1, "{:?}", f.double.requests());
}

//! What an image release calls, for `deploy iam-policy`: ECR (login, push, scan), and for
//! each rollout strategy ECS, CodeDeploy, EventBridge and Scheduler on the ARNs of the
//! configuration; the roles and secrets live task definitions name come from [`read`].

pub(crate) mod read;

use super::ImageSpec;
use super::ScanGate;
use super::rollout::verify::{Kind as RefKind, secret_source};
use super::rollout::{EcsService, ImageRollout, JobFamilies, PreDeploy};
use crate::iam::{GrantContext, Grants, Referenced, Scope};
use serde_json::json;

/// The push of a manifest and its blobs (and the reads a push makes first).
const PUSH: &[&str] = &[
    "ecr:DescribeRepositories",
    "ecr:BatchCheckLayerAvailability",
    "ecr:BatchGetImage",
    "ecr:GetDownloadUrlForLayer",
    "ecr:InitiateLayerUpload",
    "ecr:UploadLayerPart",
    "ecr:CompleteLayerUpload",
    "ecr:PutImage",
];

/// The statements of image `spec` (`source`: the same artifact in the promotion source, when
/// this environment's credentials pull from it).
pub(crate) fn grants(spec: &ImageSpec, with: &GrantContext<'_>, grants: &mut Grants) {
    let scope = with.scope;
    let source = with.source.and_then(|s| s.detail_as::<ImageSpec>());
    registry(spec, source, scope, grants);
    register_grants(with.referenced, grants);
    if with.referenced.log_groups {
        grants.allow(
            "LogGroupCheck",
            "check that the awslogs log groups the task definitions name exist (DescribeLogGroups takes no resource)",
            &["logs:DescribeLogGroups"],
            ["*"],
        );
    }
    configured_secrets(spec, scope, grants);
    match &spec.rollout {
        ImageRollout::EcsRolling(service) => service_grants(service, scope, grants),
        ImageRollout::CodedeployBlueGreen {
            service,
            application,
            deployment_group,
            lifecycle_hooks,
            ..
        } => {
            service_grants(service, scope, grants);
            codedeploy(application, deployment_group, scope, grants);
            hooks(lifecycle_hooks.iter().map(|h| &h.function), grants);
        }
        ImageRollout::EcsBlueGreen(blue_green) => {
            service_grants(&blue_green.service, scope, grants);
            service_deployments(&blue_green.service, scope, grants);
            hooks(
                blue_green.lifecycle_hooks.iter().map(|h| &h.function),
                grants,
            );
        }
        ImageRollout::TaskDefinitions(jobs) => families(jobs, scope, grants),
        ImageRollout::None => {}
    }
}

fn registry(spec: &ImageSpec, source: Option<&ImageSpec>, scope: &Scope<'_>, grants: &mut Grants) {
    let repository = scope.arn("ecr", &format!("repository/{}", spec.repository));
    grants.allow(
        "EcrLogin",
        "log in to the registry (GetAuthorizationToken takes no resource)",
        &["ecr:GetAuthorizationToken"],
        ["*"],
    );
    grants.allow(
        "EcrPush",
        "push the image by digest and tag it for the environment",
        PUSH,
        [repository.clone()],
    );
    if spec.create_repository {
        grants.allow(
            "EcrCreateRepository",
            "create the repository on first publish (create_repository = true)",
            &["ecr:CreateRepository"],
            [repository.clone()],
        );
    }
    if spec.scan != ScanGate::None || spec.scan_on_publish {
        grants.allow(
            "EcrScan",
            "start the image scan and read its findings (scan gate)",
            &["ecr:StartImageScan", "ecr:DescribeImageScanFindings"],
            [repository],
        );
    }
    if let (Some(source), Some(target)) = (source, scope.source) {
        let arn = crate::iam::arn_in(target, "ecr", &format!("repository/{}", source.repository));
        grants.allow(
            "EcrSourcePull",
            "promote: copy the image by digest from the source environment's repository",
            &[
                "ecr:BatchCheckLayerAvailability",
                "ecr:BatchGetImage",
                "ecr:GetDownloadUrlForLayer",
            ],
            [arn],
        );
    }
}

/// The `secrets` of the configuration go into new task definitions: the check before a
/// rollout reads their metadata.
fn configured_secrets(spec: &ImageSpec, scope: &Scope<'_>, grants: &mut Grants) {
    let mut referenced = Referenced::default();
    for value_from in spec.secrets.values() {
        match secret_source(value_from) {
            (RefKind::Secret, arn) => {
                referenced.secrets.insert(format!("{arn}*"));
            }
            (_, name) => {
                let name = name.trim_start_matches('/');
                referenced
                    .parameters
                    .insert(scope.arn("ssm", &format!("parameter/{name}")));
            }
        }
    }
    crate::iam::referenced_grants(&referenced, grants);
}

fn service_grants(service: &EcsService, scope: &Scope<'_>, grants: &mut Grants) {
    let arn = service_arn(service, scope);
    grants.allow(
        "EcsServices",
        "read the service and point it at the new task definition (and back on rollback)",
        &["ecs:DescribeServices", "ecs:UpdateService"],
        [arn],
    );
    task_definition_reads(grants);
    if let Some(pre_deploy) = &service.pre_deploy {
        migration(pre_deploy, &service.cluster, scope, grants);
    }
    grants.allow(
        "DeploymentAlarms",
        "check that the deployment's alarms exist",
        &["cloudwatch:DescribeAlarms"],
        service
            .alarms
            .iter()
            .map(|alarm| scope.arn("cloudwatch", &format!("alarm:{alarm}"))),
    );
}

/// The reads of task definitions and their clean-up (these ECS actions take no resource).
fn task_definition_reads(grants: &mut Grants) {
    grants.allow(
        "EcsTaskDefinitionReads",
        "read, list and deregister old task-definition revisions, list the services that use them \
         (these ECS actions take no resource)",
        &[
            "ecs:DescribeTaskDefinition",
            "ecs:ListTaskDefinitions",
            "ecs:DeregisterTaskDefinition",
            "ecs:ListServices",
        ],
        ["*"],
    );
}

fn migration(pre_deploy: &PreDeploy, cluster: &str, scope: &Scope<'_>, grants: &mut Grants) {
    let family = scope.arn(
        "ecs",
        &format!("task-definition/{}:*", pre_deploy.task_definition),
    );
    let cluster_arn = scope.arn("ecs", &format!("cluster/{cluster}"));
    grants.allow_when(
        "MigrationRun",
        "run the migration (pre_deploy) as a one-off task in the cluster",
        &["ecs:RunTask"],
        [family],
        json!({ "ArnEquals": { "ecs:cluster": cluster_arn } }),
    );
    grants.allow(
        "MigrationTasks",
        "follow the migration task and stop it on timeout or Ctrl-C",
        &["ecs:DescribeTasks", "ecs:StopTask"],
        [scope.arn("ecs", &format!("task/{cluster}/*"))],
    );
}

fn codedeploy(application: &str, group: &str, scope: &Scope<'_>, grants: &mut Grants) {
    grants.allow(
        "CodeDeployGroup",
        "create the blue/green deployment and follow it",
        &[
            "codedeploy:GetDeploymentGroup",
            "codedeploy:CreateDeployment",
            "codedeploy:GetDeployment",
            "codedeploy:ListDeployments",
        ],
        [scope.arn(
            "codedeploy",
            &format!("deploymentgroup:{application}/{group}"),
        )],
    );
    grants.allow(
        "CodeDeployRevision",
        "CreateDeployment registers the AppSpec as an application revision",
        &["codedeploy:RegisterApplicationRevision"],
        [scope.arn("codedeploy", &format!("application:{application}"))],
    );
    grants.allow(
        "CodeDeployConfig",
        "CreateDeployment reads the group's deployment configuration",
        &["codedeploy:GetDeploymentConfig"],
        [scope.arn("codedeploy", "deploymentconfig:*")],
    );
    grants.allow(
        "CodeDeployControl",
        "shift traffic after the test gate, stop a failed deployment, read its targets \
         (these CodeDeploy actions take no resource)",
        &[
            "codedeploy:ContinueDeployment",
            "codedeploy:StopDeployment",
            "codedeploy:ListDeploymentTargets",
            "codedeploy:BatchGetDeploymentTargets",
        ],
        ["*"],
    );
}

fn service_deployments(service: &EcsService, scope: &Scope<'_>, grants: &mut Grants) {
    let deployments = scope.arn(
        "ecs",
        &format!(
            "service-deployment/{}/{}/*",
            service.cluster, service.service
        ),
    );
    grants.allow(
        "EcsServiceDeployments",
        "follow ECS's own blue/green deployment and stop it on failure",
        &[
            "ecs:ListServiceDeployments",
            "ecs:DescribeServiceDeployments",
            "ecs:StopServiceDeployment",
        ],
        [service_arn(service, scope), deployments],
    );
}

fn hooks<'a>(functions: impl Iterator<Item = &'a String>, grants: &mut Grants) {
    grants.allow(
        "LifecycleHookCheck",
        "check that the lifecycle hook functions exist",
        &["lambda:GetFunction"],
        functions.cloned(),
    );
}

fn families(jobs: &JobFamilies, scope: &Scope<'_>, grants: &mut Grants) {
    task_definition_reads(grants);
    if let (Some(pre_deploy), Some(cluster)) = (&jobs.pre_deploy, &jobs.cluster) {
        migration(pre_deploy, cluster, scope, grants);
    }
    grants.allow(
        "ScheduleRules",
        "point the EventBridge rules' ECS targets at the new revision",
        &["events:ListTargetsByRule", "events:PutTargets"],
        jobs.schedules
            .iter()
            .map(|rule| scope.arn("events", &format!("rule/{rule}"))),
    );
    grants.allow(
        "Schedules",
        "point the EventBridge Scheduler schedules' ECS target at the new revision",
        &["scheduler:GetSchedule", "scheduler:UpdateSchedule"],
        jobs.scheduler_schedules.iter().map(|full| {
            let full = if full.contains('/') {
                full.clone()
            } else {
                format!("default/{full}")
            };
            scope.arn("scheduler", &format!("schedule/{full}"))
        }),
    );
}

fn service_arn(service: &EcsService, scope: &Scope<'_>) -> String {
    scope.arn(
        "ecs",
        &format!("service/{}/{}", service.cluster, service.service),
    )
}

/// `ecs:RegisterTaskDefinition` on the families of `referenced` (from the configuration and
/// the live services).
fn register_grants(referenced: &Referenced, grants: &mut Grants) {
    grants.allow(
        "EcsRegisterTaskDefinitions",
        "register new revisions of the task-definition families",
        &["ecs:RegisterTaskDefinition"],
        referenced.families.clone(),
    );
}

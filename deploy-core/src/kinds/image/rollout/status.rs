//! What an image's services and job families run now, for `status`, and how that drifted from
//! what the ledger says is live: a service on another image, a family whose latest revision
//! runs another image, a rule or schedule pinned to a revision that runs another image.

use aws_sdk_ecs::types::TaskDefinition;

use super::schedules;
use super::{EcsService, JobFamilies};
use crate::aws::{AwsClients, SdkFailure};
use crate::kinds::image::ImageRef;
use crate::kinds::{Drift, Running};
use crate::ledger::ArtifactStatus;

/// The digest the ledger says is live, if any.
fn live_digest(status: &ArtifactStatus) -> Option<String> {
    let live = status.live.as_ref()?.artifact_ref.as_ref()?;
    live.decode::<ImageRef>().map(|r| r.digest)
}

/// Why `image` is not `digest`, or `None` when it is.
fn differs(image: Option<&str>, digest: &str) -> Option<String> {
    match image {
        Some(image) if image.ends_with(&format!("@{digest}")) => None,
        Some(image) => Some(format!("runs {image}, the live release is {digest}")),
        None => Some(format!("runs no image, the live release is {digest}")),
    }
}

/// What `service` runs, compared with the live release in `status`.
pub(crate) async fn running(
    clients: &AwsClients,
    service: &EcsService,
    status: &ArtifactStatus,
) -> Running {
    let name = format!("{}/{}", service.cluster, service.service);
    let read = match describe_service(clients, service).await {
        Ok(found) => describe(clients, found.task_definition().unwrap_or_default()).await,
        Err(problem) => Err(problem),
    };
    let definition = match read {
        Ok(definition) => definition,
        Err(problem) => return Running::unreadable(name, problem),
    };
    let image = image_of(&definition, &service.container);
    let drift = live_digest(status)
        .and_then(|digest| differs(image, &digest))
        .map(|difference| Drift::new(&name, difference));
    let arn = definition.task_definition_arn().unwrap_or_default();
    Running::read(name, Some(short_revision(arn)), drift.into_iter().collect())
}

/// The service of `config`, as `DescribeServices` answers; an error in one line.
pub(crate) async fn describe_service(
    clients: &AwsClients,
    config: &EcsService,
) -> Result<aws_sdk_ecs::types::Service, String> {
    let described = clients
        .ecs()
        .describe_services()
        .cluster(&config.cluster)
        .services(&config.service)
        .send()
        .await
        .map_err(|e| SdkFailure::new(e).to_string())?;
    let found = described
        .services()
        .first()
        .filter(|s| s.task_definition().is_some());
    found.cloned().ok_or_else(|| {
        format!(
            "service {}/{} does not exist",
            config.cluster, config.service
        )
    })
}

/// What `jobs`' families run (their latest ACTIVE revisions) and what their rules and
/// schedules pin, compared with the live release in `status`.
pub(crate) async fn families(
    clients: &AwsClients,
    jobs: &JobFamilies,
    status: &ArtifactStatus,
) -> Running {
    let object = jobs.families.join(", ");
    let digest = live_digest(status);
    let mut drift = Vec::new();
    let mut revisions = Vec::new();
    for family in &jobs.families {
        let definition = match describe(clients, family).await {
            Ok(definition) => definition,
            Err(problem) => return Running::unreadable(object, problem),
        };
        revisions.push(short_revision(
            definition.task_definition_arn().unwrap_or(family),
        ));
        let image = image_of(&definition, &jobs.container);
        if let Some(difference) = digest.as_deref().and_then(|d| differs(image, d)) {
            drift.push(Drift::new(family.as_str(), difference));
        }
    }
    if let Some(digest) = &digest {
        match pinned(clients, jobs).await {
            Ok(pinned) => drift.extend(pinned_drift(clients, jobs, pinned, digest).await),
            Err(problem) => return Running::unreadable(object, problem),
        }
    }
    Running::read(object, Some(revisions.join(", ")), drift)
}

/// The drift of each pinned target (`(rule or schedule, task definition)`) that runs another
/// image than `digest`.
async fn pinned_drift(
    clients: &AwsClients,
    jobs: &JobFamilies,
    pinned: Vec<(String, String)>,
    digest: &str,
) -> Vec<Drift> {
    let mut drift = Vec::new();
    for (source, arn) in pinned {
        let difference = match describe(clients, &arn).await {
            Ok(definition) => differs(image_of(&definition, &jobs.container), digest)
                .map(|d| format!("pins {}, which {d}", short_revision(&arn))),
            Err(problem) => Some(format!("pins {arn}, which cannot be read: {problem}")),
        };
        drift.extend(difference.map(|d| Drift::new(source, d)));
    }
    drift
}

/// The targets of the rules and schedules that pin a revision (`family:N`) of one of the
/// families: `(rule or schedule, task definition ARN)`.
pub(crate) async fn pinned(
    clients: &AwsClients,
    jobs: &JobFamilies,
) -> Result<Vec<(String, String)>, String> {
    let of_ours = |arn: &str| {
        super::cleanup::family_of(arn)
            .is_some_and(|family| jobs.families.iter().any(|f| f == family))
    };
    let mut found = Vec::new();
    for rule in &jobs.schedules {
        let targets = schedules::rule_targets(clients, rule)
            .await
            .map_err(|e| e.to_string())?;
        let arns = targets.iter().filter_map(|t| t.ecs_parameters());
        let arns = arns.map(|p| p.task_definition_arn().to_owned());
        found.extend(arns.filter(|a| of_ours(a)).map(|a| (rule.clone(), a)));
    }
    for schedule in &jobs.scheduler_schedules {
        let read = schedules::get_schedule(clients, schedule)
            .await
            .map_err(|e| e.to_string())?;
        if let Some(p) = read.target().and_then(|t| t.ecs_parameters())
            && of_ours(p.task_definition_arn())
        {
            found.push((schedule.clone(), p.task_definition_arn().to_owned()));
        }
    }
    Ok(found)
}

/// The task definition `name` (a family: its latest ACTIVE revision).
pub(crate) async fn describe(clients: &AwsClients, name: &str) -> Result<TaskDefinition, String> {
    let described = clients
        .ecs()
        .describe_task_definition()
        .task_definition(name)
        .send()
        .await
        .map_err(|e| SdkFailure::new(e).to_string())?;
    described
        .task_definition
        .ok_or_else(|| format!("{name} was described without its contents"))
}

fn image_of<'a>(definition: &'a TaskDefinition, container: &str) -> Option<&'a str> {
    let containers = definition.container_definitions();
    let found = containers.iter().find(|c| c.name() == Some(container))?;
    found.image()
}

/// `family:revision` of a task definition ARN.
fn short_revision(arn: &str) -> String {
    arn.rsplit('/').next().unwrap_or(arn).to_owned()
}

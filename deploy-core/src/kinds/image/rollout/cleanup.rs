//! Old task-definition revisions: after a rollout, the newest revision of a family and the
//! `keep_revisions` before it stay ACTIVE (the previous one, which an undo or a rollback goes
//! back to, is always among them); older ones are deregistered, except those still in use:
//! run by a service of the cluster (any of its deployments), named by a rule or a schedule,
//! or recorded by one of the artifact's newest releases in the ledger (the targets of a
//! rollback). Cleaning up never fails a release: a revision that cannot be deregistered is
//! reported and left, and when what is in use cannot be read, nothing is deregistered.

use crate::aws::SdkFailure;
use crate::engine::StepContext;
use crate::events::Event;
use crate::ledger::{Ledger, LedgerError};

/// `DescribeServices` takes at most this many services per call.
pub(crate) const DESCRIBE_SERVICES_BATCH: usize = 10;

/// The task definitions still in use that cleanup must keep, besides the newest revisions.
#[derive(Debug, Default, Clone)]
pub(crate) struct InUse {
    arns: Vec<String>,
}

impl InUse {
    /// Adds task definitions known to be in use (the new and the previous revision, what
    /// rules and schedules name).
    pub(crate) fn extend(&mut self, arns: impl IntoIterator<Item = String>) {
        self.arns.extend(arns);
    }

    fn contains(&self, arn: &str) -> bool {
        self.arns.iter().any(|a| a == arn)
    }

    /// What `artifact`'s newest `keep + 1` releases recorded, and (with a cluster) what its
    /// services run. `None` when either cannot be read: then nothing may be deregistered.
    pub(crate) async fn gather(
        cx: &StepContext<'_>,
        artifact: &str,
        keep: u32,
        cluster: Option<&str>,
    ) -> Option<InUse> {
        let mut in_use = InUse::default();
        match recorded(cx, artifact, keep).await {
            Ok(arns) => in_use.extend(arns),
            Err(err) => {
                note(
                    cx,
                    artifact,
                    format!("old revisions kept: the ledger could not be read: {err}"),
                );
                return None;
            }
        }
        if let Some(cluster) = cluster {
            match running(cx, cluster).await {
                Ok(arns) => in_use.extend(arns),
                Err(err) => {
                    note(
                        cx,
                        artifact,
                        format!(
                            "old revisions kept: the services of {cluster} could not be read: {err}"
                        ),
                    );
                    return None;
                }
            }
        }
        Some(in_use)
    }
}

/// The task definitions the newest `keep + 1` releases of `artifact` recorded.
async fn recorded(
    cx: &StepContext<'_>,
    artifact: &str,
    keep: u32,
) -> Result<Vec<String>, LedgerError> {
    let clients = cx.clients();
    let ledger = Ledger::new(clients.s3.clone(), &clients.target);
    let limit = usize::try_from(keep)
        .unwrap_or(usize::MAX)
        .saturating_add(1);
    let records = ledger.history(&[artifact.to_owned()], limit).await?;
    Ok(records
        .into_iter()
        .flat_map(|r| r.touched)
        .filter(|o| o.kind.ends_with("task-definition"))
        .map(|o| o.id)
        .collect())
}

/// The task definitions of every deployment of every service of `cluster`.
async fn running(cx: &StepContext<'_>, cluster: &str) -> Result<Vec<String>, SdkFailure> {
    let ecs = &cx.clients().ecs();
    let mut services = Vec::new();
    let mut token = None;
    loop {
        let page = ecs
            .list_services()
            .cluster(cluster)
            .set_next_token(token)
            .send()
            .await
            .map_err(SdkFailure::new)?;
        services.extend(page.service_arns().iter().cloned());
        token = page.next_token().map(str::to_owned);
        if token.is_none() {
            break;
        }
    }
    let mut arns = Vec::new();
    for batch in services.chunks(DESCRIBE_SERVICES_BATCH) {
        let out = ecs
            .describe_services()
            .cluster(cluster)
            .set_services(Some(batch.to_vec()))
            .send()
            .await
            .map_err(SdkFailure::new)?;
        for service in out.services() {
            arns.extend(service.task_definition().map(str::to_owned));
            arns.extend(
                service
                    .deployments()
                    .iter()
                    .filter_map(|d| d.task_definition().map(str::to_owned)),
            );
        }
    }
    Ok(arns)
}

/// The family and revision of a task-definition ARN (`.../task-definition/api:41`).
fn family_and_revision(arn: &str) -> Option<(&str, u32)> {
    let name = arn.rsplit('/').next()?;
    let (family, revision) = name.rsplit_once(':')?;
    Some((family, revision.parse().ok()?))
}

/// The family of a task-definition ARN or `family:revision`.
pub(crate) fn family_of(arn: &str) -> Option<&str> {
    family_and_revision(arn).map(|(family, _)| family)
}

/// The ACTIVE revisions of `family` beyond the newest `keep + 1`, oldest last: the candidates
/// for deregistration. Only when there are any is what is in use worth gathering. A listing
/// that fails is reported and gives none.
pub(crate) async fn old_revisions(
    cx: &StepContext<'_>,
    artifact: &str,
    family: &str,
    keep: u32,
) -> Vec<String> {
    match active_revisions(cx, family).await {
        Ok(active) => active.into_iter().skip(kept(keep)).collect(),
        Err(err) => {
            note(
                cx,
                artifact,
                format!("could not list the revisions of {family}: {err}"),
            );
            Vec::new()
        }
    }
}

/// How many of the newest revisions always stay: `keep` and the newest.
fn kept(keep: u32) -> usize {
    usize::try_from(keep)
        .unwrap_or(usize::MAX)
        .saturating_add(1)
}

/// Deregisters `old` (from [`old_revisions`]) except those in `in_use`. Returns how many
/// were deregistered.
pub(crate) async fn deregister_unused(
    cx: &StepContext<'_>,
    (artifact, family): (&str, &str),
    keep: u32,
    old: &[String],
    in_use: &InUse,
) -> usize {
    let keep = kept(keep);
    let mut removed = 0;
    for arn in old {
        if in_use.contains(arn) {
            continue;
        }
        let answer = cx
            .clients()
            .ecs()
            .deregister_task_definition()
            .task_definition(arn)
            .send()
            .await;
        match answer {
            Ok(_) => removed += 1,
            Err(err) => note(
                cx,
                artifact,
                format!("could not deregister {arn}: {}", SdkFailure::new(err)),
            ),
        }
    }
    if removed > 0 {
        note(
            cx,
            artifact,
            format!("deregistered {removed} old revisions of {family} (kept the newest {keep})"),
        );
    }
    removed
}

/// The ACTIVE revisions of exactly `family`, newest first.
async fn active_revisions(cx: &StepContext<'_>, family: &str) -> Result<Vec<String>, SdkFailure> {
    let mut found: Vec<(u32, String)> = Vec::new();
    let mut token = None;
    loop {
        let page = cx
            .clients()
            .ecs()
            .list_task_definitions()
            .family_prefix(family)
            .status(aws_sdk_ecs::types::TaskDefinitionStatus::Active)
            .set_next_token(token)
            .send()
            .await
            .map_err(SdkFailure::new)?;
        for arn in page.task_definition_arns() {
            if let Some((name, revision)) = family_and_revision(arn)
                && name == family
            {
                found.push((revision, arn.clone()));
            }
        }
        token = page.next_token().map(str::to_owned);
        if token.is_none() {
            break;
        }
    }
    found.sort_by_key(|(revision, _)| std::cmp::Reverse(*revision));
    Ok(found.into_iter().map(|(_, arn)| arn).collect())
}

fn note(cx: &StepContext<'_>, artifact: &str, message: String) {
    cx.reporter().report(&Event::Note {
        message: format!("{artifact}: {message}"),
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_and_revisions_come_from_the_arn() {
        let arn = "arn:aws:ecs:eu-west-1:123456789012:task-definition/api-worker:41";
        assert_eq!(family_and_revision(arn), Some(("api-worker", 41)));
        assert_eq!(family_of("api:7"), Some("api"));
        assert_eq!(family_and_revision("api"), None);
        assert_eq!(
            family_and_revision("arn:x:task-definition/api:latest"),
            None
        );
    }
}

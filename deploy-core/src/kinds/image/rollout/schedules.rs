//! The schedules of `task-definitions`: EventBridge rules whose ECS targets, and EventBridge
//! Scheduler schedules whose target, run one of the artifact's families. After the families
//! have their new revisions, each such target is pointed at its family's new revision
//! (`PutTargets` with the whole target, `UpdateSchedule` with every field of the schedule as
//! it was); nothing else about a rule or a schedule changes.
//!
//! A target that names its family without a revision already runs the latest ACTIVE revision
//! and is left as it is. The undo points every changed target back at the revision it named.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::aws::{AwsClients, SdkFailure};
use crate::engine::{StepContext, StepError};
use crate::events::Event;

/// The configured schedules of one `task-definitions` rollout.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Schedules<'a> {
    /// EventBridge rules, `rule` or `bus/rule`.
    pub rules: &'a [String],
    /// Scheduler schedules, `name` or `group/name`.
    pub schedules: &'a [String],
    /// The families whose targets follow.
    pub families: &'a [String],
}

/// Which kind of schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Source {
    /// An EventBridge rule (`schedules`).
    Rule,
    /// An EventBridge Scheduler schedule (`scheduler_schedules`).
    Schedule,
}

impl Source {
    fn what(self) -> &'static str {
        match self {
            Source::Rule => "EventBridge rule",
            Source::Schedule => "Scheduler schedule",
        }
    }

    fn key(self) -> &'static str {
        match self {
            Source::Rule => "schedules",
            Source::Schedule => "scheduler_schedules",
        }
    }
}

/// One target pointed at a new revision: what the undo needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Repointed {
    /// Rule or schedule.
    pub source: Source,
    /// Its name as configured.
    pub name: String,
    /// The rule's target id (rules have several targets; a schedule has one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// The task definition it named before.
    pub previous: String,
    /// The task definition it names now.
    pub next: String,
}

/// Why a schedule could not be checked or changed.
#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    /// The rule or schedule does not exist.
    #[error("{what} {name} does not exist; create it (infra/) or remove it from `{key}`")]
    Missing {
        /// `EventBridge rule`, `Scheduler schedule`.
        what: &'static str,
        /// Its name.
        name: String,
        /// The config key naming it.
        key: &'static str,
    },
    /// It exists but runs none of the families.
    #[error(
        "{what} {name} has no ECS target running {families}; point it at one of them or remove it from `{key}`"
    )]
    NoTarget {
        /// `EventBridge rule`, `Scheduler schedule`.
        what: &'static str,
        /// Its name.
        name: String,
        /// The families, comma-separated.
        families: String,
        /// The config key naming it.
        key: &'static str,
    },
    /// EventBridge refused a target of `PutTargets`.
    #[error("events:PutTargets of rule {rule} refused target {target}: {code}: {message}")]
    Refused {
        /// The rule.
        rule: String,
        /// The target id.
        target: String,
        /// EventBridge's error code.
        code: String,
        /// EventBridge's message.
        message: String,
    },
    /// A call failed.
    #[error("{operation} of {name} failed: {source}")]
    Api {
        /// `events:ListTargetsByRule`, `scheduler:UpdateSchedule`.
        operation: &'static str,
        /// The rule or schedule.
        name: String,
        /// The SDK's error.
        #[source]
        source: SdkFailure,
    },
}

/// The family a task-definition ARN names, and whether it names a revision of it
/// (`.../task-definition/etl:3`) or the family's latest ACTIVE one (`.../task-definition/etl`).
pub(crate) fn family_in(arn: &str) -> (&str, bool) {
    let name = arn.rsplit('/').next().unwrap_or(arn);
    match name.rsplit_once(':') {
        Some((family, revision)) if revision.parse::<u32>().is_ok() => (family, true),
        _ => (name, false),
    }
}

/// `container/name` split at the last `/`.
fn split(full: &str) -> (Option<&str>, &str) {
    match full.rsplit_once('/') {
        Some((container, name)) => (Some(container), name),
        None => (None, full),
    }
}

impl Schedules<'_> {
    fn runs_ours(&self, arn: &str) -> bool {
        let (family, _) = family_in(arn);
        self.families.iter().any(|f| f == family)
    }

    fn no_target(&self, source: Source, name: &str) -> ScheduleError {
        ScheduleError::NoTarget {
            what: source.what(),
            name: name.to_owned(),
            families: self.families.join(", "),
            key: source.key(),
        }
    }

    /// Checks that every rule and schedule exists and runs one of the families.
    pub(crate) async fn verify(&self, cx: &StepContext<'_>) -> Result<(), StepError> {
        for rule in self.rules {
            let targets = rule_targets(cx.clients(), rule).await?;
            let ours = targets.iter().filter_map(|t| t.ecs_parameters());
            if !ours
                .into_iter()
                .any(|p| self.runs_ours(p.task_definition_arn()))
            {
                return Err(StepError::failure(self.no_target(Source::Rule, rule)));
            }
        }
        for schedule in self.schedules {
            let found = get_schedule(cx.clients(), schedule).await?;
            let arn = found
                .target()
                .and_then(|t| t.ecs_parameters())
                .map(|p| p.task_definition_arn());
            if !arn.is_some_and(|arn| self.runs_ours(arn)) {
                return Err(StepError::failure(
                    self.no_target(Source::Schedule, schedule),
                ));
            }
        }
        Ok(())
    }

    /// The task definitions the rules and schedules name now (cleanup keeps them).
    pub(crate) async fn in_use(&self, cx: &StepContext<'_>) -> Vec<String> {
        let mut found = Vec::new();
        for rule in self.rules {
            if let Ok(targets) = rule_targets(cx.clients(), rule).await {
                found.extend(
                    targets
                        .iter()
                        .filter_map(|t| t.ecs_parameters())
                        .map(|p| p.task_definition_arn().to_owned()),
                );
            }
        }
        for schedule in self.schedules {
            if let Ok(found_schedule) = get_schedule(cx.clients(), schedule).await
                && let Some(p) = found_schedule.target().and_then(|t| t.ecs_parameters())
            {
                found.push(p.task_definition_arn().to_owned());
            }
        }
        found
    }

    /// Points every target of the families at `revisions` (family → new ARN). On a failure,
    /// what was changed before it is returned with the error, for the caller to put back.
    pub(crate) async fn repoint(
        &self,
        cx: &StepContext<'_>,
        artifact: &str,
        revisions: &BTreeMap<String, String>,
    ) -> Result<Vec<Repointed>, (Vec<Repointed>, StepError)> {
        let mut done = Vec::new();
        for rule in self.rules {
            match repoint_rule(cx, rule, revisions).await {
                Ok(changed) => done.extend(changed),
                Err(err) => return Err((done, err)),
            }
        }
        for schedule in self.schedules {
            match repoint_schedule(cx, schedule, revisions).await {
                Ok(changed) => done.extend(changed),
                Err(err) => return Err((done, err)),
            }
        }
        for changed in &done {
            cx.reporter().report(&Event::Note {
                message: format!(
                    "{artifact}: {} {} now runs {}",
                    changed.source.what(),
                    changed.name,
                    changed.next
                ),
            });
        }
        Ok(done)
    }
}

/// Points every target in `changed` back at the revision it named before, newest first.
pub(crate) async fn put_back(cx: &StepContext<'_>, changed: &[Repointed]) -> Result<(), StepError> {
    for one in changed.iter().rev() {
        let back = BTreeMap::from([(family_in(&one.next).0.to_owned(), one.previous.clone())]);
        match one.source {
            Source::Rule => {
                repoint_rule(cx, &one.name, &back).await?;
            }
            Source::Schedule => {
                repoint_schedule(cx, &one.name, &back).await?;
            }
        }
    }
    Ok(())
}

/// The new ARN for a target now naming `current`, when it should change: a pinned revision
/// of one of the families, other than the new one.
fn next_for(current: &str, revisions: &BTreeMap<String, String>) -> Option<String> {
    let (family, pinned) = family_in(current);
    let next = revisions.get(family)?;
    (pinned && next != current).then(|| next.clone())
}

async fn repoint_rule(
    cx: &StepContext<'_>,
    rule: &str,
    revisions: &BTreeMap<String, String>,
) -> Result<Vec<Repointed>, StepError> {
    let mut targets = rule_targets(cx.clients(), rule).await?;
    let mut changed = Vec::new();
    for target in &mut targets {
        let Some(params) = target.ecs_parameters.as_mut() else {
            continue;
        };
        if let Some(next) = next_for(&params.task_definition_arn, revisions) {
            let previous = std::mem::replace(&mut params.task_definition_arn, next.clone());
            changed.push(Repointed {
                source: Source::Rule,
                name: rule.to_owned(),
                target: Some(target.id.clone()),
                previous,
                next,
            });
        }
    }
    if changed.is_empty() {
        return Ok(changed);
    }
    targets.retain(|t| changed.iter().any(|c| c.target.as_ref() == Some(&t.id)));
    put_rule_targets(cx, rule, targets).await?;
    Ok(changed)
}

async fn repoint_schedule(
    cx: &StepContext<'_>,
    schedule: &str,
    revisions: &BTreeMap<String, String>,
) -> Result<Vec<Repointed>, StepError> {
    let mut found = get_schedule(cx.clients(), schedule).await?;
    let Some(params) = found
        .target
        .as_mut()
        .and_then(|t| t.ecs_parameters.as_mut())
    else {
        return Ok(Vec::new());
    };
    let Some(next) = next_for(&params.task_definition_arn, revisions) else {
        return Ok(Vec::new());
    };
    let previous = std::mem::replace(&mut params.task_definition_arn, next.clone());
    update_schedule(cx, schedule, found).await?;
    Ok(vec![Repointed {
        source: Source::Schedule,
        name: schedule.to_owned(),
        target: None,
        previous,
        next,
    }])
}

fn api(operation: &'static str, name: &str, source: SdkFailure) -> StepError {
    StepError::failure(ScheduleError::Api {
        operation,
        name: name.to_owned(),
        source,
    })
}

fn missing(source: Source, name: &str) -> StepError {
    StepError::failure(ScheduleError::Missing {
        what: source.what(),
        name: name.to_owned(),
        key: source.key(),
    })
}

/// Every target of `rule` (`rule` or `bus/rule`).
pub(crate) async fn rule_targets(
    clients: &AwsClients,
    full: &str,
) -> Result<Vec<aws_sdk_eventbridge::types::Target>, StepError> {
    let (bus, rule) = split(full);
    let mut targets = Vec::new();
    let mut token = None;
    loop {
        let page = clients
            .events()
            .list_targets_by_rule()
            .rule(rule)
            .set_event_bus_name(bus.map(str::to_owned))
            .set_next_token(token)
            .send()
            .await;
        let page = match page {
            Ok(page) => page,
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_resource_not_found_exception()) =>
            {
                return Err(missing(Source::Rule, full));
            }
            Err(err) => return Err(api("events:ListTargetsByRule", full, SdkFailure::new(err))),
        };
        targets.extend(page.targets().iter().cloned());
        token = page.next_token().map(str::to_owned);
        if token.is_none() {
            return Ok(targets);
        }
    }
}

async fn put_rule_targets(
    cx: &StepContext<'_>,
    full: &str,
    targets: Vec<aws_sdk_eventbridge::types::Target>,
) -> Result<(), StepError> {
    let (bus, rule) = split(full);
    let out = cx
        .clients()
        .events()
        .put_targets()
        .rule(rule)
        .set_event_bus_name(bus.map(str::to_owned))
        .set_targets(Some(targets))
        .send()
        .await
        .map_err(|e| api("events:PutTargets", full, SdkFailure::new(e)))?;
    match out.failed_entries().first() {
        None => Ok(()),
        Some(failed) => Err(StepError::failure(ScheduleError::Refused {
            rule: full.to_owned(),
            target: failed.target_id().unwrap_or("?").to_owned(),
            code: failed.error_code().unwrap_or("?").to_owned(),
            message: failed.error_message().unwrap_or_default().to_owned(),
        })),
    }
}

type Schedule = aws_sdk_scheduler::operation::get_schedule::GetScheduleOutput;

/// The schedule `name` or `group/name`.
pub(crate) async fn get_schedule(clients: &AwsClients, full: &str) -> Result<Schedule, StepError> {
    let (group, name) = split(full);
    let answer = clients
        .scheduler()
        .get_schedule()
        .name(name)
        .set_group_name(group.map(str::to_owned))
        .send()
        .await;
    match answer {
        Ok(found) => Ok(found),
        Err(err)
            if err
                .as_service_error()
                .is_some_and(|e| e.is_resource_not_found_exception()) =>
        {
            Err(missing(Source::Schedule, full))
        }
        Err(err) => Err(api("scheduler:GetSchedule", full, SdkFailure::new(err))),
    }
}

/// `UpdateSchedule` replaces the whole schedule: every field is sent as it was read.
async fn update_schedule(
    cx: &StepContext<'_>,
    full: &str,
    schedule: Schedule,
) -> Result<(), StepError> {
    let (group, name) = split(full);
    cx.clients()
        .scheduler()
        .update_schedule()
        .name(name)
        .set_group_name(schedule.group_name.or(group.map(str::to_owned)))
        .set_schedule_expression(schedule.schedule_expression)
        .set_start_date(schedule.start_date)
        .set_end_date(schedule.end_date)
        .set_description(schedule.description)
        .set_schedule_expression_timezone(schedule.schedule_expression_timezone)
        .set_state(schedule.state)
        .set_kms_key_arn(schedule.kms_key_arn)
        .set_target(schedule.target)
        .set_flexible_time_window(schedule.flexible_time_window)
        .set_action_after_completion(schedule.action_after_completion)
        .send()
        .await
        .map_err(|e| api("scheduler:UpdateSchedule", full, SdkFailure::new(e)))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_target_follows_only_when_it_pins_a_revision_of_a_family() {
        let revisions = BTreeMap::from([(
            "etl".to_owned(),
            "arn:aws:ecs:eu-west-1:1:task-definition/etl:8".to_owned(),
        )]);
        let pinned = "arn:aws:ecs:eu-west-1:1:task-definition/etl:7";
        assert_eq!(
            next_for(pinned, &revisions).as_deref(),
            Some("arn:aws:ecs:eu-west-1:1:task-definition/etl:8")
        );
        let latest = "arn:aws:ecs:eu-west-1:1:task-definition/etl";
        assert_eq!(next_for(latest, &revisions), None);
        let other = "arn:aws:ecs:eu-west-1:1:task-definition/etl-backfill:3";
        assert_eq!(next_for(other, &revisions), None);
        assert_eq!(next_for(&revisions["etl"], &revisions), None);
    }

    #[test]
    fn families_and_containers_come_apart() {
        assert_eq!(family_in("arn:x:task-definition/etl:3"), ("etl", true));
        assert_eq!(family_in("arn:x:task-definition/etl"), ("etl", false));
        assert_eq!(family_in("etl:latest"), ("etl:latest", false));
        assert_eq!(
            split("aws.partner/saas/bus/nightly"),
            (Some("aws.partner/saas/bus"), "nightly")
        );
        assert_eq!(split("nightly"), (None, "nightly"));
    }
}

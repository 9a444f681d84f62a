//! `[artifacts.<name>.rollout]` of an image: each image strategy's settings, resolved once the
//! artifact's kind has accepted the strategy.

use std::time::Duration;

use super::names::task_definition_problem;
use super::{EcsService, ImageRollout, JobFamilies, LifecycleHook, PreDeploy};
use crate::config::limits::{KEEP_REVISIONS, ROLLOUT_TIMEOUT};
use crate::rollout::Strategy;
use crate::rollout::config::{Ctx, alarms, health_check, reject_unused_by_strategy};
use crate::rollout::raw::{RawPreDeploy, RawRollout};

/// The settings of an image rollout (an image strategy, checked by the caller).
pub(crate) fn image(ctx: Ctx<'_, '_, '_, '_>, raw: &RawRollout) -> ImageRollout {
    reject_unused_by_strategy(ctx, raw);
    let keep_revisions = raw.keep_revisions.unwrap_or(5);
    if !KEEP_REVISIONS.contains(&keep_revisions) {
        ctx.error(
            &["rollout", "keep_revisions"],
            format!("`keep_revisions` is {keep_revisions}; it must be between 1 and 100 (the running revision is always kept)"),
            None,
        );
    }
    let pre_deploy = raw.pre_deploy.as_ref().map(|p| pre_deploy(ctx, p));
    match raw.strategy {
        Strategy::EcsRolling => {
            ImageRollout::EcsRolling(service(ctx, raw, keep_revisions, pre_deploy))
        }
        Strategy::CodedeployBlueGreen => ImageRollout::CodedeployBlueGreen {
            service: service(ctx, raw, keep_revisions, pre_deploy),
            application: ctx.require(raw.application.as_ref(), &["rollout", "application"]),
            deployment_group: ctx.require(
                raw.deployment_group.as_ref(),
                &["rollout", "deployment_group"],
            ),
            container_port: container_port(ctx, raw),
            lifecycle_hooks: codedeploy_hooks(ctx, raw),
        },
        Strategy::EcsBlueGreen => {
            let service = service(ctx, raw, keep_revisions, pre_deploy);
            ImageRollout::EcsBlueGreen(super::ecs_blue_green::config::resolve(ctx, raw, service))
        }
        Strategy::TaskDefinitions => task_definitions(ctx, raw, keep_revisions, pre_deploy),
        _ => ImageRollout::None,
    }
}

fn service(
    ctx: Ctx<'_, '_, '_, '_>,
    raw: &RawRollout,
    keep_revisions: u32,
    pre_deploy: Option<PreDeploy>,
) -> EcsService {
    let health_check = raw
        .health_check
        .as_ref()
        .map(|h| health_check(ctx, h, &["rollout", "health_check"]));
    EcsService {
        cluster: ctx.require(raw.cluster.as_ref(), &["rollout", "cluster"]),
        service: ctx.require(raw.service.as_ref(), &["rollout", "service"]),
        container: ctx.require(raw.container.as_ref(), &["rollout", "container"]),
        keep_revisions,
        pre_deploy,
        health_check,
        timeout: ctx.duration(
            raw.timeout.as_ref(),
            &["rollout", "timeout"],
            Duration::from_secs(15 * 60),
            ROLLOUT_TIMEOUT,
        ),
        alarms: alarms(ctx, raw),
        fail_fast: raw.fail_fast.unwrap_or(false),
    }
}

fn task_definitions(
    ctx: Ctx<'_, '_, '_, '_>,
    raw: &RawRollout,
    keep_revisions: u32,
    pre_deploy: Option<PreDeploy>,
) -> ImageRollout {
    let families = raw.families.clone().unwrap_or_default();
    if families.is_empty() {
        let at: &[&str] = if raw.families.is_some() {
            &["rollout", "families"]
        } else {
            &["rollout"]
        };
        ctx.error(
            at,
            "strategy `task-definitions` needs `families`",
            Some("add `families = [\"<family>\", ...]`".into()),
        );
    }
    if pre_deploy.is_some() && raw.cluster.is_none() {
        ctx.error(
            &["rollout", "pre_deploy"],
            "`pre_deploy` runs a task and needs `cluster` in the rollout",
            Some("add `cluster = \"...\"`".into()),
        );
    }
    ImageRollout::TaskDefinitions(JobFamilies {
        families,
        container: ctx.require(raw.container.as_ref(), &["rollout", "container"]),
        cluster: raw.cluster.clone(),
        keep_revisions,
        pre_deploy,
        schedules: names(ctx, raw.schedules.as_ref(), "schedules", RULE),
        scheduler_schedules: names(
            ctx,
            raw.scheduler_schedules.as_ref(),
            "scheduler_schedules",
            SCHEDULE,
        ),
    })
}

/// How a kind of schedule is named in `deploy.toml`: `[container/]name`.
struct Naming {
    /// What the name is, for errors.
    what: &'static str,
    /// What may come before the `/`.
    container: &'static str,
    /// Characters a name (and its container) may have besides ASCII letters and digits.
    extra: &'static str,
    /// Extra characters only the container may have.
    container_extra: &'static str,
}

/// EventBridge rules: `rule` or `bus/rule` (a partner bus name has `/` in it).
const RULE: Naming = Naming {
    what: "EventBridge rule",
    container: "event bus",
    extra: ".-_",
    container_extra: "/",
};

/// EventBridge Scheduler schedules: `name` or `group/name`.
const SCHEDULE: Naming = Naming {
    what: "Scheduler schedule",
    container: "schedule group",
    extra: ".-_",
    container_extra: "",
};

/// Checks a list of schedule names (`schedules`, `scheduler_schedules`).
fn names(
    ctx: Ctx<'_, '_, '_, '_>,
    raw: Option<&Vec<String>>,
    key: &'static str,
    naming: Naming,
) -> Vec<String> {
    let list = raw.cloned().unwrap_or_default();
    for (i, full) in list.iter().enumerate() {
        let (container, name) = match full.rsplit_once('/') {
            Some((container, name)) => (Some(container), name),
            None => (None, full.as_str()),
        };
        let fits = |s: &str, extra: &str| {
            (1..=64).contains(&s.len())
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || extra.contains(c))
        };
        let container_extra = format!("{}{}", naming.extra, naming.container_extra);
        if fits(name, naming.extra) && container.is_none_or(|c| fits(c, &container_extra)) {
            continue;
        }
        let index = i.to_string();
        ctx.error(
            &["rollout", key, &index],
            format!(
                "`{full}` is not a valid {} name: 1 to 64 letters, digits or `{}`, optionally after `<{}>/`",
                naming.what, naming.extra, naming.container
            ),
            None,
        );
    }
    list
}

/// `lifecycle_hooks` of `codedeploy-blue-green`: functions by CodeDeploy hook event.
fn codedeploy_hooks(ctx: Ctx<'_, '_, '_, '_>, raw: &RawRollout) -> Vec<LifecycleHook> {
    use super::ecs_blue_green::config::{HookCaller, check_hook};
    let hooks = raw.lifecycle_hooks.iter().flatten().enumerate();
    hooks
        .map(|(i, hook)| {
            check_hook(ctx, i, hook, HookCaller::CodeDeploy);
            LifecycleHook {
                function: hook.function.clone(),
                stages: hook.stages.clone(),
                role: String::new(),
            }
        })
        .collect()
}

/// `container_port`: a port number (1 to 65535).
fn container_port(ctx: Ctx<'_, '_, '_, '_>, raw: &RawRollout) -> Option<u16> {
    if raw.container_port == Some(0) {
        ctx.error(
            &["rollout", "container_port"],
            "`container_port` is 0; it must be a port between 1 and 65535",
            None,
        );
    }
    raw.container_port
}

fn pre_deploy(ctx: Ctx<'_, '_, '_, '_>, raw: &RawPreDeploy) -> PreDeploy {
    let at = ["rollout", "pre_deploy", "task_definition"];
    if raw.task_definition.trim().is_empty() {
        ctx.error(&at, "`task_definition` must not be empty", None);
    } else {
        let home = ctx.home;
        ctx.problem(&at, task_definition_problem(&raw.task_definition, home));
    }
    PreDeploy {
        task_definition: raw.task_definition.clone(),
        command: raw.command.clone(),
        rollback_command: raw.rollback_command.clone(),
        timeout: ctx.duration(
            raw.timeout.as_ref(),
            &["rollout", "pre_deploy", "timeout"],
            Duration::from_secs(15 * 60),
            ROLLOUT_TIMEOUT,
        ),
    }
}

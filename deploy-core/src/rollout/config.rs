//! `[artifacts.<name>.rollout]` in `deploy.toml`: each strategy's settings, resolved once the
//! artifact's kind has accepted the strategy.

use std::time::Duration;

use super::{
    EcsService, HealthCheck, ImageRollout, JobFamilies, LambdaRollout, LifecycleHook, PreDeploy,
    Strategy,
};
use crate::config::aws_names::{alarm_problem, task_definition_problem};
use crate::config::checks::http_url_problem;
use crate::config::kind::ArtifactContext;
use crate::config::limits::{HEALTH_CHECK_TIMEOUT, KEEP_REVISIONS, ROLLOUT_TIMEOUT, STEP_INTERVAL};
use crate::config::raw::{RawHealthCheck, RawPreDeploy, RawRollout};

type Ctx<'c, 'r, 'm, 'l> = &'c mut ArtifactContext<'r, 'm, 'l>;

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

/// `alarms`: CloudWatch alarm names, each checked.
fn alarms(ctx: Ctx<'_, '_, '_, '_>, raw: &RawRollout) -> Vec<String> {
    let alarms = raw.alarms.clone().unwrap_or_default();
    for (i, name) in alarms.iter().enumerate() {
        let index = i.to_string();
        ctx.problem(&["rollout", "alarms", &index], alarm_problem(name));
    }
    alarms
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
        timeout: ctx.duration(
            raw.timeout.as_ref(),
            &["rollout", "pre_deploy", "timeout"],
            Duration::from_secs(15 * 60),
            ROLLOUT_TIMEOUT,
        ),
    }
}

fn health_check(ctx: Ctx<'_, '_, '_, '_>, raw: &RawHealthCheck, rel: &[&str]) -> HealthCheck {
    let at = |key: &'static str| {
        let mut at = rel.to_vec();
        at.push(key);
        at
    };
    ctx.problem(&at("url"), http_url_problem("health check URL", &raw.url));
    let status = raw.expect_status.unwrap_or(200);
    if !(100..=599).contains(&status) {
        ctx.error(
            &at("expect_status"),
            format!("`{status}` is not an HTTP status code"),
            Some("use 100-599".into()),
        );
    }
    if let Some(test) = &raw.test_url {
        ctx.problem(
            &at("test_url"),
            http_url_problem("health check test URL", test),
        );
    }
    HealthCheck {
        url: raw.url.clone(),
        test_url: raw.test_url.clone(),
        expect_status: status,
        expect_body: raw.expect_body.clone(),
        timeout: ctx.duration(
            raw.timeout.as_ref(),
            &at("timeout"),
            Duration::from_secs(120),
            HEALTH_CHECK_TIMEOUT,
        ),
    }
}

/// The rollout of a Lambda artifact without a `rollout` table: all traffic at once.
pub(crate) fn lambda_default() -> LambdaRollout {
    LambdaRollout {
        strategy: Strategy::LambdaAllAtOnce,
        steps: vec![100],
        interval: Duration::ZERO,
        alarms: Vec::new(),
        health_check: None,
        max_errors: None,
    }
}

/// The settings of a Lambda rollout (a `lambda-*` strategy, checked by the caller).
pub(crate) fn lambda(ctx: Ctx<'_, '_, '_, '_>, raw: &RawRollout) -> Option<LambdaRollout> {
    reject_unused_by_strategy(ctx, raw);
    let steps = steps(ctx, raw)?;
    let ordered = steps.windows(2).all(|w| w[0] < w[1]);
    if steps.last() != Some(&100) || !ordered || steps.first().is_some_and(|s| *s == 0) {
        ctx.error(
            &["rollout", "steps"],
            format!("traffic steps {steps:?} must rise strictly from above 0 to 100"),
            Some("write cumulative percentages, e.g. steps = [10, 50, 100]".into()),
        );
    }
    let interval = ctx.duration(
        raw.interval.as_ref(),
        &["rollout", "interval"],
        Duration::from_secs(300),
        STEP_INTERVAL,
    );
    let health_check = raw
        .health_check
        .as_ref()
        .map(|h| health_check(ctx, h, &["rollout", "health_check"]));
    Some(LambdaRollout {
        strategy: raw.strategy,
        steps,
        interval,
        alarms: alarms(ctx, raw),
        health_check,
        max_errors: raw.max_errors,
    })
}

/// Cumulative traffic percentages: written out, or made from `increment` for `lambda-linear`.
fn steps(ctx: Ctx<'_, '_, '_, '_>, raw: &RawRollout) -> Option<Vec<u32>> {
    Some(match (raw.strategy, &raw.steps, raw.increment) {
        (Strategy::LambdaAllAtOnce, _, _) => vec![100],
        (_, Some(steps), _) => steps.clone(),
        (Strategy::LambdaCanary, None, _) => vec![10, 100],
        (_, None, increment) => {
            let increment = increment.unwrap_or(10);
            if !(1..=100).contains(&increment) {
                ctx.error(
                    &["rollout", "increment"],
                    format!("`increment` {increment} is not a percentage between 1 and 100"),
                    None,
                );
                return None;
            }
            let mut steps: Vec<u32> = (1..)
                .map(|i| i * increment)
                .take_while(|s| *s < 100)
                .collect();
            steps.push(100);
            steps
        }
    })
}

/// The rollout keys `raw`'s strategy uses (beyond `strategy`).
fn used_keys(raw: &RawRollout) -> &'static [&'static str] {
    keys_of(raw.strategy, raw.steps.is_some())
}

/// The rollout keys `strategy` uses; `lambda-linear` takes `steps` or `increment`.
fn keys_of(strategy: Strategy, steps: bool) -> &'static [&'static str] {
    match strategy {
        Strategy::EcsRolling => &[
            "cluster",
            "service",
            "container",
            "pre_deploy",
            "keep_revisions",
            "health_check",
            "timeout",
            "alarms",
            "fail_fast",
        ],
        Strategy::CodedeployBlueGreen => &[
            "cluster",
            "service",
            "container",
            "application",
            "deployment_group",
            "container_port",
            "lifecycle_hooks",
            "pre_deploy",
            "keep_revisions",
            "health_check",
            "timeout",
        ],
        Strategy::EcsBlueGreen => &[
            "cluster",
            "service",
            "container",
            "pre_deploy",
            "keep_revisions",
            "health_check",
            "timeout",
            "alarms",
            "ecs_strategy",
            "bake",
            "canary",
            "linear",
            "lifecycle_hooks",
        ],
        Strategy::TaskDefinitions => &[
            "families",
            "container",
            "cluster",
            "keep_revisions",
            "pre_deploy",
            "schedules",
            "scheduler_schedules",
        ],
        Strategy::LambdaAllAtOnce => &["alarms", "max_errors", "health_check"],
        Strategy::LambdaCanary => &["steps", "interval", "alarms", "max_errors", "health_check"],
        Strategy::LambdaLinear if steps => {
            &["steps", "interval", "alarms", "max_errors", "health_check"]
        }
        Strategy::LambdaLinear => &[
            "increment",
            "interval",
            "alarms",
            "max_errors",
            "health_check",
        ],
        Strategy::None | Strategy::S3Sync => &[],
    }
}

/// The strategies that use `key`, for messages: `ecs-rolling, ecs-blue-green`.
fn owners(key: &str) -> String {
    let owners: Vec<&str> = Strategy::ALL
        .iter()
        .filter(|s| keys_of(**s, true).contains(&key) || keys_of(**s, false).contains(&key))
        .map(|s| s.as_str())
        .collect();
    owners.join(", ")
}

/// Rejects rollout keys that the chosen strategy does not use, naming the strategies that do.
/// When an environment override switches the strategy, keys left from the base artifact are
/// tolerated: they belong to the strategy the other environments use.
pub(crate) fn reject_unused_by_strategy(ctx: Ctx<'_, '_, '_, '_>, raw: &RawRollout) {
    let used = used_keys(raw);
    let set = [
        ("cluster", raw.cluster.is_some()),
        ("service", raw.service.is_some()),
        ("container", raw.container.is_some()),
        ("families", raw.families.is_some()),
        ("application", raw.application.is_some()),
        ("deployment_group", raw.deployment_group.is_some()),
        ("pre_deploy", raw.pre_deploy.is_some()),
        ("keep_revisions", raw.keep_revisions.is_some()),
        ("schedules", raw.schedules.is_some()),
        ("scheduler_schedules", raw.scheduler_schedules.is_some()),
        ("steps", raw.steps.is_some()),
        ("increment", raw.increment.is_some()),
        ("interval", raw.interval.is_some()),
        ("alarms", raw.alarms.is_some()),
        ("max_errors", raw.max_errors.is_some()),
        ("fail_fast", raw.fail_fast.is_some()),
        ("container_port", raw.container_port.is_some()),
        ("ecs_strategy", raw.ecs_strategy.is_some()),
        ("bake", raw.bake.is_some()),
        ("canary", raw.canary.is_some()),
        ("linear", raw.linear.is_some()),
        ("lifecycle_hooks", raw.lifecycle_hooks.is_some()),
        ("health_check", raw.health_check.is_some()),
        ("timeout", raw.timeout.is_some()),
    ];
    let strategy_overridden = ctx.in_override(&["rollout", "strategy"]);
    for (key, present) in set {
        if !present || used.contains(&key) {
            continue;
        }
        if strategy_overridden && !ctx.in_override(&["rollout", key]) {
            continue;
        }
        let takes = if used.is_empty() {
            "no other keys".to_owned()
        } else {
            used.join(", ")
        };
        ctx.error(
            &["rollout", key],
            format!(
                "`{key}` does not apply to strategy `{}`: it belongs to {} rollouts",
                raw.strategy,
                owners(key)
            ),
            Some(format!("remove it; `{}` takes: {takes}", raw.strategy)),
        );
    }
}

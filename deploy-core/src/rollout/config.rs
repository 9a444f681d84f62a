//! `[artifacts.<name>.rollout]` in `deploy.toml`: what every kind's rollout shares (health
//! checks, alarms) and the keys each strategy takes, so a key of another strategy is refused
//! naming the strategies it belongs to. Each kind resolves its own strategies' settings.

use std::time::Duration;

use super::{HealthCheck, Strategy};
use crate::config::aws_names::alarm_problem;
use crate::config::checks::http_url_problem;
use crate::config::kind::ArtifactContext;
use crate::config::limits::HEALTH_CHECK_TIMEOUT;
use crate::rollout::raw::{RawHealthCheck, RawRollout};

pub(crate) type Ctx<'c, 'r, 'm, 'l> = &'c mut ArtifactContext<'r, 'm, 'l>;

/// `alarms`: CloudWatch alarm names, each checked.
pub(crate) fn alarms(ctx: Ctx<'_, '_, '_, '_>, raw: &RawRollout) -> Vec<String> {
    let alarms = raw.alarms.clone().unwrap_or_default();
    for (i, name) in alarms.iter().enumerate() {
        let index = i.to_string();
        ctx.problem(&["rollout", "alarms", &index], alarm_problem(name));
    }
    alarms
}

pub(crate) fn health_check(
    ctx: Ctx<'_, '_, '_, '_>,
    raw: &RawHealthCheck,
    rel: &[&str],
) -> HealthCheck {
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

/// The rollout keys `raw`'s strategy uses (beyond `strategy`).
fn used_keys(raw: &RawRollout) -> &'static [&'static str] {
    raw.strategy.rollout_keys(raw.steps.is_some())
}

/// The strategies that use `key`, for messages: `ecs-rolling, ecs-blue-green`.
fn owners(key: &str) -> String {
    let owners: Vec<&str> = Strategy::ALL
        .iter()
        .filter(|s| {
            Strategy::rollout_keys(**s, true).contains(&key)
                || Strategy::rollout_keys(**s, false).contains(&key)
        })
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

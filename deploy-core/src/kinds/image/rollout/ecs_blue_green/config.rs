//! `strategy = "ecs-blue-green"` in `deploy.toml`: `ecs_strategy`, `bake`, `canary`, `linear`
//! and `lifecycle_hooks`, checked against the limits ECS documents
//! (`DeploymentConfiguration`, `CanaryConfiguration`, `LinearConfiguration`,
//! `DeploymentLifecycleHook`).

use std::time::Duration;

use crate::config::aws_names::{Home, function_problem, parse_function};
use crate::config::checks::Problem;
use crate::config::kind::ArtifactContext;
use crate::config::limits::DurationBounds;
use crate::kinds::image::rollout::{EcsBlueGreen, EcsService, LifecycleHook, TrafficShift};
use crate::rollout::raw::{RawLifecycleHook, RawRollout};

type Ctx<'c, 'r, 'm, 'l> = &'c mut ArtifactContext<'r, 'm, 'l>;

/// `bakeTimeInMinutes` and the step bakes: 0 to 1440 minutes.
const BAKE: DurationBounds = DurationBounds {
    min: Duration::ZERO,
    max: Duration::from_secs(1440 * 60),
};

/// The stages a hook may name.
pub const HOOK_STAGES: [&str; 7] = [
    "RECONCILE_SERVICE",
    "PRE_SCALE_UP",
    "POST_SCALE_UP",
    "TEST_TRAFFIC_SHIFT",
    "POST_TEST_TRAFFIC_SHIFT",
    "PRODUCTION_TRAFFIC_SHIFT",
    "POST_PRODUCTION_TRAFFIC_SHIFT",
];

/// The settings of an `ecs-blue-green` rollout of `service`.
pub(crate) fn resolve(
    ctx: Ctx<'_, '_, '_, '_>,
    raw: &RawRollout,
    service: EcsService,
) -> EcsBlueGreen {
    let shift = shift(ctx, raw);
    let bake_minutes = minutes(ctx, raw.bake.as_ref(), &["rollout", "bake"], Duration::ZERO);
    let lifecycle_hooks = raw
        .lifecycle_hooks
        .iter()
        .flatten()
        .enumerate()
        .map(|(i, hook)| self::hook(ctx, i, hook))
        .collect();
    EcsBlueGreen {
        service,
        shift,
        bake_minutes,
        lifecycle_hooks,
    }
}

/// A duration in whole minutes within [`BAKE`]; one with a remainder is refused (ECS takes
/// minutes, so it would be cut short), naming the whole minutes on either side.
fn minutes(ctx: Ctx<'_, '_, '_, '_>, text: Option<&String>, at: &[&str], default: Duration) -> u32 {
    let duration = ctx.duration(text, at, default, BAKE);
    if let Some(message) = not_whole_minutes(at.last().copied().unwrap_or_default(), duration) {
        ctx.error(
            at,
            message,
            Some("ECS counts bake time in whole minutes".into()),
        );
    }
    u32::try_from(duration.as_secs() / 60).unwrap_or(u32::MAX)
}

/// "`bake` must be whole minutes: 90s is not a whole number of minutes; use 1m or 2m".
fn not_whole_minutes(key: &str, duration: Duration) -> Option<String> {
    if duration.as_millis().is_multiple_of(60_000) {
        return None;
    }
    let below = duration.as_secs() / 60;
    let above = below + 1;
    let shown = crate::config::limits::format_duration(duration);
    Some(format!(
        "`{key}` must be whole minutes: {shown} is not a whole number of minutes; use {below}m or {above}m"
    ))
}

fn shift(ctx: Ctx<'_, '_, '_, '_>, raw: &RawRollout) -> TrafficShift {
    let strategy = raw.ecs_strategy.as_deref().unwrap_or("BLUE_GREEN");
    let misplaced = |ctx: Ctx<'_, '_, '_, '_>, key: &str, present: bool| {
        if present {
            ctx.error(
                &["rollout", key],
                format!("`{key}` does not apply to ecs_strategy `{strategy}`"),
                None,
            );
        }
    };
    match strategy {
        "BLUE_GREEN" => {
            misplaced(ctx, "canary", raw.canary.is_some());
            misplaced(ctx, "linear", raw.linear.is_some());
            TrafficShift::BlueGreen
        }
        "CANARY" => {
            misplaced(ctx, "linear", raw.linear.is_some());
            let Some(canary) = &raw.canary else {
                ctx.error(
                    &["rollout"],
                    "ecs_strategy `CANARY` needs `canary`",
                    Some("add `canary = { percent = 10, bake = \"5m\" }`".into()),
                );
                return TrafficShift::BlueGreen;
            };
            percent(ctx, canary.percent, &["rollout", "canary", "percent"], 0.1);
            let bake = minutes(
                ctx,
                canary.bake.as_ref(),
                &["rollout", "canary", "bake"],
                Duration::from_secs(600),
            );
            TrafficShift::Canary {
                percent: canary.percent,
                bake_minutes: bake,
            }
        }
        "LINEAR" => {
            misplaced(ctx, "canary", raw.canary.is_some());
            let Some(linear) = &raw.linear else {
                ctx.error(
                    &["rollout"],
                    "ecs_strategy `LINEAR` needs `linear`",
                    Some("add `linear = { percent = 25, interval = \"5m\" }`".into()),
                );
                return TrafficShift::BlueGreen;
            };
            percent(ctx, linear.percent, &["rollout", "linear", "percent"], 3.0);
            let interval = minutes(
                ctx,
                linear.interval.as_ref(),
                &["rollout", "linear", "interval"],
                Duration::from_secs(360),
            );
            TrafficShift::Linear {
                percent: linear.percent,
                interval_minutes: interval,
            }
        }
        other => {
            ctx.error(
                &["rollout", "ecs_strategy"],
                format!("`ecs_strategy` is `{other}`; it must be BLUE_GREEN, CANARY or LINEAR"),
                None,
            );
            TrafficShift::BlueGreen
        }
    }
}

fn percent(ctx: Ctx<'_, '_, '_, '_>, value: f64, at: &[&str], min: f64) {
    if !(min..=100.0).contains(&value) {
        ctx.error(
            at,
            format!("`percent` is {value}; it must be between {min} and 100"),
            None,
        );
    }
}

/// The hook events of a CodeDeploy ECS deployment that may run a function.
pub const CODEDEPLOY_HOOKS: [&str; 5] = [
    "BeforeInstall",
    "AfterInstall",
    "AfterAllowTestTraffic",
    "BeforeAllowTraffic",
    "AfterAllowTraffic",
];

/// Who calls a hook function, which decides its stages and whether it names a role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HookCaller {
    /// ECS, through the hook's `role`.
    Ecs,
    /// CodeDeploy, with the deployment group's service role (no `role`).
    CodeDeploy,
}

fn hook(ctx: Ctx<'_, '_, '_, '_>, i: usize, raw: &RawLifecycleHook) -> LifecycleHook {
    check_hook(ctx, i, raw, HookCaller::Ecs);
    LifecycleHook {
        function: raw.function.clone(),
        stages: raw.stages.clone(),
        role: raw.role.clone().unwrap_or_default(),
    }
}

/// Why `function` cannot be a hook target: not a full Lambda function ARN, or one of another
/// account or region than `home`.
fn hook_function_problem(function: &str, home: Home<'_>) -> Option<Problem> {
    let is_arn = parse_function(function).is_ok_and(|f| f.region.is_some());
    if !is_arn {
        return Some(Problem::new(
            format!("`{function}` is not a Lambda function ARN"),
            "write arn:aws:lambda:<region>:<account>:function:<name> (`{region}` and `{account}` are filled in)",
        ));
    }
    function_problem(function, home)
}

/// Checks `lifecycle_hooks[i]` for `caller`.
pub(crate) fn check_hook(
    ctx: Ctx<'_, '_, '_, '_>,
    i: usize,
    raw: &RawLifecycleHook,
    caller: HookCaller,
) {
    let index = i.to_string();
    let at =
        |key: &'static str| ["rollout", "lifecycle_hooks", index.as_str(), key].map(str::to_owned);
    let function_at = at("function");
    let function_rel: Vec<&str> = function_at.iter().map(String::as_str).collect();
    let home = ctx.home;
    ctx.problem(&function_rel, hook_function_problem(&raw.function, home));
    let role_at = at("role");
    let role_at: Vec<&str> = role_at.iter().map(String::as_str).collect();
    match (&raw.role, caller) {
        (Some(role), HookCaller::Ecs) if !role.starts_with("arn:") || !role.contains(":role/") => {
            ctx.error(&role_at, format!("`{role}` is not an IAM role ARN"), None);
        }
        (None, HookCaller::Ecs) => {
            let at: Vec<&str> = function_at.iter().map(String::as_str).collect();
            ctx.error(&at[..3], "an ECS lifecycle hook needs `role`, the role ECS calls the function with", None);
        }
        (Some(_), HookCaller::CodeDeploy) => ctx.error(
            &role_at,
            "`role` does not apply to codedeploy-blue-green: CodeDeploy calls hooks with the deployment group's service role",
            None,
        ),
        _ => {}
    }
    let allowed: &[&str] = match caller {
        HookCaller::Ecs => &HOOK_STAGES,
        HookCaller::CodeDeploy => &CODEDEPLOY_HOOKS,
    };
    let stages_at = at("stages");
    let at: Vec<&str> = stages_at.iter().map(String::as_str).collect();
    if raw.stages.is_empty() {
        ctx.error(&at, "a lifecycle hook needs at least one stage", None);
    }
    for stage in raw.stages.iter().filter(|s| !allowed.contains(&s.as_str())) {
        ctx.error(
            &at,
            format!(
                "`{stage}` is not a lifecycle stage; use one of {}",
                allowed.join(", ")
            ),
            None,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bake_times_are_whole_minutes_or_name_the_neighbours() {
        for whole in [0, 60, 120, 1440 * 60] {
            assert_eq!(not_whole_minutes("bake", Duration::from_secs(whole)), None);
        }
        let message = not_whole_minutes("bake", Duration::from_secs(90)).expect("refused");
        assert_eq!(
            message,
            "`bake` must be whole minutes: 90s is not a whole number of minutes; use 1m or 2m"
        );
        let short = not_whole_minutes("interval", Duration::from_secs(30)).expect("refused");
        assert!(short.ends_with("use 0m or 1m"), "{short}");
        assert!(not_whole_minutes("bake", Duration::from_millis(60_500)).is_some());
    }
}

//! `[artifacts.<name>.rollout]` of a Lambda function: the alias shift's steps, interval and gates.

use std::time::Duration;

use super::LambdaRollout;
use crate::config::limits::STEP_INTERVAL;
use crate::rollout::Strategy;
use crate::rollout::config::{Ctx, alarms, health_check, reject_unused_by_strategy};
use crate::rollout::raw::RawRollout;

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

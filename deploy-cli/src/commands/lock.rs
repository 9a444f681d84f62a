use std::io::BufRead;

use deploy_core::config::Config;
use deploy_core::ledger::LedgerError;
use deploy_core::lock::{ForceReleased, LockError, LockInfo, LockState, rfc3339};
use deploy_core::ops;

use super::UsageError;
use crate::cli::{LockAction, LockArgs};
use crate::output::Output;

pub async fn lock(out: &Output, config: Config, args: &LockArgs) -> deploy_core::Result<()> {
    match args.action {
        LockAction::Status => {
            let state = ops::lock_status(&config, &args.env).await?;
            if out.json() {
                out.document(&state);
            } else {
                out.line(describe(&args.env, &state));
            }
            Ok(())
        }
        LockAction::Release => release(out, &config, args).await,
    }
}

async fn release(out: &Output, config: &Config, args: &LockArgs) -> deploy_core::Result<()> {
    let env = args.env.as_str();
    let (what, document) = match ops::lock_status(config, env).await {
        Ok(LockState::Free { .. }) => (None, serde_json::Value::Null),
        Ok(LockState::Held(info) | LockState::Expired(info)) => (
            Some(lease(&info)),
            serde_json::to_value(&info).map_err(deploy_core::Error::failure)?,
        ),
        Err(ops::OpsError::Lock(LockError::Ledger(LedgerError::Corrupt { detail, .. }))) => (
            Some("the unreadable lock document".to_owned()),
            serde_json::json!({ "unreadable": detail }),
        ),
        Err(err) => return Err(err.into()),
    };
    let Some(what) = what else {
        if out.json() {
            out.document(&serde_json::json!({ "released": null }));
        } else {
            out.line(format!(
                "environment {env} is not locked; nothing to release"
            ));
        }
        return Ok(());
    };
    if args.dry_run {
        if out.json() {
            out.document(&serde_json::json!({ "dry_run": true, "would_release": document }));
        } else {
            out.line(format!(
                "would force-release {what} (dry run, nothing changed)"
            ));
        }
        return Ok(());
    }
    confirm(out, args.yes, &format!("force-release {what}?"))?;
    let (released, actor) = ops::force_unlock(config, env).await?;
    if out.json() {
        let released = match &released {
            ForceReleased::Lease(info) => {
                serde_json::to_value(info).map_err(deploy_core::Error::failure)?
            }
            ForceReleased::Unreadable { detail } => serde_json::json!({ "unreadable": detail }),
            ForceReleased::Nothing => serde_json::Value::Null,
        };
        out.document(&serde_json::json!({ "released": released, "by": actor }));
        return Ok(());
    }
    out.line(match released {
        ForceReleased::Lease(info) => {
            format!("released {}; recorded as done by {actor}", lease(&info))
        }
        ForceReleased::Unreadable { .. } => {
            format!("cleared the unreadable lock document; recorded as done by {actor}")
        }
        ForceReleased::Nothing => {
            format!("environment {env} was released meanwhile; nothing to do")
        }
    });
    Ok(())
}

fn lease(info: &LockInfo) -> String {
    format!(
        "the lock held by {} since {} for `{}`",
        info.holder,
        rfc3339(info.acquired_at),
        info.operation
    )
}

fn describe(env: &str, state: &LockState) -> String {
    match state {
        LockState::Free { last: None } => format!("{env}: free (never locked)"),
        LockState::Free { last: Some(info) } => {
            let by = info.released.as_ref().map(|r| {
                let how = if r.forced {
                    "force-released"
                } else {
                    "released"
                };
                format!(", {how} by {} at {}", r.by.user, rfc3339(r.at))
            });
            format!(
                "{env}: free (last held by {}{})",
                info.holder,
                by.unwrap_or_default()
            )
        }
        LockState::Held(info) => format!(
            "{env}: locked by {} since {} for `{}`, lease until {}",
            info.holder,
            rfc3339(info.acquired_at),
            info.operation,
            rfc3339(info.expires_at)
        ),
        LockState::Expired(info) => format!(
            "{env}: lease of {} expired at {} without release (holder gone?); the next deploy takes it over",
            info.holder,
            rfc3339(info.expires_at)
        ),
    }
}

/// Asks on a terminal; without one, `--yes` is required.
fn confirm(out: &Output, yes: bool, question: &str) -> deploy_core::Result<()> {
    if yes {
        return Ok(());
    }
    if !out.interactive() {
        return Err(UsageError(format!(
            "{question} Pass --yes to confirm (no terminal to ask on)"
        ))
        .into());
    }
    eprint!("{question} [y/N] ");
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(deploy_core::Error::failure)?;
    if matches!(answer.trim(), "y" | "Y" | "yes") {
        Ok(())
    } else {
        Err(UsageError("not confirmed; nothing changed".into()).into())
    }
}

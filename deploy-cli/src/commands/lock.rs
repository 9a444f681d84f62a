use std::io::BufRead;

use deploy_core::config::Config;
use deploy_core::ledger::{Actor, Ledger};
use deploy_core::lock::{EnvLock, LockInfo, LockSettings, LockState, rfc3339};

use super::{UsageError, clients};
use crate::cli::{LockAction, LockArgs};
use crate::output::Output;

pub async fn lock(out: &Output, config: Config, args: &LockArgs) -> anyhow::Result<()> {
    let env = config.environment(&args.env)?;
    let clients = clients(&config, env).await;
    let ledger = Ledger::new(clients.s3.clone(), &env.target);
    let lock = EnvLock::new(
        ledger,
        &env.name,
        LockSettings::with_ttl(config.settings.lock_ttl),
    );
    match args.action {
        LockAction::Status => {
            let state = lock.status().await?;
            if out.json() {
                out.document(&state);
            } else {
                out.line(describe(&env.name, &state));
            }
            Ok(())
        }
        LockAction::Release => {
            let identity = clients.verify_account().await?;
            let state = lock.status().await?;
            let current = match &state {
                LockState::Free { .. } => None,
                LockState::Held(info) | LockState::Expired(info) => Some(info),
            };
            let Some(info) = current else {
                if out.json() {
                    out.document(&serde_json::json!({ "released": null, "state": state }));
                } else {
                    out.line(format!(
                        "environment {} is not locked; nothing to release",
                        env.name
                    ));
                }
                return Ok(());
            };
            if args.dry_run {
                if out.json() {
                    out.document(&serde_json::json!({ "dry_run": true, "would_release": info }));
                } else {
                    out.line(format!(
                        "would force-release {} (dry run, nothing changed)",
                        lease(info)
                    ));
                }
                return Ok(());
            }
            confirm(out, args.yes, &format!("force-release {}?", lease(info)))?;
            let mut actor = Actor::detect();
            actor.aws_arn = Some(identity.arn);
            let released = lock.force_release(&actor).await?;
            if out.json() {
                out.document(&serde_json::json!({ "released": released, "by": actor }));
            } else {
                match released {
                    Some(info) => out.line(format!(
                        "released {}; recorded as done by {actor}",
                        lease(&info)
                    )),
                    None => out.line(format!(
                        "environment {} was released meanwhile; nothing to do",
                        env.name
                    )),
                }
            }
            Ok(())
        }
    }
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
fn confirm(out: &Output, yes: bool, question: &str) -> anyhow::Result<()> {
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
    std::io::stdin().lock().read_line(&mut answer)?;
    if matches!(answer.trim(), "y" | "Y" | "yes") {
        Ok(())
    } else {
        Err(UsageError("not confirmed; nothing changed".into()).into())
    }
}

//! `lock`: what holds an environment's lock, and forcing it free when its holder is gone.
//! Forcing is recorded (a lock event naming who forced it, checked against the account first).

use super::{OpsError, clients};
use crate::aws::AwsClients;
use crate::config::Config;
use crate::ledger::{Actor, Ledger};
use crate::lock::{EnvLock, ForceReleased, LockSettings, LockState};

/// The lock of `environment`, and the clients to reach it.
async fn env_lock(config: &Config, environment: &str) -> Result<(EnvLock, AwsClients), OpsError> {
    let env = config.environment(environment)?;
    let clients = clients(config, env).await;
    let ledger = Ledger::new(clients.s3.clone(), &env.target);
    let settings = LockSettings::with_ttl(config.settings.lock_ttl);
    Ok((EnvLock::new(ledger, &env.name, settings), clients))
}

/// The state of `environment`'s lock: free (and who held it last), held, or expired.
pub async fn lock_status(config: &Config, environment: &str) -> Result<LockState, OpsError> {
    let (lock, _) = env_lock(config, environment).await?;
    Ok(lock.status().await?)
}

/// Forces `environment`'s lock free, whoever holds it (or clears a lock document nobody can
/// read), after checking the credentials are for the environment's account; records it as
/// done by the caller, who is returned with what was released.
pub async fn force_unlock(
    config: &Config,
    environment: &str,
) -> Result<(ForceReleased, Actor), OpsError> {
    let (lock, clients) = env_lock(config, environment).await?;
    let identity = clients.verify_account().await?;
    let mut actor = Actor::detect();
    actor.aws_arn = Some(identity.arn);
    let released = lock.force_release_any(&actor).await?;
    Ok((released, actor))
}

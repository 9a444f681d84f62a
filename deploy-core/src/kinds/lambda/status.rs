//! What a Lambda alias serves now, for `status`, and how that drifted from what the ledger says
//! is live: the alias on another version, routing weights left on it (a shift that never
//! finished), or a version whose code is not the recorded `CodeSha256`.

use super::{LambdaRef, LambdaSpec};
use crate::aws::{AwsClients, SdkFailure};
use crate::kinds::lambda::shift::alias::Alias;
use crate::kinds::{Drift, Running};
use crate::ledger::ArtifactStatus;

/// What `spec`'s alias serves, compared with the live release in `status`.
pub(crate) async fn running(
    clients: &AwsClients,
    spec: &LambdaSpec,
    status: &ArtifactStatus,
) -> Running {
    let object = format!("{}:{}", spec.function, spec.alias);
    let live = status.live.as_ref().and_then(|p| p.artifact_ref.as_ref());
    let live = live.and_then(|r| r.decode::<LambdaRef>());
    let lambda = clients.lambda();
    let alias = match Alias::new(lambda, &spec.function, &spec.alias).read().await {
        Ok(Some(alias)) => alias,
        Ok(None) => {
            let drift = live.map(|_| Drift::new(&object, "the alias does not exist"));
            return Running::read(object, None, drift.into_iter().collect());
        }
        Err(err) => return Running::unreadable(object, err),
    };
    let version = alias.version.clone();
    let routing = alias.routing_lines().into_iter();
    let mut drift: Vec<Drift> = routing
        .map(|line| Drift::new(&object, format!("routing left: {line}")))
        .collect();
    if let Some(live) = &live {
        drift.extend(versus_live(clients, spec, &object, &version, live).await);
    }
    Running::read(object, Some(format!("version {version}")), drift)
}

/// The alias on another version than the live release's, or the version's code not the
/// recorded one.
async fn versus_live(
    clients: &AwsClients,
    spec: &LambdaSpec,
    object: &str,
    version: &str,
    live: &LambdaRef,
) -> Vec<Drift> {
    let mut drift = Vec::new();
    if let Some(recorded) = &live.function_version
        && recorded != version
    {
        let difference = format!("on version {version}, the live release is version {recorded}");
        drift.push(Drift::new(object, difference));
    }
    let answer = clients
        .lambda()
        .get_function_configuration()
        .function_name(&spec.function)
        .qualifier(version)
        .send()
        .await;
    let versioned = format!("{}:{version}", spec.function);
    match answer {
        Ok(config) if config.code_sha256() == Some(live.code_sha256.as_str()) => {}
        Ok(config) => drift.push(Drift::new(
            versioned,
            format!(
                "runs code {}, the live release is {}",
                config.code_sha256().unwrap_or("?"),
                live.code_sha256
            ),
        )),
        Err(err) => drift.push(Drift::new(
            versioned,
            format!("cannot be read: {}", SdkFailure::new(err)),
        )),
    }
    drift
}

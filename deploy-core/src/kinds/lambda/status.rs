//! What a Lambda alias serves now, for `status`, and how that drifted from what the ledger says
//! is live: the alias on another version, routing weights left on it (a shift that never
//! finished), or a version whose code is not the recorded `CodeSha256`.

use super::{LambdaRef, LambdaSpec};
use crate::aws::{AwsClients, SdkFailure};
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
    let answer = clients
        .lambda()
        .get_alias()
        .function_name(&spec.function)
        .name(&spec.alias)
        .send()
        .await;
    let alias = match answer {
        Ok(alias) => alias,
        Err(err)
            if err
                .as_service_error()
                .is_some_and(|e| e.is_resource_not_found_exception()) =>
        {
            let drift = live.map(|_| Drift::new(&object, "the alias does not exist"));
            return Running {
                object,
                runs: None,
                drift: drift.into_iter().collect(),
                problem: None,
            };
        }
        Err(err) => return Running::unreadable(object, SdkFailure::new(err)),
    };
    let version = alias.function_version().unwrap_or_default().to_owned();
    let mut drift = routing_left(&object, &alias);
    if let Some(live) = &live {
        drift.extend(versus_live(clients, spec, &object, &version, live).await);
    }
    Running {
        object,
        runs: Some(format!("version {version}")),
        drift,
        problem: None,
    }
}

/// Routing weights left on the alias: traffic split between two versions.
fn routing_left(
    object: &str,
    alias: &aws_sdk_lambda::operation::get_alias::GetAliasOutput,
) -> Vec<Drift> {
    let weights = alias
        .routing_config()
        .and_then(|r| r.additional_version_weights());
    let mut weights: Vec<_> = weights.into_iter().flatten().collect();
    weights.sort_by(|a, b| a.0.cmp(b.0));
    weights
        .into_iter()
        .map(|(version, weight)| {
            let percent = weight * 100.0;
            Drift::new(
                object,
                format!("routing left: {percent:.0}% to version {version}"),
            )
        })
        .collect()
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

//! Whether an image release would change nothing: the source's digest is the one the live
//! release recorded and the repository still holds it. The publish then answers
//! [`Preflight::Unchanged`] and leaves the live image ([`ImageOutput`]) for the rollout's
//! preflight, which compares what the service runs with what it would register.

use super::ImageRef;
use super::publish::{self, PublishError};
use super::steps::ImageOutput;
use crate::engine::{Preflight, StepContext, StepError};
use crate::ledger::{Ledger, PointerKind};
use crate::registry::RegistrySettings;

/// The publish's answer for `digest` (what the source resolves to) in `repository`.
pub(super) async fn publish(
    cx: &StepContext<'_>,
    artifact: &str,
    (repository, digest): (&str, &str),
    settings: RegistrySettings,
) -> Result<Preflight, StepError> {
    if !cx.plan().operation.changes_live() {
        return Ok(Preflight::Changes);
    }
    let clients = cx.clients();
    let live = Ledger::new(clients.s3.clone(), &clients.target)
        .pointer(artifact, PointerKind::Live)
        .await?;
    let live = live.and_then(|p| Some(p.value.release_id).zip(p.value.artifact_ref));
    let Some((release_id, reference)) = live else {
        return Ok(Preflight::Changes);
    };
    let same = reference
        .decode::<ImageRef>()
        .is_some_and(|r| r.digest == digest && r.repository == repository);
    if !same {
        return Ok(Preflight::Changes);
    }
    let registry =
        match publish::restore_check(clients, settings, (repository, digest), &release_id).await {
            Ok(registry) => registry,
            // Gone from the repository: the release pushes it again.
            Err(PublishError::RestoreGone { .. }) => return Ok(Preflight::Changes),
            Err(err) => return Err(err.into()),
        };
    cx.put(
        artifact,
        ImageOutput {
            registry,
            repository: repository.to_owned(),
            digest: digest.to_owned(),
        },
    );
    Ok(Preflight::Unchanged)
}

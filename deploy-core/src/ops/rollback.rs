//! Rollback: an environment goes back to an earlier release of an artifact, restored from what
//! the ledger recorded of it (for DAGs, the exact S3 object versions). The release is the
//! newest earlier one that succeeded with other content than the live one, or the one named.

use super::release::dedup;
use super::{Confirm, OpsError, Prepared, clients};
use crate::config::Config;
use crate::kinds::ArtifactSpec;
use futures::{StreamExt, TryStreamExt};

use crate::ledger::{ArtifactRef, Ledger, LedgerError, Operation, Outcome, Pointer, ReleaseRecord};
use crate::plan::{Plan, PlanRequest, PromoteSource};

/// How far back a rollback looks for the release to restore, in records.
pub const ROLLBACK_DEPTH: usize = 100;

/// A rollback of some artifacts (all when empty) of one environment.
#[derive(Debug, Clone, Copy)]
pub struct RollbackRequest<'a> {
    /// The environment.
    pub environment: &'a str,
    /// The artifacts; empty: all of them.
    pub artifacts: &'a [String],
    /// The release to go back to (one artifact only); `None`: the previous good one.
    pub to: Option<&'a str>,
    /// Shift traffic back with the configured canary/linear steps and gates (`--gradual`)
    /// instead of all at once.
    pub gradual: bool,
    /// Approval and dry run.
    pub confirm: Confirm,
}

/// Prepares a rollback: every artifact must have a release to go back to; approval where
/// `approval = true`. Each kind restores what the release recorded, without rebuilding or
/// uploading anything: an image's digest and task definition revision, the DAG files' object
/// versions, a Lambda function's version.
pub async fn rollback(
    config: &Config,
    request: &RollbackRequest<'_>,
) -> Result<Prepared, OpsError> {
    let env = config.environment(request.environment)?;
    let artifacts = env.select(&dedup(request.artifacts))?;
    check_request(request, &artifacts)?;
    let confirm = request.confirm;
    if env.approval && !confirm.approve && !confirm.dry_run {
        return Err(OpsError::ApprovalRequired {
            environment: request.environment.to_owned(),
            what: "a rollback changes what runs there".into(),
        });
    }
    let clients = clients(config, env).await;
    clients.verify_account().await?;
    let names: Vec<String> = artifacts.iter().map(|a| a.name.clone()).collect();
    let ledger = Ledger::new(clients.s3.clone(), &env.target);
    let status = ledger.status(&names).await?;
    let mut sources = Vec::new();
    for artifact in &status {
        let found = find(
            &ledger,
            &artifact.artifact,
            artifact.live.as_ref(),
            request.to,
        )
        .await?;
        let source = found.and_then(|record| {
            Some(PromoteSource {
                artifact: artifact.artifact.clone(),
                environment: request.environment.to_owned(),
                release_id: record.id,
                version: record.version,
                artifact_ref: record.artifact_ref?,
                commit_time: record.commit_time,
                touched: record.touched,
            })
        });
        sources.push(source.ok_or_else(|| {
            nothing_to_restore(request, &artifact.artifact, artifact.live.is_some())
        })?);
    }
    let plan = Plan::build(&PlanRequest {
        environment: env,
        artifacts,
        operation: Operation::Rollback,
        version: match sources.as_slice() {
            [one] => one.version.clone(),
            _ => None,
        },
        config_sha256: config.sha256(),
        lock_ttl: config.settings.lock_ttl,
        status: &status,
        promote: &sources,
        gradual: request.gradual,
        commit_time: None,
    });
    Ok(Prepared {
        plan,
        clients,
        sources: Vec::new(),
    })
}

fn check_request(
    request: &RollbackRequest<'_>,
    artifacts: &[&ArtifactSpec],
) -> Result<(), OpsError> {
    if request.to.is_some() && artifacts.len() != 1 {
        return Err(OpsError::Usage(
            "a release id (--to) belongs to one artifact; name that artifact".into(),
        ));
    }
    Ok(())
}

/// The newest of `artifact`'s newest [`ROLLBACK_DEPTH`] records that [`restores`] accepts:
/// one listing, then records read newest first (a few at a time) until one is found. With `to`
/// only that record is read.
async fn find(
    ledger: &Ledger,
    artifact: &str,
    live: Option<&Pointer>,
    to: Option<&str>,
) -> Result<Option<ReleaseRecord>, LedgerError> {
    let keys = ledger
        .newest_keys(&[artifact.to_owned()], ROLLBACK_DEPTH)
        .await?;
    let named = to.map(|id| format!("-{id}.json"));
    let keys = keys
        .into_iter()
        .filter(|key| named.as_ref().is_none_or(|n| key.ends_with(n.as_str())));
    let mut records = futures::stream::iter(keys)
        .map(|key| async move { ledger.record(&key).await })
        .buffered(4);
    while let Some(record) = records.try_next().await? {
        if let Some(record) = record.filter(|r| restores(r, live, to)) {
            return Ok(Some(record));
        }
    }
    Ok(None)
}

/// Whether `record` is the release to restore: `to` when given (it must have succeeded), else
/// an earlier succeeded release than the live one that changed what ran and recorded other
/// content.
fn restores(record: &ReleaseRecord, live: Option<&Pointer>, to: Option<&str>) -> bool {
    let restorable = matches!(record.outcome, Outcome::Succeeded)
        && record.operation.changes_live()
        && record.artifact_ref.is_some();
    if let Some(to) = to {
        let named = record.id == to || crate::ledger::short_release_id(&record.id) == to;
        return restorable && named;
    }
    let Some(live) = live else {
        return false;
    };
    restorable
        && record.id < live.release_id
        && record.artifact_ref.as_ref().map(ArtifactRef::content_id)
            != live.artifact_ref.as_ref().map(ArtifactRef::content_id)
}

fn nothing_to_restore(request: &RollbackRequest<'_>, artifact: &str, has_live: bool) -> OpsError {
    let env = request.environment;
    OpsError::Usage(match (request.to, has_live) {
        (Some(to), _) => format!(
            "release {to} is not among the newest {ROLLBACK_DEPTH} succeeded releases of `{artifact}` in {env}; `deploy history {env} {artifact}` lists them"
        ),
        (None, false) => {
            format!("nothing of `{artifact}` is live in {env}, so there is nothing to roll back")
        }
        (None, true) => format!(
            "`{artifact}` has no earlier succeeded release with other content in {env} (newest {ROLLBACK_DEPTH} records)"
        ),
    })
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;
    use crate::catalog::ArtifactKind;

    /// The first of `history` (newest first) that [`restores`] accepts, as [`find`] reads it.
    fn choose<'h>(
        live: Option<&Pointer>,
        history: &'h [ReleaseRecord],
        to: Option<&str>,
    ) -> Option<&'h ReleaseRecord> {
        history.iter().find(|r| restores(r, live, to))
    }
    use crate::ledger::{Actor, SCHEMA};

    /// A reference as a DAG release records it: same content, files in other versions.
    fn dags(hash: &str, version_id: &str) -> ArtifactRef {
        serde_json::from_value(serde_json::json!({
            "kind": "dags",
            "content_id": hash,
            "content_hash": hash,
            "files": [{"path": "a.py", "sha256": hash, "version_id": version_id}],
            "location": "s3://b/dags/",
        }))
        .expect("a reference")
    }

    /// Newest first, as `Ledger::history` answers: ids sort by time.
    fn history(entries: &[(Operation, &str, &str, bool)]) -> Vec<ReleaseRecord> {
        let start = datetime!(2026-01-01 00:00 UTC);
        let count = entries.len();
        entries
            .iter()
            .enumerate()
            .map(|(i, (operation, hash, version_id, ok))| {
                let at = start + time::Duration::minutes((count - i) as i64);
                ReleaseRecord {
                    schema: SCHEMA,
                    id: crate::ledger::new_release_id(at),
                    project: "p".into(),
                    environment: "dev".into(),
                    artifact: "dags".into(),
                    kind: ArtifactKind::Dags,
                    operation: *operation,
                    version: Some(format!("v{}", count - i)),
                    artifact_ref: Some(dags(hash, version_id)),
                    source_environment: None,
                    started_at: at,
                    finished_at: at,
                    actor: Actor::detect(),
                    touched: vec![],
                    outcome: if *ok {
                        Outcome::Succeeded
                    } else {
                        Outcome::Failed { error: "x".into() }
                    },
                    previous: None,
                    restored: None,
                    commit_time: None,
                    dirty: false,
                    plan_id: None,
                }
            })
            .collect()
    }

    fn live(record: &ReleaseRecord) -> Pointer {
        Pointer {
            schema: SCHEMA,
            release_id: record.id.clone(),
            record_key: String::new(),
            operation: record.operation,
            version: record.version.clone(),
            artifact_ref: record.artifact_ref.clone(),
            updated_at: record.finished_at,
            commit_time: None,
            actor: record.actor.clone(),
        }
    }

    #[test]
    fn the_previous_good_release_skips_failures_publishes_and_the_same_content() {
        use Operation::*;
        let records = history(&[
            (Release, "c3", "3", true),  // live
            (Release, "c3", "3", true),  // a no-op release before it: same content
            (Release, "c9", "9", false), // failed
            (Publish, "c8", "8", true),  // never ran
            (Release, "c2", "2", true),  // the one
            (Release, "c1", "1", true),
        ]);
        let pointer = live(&records[0]);
        let chosen = choose(Some(&pointer), &records, None).expect("a release");
        assert_eq!(chosen.id, records[4].id);
        let named = choose(Some(&pointer), &records, Some(&records[5].id)).expect("named");
        assert_eq!(named.id, records[5].id);
        let short = crate::ledger::short_release_id(&records[5].id);
        assert_eq!(short.len(), 8, "{short}");
        let by_short = choose(Some(&pointer), &records, Some(short)).expect("short");
        assert_eq!(by_short.id, records[5].id, "the short form names it too");
        assert!(
            choose(Some(&pointer), &records, Some(&records[2].id)).is_none(),
            "failed"
        );
        assert!(choose(None, &records, None).is_none(), "nothing live");
    }

    #[test]
    fn the_same_content_in_other_versions_is_not_a_release_to_go_back_to() {
        use Operation::*;
        let records = history(&[
            (Rollback, "c1", "1b", true), // live: c1 restored, new versions
            (Release, "c2", "2", true),
            (Release, "c1", "1", true),
        ]);
        let chosen = choose(Some(&live(&records[0])), &records, None).expect("a release");
        assert_eq!(chosen.id, records[1].id, "back to c2, not to c1 again");
    }
}

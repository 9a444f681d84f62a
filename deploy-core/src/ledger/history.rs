//! Reading the ledger back: records with their standing, and the delivery metrics over them.

use std::collections::{BTreeMap, HashMap};

use futures::{StreamExt, TryStreamExt};
use serde::Serialize;
use time::OffsetDateTime;

use super::pointers::Pointers;
use super::{Ledger, LedgerError, Operation, Outcome, ReleaseRecord, StoredRecord};

/// Whether a record counts, as `history` and the metrics read it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Standing {
    /// It counts as its outcome says.
    Counted,
    /// A succeeded record whose pointer never moved, replaced by a later record of the same
    /// artifact (the same run's failure record, or the next release): it does not count.
    Superseded {
        /// The release id of the record that supersedes it.
        by: String,
    },
    /// A succeeded record whose pointer never moved and that no later record has reconciled
    /// yet: its run died or is still finishing. It does not count until it is reconciled.
    Incomplete,
}

/// One record of [`Ledger::history_entries`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HistoryEntry {
    /// The record.
    #[serde(flatten)]
    pub record: ReleaseRecord,
    /// Its key in the state bucket.
    pub key: String,
    /// Whether it counts.
    pub standing: Standing,
}

/// The standing of each of `records` (newest first, as listed), given the pointers of their
/// artifacts. A record's `supersedes` takes effect only if that record counts itself: a failure
/// record always does; a succeeded one only once its pointers moved (a success that never took
/// effect replaces nothing). A superseding record is never older than those it supersedes, so
/// one pass, newest first, decides each record after those that could supersede it.
pub(super) fn standings<'a>(
    records: &[StoredRecord],
    pointers: impl Fn(&str) -> Option<&'a Pointers>,
) -> Vec<Standing> {
    let mut superseded_by: HashMap<&str, &str> = HashMap::new();
    for stored in records
        .iter()
        .filter(|s| s.record.outcome != Outcome::Succeeded)
    {
        for id in &stored.supersedes {
            superseded_by.entry(id).or_insert(&stored.record.id);
        }
    }
    let mut standings = Vec::with_capacity(records.len());
    for stored in records {
        let standing = if stored.record.outcome != Outcome::Succeeded {
            Standing::Counted
        } else if let Some(by) = superseded_by.get(stored.record.id.as_str()) {
            Standing::Superseded {
                by: (*by).to_owned(),
            }
        } else if pointers(&stored.record.artifact).is_some_and(|p| !p.open_for(stored).is_empty())
        {
            Standing::Incomplete
        } else {
            for id in &stored.supersedes {
                superseded_by.entry(id).or_insert(&stored.record.id);
            }
            Standing::Counted
        };
        standings.push(standing);
    }
    standings
}

impl Ledger {
    /// The newest `limit` records across `artifacts`, newest first, with their standing: one
    /// listing per artifact, one read per record and two per artifact for the pointers.
    pub async fn history_entries(
        &self,
        artifacts: &[String],
        limit: usize,
    ) -> Result<Vec<HistoryEntry>, LedgerError> {
        let keys = self.newest_keys(artifacts, limit).await?;
        self.entries(keys).await
    }

    /// Every record of `artifacts` whose work started at `since` or later, newest first, with
    /// its standing: the listings stop at the first older key (keys sort newest first).
    pub async fn history_since(
        &self,
        artifacts: &[String],
        since: OffsetDateTime,
    ) -> Result<Vec<HistoryEntry>, LedgerError> {
        let bound = super::newest_first_stamp(since);
        let listings: Vec<Vec<String>> = futures::stream::iter(artifacts.to_vec())
            .map(|artifact: String| {
                let prefix = self.key(&format!("artifacts/{artifact}/releases/"));
                let bound = bound.clone();
                async move {
                    let in_window = move |key: &str, _: usize| {
                        let file = key.rsplit('/').next().unwrap_or_default();
                        file.get(..bound.len())
                            .is_some_and(|stamp| stamp <= bound.as_str())
                    };
                    self.store.list_while(&prefix, 1000, in_window).await
                }
            })
            .buffered(8)
            .try_collect()
            .await?;
        let mut keys: Vec<String> = listings.into_iter().flatten().collect();
        keys.sort_by_key(|key| key.rsplit('/').next().unwrap_or_default().to_owned());
        self.entries(keys).await
    }

    /// The records at `keys` (newest first) with their standing.
    async fn entries(&self, keys: Vec<String>) -> Result<Vec<HistoryEntry>, LedgerError> {
        let stored: Vec<Option<StoredRecord>> = futures::stream::iter(keys)
            .map(|key| async move { self.stored_record(&key).await })
            .buffered(32)
            .try_collect()
            .await?;
        let stored: Vec<StoredRecord> = stored.into_iter().flatten().collect();
        let mut names: Vec<&str> = stored.iter().map(|s| s.record.artifact.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        let pointers: HashMap<&str, Pointers> = futures::stream::iter(names)
            .map(|name| async move { Ok::<_, LedgerError>((name, self.pointers(name).await?)) })
            .buffered(8)
            .try_collect()
            .await?;
        let standings = standings(&stored, |artifact| pointers.get(artifact));
        Ok(stored
            .into_iter()
            .zip(standings)
            .map(|(s, standing)| HistoryEntry {
                record: s.record,
                key: s.key,
                standing,
            })
            .collect())
    }
}

/// Delivery metrics over a set of records (newest first, as [`Ledger::history`] returns them).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Metrics {
    /// Records considered.
    pub records: usize,
    /// Rollouts (release, rollout, promote, rollback) considered.
    pub deployments: usize,
    /// Successful deployments per day over the span of the records.
    pub deploys_per_day: f64,
    /// Share of deployments that failed, were rolled back in their run, or were replaced by a
    /// later `rollback`.
    pub change_failure_rate: f64,
    /// Lead time for changes: median seconds from the released commit (its committer date) to
    /// it going live in this environment; a record without a commit time counts from the
    /// version's first publish here.
    pub lead_time_seconds: Option<f64>,
    /// Median seconds from a failed deployment to the next successful one of that artifact.
    pub time_to_restore_seconds: Option<f64>,
}

impl Metrics {
    /// Computes the metrics of the entries that count ([`Standing::Counted`]).
    pub fn of_history(entries: &[HistoryEntry]) -> Metrics {
        let counted: Vec<ReleaseRecord> = entries
            .iter()
            .filter(|e| e.standing == Standing::Counted)
            .map(|e| e.record.clone())
            .collect();
        Metrics::of(&counted)
    }

    /// Computes the metrics of the entries that count over a window of `days` (`history
    /// --since`): deploy frequency is per day of the window.
    pub fn over(entries: &[HistoryEntry], days: f64) -> Metrics {
        let counted: Vec<ReleaseRecord> = entries
            .iter()
            .filter(|e| e.standing == Standing::Counted)
            .map(|e| e.record.clone())
            .collect();
        Metrics::spanning(&counted, days.max(1.0 / 24.0))
    }

    /// Computes the metrics of `records`, per day of their own span (at least one).
    pub fn of(records: &[ReleaseRecord]) -> Metrics {
        let span_days = match (records.last(), records.first()) {
            (Some(oldest), Some(newest)) => {
                ((newest.finished_at - oldest.started_at).as_seconds_f64() / 86_400.0).max(1.0)
            }
            _ => 1.0,
        };
        Metrics::spanning(records, span_days)
    }

    fn spanning(records: &[ReleaseRecord], span_days: f64) -> Metrics {
        let deployments: Vec<&ReleaseRecord> = records
            .iter()
            .filter(|r| r.operation.changes_live() && r.operation != Operation::Custom)
            .collect();
        // A release that a later rollback replaced failed too, though it succeeded at first.
        let rolled_back: std::collections::HashSet<&str> = records
            .iter()
            .filter(|r| r.operation == Operation::Rollback && r.outcome == Outcome::Succeeded)
            .filter_map(|r| r.previous.as_deref())
            .collect();
        let failed = deployments
            .iter()
            .filter(|r| r.outcome != Outcome::Succeeded || rolled_back.contains(r.id.as_str()))
            .count();
        let ok = deployments.len() - failed;
        // Keyed by environment and artifact: the records may span environments.
        let mut published: BTreeMap<(&str, &str, &str), OffsetDateTime> = BTreeMap::new();
        let mut lead = Vec::new();
        let mut restore = Vec::new();
        let mut failing_since: BTreeMap<(&str, &str), OffsetDateTime> = BTreeMap::new();
        for record in records.iter().rev() {
            let version = record.version.as_deref().unwrap_or_default();
            let (env, artifact) = (record.environment.as_str(), record.artifact.as_str());
            if record.operation.publishes() && record.outcome == Outcome::Succeeded {
                published
                    .entry((env, artifact, version))
                    .or_insert(record.started_at);
            }
            if !record.operation.changes_live() {
                continue;
            }
            if record.outcome == Outcome::Succeeded {
                let start = record
                    .commit_time
                    .or_else(|| published.get(&(env, artifact, version)).copied());
                if let Some(at) = start {
                    lead.push((record.finished_at - at).as_seconds_f64());
                }
                if let Some(since) = failing_since.remove(&(env, artifact)) {
                    restore.push((record.finished_at - since).as_seconds_f64());
                }
            } else {
                failing_since
                    .entry((env, artifact))
                    .or_insert(record.finished_at);
            }
        }
        Metrics {
            records: records.len(),
            deployments: deployments.len(),
            deploys_per_day: ok as f64 / span_days,
            change_failure_rate: if deployments.is_empty() {
                0.0
            } else {
                failed as f64 / deployments.len() as f64
            },
            lead_time_seconds: median(lead),
            time_to_restore_seconds: median(restore),
        }
    }
}

fn median(mut values: Vec<f64>) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    Some(values[values.len() / 2])
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;
    use crate::catalog::ArtifactKind;
    use crate::ledger::{Actor, SCHEMA, new_release_id};

    fn record(op: Operation, version: &str, at: OffsetDateTime, outcome: Outcome) -> ReleaseRecord {
        ReleaseRecord {
            schema: SCHEMA,
            id: new_release_id(at),
            project: "p".into(),
            environment: "dev".into(),
            artifact: "api".into(),
            kind: ArtifactKind::Image,
            operation: op,
            version: Some(version.into()),
            artifact_ref: None,
            source_environment: None,
            started_at: at,
            finished_at: at + time::Duration::minutes(1),
            actor: Actor {
                user: "u".into(),
                host: "h".into(),
                pid: 1,
                ci_run_url: None,
                aws_arn: None,
            },
            touched: vec![],
            outcome,
            previous: None,
            restored: None,
            commit_time: None,
            dirty: false,
            plan_id: None,
        }
    }

    #[test]
    fn metrics_count_failures_lead_time_and_restore() {
        let t0 = datetime!(2026-11-01 00:00:00 UTC);
        let hours = |h| t0 + time::Duration::hours(h);
        let failed = Outcome::Failed {
            error: "boom".into(),
        };
        let mut records = vec![
            record(Operation::Publish, "a", hours(0), Outcome::Succeeded),
            record(Operation::Rollout, "a", hours(1), Outcome::Succeeded),
            record(Operation::Release, "b", hours(24), failed),
            record(Operation::Release, "c", hours(26), Outcome::Succeeded),
        ];
        records.reverse();
        let m = Metrics::of(&records);
        assert_eq!(m.deployments, 3);
        assert!((m.change_failure_rate - 1.0 / 3.0).abs() < 1e-9);
        // publish at 0h, live at 1h+1m; c published and live in the same release: 1m.
        assert_eq!(m.lead_time_seconds, Some(3660.0));
        // failed release finished at 24h+1m, restored at 26h+1m.
        assert_eq!(m.time_to_restore_seconds, Some(7200.0));
    }

    #[test]
    fn a_release_a_later_rollback_replaced_counts_as_a_failed_change() {
        let t0 = datetime!(2026-11-01 00:00:00 UTC);
        let good = record(Operation::Release, "a", t0, Outcome::Succeeded);
        let bad = record(
            Operation::Release,
            "b",
            t0 + time::Duration::hours(1),
            Outcome::Succeeded,
        );
        let mut back = record(
            Operation::Rollback,
            "a",
            t0 + time::Duration::hours(2),
            Outcome::Succeeded,
        );
        back.previous = Some(bad.id.clone());
        let m = Metrics::of(&[back, bad, good]);
        assert_eq!(m.deployments, 3);
        assert!((m.change_failure_rate - 1.0 / 3.0).abs() < 1e-9, "{m:?}");
    }

    #[test]
    fn lead_time_counts_from_the_commit_when_the_record_has_it() {
        let t0 = datetime!(2026-11-01 00:00:00 UTC);
        let mut live = record(Operation::Release, "a", t0, Outcome::Succeeded);
        live.commit_time = Some(t0 - time::Duration::hours(2));
        let m = Metrics::of(&[live]);
        // committed 2h before the release started, live 1m after.
        assert_eq!(m.lead_time_seconds, Some(7260.0));
    }

    /// `record` stored under a key that sorts newest first by `at`.
    fn stored(record: ReleaseRecord, supersedes: &[&String]) -> StoredRecord {
        StoredRecord {
            key: format!(
                "r/{}-{}.json",
                crate::ledger::newest_first_stamp(record.started_at),
                record.id
            ),
            record,
            supersedes: supersedes.iter().map(|s| (*s).clone()).collect(),
        }
    }

    fn published(to: &StoredRecord) -> Pointers {
        let pointer = crate::ledger::Pointer {
            schema: SCHEMA,
            release_id: to.record.id.clone(),
            record_key: to.key.clone(),
            operation: to.record.operation,
            version: to.record.version.clone(),
            artifact_ref: None,
            updated_at: to.record.finished_at,
            commit_time: None,
            actor: to.record.actor.clone(),
        };
        Pointers {
            live: None,
            published: Some(crate::ledger::Versioned {
                value: pointer,
                etag: "e".into(),
            }),
        }
    }

    #[test]
    fn standings_follow_the_pointers_and_supersedes_of_records_that_count() {
        let t0 = datetime!(2026-11-01 00:00:00 UTC);
        let at = |m| t0 + time::Duration::minutes(m);
        let ok = |v, m| record(Operation::Publish, v, at(m), Outcome::Succeeded);
        let failed = |v, m| {
            record(
                Operation::Publish,
                v,
                at(m),
                Outcome::Failed { error: "x".into() },
            )
        };
        // v1 took effect; v2's run died after its record (orphan); v3's run superseded v2
        // but its pointer write failed, so its failure supersedes v3; v4 died too.
        let v1 = stored(ok("v1", 0), &[]);
        let v2 = stored(ok("v2", 10), &[]);
        let v3 = stored(ok("v3", 20), &[&v2.record.id]);
        let v3_failed = stored(failed("v3", 20), &[&v3.record.id]);
        let v4 = stored(ok("v4", 30), &[]);
        let pointers = published(&v1);
        let records = [v4, v3_failed, v3, v2, v1];
        let found = standings(&records, |_| Some(&pointers));
        let v3_failed_id = records[1].record.id.clone();
        assert_eq!(
            found,
            [
                Standing::Incomplete,
                Standing::Counted,
                Standing::Superseded { by: v3_failed_id },
                Standing::Incomplete,
                Standing::Counted,
            ],
            "v3 never took effect, so it does not supersede v2"
        );

        // Once v4's pointer moved, v4 counts and what it supersedes is superseded.
        let v5 = stored(
            ok("v5", 40),
            &[&records[0].record.id, &records[3].record.id],
        );
        let pointers = published(&v5);
        let v5_id = v5.record.id.clone();
        let records = [
            v5,
            records[0].clone(),
            records[3].clone(),
            records[4].clone(),
        ];
        let found = standings(&records, |_| Some(&pointers));
        assert_eq!(
            found,
            [
                Standing::Counted,
                Standing::Superseded { by: v5_id.clone() },
                Standing::Superseded { by: v5_id },
                Standing::Counted,
            ]
        );
    }
}

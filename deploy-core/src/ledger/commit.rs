//! Committing a release: the record first, then the pointers it moves, reconciling on the way
//! the records an earlier run left without their pointer (rules in `docs/ledger.md`).

use futures::{StreamExt, TryStreamExt};

use super::pointers::{Pointers, file_of, newer};
use super::{
    Ledger, LedgerError, Operation, Outcome, Pointer, PointerKind, ReleaseRecord, SCHEMA, Standing,
    StoredRecord, Versioned,
};

/// How many of an artifact's newest records a commit reads, at most, looking for succeeded
/// records whose pointer never moved.
const RECONCILE_WINDOW: usize = 25;

impl Operation {
    /// The pointers a successful record of this operation moves.
    pub fn pointers(self) -> Vec<PointerKind> {
        let mut kinds = Vec::new();
        if self.publishes() {
            kinds.push(PointerKind::Published);
        }
        if self.changes_live() {
            kinds.push(PointerKind::Live);
        }
        kinds
    }
}

/// The pointer document naming `record`, stored at `key`.
fn pointer_to(record: &ReleaseRecord, key: &str) -> Pointer {
    Pointer {
        schema: SCHEMA,
        release_id: record.id.clone(),
        record_key: key.to_owned(),
        operation: record.operation,
        version: record.version.clone(),
        artifact_ref: record.artifact_ref.clone(),
        updated_at: record.finished_at,
        commit_time: record.commit_time,
        actor: record.actor.clone(),
    }
}

impl Ledger {
    /// Records a release and, if it succeeded, moves the pointers it affects (compare-and-swap
    /// against the pointers read before the record was written). Sets `previous` when unset.
    ///
    /// Before writing, it reconciles the artifact's succeeded records that no pointer names
    /// although they are newer than what the pointers name (a run that died, or whose pointer
    /// write failed, between its two writes): such a record of the same plan, or one this
    /// record replaces, is listed in this record's `supersedes`; otherwise the newest one
    /// gets the pointer it lacks, as its run would have done.
    pub async fn commit(&self, record: &mut ReleaseRecord) -> Result<String, LedgerError> {
        let mut pointers = self.pointers(&record.artifact).await?;
        let supersedes = self.reconcile(record, &mut pointers).await?;
        if record.previous.is_none() {
            record.previous = pointers.live.as_ref().map(|p| p.value.release_id.clone());
        }
        let key = self.put_record_superseding(record, &supersedes).await?;
        if record.outcome != Outcome::Succeeded {
            return Ok(key);
        }
        let pointer = pointer_to(record, &key);
        for kind in record.operation.pointers() {
            let etag = pointers.get(kind).map(|p| p.etag.as_str());
            self.move_pointer(&record.artifact, kind, &pointer, etag)
                .await?;
        }
        Ok(key)
    }

    /// Both pointers of `artifact`.
    pub(super) async fn pointers(&self, artifact: &str) -> Result<Pointers, LedgerError> {
        let (live, published) = futures::try_join!(
            self.pointer(artifact, PointerKind::Live),
            self.pointer(artifact, PointerKind::Published)
        )?;
        Ok(Pointers { live, published })
    }

    /// Decides about each record left without its pointer; returns the ids `record`
    /// supersedes, and moves the pointers of the one it completes.
    async fn reconcile(
        &self,
        record: &ReleaseRecord,
        pointers: &mut Pointers,
    ) -> Result<Vec<String>, LedgerError> {
        let mine = record.operation.pointers();
        let orphans = self.orphans(&record.artifact, &mine, pointers).await?;
        let mut claimed = if record.outcome == Outcome::Succeeded {
            mine
        } else {
            Vec::new()
        };
        let mut supersedes = Vec::new();
        for orphan in orphans {
            let open = pointers.open_for(&orphan);
            let same_run =
                orphan.record.plan_id.is_some() && orphan.record.plan_id == record.plan_id;
            if same_run || open.iter().all(|kind| claimed.contains(kind)) {
                tracing::info!(release = %orphan.record.id, "superseding a release whose pointer never moved");
                supersedes.push(orphan.record.id.clone());
                continue;
            }
            let pointer = pointer_to(&orphan.record, &orphan.key);
            for kind in open.iter().filter(|kind| !claimed.contains(kind)) {
                tracing::info!(release = %orphan.record.id, ?kind, "completing a release whose pointer never moved");
                let etag = pointers.get(*kind).map(|p| p.etag.clone());
                let etag = self
                    .move_pointer(&record.artifact, *kind, &pointer, etag.as_deref())
                    .await?;
                pointers.set(
                    *kind,
                    Versioned {
                        value: pointer.clone(),
                        etag,
                    },
                );
            }
            claimed.extend(open);
        }
        Ok(supersedes)
    }

    /// The succeeded records of `artifact` that a pointer of theirs should name but does not,
    /// newest first, not counting those a later record already supersedes. Looks only at
    /// records newer than what the pointers of `kinds` name, and at most
    /// [`RECONCILE_WINDOW`] of them.
    async fn orphans(
        &self,
        artifact: &str,
        kinds: &[PointerKind],
        pointers: &Pointers,
    ) -> Result<Vec<StoredRecord>, LedgerError> {
        if kinds.is_empty() {
            return Ok(Vec::new());
        }
        // The oldest record the pointers name: only records newer than it can be orphans.
        let floor: Option<Vec<&str>> = kinds
            .iter()
            .map(|kind| pointers.get(*kind).map(|p| p.value.record_key.as_str()))
            .collect();
        let floor = floor.and_then(|keys| keys.into_iter().max_by_key(|key| file_of(key)));
        let prefix = self.key(&format!("artifacts/{artifact}/releases/"));
        let keys = self.store.list(&prefix, RECONCILE_WINDOW).await?;
        let candidates: Vec<StoredRecord> = futures::stream::iter(
            keys.into_iter()
                .take_while(|key| floor.is_none_or(|floor| newer(key, floor))),
        )
        .map(|key| async move { self.stored_record(&key).await })
        .buffered(8)
        .try_collect::<Vec<_>>()
        .await?
        .into_iter()
        .flatten()
        .collect();
        let standings = super::history::standings(&candidates, |_| Some(pointers));
        Ok(candidates
            .into_iter()
            .zip(standings)
            .filter(|(_, standing)| *standing == Standing::Incomplete)
            .map(|(candidate, _)| candidate)
            .collect())
    }
}

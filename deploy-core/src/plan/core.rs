//! The steps every plan has, run by the engine itself: the account check, the lock, the
//! ledger records and the unlock. Everything between them belongs to a kind.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{ActionInput, StepList, s3_object};
use crate::catalog::ArtifactKind;
use crate::ledger::Operation;
use crate::plan::Action;
use crate::target::Target;

/// Check the credentials belong to the environment's account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyAccount {
    /// Expected account.
    pub account: String,
}

impl ActionInput for VerifyAccount {
    const TYPE: &'static str = "verify-account";

    fn reversibility(&self) -> crate::plan::Reversibility {
        super::Reversibility::Nothing
    }
}

/// Take the environment lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcquireLock {
    /// State bucket.
    pub bucket: String,
    /// Lock object key.
    pub key: String,
    /// Lease length.
    #[serde(with = "crate::duration_serde")]
    pub ttl: Duration,
}

impl ActionInput for AcquireLock {
    const TYPE: &'static str = "acquire-lock";

    fn reversibility(&self) -> crate::plan::Reversibility {
        // The lock is given back at the end of every run, not undone.
        super::Reversibility::Nothing
    }
}

/// Write the release record of the step's artifact and move its ledger pointers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordRelease {
    /// Artifact kind.
    pub kind: ArtifactKind,
    /// What the release did.
    pub operation: Operation,
}

impl ActionInput for RecordRelease {
    const TYPE: &'static str = "record-release";

    fn reversibility(&self) -> crate::plan::Reversibility {
        // A record says what happened; a failed run writes its own.
        super::Reversibility::Nothing
    }
}

/// Give the lock back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseLock {
    /// State bucket.
    pub bucket: String,
    /// Lock object key.
    pub key: String,
}

impl ActionInput for ReleaseLock {
    const TYPE: &'static str = "release-lock";

    fn reversibility(&self) -> crate::plan::Reversibility {
        super::Reversibility::Nothing
    }
}

/// Adds the account check and the lock; returns the lock step's id, which the first step of
/// every artifact needs.
pub fn open(list: &mut StepList, target: &Target, lock_ttl: Duration) -> String {
    let verify = list.add(
        None,
        &[],
        format!("check the credentials are for account {}", target.account),
        Action::new(&VerifyAccount {
            account: target.account.to_string(),
        }),
        vec![],
    );
    let key = target.lock_key();
    list.add(
        None,
        &[verify],
        format!("lock environment {}", target.environment),
        Action::new(&AcquireLock {
            bucket: target.state_bucket.clone(),
            key: key.clone(),
            ttl: lock_ttl,
        }),
        vec![s3_object(&target.state_bucket, &key)],
    )
}

/// Adds one record per artifact, each needing all of `work` (records are written once every
/// change succeeded), then the unlock after the records.
pub fn close(
    list: &mut StepList,
    target: &Target,
    work: &[String],
    records: &[(String, ArtifactKind)],
    operation: Operation,
) {
    let mut after = Vec::new();
    for (artifact, kind) in records {
        after.push(list.add(
            Some(artifact),
            work,
            format!(
                "record the {} of {artifact} in the ledger",
                operation_noun(operation)
            ),
            Action::new(&RecordRelease {
                kind: *kind,
                operation,
            }),
            vec![s3_object(
                &target.state_bucket,
                &format!("{}artifacts/{artifact}/", target.state_prefix()),
            )],
        ));
    }
    if after.is_empty() {
        after = work.to_vec();
    }
    let key = target.lock_key();
    list.add(
        None,
        &after,
        format!("unlock environment {}", target.environment),
        Action::new(&ReleaseLock {
            bucket: target.state_bucket.clone(),
            key: key.clone(),
        }),
        vec![s3_object(&target.state_bucket, &key)],
    );
}

/// The plan for an embedder's own change: check the account, take the lock, run `inner` one
/// step after another, give the lock back. Each inner entry is `(artifact, action)`; a
/// [`RecordRelease`] among them records that artifact.
pub fn locked_steps(
    target: &Target,
    lock_ttl: Duration,
    inner: Vec<(Option<String>, Action)>,
) -> StepList {
    let mut list = StepList::new();
    let mut last = open(&mut list, target, lock_ttl);
    for (artifact, action) in inner {
        let description = action.name().to_owned();
        last = list.add(artifact.as_deref(), &[last], description, action, vec![]);
    }
    let key = target.lock_key();
    list.add(
        None,
        &[last],
        format!("unlock environment {}", target.environment),
        Action::new(&ReleaseLock {
            bucket: target.state_bucket.clone(),
            key,
        }),
        vec![],
    );
    list
}

/// The operation as a noun for step descriptions.
fn operation_noun(operation: Operation) -> &'static str {
    match operation {
        Operation::Publish => "publish",
        Operation::Rollout => "rollout",
        Operation::Release => "release",
        Operation::Promote => "promotion",
        Operation::Rollback => "rollback",
        Operation::Custom => "change",
    }
}

//! The run's journal: one object in the state bucket (`journal.json` beside `lock.json`)
//! that the lock holder keeps while it works: its plan, and how to undo each change it made
//! so far. A step that starts something long (an ECS deployment, a CodeDeploy deployment, a
//! Lambda canary, a DAG sync) notes its undo before it waits ([`StepContext::journal`]);
//! a completed step's undo replaces the note. The run marks the journal finished before it
//! gives the lock back. A journal found unfinished by the next holder of the lock belongs to a
//! run that died (kill -9, a lost machine): that run settles it first ([`super::settle`]).
//!
//! Every write is a compare-and-swap on the ETag of the last one, so a run that lost its lease
//! cannot overwrite its successor's journal.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::Undo;
use crate::events::{Event, Reporter};
use crate::ledger::{Actor, Guard, Ledger, LedgerError, to_json};
use crate::plan::{Plan, Step};

/// The journal's document version.
pub(crate) const JOURNAL_SCHEMA: u32 = 1;

/// What the journal holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Doc {
    pub schema: u32,
    /// The plan the run applies.
    pub plan: Plan,
    /// The run's lease of the lock.
    pub lease_id: String,
    /// Who ran it.
    pub actor: Actor,
    /// When it took the lock.
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    /// The run ended (succeeded, or failed and undone, recorded and unlocked).
    pub finished: bool,
    /// The run had started writing records: its work was done, nothing is undone.
    #[serde(default)]
    pub committing: bool,
    /// How to undo each change made so far, oldest first.
    #[serde(default)]
    pub entries: Vec<Entry>,
}

/// One step's change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Entry {
    /// The step's id in the plan.
    pub step: String,
    /// What the undo does, for people.
    pub description: String,
    /// What the handler's undo needs; none when the change cannot be undone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<serde_json::Value>,
    /// What stays changed even after the undo.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub left: Option<String>,
}

impl Entry {
    /// The entry for `undo` of `step`; none when there is nothing to undo.
    fn of(step: &Step, undo: &Undo) -> Option<Entry> {
        let entry = |description: &str, data: Option<&serde_json::Value>, left: Option<&str>| {
            Some(Entry {
                step: step.id.clone(),
                description: description.to_owned(),
                data: data.cloned(),
                left: left.map(str::to_owned),
            })
        };
        match undo {
            Undo::Nothing => None,
            Undo::Compensate { description, data } => entry(description, Some(data), None),
            Undo::Partial {
                description,
                data,
                left,
            } => entry(description, Some(data), Some(left)),
            Undo::Irreversible { left } => entry(&step.description, None, Some(left)),
        }
    }
}

/// The journal of this run, once it holds the lock.
#[derive(Debug, Default)]
pub(crate) struct Journal {
    open: tokio::sync::Mutex<Option<Open>>,
}

#[derive(Debug)]
struct Open {
    ledger: Ledger,
    doc: Doc,
    etag: String,
}

/// The journal object: an unfinished one left by a dead run, and the ETag to replace.
pub(crate) struct Found {
    pub dead: Option<Doc>,
    pub etag: Option<String>,
}

/// Reads the environment's journal.
pub(crate) async fn read(ledger: &Ledger) -> Result<Found, LedgerError> {
    let key = ledger.key("journal.json");
    let Some(stored) = ledger.store().get(&key).await? else {
        return Ok(Found {
            dead: None,
            etag: None,
        });
    };
    // A journal this version cannot read is named, not silently dropped.
    let doc: Doc = ledger.decode(&key, &stored.body)?;
    Ok(Found {
        dead: Some(doc).filter(|d| !d.finished),
        etag: Some(stored.etag),
    })
}

impl Journal {
    /// Starts this run's journal over `etag` (the object read by [`read`], if any).
    pub async fn begin(
        &self,
        ledger: &Ledger,
        doc: Doc,
        etag: Option<String>,
    ) -> Result<(), LedgerError> {
        let key = ledger.key("journal.json");
        let guard = etag.as_deref().map_or(Guard::Create, Guard::Replace);
        let etag = ledger.store().put(&key, to_json(&doc), guard).await?;
        *self.open.lock().await = Some(Open {
            ledger: ledger.clone(),
            doc,
            etag,
        });
        Ok(())
    }

    /// Notes (or replaces) how to undo what `step` changed; `Undo::Nothing` removes the note.
    pub async fn note(&self, step: &Step, undo: &Undo, reporter: &dyn Reporter) {
        self.change(reporter, |doc| {
            let entry = Entry::of(step, undo);
            match doc.entries.iter().position(|e| e.step == step.id) {
                Some(i) => match entry {
                    Some(entry) => doc.entries[i] = entry,
                    None => {
                        doc.entries.remove(i);
                    }
                },
                None => doc.entries.extend(entry),
            }
        })
        .await;
    }

    /// Notes that the run started writing records.
    pub async fn committing(&self, reporter: &dyn Reporter) {
        self.change(reporter, |doc| doc.committing = true).await;
    }

    /// Marks the run finished: nothing of it is left to settle.
    pub async fn finish(&self, reporter: &dyn Reporter) {
        self.change(reporter, |doc| doc.finished = true).await;
        *self.open.lock().await = None;
    }

    /// Applies `edit` and writes the journal. A failed write is a warning: the run goes on,
    /// and a successor finds the journal as it was last written.
    async fn change(&self, reporter: &dyn Reporter, edit: impl FnOnce(&mut Doc)) {
        let mut open = self.open.lock().await;
        let Some(open) = open.as_mut() else {
            return;
        };
        edit(&mut open.doc);
        let key = open.ledger.key("journal.json");
        let written = open
            .ledger
            .store()
            .put(&key, to_json(&open.doc), Guard::Replace(&open.etag))
            .await;
        match written {
            Ok(etag) => open.etag = etag,
            Err(err) => reporter.report(&Event::Note {
                message: format!(
                    "could not write the run's journal ({err}); if this run dies now, the next \
                     one cannot settle what it left"
                ),
            }),
        }
    }
}

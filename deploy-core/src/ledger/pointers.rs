//! Both pointers of one artifact as read before a commit, and the order of record keys.

use super::{Outcome, Pointer, PointerKind, StoredRecord, Versioned};

/// The file name of a record key: one artifact's records sort newest first by it.
pub(super) fn file_of(key: &str) -> &str {
    key.rsplit('/').next().unwrap_or_default()
}

/// Whether the record at `a` is newer than the one at `b` (same artifact).
pub(super) fn newer(a: &str, b: &str) -> bool {
    file_of(a) < file_of(b)
}

/// Both pointers of one artifact, with their ETags.
#[derive(Debug, Clone, Default)]
pub(super) struct Pointers {
    pub live: Option<Versioned<Pointer>>,
    pub published: Option<Versioned<Pointer>>,
}

impl Pointers {
    pub fn get(&self, kind: PointerKind) -> Option<&Versioned<Pointer>> {
        match kind {
            PointerKind::Live => self.live.as_ref(),
            PointerKind::Published => self.published.as_ref(),
        }
    }

    pub(super) fn set(&mut self, kind: PointerKind, value: Versioned<Pointer>) {
        match kind {
            PointerKind::Live => self.live = Some(value),
            PointerKind::Published => self.published = Some(value),
        }
    }

    /// The pointers a succeeded `stored` record should have moved that name neither it nor a
    /// newer record: empty for a record that took full effect (or is not a success).
    pub fn open_for(&self, stored: &StoredRecord) -> Vec<PointerKind> {
        if stored.record.outcome != Outcome::Succeeded {
            return Vec::new();
        }
        stored
            .record
            .operation
            .pointers()
            .into_iter()
            .filter(|kind| match self.get(*kind) {
                None => true,
                Some(p) => {
                    p.value.record_key != stored.key && !newer(&p.value.record_key, &stored.key)
                }
            })
            .collect()
    }
}

//! Image sources: where the bytes of a container image are read from before they are pushed.

pub mod layout;
pub mod publish;

use std::path::PathBuf;

use crate::oci::{Descriptor, Digest};

/// Why an image source could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The directory is not an OCI image layout.
    #[error("{} is not an OCI image layout: {detail}", dir.display())]
    NotALayout {
        /// The directory.
        dir: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// The tag is not in the layout's `index.json`.
    #[error("tag `{tag}` is not in {}; tags there: {}", dir.display(), if known.is_empty() { "none".to_owned() } else { known.join(", ") })]
    UnknownTag {
        /// The layout.
        dir: PathBuf,
        /// The tag asked for.
        tag: String,
        /// The tags the layout has.
        known: Vec<String>,
    },
    /// The layout holds several images and no tag was given.
    #[error("{} holds {count} images; name one with oci:<dir>:<tag> (tags: {})", dir.display(), tags.join(", "))]
    Ambiguous {
        /// The layout.
        dir: PathBuf,
        /// How many entries `index.json` has.
        count: usize,
        /// Their tags.
        tags: Vec<String>,
    },
    /// A blob the image refers to is missing.
    #[error("blob {digest} is missing from {}", dir.display())]
    MissingBlob {
        /// The layout.
        dir: PathBuf,
        /// The blob.
        digest: Digest,
    },
    /// A blob's bytes do not match its digest or size.
    #[error("{} is corrupt: expected {expected}, read {actual}; nothing was pushed from it", path.display())]
    Corrupt {
        /// The blob file.
        path: PathBuf,
        /// What the descriptor says (digest and size).
        expected: String,
        /// What the bytes are.
        actual: String,
    },
    /// A JSON document is malformed.
    #[error("{} is not valid {what}: {detail}", path.display())]
    BadJson {
        /// The file.
        path: PathBuf,
        /// What it should be.
        what: &'static str,
        /// The parse error.
        detail: String,
    },
    /// Reading failed.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// Everything an image consists of, in push order: blobs first, then manifests, children
/// before the index that lists them, the root last.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageContents {
    /// The root: an image manifest or an index of per-platform manifests.
    pub root: Descriptor,
    /// Every manifest with its exact bytes, root last.
    pub manifests: Vec<(Descriptor, Vec<u8>)>,
    /// Every config and layer blob, each once.
    pub blobs: Vec<Descriptor>,
}

impl ImageContents {
    /// Total bytes of all blobs.
    pub fn blob_bytes(&self) -> u64 {
        self.blobs.iter().map(|b| b.size).sum()
    }
}

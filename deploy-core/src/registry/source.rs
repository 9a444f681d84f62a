//! Local image sources: where the bytes of a container image are read from before they are
//! pushed (an OCI layout, a `docker save` archive), behind [`BlobStore`].

use std::path::PathBuf;

use crate::oci::{Descriptor, Digest, Index, Manifest};

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
    /// The file is not an image archive written by `docker save`.
    #[error("{} is not an image archive (docker save output): {detail}", path.display())]
    NotAnArchive {
        /// The file.
        path: PathBuf,
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

/// Where a blob's bytes are on local disk: `size` bytes of `path` from `offset` (a file of its
/// own in a layout, a member of a tarball in an archive).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobLocation {
    /// The file.
    pub path: PathBuf,
    /// Where the blob starts in it.
    pub offset: u64,
}

/// A local source of blobs by digest.
pub trait BlobStore: Send + Sync {
    /// Where the blob's bytes are; [`SourceError::MissingBlob`] if it is not there.
    fn locate(&self, digest: &Digest) -> Result<BlobLocation, SourceError>;

    /// Reads a small blob (a manifest or config) whole, checked against its descriptor.
    fn read(&self, descriptor: &Descriptor) -> Result<Vec<u8>, SourceError> {
        use std::io::{Read, Seek};
        let location = self.locate(&descriptor.digest)?;
        let io = |source| SourceError::Io {
            path: location.path.clone(),
            source,
        };
        let mut file = std::fs::File::open(&location.path).map_err(io)?;
        file.seek(std::io::SeekFrom::Start(location.offset))
            .map_err(io)?;
        let mut bytes = Vec::new();
        file.take(descriptor.size.saturating_add(1))
            .read_to_end(&mut bytes)
            .map_err(io)?;
        let actual = Digest::of(&bytes);
        if actual != descriptor.digest || bytes.len() as u64 != descriptor.size {
            return Err(SourceError::Corrupt {
                path: location.path.clone(),
                expected: format!("{} ({} bytes)", descriptor.digest, descriptor.size),
                actual: format!("{actual} ({} bytes)", bytes.len()),
            });
        }
        Ok(bytes)
    }
}

/// The largest manifest or index read from a local source (what registries accept).
const MAX_MANIFEST_BYTES: u64 = 4 * 1024 * 1024;

/// Everything `root` consists of, every manifest read and verified, every blob located.
pub(crate) fn walk(
    store: &dyn BlobStore,
    mut root: Descriptor,
) -> Result<ImageContents, SourceError> {
    root.annotations.clear();
    let mut contents = ImageContents {
        root: root.clone(),
        manifests: Vec::new(),
        blobs: Vec::new(),
    };
    collect(store, &root, &mut contents)?;
    Ok(contents)
}

fn collect(
    store: &dyn BlobStore,
    descriptor: &Descriptor,
    contents: &mut ImageContents,
) -> Result<(), SourceError> {
    // Registries refuse larger manifests; reading one whole would cost its full size in memory.
    if descriptor.size > MAX_MANIFEST_BYTES {
        return Err(SourceError::Corrupt {
            path: PathBuf::from(descriptor.digest.to_string()),
            expected: "a manifest of at most 4 MiB".into(),
            actual: format!("a descriptor of {} bytes", descriptor.size),
        });
    }
    let bytes = store.read(descriptor)?;
    let bad = |what: &'static str, err: serde_json::Error| SourceError::BadJson {
        path: store
            .locate(&descriptor.digest)
            .map_or_else(|_| PathBuf::from(descriptor.digest.to_string()), |l| l.path),
        what,
        detail: err.to_string(),
    };
    if descriptor.is_index() {
        let index: Index = serde_json::from_slice(&bytes).map_err(|e| bad("image index", e))?;
        for child in &index.manifests {
            collect(store, child, contents)?;
        }
    } else {
        let manifest: Manifest =
            serde_json::from_slice(&bytes).map_err(|e| bad("image manifest", e))?;
        for blob in std::iter::once(&manifest.config).chain(&manifest.layers) {
            store.locate(&blob.digest)?;
            if !contents.blobs.iter().any(|b| b.digest == blob.digest) {
                contents.blobs.push(blob.clone());
            }
        }
    }
    if !contents
        .manifests
        .iter()
        .any(|(d, _)| d.digest == descriptor.digest)
    {
        contents.manifests.push((descriptor.clone(), bytes));
    }
    Ok(())
}

/// SHA-256 and length of everything `reader` yields, in fixed-size chunks.
pub(crate) fn sha256_of(mut reader: impl std::io::Read) -> std::io::Result<(Digest, u64)> {
    use sha2::Digest as _;
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut size = 0u64;
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    let digest = Digest::from_hex_sha256(&hasher.finalize());
    Ok((digest, size))
}

//! Reading an OCI image layout directory (`oci-layout`, `index.json`, `blobs/sha256/…`).

use std::path::{Path, PathBuf};

use super::{BlobLocation, BlobStore, ImageContents, SourceError};
use crate::oci::{Descriptor, Digest, Index};

const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// An OCI image layout on disk.
#[derive(Debug, Clone)]
pub struct OciLayout {
    dir: PathBuf,
    index: Index,
}

impl OciLayout {
    /// Opens a layout, checking `oci-layout` and parsing `index.json`.
    pub fn open(dir: &Path) -> Result<OciLayout, SourceError> {
        let marker = dir.join("oci-layout");
        if !dir.is_dir() {
            return Err(SourceError::NotALayout {
                dir: dir.to_path_buf(),
                detail: "the directory does not exist".into(),
            });
        }
        if !marker.is_file() {
            return Err(SourceError::NotALayout {
                dir: dir.to_path_buf(),
                detail: "oci-layout is missing".into(),
            });
        }
        let text = read(&marker).map_err(|err| SourceError::NotALayout {
            dir: dir.to_path_buf(),
            detail: format!("cannot read oci-layout ({err})"),
        })?;
        let version: serde_json::Value =
            serde_json::from_slice(&text).map_err(|err| bad_json(&marker, "oci-layout", &err))?;
        if version["imageLayoutVersion"]
            .as_str()
            .is_none_or(|v| !v.starts_with("1."))
        {
            return Err(SourceError::NotALayout {
                dir: dir.to_path_buf(),
                detail: format!(
                    "unsupported imageLayoutVersion {}",
                    version["imageLayoutVersion"]
                ),
            });
        }
        let index_path = dir.join("index.json");
        let bytes = read(&index_path)?;
        let index = serde_json::from_slice(&bytes)
            .map_err(|err| bad_json(&index_path, "index.json", &err))?;
        Ok(OciLayout {
            dir: dir.to_path_buf(),
            index,
        })
    }

    /// The tags (`org.opencontainers.image.ref.name`) in `index.json`.
    pub fn tags(&self) -> Vec<String> {
        self.index
            .manifests
            .iter()
            .filter_map(|d| d.annotations.get(REF_NAME).cloned())
            .collect()
    }

    /// The entry for `tag`, or the only entry when no tag is given.
    pub fn resolve(&self, tag: Option<&str>) -> Result<Descriptor, SourceError> {
        let entries = &self.index.manifests;
        match tag {
            Some(tag) => entries
                .iter()
                .find(|d| d.annotations.get(REF_NAME).is_some_and(|t| t == tag))
                .cloned()
                .ok_or_else(|| SourceError::UnknownTag {
                    dir: self.dir.clone(),
                    tag: tag.to_owned(),
                    known: self.tags(),
                }),
            None => match entries.as_slice() {
                [only] => Ok(only.clone()),
                [] => Err(SourceError::NotALayout {
                    dir: self.dir.clone(),
                    detail: "index.json lists no image".into(),
                }),
                many => Err(SourceError::Ambiguous {
                    dir: self.dir.clone(),
                    count: many.len(),
                    tags: self.tags(),
                }),
            },
        }
    }

    /// Where a blob's file is.
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.dir.join("blobs").join("sha256").join(digest.hex())
    }

    /// Hashes a blob file from start to end and checks it against its descriptor, reading in
    /// fixed-size chunks (memory does not grow with the blob).
    pub fn verify_blob(&self, descriptor: &Descriptor) -> Result<(), SourceError> {
        let path = self.blob_path(&descriptor.digest);
        let file = std::fs::File::open(&path).map_err(|err| match err.kind() {
            std::io::ErrorKind::NotFound => SourceError::MissingBlob {
                dir: self.dir.clone(),
                digest: descriptor.digest.clone(),
            },
            _ => SourceError::Io {
                path: path.clone(),
                source: err,
            },
        })?;
        let (actual, size) = super::sha256_of(file).map_err(|source| SourceError::Io {
            path: path.clone(),
            source,
        })?;
        if actual != descriptor.digest || size != descriptor.size {
            return Err(corrupt(&path, descriptor, &actual, size));
        }
        Ok(())
    }

    /// Everything the image `tag` consists of (every platform of an index), with every manifest
    /// read and verified; blobs are only checked to exist.
    pub fn image(&self, tag: Option<&str>) -> Result<ImageContents, SourceError> {
        super::walk(self, self.resolve(tag)?)
    }
}

impl BlobStore for OciLayout {
    fn locate(&self, digest: &Digest) -> Result<BlobLocation, SourceError> {
        let path = self.blob_path(digest);
        match std::fs::metadata(&path) {
            Ok(meta) if meta.is_file() => Ok(BlobLocation { path, offset: 0 }),
            Ok(_) => Err(SourceError::NotALayout {
                dir: self.dir.clone(),
                detail: format!(
                    "blob {} is not a regular file (a directory, FIFO or device)",
                    path.display()
                ),
            }),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                Err(SourceError::MissingBlob {
                    dir: self.dir.clone(),
                    digest: digest.clone(),
                })
            }
            Err(source) => Err(SourceError::Io { path, source }),
        }
    }
}

/// The largest `index.json` read (registries cap manifests at 4 MiB, too).
const MAX_INDEX_BYTES: u64 = 4 * 1024 * 1024;

/// A small metadata file, read whole once it is known to be a regular file of sensible size (a
/// FIFO in its place would block the read forever).
fn read(path: &Path) -> Result<Vec<u8>, SourceError> {
    use std::io::Read;
    let io = |source| SourceError::Io {
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    if !meta.is_file() || meta.len() > MAX_INDEX_BYTES {
        return Err(io(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "not a regular file of at most 4 MiB",
        )));
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|file| file.take(MAX_INDEX_BYTES).read_to_end(&mut bytes))
        .map_err(io)?;
    Ok(bytes)
}

fn bad_json(path: &Path, what: &'static str, err: &serde_json::Error) -> SourceError {
    SourceError::BadJson {
        path: path.to_path_buf(),
        what,
        detail: err.to_string(),
    }
}

fn corrupt(path: &Path, descriptor: &Descriptor, actual: &Digest, size: u64) -> SourceError {
    SourceError::Corrupt {
        path: path.to_path_buf(),
        expected: format!("{} ({} bytes)", descriptor.digest, descriptor.size),
        actual: format!("{actual} ({size} bytes)"),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::oci::{Manifest, OCI_INDEX, OCI_MANIFEST, Platform};

    struct Builder {
        dir: PathBuf,
    }

    impl Builder {
        fn new(name: &str) -> Builder {
            let dir =
                std::env::temp_dir().join(format!("deploy-layout-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(dir.join("blobs/sha256")).expect("mkdir");
            std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#)
                .expect("write");
            Builder { dir }
        }

        fn blob(&self, media_type: &str, bytes: &[u8]) -> Descriptor {
            let digest = Digest::of(bytes);
            std::fs::write(self.dir.join("blobs/sha256").join(digest.hex()), bytes)
                .expect("write blob");
            Descriptor {
                media_type: media_type.into(),
                digest,
                size: bytes.len() as u64,
                platform: None,
                annotations: BTreeMap::new(),
            }
        }

        fn image(&self, layer: &[u8]) -> Descriptor {
            let config = self.blob("application/vnd.oci.image.config.v1+json", b"{}");
            let layer = self.blob("application/vnd.oci.image.layer.v1.tar", layer);
            let manifest = Manifest {
                schema_version: 2,
                media_type: Some(OCI_MANIFEST.into()),
                config,
                layers: vec![layer],
            };
            self.blob(OCI_MANIFEST, &serde_json::to_vec(&manifest).expect("json"))
        }

        fn index(&self, entries: Vec<(Descriptor, Option<&str>)>) {
            let manifests = entries
                .into_iter()
                .map(|(mut d, tag)| {
                    if let Some(tag) = tag {
                        d.annotations.insert(REF_NAME.into(), tag.into());
                    }
                    d
                })
                .collect();
            let index = Index {
                schema_version: 2,
                media_type: Some(OCI_INDEX.into()),
                manifests,
            };
            std::fs::write(
                self.dir.join("index.json"),
                serde_json::to_vec(&index).expect("json"),
            )
            .expect("write");
        }
    }

    #[test]
    fn resolves_tags_and_single_images() {
        let b = Builder::new("tags");
        let one = b.image(b"one");
        let two = b.image(b"two");
        b.index(vec![(one.clone(), Some("v1")), (two.clone(), Some("v2"))]);
        let layout = OciLayout::open(&b.dir).expect("open");
        assert_eq!(layout.resolve(Some("v2")).expect("v2").digest, two.digest);
        let err = layout.resolve(Some("v3")).expect_err("unknown");
        assert!(err.to_string().contains("tags there: v1, v2"), "{err}");
        assert!(matches!(
            layout.resolve(None),
            Err(SourceError::Ambiguous { count: 2, .. })
        ));
        let contents = layout.image(Some("v1")).expect("image");
        assert_eq!(contents.blobs.len(), 2);
        assert_eq!(contents.manifests.len(), 1);
        assert!(contents.root.annotations.is_empty());
    }

    #[test]
    fn walks_every_platform_of_an_index() {
        let b = Builder::new("index");
        let mut amd = b.image(b"amd64 layer");
        amd.platform = Some(Platform {
            architecture: "amd64".into(),
            os: "linux".into(),
            variant: None,
        });
        let mut arm = b.image(b"arm64 layer");
        arm.platform = Some(Platform {
            architecture: "arm64".into(),
            os: "linux".into(),
            variant: Some("v8".into()),
        });
        let index = Index {
            schema_version: 2,
            media_type: Some(OCI_INDEX.into()),
            manifests: vec![amd.clone(), arm.clone()],
        };
        let root = b.blob(OCI_INDEX, &serde_json::to_vec(&index).expect("json"));
        b.index(vec![(root.clone(), Some("latest"))]);
        let contents = OciLayout::open(&b.dir)
            .expect("open")
            .image(None)
            .expect("image");
        let order: Vec<&Digest> = contents.manifests.iter().map(|(d, _)| &d.digest).collect();
        assert_eq!(
            order,
            [&amd.digest, &arm.digest, &root.digest],
            "children before the index"
        );
        assert_eq!(
            contents.blobs.len(),
            3,
            "the shared config blob once, two layers"
        );
    }

    #[test]
    fn corrupt_and_missing_blobs_are_caught() {
        let b = Builder::new("corrupt");
        let image = b.image(b"good bytes");
        b.index(vec![(image, Some("v1"))]);
        let layout = OciLayout::open(&b.dir).expect("open");
        let contents = layout.image(Some("v1")).expect("image");
        let layer = contents.blobs[1].clone();
        std::fs::write(layout.blob_path(&layer.digest), b"bad bytes!").expect("corrupt it");
        let err = layout.verify_blob(&layer).expect_err("corrupt");
        assert!(matches!(err, SourceError::Corrupt { .. }), "{err}");
        std::fs::remove_file(layout.blob_path(&layer.digest)).expect("remove");
        assert!(matches!(
            layout.image(Some("v1")),
            Err(SourceError::MissingBlob { .. })
        ));
    }

    #[test]
    fn blobs_that_are_not_regular_files_and_oversized_manifests_are_refused() {
        let b = Builder::new("irregular");
        let image = b.image(b"layer");
        b.index(vec![(image.clone(), Some("v1"))]);
        let layout = OciLayout::open(&b.dir).expect("open");
        let layer = layout.image(Some("v1")).expect("image").blobs[1].clone();
        let path = layout.blob_path(&layer.digest);
        std::fs::remove_file(&path).expect("remove layer");
        std::fs::create_dir(&path).expect("directory in its place");
        let err = layout.image(Some("v1")).expect_err("directory blob");
        assert!(err.to_string().contains("is not a regular file"), "{err}");

        let mut huge = image;
        huge.size = 5 * 1024 * 1024;
        b.index(vec![(huge, Some("v1"))]);
        let err = OciLayout::open(&b.dir)
            .expect("open")
            .image(Some("v1"))
            .expect_err("oversized manifest");
        assert!(err.to_string().contains("at most 4 MiB"), "{err}");
    }

    #[test]
    fn non_layouts_are_rejected() {
        let dir = std::env::temp_dir().join(format!("deploy-not-layout-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let err = OciLayout::open(&dir).expect_err("no marker");
        assert!(
            err.to_string().contains("is not an OCI image layout"),
            "{err}"
        );
    }

    #[test]
    fn the_example_image_reads() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/planwise/build/api");
        let layout = OciLayout::open(&dir).expect("example layout");
        let contents = layout.image(Some("latest")).expect("image");
        for blob in &contents.blobs {
            layout.verify_blob(blob).expect("verified");
        }
    }
}

//! Reading a `docker save` tarball without unpacking it: both the legacy layout
//! (`manifest.json`, `<id>/layer.tar`) and the OCI layout newer Docker writes (`index.json`,
//! `blobs/sha256/…`). Blobs are streamed straight from their byte range in the tarball.

use std::collections::HashMap;
use std::io::{Read, Seek};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{BlobLocation, BlobStore, ImageContents, SourceError, walk};
use crate::oci::{DOCKER_MANIFEST, Descriptor, Digest, Index, Manifest};

const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar";

/// A `docker save` tarball.
#[derive(Debug)]
pub struct DockerArchive {
    path: PathBuf,
    /// Member name to (offset, size).
    members: HashMap<String, (u64, u64)>,
    /// Blob digest to member name, for the legacy layout.
    blobs: HashMap<Digest, String>,
    /// Manifests this reader wrote for the legacy layout.
    synthetic: HashMap<Digest, Vec<u8>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct LegacyEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

impl DockerArchive {
    /// Indexes the members of the tarball (one pass over its headers).
    pub fn open(path: &Path) -> Result<DockerArchive, SourceError> {
        let not_archive = |detail: String| SourceError::NotAnArchive {
            path: path.to_path_buf(),
            detail,
        };
        let file = std::fs::File::open(path).map_err(|source| SourceError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let mut archive = tar::Archive::new(file);
        let mut members = HashMap::new();
        let entries = archive.entries().map_err(|e| not_archive(not_tar(&e)))?;
        for entry in entries {
            let entry = entry.map_err(|e| not_archive(not_tar(&e)))?;
            if !entry.header().entry_type().is_file() {
                continue;
            }
            let name = entry
                .path()
                .map_err(|e| not_archive(e.to_string()))?
                .to_string_lossy()
                .trim_start_matches("./")
                .to_owned();
            members.insert(name, (entry.raw_file_position(), entry.size()));
        }
        if !members.contains_key("manifest.json") && !members.contains_key("index.json") {
            return Err(not_archive(
                "it has neither manifest.json nor index.json".into(),
            ));
        }
        Ok(DockerArchive {
            path: path.to_path_buf(),
            members,
            blobs: HashMap::new(),
            synthetic: HashMap::new(),
        })
    }

    /// A reader of exactly the bytes of member `name`.
    fn open_member(&self, name: &str) -> Result<std::io::Take<std::fs::File>, SourceError> {
        let &(offset, size) = self
            .members
            .get(name)
            .ok_or_else(|| SourceError::NotAnArchive {
                path: self.path.clone(),
                detail: format!("member {name} is missing"),
            })?;
        let io = |source| SourceError::Io {
            path: self.path.clone(),
            source,
        };
        let mut file = std::fs::File::open(&self.path).map_err(io)?;
        file.seek(std::io::SeekFrom::Start(offset)).map_err(io)?;
        Ok(file.take(size))
    }

    fn member(&self, name: &str) -> Result<Vec<u8>, SourceError> {
        let mut bytes = Vec::new();
        self.open_member(name)?
            .read_to_end(&mut bytes)
            .map_err(|source| SourceError::Io {
                path: self.path.clone(),
                source,
            })?;
        Ok(bytes)
    }

    fn hash_member(&self, name: &str) -> Result<(Digest, u64), SourceError> {
        super::sha256_of(self.open_member(name)?).map_err(|source| SourceError::Io {
            path: self.path.clone(),
            source,
        })
    }

    /// The image `tag` (`name:tag`, or just `tag`), or the only image when no tag is given.
    pub fn image(&mut self, tag: Option<&str>) -> Result<ImageContents, SourceError> {
        if self.members.contains_key("index.json") && self.members.contains_key("oci-layout") {
            let index: Index = serde_json::from_slice(&self.member("index.json")?)
                .map_err(|e| self.bad_json("index.json", &e))?;
            let root = pick(&self.path, &index.manifests, tag, |d| {
                [
                    "org.opencontainers.image.ref.name",
                    "io.containerd.image.name",
                ]
                .iter()
                .filter_map(|k| d.annotations.get(*k).cloned())
                .collect()
            })?;
            return walk(self, root.clone());
        }
        let entries: Vec<LegacyEntry> = serde_json::from_slice(&self.member("manifest.json")?)
            .map_err(|e| self.bad_json("manifest.json", &e))?;
        let entry = pick(&self.path, &entries, tag, |e| {
            e.repo_tags.clone().unwrap_or_default()
        })?;
        let config_bytes = self.member(&entry.config)?;
        let config = Descriptor {
            media_type: DOCKER_CONFIG.into(),
            digest: Digest::of(&config_bytes),
            size: config_bytes.len() as u64,
            platform: None,
            annotations: Default::default(),
        };
        self.blobs
            .insert(config.digest.clone(), entry.config.clone());
        let mut layers = Vec::new();
        for layer in &entry.layers {
            let (digest, size) = self.hash_member(layer)?;
            self.blobs.insert(digest.clone(), layer.clone());
            layers.push(Descriptor {
                media_type: DOCKER_LAYER.into(),
                digest,
                size,
                platform: None,
                annotations: Default::default(),
            });
        }
        let manifest = Manifest {
            schema_version: 2,
            media_type: Some(DOCKER_MANIFEST.into()),
            config,
            layers,
        };
        let bytes = serde_json::to_vec(&manifest).map_err(|e| self.bad_json("manifest", &e))?;
        let root = Descriptor {
            media_type: DOCKER_MANIFEST.into(),
            digest: Digest::of(&bytes),
            size: bytes.len() as u64,
            platform: None,
            annotations: Default::default(),
        };
        self.synthetic.insert(root.digest.clone(), bytes);
        walk(self, root)
    }

    fn bad_json(&self, what: &'static str, err: &serde_json::Error) -> SourceError {
        SourceError::BadJson {
            path: self.path.join(what),
            what: "docker save metadata",
            detail: err.to_string(),
        }
    }
}

/// The entry whose names match `tag` (exactly, or as the `:tag` of `name:tag`), or the only one.
fn pick<'a, T>(
    path: &Path,
    entries: &'a [T],
    tag: Option<&str>,
    names: impl Fn(&T) -> Vec<String>,
) -> Result<&'a T, SourceError> {
    let all: Vec<String> = entries.iter().flat_map(&names).collect();
    match tag {
        Some(tag) => entries
            .iter()
            .find(|e| {
                names(e)
                    .iter()
                    .any(|n| n == tag || n.rsplit_once(':').is_some_and(|(_, t)| t == tag))
            })
            .ok_or_else(|| SourceError::UnknownTag {
                dir: path.to_path_buf(),
                tag: tag.to_owned(),
                known: all,
            }),
        None => match entries {
            [only] => Ok(only),
            [] => Err(SourceError::NotAnArchive {
                path: path.to_path_buf(),
                detail: "it lists no image".into(),
            }),
            many => Err(SourceError::Ambiguous {
                dir: path.to_path_buf(),
                count: many.len(),
                tags: all,
            }),
        },
    }
}

impl BlobStore for DockerArchive {
    fn locate(&self, digest: &Digest) -> Result<BlobLocation, SourceError> {
        let name = self
            .blobs
            .get(digest)
            .cloned()
            .unwrap_or_else(|| format!("blobs/sha256/{}", digest.hex()));
        match self.members.get(&name) {
            Some(&(offset, _)) => Ok(BlobLocation {
                path: self.path.clone(),
                offset,
            }),
            None => Err(SourceError::MissingBlob {
                dir: self.path.clone(),
                digest: digest.clone(),
            }),
        }
    }

    fn read(&self, descriptor: &Descriptor) -> Result<Vec<u8>, SourceError> {
        if let Some(bytes) = self.synthetic.get(&descriptor.digest) {
            return Ok(bytes.clone());
        }
        let location = self.locate(&descriptor.digest)?;
        let name = self
            .members
            .iter()
            .find(|(_, (o, _))| *o == location.offset)
            .map(|(n, _)| n.clone())
            .unwrap_or_default();
        let bytes = self.member(&name)?;
        if Digest::of(&bytes) != descriptor.digest || bytes.len() as u64 != descriptor.size {
            return Err(SourceError::Corrupt {
                path: self.path.join(name),
                expected: format!("{} ({} bytes)", descriptor.digest, descriptor.size),
                actual: format!("{} ({} bytes)", Digest::of(&bytes), bytes.len()),
            });
        }
        Ok(bytes)
    }
}

/// Why a file is not a tar, with the reader's words but none of the file's bytes (a header of
/// garbage would otherwise be echoed to the terminal).
fn not_tar(err: &std::io::Error) -> String {
    let detail = err.to_string();
    let detail = detail.split(':').next().unwrap_or_default();
    let printable: String = detail
        .chars()
        .filter(|c| c.is_ascii_graphic() || *c == ' ')
        .take(80)
        .collect();
    format!("not a tar file ({})", printable.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_with(members: &[(&str, &[u8])]) -> PathBuf {
        let path = std::env::temp_dir().join(format!(
            "deploy-archive-{}-{}.tar",
            std::process::id(),
            members.len() * 31 + members.first().map_or(0, |m| m.0.len())
        ));
        let mut builder = tar::Builder::new(std::fs::File::create(&path).expect("create"));
        for (name, bytes) in members {
            let mut header = tar::Header::new_gnu();
            header.set_size(bytes.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            builder
                .append_data(&mut header, name, *bytes)
                .expect("append");
        }
        builder.finish().expect("finish");
        path
    }

    #[test]
    fn reads_the_legacy_layout() {
        let config = br#"{"architecture":"amd64","os":"linux"}"#;
        let manifest = br#"[{"Config":"abc.json","RepoTags":["planwise/api:v1"],"Layers":["l1/layer.tar","l2/layer.tar"]}]"#;
        let path = tar_with(&[
            ("manifest.json", manifest),
            ("abc.json", config),
            ("l1/layer.tar", b"first layer"),
            ("l2/layer.tar", b"second layer"),
        ]);
        let mut archive = DockerArchive::open(&path).expect("open");
        let contents = archive.image(Some("v1")).expect("image");
        assert_eq!(contents.blobs.len(), 3);
        assert_eq!(contents.blobs[1].digest, Digest::of(b"first layer"));
        assert_eq!(contents.root.media_type, DOCKER_MANIFEST);
        let location = archive
            .locate(&Digest::of(b"second layer"))
            .expect("located");
        let mut file = std::fs::File::open(&location.path).expect("open");
        file.seek(std::io::SeekFrom::Start(location.offset))
            .expect("seek");
        let mut start = [0u8; 6];
        file.read_exact(&mut start).expect("read");
        assert_eq!(&start, b"second");
        let err = archive.image(Some("v2")).expect_err("unknown tag");
        assert!(err.to_string().contains("planwise/api:v1"), "{err}");
    }

    #[test]
    fn rejects_tarballs_that_are_not_images() {
        let path = tar_with(&[("hello.txt", b"hi")]);
        let err = DockerArchive::open(&path).expect_err("not an image");
        assert!(
            err.to_string()
                .contains("neither manifest.json nor index.json"),
            "{err}"
        );
        let junk = std::env::temp_dir().join(format!("deploy-junk-{}.tar", std::process::id()));
        std::fs::write(&junk, vec![7u8; 2048]).expect("write");
        assert!(matches!(
            DockerArchive::open(&junk),
            Err(SourceError::NotAnArchive { .. })
        ));
    }
}

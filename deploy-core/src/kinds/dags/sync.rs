//! Syncing a DAG folder to its bucket by content: one listing of the prefix, each file
//! compared by MD5 with the listing's ETag (S3's content hash of a single-part upload, whoever
//! uploaded it), so a fresh checkout with new mtimes uploads nothing. New and changed files go
//! up in parallel with a SHA-256 checksum S3 verifies (also kept as `sha256` metadata); files
//! gone from the folder are deleted. Keys outside the prefix are never listed or touched.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{Delete, ObjectIdentifier};
use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::DagFile;
use super::collect::SourceFile;
use crate::aws::SdkFailure;

/// A file of the folder with its hashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HashedFile {
    /// The file.
    pub file: SourceFile,
    /// Hex SHA-256.
    pub sha256: String,
    /// Hex MD5 (what S3's ETag of a single-part upload is).
    pub md5: String,
}

impl HashedFile {
    /// Hashes `bytes`, the content of `file`.
    pub fn new(file: SourceFile, bytes: &[u8]) -> HashedFile {
        HashedFile {
            file,
            sha256: hex(&Sha256::digest(bytes)),
            md5: hex(&<md5::Md5 as md5::Digest>::digest(bytes)),
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// An object under the prefix, as the listing shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remote {
    /// ETag without quotes.
    pub etag: String,
    /// Size.
    pub size: u64,
}

/// What a sync does, file by file (paths relative to the prefix).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diff {
    /// Not in the bucket.
    pub added: Vec<String>,
    /// In the bucket with other content.
    pub changed: Vec<String>,
    /// In the bucket, not in the folder.
    pub deleted: Vec<String>,
    /// In the bucket with the same content.
    pub unchanged: Vec<String>,
}

/// Compares the folder with the bucket's listing.
pub fn diff(files: &[HashedFile], remote: &BTreeMap<String, Remote>) -> Diff {
    let mut out = Diff::default();
    for f in files {
        match remote.get(&f.file.path) {
            None => out.added.push(f.file.path.clone()),
            Some(r) if r.etag == f.md5 && r.size == f.file.size => {
                out.unchanged.push(f.file.path.clone());
            }
            Some(_) => out.changed.push(f.file.path.clone()),
        }
    }
    let local: std::collections::HashSet<&str> =
        files.iter().map(|f| f.file.path.as_str()).collect();
    out.deleted = remote
        .keys()
        .filter(|k| !local.contains(k.as_str()))
        .cloned()
        .collect();
    out
}

/// A failure talking to the DAG bucket.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// An S3 request failed; the message names S3's answer (`AccessDenied: ...`) without `-v`.
    #[error("{operation} s3://{bucket}/{key} failed: {source}")]
    S3 {
        /// The operation (`ListObjectsV2`, `PutObject`, ...).
        operation: &'static str,
        /// Bucket.
        bucket: String,
        /// Key or prefix.
        key: String,
        /// The SDK's error.
        #[source]
        source: Box<SdkFailure>,
    },
    /// The DAG bucket does not exist (S3 said `NoSuchBucket`).
    #[error(
        "the DAG bucket `{bucket}` does not exist in this environment's account and region; \
         create it (with versioning) or fix the artifact's `bucket` in deploy.toml"
    )]
    NoBucket {
        /// Bucket.
        bucket: String,
    },
    /// The DAG bucket does not keep versions: promotion and rollback restore recorded versions.
    #[error(
        "the DAG bucket `{bucket}` does not keep versions (versioning {status}); promotion and \
         rollback put back the versions a release recorded. Turn it on (aws s3api \
         put-bucket-versioning --bucket {bucket} --versioning-configuration Status=Enabled) and \
         run again; nothing was changed"
    )]
    Unversioned {
        /// Bucket.
        bucket: String,
        /// What S3 said (`never enabled`, `Suspended`).
        status: String,
    },
    /// A local file could not be read for upload.
    #[error("cannot read {}", path.display())]
    Read {
        /// The file.
        path: std::path::PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A file changed between hashing and upload.
    #[error("{path} changed while it was being uploaded; run again")]
    Moved {
        /// The file.
        path: String,
    },
    /// S3 refused some deletes.
    #[error("S3 did not delete {count} object(s) under s3://{bucket}/{prefix}, e.g. {first}")]
    Delete {
        /// Bucket.
        bucket: String,
        /// Prefix.
        prefix: String,
        /// How many.
        count: usize,
        /// One of them, with the reason.
        first: String,
    },
    /// The sync would delete more than the configured share of the files.
    #[error(
        "refusing to delete {deletes} of the {total} files under s3://{bucket}/{prefix} (more than max_delete_share = {share}); rerun with --allow-mass-delete (or DEPLOY_ALLOW_MASS_DELETE=1) if that is intended"
    )]
    MassDelete {
        /// Bucket.
        bucket: String,
        /// Prefix.
        prefix: String,
        /// Files it would delete.
        deletes: usize,
        /// Files in the bucket now.
        total: usize,
        /// The configured share.
        share: f64,
    },
}

impl crate::error::Classify for SyncError {
    fn class(&self) -> crate::error::ErrorClass {
        match self {
            SyncError::MassDelete { .. } => crate::error::ErrorClass::Blocked,
            SyncError::NoBucket { .. } | SyncError::Unversioned { .. } => {
                crate::error::ErrorClass::Usage
            }
            _ => crate::error::ErrorClass::Failure,
        }
    }

    fn config_key(&self) -> Option<&'static str> {
        matches!(
            self,
            SyncError::NoBucket { .. } | SyncError::Unversioned { .. }
        )
        .then_some("bucket")
    }
}

/// The bucket and prefix a sync works in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Place {
    /// Bucket.
    pub bucket: String,
    /// Prefix, ending with `/` or empty.
    pub prefix: String,
}

impl Place {
    fn key(&self, path: &str) -> String {
        format!("{}{path}", self.prefix)
    }

    pub(crate) fn sdk_error<E>(
        &self,
        operation: &'static str,
        key: &str,
        err: SdkError<E, aws_smithy_runtime_api::client::orchestrator::HttpResponse>,
    ) -> SyncError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let failure = SdkFailure::new(err);
        if failure.code() == Some("NoSuchBucket") {
            return SyncError::NoBucket {
                bucket: self.bucket.clone(),
            };
        }
        SyncError::S3 {
            operation,
            bucket: self.bucket.clone(),
            key: key.to_owned(),
            source: Box::new(failure),
        }
    }

    /// Refuses a bucket whose versioning is not `Enabled` (GetBucketVersioning).
    pub async fn check_versioning(&self, s3: &aws_sdk_s3::Client) -> Result<(), SyncError> {
        let out = s3
            .get_bucket_versioning()
            .bucket(&self.bucket)
            .send()
            .await
            .map_err(|e| self.sdk_error("GetBucketVersioning", "", e))?;
        match out.status() {
            Some(aws_sdk_s3::types::BucketVersioningStatus::Enabled) => Ok(()),
            other => Err(SyncError::Unversioned {
                bucket: self.bucket.clone(),
                status: other.map_or("never enabled".to_owned(), |s| s.as_str().to_owned()),
            }),
        }
    }

    /// Every object under the prefix: one paginated ListObjectsV2.
    pub async fn list(
        &self,
        s3: &aws_sdk_s3::Client,
    ) -> Result<BTreeMap<String, Remote>, SyncError> {
        let mut out = BTreeMap::new();
        let mut pages = s3
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(&self.prefix)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| self.sdk_error("ListObjectsV2", &self.prefix, e))?;
            for object in page.contents() {
                let Some(path) = object.key().and_then(|k| k.strip_prefix(&self.prefix)) else {
                    continue;
                };
                if path.is_empty() || path.ends_with('/') {
                    continue;
                }
                out.insert(
                    path.to_owned(),
                    Remote {
                        etag: object
                            .e_tag()
                            .unwrap_or_default()
                            .trim_matches('"')
                            .to_owned(),
                        size: u64::try_from(object.size().unwrap_or_default()).unwrap_or(0),
                    },
                );
            }
        }
        Ok(out)
    }

    /// The current version id of every object under the prefix (ListObjectVersions).
    pub async fn latest_versions(
        &self,
        s3: &aws_sdk_s3::Client,
    ) -> Result<HashMap<String, String>, SyncError> {
        let mut out = HashMap::new();
        let (mut key_marker, mut version_marker) = (None::<String>, None::<String>);
        loop {
            let page = s3
                .list_object_versions()
                .bucket(&self.bucket)
                .prefix(&self.prefix)
                .set_key_marker(key_marker.take())
                .set_version_id_marker(version_marker.take())
                .send()
                .await
                .map_err(|e| self.sdk_error("ListObjectVersions", &self.prefix, e))?;
            for v in page.versions() {
                if let (Some(key), Some(id), Some(true)) = (v.key(), v.version_id(), v.is_latest())
                    && let Some(path) = key.strip_prefix(&self.prefix)
                {
                    out.insert(path.to_owned(), id.to_owned());
                }
            }
            if page.is_truncated() != Some(true) {
                return Ok(out);
            }
            key_marker = page.next_key_marker().map(str::to_owned);
            version_marker = page.next_version_id_marker().map(str::to_owned);
        }
    }

    /// Uploads `file` with its checksum; returns the version id written.
    pub async fn upload(
        &self,
        s3: &aws_sdk_s3::Client,
        file: &HashedFile,
    ) -> Result<Option<String>, SyncError> {
        let bytes = tokio::fs::read(&file.file.local)
            .await
            .map_err(|source| SyncError::Read {
                path: file.file.local.clone(),
                source,
            })?;
        self.put_bytes(s3, &file.file.path, &file.sha256, bytes)
            .await
    }

    /// Writes `bytes` at `path` if their SHA-256 is `sha256`, with that checksum; returns the
    /// version id written.
    pub(crate) async fn put_bytes(
        &self,
        s3: &aws_sdk_s3::Client,
        path: &str,
        sha256: &str,
        bytes: Vec<u8>,
    ) -> Result<Option<String>, SyncError> {
        let digest = Sha256::digest(&bytes);
        if hex(&digest) != sha256 {
            return Err(SyncError::Moved {
                path: path.to_owned(),
            });
        }
        let key = self.key(path);
        let out = s3
            .put_object()
            .bucket(&self.bucket)
            .key(&key)
            .checksum_sha256(base64(&digest))
            .metadata("sha256", sha256)
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map_err(|e| self.sdk_error("PutObject", &key, e))?;
        Ok(out.version_id().map(str::to_owned))
    }

    /// Puts back version `version` of `path` (a server-side copy of the old version).
    pub async fn restore(
        &self,
        s3: &aws_sdk_s3::Client,
        from: &Place,
        path: &str,
        version: &str,
    ) -> Result<Option<String>, SyncError> {
        let key = self.key(path);
        let source = format!(
            "{}/{}?versionId={}",
            from.bucket,
            encode(&from.key(path)),
            encode(version)
        );
        let out = s3
            .copy_object()
            .bucket(&self.bucket)
            .key(&key)
            .copy_source(source)
            .send()
            .await
            .map_err(|e| self.sdk_error("CopyObject", &key, e))?;
        Ok(out.version_id().map(str::to_owned))
    }

    /// Deletes `paths` (DeleteObjects, 1000 a request).
    pub async fn delete(&self, s3: &aws_sdk_s3::Client, paths: &[String]) -> Result<(), SyncError> {
        for chunk in paths.chunks(1000) {
            let objects: Vec<ObjectIdentifier> = chunk
                .iter()
                .filter_map(|p| ObjectIdentifier::builder().key(self.key(p)).build().ok())
                .collect();
            let delete = Delete::builder()
                .set_objects(Some(objects))
                .quiet(true)
                .build()
                .map_err(|e| SyncError::Delete {
                    bucket: self.bucket.clone(),
                    prefix: self.prefix.clone(),
                    count: chunk.len(),
                    first: e.to_string(),
                })?;
            let out = s3
                .delete_objects()
                .bucket(&self.bucket)
                .delete(delete)
                .send()
                .await
                .map_err(|e| self.sdk_error("DeleteObjects", &self.prefix, e))?;
            if let Some(first) = out.errors().first() {
                return Err(SyncError::Delete {
                    bucket: self.bucket.clone(),
                    prefix: self.prefix.clone(),
                    count: out.errors().len(),
                    first: format!(
                        "{}: {}",
                        first.key().unwrap_or_default(),
                        first.message().unwrap_or_default()
                    ),
                });
            }
        }
        Ok(())
    }
}

/// Percent-encodes a key for `x-amz-copy-source` (keeps `/` and unreserved characters).
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn base64(bytes: &[u8]) -> String {
    aws_smithy_types::base64::encode(bytes)
}

/// Uploads `files` with at most `parallel` at once; returns each path's new version id.
pub async fn upload_all(
    s3: &aws_sdk_s3::Client,
    place: &Place,
    files: Vec<&HashedFile>,
    parallel: usize,
    on_done: &(dyn Fn(&HashedFile) + Sync),
) -> Result<HashMap<String, Option<String>>, SyncError> {
    let uploads: Vec<_> = files
        .into_iter()
        .map(|file| upload_one(s3, place, file, on_done))
        .collect();
    futures::stream::iter(uploads)
        .buffer_unordered(parallel.max(1))
        .try_collect()
        .await
}

async fn upload_one(
    s3: &aws_sdk_s3::Client,
    place: &Place,
    file: &HashedFile,
    on_done: &(dyn Fn(&HashedFile) + Sync),
) -> Result<(String, Option<String>), SyncError> {
    let version = place.upload(s3, file).await?;
    on_done(file);
    Ok((file.file.path.clone(), version))
}

/// The hash a DAG release is known by: over every file's path and SHA-256, in path order.
pub fn content_hash(files: &[DagFile]) -> String {
    let mut hasher = Sha256::new();
    for f in files {
        hasher.update(f.path.as_bytes());
        hasher.update([0]);
        hasher.update(f.sha256.as_bytes());
        hasher.update([b'\n']);
    }
    format!("sha256:{}", hex(&hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hashed(path: &str, text: &str) -> HashedFile {
        HashedFile::new(
            SourceFile {
                path: path.into(),
                local: path.into(),
                size: text.len() as u64,
            },
            text.as_bytes(),
        )
    }

    #[test]
    fn files_compare_by_content_not_time() {
        let files = [
            hashed("a.py", "a"),
            hashed("b.py", "b"),
            hashed("c.py", "c"),
        ];
        let remote = BTreeMap::from([
            (
                "a.py".to_owned(),
                Remote {
                    etag: files[0].md5.clone(),
                    size: 1,
                },
            ),
            (
                "b.py".to_owned(),
                Remote {
                    etag: "0cc175b9c0f1b6a831c399e269772661".into(),
                    size: 1,
                },
            ),
            (
                "gone.py".to_owned(),
                Remote {
                    etag: "x".into(),
                    size: 1,
                },
            ),
        ]);
        let d = diff(&files, &remote);
        assert_eq!(d.unchanged, ["a.py"]);
        assert_eq!(d.changed, ["b.py"]);
        assert_eq!(d.added, ["c.py"]);
        assert_eq!(d.deleted, ["gone.py"]);
        assert_eq!(files[0].md5, "0cc175b9c0f1b6a831c399e269772661");
    }

    #[test]
    fn copy_sources_are_percent_encoded() {
        assert_eq!(encode("dags/a b+c.py"), "dags/a%20b%2Bc.py");
    }
}

//! The file list of a DAG release. Small lists live in the record; larger ones are a gzipped
//! JSON object in the state bucket, named by the SHA-256 of the list (paths, hashes and S3
//! versions) and referenced from the record, so the live pointer (and `status`, `history`) stay
//! small whatever the folder's size, and no object is ever rewritten with other contents.

use std::io::{Read, Write};

use aws_sdk_s3::primitives::ByteStream;

use super::{DagFile, DagsRef};
use crate::aws::{AwsClients, SdkFailure};
use crate::ledger::ArtifactRef;

/// Releases with more files than this keep their list in its own object.
pub const INLINE_FILES: usize = 200;

/// A manifest object could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// An S3 request failed.
    #[error("{operation} {url}")]
    S3 {
        /// `PutObject` or `GetObject`.
        operation: &'static str,
        /// The object.
        url: String,
        /// The SDK's error.
        #[source]
        source: Box<SdkFailure>,
    },
    /// The object is not a gzipped JSON list of files.
    #[error("{url} is not a DAG manifest")]
    Corrupt {
        /// The object.
        url: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

impl crate::error::Classify for ManifestError {
    fn class(&self) -> crate::error::ErrorClass {
        crate::error::ErrorClass::Failure
    }
}

/// A DAG release's files, as recorded.
#[derive(Debug, Clone)]
pub struct Release<'a> {
    /// The artifact.
    pub artifact: &'a str,
    /// `sha256:` of the file list.
    pub content_hash: String,
    /// The files.
    pub files: Vec<DagFile>,
    /// `s3://bucket/prefix` they are in.
    pub location: String,
}

/// The record's reference to `release`: inline when small, else stored first, unless
/// `existing` (the live release's manifest object) already is that object.
pub async fn reference(
    clients: &AwsClients,
    release: Release<'_>,
    existing: Option<&str>,
) -> Result<ArtifactRef, ManifestError> {
    let Release {
        artifact,
        content_hash,
        files,
        location,
    } = release;
    if files.len() <= INLINE_FILES {
        return Ok(ArtifactRef::new(&DagsRef {
            content_hash,
            files,
            location: Some(location),
            manifest: None,
        }));
    }
    let target = &clients.target;
    // The versions are part of the name: a release with the same files in other versions (a
    // rollback's copies) gets its own object rather than rewriting an earlier release's.
    let json = serde_json::to_vec(&files).unwrap_or_default();
    let hash = crate::hash::sha256_hex(&json);
    let key = format!(
        "{}artifacts/{artifact}/manifests/{hash}.json.gz",
        target.state_prefix()
    );
    let url = format!("s3://{}/{key}", target.state_bucket);
    if existing == Some(url.as_str()) {
        // Named by its list: the same name is the same list.
        return Ok(ArtifactRef::new(&DagsRef {
            content_hash,
            files: Vec::new(),
            location: Some(location),
            manifest: Some(url),
        }));
    }
    let body = gzip(&json).map_err(|source| ManifestError::Corrupt {
        url: url.clone(),
        source,
    })?;
    clients
        .s3
        .put_object()
        .bucket(&target.state_bucket)
        .key(&key)
        .content_type("application/json")
        .content_encoding("gzip")
        .body(ByteStream::from(body))
        .send()
        .await
        .map_err(|e| ManifestError::S3 {
            operation: "PutObject",
            url: url.clone(),
            source: Box::new(SdkFailure::new(e)),
        })?;
    Ok(ArtifactRef::new(&DagsRef {
        content_hash,
        files: Vec::new(),
        location: Some(location),
        manifest: Some(url),
    }))
}

/// The files of a DAG release, read from its manifest object when the record points at one.
pub async fn files(
    s3: &aws_sdk_s3::Client,
    artifact_ref: &ArtifactRef,
) -> Result<Vec<DagFile>, ManifestError> {
    let Some(DagsRef {
        files, manifest, ..
    }) = artifact_ref.decode::<DagsRef>()
    else {
        return Ok(Vec::new());
    };
    let Some(url) = manifest.filter(|_| files.is_empty()) else {
        return Ok(files);
    };
    let corrupt = |source| ManifestError::Corrupt {
        url: url.clone(),
        source,
    };
    let (bucket, key) = url
        .strip_prefix("s3://")
        .and_then(|rest| rest.split_once('/'))
        .ok_or_else(|| corrupt(std::io::Error::other("not an s3:// address")))?;
    let object = s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| ManifestError::S3 {
            operation: "GetObject",
            url: url.clone(),
            source: Box::new(SdkFailure::new(e)),
        })?;
    let body = object
        .body
        .collect()
        .await
        .map_err(|e| corrupt(std::io::Error::other(e)))?
        .into_bytes();
    gunzip(&body).map_err(corrupt)
}

fn gzip(json: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(json)?;
    encoder.finish()
}

fn gunzip(body: &[u8]) -> std::io::Result<Vec<DagFile>> {
    let mut json = Vec::new();
    flate2::read::GzDecoder::new(body)
        .take(512 * 1024 * 1024)
        .read_to_end(&mut json)?;
    Ok(serde_json::from_slice(&json)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests_round_trip_and_refuse_garbage() {
        let files: Vec<DagFile> = (0..3)
            .map(|i| DagFile {
                path: format!("f{i}.py"),
                sha256: "ab".repeat(32),
                version_id: Some(format!("v{i}")),
            })
            .collect();
        let body = gzip(&serde_json::to_vec(&files).expect("json")).expect("gzip");
        assert_eq!(gunzip(&body).expect("gunzip"), files);
        assert!(gunzip(b"not gzip").is_err());
    }
}

//! Airflow DAG folders synced to the environment's DAG bucket ([`super::DagsSpec`]).

pub(crate) mod collect;
pub(crate) mod config;
mod iam;
pub mod ignore;
pub(crate) mod kind;
pub mod manifest;
pub mod plan;
pub(crate) mod promote;
pub(crate) mod status;
pub(crate) mod steps;
pub(crate) mod sync;
pub(crate) mod validate;

pub use ignore::IgnoreSyntax;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The exact DAG file set a release refers to, kept in records as an
/// [`ArtifactRef`](crate::ledger::ArtifactRef).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DagsRef {
    /// Hash over every file's path and sha256.
    pub content_hash: String,
    /// Each file with its hash and the S3 version id written.
    #[serde(default)]
    pub files: Vec<DagFile>,
    /// Where the files are: `s3://bucket/prefix` (what a promotion copies from).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// For large file sets, `files` is empty and the list is this gzipped JSON object
    /// (`s3://state-bucket/key`), so pointers and `status` stay small.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest: Option<String>,
}

impl crate::ledger::KindRef for DagsRef {
    const KIND: &'static str = "dags";

    fn content_id(&self) -> &str {
        &self.content_hash
    }
}

/// One file of a DAG release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DagFile {
    /// Path relative to the DAG folder.
    pub path: String,
    /// Hex SHA-256 of the content.
    pub sha256: String,
    /// S3 version id of the uploaded object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
}

/// An Airflow DAG folder synced to S3.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DagsSpec {
    /// The local DAG folder.
    pub source: PathBuf,
    /// The environment's DAG bucket.
    pub bucket: String,
    /// Key prefix inside the bucket, ending with `/` (or empty).
    pub prefix: String,
    /// How `.airflowignore` files are read.
    pub ignore_syntax: IgnoreSyntax,
    /// When not empty, only files matching one of these globs ship.
    pub include: Vec<String>,
    /// Files matching one of these globs never ship.
    pub exclude: Vec<String>,
    /// The largest share (0..=1) of the files in the bucket a sync deletes without
    /// `--allow-mass-delete`.
    pub max_delete_share: f64,
}

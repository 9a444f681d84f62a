//! Airflow DAG folders synced to the environment's DAG bucket ([`super::DagsSpec`]).

pub mod collect;
pub(crate) mod config;
pub mod ignore;
pub(crate) mod kind;
pub mod manifest;
pub mod plan;
pub mod promote;
pub mod steps;
pub mod sync;
pub mod validate;

pub use ignore::IgnoreSyntax;

use std::path::PathBuf;

use serde::Serialize;

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

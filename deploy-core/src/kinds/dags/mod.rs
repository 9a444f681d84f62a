//! Airflow DAG folders synced to the environment's DAG bucket ([`super::DagsSpec`]).

pub mod collect;
pub(crate) mod config;
pub mod ignore;
pub mod manifest;
pub mod plan;
pub mod promote;
pub mod steps;
pub mod sync;
pub mod validate;

pub use ignore::IgnoreSyntax;

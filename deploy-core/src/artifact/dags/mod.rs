//! Airflow DAG folders synced to the environment's DAG bucket ([`super::DagsSpec`]).

pub mod collect;
pub(crate) mod config;
pub mod ignore;
pub mod plan;

pub use ignore::IgnoreSyntax;

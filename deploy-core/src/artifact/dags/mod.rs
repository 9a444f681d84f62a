//! Airflow DAG folders synced to the environment's DAG bucket ([`super::DagsSpec`]).

pub(crate) mod config;
pub mod plan;

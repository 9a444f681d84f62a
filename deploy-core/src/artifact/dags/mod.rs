//! Airflow DAG folders synced to an S3 bucket ([`super::DagsSpec`]).

pub(crate) mod config;

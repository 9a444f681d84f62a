//! Airflow DAG folders synced to the environment's DAG bucket.

pub mod plan;

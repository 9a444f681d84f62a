//! `deploy-core`: publish container images, Airflow DAGs and Lambda functions to
//! per-environment AWS targets, roll them out safely, and record every release.
//!
//! The flow: load a [`config::Config`], pick an [`config::Environment`] (its
//! [`target::Target`] says where it lives), connect the AWS clients once
//! ([`aws::AwsClients`]), build a [`plan::Plan`], and apply it with the [`engine::Engine`],
//! watching typed [`events::Event`]s through an [`events::Reporter`].
#![deny(missing_docs)]
// The shared checks and helpers some kinds use are unused in a build without them.
#![cfg_attr(
    not(all(feature = "image", feature = "dags", feature = "lambda")),
    allow(dead_code, unused_imports, unused_mut)
)]

pub mod aws;
pub mod catalog;
pub mod config;
mod duration_serde;
pub mod engine;
pub mod error;
pub mod events;
mod hash;
pub mod kinds;
pub mod ledger;
pub mod lock;
pub mod oci;
pub mod ops;
pub mod plan;
pub mod registry;
pub mod rollout;
pub mod target;
mod wait;

//! `deploy-core`: publish container images, Airflow DAGs and Lambda functions to
//! per-environment AWS targets, roll them out safely, and record every release. The `deploy`
//! command is one front-end of this library; your own Rust tools can be others.
//!
//! # Adding it
//!
//! ```toml
//! [dependencies]
//! deploy-core = { path = "../deploy/deploy-core" }                    # or a git dependency
//! # only the kinds you ship, e.g. DAG folders alone (no ECS, ECR, Lambda SDK crates):
//! # deploy-core = { path = "...", default-features = false, features = ["dags"] }
//! tokio = { version = "1", features = ["macros", "rt-multi-thread"] }
//! ```
//!
//! Cargo features: `image` (ECR, ECS, CodeDeploy, EventBridge, Scheduler), `dags` (S3 and the
//! Python parser that checks DAG files), `lambda` (Lambda, CloudWatch); all on by default. A
//! configuration naming a kind the build lacks is refused when it is loaded.
//!
//! # The flow
//!
//! Load a [`Config`], then call an operation of [`ops`]: it checks the request (the
//! environment may be changed this way, approval, the version), reads what it needs and
//! returns the [`Plan`] ready to apply; [`ops::apply`] runs it with the [`Engine`] (account
//! check, lock, each step with its undo on failure, the ledger records, unlock), reporting
//! typed [`Event`]s to your [`Reporter`]. Errors are [`Error`]s carrying their [`ErrorClass`]
//! (the `deploy` command's exit code).
//!
//! ```no_run
//! use std::sync::Arc;
//!
//! use deploy_core::ops::{self, ApplyOptions, ReleaseRequest};
//! use deploy_core::{Config, Event, Reporter};
//!
//! struct Log;
//!
//! impl Reporter for Log {
//!     fn report(&self, event: &Event) {
//!         eprintln!("{event:?}");
//!     }
//! }
//!
//! # async fn example() -> deploy_core::Result<()> {
//! let config = Config::load(std::path::Path::new("deploy.toml"))?;
//! let request = ReleaseRequest {
//!     environment: "dev",
//!     artifacts: &[],
//!     version: Some("v42"),
//!     operation: deploy_core::ledger::Operation::Release,
//!     confirm: ops::Confirm::default(),
//! };
//! let prepared = ops::release(&config, &request).await?;
//! match ops::apply(&config, &prepared, Arc::new(Log), &ApplyOptions::default()).await {
//!     Ok(report) => println!("recorded {} release(s)", report.releases.len()),
//!     Err(failure) => {
//!         // Undone (class RolledBack, exit 3) or failed naming what is left (exit 1).
//!         let err = deploy_core::Error::from(failure);
//!         eprintln!("{err} ({:?})", err.class());
//!     }
//! }
//! # Ok(())
//! # }
//! ```
//!
//! Your own steps run the same way as the built-in kinds: implement [`StepHandler`] for an
//! action type, register it on the [`Engine`], and apply a plan holding steps of that type;
//! the engine locks, records and undoes them like any other (`examples/embed.rs`).
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
pub mod iam;
pub mod kinds;
pub mod ledger;
pub mod lock;
pub mod notify;
pub mod oci;
pub mod ops;
pub mod plan;
pub mod registry;
pub mod rollout;
pub mod target;
mod wait;

pub use config::{ArtifactSpec, Config, Environment};
pub use engine::{
    ApplyFailure, ApplyReport, Done, Engine, StepContext, StepError, StepHandler, Undo,
};
pub use error::{Classify, Error, ErrorClass};
pub use events::{Event, Reporter};
pub use ledger::{ArtifactRef, KindRef, Ledger, ReleaseRecord};
pub use plan::{Action, ActionInput, Plan, Reversibility, Step};

/// `Result` with the library's [`Error`] by default.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The README's Rust example, compiled with the doc tests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeExample;

//! How a published artifact reaches what runs: strategies and their resolved settings.

pub mod health;

pub use crate::catalog::Strategy;

use std::time::Duration;

use serde::{Deserialize, Serialize};

pub(crate) mod config;
pub(crate) mod raw;

/// An HTTP health check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthCheck {
    /// The URL to GET.
    pub url: String,
    /// The status code that means healthy.
    pub expect_status: u16,
    /// A substring the body must contain, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect_body: Option<String>,
    /// How long to keep trying.
    #[serde(with = "crate::duration_serde")]
    pub timeout: Duration,
    /// Blue/green: the test listener's URL, checked before production traffic moves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_url: Option<String>,
}

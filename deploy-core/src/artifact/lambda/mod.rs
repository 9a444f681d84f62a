//! Lambda functions: zips uploaded, versions published, aliases moved behind an alias
//! ([`super::LambdaSpec`]).

pub(crate) mod config;
mod latest;
pub mod package;
pub mod plan;
pub mod promote;
pub mod publish;
pub mod steps;

//! Lambda functions: zips uploaded, versions published, aliases moved.

pub mod plan;

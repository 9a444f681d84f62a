//! Lambda functions deployed from a zip behind an alias ([`super::LambdaSpec`]).

pub(crate) mod config;

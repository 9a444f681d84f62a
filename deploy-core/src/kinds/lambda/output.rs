//! What a Lambda publish leaves for the alias shift of the same run.

/// The version this run published (or found unchanged) for an artifact: what the alias shift
/// reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LambdaOutput {
    /// Function name.
    pub function: String,
    /// The version to route traffic to.
    pub version: String,
    /// Its `CodeSha256` (base64).
    pub code_sha256: String,
}

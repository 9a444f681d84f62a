//! The classes of failure front-ends map to exit codes.

/// What kind of failure an error is, as far as a caller deciding what to do next cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorClass {
    /// Something failed (exit code 1).
    Failure,
    /// The command line or the configuration is wrong (2).
    Usage,
    /// A rollout failed and was rolled back (3).
    RolledBack,
    /// Someone else holds the environment lock (4).
    Locked,
    /// The environment needs approval (5).
    ApprovalRequired,
    /// A gate blocked the change: scan, health check, migration (6).
    Blocked,
}

impl ErrorClass {
    /// The process exit code the `deploy` command uses for this class.
    pub fn exit_code(self) -> u8 {
        match self {
            ErrorClass::Failure => 1,
            ErrorClass::Usage => 2,
            ErrorClass::RolledBack => 3,
            ErrorClass::Locked => 4,
            ErrorClass::ApprovalRequired => 5,
            ErrorClass::Blocked => 6,
        }
    }
}

/// Errors that know their [`ErrorClass`].
pub trait Classify {
    /// The class of this error.
    fn class(&self) -> ErrorClass;
}

//! The classes of failure front-ends map to exit codes.

use crate::aws::TargetError;
use crate::config::ConfigError;
use crate::ledger::LedgerError;
use crate::lock::LockError;

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

impl Classify for ConfigError {
    fn class(&self) -> ErrorClass {
        match self {
            ConfigError::Read { .. }
            | ConfigError::NotAFile { .. }
            | ConfigError::TooLarge { .. }
            | ConfigError::Invalid { .. }
            | ConfigError::UnknownEnvironment { .. }
            | ConfigError::UnknownArtifact { .. } => ErrorClass::Usage,
        }
    }
}

impl Classify for TargetError {
    fn class(&self) -> ErrorClass {
        ErrorClass::Failure
    }
}

impl Classify for LedgerError {
    fn class(&self) -> ErrorClass {
        ErrorClass::Failure
    }
}

impl Classify for LockError {
    fn class(&self) -> ErrorClass {
        match self {
            LockError::Held { .. } => ErrorClass::Locked,
            LockError::Lost { .. } | LockError::Ledger(_) => ErrorClass::Failure,
        }
    }
}

impl Classify for crate::kinds::image::scan::ScanError {
    fn class(&self) -> ErrorClass {
        use crate::kinds::image::scan::ScanError;
        match self {
            ScanError::Blocked { .. } | ScanError::Timeout { .. } | ScanError::Failed { .. } => {
                ErrorClass::Blocked
            }
            ScanError::Ecr { .. } => ErrorClass::Failure,
        }
    }
}

impl Classify for crate::kinds::image::publish::PublishError {
    fn class(&self) -> ErrorClass {
        ErrorClass::Failure
    }
}

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

    /// The artifact key whose value the error is about (`bucket`, `rollout.cluster`), when a
    /// wrong value there is its cause: front-ends point at that place in the file.
    fn config_key(&self) -> Option<&'static str> {
        None
    }
}

impl<T: Classify + ?Sized> Classify for Box<T> {
    fn class(&self) -> ErrorClass {
        (**self).class()
    }

    fn config_key(&self) -> Option<&'static str> {
        (**self).config_key()
    }
}

/// A boxed error, as [`Error`] keeps its cause.
type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Any error of the library with its [`ErrorClass`], decided by the error's own [`Classify`]
/// when it was converted: front-ends map [`Error::class`] to what they do (the `deploy`
/// command to an exit code) without knowing the library's error types.
///
/// `?` converts every error type that implements [`Classify`]. The error displays as its cause,
/// and its chain of sources is the cause's.
///
/// ```
/// use deploy_core::error::{Error, ErrorClass};
///
/// let err = Error::new(ErrorClass::Usage, "`--to` needs one artifact");
/// assert_eq!(err.class(), ErrorClass::Usage);
/// assert_eq!(err.class().exit_code(), 2);
/// assert_eq!(err.to_string(), "`--to` needs one artifact");
/// ```
#[derive(Debug)]
pub struct Error {
    class: ErrorClass,
    cause: Cause,
}

impl Error {
    /// `cause`, of class `class`.
    pub fn new(class: ErrorClass, cause: impl Into<Cause>) -> Error {
        Error {
            class,
            cause: cause.into(),
        }
    }

    /// `cause`, of class [`ErrorClass::Failure`]: for errors from outside the library (I/O,
    /// encoding) that have no class of their own.
    pub fn failure(cause: impl Into<Cause>) -> Error {
        Error::new(ErrorClass::Failure, cause)
    }

    /// The class of the error.
    pub fn class(&self) -> ErrorClass {
        self.class
    }

    /// The error as it was raised, to downcast to the library's error types.
    pub fn cause(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        &*self.cause
    }

    /// The cause as `T`, when it is one.
    pub fn downcast_ref<T: std::error::Error + 'static>(&self) -> Option<&T> {
        self.cause.downcast_ref::<T>()
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&self.cause, f)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.cause.source()
    }
}

// `Error` itself does not implement `Classify`, so this does not overlap `From<T> for T`.
impl<E> From<E> for Error
where
    E: Classify + std::error::Error + Send + Sync + 'static,
{
    fn from(err: E) -> Error {
        Error::new(err.class(), err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    impl Classify for Outer {
        fn class(&self) -> ErrorClass {
            ErrorClass::Locked
        }
    }

    #[test]
    fn conversion_keeps_the_class_the_chain_and_the_type() {
        let err: Error = Outer(std::io::Error::other("inner")).into();
        assert_eq!(err.class(), ErrorClass::Locked);
        assert_eq!(err.to_string(), "outer");
        let chain: Vec<String> =
            std::iter::successors(std::error::Error::source(&err), |e| e.source())
                .map(ToString::to_string)
                .collect();
        assert_eq!(chain, ["inner"]);
        assert!(err.downcast_ref::<Outer>().is_some());
    }
}

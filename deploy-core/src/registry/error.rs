//! Registry failures. Every text that ends up in one passes through [`redact`], so a URL with
//! credentials in it (`http://user:pass@host`) is never printed.

use super::source::SourceError;

/// Registry failures.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The registry could not be reached, or the connection broke.
    #[error("{operation} at {registry} failed: {detail}")]
    Transport {
        /// Registry host.
        registry: String,
        /// What was being done.
        operation: String,
        /// What happened, in a few words.
        detail: String,
        /// The HTTP client's (or the blob reader's) error; it names no URL.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The registry answered with an unexpected status.
    #[error("{operation} at {registry} answered {status}: {body}")]
    Status {
        /// Registry host.
        registry: String,
        /// What was being done.
        operation: String,
        /// HTTP status.
        status: u16,
        /// The start of the response body (the registry's error code and message).
        body: String,
    },
    /// Credentials were refused or missing.
    #[error(
        "{registry} refused the credentials for {operation}: {detail}; check the registry login (for ECR: the caller's ecr:* permissions)"
    )]
    Unauthorized {
        /// Registry host.
        registry: String,
        /// What was being done.
        operation: String,
        /// Details.
        detail: String,
    },
    /// The source could not be read or is corrupt.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// The push settings do not suit this registry.
    #[error("cannot push to {registry}: {detail}")]
    Settings {
        /// Registry host.
        registry: String,
        /// What is wrong and what to do.
        detail: String,
    },
    /// The registry kept failing (5xx, 429, broken connections) through every attempt.
    #[error("{operation} at {registry} still failed after {attempts} attempts ({})", last.reason())]
    GaveUp {
        /// Registry host.
        registry: String,
        /// What was being done.
        operation: String,
        /// Attempts made.
        attempts: u32,
        /// The last failure.
        #[source]
        last: Box<RegistryError>,
    },
    /// A repository, tag, reference or digest that the distribution grammar does not allow:
    /// refused before any request is sent.
    #[error("refused {kind} `{value}` for {registry}: {rule}")]
    InvalidName {
        /// Registry host.
        registry: String,
        /// `repository`, `tag` or `reference`.
        kind: &'static str,
        /// The value, escaped and shortened for printing.
        value: String,
        /// The grammar it breaks.
        rule: &'static str,
    },
    /// The registry sent an upload to a location on another host (or scheme, or port): the
    /// credentials and bytes are not sent there.
    #[error(
        "{operation} at {registry}: the registry sent the upload to `{location}`, another origin; refused"
    )]
    ForeignLocation {
        /// Registry host.
        registry: String,
        /// What was being done.
        operation: String,
        /// The location it gave (credentials redacted).
        location: String,
    },
    /// A blob the registry already has is not the size the manifest says: the manifest would
    /// describe content it does not reference.
    #[error(
        "{digest} in {repository} at {registry} is {found} bytes, but the manifest says {expected}; refused"
    )]
    SizeMismatch {
        /// Registry host.
        registry: String,
        /// Repository.
        repository: String,
        /// Blob digest.
        digest: String,
        /// The size in the manifest.
        expected: u64,
        /// The size the registry reports.
        found: u64,
    },
}

impl RegistryError {
    /// Whether trying again may succeed: broken connections, timeouts, `5xx` and `429`.
    pub(super) fn retryable(&self) -> bool {
        match self {
            RegistryError::Transport { .. } => true,
            RegistryError::Status { status, .. } => *status >= 500 || *status == 429,
            _ => false,
        }
    }

    /// The failure in a few words, without the operation and registry.
    fn reason(&self) -> String {
        match self {
            RegistryError::Transport { detail, .. } => detail.clone(),
            RegistryError::Status { status, .. } => format!("last answer: {status}"),
            other => other.to_string(),
        }
    }

    /// The HTTP status the registry answered, if that is the failure.
    pub(super) fn status(&self) -> Option<u16> {
        match self {
            RegistryError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// `text` with the userinfo of every URL in it replaced by `***`
/// (`http://user:pass@host` becomes `http://***@host`).
pub fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let (before, after) = rest.split_at(at + 3);
        out.push_str(before);
        let authority_end = after
            .find(|c: char| c == '/' || c == '?' || c == '#' || c.is_whitespace())
            .unwrap_or(after.len());
        match after[..authority_end].rfind('@') {
            Some(user_end) => {
                out.push_str("***");
                out.push_str(&after[user_end..authority_end]);
            }
            None => out.push_str(&after[..authority_end]),
        }
        rest = &after[authority_end..];
    }
    out.push_str(rest);
    out
}

/// `user:pass@host` (an authority without scheme) with the userinfo replaced by `***`.
pub(super) fn redact_authority(text: &str) -> String {
    if text.contains("://") {
        return redact(text);
    }
    let end = text.find('/').unwrap_or(text.len());
    match text[..end].rfind('@') {
        Some(at) => format!("***{}", &text[at..]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn userinfo_is_redacted_everywhere_in_a_text() {
        assert_eq!(
            redact("GET http://user:pass@host:5000/v2/ and https://a@b/x?y=z@w"),
            "GET http://***@host:5000/v2/ and https://***@b/x?y=z@w"
        );
        assert_eq!(redact("no url here"), "no url here");
        assert_eq!(redact("http://host/a@b"), "http://host/a@b");
        assert_eq!(
            redact_authority("user:pass@host:5000/repo"),
            "***@host:5000/repo"
        );
        assert_eq!(redact_authority("host:5000"), "host:5000");
    }
}

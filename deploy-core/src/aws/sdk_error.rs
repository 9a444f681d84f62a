//! AWS SDK errors kept whole as an error's source and shown as one readable line.

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

/// An AWS SDK error: `Display` is one line (the service's code and message, or what failed on
/// the way); the SDK error itself is the [`std::error::Error::source`].
#[derive(Debug, thiserror::Error)]
#[error("{summary}")]
pub struct SdkFailure {
    summary: String,
    code: Option<String>,
    #[source]
    source: Box<dyn std::error::Error + Send + Sync + 'static>,
}

impl SdkFailure {
    /// Wraps `err`.
    pub fn new<E>(err: SdkError<E, HttpResponse>) -> SdkFailure
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let (summary, code) = match &err {
            SdkError::ServiceError(service) => {
                let e = service.err();
                let status = service.raw().status().as_u16();
                let code = e.code().map(str::to_owned).or_else(|| status_code(status));
                let message = e.message().unwrap_or("no message");
                let summary = match (&code, e.code()) {
                    (Some(code), Some(_)) => format!("{code}: {message}"),
                    (Some(code), None) => {
                        format!("{code} (HTTP {status}, no error code in the answer)")
                    }
                    (None, _) => format!("HTTP {status}: {message}"),
                };
                (one_line(&summary), code)
            }
            SdkError::TimeoutError(_) => ("no answer in time".to_owned(), None),
            SdkError::ResponseError(response) => {
                let status = response.raw().status().as_u16();
                let detail = short(&DisplayErrorContext(&err).to_string());
                match status_code(status) {
                    Some(code) => (
                        format!("{code} (HTTP {status}, an answer the SDK could not read)"),
                        Some(code),
                    ),
                    None => (format!("HTTP {status}: {detail}"), None),
                }
            }
            other => (short(&DisplayErrorContext(other).to_string()), None),
        };
        SdkFailure {
            summary,
            code,
            source: Box::new(err),
        }
    }

    /// The service's error code (`RepositoryNotFoundException`), when AWS answered.
    pub fn code(&self) -> Option<&str> {
        self.code.as_deref()
    }
}

/// The error an answer without an error code stands for, by its HTTP status: what the
/// service means by a bare 403 or 404.
fn status_code(status: u16) -> Option<String> {
    match status {
        403 => Some("AccessDenied".into()),
        404 => Some("NotFound".into()),
        _ => None,
    }
}

fn one_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .take(300)
        .collect()
}

/// The readable part of an SDK error chain, without the Debug dump the SDK appends.
pub(crate) fn short(detail: &str) -> String {
    let mut end = detail.len();
    for (at, _) in detail.match_indices(" (") {
        let rest = &detail[at + 2..];
        let name_len = rest
            .find(|c: char| !c.is_ascii_alphanumeric())
            .unwrap_or(rest.len());
        let debug_dump = rest.starts_with(|c: char| c.is_ascii_uppercase())
            && rest[name_len..].starts_with(['(', ' ', '{']);
        if debug_dump {
            end = at;
            break;
        }
    }
    let text = detail[..end].lines().next().unwrap_or_default();
    text.chars().take(300).collect()
}

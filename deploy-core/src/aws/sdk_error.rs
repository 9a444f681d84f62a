//! AWS SDK errors kept whole as an error's source and shown as one readable line.

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
    pub fn new<E, R>(err: SdkError<E, R>) -> SdkFailure
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        R: std::fmt::Debug + Send + Sync + 'static,
    {
        let (summary, code) = match &err {
            SdkError::ServiceError(service) => {
                let e = service.err();
                let code = e.code().map(str::to_owned);
                let message = e.message().unwrap_or("no message");
                let summary = match &code {
                    Some(code) => format!("{code}: {message}"),
                    None => message.to_owned(),
                };
                (one_line(&summary), code)
            }
            SdkError::TimeoutError(_) => ("no answer in time".to_owned(), None),
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

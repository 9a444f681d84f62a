//! The three S3 operations the ledger and the lock are built on: read with ETag, conditional
//! write (`If-None-Match: *` to create, `If-Match` to replace), and listing in key order.

use std::time::Duration;

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use aws_smithy_runtime_api::client::result::SdkError;

use super::LedgerError;

/// An object's bytes and the ETag to compare-and-swap against.
#[derive(Debug, Clone)]
pub(crate) struct Versioned {
    pub body: Vec<u8>,
    pub etag: String,
}

/// How a write is guarded.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Guard<'a> {
    /// Only if no object exists at the key.
    Create,
    /// Only if the object still has this ETag.
    Replace(&'a str),
}

/// How long the ledger keeps trying when S3 fails transiently (5xx, throttling, timeouts,
/// broken connections): up to `rounds` rounds of the SDK's own attempts, the pause between
/// rounds doubling from `first_pause` up to `max_pause`. The defaults (5 rounds, 0.5 s to 4 s)
/// outlast a burst of errors of about half a minute: a release whose work is done should not
/// be reported failed, or keep its lock, because S3 was busy for a moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Persistence {
    /// Rounds of the SDK's attempts, at least 1.
    pub rounds: u32,
    /// Pause after the first failed round.
    pub first_pause: Duration,
    /// Longest pause.
    pub max_pause: Duration,
}

impl Default for Persistence {
    fn default() -> Self {
        Persistence {
            rounds: 5,
            first_pause: Duration::from_millis(500),
            max_pause: Duration::from_secs(4),
        }
    }
}

impl Persistence {
    /// The pause after failed round `round` (1-based).
    fn pause(&self, round: u32) -> Duration {
        let doubled = self
            .first_pause
            .saturating_mul(2_u32.saturating_pow(round.saturating_sub(1)));
        doubled.min(self.max_pause)
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Store {
    s3: aws_sdk_s3::Client,
    bucket: String,
    persistence: Persistence,
}

fn status_of<E, R: HttpStatus>(err: &SdkError<E, R>) -> Option<u16> {
    err.raw_response().map(HttpStatus::status_code)
}

/// Whether a failed request may succeed when made again: no answer, a broken connection, a
/// server error or throttling.
fn transient<E, R>(err: &SdkError<E, R>) -> bool
where
    E: ProvideErrorMetadata,
    R: HttpStatus,
{
    const THROTTLING: [&str; 6] = [
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "RequestTimeout",
        "InternalError",
        "ServiceUnavailable",
    ];
    match err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        _ => {
            status_of(err).is_some_and(|s| s >= 500 || s == 429)
                || err.code().is_some_and(|c| THROTTLING.contains(&c))
        }
    }
}

trait HttpStatus {
    fn status_code(&self) -> u16;
}

impl HttpStatus for aws_smithy_runtime_api::http::Response {
    fn status_code(&self) -> u16 {
        self.status().as_u16()
    }
}

impl Store {
    pub(crate) fn new(s3: aws_sdk_s3::Client, bucket: String) -> Self {
        Store {
            s3,
            bucket,
            persistence: Persistence::default(),
        }
    }

    pub(crate) fn with_persistence(mut self, persistence: Persistence) -> Self {
        self.persistence = Persistence {
            rounds: persistence.rounds.max(1),
            ..persistence
        };
        self
    }

    pub(crate) fn bucket(&self) -> &str {
        &self.bucket
    }

    fn aws_error<E, R>(
        &self,
        operation: &'static str,
        key: &str,
        err: SdkError<E, R>,
    ) -> LedgerError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        R: HttpStatus + std::fmt::Debug + Send + Sync + 'static,
    {
        if err.code() == Some("NoSuchBucket") {
            return LedgerError::MissingBucket {
                bucket: self.bucket.clone(),
            };
        }
        LedgerError::Aws {
            operation,
            bucket: self.bucket.clone(),
            key: key.to_owned(),
            detail: describe(&err),
            transient: transient(&err),
            source: Box::new(err),
        }
    }

    /// Runs `attempt` until it succeeds, fails for good, or the rounds are spent.
    async fn persist<T, F, Fut>(&self, what: &str, mut attempt: F) -> Result<T, LedgerError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, LedgerError>>,
    {
        let mut round = 1;
        loop {
            match attempt().await {
                Err(err) if err.is_transient() && round < self.persistence.rounds => {
                    tracing::debug!(%err, round, "{what}: S3 failed for now; trying again");
                    tokio::time::sleep(self.persistence.pause(round)).await;
                    round += 1;
                }
                other => return other,
            }
        }
    }

    pub(crate) async fn get(&self, key: &str) -> Result<Option<Versioned>, LedgerError> {
        self.persist("GetObject", || self.get_once(key)).await
    }

    async fn get_once(&self, key: &str) -> Result<Option<Versioned>, LedgerError> {
        let out = match self
            .s3
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(out) => out,
            Err(err) if err.as_service_error().is_some_and(|e| e.is_no_such_key()) => {
                return Ok(None);
            }
            Err(err) => return Err(self.aws_error("GetObject", key, err)),
        };
        let etag = out.e_tag().unwrap_or_default().to_owned();
        let body = out
            .body
            .collect()
            .await
            .map_err(|err| LedgerError::Aws {
                operation: "GetObject",
                bucket: self.bucket.clone(),
                key: key.to_owned(),
                detail: format!("the body broke off: {}", one_line(&err)),
                transient: true,
                source: Box::new(err),
            })?
            .into_bytes()
            .to_vec();
        Ok(Some(Versioned { body, etag }))
    }

    /// Writes `body` at `key` under `guard`; a lost race is [`LedgerError::Conflict`].
    ///
    /// Every body written this way is unique (it carries a release id or a write nonce), so
    /// when the write seems to fail, with `412`/`409` or after the SDK gave up, the object is
    /// read back: holding exactly `body`, it is this write that landed, its answer was lost
    /// (and the SDK's retry then met its own write). A transient failure is tried again, in
    /// rounds ([`Persistence`]); a condition failure whose read back fails too is
    /// [`LedgerError::Unconfirmed`], never taken for someone else's write.
    pub(crate) async fn put(
        &self,
        key: &str,
        body: Vec<u8>,
        guard: Guard<'_>,
    ) -> Result<String, LedgerError> {
        let mut round = 1;
        loop {
            let err = match self.put_once(key, body.clone(), guard).await {
                Ok(etag) => return Ok(etag),
                Err(PutFailure::InFlight(err)) => {
                    // 409: a conditional write to this key is in flight, possibly our own
                    // first attempt; give it a moment to land before looking.
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    err
                }
                Err(PutFailure::Ledger(err)) => err,
            };
            if err.is_conflict() {
                return self.settle_conflict(key, &body, err).await;
            }
            if !err.is_transient() {
                return Err(err);
            }
            // The write may have landed although its answer was lost.
            if let Ok(Some(object)) = self.get_once(key).await
                && object.body == body
            {
                tracing::debug!(key, "a conditional write whose answer was lost had landed");
                return Ok(object.etag);
            }
            if round >= self.persistence.rounds {
                return Err(err);
            }
            tracing::debug!(%err, round, "PutObject: S3 failed for now; trying again");
            tokio::time::sleep(self.persistence.pause(round)).await;
            round += 1;
        }
    }

    /// After a failed condition: our own earlier attempt, someone else's write, or unknown.
    async fn settle_conflict(
        &self,
        key: &str,
        body: &[u8],
        conflict: LedgerError,
    ) -> Result<String, LedgerError> {
        match self.get(key).await {
            Ok(Some(object)) if object.body == body => {
                tracing::debug!(key, "a conditional write whose answer was lost had landed");
                Ok(object.etag)
            }
            Ok(_) => Err(conflict),
            Err(read) => Err(LedgerError::Unconfirmed {
                bucket: self.bucket.clone(),
                key: key.to_owned(),
                detail: read.to_string(),
            }),
        }
    }

    async fn put_once(
        &self,
        key: &str,
        body: Vec<u8>,
        guard: Guard<'_>,
    ) -> Result<String, PutFailure> {
        let request = self
            .s3
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type("application/json")
            .body(ByteStream::from(body));
        let request = match guard {
            Guard::Create => request.if_none_match("*"),
            Guard::Replace(etag) => request.if_match(etag),
        };
        let conflict = || LedgerError::Conflict {
            bucket: self.bucket.clone(),
            key: key.to_owned(),
        };
        match request.send().await {
            Ok(out) => Ok(out.e_tag().unwrap_or_default().to_owned()),
            // 412: the condition failed; 409: a concurrent conditional write is in flight.
            Err(err) if status_of(&err) == Some(412) => Err(PutFailure::Ledger(conflict())),
            Err(err) if status_of(&err) == Some(409) => Err(PutFailure::InFlight(conflict())),
            Err(err) => Err(PutFailure::Ledger(self.aws_error("PutObject", key, err))),
        }
    }

    /// Up to `limit` keys under `prefix`, in S3's (lexicographic) order.
    pub(crate) async fn list(
        &self,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<String>, LedgerError> {
        let mut keys = self
            .list_while(prefix, limit.min(1000), |_, n| n < limit)
            .await?;
        keys.truncate(limit);
        Ok(keys)
    }

    /// The keys under `prefix` in S3's order, `page` at a time, up to the first for which
    /// `keep(key, keys so far)` is false.
    pub(crate) async fn list_while(
        &self,
        prefix: &str,
        page: usize,
        mut keep: impl FnMut(&str, usize) -> bool,
    ) -> Result<Vec<String>, LedgerError> {
        let mut keys = Vec::new();
        let mut token = None;
        let page = i32::try_from(page.clamp(1, 1000)).unwrap_or(1000);
        loop {
            let out = self
                .persist("ListObjectsV2", || async {
                    self.s3
                        .list_objects_v2()
                        .bucket(&self.bucket)
                        .prefix(prefix)
                        .max_keys(page)
                        .set_continuation_token(token.clone())
                        .send()
                        .await
                        .map_err(|err| self.aws_error("ListObjectsV2", prefix, err))
                })
                .await?;
            for key in out.contents().iter().filter_map(|o| o.key()) {
                if !keep(key, keys.len()) {
                    return Ok(keys);
                }
                keys.push(key.to_owned());
            }
            match out.next_continuation_token() {
                Some(next) if out.is_truncated() == Some(true) => token = Some(next.to_owned()),
                _ => return Ok(keys),
            }
        }
    }
}

enum PutFailure {
    Ledger(LedgerError),
    /// `409 ConditionalRequestConflict`.
    InFlight(LedgerError),
}

/// One line for an SDK error: `Code (status): message` when S3 answered, else what broke the
/// connection, without the Debug dump the SDK's own rendering appends.
fn describe<E, R>(err: &SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: HttpStatus + std::fmt::Debug + 'static,
{
    let status = status_of(err);
    match (err.code(), status) {
        (Some(code), Some(status)) => match err.message() {
            Some(message) if !message.is_empty() => format!("{code} ({status}): {message}"),
            _ => format!("{code} ({status})"),
        },
        (None, Some(status)) => format!("HTTP {status} without an S3 error code"),
        _ => match err {
            SdkError::TimeoutError(_) => "timed out".into(),
            other => one_line(other),
        },
    }
}

/// The messages of an error and its sources joined on one line, each said once.
fn one_line(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(err);
    while let Some(err) = next {
        let text = err.to_string();
        let text = text.lines().next().unwrap_or_default().trim().to_owned();
        if !text.is_empty() && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = err.source();
    }
    parts.join(": ").chars().take(300).collect()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use aws_sdk_s3::operation::put_object::PutObjectOutput;
    use aws_smithy_mocks::{RuleMode, mock, mock_client};

    use super::*;

    fn status(code: u16) -> aws_smithy_runtime_api::http::Response {
        aws_smithy_runtime_api::http::Response::new(
            aws_smithy_runtime_api::http::StatusCode::try_from(code).expect("status"),
            aws_smithy_types::body::SdkBody::from(format!(
                "<Error><Code>Status{code}</Code></Error>"
            )),
        )
    }

    fn client(rules: &[&aws_smithy_mocks::Rule]) -> aws_sdk_s3::Client {
        mock_client!(aws_sdk_s3, RuleMode::MatchAny, rules.iter().copied(), |c| {
            c.retry_config(
                aws_sdk_s3::config::retry::RetryConfig::standard()
                    .with_max_attempts(3)
                    .with_initial_backoff(Duration::from_millis(1)),
            )
        })
    }

    /// Two rounds, pausing a millisecond.
    fn store(rules: &[&aws_smithy_mocks::Rule]) -> Store {
        Store::new(client(rules), "b".into()).with_persistence(Persistence {
            rounds: 2,
            first_pause: Duration::from_millis(1),
            max_pause: Duration::from_millis(1),
        })
    }

    #[tokio::test]
    async fn transient_errors_are_retried() {
        let rule = mock!(aws_sdk_s3::Client::put_object)
            .sequence()
            .http_response(|| status(503))
            .http_response(|| status(500))
            .output(|| PutObjectOutput::builder().e_tag("\"v2\"").build())
            .build();
        let store = store(&[&rule]);
        let etag = store
            .put("k", b"{}".to_vec(), Guard::Create)
            .await
            .expect("third attempt succeeds");
        assert_eq!(etag, "\"v2\"");
        assert_eq!(rule.num_calls(), 3);
    }

    fn get_rule(body: &'static [u8]) -> aws_smithy_mocks::Rule {
        mock!(aws_sdk_s3::Client::get_object).then_output(move || {
            aws_sdk_s3::operation::get_object::GetObjectOutput::builder()
                .body(ByteStream::from_static(body))
                .e_tag("\"theirs\"")
                .build()
        })
    }

    #[tokio::test]
    async fn failed_conditions_are_conflicts_and_not_retried() {
        for code in [412, 409] {
            let rule =
                mock!(aws_sdk_s3::Client::put_object).then_http_response(move || status(code));
            let read_back = get_rule(b"{\"someone\":\"else\"}");
            let store = store(&[&rule, &read_back]);
            let err = store
                .put("k", b"{}".to_vec(), Guard::Replace("\"v1\""))
                .await
                .expect_err("conflict");
            assert!(matches!(err, LedgerError::Conflict { .. }), "{code}: {err}");
            assert_eq!(
                rule.num_calls(),
                1,
                "{code}: a lost race is final, not retried"
            );
            assert_eq!(read_back.num_calls(), 1, "{code}: read back once");
        }
    }

    /// The first attempt landed but its answer was lost; the SDK's retry then met our own
    /// write (412). Reading back finds our bytes: the write succeeded.
    #[tokio::test]
    async fn a_conflict_with_our_own_lost_write_is_success() {
        for code in [412, 409] {
            let rule =
                mock!(aws_sdk_s3::Client::put_object).then_http_response(move || status(code));
            let read_back = get_rule(b"{\"nonce\":\"ours\"}");
            let store = store(&[&rule, &read_back]);
            let etag = store
                .put("k", b"{\"nonce\":\"ours\"}".to_vec(), Guard::Create)
                .await
                .expect("our write landed");
            assert_eq!(etag, "\"theirs\"", "{code}: the ETag read back");
        }
    }

    /// A burst longer than the SDK's three attempts is outlasted by the next round.
    #[tokio::test]
    async fn a_burst_longer_than_the_sdks_attempts_is_outlasted() {
        let rule = mock!(aws_sdk_s3::Client::put_object)
            .sequence()
            .http_response(|| status(503))
            .times(4)
            .output(|| PutObjectOutput::builder().e_tag("\"v2\"").build())
            .build();
        let read_back = mock!(aws_sdk_s3::Client::get_object).then_error(|| {
            aws_sdk_s3::operation::get_object::GetObjectError::NoSuchKey(
                aws_sdk_s3::types::error::NoSuchKey::builder().build(),
            )
        });
        let etag = store(&[&rule, &read_back])
            .put("k", b"{}".to_vec(), Guard::Create)
            .await
            .expect("the second round succeeds");
        assert_eq!(etag, "\"v2\"");
        assert_eq!(rule.num_calls(), 5);
    }

    /// A failed condition that cannot be read back is not called someone else's write.
    #[tokio::test]
    async fn a_conflict_that_cannot_be_read_back_is_unconfirmed() {
        let rule = mock!(aws_sdk_s3::Client::put_object).then_http_response(|| status(412));
        let read_back = mock!(aws_sdk_s3::Client::get_object).then_http_response(|| status(503));
        let err = store(&[&rule, &read_back])
            .put("k", b"{}".to_vec(), Guard::Replace("\"v1\""))
            .await
            .expect_err("unknown");
        assert!(matches!(err, LedgerError::Unconfirmed { .. }), "{err}");
        assert!(!err.to_string().contains("someone else"), "{err}");
        assert_eq!(
            rule.num_calls(),
            1,
            "a failed condition is not written again"
        );
    }

    #[tokio::test]
    async fn persistent_failures_are_one_line_with_the_code_and_key() {
        let rule = mock!(aws_sdk_s3::Client::put_object).then_http_response(|| {
            aws_smithy_runtime_api::http::Response::new(
                aws_smithy_runtime_api::http::StatusCode::try_from(503).expect("status"),
                aws_smithy_types::body::SdkBody::from(
                    "<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>",
                ),
            )
        });
        let read_back = mock!(aws_sdk_s3::Client::get_object).then_error(|| {
            aws_sdk_s3::operation::get_object::GetObjectError::NoSuchKey(
                aws_sdk_s3::types::error::NoSuchKey::builder().build(),
            )
        });
        let store = store(&[&rule, &read_back]);
        let err = store
            .put("deploy/k.json", b"{}".to_vec(), Guard::Create)
            .await
            .expect_err("gives up");
        assert_eq!(
            err.to_string(),
            "s3://b/deploy/k.json: PutObject failed: SlowDown (503): Please reduce your request rate."
        );
        assert!(
            std::error::Error::source(&err).is_some(),
            "the SDK error is kept as the source"
        );
        assert_eq!(
            rule.num_calls(),
            6,
            "two rounds of three attempts, then the error"
        );
        assert_eq!(
            read_back.num_calls(),
            2,
            "after each round, one look whether it landed"
        );
    }

    /// A connection that cannot be made reads as one line, without the SDK's Debug dump.
    #[tokio::test]
    async fn connection_failures_are_one_line() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let config = aws_sdk_s3::Config::builder()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .region(aws_sdk_s3::config::Region::new("eu-west-1"))
            .credentials_provider(aws_sdk_s3::config::Credentials::new(
                "a", "b", None, None, "t",
            ))
            .endpoint_url(format!("http://127.0.0.1:{port}"))
            .force_path_style(true)
            .retry_config(aws_sdk_s3::config::retry::RetryConfig::disabled())
            .build();
        let store = Store::new(aws_sdk_s3::Client::from_conf(config), "b".into()).with_persistence(
            Persistence {
                rounds: 1,
                ..Persistence::default()
            },
        );
        let err = store.get("k.json").await.expect_err("nobody listens");
        let text = err.to_string();
        assert!(
            text.starts_with("s3://b/k.json: GetObject failed: "),
            "{text}"
        );
        assert!(!text.contains('{') && !text.contains('\n'), "{text}");
        assert!(text.to_lowercase().contains("connect"), "{text}");
    }
}

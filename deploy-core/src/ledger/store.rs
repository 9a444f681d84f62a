//! The three S3 operations the ledger and the lock are built on: read with ETag, conditional
//! write (`If-None-Match: *` to create, `If-Match` to replace), and listing in key order.

use aws_sdk_s3::primitives::ByteStream;
use aws_smithy_types::error::display::DisplayErrorContext;

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

#[derive(Debug, Clone)]
pub(crate) struct Store {
    s3: aws_sdk_s3::Client,
    bucket: String,
}

fn status_of<E, R: HttpStatus>(
    err: &aws_smithy_runtime_api::client::result::SdkError<E, R>,
) -> Option<u16> {
    err.raw_response().map(HttpStatus::status_code)
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
        Store { s3, bucket }
    }

    pub(crate) fn bucket(&self) -> &str {
        &self.bucket
    }

    fn aws_error<E, R>(
        &self,
        operation: &'static str,
        key: &str,
        err: &aws_smithy_runtime_api::client::result::SdkError<E, R>,
    ) -> LedgerError
    where
        E: std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        let detail = DisplayErrorContext(err).to_string();
        if detail.contains("NoSuchBucket") {
            return LedgerError::MissingBucket {
                bucket: self.bucket.clone(),
            };
        }
        LedgerError::Aws {
            operation,
            bucket: self.bucket.clone(),
            key: key.to_owned(),
            detail,
        }
    }

    pub(crate) async fn get(&self, key: &str) -> Result<Option<Versioned>, LedgerError> {
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
            Err(err) => return Err(self.aws_error("s3:GetObject", key, &err)),
        };
        let etag = out.e_tag().unwrap_or_default().to_owned();
        let body = out
            .body
            .collect()
            .await
            .map_err(|err| LedgerError::Aws {
                operation: "s3:GetObject",
                bucket: self.bucket.clone(),
                key: key.to_owned(),
                detail: err.to_string(),
            })?
            .into_bytes()
            .to_vec();
        Ok(Some(Versioned { body, etag }))
    }

    /// Writes `body` at `key` under `guard`; a lost race is [`LedgerError::Conflict`].
    pub(crate) async fn put(
        &self,
        key: &str,
        body: Vec<u8>,
        guard: Guard<'_>,
    ) -> Result<String, LedgerError> {
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
        match request.send().await {
            Ok(out) => Ok(out.e_tag().unwrap_or_default().to_owned()),
            // 412: the condition failed; 409: a concurrent conditional write is in flight.
            Err(err) if matches!(status_of(&err), Some(412 | 409)) => Err(LedgerError::Conflict {
                bucket: self.bucket.clone(),
                key: key.to_owned(),
            }),
            Err(err) => Err(self.aws_error("s3:PutObject", key, &err)),
        }
    }

    /// Up to `limit` keys under `prefix`, in S3's (lexicographic) order.
    pub(crate) async fn list(
        &self,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<String>, LedgerError> {
        let mut keys = Vec::new();
        let mut token = None;
        while keys.len() < limit {
            let page = i32::try_from((limit - keys.len()).min(1000)).unwrap_or(1000);
            let out = self
                .s3
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(prefix)
                .max_keys(page)
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(|err| self.aws_error("s3:ListObjectsV2", prefix, &err))?;
            keys.extend(
                out.contents()
                    .iter()
                    .filter_map(|o| o.key().map(str::to_owned)),
            );
            match out.next_continuation_token() {
                Some(next) if out.is_truncated() == Some(true) => token = Some(next.to_owned()),
                _ => break,
            }
        }
        keys.truncate(limit);
        Ok(keys)
    }
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
        mock_client!(
            aws_sdk_s3,
            RuleMode::Sequential,
            rules.iter().copied(),
            |c| {
                c.retry_config(
                    aws_sdk_s3::config::retry::RetryConfig::standard()
                        .with_max_attempts(3)
                        .with_initial_backoff(Duration::from_millis(1)),
                )
            }
        )
    }

    #[tokio::test]
    async fn transient_errors_are_retried() {
        let rule = mock!(aws_sdk_s3::Client::put_object)
            .sequence()
            .http_response(|| status(503))
            .http_response(|| status(500))
            .output(|| PutObjectOutput::builder().e_tag("\"v2\"").build())
            .build();
        let store = Store::new(client(&[&rule]), "b".into());
        let etag = store
            .put("k", b"{}".to_vec(), Guard::Create)
            .await
            .expect("third attempt succeeds");
        assert_eq!(etag, "\"v2\"");
        assert_eq!(rule.num_calls(), 3);
    }

    #[tokio::test]
    async fn failed_conditions_are_conflicts_and_not_retried() {
        for code in [412, 409] {
            let rule =
                mock!(aws_sdk_s3::Client::put_object).then_http_response(move || status(code));
            let store = Store::new(client(&[&rule]), "b".into());
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
        }
    }

    #[tokio::test]
    async fn persistent_failures_name_the_operation_and_key() {
        let rule = mock!(aws_sdk_s3::Client::put_object).then_http_response(|| status(503));
        let store = Store::new(client(&[&rule]), "b".into());
        let err = store
            .put("deploy/k.json", b"{}".to_vec(), Guard::Create)
            .await
            .expect_err("gives up");
        let text = err.to_string();
        assert!(
            text.contains("s3:PutObject on s3://b/deploy/k.json"),
            "{text}"
        );
        assert_eq!(rule.num_calls(), 3, "three attempts, then the error");
    }
}

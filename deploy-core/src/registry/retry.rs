//! The one retry loop every registry request goes through.

use std::future::Future;
use std::time::Duration;

use super::{Registry, RegistryError};

/// The longest pause between two attempts.
const MAX_PAUSE: Duration = Duration::from_secs(4);

impl Registry {
    /// Runs `attempt` (given its number, from 1) until it succeeds, the failure is not worth
    /// another try, or the attempts of the settings are used up.
    ///
    /// Broken connections, timeouts, `5xx` and `429` are tried again after a pause that doubles
    /// (with jitter, at most [`MAX_PAUSE`]); a `401` drops the cached token of `scope` and tries
    /// again at once, one time. When the registry stays down the error is
    /// [`RegistryError::GaveUp`], naming the registry and `operation`; loops nested in an
    /// attempt give up the same way, and their `GaveUp` is not retried again.
    pub(super) async fn retrying<T, F, Fut>(
        &self,
        operation: &str,
        scope: &str,
        mut attempt: F,
    ) -> Result<T, RegistryError>
    where
        F: FnMut(u32) -> Fut,
        Fut: Future<Output = Result<T, RegistryError>>,
    {
        let attempts = self.settings.attempts.max(1);
        let mut pause = self.settings.backoff;
        let mut number = 1;
        let mut reauthenticated = false;
        loop {
            let err = match attempt(number).await {
                Ok(value) => return Ok(value),
                Err(err) => err,
            };
            if err.status() == Some(401) && !reauthenticated {
                self.forget_token(scope);
                reauthenticated = true;
                continue;
            }
            if !err.retryable() {
                return Err(err);
            }
            if number >= attempts {
                return Err(RegistryError::GaveUp {
                    registry: self.host.clone(),
                    operation: operation.to_owned(),
                    attempts: number,
                    last: Box::new(err),
                });
            }
            tracing::warn!(%err, attempt = number, "registry request failed; retrying");
            tokio::time::sleep(jittered(pause)).await;
            pause = (pause * 2).min(MAX_PAUSE);
            number += 1;
        }
    }
}

/// Between half and all of `pause`, so clients failing together do not retry together.
fn jittered(pause: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let fraction = f64::from(nanos % 1000) / 1000.0;
    pause.mul_f64(0.5 + fraction / 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::RegistrySettings;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn registry(attempts: u32) -> Registry {
        let settings = RegistrySettings {
            attempts,
            backoff: Duration::from_millis(1),
            ..RegistrySettings::default()
        };
        Registry::new("http://127.0.0.1:5000", None, settings).expect("client")
    }

    fn status(status: u16) -> RegistryError {
        RegistryError::Status {
            registry: "r".into(),
            operation: "op".into(),
            status,
            body: String::new(),
        }
    }

    #[tokio::test]
    async fn transient_failures_are_retried_until_success() {
        let r = registry(4);
        let calls = AtomicU32::new(0);
        let value = r
            .retrying("op", "scope", |n| {
                calls.fetch_add(1, Ordering::SeqCst);
                async move { if n < 3 { Err(status(503)) } else { Ok(n) } }
            })
            .await
            .expect("third attempt succeeds");
        assert_eq!((value, calls.load(Ordering::SeqCst)), (3, 3));
    }

    #[tokio::test]
    async fn a_registry_that_stays_down_is_named_after_every_attempt() {
        let r = registry(3);
        let calls = AtomicU32::new(0);
        let err = r
            .retrying("HEAD manifest a:v1", "scope", |_| {
                calls.fetch_add(1, Ordering::SeqCst);
                async { Err::<(), _>(status(502)) }
            })
            .await
            .expect_err("gives up");
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        let text = err.to_string();
        assert!(
            text.contains("127.0.0.1:5000")
                && text.contains("HEAD manifest a:v1")
                && text.contains("after 3 attempts (last answer: 502)"),
            "{text}"
        );
        // An outer loop does not multiply the attempts of an inner one.
        let outer = AtomicU32::new(0);
        let err = r
            .retrying("outer", "scope", |_| {
                outer.fetch_add(1, Ordering::SeqCst);
                r.retrying("inner", "scope", |_| async { Err::<(), _>(status(503)) })
            })
            .await
            .expect_err("gives up");
        assert_eq!(outer.load(Ordering::SeqCst), 1, "{err}");
    }

    #[tokio::test]
    async fn a_401_is_retried_once_and_other_errors_never() {
        let r = registry(5);
        let calls = AtomicU32::new(0);
        let err = r
            .retrying("op", "scope", |_| {
                calls.fetch_add(1, Ordering::SeqCst);
                async { Err::<(), _>(status(401)) }
            })
            .await
            .expect_err("refused");
        assert_eq!(err.status(), Some(401));
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        let calls = AtomicU32::new(0);
        r.retrying("op", "scope", |_| {
            calls.fetch_add(1, Ordering::SeqCst);
            async { Err::<(), _>(status(404)) }
        })
        .await
        .expect_err("not found");
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }
}

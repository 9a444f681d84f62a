//! The environment lock: a lease in the state bucket that keeps two deploys of one environment
//! apart.
//!
//! Taking it is a conditional write: `If-None-Match: *` when no lock object exists, `If-Match`
//! on the ETag of a released or expired one. Exactly one of several racing writers succeeds. The
//! holder renews the lease while it works; a holder that dies stops renewing and the lease
//! expires, after which anyone may take it over. Releasing writes a released marker (again with
//! `If-Match`), so the lock object is never deleted and every change is a compare-and-swap.
//! Every version of the document carries a fresh `write_id`, so a write whose answer was lost
//! (the SDK's retry then meets it: `412`) is recognised by reading the object back, instead of
//! being taken for someone else's (docs/ledger.md).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokio::sync::{Mutex, oneshot};

use crate::events::{Event, Reporter};
use crate::ledger::{
    Actor, Guard, Ledger, LedgerError, new_release_id, newest_first_stamp, stamped_json, to_json,
};
use crate::wait::{Poll, Wait, Waited};

/// Lease timing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockSettings {
    /// How long a lease lasts without renewal. Default 2 minutes.
    pub ttl: Duration,
    /// How often the holder renews. Default a third of `ttl`.
    pub renew_every: Duration,
    /// First wait between attempts when waiting for a held lock (doubles up to 4×). Default 1 s,
    /// or a tenth of `ttl` if that is shorter.
    pub poll: Duration,
}

impl LockSettings {
    /// Settings for a lease of `ttl`.
    pub fn with_ttl(ttl: Duration) -> LockSettings {
        LockSettings {
            ttl,
            renew_every: ttl / 3,
            poll: Duration::from_secs(1).min(ttl / 10),
        }
    }
}

/// `now + ttl`, or the last second of year 9999 for a lease too long to represent (the
/// configuration bounds `lock_ttl`, but a library caller may pass anything).
fn lease_end(now: OffsetDateTime, ttl: Duration) -> OffsetDateTime {
    time::Duration::try_from(ttl)
        .ok()
        .and_then(|ttl| now.checked_add(ttl))
        .unwrap_or(time::macros::datetime!(9999-12-31 23:59:59 UTC))
}

impl Default for LockSettings {
    fn default() -> Self {
        LockSettings::with_ttl(Duration::from_secs(120))
    }
}

/// The lock document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockInfo {
    /// Unique id of this lease.
    pub lease_id: String,
    /// Who holds (or held) it.
    pub holder: Actor,
    /// What the holder is doing.
    pub operation: String,
    /// When it was taken.
    #[serde(with = "time::serde::rfc3339")]
    pub acquired_at: OffsetDateTime,
    /// Until when the lease is valid unless renewed.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// Set when the lease was given up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub released: Option<Released>,
}

/// How a lease ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Released {
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// By whom.
    pub by: Actor,
    /// Whether someone other than the holder forced it.
    pub forced: bool,
}

/// The state of an environment's lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum LockState {
    /// Nobody holds it.
    Free {
        /// The last lease, if there ever was one.
        last: Option<LockInfo>,
    },
    /// Someone holds a live lease.
    Held(LockInfo),
    /// A lease ran out without being released (its holder likely died).
    Expired(LockInfo),
}

/// Lock failures.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Someone else holds the lock.
    #[error(
        "environment `{environment}` is locked by {} since {} for `{}` (lease until {}); \
         retry later, pass --wait-lock <duration> to wait, or run `deploy lock {environment} release` if that run is gone",
        info.holder, rfc3339(info.acquired_at), info.operation, rfc3339(info.expires_at)
    )]
    Held {
        /// Environment.
        environment: String,
        /// The holder's lease.
        info: Box<LockInfo>,
    },
    /// The lease was taken over or released by someone else while work ran.
    #[error("lost the lock of environment `{environment}`: {reason}; stopped before the next step")]
    Lost {
        /// Environment.
        environment: String,
        /// What happened.
        reason: String,
    },
    /// Reading or writing the lock object failed.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

impl crate::error::Classify for LockError {
    fn class(&self) -> crate::error::ErrorClass {
        match self {
            LockError::Held { .. } => crate::error::ErrorClass::Locked,
            LockError::Lost { .. } | LockError::Ledger(_) => crate::error::ErrorClass::Failure,
        }
    }
}

/// A timestamp as RFC 3339 text, to the second.
pub fn rfc3339(at: OffsetDateTime) -> String {
    let at = at.replace_nanosecond(0).unwrap_or(at);
    at.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| at.to_string())
}

/// A forced release, kept in the ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockEvent {
    /// `force-release`.
    pub event: String,
    /// Who did it.
    pub by: Actor,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// The lease that was ended.
    pub lease: LockInfo,
}

/// The lock of one environment.
#[derive(Debug, Clone)]
pub struct EnvLock {
    ledger: Ledger,
    environment: String,
    settings: LockSettings,
}

impl EnvLock {
    /// The lock of the environment `ledger` belongs to.
    pub fn new(ledger: Ledger, environment: &str, settings: LockSettings) -> EnvLock {
        EnvLock {
            ledger,
            environment: environment.to_owned(),
            settings,
        }
    }

    fn key(&self) -> String {
        self.ledger.key("lock.json")
    }

    async fn read(&self) -> Result<Option<(LockInfo, String)>, LockError> {
        match self.read_raw().await? {
            RawLock::Missing => Ok(None),
            RawLock::Lease(info, etag) => Ok(Some((*info, etag))),
            RawLock::Unreadable { detail, .. } => Err(LedgerError::Corrupt {
                bucket: self.ledger.store().bucket().to_owned(),
                key: self.key(),
                detail: format!(
                    "{detail}; `deploy lock {} release --yes` clears it",
                    self.environment
                ),
            }
            .into()),
        }
    }

    async fn read_raw(&self) -> Result<RawLock, LockError> {
        let Some(object) = self.ledger.store().get(&self.key()).await? else {
            return Ok(RawLock::Missing);
        };
        Ok(match serde_json::from_slice(&object.body) {
            Ok(info) => RawLock::Lease(Box::new(info), object.etag),
            Err(err) => RawLock::Unreadable {
                detail: err.to_string(),
                content: String::from_utf8_lossy(&object.body)
                    .chars()
                    .take(1024)
                    .collect(),
                etag: object.etag,
            },
        })
    }

    /// Reads the lock without changing it.
    pub async fn status(&self) -> Result<LockState, LockError> {
        Ok(match self.read().await? {
            None => LockState::Free { last: None },
            Some((info, _)) => classify(info, OffsetDateTime::now_utc()),
        })
    }

    /// The lock object's ETag now, `None` when there is none. Compared with
    /// [`LockGuard::replaced`] once the lock is taken: equal means no one took the lock in
    /// between, so what was read meanwhile of things only a holder changes is still current.
    pub async fn observe(&self) -> Result<Option<String>, LockError> {
        Ok(self.ledger.store().get(&self.key()).await?.map(|o| o.etag))
    }

    /// Takes the lock, or fails at once with [`LockError::Held`]; with `wait`, keeps trying
    /// (backing off) until the deadline. The guard renews the lease until released.
    pub async fn acquire(
        &self,
        holder: &Actor,
        operation: &str,
        wait: Option<Duration>,
        reporter: &dyn Reporter,
    ) -> Result<LockGuard, LockError> {
        let poll = self.settings.poll;
        let mut announced = false;
        // No token: the engine drops this wait when the run is cancelled.
        let waited = Wait::within(wait.unwrap_or_default(), poll)
            .backing_off_to(poll.saturating_mul(4))
            .until_noting(
                move || async move {
                    match self.try_acquire(holder, operation).await {
                        Ok(guard) => Ok(Poll::Done(guard)),
                        Err(held @ LockError::Held { .. }) => Ok(Poll::BackOff(held)),
                        Err(other) => Err(other),
                    }
                },
                |held| {
                    if let LockError::Held { environment, info } = held
                        && !announced
                    {
                        reporter.report(&Event::LockWaiting {
                            environment: environment.clone(),
                            holder: info.holder.to_string(),
                            since: rfc3339(info.acquired_at),
                        });
                        announced = true;
                    }
                },
            )
            .await?;
        let guard = match waited {
            Waited::Done(guard) => guard,
            Waited::TimedOut(held) | Waited::Cancelled(held) => return Err(held),
        };
        reporter.report(&Event::LockAcquired {
            environment: self.environment.clone(),
            lease_id: guard.lease_id.clone(),
            expires_at: rfc3339(lease_end(OffsetDateTime::now_utc(), self.settings.ttl)),
        });
        Ok(guard)
    }

    async fn try_acquire(&self, holder: &Actor, operation: &str) -> Result<LockGuard, LockError> {
        let now = OffsetDateTime::now_utc();
        let current = self.read().await?;
        let replaced = current.as_ref().map(|(_, etag)| etag.clone());
        let guard = match &current {
            None => Guard::Create,
            Some((info, etag)) => match classify(info.clone(), now) {
                LockState::Held(info) => {
                    return Err(LockError::Held {
                        environment: self.environment.clone(),
                        info: Box::new(info),
                    });
                }
                LockState::Free { .. } | LockState::Expired(_) => Guard::Replace(etag),
            },
        };
        let info = LockInfo {
            lease_id: new_release_id(now),
            holder: holder.clone(),
            operation: operation.to_owned(),
            acquired_at: now,
            expires_at: lease_end(now, self.settings.ttl),
            released: None,
        };
        let etag = match self
            .ledger
            .store()
            .put(&self.key(), stamped_json(&info), guard)
            .await
        {
            Ok(etag) => etag,
            Err(LedgerError::Conflict { .. }) => {
                // Someone else won the race; report them as the holder.
                return match self.read().await? {
                    Some((winner, _)) => Err(LockError::Held {
                        environment: self.environment.clone(),
                        info: Box::new(winner),
                    }),
                    None => Err(LockError::Lost {
                        environment: self.environment.clone(),
                        reason: "the lock changed while it was being taken".into(),
                    }),
                };
            }
            Err(err) => return Err(err.into()),
        };
        Ok(LockGuard::start(self.clone(), info, etag, replaced))
    }

    /// Ends whatever lease exists, as `by`, and records that in `lock-events/`. Returns the
    /// lease that was ended, or `None` if the lock was already free (or held an unreadable
    /// document, which is cleared: see [`EnvLock::force_release_any`]).
    pub async fn force_release(&self, by: &Actor) -> Result<Option<LockInfo>, LockError> {
        Ok(match self.force_release_any(by).await? {
            ForceReleased::Lease(info) => Some(*info),
            ForceReleased::Nothing | ForceReleased::Unreadable { .. } => None,
        })
    }

    /// Ends whatever the lock object holds, as `by`: a lease (held or expired), or a document
    /// that is not a lease at all (unparseable, another schema), which is replaced by a released
    /// marker. Either way the change is a compare-and-swap on the ETag read, and a
    /// `force-release` event is recorded in `lock-events/` (for an unreadable document, with
    /// its first KiB).
    pub async fn force_release_any(&self, by: &Actor) -> Result<ForceReleased, LockError> {
        let now = OffsetDateTime::now_utc();
        let (lease, etag, unreadable) = match self.read_raw().await? {
            RawLock::Missing => return Ok(ForceReleased::Nothing),
            RawLock::Lease(info, _) if info.released.is_some() => {
                return Ok(ForceReleased::Nothing);
            }
            RawLock::Lease(info, etag) => (*info, etag, None),
            RawLock::Unreadable {
                detail,
                content,
                etag,
            } => (
                unknown_lease(now),
                etag,
                Some(serde_json::json!({ "detail": detail, "content": content })),
            ),
        };
        let mut released = lease.clone();
        released.released = Some(Released {
            at: now,
            by: by.clone(),
            forced: true,
        });
        self.ledger
            .store()
            .put(&self.key(), stamped_json(&released), Guard::Replace(&etag))
            .await?;
        let event = LockEvent {
            event: "force-release".into(),
            by: by.clone(),
            at: now,
            lease: lease.clone(),
        };
        let mut document = serde_json::to_value(&event).unwrap_or_default();
        if let (Some(unreadable), Some(fields)) = (&unreadable, document.as_object_mut()) {
            fields.insert("unreadable".into(), unreadable.clone());
        }
        let event_key = self.ledger.key(&format!(
            "lock-events/{}-{}.json",
            newest_first_stamp(now),
            new_release_id(now)
        ));
        self.ledger
            .store()
            .put(&event_key, to_json(&document), Guard::Create)
            .await?;
        Ok(match unreadable {
            None => ForceReleased::Lease(Box::new(lease)),
            Some(unreadable) => ForceReleased::Unreadable {
                detail: unreadable["detail"].as_str().unwrap_or_default().to_owned(),
            },
        })
    }
}

/// What [`EnvLock::force_release_any`] ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "ended", rename_all = "kebab-case")]
pub enum ForceReleased {
    /// The lock was free already.
    Nothing,
    /// This lease.
    Lease(Box<LockInfo>),
    /// A lock object that was not a lease document.
    Unreadable {
        /// Why it could not be read.
        detail: String,
    },
}

enum RawLock {
    Missing,
    Lease(Box<LockInfo>, String),
    Unreadable {
        detail: String,
        content: String,
        etag: String,
    },
}

/// The lease recorded in place of an unreadable lock document: nobody known held it.
fn unknown_lease(now: OffsetDateTime) -> LockInfo {
    LockInfo {
        lease_id: format!("unreadable-{}", new_release_id(now)),
        holder: Actor {
            user: "unknown".into(),
            host: "unknown".into(),
            pid: 0,
            ci_run_url: None,
            aws_arn: None,
        },
        operation: "an unreadable lock document".into(),
        acquired_at: now,
        expires_at: now,
        released: None,
    }
}

fn classify(info: LockInfo, now: OffsetDateTime) -> LockState {
    if info.released.is_some() {
        LockState::Free { last: Some(info) }
    } else if info.expires_at <= now {
        LockState::Expired(info)
    } else {
        LockState::Held(info)
    }
}

/// A held lease. Renews itself in the background until [`LockGuard::release`]; if renewal finds
/// the lease gone, [`LockGuard::is_lost`] turns true and work must stop.
#[derive(Debug)]
pub struct LockGuard {
    lease_id: String,
    lock: EnvLock,
    state: Arc<Mutex<(LockInfo, String)>>,
    lost: Arc<AtomicBool>,
    replaced: Option<String>,
    stop: Option<oneshot::Sender<()>>,
    renewer: Option<tokio::task::JoinHandle<()>>,
}

impl LockGuard {
    fn start(lock: EnvLock, info: LockInfo, etag: String, replaced: Option<String>) -> LockGuard {
        let lease_id = info.lease_id.clone();
        let state = Arc::new(Mutex::new((info, etag)));
        let lost = Arc::new(AtomicBool::new(false));
        let (stop, mut stopped) = oneshot::channel();
        let renewer = tokio::spawn({
            let (lock, state, lost) = (lock.clone(), state.clone(), lost.clone());
            async move {
                loop {
                    tokio::select! {
                        _ = &mut stopped => return,
                        () = tokio::time::sleep(lock.settings.renew_every) => {}
                    }
                    let mut guard = state.lock().await;
                    let (info, etag) = &mut *guard;
                    let mut renewed = info.clone();
                    renewed.expires_at = lease_end(OffsetDateTime::now_utc(), lock.settings.ttl);
                    match lock
                        .ledger
                        .store()
                        .put(&lock.key(), stamped_json(&renewed), Guard::Replace(etag))
                        .await
                    {
                        Ok(new_etag) => *guard = (renewed, new_etag),
                        Err(LedgerError::Conflict { .. }) => {
                            lost.store(true, Ordering::SeqCst);
                            return;
                        }
                        // A transient failure: try again next round; the lease has slack.
                        Err(err) => tracing::warn!(%err, "lock renewal failed"),
                    }
                }
            }
        });
        LockGuard {
            lease_id,
            lock,
            state,
            lost,
            replaced,
            stop: Some(stop),
            renewer: Some(renewer),
        }
    }

    /// The lease id.
    pub fn lease_id(&self) -> &str {
        &self.lease_id
    }

    /// The ETag of the lock object this lease replaced (a released or expired lease), `None`
    /// when there was none: see [`EnvLock::observe`].
    pub fn replaced(&self) -> Option<&str> {
        self.replaced.as_deref()
    }

    /// Whether the lease was lost (taken over or force-released).
    pub fn is_lost(&self) -> bool {
        self.lost.load(Ordering::SeqCst)
    }

    /// Fails with [`LockError::Lost`] if the lease is gone.
    pub fn check(&self) -> Result<(), LockError> {
        if self.is_lost() {
            return Err(LockError::Lost {
                environment: self.lock.environment.clone(),
                reason: "someone else took or released the lease".into(),
            });
        }
        Ok(())
    }

    async fn stop_renewal(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(renewer) = self.renewer.take() {
            let _ = renewer.await;
        }
    }

    /// When the lease runs out unless renewed or released.
    pub async fn expires_at(&self) -> OffsetDateTime {
        self.state.lock().await.0.expires_at
    }

    /// Gives the lease up. A lease already lost is not touched. The released marker is
    /// written once and, when S3 fails for a moment, again in rounds (the ledger's
    /// [`crate::ledger::Persistence`]); a write whose answer was lost is read back, so a
    /// marker that landed is not taken for someone else's change.
    pub async fn release(mut self) -> Result<(), LockError> {
        self.stop_renewal().await;
        self.check()?;
        let (info, etag) = self.state.lock().await.clone();
        let mut released = info.clone();
        released.released = Some(Released {
            at: OffsetDateTime::now_utc(),
            by: info.holder.clone(),
            forced: false,
        });
        self.lock
            .ledger
            .store()
            .put(
                &self.lock.key(),
                stamped_json(&released),
                Guard::Replace(&etag),
            )
            .await
            .map(drop)
            .map_err(|err| match err {
                LedgerError::Conflict { .. } => LockError::Lost {
                    environment: self.lock.environment.clone(),
                    reason: "someone else took or released the lease".into(),
                },
                other => other.into(),
            })
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if let Some(renewer) = self.renewer.take() {
            renewer.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_s3::operation::get_object::{GetObjectError, GetObjectOutput};
    use aws_sdk_s3::primitives::ByteStream;
    use aws_smithy_mocks::{RuleMode, mock, mock_client};

    use super::*;
    use crate::config::Config;
    use crate::events::Recorder;

    fn ledger(s3: aws_sdk_s3::Client) -> Ledger {
        let toml = "project = \"p\"\n[environments.dev]\nregion = \"eu-west-1\"\naccount = \"111111111111\"\nstate_bucket = \"p-state\"\n";
        let config = Config::from_toml(toml, "deploy.toml".as_ref()).expect("config");
        Ledger::new(s3, &config.environment("dev").expect("dev").target)
    }

    fn other_holder() -> LockInfo {
        let now = OffsetDateTime::now_utc();
        LockInfo {
            lease_id: "theirs".into(),
            holder: Actor {
                user: "alice".into(),
                host: "ci-7".into(),
                pid: 42,
                ci_run_url: None,
                aws_arn: None,
            },
            operation: "release plan x".into(),
            acquired_at: now,
            expires_at: now + time::Duration::minutes(2),
            released: None,
        }
    }

    /// The lock is free when read, but another process wins the conditional create: the loser
    /// must report the winner, not overwrite it.
    #[tokio::test]
    async fn losing_the_create_race_reports_the_winner() {
        let winner = serde_json::to_vec(&other_holder()).expect("json");
        let get = mock!(aws_sdk_s3::Client::get_object)
            .sequence()
            .error(|| {
                GetObjectError::NoSuchKey(aws_sdk_s3::types::error::NoSuchKey::builder().build())
            })
            .output(move || {
                GetObjectOutput::builder()
                    .body(ByteStream::from(winner.clone()))
                    .e_tag("\"w\"")
                    .build()
            })
            // Read back once to see whose write is there, once more to name the winner.
            .times(2)
            .build();
        let put = mock!(aws_sdk_s3::Client::put_object).then_http_response(|| {
            aws_smithy_runtime_api::http::Response::new(
                aws_smithy_runtime_api::http::StatusCode::try_from(412).expect("status"),
                aws_smithy_types::body::SdkBody::from(
                    "<Error><Code>PreconditionFailed</Code></Error>",
                ),
            )
        });
        let s3 = mock_client!(aws_sdk_s3, RuleMode::MatchAny, [&get, &put]);
        let lock = EnvLock::new(ledger(s3), "dev", LockSettings::default());
        let err = lock
            .acquire(&Actor::detect(), "test", None, &Recorder::default())
            .await
            .expect_err("the other process holds it");
        match err {
            LockError::Held { info, .. } => assert_eq!(info.holder.user, "alice"),
            other => panic!("expected Held, got {other}"),
        }
        assert_eq!(
            put.num_calls(),
            1,
            "exactly one conditional write, no retry over the winner"
        );
    }

    /// A lease (or a wait) too long for the clock saturates instead of panicking.
    #[tokio::test]
    async fn huge_durations_do_not_panic() {
        let get = mock!(aws_sdk_s3::Client::get_object).then_error(|| {
            GetObjectError::NoSuchKey(aws_sdk_s3::types::error::NoSuchKey::builder().build())
        });
        let put = mock!(aws_sdk_s3::Client::put_object).then_output(|| {
            aws_sdk_s3::operation::put_object::PutObjectOutput::builder()
                .e_tag("\"v1\"")
                .build()
        });
        let s3 = mock_client!(aws_sdk_s3, RuleMode::MatchAny, [&get, &put]);
        let huge = Duration::from_secs(100_000_000 * 3600);
        for ttl in [huge, Duration::MAX] {
            let lock = EnvLock::new(ledger(s3.clone()), "dev", LockSettings::with_ttl(ttl));
            let guard = lock
                .acquire(
                    &Actor::detect(),
                    "test",
                    Some(Duration::MAX),
                    &Recorder::default(),
                )
                .await
                .expect("taken");
            let (info, _) = guard.state.lock().await.clone();
            assert_eq!(info.expires_at.year(), 9999, "{ttl:?}");
            guard.release().await.expect("released");
        }
    }

    /// A held lock is reported with who, since when, and how to get out.
    #[tokio::test]
    async fn a_held_lock_names_its_holder() {
        let held = serde_json::to_vec(&other_holder()).expect("json");
        let get = mock!(aws_sdk_s3::Client::get_object).then_output(move || {
            GetObjectOutput::builder()
                .body(ByteStream::from(held.clone()))
                .e_tag("\"h\"")
                .build()
        });
        let put = mock!(aws_sdk_s3::Client::put_object)
            .then_output(|| aws_sdk_s3::operation::put_object::PutObjectOutput::builder().build());
        let s3 = mock_client!(aws_sdk_s3, RuleMode::MatchAny, [&get, &put]);
        let lock = EnvLock::new(ledger(s3), "dev", LockSettings::default());
        let err = lock
            .acquire(&Actor::detect(), "test", None, &Recorder::default())
            .await
            .expect_err("held");
        let text = err.to_string();
        assert!(text.contains("locked by alice@ci-7"), "{text}");
        assert!(text.contains("--wait-lock"), "{text}");
        assert_eq!(put.num_calls(), 0, "a held lock is never written");
    }

    /// A missing state bucket says which bucket and where it should come from.
    #[tokio::test]
    async fn a_missing_state_bucket_is_named() {
        let get = mock!(aws_sdk_s3::Client::get_object).then_http_response(|| {
            aws_smithy_runtime_api::http::Response::new(
                aws_smithy_runtime_api::http::StatusCode::try_from(404).expect("status"),
                aws_smithy_types::body::SdkBody::from(
                    "<Error><Code>NoSuchBucket</Code><Message>The specified bucket does not exist</Message></Error>",
                ),
            )
        });
        let s3 = mock_client!(aws_sdk_s3, RuleMode::MatchAny, [&get]);
        let lock = EnvLock::new(ledger(s3), "dev", LockSettings::default());
        let err = lock.status().await.expect_err("no bucket");
        assert!(
            matches!(err, LockError::Ledger(LedgerError::MissingBucket { ref bucket }) if bucket == "p-state"),
            "{err}"
        );
    }
}

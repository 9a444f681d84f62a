//! Blobs: existence (and size) checks, cross-repository mounts, uploads in every mode with
//! each byte hashed on the way, and blob streams for copies.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, PoisonError, Weak};

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use reqwest::{Method, StatusCode, Url, header};
use sha2::Digest as _;

use super::auth::{pull_scope, push_scope};
use super::source::SourceError;
use super::{BlobAction, BlobSource, Progress, Registry, RegistryError, UploadMode};
use crate::events::Event;
use crate::oci::{Descriptor, Digest, hex};

type ByteStream = BoxStream<'static, std::io::Result<Bytes>>;

/// Pushes of one blob to one repository under way in this process, by `host/repository@digest`.
/// Registries race when the same blob is uploaded twice at once (the manifest can then meet
/// "blob unknown"), as when two artifacts of one release share a repository: the second push
/// waits for the first and then finds the blob there.
static PUSHING: LazyLock<Mutex<HashMap<String, Weak<tokio::sync::Mutex<()>>>>> =
    LazyLock::new(Mutex::default);

fn push_turn(key: String) -> Arc<tokio::sync::Mutex<()>> {
    let mut pushing = PUSHING.lock().unwrap_or_else(PoisonError::into_inner);
    pushing.retain(|_, turn| turn.strong_count() > 0);
    if let Some(turn) = pushing.get(&key).and_then(Weak::upgrade) {
        return turn;
    }
    let turn = Arc::new(tokio::sync::Mutex::new(()));
    pushing.insert(key, Arc::downgrade(&turn));
    turn
}

/// What a `HEAD` of a blob says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BlobHead {
    /// The repository does not have it.
    Missing,
    /// It has it; `size` when the registry states one.
    Present { size: Option<u64> },
}

impl Registry {
    /// Whether `repository` has the blob.
    pub async fn blob_exists(
        &self,
        repository: &str,
        digest: &Digest,
    ) -> Result<bool, RegistryError> {
        Ok(self.blob_head(repository, digest).await? != BlobHead::Missing)
    }

    /// Whether `repository` has the blob, and the size it reports (its `Content-Length`).
    async fn blob_head(
        &self,
        repository: &str,
        digest: &Digest,
    ) -> Result<BlobHead, RegistryError> {
        let repository = self.repository(repository)?;
        let operation = format!("HEAD blob {digest} in {repository}");
        let url = self.endpoint(repository, &["blobs", digest.as_str()]);
        let scope = pull_scope(repository);
        self.retrying(&operation, &scope, |_| async {
            let response = self
                .send(&operation, &scope, || {
                    self.bounded(self.http.head(url.clone()))
                })
                .await?;
            match response.status() {
                // A HEAD answer has no body: the length is only in the header.
                StatusCode::OK => Ok(BlobHead::Present {
                    size: response
                        .headers()
                        .get(header::CONTENT_LENGTH)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse().ok()),
                }),
                StatusCode::NOT_FOUND => Ok(BlobHead::Missing),
                _ => Err(self.status_error(&operation, response).await),
            }
        })
        .await
    }

    /// Whether `repository` has `blob` at the size its descriptor says; a different size is
    /// an error, whoever uploaded the blob.
    async fn has_blob(&self, repository: &str, blob: &Descriptor) -> Result<bool, RegistryError> {
        match self.blob_head(repository, &blob.digest).await? {
            BlobHead::Missing => Ok(false),
            BlobHead::Present { size: Some(found) } if found != blob.size => {
                Err(RegistryError::SizeMismatch {
                    registry: self.host.clone(),
                    repository: repository.to_owned(),
                    digest: blob.digest.to_string(),
                    expected: blob.size,
                    found,
                })
            }
            BlobHead::Present { .. } => Ok(true),
        }
    }

    /// Starts an upload; with `mount_from`, asks the registry to mount the blob from that
    /// repository instead. Returns `None` when the mount succeeded, else the upload URL.
    async fn start_upload(
        &self,
        repository: &str,
        digest: &Digest,
        mount_from: Option<&str>,
    ) -> Result<Option<Url>, RegistryError> {
        let operation = format!("start upload of {digest} to {repository}");
        let mut url = self.endpoint(repository, &["blobs", "uploads", ""]);
        let mut scope = push_scope(repository);
        if let Some(from) = mount_from {
            url.query_pairs_mut()
                .append_pair("mount", digest.as_str())
                .append_pair("from", from);
            scope = format!("{scope} {}", pull_scope(from));
        }
        self.retrying(&operation, &scope, |_| async {
            let response = self
                .send(&operation, &scope, || {
                    self.bounded(self.http.post(url.clone()))
                        .header(header::CONTENT_LENGTH, "0")
                })
                .await?;
            let ok = [StatusCode::CREATED, StatusCode::ACCEPTED];
            let response = self.expect(&operation, response, &ok).await?;
            if response.status() == StatusCode::CREATED && mount_from.is_some() {
                return Ok(None);
            }
            let location = response
                .headers()
                .get(header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| RegistryError::Status {
                    registry: self.host.clone(),
                    operation: operation.clone(),
                    status: response.status().as_u16(),
                    body: "no Location header".into(),
                })?;
            self.resolve_location(&operation, location).map(Some)
        })
        .await
    }

    /// The bytes of `blob` as a stream that hashes everything read: when the last byte is read
    /// (before that chunk reaches the connection) a mismatch with the descriptor fails the
    /// stream, so the registry never commits a corrupt blob.
    async fn verified_body(
        &self,
        blob: &Descriptor,
        source: &BlobSource<'_>,
        progress: &Progress<'_>,
    ) -> Result<ByteStream, RegistryError> {
        let (path, stream) = self.blob_source(blob, source).await?;
        let hasher = Arc::new(Mutex::new(sha2::Sha256::new()));
        let expected = blob.clone();
        let sent = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let reporter = progress.reporter.clone();
        let (artifact, item) = (progress.artifact.to_owned(), blob.digest.to_string());
        let verify = Arc::new(move |hasher: &sha2::Sha256, size: u64| {
            let digest = format!("sha256:{}", hex(&hasher.clone().finalize()));
            if digest == expected.digest.as_str() && size == expected.size {
                return Ok(());
            }
            Err(std::io::Error::other(SourceError::Corrupt {
                path: path.clone(),
                expected: format!("{} ({} bytes)", expected.digest, expected.size),
                actual: format!("{digest} ({size} bytes)"),
            }))
        });
        let total = blob.size;
        let chunks = stream.map({
            let (hasher, sent, verify) = (hasher.clone(), sent.clone(), verify.clone());
            move |chunk: Result<Bytes, std::io::Error>| {
                let chunk = chunk?;
                let done = sent.fetch_add(chunk.len() as u64, std::sync::atomic::Ordering::Relaxed)
                    + chunk.len() as u64;
                let mut h = hasher
                    .lock()
                    .map_err(|_| std::io::Error::other("hasher poisoned"))?;
                h.update(&chunk);
                if done >= total {
                    verify(&h, done)?;
                }
                reporter.report(&Event::BytesTransferred {
                    artifact: artifact.clone(),
                    item: item.clone(),
                    done,
                    total: Some(total),
                });
                Ok(chunk)
            }
        });
        // A source shorter than its descriptor never reaches `total`: check once it ends.
        let check = futures::stream::once(async move {
            let done = sent.load(std::sync::atomic::Ordering::Relaxed);
            if done >= total {
                return Ok(Bytes::new());
            }
            let h = hasher
                .lock()
                .map_err(|_| std::io::Error::other("hasher poisoned"))?;
            verify(&h, done).map(|()| Bytes::new())
        });
        Ok(chunks.chain(check).boxed())
    }

    /// Where the bytes of `blob` are read from (named for errors), as a stream.
    async fn blob_source(
        &self,
        blob: &Descriptor,
        source: &BlobSource<'_>,
    ) -> Result<(std::path::PathBuf, ByteStream), RegistryError> {
        use tokio::io::{AsyncReadExt, AsyncSeekExt};
        match source {
            BlobSource::Local(local) => {
                let io = |source| SourceError::Io {
                    path: local.path.clone(),
                    source,
                };
                let mut file = tokio::fs::File::open(&local.path).await.map_err(io)?;
                file.seek(std::io::SeekFrom::Start(local.offset))
                    .await
                    .map_err(io)?;
                // Exactly the blob's bytes: in a tarball the next member follows.
                let file = file.take(blob.size);
                let stream =
                    tokio_util::io::ReaderStream::with_capacity(file, self.settings.chunk).boxed();
                Ok((local.path.clone(), stream))
            }
            BlobSource::Remote {
                registry,
                repository: from,
            } => Ok((
                std::path::PathBuf::from(format!("{}/{from}@{}", registry.host, blob.digest)),
                registry.blob_stream(from, &blob.digest).await?,
            )),
        }
    }

    /// Sends one request of an upload; a body that failed verification is reported as the
    /// corrupt source it is, not as a transport error.
    async fn send_upload(
        &self,
        operation: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, RegistryError> {
        request
            .send()
            .await
            .map_err(|err| match corrupt_source(&err) {
                Some(corrupt) => RegistryError::from(corrupt),
                None => self.transport(operation, err),
            })
    }

    /// Uploads one blob to the session at `location`, in the registry's upload mode, and commits
    /// it with its digest. Every byte is hashed on the way (see [`Registry::verified_body`]).
    async fn upload_file(
        &self,
        repository: &str,
        blob: &Descriptor,
        source: &BlobSource<'_>,
        mut location: Url,
        progress: &Progress<'_>,
    ) -> Result<(), RegistryError> {
        let operation = format!("upload of {} to {repository}", blob.digest);
        let scope = push_scope(repository);
        let body = self.verified_body(blob, source, progress).await?;
        let mut final_body = None;
        match self.upload_mode() {
            UploadMode::Monolithic | UploadMode::Auto => final_body = Some(body),
            UploadMode::Streamed => {
                location = self
                    .patch(&operation, &scope, location, body, 0, blob.size)
                    .await?;
            }
            UploadMode::Chunked => {
                location = self
                    .upload_parts(&operation, &scope, location, body, blob.size)
                    .await?;
            }
        }
        location
            .query_pairs_mut()
            .append_pair("digest", blob.digest.as_str());
        let request = self
            .http
            .request(Method::PUT, location)
            .header(header::CONTENT_TYPE, "application/octet-stream");
        let request = match final_body {
            Some(body) => request
                .header(header::CONTENT_LENGTH, blob.size)
                .body(reqwest::Body::wrap_stream(body)),
            None => request.header(header::CONTENT_LENGTH, 0),
        };
        let response = self
            .send_upload(&operation, self.authorize(request, &scope))
            .await?;
        self.expect(&operation, response, &[StatusCode::CREATED])
            .await
            .map(drop)
    }

    /// Sends `body` (`size` bytes) in `PATCH` parts of `part_size`; returns where the session
    /// continues.
    async fn upload_parts(
        &self,
        operation: &str,
        scope: &str,
        mut location: Url,
        body: ByteStream,
        size: u64,
    ) -> Result<Url, RegistryError> {
        let part_size = self.settings.part_size.max(1);
        let reader = Arc::new(tokio::sync::Mutex::new(tokio_util::io::StreamReader::new(
            body,
        )));
        let mut start = 0;
        while start < size {
            let len = part_size.min(size - start);
            let guard = reader.clone().lock_owned().await;
            let part = tokio_util::io::ReaderStream::with_capacity(
                tokio::io::AsyncReadExt::take(Part(guard), len),
                self.settings.chunk,
            )
            .boxed();
            location = self
                .patch(operation, scope, location, part, start, len)
                .await?;
            start += len;
        }
        // An empty blob (or a source shorter than its descriptor) still has to be checked.
        let mut rest = tokio_util::io::ReaderStream::new(Part(reader.lock_owned().await));
        while let Some(chunk) = rest.next().await {
            if let Err(err) = chunk {
                return Err(match corrupt_source(&err) {
                    Some(corrupt) => RegistryError::from(corrupt),
                    None => RegistryError::Transport {
                        registry: self.host.clone(),
                        operation: operation.to_owned(),
                        detail: "the blob could not be read to the end".into(),
                        source: Box::new(err),
                    },
                });
            }
        }
        Ok(location)
    }

    /// Sends `len` bytes at `start` of an upload session with PATCH and returns where the
    /// session continues. ECR answers `201` where the protocol says `202`; both are accepted.
    async fn patch(
        &self,
        operation: &str,
        scope: &str,
        location: Url,
        body: ByteStream,
        start: u64,
        len: u64,
    ) -> Result<Url, RegistryError> {
        let mut request = self
            .http
            .request(Method::PATCH, location.clone())
            .header(header::CONTENT_TYPE, "application/octet-stream")
            .header(header::CONTENT_LENGTH, len);
        if self.upload_mode() == UploadMode::Chunked {
            let last = (start + len).saturating_sub(1);
            request = request.header(header::CONTENT_RANGE, format!("{start}-{last}"));
        }
        let request = request.body(reqwest::Body::wrap_stream(body));
        let response = self
            .send_upload(operation, self.authorize(request, scope))
            .await?;
        let ok = [
            StatusCode::ACCEPTED,
            StatusCode::CREATED,
            StatusCode::NO_CONTENT,
        ];
        let response = self.expect(operation, response, &ok).await?;
        match response
            .headers()
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
        {
            Some(next) => self.resolve_location(operation, next),
            None => Ok(location),
        }
    }

    /// Pushes one blob unless the repository has it (at the descriptor's size); mounts it from
    /// `mount_from` when given. An upload that fails is started again from the beginning in a
    /// new session, after checking whether the last try arrived after all.
    pub async fn push_blob(
        &self,
        repository: &str,
        blob: &Descriptor,
        source: &BlobSource<'_>,
        mount_from: Option<&str>,
        progress: &Progress<'_>,
    ) -> Result<BlobAction, RegistryError> {
        let repository = self.repository(repository)?;
        let mount_from = mount_from.map(|m| self.repository(m)).transpose()?;
        let turn = push_turn(format!("{}/{repository}@{}", self.host, blob.digest));
        let _turn = turn.lock().await;
        if self.has_blob(repository, blob).await? {
            return Ok(BlobAction::Skipped);
        }
        let operation = format!("upload of {} to {repository}", blob.digest);
        let action = self
            .retrying(&operation, &push_scope(repository), |attempt| async move {
                // The registry may have committed the last attempt before its answer was lost.
                if attempt > 1 && self.has_blob(repository, blob).await? {
                    return Ok(match mount_from {
                        Some(_) => BlobAction::Mounted,
                        None => BlobAction::Sent,
                    });
                }
                match self
                    .upload_once(repository, blob, source, mount_from, progress)
                    .await
                {
                    Err(err) if self.monolithic_refused(&err) => {
                        self.upload_once(repository, blob, source, mount_from, progress)
                            .await
                    }
                    other => other,
                }
            })
            .await?;
        if action == BlobAction::Mounted {
            // A mounted blob is the source's: it must be the size the manifest says, too.
            self.has_blob(repository, blob).await?;
        }
        Ok(action)
    }

    async fn upload_once(
        &self,
        repository: &str,
        blob: &Descriptor,
        source: &BlobSource<'_>,
        mount_from: Option<&str>,
        progress: &Progress<'_>,
    ) -> Result<BlobAction, RegistryError> {
        match self
            .start_upload(repository, &blob.digest, mount_from)
            .await?
        {
            None => Ok(BlobAction::Mounted),
            Some(location) => self
                .upload_file(repository, blob, source, location, progress)
                .await
                .map(|()| BlobAction::Sent),
        }
    }

    /// Whether `err` is the registry refusing one-`PUT` uploads (or ones this large) in
    /// [`UploadMode::Auto`]; if so, every later upload streams with `PATCH`.
    fn monolithic_refused(&self, err: &RegistryError) -> bool {
        let refused = matches!(err.status(), Some(405 | 413 | 501))
            && self.settings.upload == UploadMode::Auto
            && self.upload_mode() == UploadMode::Monolithic;
        if refused {
            tracing::info!(
                status = err.status(),
                registry = %self.host,
                "monolithic upload refused; streaming with PATCH"
            );
            self.no_monolithic
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
        refused
    }

    /// A blob's bytes as a stream (redirects to storage are followed).
    pub async fn blob_stream(
        &self,
        repository: &str,
        digest: &Digest,
    ) -> Result<ByteStream, RegistryError> {
        let repository = self.repository(repository)?;
        let operation = format!("GET blob {digest} from {repository}");
        let url = self.endpoint(repository, &["blobs", digest.as_str()]);
        let scope = pull_scope(repository);
        let response = self
            .retrying(&operation, &scope, |_| async {
                let response = self
                    .send(&operation, &scope, || self.http.get(url.clone()))
                    .await?;
                self.expect(&operation, response, &[StatusCode::OK]).await
            })
            .await?;
        Ok(response
            .bytes_stream()
            .map_err(std::io::Error::other)
            .boxed())
    }
}

/// The first corrupt-source error in an error's chain: a blob whose bytes did not match its
/// digest surfaces inside the HTTP client's body error.
fn corrupt_source(err: &(dyn std::error::Error + 'static)) -> Option<SourceError> {
    let mut current = Some(err);
    while let Some(cause) = current {
        if let Some(SourceError::Corrupt {
            path,
            expected,
            actual,
        }) = cause
            .downcast_ref::<std::io::Error>()
            .and_then(|e| e.get_ref())
            .and_then(|e| e.downcast_ref::<SourceError>())
        {
            return Some(SourceError::Corrupt {
                path: path.clone(),
                expected: expected.clone(),
                actual: actual.clone(),
            });
        }
        current = cause.source();
    }
    None
}

/// An upload session's reader, held by one part at a time.
struct Part<R>(tokio::sync::OwnedMutexGuard<R>);

impl<R: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Part<R> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut *self.0).poll_read(cx, buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn pushes_of_one_blob_to_one_repository_take_turns() {
        let first = push_turn("h/r@sha256:a".into());
        let same = push_turn("h/r@sha256:a".into());
        assert!(Arc::ptr_eq(&first, &same));
        let elsewhere = push_turn("h/other@sha256:a".into());
        assert!(!Arc::ptr_eq(&first, &elsewhere));
        let held = first.lock().await;
        assert!(same.try_lock().is_err(), "the second push waits");
        drop(held);
        assert!(same.try_lock().is_ok());
        drop((first, same));
        let again = push_turn("h/r@sha256:a".into());
        assert!(
            again.try_lock().is_ok(),
            "a finished push leaves no turn behind"
        );
    }
}

//! A client of the OCI distribution protocol, enough to push images: blob existence checks,
//! cross-repository mounts, streamed uploads verified against their digest, and manifests.
//!
//! Authentication follows the registry's challenge: anonymous first; on `401` with
//! `WWW-Authenticate: Basic` the configured credentials are sent; with `Bearer` a token is
//! fetched from the realm for the requested scope (with the credentials, if any) and cached per
//! scope. ECR uses basic credentials from `GetAuthorizationToken`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use reqwest::{Method, StatusCode, header};
use serde::Serialize;
use sha2::Digest as _;

use crate::artifact::image::{BlobLocation, BlobStore, ImageContents, SourceError};
use crate::events::{Event, Reporter};
use crate::oci::{Descriptor, Digest, hex};

/// Username and password (for ECR: `AWS` and the decoded authorization token).
#[derive(Clone)]
pub struct Credentials {
    /// User name.
    pub username: String,
    /// Password or token; never printed.
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

impl Credentials {
    /// The login stored for `host` by `docker login`, `podman login` or `skopeo login`: the first
    /// of `$REGISTRY_AUTH_FILE`, `$XDG_RUNTIME_DIR/containers/auth.json`,
    /// `$DOCKER_CONFIG/config.json` and `~/.docker/config.json` that has an `auth` entry for it.
    /// Credential helpers are not run.
    pub fn stored_for(host: &str) -> Option<Credentials> {
        let env = |key: &str| std::env::var_os(key).map(std::path::PathBuf::from);
        let files = [
            env("REGISTRY_AUTH_FILE"),
            env("XDG_RUNTIME_DIR").map(|d| d.join("containers/auth.json")),
            env("DOCKER_CONFIG").map(|d| d.join("config.json")),
            env("HOME").map(|d| d.join(".docker/config.json")),
        ];
        files
            .into_iter()
            .flatten()
            .find_map(|file| Credentials::from_auth_file(&file, host))
    }

    /// The `auth` entry for `host` in one Docker-style auth file.
    pub fn from_auth_file(file: &std::path::Path, host: &str) -> Option<Credentials> {
        let text = std::fs::read_to_string(file).ok()?;
        let document: serde_json::Value = serde_json::from_str(&text).ok()?;
        let auths = document.get("auths")?.as_object()?;
        let entry = auths.iter().find_map(|(key, value)| {
            let key = key
                .trim_start_matches("https://")
                .trim_start_matches("http://");
            let key = key.split('/').next().unwrap_or_default();
            (key == host).then_some(value)
        })?;
        let auth = entry.get("auth")?.as_str()?;
        let decoded = aws_smithy_types::base64::decode(auth).ok()?;
        let decoded = String::from_utf8(decoded).ok()?;
        let (username, password) = decoded.split_once(':')?;
        Some(Credentials {
            username: username.to_owned(),
            password: password.to_owned(),
        })
    }
}

/// Tuning of pushes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrySettings {
    /// Blobs uploaded at the same time. Default 6.
    pub parallel_blobs: usize,
    /// Attempts per blob upload when the registry fails (5xx, reset connections). Default 4.
    pub attempts: u32,
    /// First pause between attempts (doubles). Default 500 ms.
    pub backoff: Duration,
    /// Read buffer for streaming blobs. Default 256 KiB.
    pub chunk: usize,
    /// How blob bytes are sent. Default [`UploadMode::Auto`].
    pub upload: UploadMode,
    /// Part size of [`UploadMode::Chunked`] uploads. Default 10 MiB; ECR takes 5 to 20 MiB.
    pub part_size: u64,
}

/// How blob bytes are sent to the registry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UploadMode {
    /// [`UploadMode::Streamed`] for ECR (what `docker push` does there), else
    /// [`UploadMode::Monolithic`].
    #[default]
    Auto,
    /// One `PUT` carrying the whole blob: the fewest requests.
    Monolithic,
    /// One `PATCH` carrying the whole blob, then a `PUT` that commits it.
    Streamed,
    /// `PATCH` requests of `part_size` bytes each (with `Content-Range`), then the commit.
    Chunked,
}

impl Default for RegistrySettings {
    fn default() -> Self {
        RegistrySettings {
            parallel_blobs: 6,
            attempts: 4,
            backoff: Duration::from_millis(500),
            chunk: 256 * 1024,
            upload: UploadMode::Auto,
            part_size: 10 * 1024 * 1024,
        }
    }
}

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
        /// The error.
        detail: String,
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
}

impl RegistryError {
    fn retryable(&self) -> bool {
        match self {
            RegistryError::Transport { .. } => true,
            RegistryError::Status { status, .. } => *status >= 500 || *status == 429,
            _ => false,
        }
    }
}

/// What happened to one blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BlobAction {
    /// The registry already had it: nothing sent.
    Skipped,
    /// Mounted from another repository of the same registry: nothing sent.
    Mounted,
    /// Uploaded.
    Sent,
}

/// One blob's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BlobReport {
    /// Blob digest.
    pub digest: Digest,
    /// Size in bytes.
    pub size: u64,
    /// What was done.
    pub action: BlobAction,
}

/// The result of a push.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PushReport {
    /// `repository@sha256:...` of the pushed image (index or manifest).
    pub reference: String,
    /// The root manifest digest.
    pub digest: Digest,
    /// Every blob.
    pub blobs: Vec<BlobReport>,
    /// Bytes actually sent for blobs.
    pub bytes_sent: u64,
}

/// A client of one registry.
#[derive(Debug, Clone)]
pub struct Registry {
    http: reqwest::Client,
    base: String,
    host: String,
    credentials: Option<Credentials>,
    tokens: Arc<Mutex<HashMap<String, String>>>,
    settings: RegistrySettings,
    /// Set when, in [`UploadMode::Auto`], the registry refused a monolithic upload: later
    /// uploads stream with `PATCH` instead.
    no_monolithic: Arc<std::sync::atomic::AtomicBool>,
}

enum Challenge {
    /// Username and password on every request.
    Basic,
    /// A token from `realm`, per scope.
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

impl Registry {
    /// A client of the registry at `base` (`http://host:port`, `https://host`, or a bare host:
    /// https, except loopback hosts).
    pub fn new(
        base: &str,
        credentials: Option<Credentials>,
        settings: RegistrySettings,
    ) -> Result<Registry, RegistryError> {
        // Like Docker, a bare loopback host is spoken to over plain HTTP, any other over HTTPS.
        let base = if base.starts_with("http://") || base.starts_with("https://") {
            base.trim_end_matches('/').to_owned()
        } else if base.starts_with("localhost") || base.starts_with("127.") {
            format!("http://{}", base.trim_end_matches('/'))
        } else {
            format!("https://{}", base.trim_end_matches('/'))
        };
        let host = base.split("://").nth(1).unwrap_or_default().to_owned();
        if settings.upload == UploadMode::Chunked
            && is_ecr_host(&host)
            && !ECR_PART_SIZE.contains(&settings.part_size)
        {
            return Err(RegistryError::Settings {
                registry: host,
                detail: format!(
                    "ECR takes upload parts of 5 MiB to 20 MiB, and part_size is {} bytes; \
                     set `part_size` in [settings] within that range",
                    settings.part_size
                ),
            });
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("deploy/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|err| RegistryError::Transport {
                registry: host.clone(),
                operation: "client set-up".into(),
                detail: err.to_string(),
            })?;
        Ok(Registry {
            http,
            base,
            host,
            credentials,
            tokens: Arc::default(),
            settings,
            no_monolithic: Arc::default(),
        })
    }

    /// The registry host (with port), as used in image references.
    pub fn host(&self) -> &str {
        &self.host
    }

    fn transport(&self, operation: &str, err: &reqwest::Error) -> RegistryError {
        let mut detail = err.to_string();
        let mut source = std::error::Error::source(err);
        while let Some(cause) = source {
            detail = format!("{detail}: {cause}");
            source = cause.source();
        }
        RegistryError::Transport {
            registry: self.host.clone(),
            operation: operation.to_owned(),
            detail,
        }
    }

    /// Sends a request built by `build`, answering an auth challenge once.
    async fn send(
        &self,
        operation: &str,
        scope: &str,
        build: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, RegistryError> {
        // Credentials go along from the start (ECR and most private registries want them);
        // a bearer challenge then trades them for a token of the request's scope.
        let cached = self.tokens.lock().ok().and_then(|t| t.get(scope).cloned());
        let request = match (&cached, &self.credentials) {
            (Some(token), _) => build().bearer_auth(token),
            (None, Some(c)) => build().basic_auth(&c.username, Some(&c.password)),
            (None, None) => build(),
        };
        let response = request
            .send()
            .await
            .map_err(|err| self.transport(operation, &err))?;
        if response.status() != StatusCode::UNAUTHORIZED {
            return Ok(response);
        }
        let challenge = response
            .headers()
            .get(header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_challenge);
        let retry = match challenge {
            Some(Challenge::Bearer { realm, service }) => {
                let token = self
                    .token(operation, &realm, service.as_deref(), scope)
                    .await?;
                build().bearer_auth(token)
            }
            _ => {
                return Err(RegistryError::Unauthorized {
                    registry: self.host.clone(),
                    operation: operation.to_owned(),
                    detail: if self.credentials.is_some() {
                        "the credentials were refused".into()
                    } else {
                        "the registry needs credentials and none were given".into()
                    },
                });
            }
        };
        let response = retry
            .send()
            .await
            .map_err(|err| self.transport(operation, &err))?;
        if response.status() == StatusCode::UNAUTHORIZED {
            return Err(RegistryError::Unauthorized {
                registry: self.host.clone(),
                operation: operation.to_owned(),
                detail: "the credentials were refused".into(),
            });
        }
        Ok(response)
    }

    async fn token(
        &self,
        operation: &str,
        realm: &str,
        service: Option<&str>,
        scope: &str,
    ) -> Result<String, RegistryError> {
        let mut request = self.http.get(realm).query(&[("scope", scope)]);
        if let Some(service) = service {
            request = request.query(&[("service", service)]);
        }
        if let Some(c) = &self.credentials {
            request = request.basic_auth(&c.username, Some(&c.password));
        }
        let response = request
            .send()
            .await
            .map_err(|err| self.transport(operation, &err))?;
        if !response.status().is_success() {
            return Err(RegistryError::Unauthorized {
                registry: self.host.clone(),
                operation: operation.to_owned(),
                detail: format!("the token service answered {}", response.status()),
            });
        }
        let body: serde_json::Value = response
            .json()
            .await
            .map_err(|err| self.transport(operation, &err))?;
        let token = body["token"]
            .as_str()
            .or_else(|| body["access_token"].as_str())
            .unwrap_or_default()
            .to_owned();
        if let Ok(mut tokens) = self.tokens.lock() {
            tokens.insert(scope.to_owned(), token.clone());
        }
        Ok(token)
    }

    async fn expect(
        &self,
        operation: &str,
        response: reqwest::Response,
        ok: &[StatusCode],
    ) -> Result<reqwest::Response, RegistryError> {
        if ok.contains(&response.status()) {
            return Ok(response);
        }
        let status = response.status().as_u16();
        let body: String = response
            .text()
            .await
            .unwrap_or_default()
            .chars()
            .take(300)
            .collect();
        Err(RegistryError::Status {
            registry: self.host.clone(),
            operation: operation.to_owned(),
            status,
            body,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}/v2/{path}", self.base)
    }

    fn resolve_location(&self, location: &str) -> String {
        if location.starts_with("http://") || location.starts_with("https://") {
            location.to_owned()
        } else {
            format!("{}{location}", self.base)
        }
    }

    /// Whether `repository` has the blob.
    pub async fn blob_exists(
        &self,
        repository: &str,
        digest: &Digest,
    ) -> Result<bool, RegistryError> {
        let operation = format!("HEAD blob {digest} in {repository}");
        let url = self.url(&format!("{repository}/blobs/{digest}"));
        let response = self
            .send(&operation, &pull_scope(repository), || self.http.head(&url))
            .await?;
        match response.status() {
            StatusCode::OK => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => self.expect(&operation, response, &[]).await.map(|_| false),
        }
    }

    /// Starts an upload; with `mount_from`, asks the registry to mount the blob from that
    /// repository instead. Returns `None` when the mount succeeded, else the upload URL.
    async fn start_upload(
        &self,
        repository: &str,
        digest: &Digest,
        mount_from: Option<&str>,
    ) -> Result<Option<String>, RegistryError> {
        let operation = format!("start upload of {digest} to {repository}");
        let mut url = self.url(&format!("{repository}/blobs/uploads/"));
        let mut scope = push_scope(repository);
        if let Some(from) = mount_from {
            url = format!("{url}?mount={digest}&from={from}");
            scope = format!("{scope} {}", pull_scope(from));
        }
        let response = self
            .send(&operation, &scope, || {
                self.http.post(&url).header(header::CONTENT_LENGTH, "0")
            })
            .await?;
        let response = self
            .expect(
                &operation,
                response,
                &[StatusCode::CREATED, StatusCode::ACCEPTED],
            )
            .await?;
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
                status: 202,
                body: "no Location header".into(),
            })?;
        Ok(Some(self.resolve_location(location)))
    }

    /// The bytes of `blob` as a stream that hashes everything read: when the last byte is read
    /// (before that chunk reaches the connection) a mismatch with the descriptor fails the
    /// stream, so the registry never commits a corrupt blob.
    async fn verified_body(
        &self,
        blob: &Descriptor,
        source: &BlobSource<'_>,
        progress: &Progress<'_>,
    ) -> Result<futures::stream::BoxStream<'static, std::io::Result<Bytes>>, RegistryError> {
        use tokio::io::{AsyncReadExt, AsyncSeekExt};
        let (path_buf, stream): (
            std::path::PathBuf,
            futures::stream::BoxStream<'static, std::io::Result<Bytes>>,
        ) = match source {
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
                (
                    local.path.clone(),
                    tokio_util::io::ReaderStream::with_capacity(file, self.settings.chunk).boxed(),
                )
            }
            BlobSource::Remote {
                registry,
                repository: from,
            } => (
                std::path::PathBuf::from(format!("{}/{from}@{}", registry.host, blob.digest)),
                registry.blob_stream(from, &blob.digest).await?,
            ),
        };
        let hasher = Arc::new(Mutex::new(sha2::Sha256::new()));
        let expected = blob.clone();
        let sent = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let reporter = progress.reporter.clone();
        let (artifact, item) = (progress.artifact.to_owned(), blob.digest.to_string());
        let verify = move |hasher: &sha2::Sha256, size: u64| -> Result<(), std::io::Error> {
            let digest = format!("sha256:{}", hex(&hasher.clone().finalize()));
            if digest == expected.digest.as_str() && size == expected.size {
                return Ok(());
            }
            Err(std::io::Error::other(SourceError::Corrupt {
                path: path_buf.clone(),
                expected: format!("{} ({} bytes)", expected.digest, expected.size),
                actual: format!("{digest} ({size} bytes)"),
            }))
        };
        let verify = Arc::new(verify);
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

    /// Adds the credentials a request of `scope` needs: the cached token, else basic credentials.
    fn authorize(&self, request: reqwest::RequestBuilder, scope: &str) -> reqwest::RequestBuilder {
        let token = self.tokens.lock().ok().and_then(|t| t.get(scope).cloned());
        match (token, &self.credentials) {
            (Some(token), _) => request.bearer_auth(token),
            (None, Some(c)) => request.basic_auth(&c.username, Some(&c.password)),
            (None, None) => request,
        }
    }

    /// Forgets the token of `scope` (the registry refused it: expired or revoked).
    fn forget_token(&self, scope: &str) {
        if let Ok(mut tokens) = self.tokens.lock() {
            tokens.remove(scope);
        }
    }

    /// Sends one request of an upload; a body that failed verification is reported as the
    /// corrupt source it is, not as a transport error.
    async fn send_upload(
        &self,
        operation: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, RegistryError> {
        request.send().await.map_err(|err| {
            corrupt_source(&err)
                .map(RegistryError::from)
                .unwrap_or_else(|| self.transport(operation, &err))
        })
    }

    /// The upload mode used with this registry.
    pub fn upload_mode(&self) -> UploadMode {
        match self.settings.upload {
            UploadMode::Auto
                if is_ecr_host(&self.host)
                    || self
                        .no_monolithic
                        .load(std::sync::atomic::Ordering::Relaxed) =>
            {
                UploadMode::Streamed
            }
            UploadMode::Auto => UploadMode::Monolithic,
            mode => mode,
        }
    }

    /// Uploads one blob to the session at `location`, in the registry's upload mode, and commits
    /// it with its digest. Every byte is hashed on the way (see [`Registry::verified_body`]).
    async fn upload_file(
        &self,
        repository: &str,
        blob: &Descriptor,
        source: &BlobSource<'_>,
        location: &str,
        progress: &Progress<'_>,
    ) -> Result<(), RegistryError> {
        let operation = format!("upload of {} to {repository}", blob.digest);
        let scope = push_scope(repository);
        let body = self.verified_body(blob, source, progress).await?;
        let mut location = location.to_owned();
        let mut final_body = None;
        match self.upload_mode() {
            UploadMode::Monolithic | UploadMode::Auto => final_body = Some(body),
            UploadMode::Streamed => {
                location = self
                    .patch(&operation, &scope, &location, body, 0, blob.size)
                    .await?;
            }
            UploadMode::Chunked => {
                let part_size = self.settings.part_size.max(1);
                let reader = Arc::new(tokio::sync::Mutex::new(tokio_util::io::StreamReader::new(
                    body,
                )));
                let mut start = 0;
                while start < blob.size {
                    let len = part_size.min(blob.size - start);
                    let guard = reader.clone().lock_owned().await;
                    let part = tokio_util::io::ReaderStream::with_capacity(
                        tokio::io::AsyncReadExt::take(Part(guard), len),
                        self.settings.chunk,
                    )
                    .boxed();
                    location = self
                        .patch(&operation, &scope, &location, part, start, len)
                        .await?;
                    start += len;
                }
                // An empty blob (or a source shorter than its descriptor) still has to be checked.
                let mut rest =
                    tokio_util::io::ReaderStream::new(Part(reader.clone().lock_owned().await));
                while let Some(chunk) = rest.next().await {
                    if let Err(err) = chunk {
                        return Err(corrupt_source(&err)
                            .map(RegistryError::from)
                            .unwrap_or_else(|| RegistryError::Transport {
                                registry: self.host.clone(),
                                operation: operation.clone(),
                                detail: err.to_string(),
                            }));
                    }
                }
            }
        }
        let separator = if location.contains('?') { '&' } else { '?' };
        let url = format!("{location}{separator}digest={}", blob.digest);
        let request = self
            .http
            .request(Method::PUT, &url)
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

    /// Sends `len` bytes at `start` of an upload session with PATCH and returns where the
    /// session continues. ECR answers `201` where the protocol says `202`; both are accepted.
    async fn patch(
        &self,
        operation: &str,
        scope: &str,
        location: &str,
        body: futures::stream::BoxStream<'static, std::io::Result<Bytes>>,
        start: u64,
        len: u64,
    ) -> Result<String, RegistryError> {
        let mut request = self
            .http
            .request(Method::PATCH, location)
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
        let response = self
            .expect(
                operation,
                response,
                &[
                    StatusCode::ACCEPTED,
                    StatusCode::CREATED,
                    StatusCode::NO_CONTENT,
                ],
            )
            .await?;
        Ok(response
            .headers()
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(|l| self.resolve_location(l))
            .unwrap_or_else(|| location.to_owned()))
    }

    /// Pushes one blob unless the repository has it; mounts it from `mount_from` when given.
    pub async fn push_blob(
        &self,
        repository: &str,
        blob: &Descriptor,
        source: &BlobSource<'_>,
        mount_from: Option<&str>,
        progress: &Progress<'_>,
    ) -> Result<BlobAction, RegistryError> {
        if self.blob_exists(repository, &blob.digest).await? {
            return Ok(BlobAction::Skipped);
        }
        let mut pause = self.settings.backoff;
        let mut attempt = 1;
        let mut reauthenticated = false;
        loop {
            let result = match self
                .start_upload(repository, &blob.digest, mount_from)
                .await
            {
                Ok(None) => return Ok(BlobAction::Mounted),
                Ok(Some(location)) => {
                    self.upload_file(repository, blob, source, &location, progress)
                        .await
                }
                Err(err) => Err(err),
            };
            match result {
                Ok(()) => return Ok(BlobAction::Sent),
                Err(RegistryError::Status { status, .. })
                    if matches!(status, 405 | 413 | 501)
                        && self.settings.upload == UploadMode::Auto
                        && self.upload_mode() == UploadMode::Monolithic =>
                {
                    // The registry takes no blob in one PUT (or not one this large): stream it.
                    tracing::info!(
                        status,
                        registry = %self.host,
                        "monolithic upload refused; streaming with PATCH"
                    );
                    self.no_monolithic
                        .store(true, std::sync::atomic::Ordering::Relaxed);
                }
                Err(RegistryError::Status { status: 401, .. }) if !reauthenticated => {
                    // The token expired during the upload: start again with a fresh one.
                    self.forget_token(&push_scope(repository));
                    reauthenticated = true;
                }
                Err(err) if err.retryable() && attempt < self.settings.attempts => {
                    tracing::warn!(%err, attempt, "blob upload failed; retrying");
                    tokio::time::sleep(pause).await;
                    pause *= 2;
                    attempt += 1;
                }
                Err(err) => return Err(err),
            }
        }
    }

    /// The digest a tag (or digest) currently resolves to, if any.
    pub async fn manifest_digest(
        &self,
        repository: &str,
        reference: &str,
    ) -> Result<Option<Digest>, RegistryError> {
        let operation = format!("HEAD manifest {repository}:{reference}");
        let url = self.url(&format!("{repository}/manifests/{reference}"));
        let accept = MANIFEST_ACCEPT;
        let response = self
            .send(&operation, &pull_scope(repository), || {
                self.http.head(&url).header(header::ACCEPT, accept)
            })
            .await?;
        match response.status() {
            StatusCode::NOT_FOUND => Ok(None),
            StatusCode::OK => Ok(response
                .headers()
                .get("docker-content-digest")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok())),
            _ => self.expect(&operation, response, &[]).await.map(|_| None),
        }
    }

    /// Fetches a manifest or index: its media type and exact bytes (checked against `reference`
    /// when that is a digest).
    pub async fn get_manifest(
        &self,
        repository: &str,
        reference: &str,
    ) -> Result<(String, Vec<u8>), RegistryError> {
        let operation = format!("GET manifest {repository}:{reference}");
        let url = self.url(&format!("{repository}/manifests/{reference}"));
        let accept = MANIFEST_ACCEPT;
        let response = self
            .send(&operation, &pull_scope(repository), || {
                self.http.get(&url).header(header::ACCEPT, accept)
            })
            .await?;
        let response = self.expect(&operation, response, &[StatusCode::OK]).await?;
        let media_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let bytes = response
            .bytes()
            .await
            .map_err(|err| self.transport(&operation, &err))?
            .to_vec();
        if let Ok(digest) = reference.parse::<Digest>()
            && Digest::of(&bytes) != digest
        {
            return Err(RegistryError::Status {
                registry: self.host.clone(),
                operation,
                status: 200,
                body: format!("the manifest's bytes do not hash to {digest}"),
            });
        }
        Ok((media_type, bytes))
    }

    /// A blob's bytes as a stream (redirects to storage are followed).
    pub async fn blob_stream(
        &self,
        repository: &str,
        digest: &Digest,
    ) -> Result<futures::stream::BoxStream<'static, std::io::Result<Bytes>>, RegistryError> {
        let operation = format!("GET blob {digest} from {repository}");
        let url = self.url(&format!("{repository}/blobs/{digest}"));
        let response = self
            .send(&operation, &pull_scope(repository), || self.http.get(&url))
            .await?;
        let response = self.expect(&operation, response, &[StatusCode::OK]).await?;
        Ok(response
            .bytes_stream()
            .map_err(std::io::Error::other)
            .boxed())
    }

    /// Everything `repository:reference` consists of, read from this registry: every manifest
    /// (all platforms of an index) with its exact bytes, and the blob list.
    pub async fn remote_image(
        &self,
        repository: &str,
        reference: &str,
    ) -> Result<ImageContents, RegistryError> {
        let (media_type, bytes) = self.get_manifest(repository, reference).await?;
        let root = Descriptor {
            media_type,
            digest: Digest::of(&bytes),
            size: bytes.len() as u64,
            platform: None,
            annotations: Default::default(),
        };
        let mut contents = ImageContents {
            root: root.clone(),
            manifests: Vec::new(),
            blobs: Vec::new(),
        };
        let bad = |err: serde_json::Error| RegistryError::Status {
            registry: self.host.clone(),
            operation: format!("read manifest {repository}:{reference}"),
            status: 200,
            body: err.to_string(),
        };
        let mut pending = vec![(root, bytes)];
        if pending[0].0.is_index() {
            let index: crate::oci::Index = serde_json::from_slice(&pending[0].1).map_err(bad)?;
            for child in &index.manifests {
                let (_, child_bytes) = self.get_manifest(repository, child.digest.as_str()).await?;
                pending.insert(0, (child.clone(), child_bytes));
            }
        }
        for (descriptor, bytes) in pending {
            if !descriptor.is_index() {
                let manifest: crate::oci::Manifest = serde_json::from_slice(&bytes).map_err(bad)?;
                for blob in std::iter::once(&manifest.config).chain(&manifest.layers) {
                    if !contents.blobs.iter().any(|b| b.digest == blob.digest) {
                        contents.blobs.push(blob.clone());
                    }
                }
            }
            contents.manifests.push((descriptor, bytes));
        }
        Ok(contents)
    }

    /// Copies an image from `source` (another registry, or another repository of this one, in
    /// which case blobs are mounted, not sent) into `repository` under `tag`, blob by blob
    /// through memory, never to disk.
    pub async fn copy_image(
        &self,
        repository: &str,
        source: &Registry,
        source_repository: &str,
        contents: &ImageContents,
        tag: &str,
        progress: &Progress<'_>,
    ) -> Result<PushReport, RegistryError> {
        let mount = (source.base == self.base).then_some(source_repository);
        self.push_image(repository, contents, tag, progress, |_| {
            Ok((
                BlobSource::Remote {
                    registry: source,
                    repository: source_repository,
                },
                mount,
            ))
        })
        .await
    }

    /// Puts a manifest under `reference` (a tag or its digest) and returns its digest.
    pub async fn put_manifest(
        &self,
        repository: &str,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<Digest, RegistryError> {
        let operation = format!("PUT manifest {repository}:{reference}");
        let url = self.url(&format!("{repository}/manifests/{reference}"));
        let body = bytes.to_vec();
        let response = self
            .send(&operation, &push_scope(repository), || {
                self.http
                    .put(&url)
                    .header(header::CONTENT_TYPE, media_type)
                    .body(body.clone())
            })
            .await?;
        self.expect(&operation, response, &[StatusCode::CREATED, StatusCode::OK])
            .await?;
        Ok(Digest::of(bytes))
    }

    /// Pushes an image from a local blob store (layout or archive): verified blobs (several at once), then every manifest by
    /// digest, children first, and finally the root under `tag`. Nothing is tagged unless every
    /// blob arrived intact.
    pub async fn push_layout(
        &self,
        repository: &str,
        store: &dyn BlobStore,
        contents: &ImageContents,
        tag: &str,
        progress: &Progress<'_>,
    ) -> Result<PushReport, RegistryError> {
        self.push_image(repository, contents, tag, progress, |blob| {
            Ok((BlobSource::Local(store.locate(&blob.digest)?), None))
        })
        .await
    }

    /// Pushes every blob (several at once) from where `source` says, then the manifests.
    async fn push_image<'s, F>(
        &self,
        repository: &str,
        contents: &ImageContents,
        tag: &str,
        progress: &Progress<'_>,
        source: F,
    ) -> Result<PushReport, RegistryError>
    where
        F: Fn(&Descriptor) -> Result<(BlobSource<'s>, Option<&'s str>), RegistryError> + Sync,
    {
        let source = &source;
        // Collected first: a lazy `map` closure here makes the future lose `Send` (rust#110338).
        let pushes: Vec<_> = contents
            .blobs
            .iter()
            .map(|blob| self.push_listed(repository, blob, source, progress))
            .collect();
        let blobs: Vec<BlobReport> = futures::stream::iter(pushes)
            .buffer_unordered(self.settings.parallel_blobs.max(1))
            .try_collect()
            .await?;
        self.finish_push(repository, contents, tag, blobs).await
    }

    /// Pushes one blob of an image from where `source` says.
    async fn push_listed<'s, F>(
        &self,
        repository: &str,
        blob: &Descriptor,
        source: &F,
        progress: &Progress<'_>,
    ) -> Result<BlobReport, RegistryError>
    where
        F: Fn(&Descriptor) -> Result<(BlobSource<'s>, Option<&'s str>), RegistryError> + Sync,
    {
        let (from, mount) = source(blob)?;
        let action = self
            .push_blob(repository, blob, &from, mount, progress)
            .await?;
        Ok(BlobReport {
            digest: blob.digest.clone(),
            size: blob.size,
            action,
        })
    }

    /// Puts every manifest, children by digest first, the root under `tag` last.
    async fn finish_push(
        &self,
        repository: &str,
        contents: &ImageContents,
        tag: &str,
        blobs: Vec<BlobReport>,
    ) -> Result<PushReport, RegistryError> {
        for (descriptor, bytes) in &contents.manifests {
            let reference = if descriptor.digest == contents.root.digest {
                tag.to_owned()
            } else {
                descriptor.digest.to_string()
            };
            self.put_manifest(repository, &reference, &descriptor.media_type, bytes)
                .await?;
        }
        let bytes_sent = blobs
            .iter()
            .filter(|b| b.action == BlobAction::Sent)
            .map(|b| b.size)
            .sum();
        Ok(PushReport {
            reference: format!("{repository}@{}", contents.root.digest),
            digest: contents.root.digest.clone(),
            blobs,
            bytes_sent,
        })
    }
}

/// Where the bytes of a blob being pushed come from.
#[derive(Debug)]
pub enum BlobSource<'a> {
    /// A byte range of a local file.
    Local(BlobLocation),
    /// A repository of another (or the same) registry, streamed through without touching disk.
    Remote {
        /// The source registry.
        registry: &'a Registry,
        /// The source repository.
        repository: &'a str,
    },
}

/// Where upload progress goes.
#[derive(Clone)]
pub struct Progress<'a> {
    /// Artifact name for the events.
    pub artifact: &'a str,
    /// The receiver.
    pub reporter: Arc<dyn Reporter>,
}

impl std::fmt::Debug for Progress<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Progress")
            .field("artifact", &self.artifact)
            .finish_non_exhaustive()
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

/// Whether `host` is an Amazon ECR private registry (`<account>.dkr.ecr[-fips].<region>.amazonaws.com[.cn]`).
pub fn is_ecr_host(host: &str) -> bool {
    let host = host
        .split(':')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    let host = host
        .strip_suffix(".amazonaws.com")
        .or_else(|| host.strip_suffix(".amazonaws.com.cn"));
    let Some(host) = host else { return false };
    let labels: Vec<&str> = host.split('.').collect();
    matches!(
        labels.as_slice(),
        [account, "dkr", "ecr" | "ecr-fips", region]
            if account.len() == 12
                && account.bytes().all(|b| b.is_ascii_digit())
                && !region.is_empty()
    )
}

/// ECR's rule for chunked uploads: every part but the last at least 5 MiB, none over 20 MiB.
pub const ECR_PART_SIZE: std::ops::RangeInclusive<u64> = 5 * 1024 * 1024..=20 * 1024 * 1024;

/// Every manifest media type this client reads.
const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, \
     application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json";

fn pull_scope(repository: &str) -> String {
    format!("repository:{repository}:pull")
}

fn push_scope(repository: &str) -> String {
    format!("repository:{repository}:pull,push")
}

fn parse_challenge(header: &str) -> Option<Challenge> {
    let (scheme, params) = header.split_once(' ').unwrap_or((header, ""));
    if scheme.eq_ignore_ascii_case("basic") {
        return Some(Challenge::Basic);
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let mut realm = None;
    let mut service = None;
    for part in params.split(',') {
        let Some((key, value)) = part.trim().split_once('=') else {
            continue;
        };
        let value = value.trim_matches('"').to_owned();
        match key {
            "realm" => realm = Some(value),
            "service" => service = Some(value),
            _ => {}
        }
    }
    Some(Challenge::Bearer {
        realm: realm?,
        service,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_parse() {
        match parse_challenge(
            r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a:pull""#,
        ) {
            Some(Challenge::Bearer { realm, service }) => {
                assert_eq!(realm, "https://auth.example/token");
                assert_eq!(service.as_deref(), Some("registry.example"));
            }
            _ => panic!("expected a bearer challenge"),
        }
        assert!(matches!(
            parse_challenge(r#"Basic realm="ecr""#),
            Some(Challenge::Basic)
        ));
        assert!(parse_challenge("Negotiate").is_none());
    }

    #[test]
    fn stored_logins_are_found_by_host() {
        let dir = std::env::temp_dir().join(format!("deploy-auth-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let file = dir.join("config.json");
        let auth = aws_smithy_types::base64::encode("ci:s3cret");
        std::fs::write(
            &file,
            format!(r#"{{"auths":{{"https://registry.example:5000/v1/":{{"auth":"{auth}"}},"other.example":{{}}}}}}"#),
        )
        .expect("write");
        let found = Credentials::from_auth_file(&file, "registry.example:5000").expect("found");
        assert_eq!(
            (found.username.as_str(), found.password.as_str()),
            ("ci", "s3cret")
        );
        assert!(Credentials::from_auth_file(&file, "other.example").is_none());
        assert!(Credentials::from_auth_file(&file, "registry.example").is_none());
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn ecr_hosts_are_recognized() {
        assert!(is_ecr_host("123456789012.dkr.ecr.eu-west-1.amazonaws.com"));
        assert!(is_ecr_host(
            "123456789012.dkr.ecr-fips.us-east-1.amazonaws.com:443"
        ));
        assert!(is_ecr_host(
            "123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn"
        ));
        assert!(!is_ecr_host("public.ecr.aws"));
        assert!(!is_ecr_host("127.0.0.1:5000"));
        assert!(!is_ecr_host("12345.dkr.ecr.eu-west-1.amazonaws.com"));
    }

    #[test]
    fn ecr_part_sizes_are_enforced() {
        let settings = RegistrySettings {
            upload: UploadMode::Chunked,
            part_size: 1024 * 1024,
            ..RegistrySettings::default()
        };
        let err = Registry::new(
            "https://123456789012.dkr.ecr.eu-west-1.amazonaws.com",
            None,
            settings.clone(),
        )
        .expect_err("1 MiB parts are too small for ECR");
        assert!(err.to_string().contains("5 MiB to 20 MiB"), "{err}");
        // Other registries take any part size.
        let local = Registry::new("127.0.0.1:5000", None, settings).expect("any size");
        assert_eq!(local.upload_mode(), UploadMode::Chunked);
        let ecr = Registry::new(
            "123456789012.dkr.ecr.eu-west-1.amazonaws.com",
            None,
            RegistrySettings::default(),
        )
        .expect("defaults");
        assert_eq!(ecr.upload_mode(), UploadMode::Streamed);
    }

    #[test]
    fn credentials_are_never_printed() {
        let c = Credentials {
            username: "AWS".into(),
            password: "s3cr3t".into(),
        };
        assert!(!format!("{c:?}").contains("s3cr3t"));
    }
}

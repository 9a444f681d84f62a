//! A client of the OCI distribution protocol, enough to push images: blob existence checks,
//! cross-repository mounts, streamed uploads verified against their digest, and manifests.
//!
//! Authentication follows the registry's challenge: anonymous first; on `401` with
//! `WWW-Authenticate: Basic` the configured credentials are sent; with `Bearer` a token is
//! fetched from the realm for the requested scope (with the credentials, if any) and cached per
//! scope. ECR uses basic credentials from `GetAuthorizationToken`.
//!
//! Every request goes through one retry loop (`retry`): broken connections, timeouts, `5xx` and
//! `429` are tried again with backoff, a refused token is renewed once. Repository names, tags
//! and digests are checked against the distribution grammar before any request (`names`), and
//! credentials in a registry URL (`http://user:pass@host`) are taken out of it, used, and never
//! printed.

mod auth;
mod blob;
mod error;
mod manifest;
mod names;
mod retry;
pub mod source;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use reqwest::Url;
use serde::Serialize;

pub use auth::Credentials;
pub use error::{RegistryError, redact};
pub use names::{valid_repository, valid_tag};

use crate::events::Reporter;
use crate::oci::{Descriptor, Digest};
use source::{BlobLocation, BlobStore, ImageContents};

/// Tuning of pushes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrySettings {
    /// Blobs uploaded at the same time. Default 6.
    pub parallel_blobs: usize,
    /// Attempts per registry request (and per blob upload) when the registry fails (5xx, 429,
    /// reset connections, timeouts). Default 6.
    pub attempts: u32,
    /// First pause between attempts (doubles, with jitter, up to 4 s). Default 250 ms.
    pub backoff: Duration,
    /// Read buffer for streaming blobs. Default 256 KiB.
    pub chunk: usize,
    /// How blob bytes are sent. Default [`UploadMode::Auto`].
    pub upload: UploadMode,
    /// Part size of [`UploadMode::Chunked`] uploads. Default 10 MiB; ECR takes 5 to 20 MiB.
    pub part_size: u64,
    /// Upper bound of one request that carries no blob bytes (existence checks, manifests,
    /// upload starts, tokens); one that takes longer is retried like a broken connection.
    /// Default 60 seconds.
    pub timeout: Duration,
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
            attempts: 6,
            backoff: Duration::from_millis(250),
            chunk: 256 * 1024,
            upload: UploadMode::Auto,
            part_size: 10 * 1024 * 1024,
            timeout: Duration::from_secs(60),
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

/// A client of one registry.
#[derive(Clone)]
pub struct Registry {
    http: reqwest::Client,
    /// The registry's URL, without credentials.
    base: Url,
    /// `host[:port]`, as in image references.
    host: String,
    credentials: Option<Credentials>,
    /// Bearer tokens by scope.
    tokens: Arc<Mutex<HashMap<String, String>>>,
    settings: RegistrySettings,
    /// Set when, in [`UploadMode::Auto`], the registry refused a monolithic upload: later
    /// uploads stream with `PATCH` instead.
    no_monolithic: Arc<std::sync::atomic::AtomicBool>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Tokens are secrets; the credentials print their user name only.
        f.debug_struct("Registry")
            .field("base", &self.base.as_str())
            .field("credentials", &self.credentials)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Registry {
    /// A client of the registry at `base` (`http://host:port`, `https://host`, or a bare host:
    /// https, except loopback hosts). Credentials in `base` (`https://user:pass@host`) are used
    /// when `credentials` is `None`, and are never printed.
    pub fn new(
        base: &str,
        credentials: Option<Credentials>,
        settings: RegistrySettings,
    ) -> Result<Registry, RegistryError> {
        let (base, in_url) = parse_base(base)?;
        let host = match base.port() {
            Some(port) => format!("{}:{port}", base.host_str().unwrap_or_default()),
            None => base.host_str().unwrap_or_default().to_owned(),
        };
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
                detail: "the HTTP client could not be built".into(),
                source: Box::new(err),
            })?;
        Ok(Registry {
            http,
            base,
            host,
            credentials: credentials.or(in_url),
            tokens: Arc::default(),
            settings,
            no_monolithic: Arc::default(),
        })
    }

    /// The registry host (with port), as used in image references.
    pub fn host(&self) -> &str {
        &self.host
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

    /// A request that got no answer, as an error: what happened in a few words, the HTTP
    /// client's error (without its URL) as the source.
    fn transport(&self, operation: &str, err: reqwest::Error) -> RegistryError {
        let detail = if err.is_timeout() {
            "timed out"
        } else if err.is_connect() {
            "could not connect"
        } else {
            "the connection broke"
        };
        RegistryError::Transport {
            registry: self.host.clone(),
            operation: operation.to_owned(),
            detail: detail.into(),
            source: Box::new(err.without_url()),
        }
    }

    /// `request` bounded by the settings' timeout (for requests that carry no blob).
    fn bounded(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        request.timeout(self.settings.timeout)
    }

    /// `response` if its status is one of `ok`, else the registry's answer as an error.
    async fn expect(
        &self,
        operation: &str,
        response: reqwest::Response,
        ok: &[reqwest::StatusCode],
    ) -> Result<reqwest::Response, RegistryError> {
        if ok.contains(&response.status()) {
            return Ok(response);
        }
        Err(self.status_error(operation, response).await)
    }

    /// The registry's unexpected answer: its status and the start of its body.
    async fn status_error(&self, operation: &str, response: reqwest::Response) -> RegistryError {
        let status = response.status().as_u16();
        let body: String = response
            .text()
            .await
            .unwrap_or_default()
            .chars()
            .take(300)
            .collect();
        RegistryError::Status {
            registry: self.host.clone(),
            operation: operation.to_owned(),
            status,
            body: redact(&body),
        }
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
        let mount = (source.base.origin() == self.base.origin()).then_some(source_repository);
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
        // Refused before anything is sent, not after every blob went up.
        self.repository(repository)?;
        self.tag(tag)?;
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

/// The registry URL of `base` without credentials, and the credentials it carried. A bare
/// host is spoken to over HTTPS, except loopback hosts (over HTTP, as Docker does).
fn parse_base(base: &str) -> Result<(Url, Option<Credentials>), RegistryError> {
    let base = base.trim_end_matches('/');
    let with_scheme = if base.starts_with("http://") || base.starts_with("https://") {
        base.to_owned()
    } else {
        let host = base.rsplit_once('@').map_or(base, |(_, host)| host);
        let loopback = ["localhost", "127.", "[::1]"]
            .iter()
            .any(|prefix| host.starts_with(prefix));
        format!("{}://{base}", if loopback { "http" } else { "https" })
    };
    let mut url = Url::parse(&with_scheme)
        .ok()
        .filter(|url| url.host_str().is_some_and(|h| !h.is_empty()))
        .ok_or_else(|| RegistryError::Settings {
            registry: error::redact_authority(base),
            detail: "not a registry address (expected host[:port] or http(s)://host[:port])".into(),
        })?;
    let credentials = (!url.username().is_empty()).then(|| Credentials {
        username: percent_decode(url.username()),
        password: url.password().map(percent_decode).unwrap_or_default(),
    });
    let _ = url.set_username("");
    let _ = url.set_password(None);
    Ok((url, credentials))
}

/// `%XX` escapes of a URL's userinfo decoded.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| text.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn credentials_in_the_address_are_used_and_never_printed() {
        let r = Registry::new(
            "http://ci:p%40ss@127.0.0.1:5000/",
            None,
            RegistrySettings::default(),
        )
        .expect("client");
        assert_eq!(r.host(), "127.0.0.1:5000");
        assert_eq!(r.base.as_str(), "http://127.0.0.1:5000/");
        let c = r.credentials.as_ref().expect("credentials from the URL");
        assert_eq!((c.username.as_str(), c.password.as_str()), ("ci", "p@ss"));
        assert!(!format!("{r:?}").contains("p@ss"), "{r:?}");
        // A bare address with credentials: loopback stays plain HTTP.
        let bare = Registry::new("ci:pass@localhost:5000", None, RegistrySettings::default())
            .expect("client");
        assert_eq!(bare.base.as_str(), "http://localhost:5000/");
        let given = Credentials {
            username: "AWS".into(),
            password: "token".into(),
        };
        let explicit = Registry::new(
            "https://u:p@registry.example",
            Some(given),
            RegistrySettings::default(),
        )
        .expect("client");
        assert_eq!(
            explicit.credentials.as_ref().map(|c| c.username.as_str()),
            Some("AWS")
        );
        let err = Registry::new("http://u:pass@", None, RegistrySettings::default())
            .expect_err("no host");
        assert!(!format!("{err} {err:?}").contains("pass"), "{err:?}");
    }
}

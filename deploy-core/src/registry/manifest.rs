//! Manifests: `HEAD` (what a tag resolves to), `GET` (exact bytes, checked against a digest
//! reference) and `PUT`.

use reqwest::{StatusCode, header};

use super::auth::{pull_scope, push_scope};
use super::names::Reference;
use super::{Registry, RegistryError};
use crate::oci::Digest;

/// Every manifest media type this client reads.
const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, \
     application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json";

impl Registry {
    /// The digest a tag (or digest) currently resolves to, if any.
    pub async fn manifest_digest(
        &self,
        repository: &str,
        reference: &str,
    ) -> Result<Option<Digest>, RegistryError> {
        let repository = self.repository(repository)?;
        let reference = self.reference(reference)?;
        let operation = format!("HEAD manifest {repository}:{}", reference.as_str());
        let url = self.endpoint(repository, &["manifests", reference.as_str()]);
        let scope = pull_scope(repository);
        self.retrying(&operation, &scope, |_| async {
            let response = self
                .send(&operation, &scope, || {
                    self.bounded(self.http.head(url.clone()))
                        .header(header::ACCEPT, MANIFEST_ACCEPT)
                })
                .await?;
            match response.status() {
                StatusCode::NOT_FOUND => Ok(None),
                StatusCode::OK => Ok(response
                    .headers()
                    .get("docker-content-digest")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse().ok())),
                _ => Err(self.status_error(&operation, response).await),
            }
        })
        .await
    }

    /// Fetches a manifest or index: its media type and exact bytes (checked against `reference`
    /// when that is a digest).
    pub async fn get_manifest(
        &self,
        repository: &str,
        reference: &str,
    ) -> Result<(String, Vec<u8>), RegistryError> {
        let repository = self.repository(repository)?;
        let reference = self.reference(reference)?;
        let operation = format!("GET manifest {repository}:{}", reference.as_str());
        let url = self.endpoint(repository, &["manifests", reference.as_str()]);
        let scope = pull_scope(repository);
        let (media_type, bytes) = self
            .retrying(&operation, &scope, |_| async {
                let response = self
                    .send(&operation, &scope, || {
                        self.bounded(self.http.get(url.clone()))
                            .header(header::ACCEPT, MANIFEST_ACCEPT)
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
                    .map_err(|err| self.transport(&operation, err))?;
                Ok((media_type, bytes.to_vec()))
            })
            .await?;
        if let Reference::Digest(digest) = &reference
            && Digest::of(&bytes) != *digest
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

    /// Puts a manifest under `reference` (a tag or its digest) and returns its digest.
    pub async fn put_manifest(
        &self,
        repository: &str,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<Digest, RegistryError> {
        let repository = self.repository(repository)?;
        let reference = self.reference(reference)?;
        let operation = format!("PUT manifest {repository}:{}", reference.as_str());
        let digest = Digest::of(bytes);
        if let Reference::Digest(expected) = &reference
            && *expected != digest
        {
            return Err(self.invalid_put(&operation, &digest));
        }
        let url = self.endpoint(repository, &["manifests", reference.as_str()]);
        let scope = push_scope(repository);
        let body = bytes::Bytes::copy_from_slice(bytes);
        self.retrying(&operation, &scope, |_| async {
            let response = self
                .send(&operation, &scope, || {
                    self.bounded(self.http.put(url.clone()))
                        .header(header::CONTENT_TYPE, media_type)
                        .body(body.clone())
                })
                .await?;
            self.expect(&operation, response, &[StatusCode::CREATED, StatusCode::OK])
                .await
                .map(drop)
        })
        .await?;
        Ok(digest)
    }

    fn invalid_put(&self, operation: &str, digest: &Digest) -> RegistryError {
        RegistryError::Settings {
            registry: self.host.clone(),
            detail: format!(
                "{operation}: the manifest's bytes hash to {digest}, not to the digest it is put under"
            ),
        }
    }
}

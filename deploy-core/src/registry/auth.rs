//! Authentication: stored logins, the registry's challenge (basic credentials or bearer
//! tokens from its realm, cached per scope), and one authenticated request.

use reqwest::{StatusCode, header};

use super::{Registry, RegistryError};

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

/// What a `401` asks for.
#[derive(Debug)]
pub(super) enum Challenge {
    /// Username and password on every request.
    Basic,
    /// A token from `realm`, per scope.
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

pub(super) fn parse_challenge(header: &str) -> Option<Challenge> {
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

pub(super) fn pull_scope(repository: &str) -> String {
    format!("repository:{repository}:pull")
}

pub(super) fn push_scope(repository: &str) -> String {
    format!("repository:{repository}:pull,push")
}

impl Registry {
    /// Sends one request built by `build` with the credentials of `scope`; a `401` with a bearer
    /// challenge trades them for a fresh token and sends it again, once. Failures come back
    /// as errors for the retry loop to judge.
    pub(super) async fn send(
        &self,
        operation: &str,
        scope: &str,
        build: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, RegistryError> {
        let response = self
            .authorize(build(), scope)
            .send()
            .await
            .map_err(|err| self.transport(operation, err))?;
        if response.status() != StatusCode::UNAUTHORIZED {
            return Ok(response);
        }
        let challenge = response
            .headers()
            .get(header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_challenge);
        let Some(Challenge::Bearer { realm, service }) = challenge else {
            return Err(self.unauthorized(
                operation,
                if self.credentials.is_some() {
                    "the credentials were refused"
                } else {
                    "the registry needs credentials and none were given"
                },
            ));
        };
        self.forget_token(scope);
        let token = self
            .token(operation, &realm, service.as_deref(), scope)
            .await?;
        let response = build()
            .bearer_auth(token)
            .send()
            .await
            .map_err(|err| self.transport(operation, err))?;
        if response.status() == StatusCode::UNAUTHORIZED {
            return Err(self.unauthorized(operation, "the credentials were refused"));
        }
        Ok(response)
    }

    fn unauthorized(&self, operation: &str, detail: &str) -> RegistryError {
        RegistryError::Unauthorized {
            registry: self.host.clone(),
            operation: operation.to_owned(),
            detail: detail.to_owned(),
        }
    }

    /// A token for `scope` from the registry's token service, cached.
    async fn token(
        &self,
        operation: &str,
        realm: &str,
        service: Option<&str>,
        scope: &str,
    ) -> Result<String, RegistryError> {
        let mut request = self
            .bounded(self.http.get(realm))
            .query(&[("scope", scope)]);
        if let Some(service) = service {
            request = request.query(&[("service", service)]);
        }
        if let Some(c) = &self.credentials {
            request = request.basic_auth(&c.username, Some(&c.password));
        }
        let operation = format!("{operation} (token request)");
        let response = request
            .send()
            .await
            .map_err(|err| self.transport(&operation, err))?;
        let status = response.status();
        if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
            return Err(self.status_error(&operation, response).await);
        }
        if !status.is_success() {
            return Err(
                self.unauthorized(&operation, &format!("the token service answered {status}"))
            );
        }
        let body: serde_json::Value = response
            .json()
            .await
            .map_err(|err| self.transport(&operation, err))?;
        let token = body["token"]
            .as_str()
            .or_else(|| body["access_token"].as_str())
            .filter(|t| !t.is_empty())
            .ok_or_else(|| self.unauthorized(&operation, "the token service gave no token"))?
            .to_owned();
        if let Ok(mut tokens) = self.tokens.lock() {
            tokens.insert(scope.to_owned(), token.clone());
        }
        Ok(token)
    }

    /// Adds the credentials a request of `scope` needs: the cached token, else basic credentials.
    pub(super) fn authorize(
        &self,
        request: reqwest::RequestBuilder,
        scope: &str,
    ) -> reqwest::RequestBuilder {
        let token = self.tokens.lock().ok().and_then(|t| t.get(scope).cloned());
        match (token, &self.credentials) {
            (Some(token), _) => request.bearer_auth(token),
            (None, Some(c)) => request.basic_auth(&c.username, Some(&c.password)),
            (None, None) => request,
        }
    }

    /// Forgets the token of `scope` (the registry refused it: expired or revoked).
    pub(super) fn forget_token(&self, scope: &str) {
        if let Ok(mut tokens) = self.tokens.lock() {
            tokens.remove(scope);
        }
    }
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
            other => panic!("expected a bearer challenge, got {other:?}"),
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
    fn credentials_are_never_printed() {
        let c = Credentials {
            username: "AWS".into(),
            password: "s3cr3t".into(),
        };
        assert!(!format!("{c:?}").contains("s3cr3t"));
    }
}

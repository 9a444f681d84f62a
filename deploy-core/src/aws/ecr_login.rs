//! The login to an environment's ECR registry (`GetAuthorizationToken`), cached on the
//! clients until shortly before it expires.

use std::time::{Duration, SystemTime};

use super::AwsClients;
use crate::registry::{Credentials, redact};

/// A login to an ECR registry from `GetAuthorizationToken`.
#[derive(Clone)]
pub struct EcrLogin {
    /// Registry address (`endpoints.registry`, else `$DEPLOY_ENDPOINT_URL_REGISTRY`, else the
    /// proxy endpoint ECR reported).
    pub endpoint: String,
    /// `AWS` and the decoded token.
    pub credentials: Option<Credentials>,
    /// When ECR says the token expires.
    pub expires_at: Option<SystemTime>,
}

impl std::fmt::Debug for EcrLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // An endpoint may carry credentials of its own (`https://user:pass@host`).
        f.debug_struct("EcrLogin")
            .field("endpoint", &redact(&self.endpoint))
            .field("credentials", &self.credentials)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// Why the ECR login failed.
#[derive(Debug, thiserror::Error)]
pub enum EcrLoginError {
    /// `ecr:GetAuthorizationToken` failed.
    #[error("ecr:GetAuthorizationToken failed for environment `{environment}`: {source}")]
    Aws {
        /// Environment name.
        environment: String,
        /// The SDK's error (its code and message).
        #[source]
        source: Box<crate::aws::SdkFailure>,
    },
    /// ECR answered without a registry address and `endpoints.registry` is not set.
    #[error(
        "ecr:GetAuthorizationToken gave no registry endpoint for environment `{environment}`; set `endpoints.registry`"
    )]
    NoEndpoint {
        /// Environment name.
        environment: String,
    },
}

/// The environment variable naming the OCI registry when `endpoints.registry` is not set (as
/// `AWS_ENDPOINT_URL_<SERVICE>` names the others): what `. .emulators/env` sets.
pub const REGISTRY_ENV: &str = "DEPLOY_ENDPOINT_URL_REGISTRY";

/// The registry address `$DEPLOY_ENDPOINT_URL_REGISTRY` gives, if set (the image kind checks
/// it like `endpoints.registry` before the lock).
pub fn registry_from_env() -> Option<String> {
    std::env::var(REGISTRY_ENV)
        .ok()
        .filter(|v| !v.trim().is_empty())
}

/// A login is reused until this long before it expires.
const LOGIN_MARGIN: Duration = Duration::from_secs(5 * 60);

impl EcrLogin {
    fn fresh(&self) -> bool {
        self.expires_at.is_none_or(|at| {
            at.duration_since(SystemTime::now())
                .is_ok_and(|left| left > LOGIN_MARGIN)
        })
    }
}

/// The environment's ECR login: cached on the clients and reused until shortly before ECR says
/// it expires, so publishing several artifacts asks for one token.
pub async fn ecr_login(clients: &AwsClients) -> Result<EcrLogin, EcrLoginError> {
    let mut cached = clients.ecr_login.lock().await;
    if let Some(login) = cached.as_ref().filter(|l| l.fresh()) {
        return Ok(login.clone());
    }
    let environment = &clients.target.environment;
    let out = clients
        .ecr()
        .get_authorization_token()
        .send()
        .await
        .map_err(|err| EcrLoginError::Aws {
            environment: environment.clone(),
            source: Box::new(crate::aws::SdkFailure::new(err)),
        })?;
    let data = out.authorization_data().first();
    let token = data
        .and_then(|d| d.authorization_token())
        .unwrap_or_default();
    let decoded = aws_smithy_types::base64::decode(token)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .unwrap_or_default();
    let credentials = decoded
        .split_once(':')
        .map(|(username, password)| Credentials {
            username: username.to_owned(),
            password: password.to_owned(),
        });
    let endpoint = clients
        .target
        .endpoints
        .registry
        .clone()
        .or_else(registry_from_env)
        .or_else(|| data.and_then(|d| d.proxy_endpoint()).map(str::to_owned))
        .ok_or_else(|| EcrLoginError::NoEndpoint {
            environment: environment.clone(),
        })?;
    let expires_at = data
        .and_then(|d| d.expires_at())
        .and_then(|t| SystemTime::try_from(*t).ok());
    let login = EcrLogin {
        endpoint,
        credentials,
        expires_at,
    };
    *cached = Some(login.clone());
    Ok(login)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_ecr::operation::get_authorization_token::GetAuthorizationTokenOutput;
    use aws_sdk_ecr::types::AuthorizationData;
    use aws_smithy_mocks::{RuleMode, mock, mock_client};
    use aws_smithy_types::DateTime;

    fn clients(ecr: aws_sdk_ecr::Client) -> AwsClients {
        let target = crate::target::Target::for_tests("dev");
        let sdk = aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .build();
        AwsClients::from_sdk_config(&target, &sdk).with_ecr(ecr)
    }

    fn token(expires_in: i64) -> GetAuthorizationTokenOutput {
        let now = DateTime::from(SystemTime::now()).secs();
        GetAuthorizationTokenOutput::builder()
            .authorization_data(
                AuthorizationData::builder()
                    .authorization_token(aws_smithy_types::base64::encode("AWS:secret"))
                    .proxy_endpoint("https://123456789012.dkr.ecr.eu-west-1.amazonaws.com")
                    .expires_at(DateTime::from_secs(now + expires_in))
                    .build(),
            )
            .build()
    }

    #[tokio::test]
    async fn the_login_is_reused_until_it_nearly_expires() {
        let rule =
            mock!(aws_sdk_ecr::Client::get_authorization_token).then_output(|| token(12 * 3600));
        let clients = clients(mock_client!(aws_sdk_ecr, RuleMode::MatchAny, [&rule]));
        for _ in 0..3 {
            let login = ecr_login(&clients).await.expect("login");
            assert_eq!(
                login.endpoint,
                "https://123456789012.dkr.ecr.eu-west-1.amazonaws.com"
            );
            let credentials = login.credentials.expect("credentials");
            assert_eq!(
                (credentials.username.as_str(), credentials.password.as_str()),
                ("AWS", "secret")
            );
        }
        assert_eq!(rule.num_calls(), 1);
    }

    #[tokio::test]
    async fn an_expiring_login_is_renewed() {
        let rule = mock!(aws_sdk_ecr::Client::get_authorization_token).then_output(|| token(60));
        let clients = clients(mock_client!(aws_sdk_ecr, RuleMode::MatchAny, [&rule]));
        ecr_login(&clients).await.expect("login");
        ecr_login(&clients).await.expect("login");
        assert_eq!(rule.num_calls(), 2);
    }

    #[test]
    fn a_login_prints_no_secret() {
        let login = EcrLogin {
            endpoint: "http://user:hunter2@127.0.0.1:5000".into(),
            credentials: Some(Credentials {
                username: "AWS".into(),
                password: "token-secret".into(),
            }),
            expires_at: None,
        };
        let text = format!("{login:?}");
        assert!(
            !text.contains("hunter2") && !text.contains("token-secret"),
            "{text}"
        );
        assert!(text.contains("http://***@127.0.0.1:5000"), "{text}");
    }
}

//! AWS clients for one environment, built once from `aws_config`, and the account check that
//! runs before any change.

#[cfg(feature = "image")]
pub(crate) mod ecr_login;
mod sdk_error;

pub use sdk_error::SdkFailure;
use sdk_error::short;

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_smithy_types::error::display::DisplayErrorContext;

use crate::target::{AccountId, Target};

/// Retry and timeout settings for every AWS request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsSettings {
    /// Attempts per request, standard retry mode (exponential backoff with jitter). Default 3.
    pub retry_max_attempts: u32,
    /// Time to establish a connection. Default 5 seconds.
    pub connect_timeout: Duration,
    /// Upper bound of one operation, retries included. Default 60 seconds.
    pub operation_timeout: Duration,
}

impl Default for AwsSettings {
    fn default() -> Self {
        AwsSettings {
            retry_max_attempts: 3,
            connect_timeout: Duration::from_secs(5),
            operation_timeout: Duration::from_secs(60),
        }
    }
}

/// The identity the credentials resolve to (STS `GetCallerIdentity`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CallerIdentity {
    /// Account the credentials belong to.
    pub account: String,
    /// ARN of the principal.
    pub arn: String,
}

/// Why an environment's AWS side could not be reached or is not the one configured.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// The credentials belong to another account than the environment's `account`.
    #[error(
        "environment `{environment}` is account {expected}, but the credentials are for account {actual} ({arn}); \
         nothing was changed. Use credentials for {expected} (profile, role_arn or AWS_* variables)"
    )]
    AccountMismatch {
        /// Environment name.
        environment: String,
        /// The configured account.
        expected: AccountId,
        /// The account the credentials belong to.
        actual: String,
        /// The caller's ARN.
        arn: String,
    },
    /// No credentials could be found or loaded.
    #[error(
        "no usable AWS credentials for environment `{environment}`: {detail}. \
         Set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or `profile` in deploy.toml, \
         or run in CI with an OIDC role"
    )]
    Credentials {
        /// Environment name.
        environment: String,
        /// What the credential chain reported.
        detail: String,
        /// The SDK's error, when there was one.
        #[source]
        source: Option<SdkFailure>,
    },
    /// The endpoint did not answer.
    #[error(
        "cannot reach AWS for environment `{environment}` ({operation}): {detail}. \
         Check the network, the region, and any endpoint override (AWS_ENDPOINT_URL, `endpoints` in deploy.toml)"
    )]
    Unreachable {
        /// Environment name.
        environment: String,
        /// The AWS operation attempted.
        operation: &'static str,
        /// What failed.
        detail: String,
        /// The SDK's error.
        #[source]
        source: SdkFailure,
    },
    /// AWS answered with an error.
    #[error("{operation} failed for environment `{environment}`: {detail}")]
    Aws {
        /// Environment name.
        environment: String,
        /// The AWS operation attempted.
        operation: &'static str,
        /// The service's error code and message.
        detail: String,
        /// The SDK's error.
        #[source]
        source: SdkFailure,
    },
}

impl crate::error::Classify for TargetError {
    fn class(&self) -> crate::error::ErrorClass {
        crate::error::ErrorClass::Failure
    }
}

impl TargetError {
    /// Classifies an SDK error of `operation` into a target error with a useful hint, keeping
    /// the SDK error as the source.
    pub fn from_sdk<E>(
        environment: &str,
        operation: &'static str,
        err: aws_smithy_runtime_api::client::result::SdkError<
            E,
            aws_smithy_runtime_api::client::orchestrator::HttpResponse,
        >,
    ) -> TargetError
    where
        E: aws_smithy_types::error::metadata::ProvideErrorMetadata
            + std::error::Error
            + Send
            + Sync
            + 'static,
    {
        use aws_smithy_runtime_api::client::result::SdkError;
        let chain = DisplayErrorContext(&err).to_string();
        let environment = environment.to_owned();
        let credentials = chain.contains("credential") || chain.contains("profile");
        let unreachable = match &err {
            SdkError::DispatchFailure(failure) => failure.is_io() || failure.is_timeout(),
            SdkError::TimeoutError(_) => true,
            _ => false,
        };
        let service = matches!(err, SdkError::ServiceError(_));
        let source = SdkFailure::new(err);
        if service {
            return TargetError::Aws {
                environment,
                operation,
                detail: source.to_string(),
                source,
            };
        }
        if credentials && !unreachable {
            let detail = if chain.contains("no credentials found") {
                "no source provided any (environment variables, shared config and credentials \
                 files, SSO, web identity, container and instance metadata were tried)"
                    .to_owned()
            } else {
                short(&chain)
            };
            return TargetError::Credentials {
                environment,
                detail,
                source: Some(source),
            };
        }
        TargetError::Unreachable {
            environment,
            operation,
            detail: short(&chain),
            source,
        }
    }
}

/// A client of `$krate` from `$sdk_config`, at `$endpoint` when one is given.
macro_rules! sdk_client {
    ($krate:ident, $sdk_config:expr, $endpoint:expr) => {{
        let mut builder = $krate::config::Builder::from($sdk_config);
        if let Some(url) = $endpoint {
            builder = builder.endpoint_url(url);
        }
        $krate::Client::from_conf(builder.build())
    }};
}

/// The clients built on first use, each behind the features of the kinds that use it, with
/// an accessor on [`AwsClients`].
macro_rules! lazy_clients {
    ($( #[cfg($($pred:tt)*)] $name:ident / $with:ident: $krate:ident, $endpoint:expr, $doc:literal; )*) => {
        /// The clients built on first use.
        #[derive(Debug, Default, Clone)]
        struct Lazy {
            $( #[cfg($($pred)*)] $name: std::sync::OnceLock<$krate::Client>, )*
        }

        impl AwsClients {
            $(
                #[doc = $doc]
                #[cfg($($pred)*)]
                pub fn $name(&self) -> &$krate::Client {
                    let endpoint: fn(&crate::target::Endpoints) -> Option<&String> = $endpoint;
                    self.lazy.$name.get_or_init(|| {
                        sdk_client!($krate, &self.sdk_config, endpoint(&self.target.endpoints))
                    })
                }

                /// Uses `client` instead of building one (tests, embedders with their own
                /// set-up).
                #[cfg($($pred)*)]
                pub fn $with(mut self, client: $krate::Client) -> AwsClients {
                    self.lazy.$name = std::sync::OnceLock::from(client);
                    self
                }
            )*
        }
    };
}

lazy_clients! {
    #[cfg(feature = "image")] ecr / with_ecr: aws_sdk_ecr, |e| e.ecr.as_ref(), "ECR.";
    #[cfg(feature = "image")] ecs / with_ecs: aws_sdk_ecs, |e| e.ecs.as_ref(), "ECS.";
    #[cfg(feature = "image")] codedeploy / with_codedeploy: aws_sdk_codedeploy, |e| e.codedeploy.as_ref(), "CodeDeploy.";
    #[cfg(feature = "image")] ssm / with_ssm: aws_sdk_ssm, |_| None, "SSM (parameter names, never values).";
    #[cfg(feature = "image")] secretsmanager / with_secretsmanager: aws_sdk_secretsmanager, |_| None,
        "Secrets Manager (secret metadata, never values).";
    #[cfg(feature = "image")] iam / with_iam: aws_sdk_iam, |_| None, "IAM.";
    #[cfg(feature = "image")] logs / with_logs: aws_sdk_cloudwatchlogs, |_| None, "CloudWatch Logs.";
    #[cfg(feature = "image")] events / with_events: aws_sdk_eventbridge, |_| None,
        "EventBridge (rules and their targets).";
    #[cfg(feature = "image")] scheduler / with_scheduler: aws_sdk_scheduler, |_| None, "EventBridge Scheduler.";
    #[cfg(any(feature = "image", feature = "lambda"))] lambda / with_lambda: aws_sdk_lambda, |e| e.lambda.as_ref(), "Lambda.";
    #[cfg(any(feature = "image", feature = "lambda"))] cloudwatch / with_cloudwatch: aws_sdk_cloudwatch, |_| None,
        "CloudWatch (alarms and metrics).";
}

/// One client per AWS service for one environment, sharing one `SdkConfig`. STS and S3 (the
/// account check, the ledger, the lock) are built at once; the clients of the kinds' own
/// services are built the first time a step asks for one, and exist only in builds with a kind
/// that uses them (cargo features `image`, `lambda`).
#[derive(Debug, Clone)]
pub struct AwsClients {
    /// The environment these clients talk to.
    pub target: Target,
    /// The shared configuration (region, credentials, retries, timeouts).
    pub sdk_config: SdkConfig,
    /// STS.
    pub sts: aws_sdk_sts::Client,
    /// S3 (path-style when an endpoint is overridden).
    pub s3: aws_sdk_s3::Client,
    /// The clients of the kinds' own services, each built the first time it is used.
    lazy: Lazy,
    /// The ECR registry login, shared by every publish of these clients until it expires.
    #[cfg(feature = "image")]
    pub(crate) ecr_login: std::sync::Arc<tokio::sync::Mutex<Option<ecr_login::EcrLogin>>>,
}

impl AwsClients {
    /// Loads credentials and settings the standard way (environment, profile, SSO, web identity,
    /// IMDS), applies the target's region, profile, assumed role and endpoints, and builds every
    /// client. No request is sent until a client is used.
    pub async fn connect(target: &Target, settings: &AwsSettings) -> AwsClients {
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(target.region.clone()))
            .retry_config(RetryConfig::standard().with_max_attempts(settings.retry_max_attempts))
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(settings.connect_timeout)
                    .operation_timeout(settings.operation_timeout)
                    .build(),
            );
        if let Some(profile) = &target.profile {
            loader = loader.profile_name(profile);
        }
        let base = loader.load().await;
        let sdk_config = match &target.role_arn {
            None => base,
            Some(role_arn) => {
                // Only the role assumption talks to STS; `endpoints.sts` is not a default for
                // the other services.
                let sts = match &target.endpoints.sts {
                    Some(url) => base.clone().into_builder().endpoint_url(url).build(),
                    None => base.clone(),
                };
                let provider = aws_config::sts::AssumeRoleProvider::builder(role_arn)
                    .session_name(format!("deploy-{}-{}", target.project, target.environment))
                    .configure(&sts)
                    .build()
                    .await;
                base.into_builder()
                    .credentials_provider(
                        aws_credential_types::provider::SharedCredentialsProvider::new(provider),
                    )
                    .build()
            }
        };
        AwsClients::from_sdk_config(target, &sdk_config)
    }

    /// Builds the clients from an existing `SdkConfig` (tests, embedders with their own set-up).
    pub fn from_sdk_config(target: &Target, sdk_config: &SdkConfig) -> AwsClients {
        let ep = &target.endpoints;
        let s3_custom = ep.s3.is_some()
            || sdk_config.endpoint_url().is_some()
            || std::env::var_os("AWS_ENDPOINT_URL_S3").is_some();
        let mut s3 = aws_sdk_s3::config::Builder::from(sdk_config).force_path_style(s3_custom);
        if let Some(url) = &ep.s3 {
            s3 = s3.endpoint_url(url);
        }
        AwsClients {
            target: target.clone(),
            sdk_config: sdk_config.clone(),
            sts: sdk_client!(aws_sdk_sts, sdk_config, ep.sts.as_ref()),
            s3: aws_sdk_s3::Client::from_conf(s3.build()),
            lazy: Lazy::default(),
            #[cfg(feature = "image")]
            ecr_login: Default::default(),
        }
    }

    /// Asks STS who the credentials are and fails unless they belong to the target's account.
    pub async fn verify_account(&self) -> Result<CallerIdentity, TargetError> {
        let env = &self.target.environment;
        let out = self
            .sts
            .get_caller_identity()
            .send()
            .await
            .map_err(|err| match (TargetError::from_sdk(env, "sts:GetCallerIdentity", err), &self.target.profile) {
                (TargetError::Credentials { environment, source, .. }, Some(profile)) => TargetError::Credentials {
                    environment,
                    source,
                    detail: format!(
                        "profile `{profile}` gave no credentials; check that it is defined in ~/.aws/config \
                         or ~/.aws/credentials (or the files AWS_CONFIG_FILE / AWS_SHARED_CREDENTIALS_FILE name)"
                    ),
                },
                (other, _) => other,
            })?;
        let identity = CallerIdentity {
            account: out.account().unwrap_or_default().to_owned(),
            arn: out.arn().unwrap_or_default().to_owned(),
        };
        if identity.account != self.target.account.as_str() {
            return Err(TargetError::AccountMismatch {
                environment: env.clone(),
                expected: self.target.account.clone(),
                actual: identity.account,
                arn: identity.arn,
            });
        }
        Ok(identity)
    }
}

/// Clients for unit tests: a plain configuration, no endpoint; tests replace the clients they
/// script with `aws-smithy-mocks` ones.
#[cfg(test)]
pub(crate) fn test_clients() -> AwsClients {
    let sdk = aws_config::SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("eu-west-1"))
        .build();
    AwsClients::from_sdk_config(&Target::for_tests("dev"), &sdk)
}

/// An AWS JSON error answer (`{"__type": kind}`) with `status`, for scripted failures.
#[cfg(test)]
pub(crate) fn error_response(status: u16, kind: &str) -> aws_smithy_runtime_api::http::Response {
    aws_smithy_runtime_api::http::Response::new(
        aws_smithy_runtime_api::http::StatusCode::try_from(status).expect("status"),
        aws_smithy_types::body::SdkBody::from(format!(
            r#"{{"__type":"{kind}","message":"try again"}}"#
        )),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `endpoints.sts` is STS's endpoint only: the other clients do not inherit it (they use
    /// their own override, `AWS_ENDPOINT_URL[_SERVICE]` or AWS).
    #[tokio::test]
    async fn the_sts_endpoint_is_not_every_service_s() {
        if std::env::var_os("AWS_ENDPOINT_URL").is_some() {
            return; // the environment sets a default endpoint for every service itself
        }
        let mut target = Target::for_tests("dev");
        target.endpoints.sts = Some("http://127.0.0.1:9".into());
        let clients = AwsClients::connect(&target, &AwsSettings::default()).await;
        assert_eq!(clients.sdk_config.endpoint_url(), None);
    }
}

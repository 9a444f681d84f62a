//! Publishing a Lambda version: upload only when the code changed (by `CodeSha256`), through
//! the artifact bucket when the zip is too large to send directly, wait for the update, merge
//! the environment key by key, and publish a version guarded by `CodeSha256` and `RevisionId`
//! so a concurrent change is detected instead of overwritten.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{Environment, LastUpdateStatus};

use super::package::{Package, PackageError};
use crate::aws::{AwsClients, SdkFailure};
use crate::error::{Classify, ErrorClass};
use crate::events::{Event, Reporter};
use crate::wait::{LastPause, Poll, Wait, Waited};

/// Lambda's limit on a zip sent directly in `UpdateFunctionCode`: 50 MB.
pub const DIRECT_UPLOAD_LIMIT: u64 = 50 * 1000 * 1000;

/// Why a Lambda publish failed.
#[derive(Debug, thiserror::Error)]
pub enum LambdaError {
    /// The zip could not be built or would be refused.
    #[error(transparent)]
    Package(#[from] PackageError),
    /// An AWS call failed.
    #[error("{operation} of {function} failed: {source}")]
    Aws {
        /// Function.
        function: String,
        /// The AWS operation.
        operation: &'static str,
        /// The SDK's error.
        #[source]
        source: SdkFailure,
    },
    /// The function does not exist (Lambda said `ResourceNotFoundException` for it).
    #[error(
        "the Lambda function `{function}` does not exist in this environment's account and region \
         ({operation}); create it (scripts/provision-project.py makes one in the local emulators) \
         or fix the artifact's `function` in deploy.toml"
    )]
    NoFunction {
        /// Function.
        function: String,
        /// The operation that found it missing.
        operation: &'static str,
    },
    /// Someone changed the function between our read and our write (`RevisionId` or
    /// `CodeSha256` no longer match); nothing was overwritten.
    #[error(
        "{function} changed while this release ran ({operation} was refused: {source}); nothing was overwritten, run the release again"
    )]
    Conflict {
        /// Function.
        function: String,
        /// The guarded operation.
        operation: &'static str,
        /// The SDK's error.
        #[source]
        source: SdkFailure,
    },
    /// Lambda reported the update as failed.
    #[error("Lambda could not apply the update of {function}: {reason}; no version was published")]
    UpdateFailed {
        /// Function.
        function: String,
        /// `LastUpdateStatusReason`.
        reason: String,
    },
    /// The update did not finish in time.
    #[error("{function} was still updating after {}s; no version was published", waited.as_secs())]
    UpdateTimeout {
        /// Function.
        function: String,
        /// How long it waited.
        waited: Duration,
    },
    /// The zip is too large to send directly and there is no bucket to send it through.
    #[error(
        "the zip of {function} is {size} bytes, over the {limit}-byte direct upload limit, and the artifact has no `artifact_bucket`"
    )]
    NeedsBucket {
        /// Function.
        function: String,
        /// The zip's size.
        size: u64,
        /// The direct upload limit.
        limit: u64,
    },
    /// Lambda answered without a field it always sends.
    #[error("{operation} of {function} answered without {field}")]
    Incomplete {
        /// Function.
        function: String,
        /// The operation.
        operation: &'static str,
        /// The missing field.
        field: &'static str,
    },
    /// The run was cancelled during a wait.
    #[error("{}", crate::wait::CANCELLED)]
    Stopped,
}

impl Classify for LambdaError {
    fn class(&self) -> ErrorClass {
        match self {
            LambdaError::Package(err) => err.class(),
            LambdaError::NeedsBucket { .. } | LambdaError::NoFunction { .. } => ErrorClass::Usage,
            _ => ErrorClass::Failure,
        }
    }

    fn config_key(&self) -> Option<&'static str> {
        matches!(self, LambdaError::NoFunction { .. }).then_some("function")
    }
}

impl LambdaError {
    /// Wraps an SDK error of `operation`; a refused precondition is a [`LambdaError::Conflict`].
    pub(crate) fn sdk<E>(
        function: &str,
        operation: &'static str,
        err: aws_smithy_runtime_api::client::result::SdkError<
            E,
            aws_smithy_runtime_api::client::orchestrator::HttpResponse,
        >,
    ) -> LambdaError
    where
        E: aws_smithy_types::error::metadata::ProvideErrorMetadata
            + std::error::Error
            + Send
            + Sync
            + 'static,
    {
        let source = SdkFailure::new(err);
        let function = function.to_owned();
        let about_the_function = [
            "lambda:GetFunction",
            "lambda:GetFunctionConfiguration",
            "lambda:UpdateFunctionCode",
            "lambda:UpdateFunctionConfiguration",
            "lambda:PublishVersion",
        ];
        if source.code() == Some("ResourceNotFoundException")
            && about_the_function.contains(&operation)
        {
            return LambdaError::NoFunction {
                function,
                operation,
            };
        }
        if source.code() == Some("PreconditionFailedException") {
            return LambdaError::Conflict {
                function,
                operation,
                source,
            };
        }
        LambdaError::Aws {
            function,
            operation,
            source,
        }
    }
}

/// How a publish waits and uploads.
#[derive(Debug, Clone)]
pub struct PublishSettings {
    /// How often the update status is read.
    pub poll: Duration,
    /// How long an update may take.
    pub update_timeout: Duration,
    /// Zips larger than this go through the artifact bucket. Default [`DIRECT_UPLOAD_LIMIT`].
    pub direct_upload_limit: u64,
}

impl Default for PublishSettings {
    fn default() -> Self {
        PublishSettings {
            poll: Duration::from_secs(2),
            update_timeout: Duration::from_secs(600),
            direct_upload_limit: DIRECT_UPLOAD_LIMIT,
        }
    }
}

/// One publish: the function, its zip and environment, where large zips go.
#[derive(Debug)]
pub struct PublishRequest<'a> {
    /// Artifact name (events).
    pub artifact: &'a str,
    /// Function name.
    pub function: &'a str,
    /// Bucket for zips over the direct limit.
    pub artifact_bucket: Option<&'a str>,
    /// Variables merged into the function's environment.
    pub env: &'a BTreeMap<String, String>,
    /// The zip.
    pub package: &'a Package,
}

/// What a publish did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// The version the alias should move to.
    pub version: String,
    /// Its `CodeSha256`.
    pub code_sha256: String,
    /// Whether the code was uploaded (false: the function already had these bytes).
    pub uploaded: bool,
    /// Whether the environment was changed.
    pub env_changed: bool,
    /// Whether a new version was published (false: an existing one had the same code and
    /// configuration).
    pub new_version: bool,
    /// The artifact bucket's key of the zip, when the artifact has a bucket.
    pub s3_key: Option<String>,
    /// `$LATEST` as it was before: what an undo puts back.
    pub before: Before,
}

/// `$LATEST` before a publish changed it: its code, and the previous value of each variable the
/// publish set (`None`: it was not set). Values never show in `Debug` output.
#[derive(Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Before {
    /// `CodeSha256` of the code `$LATEST` ran.
    pub code_sha256: String,
    /// The variables the publish changed, with their previous values.
    pub env: BTreeMap<String, Option<String>>,
}

impl std::fmt::Debug for Before {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Before")
            .field("code_sha256", &self.code_sha256)
            .field("env", &self.env.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Runs the publish of `request`.
pub async fn publish(
    clients: &AwsClients,
    request: &PublishRequest<'_>,
    settings: &PublishSettings,
    reporter: &dyn Reporter,
) -> Result<Published, LambdaError> {
    let lambda = &clients.lambda();
    let function = request.function;
    let current = configuration(lambda, function).await?;
    let mut published = Published {
        version: String::new(),
        code_sha256: request.package.code_sha256.clone(),
        uploaded: false,
        env_changed: false,
        new_version: false,
        s3_key: None,
        before: Before {
            code_sha256: current.code_sha256.clone(),
            env: request
                .env
                .iter()
                .filter(|(k, v)| current.env.get(*k) != Some(*v))
                .map(|(k, _)| (k.clone(), current.env.get(k).cloned()))
                .collect(),
        },
    };
    let mut revision = current.revision_id.clone();
    if let Some(bucket) = request.artifact_bucket {
        published.s3_key = Some(stage(clients, request, bucket, reporter).await?);
    }
    if current.code_sha256 != request.package.code_sha256 {
        upload(clients, request, revision.as_deref(), settings, reporter).await?;
        published.uploaded = true;
        revision = wait_updated(lambda, request.artifact, function, settings, reporter).await?;
    }
    if let Some(merged) = merged_env(&current.env, request.env) {
        update_env(lambda, function, merged, revision.as_deref()).await?;
        published.env_changed = true;
        revision = wait_updated(lambda, request.artifact, function, settings, reporter).await?;
    }
    if !published.uploaded
        && !published.env_changed
        && let Some(version) = same_version(lambda, function, &current).await?
    {
        published.version = version;
        return Ok(published);
    }
    published.version = publish_version(lambda, function, &published.code_sha256, revision).await?;
    published.new_version = true;
    Ok(published)
}

/// `$LATEST`'s code, environment and revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Current {
    pub code_sha256: String,
    pub env: HashMap<String, String>,
    pub revision_id: Option<String>,
}

pub(crate) async fn configuration(
    lambda: &aws_sdk_lambda::Client,
    function: &str,
) -> Result<Current, LambdaError> {
    let out = lambda
        .get_function_configuration()
        .function_name(function)
        .send()
        .await
        .map_err(|err| LambdaError::sdk(function, "lambda:GetFunctionConfiguration", err))?;
    Ok(Current {
        code_sha256: out.code_sha256().unwrap_or_default().to_owned(),
        env: out
            .environment()
            .and_then(|e| e.variables())
            .cloned()
            .unwrap_or_default(),
        revision_id: out.revision_id().map(str::to_owned),
    })
}

/// The `CodeSha256` Lambda reports for `version` of `function`.
pub(crate) async fn version_code(
    lambda: &aws_sdk_lambda::Client,
    function: &str,
    version: &str,
) -> Result<String, LambdaError> {
    let out = lambda
        .get_function_configuration()
        .function_name(function)
        .qualifier(version)
        .send()
        .await
        .map_err(|err| LambdaError::sdk(function, "lambda:GetFunctionConfiguration", err))?;
    Ok(out.code_sha256().unwrap_or_default().to_owned())
}

/// Sends the zip, directly or through the bucket (where [`stage`] put it).
async fn upload(
    clients: &AwsClients,
    request: &PublishRequest<'_>,
    revision: Option<&str>,
    settings: &PublishSettings,
    reporter: &dyn Reporter,
) -> Result<(), LambdaError> {
    let package = request.package;
    let size = package.bytes.len() as u64;
    let update = clients
        .lambda()
        .update_function_code()
        .function_name(request.function)
        .set_revision_id(revision.map(str::to_owned));
    let direct = size <= settings.direct_upload_limit;
    let update = match (request.artifact_bucket, direct) {
        (_, true) => update.zip_file(Blob::new(package.bytes.clone())),
        (Some(bucket), false) => update.s3_bucket(bucket).s3_key(zip_key(package)),
        (None, false) => {
            return Err(LambdaError::NeedsBucket {
                function: request.function.to_owned(),
                size,
                limit: settings.direct_upload_limit,
            });
        }
    };
    update
        .send()
        .await
        .map_err(|err| LambdaError::sdk(request.function, "lambda:UpdateFunctionCode", err))?;
    if direct {
        bytes_sent(reporter, request.artifact, "zip", size);
    }
    Ok(())
}

/// The artifact bucket's key of `package`.
pub(crate) fn zip_key(package: &Package) -> String {
    format!("{}{}.zip", super::config::ZIP_PREFIX, package.sha256_hex)
}

/// Keeps the zip in the artifact bucket under its sha256 (for uploads over the direct limit
/// and for promotions), unless it is already there; returns its key.
async fn stage(
    clients: &AwsClients,
    request: &PublishRequest<'_>,
    bucket: &str,
    reporter: &dyn Reporter,
) -> Result<String, LambdaError> {
    let function = request.function;
    let key = zip_key(request.package);
    let present = clients
        .s3
        .head_object()
        .bucket(bucket)
        .key(&key)
        .send()
        .await;
    match present {
        Ok(_) => return Ok(key),
        Err(err) if err.as_service_error().is_some_and(|e| e.is_not_found()) => {}
        Err(err) => return Err(LambdaError::sdk(function, "s3:HeadObject", err)),
    }
    let size = request.package.bytes.len() as u64;
    clients
        .s3
        .put_object()
        .bucket(bucket)
        .key(&key)
        .body(request.package.bytes.clone().into())
        .send()
        .await
        .map_err(|err| LambdaError::sdk(function, "s3:PutObject", err))?;
    let item = format!("s3://{bucket}/{key}");
    bytes_sent(reporter, request.artifact, &item, size);
    Ok(key)
}

fn bytes_sent(reporter: &dyn Reporter, artifact: &str, item: &str, size: u64) {
    reporter.report(&Event::BytesTransferred {
        artifact: artifact.to_owned(),
        item: item.to_owned(),
        done: size,
        total: Some(size),
    });
}

/// Waits until the function's last update is done; returns its new `RevisionId`.
pub(crate) async fn wait_updated(
    lambda: &aws_sdk_lambda::Client,
    artifact: &str,
    function: &str,
    settings: &PublishSettings,
    reporter: &dyn Reporter,
) -> Result<Option<String>, LambdaError> {
    let started = Instant::now();
    // No token: a cancelled publish drops this wait; putting the code back waits it out.
    let wait = Wait::within(
        settings.update_timeout,
        settings.poll.max(Duration::from_millis(20)),
    )
    .backing_off_to(Duration::from_secs(10))
    .last_pause(LastPause::Skipped);
    let waited = wait
        .until_noting(
            move || async move {
                let out = lambda
                    .get_function_configuration()
                    .function_name(function)
                    .send()
                    .await
                    .map_err(|err| {
                        LambdaError::sdk(function, "lambda:GetFunctionConfiguration", err)
                    })?;
                match out.last_update_status() {
                    None | Some(LastUpdateStatus::Successful) => {
                        Ok(Poll::Done(out.revision_id().map(str::to_owned)))
                    }
                    Some(LastUpdateStatus::Failed) => Err(LambdaError::UpdateFailed {
                        function: function.to_owned(),
                        reason: out
                            .last_update_status_reason()
                            .unwrap_or("no reason given")
                            .to_owned(),
                    }),
                    Some(_) => Ok(Poll::BackOff(())),
                }
            },
            |()| {
                reporter
                    .report(&wait.event(artifact, format!("update of {function}: in progress")));
            },
        )
        .await?;
    match waited {
        Waited::Done(revision) => Ok(revision),
        Waited::TimedOut(()) => Err(LambdaError::UpdateTimeout {
            function: function.to_owned(),
            waited: started.elapsed(),
        }),
        Waited::Cancelled(()) => Err(LambdaError::Stopped),
    }
}

/// `current` with `env` merged in key by key, or `None` when every key already has its value.
pub(crate) fn merged_env(
    current: &HashMap<String, String>,
    env: &BTreeMap<String, String>,
) -> Option<HashMap<String, String>> {
    if env.iter().all(|(k, v)| current.get(k) == Some(v)) {
        return None;
    }
    let mut merged = current.clone();
    merged.extend(env.iter().map(|(k, v)| (k.clone(), v.clone())));
    Some(merged)
}

pub(crate) async fn update_env(
    lambda: &aws_sdk_lambda::Client,
    function: &str,
    variables: HashMap<String, String>,
    revision: Option<&str>,
) -> Result<(), LambdaError> {
    lambda
        .update_function_configuration()
        .function_name(function)
        .environment(
            Environment::builder()
                .set_variables(Some(variables))
                .build(),
        )
        .set_revision_id(revision.map(str::to_owned))
        .send()
        .await
        .map_err(|err| LambdaError::sdk(function, "lambda:UpdateFunctionConfiguration", err))?;
    Ok(())
}

/// The newest published version, when it has `$LATEST`'s code and environment (nothing
/// changed since it was published).
async fn same_version(
    lambda: &aws_sdk_lambda::Client,
    function: &str,
    current: &Current,
) -> Result<Option<String>, LambdaError> {
    let mut newest: Option<(u64, aws_sdk_lambda::types::FunctionConfiguration)> = None;
    let mut pages = lambda
        .list_versions_by_function()
        .function_name(function)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page =
            page.map_err(|err| LambdaError::sdk(function, "lambda:ListVersionsByFunction", err))?;
        for version in page.versions() {
            let Some(number) = version.version().and_then(|v| v.parse::<u64>().ok()) else {
                continue;
            };
            if newest.as_ref().is_none_or(|(n, _)| number > *n) {
                newest = Some((number, version.clone()));
            }
        }
    }
    Ok(newest.and_then(|(number, version)| {
        let env = version
            .environment()
            .and_then(|e| e.variables())
            .cloned()
            .unwrap_or_default();
        (version.code_sha256() == Some(current.code_sha256.as_str()) && env == current.env)
            .then(|| number.to_string())
    }))
}

async fn publish_version(
    lambda: &aws_sdk_lambda::Client,
    function: &str,
    code_sha256: &str,
    revision: Option<String>,
) -> Result<String, LambdaError> {
    let out = lambda
        .publish_version()
        .function_name(function)
        .code_sha256(code_sha256)
        .set_revision_id(revision)
        .send()
        .await
        .map_err(|err| LambdaError::sdk(function, "lambda:PublishVersion", err))?;
    if out.code_sha256().is_some_and(|sha| sha != code_sha256) {
        return Err(LambdaError::UpdateFailed {
            function: function.to_owned(),
            reason: format!(
                "the published version has code {} instead of {code_sha256}",
                out.code_sha256().unwrap_or_default()
            ),
        });
    }
    out.version()
        .map(str::to_owned)
        .ok_or_else(|| LambdaError::Incomplete {
            function: function.to_owned(),
            operation: "lambda:PublishVersion",
            field: "Version",
        })
}

#[cfg(test)]
mod tests;

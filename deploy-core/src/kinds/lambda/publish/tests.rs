//! The publish against scripted Lambda answers, for what moto cannot show: a failed update, a
//! refused `RevisionId`, throttling.

use std::time::Duration;

use aws_sdk_lambda::operation::get_function_configuration::GetFunctionConfigurationOutput;
use aws_sdk_lambda::operation::list_versions_by_function::ListVersionsByFunctionOutput;
use aws_sdk_lambda::operation::publish_version::PublishVersionOutput;
use aws_sdk_lambda::operation::update_function_code::{
    UpdateFunctionCodeError, UpdateFunctionCodeOutput,
};
use aws_sdk_lambda::types::error::PreconditionFailedException;
use aws_sdk_lambda::types::{EnvironmentResponse, FunctionConfiguration, LastUpdateStatus};
use aws_smithy_mocks::{Rule, RuleMode, mock, mock_client};

use super::*;
use crate::events::Recorder;

fn package() -> Package {
    Package {
        bytes: b"zip bytes".to_vec(),
        code_sha256: "NEW=".into(),
        sha256_hex: "abcd".into(),
        files: 1,
        unzipped: 9,
    }
}

fn config(sha: &str, status: LastUpdateStatus) -> GetFunctionConfigurationOutput {
    GetFunctionConfigurationOutput::builder()
        .code_sha256(sha)
        .revision_id("rev-1")
        .last_update_status(status)
        .last_update_status_reason("the zip has no handler")
        .environment(
            EnvironmentResponse::builder()
                .variables("KEEP", "1")
                .build(),
        )
        .build()
}

fn throttled() -> aws_smithy_runtime_api::http::Response {
    aws_smithy_runtime_api::http::Response::new(
        aws_smithy_runtime_api::http::StatusCode::try_from(429).expect("status"),
        aws_smithy_types::body::SdkBody::from(
            r#"{"__type":"TooManyRequestsException","message":"Rate exceeded"}"#,
        ),
    )
}

fn clients(rules: &[&Rule]) -> AwsClients {
    let lambda = mock_client!(aws_sdk_lambda, RuleMode::MatchAny, rules, |c| {
        c.retry_config(
            aws_sdk_lambda::config::retry::RetryConfig::standard()
                .with_max_attempts(4)
                .with_initial_backoff(Duration::from_millis(1)),
        )
    });
    let sdk = aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("eu-west-1"))
        .build();
    AwsClients::from_sdk_config(&crate::target::Target::for_tests("dev"), &sdk).with_lambda(lambda)
}

async fn run(
    clients: &AwsClients,
    env: &BTreeMap<String, String>,
) -> Result<Published, LambdaError> {
    let package = package();
    let request = PublishRequest {
        artifact: "fn",
        function: "f",
        artifact_bucket: None,
        env,
        package: &package,
    };
    let settings = PublishSettings {
        poll: Duration::from_millis(1),
        ..PublishSettings::default()
    };
    publish(clients, &request, &settings, &Recorder::default()).await
}

fn publish_rule() -> Rule {
    mock!(aws_sdk_lambda::Client::publish_version).then_output(|| {
        PublishVersionOutput::builder()
            .version("7")
            .code_sha256("NEW=")
            .build()
    })
}

#[tokio::test]
async fn a_failed_update_is_a_clear_error_and_publishes_nothing() {
    let get = mock!(aws_sdk_lambda::Client::get_function_configuration)
        .sequence()
        .output(|| config("OLD=", LastUpdateStatus::Successful))
        .output(|| config("NEW=", LastUpdateStatus::InProgress))
        .output(|| config("NEW=", LastUpdateStatus::Failed))
        .build();
    let update = mock!(aws_sdk_lambda::Client::update_function_code)
        .then_output(|| UpdateFunctionCodeOutput::builder().build());
    let publish = publish_rule();
    let clients = clients(&[&get, &update, &publish]);
    let err = run(&clients, &BTreeMap::new())
        .await
        .expect_err("failed update");
    assert!(matches!(err, LambdaError::UpdateFailed { .. }), "{err}");
    assert!(err.to_string().contains("the zip has no handler"), "{err}");
    assert_eq!(update.num_calls(), 1);
    assert_eq!(publish.num_calls(), 0, "nothing published");
}

#[tokio::test]
async fn a_refused_revision_is_a_conflict_and_nothing_is_overwritten() {
    let get = mock!(aws_sdk_lambda::Client::get_function_configuration)
        .then_output(|| config("OLD=", LastUpdateStatus::Successful));
    let update = mock!(aws_sdk_lambda::Client::update_function_code)
        .match_requests(|req| req.revision_id() == Some("rev-1"))
        .then_error(|| {
            UpdateFunctionCodeError::PreconditionFailedException(
                PreconditionFailedException::builder()
                    .message("The Revision Id provided does not match the latest Revision Id.")
                    .meta(
                        aws_smithy_types::error::ErrorMetadata::builder()
                            .code("PreconditionFailedException")
                            .build(),
                    )
                    .build(),
            )
        });
    let publish = publish_rule();
    let clients = clients(&[&get, &update, &publish]);
    let err = run(&clients, &BTreeMap::new()).await.expect_err("conflict");
    assert!(matches!(err, LambdaError::Conflict { .. }), "{err}");
    assert!(
        std::error::Error::source(&err).is_some(),
        "the SDK error is kept"
    );
    assert_eq!(publish.num_calls(), 0);
}

#[tokio::test]
async fn throttling_is_retried_and_the_publish_is_guarded() {
    let get = mock!(aws_sdk_lambda::Client::get_function_configuration)
        .then_output(|| config("OLD=", LastUpdateStatus::Successful));
    let update = mock!(aws_sdk_lambda::Client::update_function_code)
        .then_output(|| UpdateFunctionCodeOutput::builder().build());
    let publish = mock!(aws_sdk_lambda::Client::publish_version)
        .match_requests(|req| {
            req.code_sha256() == Some("NEW=") && req.revision_id() == Some("rev-1")
        })
        .sequence()
        .http_response(throttled)
        .http_response(throttled)
        .output(|| {
            PublishVersionOutput::builder()
                .version("7")
                .code_sha256("NEW=")
                .build()
        })
        .build();
    let clients = clients(&[&get, &update, &publish]);
    let published = run(&clients, &BTreeMap::new()).await.expect("published");
    assert_eq!(published.version, "7");
    assert!(published.uploaded && published.new_version);
    assert_eq!(
        publish.num_calls(),
        3,
        "two throttled answers, then the version"
    );
}

#[tokio::test]
async fn unchanged_code_and_env_reuse_the_newest_version() {
    let get = mock!(aws_sdk_lambda::Client::get_function_configuration)
        .then_output(|| config("NEW=", LastUpdateStatus::Successful));
    let versions = mock!(aws_sdk_lambda::Client::list_versions_by_function).then_output(|| {
        let version = |v: &str| {
            FunctionConfiguration::builder()
                .version(v)
                .code_sha256("NEW=")
                .environment(
                    EnvironmentResponse::builder()
                        .variables("KEEP", "1")
                        .build(),
                )
                .build()
        };
        ListVersionsByFunctionOutput::builder()
            .versions(version("$LATEST"))
            .versions(version("2"))
            .versions(version("10"))
            .build()
    });
    let update = mock!(aws_sdk_lambda::Client::update_function_code)
        .then_output(|| UpdateFunctionCodeOutput::builder().build());
    let publish = publish_rule();
    let clients = clients(&[&get, &versions, &update, &publish]);
    let env = BTreeMap::from([("KEEP".to_owned(), "1".to_owned())]);
    let published = run(&clients, &env).await.expect("unchanged");
    assert_eq!(published.version, "10");
    assert!(!published.uploaded && !published.env_changed && !published.new_version);
    assert_eq!((update.num_calls(), publish.num_calls()), (0, 0));
}

#[test]
fn env_is_merged_key_by_key() {
    let current = HashMap::from([
        ("A".to_owned(), "1".to_owned()),
        ("B".to_owned(), "2".to_owned()),
    ]);
    let same = BTreeMap::from([("A".to_owned(), "1".to_owned())]);
    assert_eq!(merged_env(&current, &same), None);
    let change = BTreeMap::from([
        ("A".to_owned(), "9".to_owned()),
        ("C".to_owned(), "3".to_owned()),
    ]);
    let merged = merged_env(&current, &change).expect("changed");
    assert_eq!(merged.len(), 3);
    assert_eq!(merged["A"], "9");
    assert_eq!(merged["B"], "2");
}

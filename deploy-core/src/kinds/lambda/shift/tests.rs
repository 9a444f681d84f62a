//! The shift against scripted Lambda answers: a failure midway puts the alias back.

use std::time::Duration;

use aws_sdk_lambda::operation::get_alias::GetAliasOutput;
use aws_sdk_lambda::operation::update_alias::{UpdateAliasError, UpdateAliasOutput};
use aws_sdk_lambda::types::error::ServiceException;
use aws_smithy_mocks::{RuleMode, mock, mock_client};

use super::LambdaRollout;
use super::*;
use crate::aws::AwsClients;
use crate::engine::TestRun;
use crate::rollout::Strategy;

fn input() -> ShiftLambdaAlias {
    ShiftLambdaAlias {
        function: "f".into(),
        alias: "live".into(),
        rollout: LambdaRollout {
            strategy: Strategy::LambdaLinear,
            steps: vec![25, 50, 75, 100],
            interval: Duration::from_secs(1),
            alarms: vec![],
            health_check: None,
            max_errors: None,
        },
    }
}

fn run(lambda: aws_sdk_lambda::Client) -> TestRun {
    let sdk = aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("eu-west-1"))
        .build();
    TestRun::new(
        AwsClients::from_sdk_config(&crate::target::Target::for_tests("dev"), &sdk)
            .with_lambda(lambda),
    )
}

fn weight(req: &aws_sdk_lambda::operation::update_alias::UpdateAliasInput) -> Option<f64> {
    req.routing_config()
        .and_then(|r| r.additional_version_weights())
        .and_then(|w| w.get("8").copied())
}

#[tokio::test]
async fn a_failure_midway_puts_the_alias_back_and_counts_as_rolled_back() {
    let get = mock!(aws_sdk_lambda::Client::get_alias)
        .then_output(|| GetAliasOutput::builder().function_version("7").build());
    let routed = mock!(aws_sdk_lambda::Client::update_alias)
        .match_requests(|req| req.function_version() == Some("7") && weight(req).is_some())
        .sequence()
        .output(|| UpdateAliasOutput::builder().build())
        .error(|| {
            UpdateAliasError::ServiceException(ServiceException::builder().message("boom").build())
        })
        .build();
    let restored = mock!(aws_sdk_lambda::Client::update_alias)
        .match_requests(|req| {
            req.function_version() == Some("7")
                && req
                    .routing_config()
                    .and_then(|r| r.additional_version_weights())
                    .is_some_and(|w| w.is_empty())
        })
        .then_output(|| UpdateAliasOutput::builder().build());
    let lambda = mock_client!(
        aws_sdk_lambda,
        RuleMode::MatchAny,
        [&get, &restored, &routed]
    );
    let run = run(lambda);
    let cx = run.cx();
    let step = ShiftStep(ShiftSettings {
        interval: Some(Duration::from_millis(1)),
        ..ShiftSettings::default()
    });
    let err = step
        .shift(&cx, "fn", &input(), "8")
        .await
        .expect_err("the second shift fails");
    assert!(err.is_rolled_back(), "{err}");
    assert_eq!(
        routed.num_calls(),
        2,
        "25% routed, then the 50% update failed"
    );
    assert_eq!(restored.num_calls(), 1, "alias back on 7 with no routing");
    let reported = run
        .recorder
        .events()
        .iter()
        .any(|e| matches!(e, Event::RolloutProgress { percent: 25, .. }));
    assert!(reported, "the 25% step was reported");
}

#[tokio::test]
async fn an_alias_already_on_the_version_is_left_alone() {
    let get = mock!(aws_sdk_lambda::Client::get_alias)
        .then_output(|| GetAliasOutput::builder().function_version("8").build());
    let update = mock!(aws_sdk_lambda::Client::update_alias)
        .then_output(|| UpdateAliasOutput::builder().build());
    let lambda = mock_client!(aws_sdk_lambda, RuleMode::MatchAny, [&get, &update]);
    let run = run(lambda);
    let step = ShiftStep(ShiftSettings::default());
    let done = step
        .shift(&run.cx(), "fn", &input(), "8")
        .await
        .expect("nothing to do");
    assert_eq!(update.num_calls(), 0);
    assert!(matches!(done.undo, Undo::Compensate { .. }));
}

#[tokio::test]
async fn moves_carry_the_alias_revision_and_a_refused_one_is_not_overwritten() {
    use aws_sdk_lambda::types::error::PreconditionFailedException;

    let get = mock!(aws_sdk_lambda::Client::get_alias).then_output(|| {
        GetAliasOutput::builder()
            .function_version("7")
            .revision_id("r1")
            .build()
    });
    let first = mock!(aws_sdk_lambda::Client::update_alias)
        .match_requests(|req| req.revision_id() == Some("r1"))
        .then_output(|| UpdateAliasOutput::builder().revision_id("r2").build());
    let second = mock!(aws_sdk_lambda::Client::update_alias)
        .match_requests(|req| req.revision_id() == Some("r2"))
        .then_error(|| {
            UpdateAliasError::PreconditionFailedException(
                PreconditionFailedException::builder()
                    .meta(
                        aws_smithy_types::error::ErrorMetadata::builder()
                            .code("PreconditionFailedException")
                            .build(),
                    )
                    .build(),
            )
        });
    let other = mock!(aws_sdk_lambda::Client::update_alias)
        .then_output(|| UpdateAliasOutput::builder().build());
    let lambda = mock_client!(
        aws_sdk_lambda,
        RuleMode::MatchAny,
        [&get, &first, &second, &other]
    );
    let run = run(lambda);
    let step = ShiftStep(ShiftSettings {
        interval: Some(Duration::from_millis(1)),
        ..ShiftSettings::default()
    });
    let err = step
        .shift(&run.cx(), "fn", &input(), "8")
        .await
        .expect_err("someone else moved the alias");
    assert!(!err.is_rolled_back(), "{err}");
    assert!(
        err.to_string().contains("changed while this release ran"),
        "{err}"
    );
    assert_eq!((first.num_calls(), second.num_calls()), (1, 1));
    assert_eq!(
        other.num_calls(),
        0,
        "the alias is not put back over their change"
    );
}

//! What a Lambda release calls, for `deploy iam-policy`: the function (code, configuration,
//! versions, the alias and its routing weights, old versions deleted), the zips in the
//! artifact bucket, and the shift's gates (alarms, the new version's `Errors`).

use super::LambdaSpec;
use super::config::ZIP_PREFIX;
use crate::iam::{Grants, Scope, s3_arn};

/// The statements of the function `spec` (`source`: the same artifact in the promotion
/// source, when this environment's credentials read its zip).
pub(crate) fn grants(
    spec: &LambdaSpec,
    source: Option<&LambdaSpec>,
    scope: &Scope<'_>,
    grants: &mut Grants,
) {
    let function = scope.arn("lambda", &format!("function:{}", spec.function));
    grants.allow(
        "LambdaFunctions",
        "update code and configuration, publish a version, move the alias (routing weights), delete old versions",
        &[
            "lambda:GetFunction",
            "lambda:GetFunctionConfiguration",
            "lambda:UpdateFunctionCode",
            "lambda:UpdateFunctionConfiguration",
            "lambda:PublishVersion",
            "lambda:ListVersionsByFunction",
            "lambda:ListAliases",
            "lambda:GetAlias",
            "lambda:CreateAlias",
            "lambda:UpdateAlias",
            "lambda:DeleteAlias",
            "lambda:DeleteFunction",
        ],
        [function.clone(), format!("{function}:*")],
    );
    let partition = scope.partition();
    if let Some(bucket) = &spec.artifact_bucket {
        grants.allow(
            "LambdaZips",
            "keep each zip in the artifact bucket under its SHA-256 (large uploads, promotion)",
            &["s3:GetObject", "s3:PutObject"],
            [s3_arn(partition, bucket, Some(ZIP_PREFIX))],
        );
    }
    if let (Some(bucket), Some(_)) = (
        source.and_then(|s| s.artifact_bucket.as_ref()),
        scope.source,
    ) {
        grants.allow(
            "LambdaSourceZips",
            "promote: read the zip the source environment recorded",
            &["s3:GetObject"],
            [s3_arn(partition, bucket, Some(ZIP_PREFIX))],
        );
    }
    let rollout = &spec.rollout;
    grants.allow(
        "ShiftAlarms",
        "the shift's gate: the alarms must exist and stay OK",
        &["cloudwatch:DescribeAlarms"],
        rollout
            .alarms
            .iter()
            .map(|alarm| scope.arn("cloudwatch", &format!("alarm:{alarm}"))),
    );
    if rollout.max_errors.is_some() {
        grants.allow(
            "ShiftErrors",
            "the shift's gate: the new version's Errors metric (GetMetricStatistics takes no resource)",
            &["cloudwatch:GetMetricStatistics"],
            ["*"],
        );
    }
}

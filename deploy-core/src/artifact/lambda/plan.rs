//! The steps of a Lambda function: publish a version, then the alias strategy's steps.

use serde::{Deserialize, Serialize};

use crate::artifact::LambdaSpec;
use crate::ledger::AwsObject;
use crate::plan::{Action, ActionInput, Chain, PlanRequest};

/// Upload the zip, update the function code and publish a version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishLambda {
    /// Directory or zip.
    pub source: String,
    /// Function name.
    pub function: String,
    /// Globs never zipped.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
    /// The handler whose file must be in the zip.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handler: Option<String>,
    /// Bucket for zips over the direct upload limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_bucket: Option<String>,
}

impl ActionInput for PublishLambda {
    const TYPE: &'static str = "publish-lambda";
}

/// Adds the steps of `lambda` to `chain`.
pub fn steps(lambda: &LambdaSpec, request: &PlanRequest<'_>, chain: &mut Chain<'_>) {
    if request.operation.publishes()
        && let Some(source) = &lambda.source
    {
        chain.then(
            format!("publish a new version of {}", lambda.function),
            Action::new(&PublishLambda {
                source: source.display().to_string(),
                function: lambda.function.clone(),
                exclude: lambda.exclude.clone(),
                handler: lambda.handler.clone(),
                artifact_bucket: lambda.artifact_bucket.clone(),
            }),
            vec![AwsObject {
                kind: "lambda-version".into(),
                id: lambda.function.clone(),
            }],
        );
    }
    if request.operation.changes_live() {
        crate::rollout::plan::lambda_steps(&lambda.function, &lambda.alias, &lambda.rollout, chain);
    }
}

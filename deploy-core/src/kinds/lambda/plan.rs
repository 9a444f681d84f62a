//! The steps of a Lambda function: publish a version, then the alias strategy's steps.

use serde::{Deserialize, Serialize};

use super::restore::RestoreLambda;
use crate::kinds::LambdaSpec;
use crate::ledger::{AwsObject, Operation};
use crate::plan::{Action, ActionInput, Chain, PlanRequest, PromoteSource};

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

impl PublishLambda {
    /// With an artifact bucket the previous zip is kept, so `$LATEST` goes back whole;
    /// without one only its environment variables do.
    fn undo_declared(&self) -> crate::plan::Reversibility {
        match &self.artifact_bucket {
            Some(_) => crate::plan::Reversibility::Reversible,
            None => crate::plan::Reversibility::Partial(format!(
                "the new code of {}'s $LATEST (no `artifact_bucket` keeps the previous zip)",
                self.function
            )),
        }
    }
}

impl ActionInput for PublishLambda {
    const TYPE: &'static str = "publish-lambda";

    fn reversibility(&self) -> crate::plan::Reversibility {
        self.undo_declared()
    }
}

/// Publish in this environment the exact code another environment runs: the zip is rebuilt
/// from the source (packaging is deterministic) and must have the source release's
/// `CodeSha256`, and so must the version published.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromoteLambda {
    /// How the zip is made and where it goes, as for a publish.
    #[serde(flatten)]
    pub publish: PublishLambda,
    /// The release whose code is promoted.
    pub from: PromoteSource,
}

impl ActionInput for PromoteLambda {
    const TYPE: &'static str = "promote-lambda";

    fn reversibility(&self) -> crate::plan::Reversibility {
        self.publish.undo_declared()
    }
}

/// Adds the steps of `lambda` to `chain`.
pub fn steps(lambda: &LambdaSpec, request: &PlanRequest<'_>, chain: &mut Chain<'_>) {
    let name = chain.artifact().to_owned();
    let promoted = request.promote.iter().find(|p| p.artifact == name);
    let publish = lambda.source.as_ref().map(|source| PublishLambda {
        source: source.display().to_string(),
        function: lambda.function.clone(),
        exclude: lambda.exclude.clone(),
        handler: lambda.handler.clone(),
        artifact_bucket: lambda.artifact_bucket.clone(),
    });
    let touches = vec![AwsObject {
        kind: "lambda-version".into(),
        id: lambda.function.clone(),
    }];
    match (promoted, publish) {
        (Some(from), _) if request.operation == Operation::Rollback => {
            let sha = from.artifact_ref.content_id();
            chain.then(
                format!(
                    "go back to release {} of {} ({sha})",
                    from.release_id, lambda.function
                ),
                Action::new(&RestoreLambda {
                    function: lambda.function.clone(),
                    from: from.clone(),
                }),
                vec![],
            );
        }
        (Some(from), Some(publish)) => {
            let sha = from.artifact_ref.content_id();
            chain.then(
                format!(
                    "publish in {} the code {} runs ({sha})",
                    lambda.function, from.environment
                ),
                Action::new(&PromoteLambda {
                    publish,
                    from: from.clone(),
                }),
                touches,
            );
        }
        (None, Some(publish)) if request.operation.publishes() => {
            chain.then(
                format!("publish a new version of {}", lambda.function),
                Action::new(&publish),
                touches,
            );
        }
        _ => {}
    }
    if request.operation.changes_live() {
        let rollout = match request.operation {
            Operation::Rollback => lambda.rollout.for_rollback(request.gradual),
            _ => lambda.rollout.clone(),
        };
        super::shift::lambda_steps(&lambda.function, &lambda.alias, &rollout, chain);
    }
}

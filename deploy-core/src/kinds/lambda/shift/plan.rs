//! The alias shift a Lambda release adds after its publish.

use serde::{Deserialize, Serialize};

use super::LambdaRollout;
use crate::ledger::AwsObject;
use crate::plan::{Action, ActionInput, Chain};

/// Move a Lambda alias to the new version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShiftLambdaAlias {
    /// Function name.
    pub function: String,
    /// Alias.
    pub alias: String,
    /// How.
    pub rollout: LambdaRollout,
}

impl ActionInput for ShiftLambdaAlias {
    const TYPE: &'static str = "shift-lambda-alias";

    fn reversibility(&self) -> crate::plan::Reversibility {
        crate::plan::Reversibility::Reversible
    }
}

/// Adds the shift of `function`'s `alias`.
pub fn lambda_steps(function: &str, alias: &str, rollout: &LambdaRollout, chain: &mut Chain<'_>) {
    chain.then(
        format!("move alias {alias} of {function} ({})", rollout.strategy),
        Action::new(&ShiftLambdaAlias {
            function: function.to_owned(),
            alias: alias.to_owned(),
            rollout: rollout.clone(),
        }),
        vec![AwsObject {
            kind: "lambda-alias".into(),
            id: format!("{function}:{alias}"),
        }],
    );
}

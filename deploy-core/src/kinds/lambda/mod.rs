//! Lambda functions: zips uploaded, versions published, aliases moved behind an alias
//! ([`super::LambdaSpec`]).

pub(crate) mod config;
mod latest;
pub mod output;
pub mod package;
pub mod plan;
pub mod promote;
pub mod publish;
pub mod settings;
pub mod shift;
pub mod steps;

use std::sync::Arc;

use crate::engine::Engine;
use crate::plan::ActionInput;
use plan::{PromoteLambda, PublishLambda};
use settings::LambdaSettings;

/// Registers the Lambda publish and the alias shift with `engine`.
pub fn register(engine: &mut Engine, settings: LambdaSettings) {
    let settings = Arc::new(settings);
    engine.register(
        PublishLambda::TYPE,
        Arc::new(steps::PublishStep(settings.clone())),
    );
    engine.register(
        PromoteLambda::TYPE,
        Arc::new(promote::PromoteStep(settings.clone())),
    );
    crate::kinds::lambda::shift::register(engine, settings.shift.clone());
}

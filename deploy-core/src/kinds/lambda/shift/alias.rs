//! The alias a Lambda rollout moves: read, routed, pointed, put back.

use std::collections::HashMap;
use std::sync::Mutex;

use aws_sdk_lambda::types::AliasRoutingConfiguration;

use crate::kinds::lambda::publish::LambdaError;

/// Where an alias points.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct AliasState {
    /// Its primary version.
    pub version: String,
    /// Extra versions and their share of traffic (0..1).
    pub routing: HashMap<String, f64>,
}

impl AliasState {
    /// Each routed version with its share, `10% to version 7`, in version order.
    pub(crate) fn routing_lines(&self) -> Vec<String> {
        let mut lines: Vec<(&String, &f64)> = self.routing.iter().collect();
        lines.sort_by(|a, b| a.0.cmp(b.0));
        lines
            .into_iter()
            .map(|(version, weight)| format!("{:.0}% to version {version}", weight * 100.0))
            .collect()
    }
}

/// One function's alias. Its moves are guarded by the alias's `RevisionId`: the one read,
/// then the one each move returned, so a change made by someone else in between is refused
/// (`PreconditionFailedException`) instead of overwritten.
#[derive(Debug)]
pub(crate) struct Alias<'a> {
    lambda: &'a aws_sdk_lambda::Client,
    function: &'a str,
    name: &'a str,
    revision: Mutex<Option<String>>,
}

impl<'a> Alias<'a> {
    pub(crate) fn new(
        lambda: &'a aws_sdk_lambda::Client,
        function: &'a str,
        name: &'a str,
    ) -> Self {
        Alias {
            lambda,
            function,
            name,
            revision: Mutex::new(None),
        }
    }

    /// Where the alias points, or `None` when it does not exist.
    pub(crate) async fn read(&self) -> Result<Option<AliasState>, LambdaError> {
        let out = match self
            .lambda
            .get_alias()
            .function_name(self.function)
            .name(self.name)
            .send()
            .await
        {
            Ok(out) => out,
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_resource_not_found_exception()) =>
            {
                return Ok(None);
            }
            Err(err) => return Err(self.error("lambda:GetAlias", err)),
        };
        self.remember(out.revision_id());
        Ok(out.function_version().map(|version| AliasState {
            version: version.to_owned(),
            routing: out
                .routing_config()
                .and_then(|r| r.additional_version_weights())
                .cloned()
                .unwrap_or_default(),
        }))
    }

    /// `previous` primary, `weight` percent of traffic on `version`.
    pub(super) async fn route(
        &self,
        previous: &str,
        version: &str,
        weight: u32,
    ) -> Result<(), LambdaError> {
        let weights = HashMap::from([(version.to_owned(), f64::from(weight) / 100.0)]);
        self.update(previous, weights, true).await
    }

    /// All traffic on `version`, no routing.
    pub(super) async fn point(&self, version: &str) -> Result<(), LambdaError> {
        self.update(version, HashMap::new(), true).await
    }

    /// Creates the alias on `version`.
    pub(super) async fn create(&self, version: &str) -> Result<(), LambdaError> {
        let out = self
            .lambda
            .create_alias()
            .function_name(self.function)
            .name(self.name)
            .function_version(version)
            .send()
            .await
            .map_err(|err| self.error("lambda:CreateAlias", err))?;
        self.remember(out.revision_id());
        Ok(())
    }

    /// Back on `previous` with no routing; `None` (the alias did not exist) deletes it. Not
    /// guarded: putting traffic back on what ran before wins over anything else.
    pub(super) async fn restore(&self, previous: Option<&str>) -> Result<(), LambdaError> {
        match previous {
            Some(previous) => self.update(previous, HashMap::new(), false).await,
            None => {
                self.lambda
                    .delete_alias()
                    .function_name(self.function)
                    .name(self.name)
                    .send()
                    .await
                    .map_err(|err| self.error("lambda:DeleteAlias", err))?;
                Ok(())
            }
        }
    }

    async fn update(
        &self,
        primary: &str,
        weights: HashMap<String, f64>,
        guarded: bool,
    ) -> Result<(), LambdaError> {
        let routing = AliasRoutingConfiguration::builder()
            .set_additional_version_weights(Some(weights))
            .build();
        let revision = if guarded {
            self.revision.lock().ok().and_then(|r| r.clone())
        } else {
            None
        };
        let out = self
            .lambda
            .update_alias()
            .function_name(self.function)
            .name(self.name)
            .function_version(primary)
            .routing_config(routing)
            .set_revision_id(revision)
            .send()
            .await
            .map_err(|err| self.error("lambda:UpdateAlias", err))?;
        self.remember(out.revision_id());
        Ok(())
    }

    fn remember(&self, revision: Option<&str>) {
        if let Ok(mut kept) = self.revision.lock() {
            *kept = revision.map(str::to_owned);
        }
    }

    fn error<E>(
        &self,
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
        LambdaError::sdk(self.function, operation, err)
    }
}

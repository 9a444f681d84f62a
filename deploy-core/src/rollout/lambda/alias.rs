//! The alias a Lambda rollout moves: read, routed, pointed, put back.

use std::collections::HashMap;

use aws_sdk_lambda::types::AliasRoutingConfiguration;

use crate::artifact::lambda::publish::LambdaError;

/// Where an alias points.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct AliasState {
    /// Its primary version.
    pub version: String,
    /// Extra versions and their share of traffic (0..1).
    pub routing: HashMap<String, f64>,
}

/// One function's alias.
#[derive(Debug)]
pub(super) struct Alias<'a> {
    lambda: &'a aws_sdk_lambda::Client,
    function: &'a str,
    name: &'a str,
}

impl<'a> Alias<'a> {
    pub(super) fn new(
        lambda: &'a aws_sdk_lambda::Client,
        function: &'a str,
        name: &'a str,
    ) -> Self {
        Alias {
            lambda,
            function,
            name,
        }
    }

    /// Where the alias points, or `None` when it does not exist.
    pub(super) async fn read(&self) -> Result<Option<AliasState>, LambdaError> {
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
        self.update(previous, weights).await
    }

    /// All traffic on `version`, no routing.
    pub(super) async fn point(&self, version: &str) -> Result<(), LambdaError> {
        self.update(version, HashMap::new()).await
    }

    /// Creates the alias on `version`.
    pub(super) async fn create(&self, version: &str) -> Result<(), LambdaError> {
        self.lambda
            .create_alias()
            .function_name(self.function)
            .name(self.name)
            .function_version(version)
            .send()
            .await
            .map_err(|err| self.error("lambda:CreateAlias", err))?;
        Ok(())
    }

    /// Back on `previous` with no routing; `None` (the alias did not exist) deletes it.
    pub(super) async fn restore(&self, previous: Option<&str>) -> Result<(), LambdaError> {
        match previous {
            Some(previous) => self.point(previous).await,
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
    ) -> Result<(), LambdaError> {
        let routing = AliasRoutingConfiguration::builder()
            .set_additional_version_weights(Some(weights))
            .build();
        self.lambda
            .update_alias()
            .function_name(self.function)
            .name(self.name)
            .function_version(primary)
            .routing_config(routing)
            .send()
            .await
            .map_err(|err| self.error("lambda:UpdateAlias", err))?;
        Ok(())
    }

    fn error<E, R>(
        &self,
        operation: &'static str,
        err: aws_smithy_runtime_api::client::result::SdkError<E, R>,
    ) -> LambdaError
    where
        E: aws_smithy_types::error::metadata::ProvideErrorMetadata
            + std::error::Error
            + Send
            + Sync
            + 'static,
        R: std::fmt::Debug + Send + Sync + 'static,
    {
        LambdaError::sdk(self.function, operation, err)
    }
}

//! An environment resolved to the AWS account, region, credentials and endpoints it deploys to.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A 12-digit AWS account id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AccountId(String);

impl AccountId {
    /// Parses a 12-digit account id.
    ///
    /// ```
    /// assert!(deploy_core::target::AccountId::parse("123456789012").is_some());
    /// assert!(deploy_core::target::AccountId::parse("1234").is_none());
    /// ```
    pub fn parse(text: &str) -> Option<Self> {
        (text.len() == 12 && text.bytes().all(|b| b.is_ascii_digit()))
            .then(|| AccountId(text.to_owned()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where one environment deploys: the AWS side of an environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Target {
    /// Project name (the `project` key).
    pub project: String,
    /// Environment name, e.g. `staging`.
    pub environment: String,
    /// AWS region.
    pub region: String,
    /// The account every change must happen in.
    pub account: AccountId,
    /// Named profile from the shared AWS config, if not the default chain.
    pub profile: Option<String>,
    /// Role to assume on top of the base credentials.
    pub role_arn: Option<String>,
    /// Bucket holding the release ledger and the lock.
    pub state_bucket: String,
    /// Endpoint overrides (local emulators, VPC endpoints).
    pub endpoints: Endpoints,
}

impl Target {
    /// Where this environment's ledger and lock live in the state bucket: `deploy/{project}/{env}/`.
    pub fn state_prefix(&self) -> String {
        format!("deploy/{}/{}/", self.project, self.environment)
    }

    /// Key of the environment lock in the state bucket.
    pub fn lock_key(&self) -> String {
        format!("{}lock.json", self.state_prefix())
    }

    /// A target for unit tests: project `p`, account 123456789012, eu-west-1.
    #[cfg(test)]
    pub(crate) fn for_tests(environment: &str) -> Target {
        Target {
            project: "p".into(),
            environment: environment.into(),
            region: "eu-west-1".into(),
            account: AccountId("123456789012".into()),
            profile: None,
            role_arn: None,
            state_bucket: "p-state".into(),
            endpoints: Endpoints::default(),
        }
    }
}

/// Per-service endpoint overrides. Unset services use `AWS_ENDPOINT_URL[_SERVICE]` or AWS.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Endpoints {
    /// STS endpoint.
    pub sts: Option<String>,
    /// S3 endpoint (path-style addressing is used when set).
    pub s3: Option<String>,
    /// ECR control-plane endpoint.
    pub ecr: Option<String>,
    /// OCI registry (data plane) base URL, instead of the one ECR reports.
    pub registry: Option<String>,
    /// ECS endpoint.
    pub ecs: Option<String>,
    /// CodeDeploy endpoint.
    pub codedeploy: Option<String>,
    /// Lambda endpoint.
    pub lambda: Option<String>,
}

impl Endpoints {
    /// Each service name with its override, for iteration.
    pub fn entries(&self) -> [(&'static str, Option<&str>); 7] {
        [
            ("sts", self.sts.as_deref()),
            ("s3", self.s3.as_deref()),
            ("ecr", self.ecr.as_deref()),
            ("registry", self.registry.as_deref()),
            ("ecs", self.ecs.as_deref()),
            ("codedeploy", self.codedeploy.as_deref()),
            ("lambda", self.lambda.as_deref()),
        ]
    }
}

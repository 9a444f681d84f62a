//! Before a rollout changes anything: every object a task definition references exists.
//!
//! - `secrets[].valueFrom`: an SSM parameter (`GetParameters`, values never read) or a Secrets
//!   Manager secret (`DescribeSecret`, metadata only);
//! - `taskRoleArn`, `executionRoleArn`: the IAM role (`GetRole`);
//! - `awslogs` log configurations: the log group (`DescribeLogGroups`), unless the container
//!   creates it (`awslogs-create-group = "true"`).
//!
//! Every missing object is named at once.

mod inputs;

use std::collections::BTreeSet;
use std::fmt;

use aws_sdk_ecs::types::{ContainerDefinition, LogDriver, TaskDefinition};

use crate::aws::SdkFailure;
use crate::engine::{StepContext, StepError};
use crate::kinds::image::rollout::settings::Runtime;
pub(crate) use inputs::rollout_inputs;

/// `GetParameters` takes at most ten names.
const SSM_BATCH: usize = 10;

/// What kind of object a task definition references.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// A Secrets Manager secret, by ARN.
    Secret,
    /// An SSM parameter, by name.
    Parameter,
    /// An IAM role, by name.
    Role,
    /// A CloudWatch Logs log group.
    LogGroup,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Secret => "secret",
            Kind::Parameter => "SSM parameter",
            Kind::Role => "role",
            Kind::LogGroup => "log group",
        })
    }
}

/// One object a task definition references, and where.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Reference {
    /// What it is.
    pub kind: Kind,
    /// The name it is looked up by (a secret's ARN without a JSON key or version).
    pub name: String,
    /// Where the task definition names it (`container api`, `taskRoleArn`).
    pub by: String,
    /// The region of a log group, when the container names one.
    pub region: Option<String>,
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} ({})", self.kind, self.name, self.by)
    }
}

/// Why the check of a task definition's references failed.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// Objects the task definition references do not exist.
    #[error(
        "the task definition {task_definition} references objects that do not exist: {}; \
         create them (infra/) or run with --skip-verify",
        list(missing)
    )]
    Missing {
        /// `family:revision`.
        task_definition: String,
        /// Every missing object.
        missing: Vec<Reference>,
    },
    /// An AWS call of the check failed.
    #[error("{operation} of {name} failed while checking {task_definition}: {source}")]
    Api {
        /// `task-definition:revision`.
        task_definition: String,
        /// The operation (`ssm:GetParameters`).
        operation: &'static str,
        /// The object looked up.
        name: String,
        /// The SDK's error.
        #[source]
        source: SdkFailure,
    },
}

fn list(missing: &[Reference]) -> String {
    missing
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Fails, naming every one, when objects `definition` references do not exist, or the
/// secrets the artifact's configuration sets on `container` (`runtime.secrets`).
pub(crate) async fn task_definition(
    cx: &StepContext<'_>,
    definition: &TaskDefinition,
    container: &str,
    runtime: &Runtime,
) -> Result<(), StepError> {
    let name = format!(
        "{}:{}",
        definition.family().unwrap_or("?"),
        definition.revision()
    );
    let check = Check {
        cx,
        task_definition: &name,
    };
    let mut references = references(&without_replaced(definition, container, runtime));
    references.extend(configured(container, runtime));
    let mut missing = Vec::new();
    missing.extend(check.parameters(&references).await?);
    for reference in &references {
        if !check.exists(reference).await? {
            missing.push(reference.clone());
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    missing.sort();
    Err(StepError::failure(VerifyError::Missing {
        task_definition: name,
        missing,
    }))
}

/// `definition` without the secrets of `container` that the configuration replaces.
fn without_replaced(
    definition: &TaskDefinition,
    container: &str,
    runtime: &Runtime,
) -> TaskDefinition {
    let mut definition = definition.clone();
    let containers = definition.container_definitions.iter_mut().flatten();
    for c in containers.filter(|c| c.name.as_deref() == Some(container)) {
        if let Some(secrets) = c.secrets.as_mut() {
            secrets.retain(|s| !runtime.secrets.contains_key(&s.name));
        }
    }
    definition
}

/// The secrets the configuration sets on `container`, which the next revision will reference.
fn configured(container: &str, runtime: &Runtime) -> Vec<Reference> {
    runtime
        .secrets
        .iter()
        .map(|(name, value_from)| {
            let (kind, looked_up) = secret_source(value_from);
            Reference {
                kind,
                name: looked_up,
                by: format!("secrets.{name} of container {container} in deploy.toml"),
                region: None,
            }
        })
        .collect()
}

/// Every object `definition` references, in the order the task definition names them.
pub fn references(definition: &TaskDefinition) -> Vec<Reference> {
    let mut found = Vec::new();
    for container in definition.container_definitions() {
        found.extend(container_references(container));
    }
    let roles = [
        ("taskRoleArn", definition.task_role_arn()),
        ("executionRoleArn", definition.execution_role_arn()),
    ];
    for (by, arn) in roles {
        if let Some(arn) = arn.filter(|a| !a.is_empty()) {
            found.push(Reference {
                kind: Kind::Role,
                name: role_name(arn).to_owned(),
                by: by.to_owned(),
                region: None,
            });
        }
    }
    found
}

fn container_references(container: &ContainerDefinition) -> Vec<Reference> {
    let by = format!("container {}", container.name().unwrap_or("?"));
    let mut found: Vec<Reference> = container
        .secrets()
        .iter()
        .map(|secret| {
            let (kind, name) = secret_source(secret.value_from());
            Reference {
                kind,
                name,
                by: by.clone(),
                region: None,
            }
        })
        .collect();
    let awslogs = container
        .log_configuration()
        .filter(|l| l.log_driver() == &LogDriver::Awslogs);
    if let Some(options) = awslogs.and_then(|l| l.options()) {
        let creates = options.get("awslogs-create-group").map(String::as_str) == Some("true");
        if let (Some(group), false) = (options.get("awslogs-group"), creates) {
            found.push(Reference {
                kind: Kind::LogGroup,
                name: group.clone(),
                by,
                region: options.get("awslogs-region").cloned(),
            });
        }
    }
    found
}

/// What a secret's `valueFrom` names: a Secrets Manager secret (its ARN without the JSON key,
/// version stage and version id) or an SSM parameter (its name, also when given as an ARN).
pub fn secret_source(value_from: &str) -> (Kind, String) {
    let fields: Vec<&str> = value_from.split(':').collect();
    match fields.as_slice() {
        ["arn", _, "secretsmanager", ..] => (Kind::Secret, fields[..7.min(fields.len())].join(":")),
        ["arn", _, "ssm", _, _, resource, ..] => {
            let path = resource.strip_prefix("parameter").unwrap_or(resource);
            let name = match path.strip_prefix('/') {
                Some(rest) if rest.contains('/') => path.to_owned(),
                Some(rest) => rest.to_owned(),
                None => path.to_owned(),
            };
            (Kind::Parameter, name)
        }
        _ => (Kind::Parameter, value_from.to_owned()),
    }
}

/// The role name of a role ARN (`arn:aws:iam::1:role/path/name` is `name`), or the name itself.
pub fn role_name(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}

struct Check<'a> {
    cx: &'a StepContext<'a>,
    task_definition: &'a str,
}

impl Check<'_> {
    fn api(&self, operation: &'static str, name: &str, source: SdkFailure) -> StepError {
        StepError::failure(VerifyError::Api {
            task_definition: self.task_definition.to_owned(),
            operation,
            name: name.to_owned(),
            source,
        })
    }

    /// The SSM parameters among `references` that do not exist, asked in batches.
    async fn parameters(&self, references: &[Reference]) -> Result<Vec<Reference>, StepError> {
        let names: BTreeSet<&str> = references
            .iter()
            .filter(|r| r.kind == Kind::Parameter)
            .map(|r| r.name.as_str())
            .collect();
        let names: Vec<&str> = names.into_iter().collect();
        let mut invalid = BTreeSet::new();
        for batch in names.chunks(SSM_BATCH) {
            let out = self
                .cx
                .clients()
                .ssm()
                .get_parameters()
                .set_names(Some(batch.iter().map(|n| (*n).to_owned()).collect()))
                .send()
                .await
                .map_err(|e| {
                    self.api("ssm:GetParameters", &batch.join(", "), SdkFailure::new(e))
                })?;
            invalid.extend(out.invalid_parameters().iter().cloned());
        }
        Ok(references
            .iter()
            .filter(|r| r.kind == Kind::Parameter && invalid.contains(&r.name))
            .cloned()
            .collect())
    }

    /// Whether a secret, role or log group exists (parameters are asked in batches instead).
    async fn exists(&self, reference: &Reference) -> Result<bool, StepError> {
        match reference.kind {
            Kind::Parameter => Ok(true),
            Kind::Secret => self.secret(&reference.name).await,
            Kind::Role => self.role(&reference.name).await,
            Kind::LogGroup => {
                self.log_group(&reference.name, reference.region.as_deref())
                    .await
            }
        }
    }

    async fn secret(&self, arn: &str) -> Result<bool, StepError> {
        let sent = self
            .cx
            .clients()
            .secretsmanager()
            .describe_secret()
            .secret_id(arn)
            .send()
            .await;
        match sent {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(self.api("secretsmanager:DescribeSecret", arn, SdkFailure::new(e))),
        }
    }

    async fn role(&self, name: &str) -> Result<bool, StepError> {
        let sent = self
            .cx
            .clients()
            .iam()
            .get_role()
            .role_name(name)
            .send()
            .await;
        match sent {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_no_such_entity_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(self.api("iam:GetRole", name, SdkFailure::new(e))),
        }
    }

    /// Whether the log group exists, in `region` when the container names one.
    async fn log_group(&self, group: &str, region: Option<&str>) -> Result<bool, StepError> {
        let mut logs = self.cx.clients().logs().clone();
        if let Some(region) =
            region.filter(|r| Some(*r) != logs.config().region().map(|r| r.as_ref()))
        {
            let config = logs
                .config()
                .to_builder()
                .region(aws_config::Region::new(region.to_owned()))
                .build();
            logs = aws_sdk_cloudwatchlogs::Client::from_conf(config);
        }
        let mut pages = logs
            .describe_log_groups()
            .log_group_name_prefix(group)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page =
                page.map_err(|e| self.api("logs:DescribeLogGroups", group, SdkFailure::new(e)))?;
            if page
                .log_groups()
                .iter()
                .any(|g| g.log_group_name() == Some(group))
            {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_ecs::types::{
        ContainerDefinition, LogConfiguration, LogDriver, Secret, TaskDefinition,
    };

    use aws_sdk_iam::operation::get_role::{GetRoleError, GetRoleOutput};
    use aws_smithy_mocks::{RuleMode, mock, mock_client};
    use aws_smithy_types::error::ErrorMetadata;

    use super::{Kind, references, role_name, secret_source};
    use crate::engine::TestRun;

    fn with_iam(iam: aws_sdk_iam::Client) -> TestRun {
        let mut clients = crate::aws::test_clients();
        clients = clients.with_iam(iam);
        TestRun::new(clients)
    }

    fn with_roles() -> TaskDefinition {
        TaskDefinition::builder()
            .family("api")
            .revision(41)
            .task_role_arn("arn:aws:iam::1:role/app/t-task")
            .execution_role_arn("arn:aws:iam::1:role/t-exec")
            .build()
    }

    fn error(code: &'static str) -> impl Fn() -> GetRoleError {
        move || GetRoleError::generic(ErrorMetadata::builder().code(code).message("no").build())
    }

    /// A role IAM does not know is reported with every other miss, not as a failed call.
    #[tokio::test]
    async fn a_missing_role_is_named_with_where_it_is_referenced() {
        let missing = mock!(aws_sdk_iam::Client::get_role)
            .match_requests(|r| r.role_name() == Some("t-task"))
            .then_error(|| {
                GetRoleError::NoSuchEntityException(
                    aws_sdk_iam::types::error::NoSuchEntityException::builder()
                        .message("no")
                        .build(),
                )
            });
        let found =
            mock!(aws_sdk_iam::Client::get_role).then_output(|| GetRoleOutput::builder().build());
        let run = with_iam(mock_client!(
            aws_sdk_iam,
            RuleMode::MatchAny,
            [&missing, &found]
        ));
        let err =
            super::task_definition(&run.cx(), &with_roles(), "app", &super::Runtime::default())
                .await
                .expect_err("a role is missing");
        assert_eq!(
            err.to_string(),
            "the task definition api:41 references objects that do not exist: \
             role t-task (taskRoleArn); create them (infra/) or run with --skip-verify"
        );
        assert_eq!(found.num_calls(), 1, "the execution role was asked too");
    }

    /// Any other answer than "no such role" fails the check with the SDK's error as source.
    #[tokio::test]
    async fn a_refused_lookup_fails_with_its_cause() {
        let refused = mock!(aws_sdk_iam::Client::get_role).then_error(error("AccessDenied"));
        let run = with_iam(mock_client!(aws_sdk_iam, RuleMode::MatchAny, [&refused]));
        let err =
            super::task_definition(&run.cx(), &with_roles(), "app", &super::Runtime::default())
                .await
                .expect_err("refused");
        let text = err.to_string();
        assert!(
            text.starts_with("iam:GetRole of t-task failed while checking api:41: AccessDenied"),
            "{text}"
        );
        let source = std::error::Error::source(&err).expect("the SDK error is kept");
        assert!(source.to_string().contains("AccessDenied"), "{source}");
        assert_eq!(refused.num_calls(), 1, "the first failure stops the check");
    }

    #[test]
    fn an_ssm_name_is_used_as_it_is() {
        assert_eq!(
            secret_source("/t/dev/token"),
            (Kind::Parameter, "/t/dev/token".to_owned())
        );
        assert_eq!(
            secret_source("token"),
            (Kind::Parameter, "token".to_owned())
        );
    }

    #[test]
    fn an_ssm_arn_becomes_the_parameter_name() {
        assert_eq!(
            secret_source("arn:aws:ssm:eu-west-1:123456789012:parameter/t/dev/token"),
            (Kind::Parameter, "/t/dev/token".to_owned())
        );
        assert_eq!(
            secret_source("arn:aws:ssm:eu-west-1:123456789012:parameter/token"),
            (Kind::Parameter, "token".to_owned())
        );
    }

    #[test]
    fn a_secrets_manager_arn_loses_its_json_key_and_version() {
        let plain = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:t/dev/db-AbCdEf";
        assert_eq!(secret_source(plain), (Kind::Secret, plain.to_owned()));
        assert_eq!(
            secret_source(&format!("{plain}:password::")),
            (Kind::Secret, plain.to_owned())
        );
        assert_eq!(
            secret_source(&format!("{plain}:password:AWSCURRENT:1234")),
            (Kind::Secret, plain.to_owned())
        );
    }

    #[test]
    fn a_role_is_looked_up_by_the_last_segment_of_its_arn() {
        assert_eq!(
            role_name("arn:aws:iam::123456789012:role/service/team/t-task"),
            "t-task"
        );
        assert_eq!(role_name("arn:aws:iam::123456789012:role/t-exec"), "t-exec");
        assert_eq!(role_name("t-exec"), "t-exec");
    }

    #[test]
    fn every_reference_is_found_and_a_created_log_group_is_not_one() {
        let logs = |create: &str| {
            LogConfiguration::builder()
                .log_driver(LogDriver::Awslogs)
                .options("awslogs-group", "/ecs/api")
                .options("awslogs-create-group", create)
                .build()
                .expect("log configuration")
        };
        let secret = |name: &str, from: &str| {
            Secret::builder()
                .name(name)
                .value_from(from)
                .build()
                .expect("secret")
        };
        let api = ContainerDefinition::builder()
            .name("api")
            .secrets(secret("TOKEN", "/t/dev/token"))
            .secrets(secret(
                "DB",
                "arn:aws:secretsmanager:eu-west-1:1:secret:t/dev/db:password::",
            ))
            .log_configuration(logs("false"))
            .build();
        let worker = ContainerDefinition::builder()
            .name("worker")
            .log_configuration(logs("true"))
            .build();
        let definition = TaskDefinition::builder()
            .container_definitions(api)
            .container_definitions(worker)
            .task_role_arn("arn:aws:iam::1:role/app/t-task")
            .build();
        let found: Vec<String> = references(&definition)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            found,
            [
                "SSM parameter /t/dev/token (container api)",
                "secret arn:aws:secretsmanager:eu-west-1:1:secret:t/dev/db (container api)",
                "log group /ecs/api (container api)",
                "role t-task (taskRoleArn)",
            ]
        );
    }
}

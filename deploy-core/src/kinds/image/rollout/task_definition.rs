//! The next revision of an ECS task definition: what runs now, with one container's image,
//! environment and secrets changed, and every other field kept exactly as described.
//!
//! A rollout starts from the service's current task definition (`DescribeTaskDefinition` with
//! `include = [TAGS]`). [`render`] replaces only the configured container's `image`, merges the
//! artifact's `env` and `secrets` into that container key by key, and carries every other
//! registrable field and the tags over unchanged; [`register`] registers it, or does nothing
//! when the current revision already is the rendered one.

use std::collections::BTreeMap;

use aws_sdk_ecs::error::BuildError;
use aws_sdk_ecs::operation::register_task_definition::RegisterTaskDefinitionInput;
use aws_sdk_ecs::operation::register_task_definition::builders::RegisterTaskDefinitionFluentBuilder;
use aws_sdk_ecs::types::{ContainerDefinition, KeyValuePair, Secret, Tag, TaskDefinition};

use crate::aws::SdkFailure;

/// What to change in a task definition.
#[derive(Debug, Clone, Copy)]
pub struct Change<'a> {
    /// Name of the container whose image changes (`container` in `deploy.toml`).
    pub container: &'a str,
    /// The full image reference, `<registry>/<repository>@<digest>`.
    pub image: &'a str,
    /// Environment variables to set on the container (`environment`, name and value); names
    /// not listed keep their current value.
    pub env: &'a BTreeMap<String, String>,
    /// Secrets to set on the container (`secrets`, name and `valueFrom`); names not listed keep
    /// their current value.
    pub secrets: &'a BTreeMap<String, String>,
}

/// The next revision, or that the current one already is it.
#[derive(Debug, Clone, PartialEq)]
pub enum Rendered {
    /// The current revision already runs the image with this environment and these secrets:
    /// nothing is registered.
    Unchanged,
    /// The input of `RegisterTaskDefinition` for the next revision.
    Register(Box<RegisterTaskDefinitionInput>),
}

/// Why the next revision could not be rendered or registered.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// The configured container is not one of the task definition's containers.
    #[error(
        "container `{container}` is not in task definition {task_definition}; it has: {}",
        containers.join(", ")
    )]
    MissingContainer {
        /// The configured container name.
        container: String,
        /// The task definition, `family:revision`.
        task_definition: String,
        /// The names of the containers it has.
        containers: Vec<String>,
    },
    /// A value of the request could not be built (a secret without a name, for instance).
    #[error("the next revision of task definition {task_definition} could not be built: {source}")]
    Build {
        /// The task definition, `family:revision`.
        task_definition: String,
        /// What the SDK's builder refused.
        #[source]
        source: BuildError,
    },
    /// `RegisterTaskDefinition` failed; nothing was registered.
    #[error("registering the next revision of task definition family `{family}` failed: {source}")]
    Register {
        /// The task definition family.
        family: String,
        /// The SDK error.
        #[source]
        source: SdkFailure,
    },
    /// `RegisterTaskDefinition` answered without the ARN of the new revision.
    #[error(
        "ECS registered the next revision of task definition family `{family}` but did not return its ARN"
    )]
    NoArn {
        /// The task definition family.
        family: String,
    },
}

/// Renders the next revision of `current` with `change` applied; `tags` are the task
/// definition's tags (`DescribeTaskDefinition` with `include = [TAGS]`), kept on the new
/// revision. Read-only fields (ARN, revision, status, `requiresAttributes`, `compatibilities`,
/// registration and deregistration times) are not part of the result.
///
/// The result is [`Rendered::Unchanged`] when the containers after the change equal the
/// current ones: the image already is `change.image` and the environment and secrets already
/// hold the listed values. A task definition whose containers share a name (ECS refuses that)
/// has each of them changed.
pub fn render(
    current: &TaskDefinition,
    tags: &[Tag],
    change: &Change<'_>,
) -> Result<Rendered, RenderError> {
    let name = display_name(current);
    let build_error = |source| RenderError::Build {
        task_definition: name.clone(),
        source,
    };
    let mut containers = current.container_definitions.clone().unwrap_or_default();
    let mut found = false;
    for container in containers
        .iter_mut()
        .filter(|c| c.name.as_deref() == Some(change.container))
    {
        found = true;
        apply_change(container, change).map_err(build_error)?;
    }
    if !found {
        return Err(missing_container(current, change.container, name));
    }
    if containers == current.container_definitions.clone().unwrap_or_default() {
        return Ok(Rendered::Unchanged);
    }
    let input = next_revision(current, containers, tags)
        .build()
        .map_err(build_error)?;
    Ok(Rendered::Register(Box::new(input)))
}

/// `definition` to register again as it is, every registrable field and the tags kept: a
/// revision that clean-up deregistered, restored by a rollback.
pub fn again(definition: &TaskDefinition, tags: &[Tag]) -> Result<Rendered, RenderError> {
    let containers = definition.container_definitions.clone().unwrap_or_default();
    next_revision(definition, containers, tags)
        .build()
        .map(|input| Rendered::Register(Box::new(input)))
        .map_err(|source| RenderError::Build {
            task_definition: display_name(definition),
            source,
        })
}

/// Registers `rendered` with `client` when it is [`Rendered::Register`] and returns the ARN of
/// the revision that now holds the change: the new revision's, or `current_arn` when the
/// current revision already was the rendered one.
pub async fn register(
    client: &aws_sdk_ecs::Client,
    current_arn: &str,
    rendered: Rendered,
) -> Result<String, RenderError> {
    let input = match rendered {
        Rendered::Unchanged => return Ok(current_arn.to_owned()),
        Rendered::Register(input) => *input,
    };
    let family = input.family.clone().unwrap_or_default();
    let output = apply(input, client.register_task_definition())
        .send()
        .await
        .map_err(|err| RenderError::Register {
            family: family.clone(),
            source: SdkFailure::new(err),
        })?;
    output
        .task_definition
        .and_then(|definition| definition.task_definition_arn)
        .ok_or(RenderError::NoArn { family })
}

/// Sets every field of `input` on `builder`.
// `inferenceAccelerators` is deprecated, but a definition that still has them must keep them.
#[allow(deprecated)]
pub fn apply(
    input: RegisterTaskDefinitionInput,
    builder: RegisterTaskDefinitionFluentBuilder,
) -> RegisterTaskDefinitionFluentBuilder {
    builder
        .set_family(input.family)
        .set_task_role_arn(input.task_role_arn)
        .set_execution_role_arn(input.execution_role_arn)
        .set_network_mode(input.network_mode)
        .set_container_definitions(input.container_definitions)
        .set_volumes(input.volumes)
        .set_placement_constraints(input.placement_constraints)
        .set_requires_compatibilities(input.requires_compatibilities)
        .set_cpu(input.cpu)
        .set_memory(input.memory)
        .set_tags(input.tags)
        .set_pid_mode(input.pid_mode)
        .set_ipc_mode(input.ipc_mode)
        .set_proxy_configuration(input.proxy_configuration)
        .set_inference_accelerators(input.inference_accelerators)
        .set_ephemeral_storage(input.ephemeral_storage)
        .set_runtime_platform(input.runtime_platform)
        .set_enable_fault_injection(input.enable_fault_injection)
}

/// Every registrable field of `current`, with `containers` in place of its containers.
// `inferenceAccelerators` is deprecated, but a definition that still has them must keep them.
#[allow(deprecated)]
fn next_revision(
    current: &TaskDefinition,
    containers: Vec<ContainerDefinition>,
    tags: &[Tag],
) -> aws_sdk_ecs::operation::register_task_definition::builders::RegisterTaskDefinitionInputBuilder
{
    let current = current.clone();
    RegisterTaskDefinitionInput::builder()
        .set_family(current.family)
        .set_task_role_arn(current.task_role_arn)
        .set_execution_role_arn(current.execution_role_arn)
        .set_network_mode(current.network_mode)
        .set_container_definitions(Some(containers))
        .set_volumes(current.volumes)
        .set_placement_constraints(current.placement_constraints)
        .set_requires_compatibilities(current.requires_compatibilities)
        .set_cpu(current.cpu)
        .set_memory(current.memory)
        .set_tags((!tags.is_empty()).then(|| tags.to_vec()))
        .set_pid_mode(current.pid_mode)
        .set_ipc_mode(current.ipc_mode)
        .set_proxy_configuration(current.proxy_configuration)
        .set_inference_accelerators(current.inference_accelerators)
        .set_ephemeral_storage(current.ephemeral_storage)
        .set_runtime_platform(current.runtime_platform)
        .set_enable_fault_injection(current.enable_fault_injection)
}

fn apply_change(
    container: &mut ContainerDefinition,
    change: &Change<'_>,
) -> Result<(), BuildError> {
    container.image = Some(change.image.to_owned());
    container.environment = merge_environment(container.environment.take(), change.env);
    container.secrets = merge_secrets(container.secrets.take(), change.secrets)?;
    Ok(())
}

/// `env` merged into `current`: a listed name replaces the value of every entry of that name,
/// in place; names not there yet are appended in sorted order; other entries stay as they are.
fn merge_environment(
    current: Option<Vec<KeyValuePair>>,
    env: &BTreeMap<String, String>,
) -> Option<Vec<KeyValuePair>> {
    if env.is_empty() {
        return current;
    }
    let mut list = current.unwrap_or_default();
    for (name, value) in env {
        let mut found = false;
        for pair in list
            .iter_mut()
            .filter(|pair| pair.name.as_deref() == Some(name))
        {
            pair.value = Some(value.clone());
            found = true;
        }
        if !found {
            list.push(KeyValuePair::builder().name(name).value(value).build());
        }
    }
    Some(list)
}

/// `secrets` merged into `current` as [`merge_environment`] merges variables.
fn merge_secrets(
    current: Option<Vec<Secret>>,
    secrets: &BTreeMap<String, String>,
) -> Result<Option<Vec<Secret>>, BuildError> {
    if secrets.is_empty() {
        return Ok(current);
    }
    let mut list = current.unwrap_or_default();
    for (name, value_from) in secrets {
        let mut found = false;
        for secret in list.iter_mut().filter(|secret| &secret.name == name) {
            secret.value_from.clone_from(value_from);
            found = true;
        }
        if !found {
            list.push(
                Secret::builder()
                    .name(name)
                    .value_from(value_from)
                    .build()?,
            );
        }
    }
    Ok(Some(list))
}

fn missing_container(current: &TaskDefinition, container: &str, name: String) -> RenderError {
    let containers = current
        .container_definitions()
        .iter()
        .map(|c| c.name().unwrap_or("(unnamed)").to_owned())
        .collect();
    RenderError::MissingContainer {
        container: container.to_owned(),
        task_definition: name,
        containers,
    }
}

/// `family:revision`, as ECS names a revision.
fn display_name(current: &TaskDefinition) -> String {
    match current.family() {
        Some(family) => format!("{family}:{}", current.revision),
        None => current
            .task_definition_arn()
            .unwrap_or("(without family)")
            .to_owned(),
    }
}

#[cfg(test)]
mod tests;

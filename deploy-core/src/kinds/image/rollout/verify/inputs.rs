//! Before the lock: the AWS objects an image rollout's configuration names exist. The
//! `alarms` (CloudWatch `DescribeAlarms`), the `lifecycle_hooks` functions (Lambda
//! `GetFunction`) and the `pre_deploy.task_definition` (ECS `DescribeTaskDefinition`). A missing
//! one is a problem of the configuration, like a missing Lambda alarm: exit 2, naming the key
//! and the value, nothing changed and no lock taken.

use crate::aws::SdkFailure;
use crate::engine::{StepContext, StepError};
use crate::error::{Classify, ErrorClass};
use crate::kinds::image::rollout::{EcsService, ImageRollout, LifecycleHook, PreDeploy};

/// `DescribeAlarms` takes at most 100 names.
const ALARM_BATCH: usize = 100;

/// Why the configured objects of a rollout could not be confirmed.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// Configured objects do not exist.
    #[error("`{key}`: {what} {} not found in the environment's account and region; create {} or fix `{key}` in deploy.toml (nothing was changed)",
        names.join(", "),
        if names.len() == 1 { "it" } else { "them" })]
    Missing {
        /// The configuration key (`rollout.alarms`).
        key: &'static str,
        /// What they are (`CloudWatch alarm`).
        what: &'static str,
        /// The missing values, as configured.
        names: Vec<String>,
    },
    /// An AWS call of the check failed.
    #[error("{operation} of {name} failed while checking `{key}`: {source}")]
    Api {
        /// The configuration key.
        key: &'static str,
        /// The operation (`lambda:GetFunction`).
        operation: &'static str,
        /// The object looked up.
        name: String,
        /// The SDK's error.
        #[source]
        source: SdkFailure,
    },
}

impl Classify for InputError {
    fn class(&self) -> ErrorClass {
        match self {
            InputError::Missing { .. } => ErrorClass::Usage,
            InputError::Api { .. } => ErrorClass::Failure,
        }
    }
}

/// Fails unless every alarm, hook function and migration task definition `rollout` names
/// exists in the environment.
pub(crate) async fn rollout_inputs(
    cx: &StepContext<'_>,
    rollout: &ImageRollout,
) -> Result<(), StepError> {
    let (service, hooks, pre_deploy): (Option<&EcsService>, &[LifecycleHook], _) = match rollout {
        ImageRollout::EcsRolling(service) => (Some(service), &[], service.pre_deploy.as_ref()),
        ImageRollout::CodedeployBlueGreen {
            service,
            lifecycle_hooks,
            ..
        } => (Some(service), lifecycle_hooks, service.pre_deploy.as_ref()),
        ImageRollout::EcsBlueGreen(bg) => (
            Some(&bg.service),
            &bg.lifecycle_hooks,
            bg.service.pre_deploy.as_ref(),
        ),
        ImageRollout::TaskDefinitions(jobs) => (None, &[], jobs.pre_deploy.as_ref()),
        ImageRollout::None => (None, &[], None),
    };
    if let Some(service) = service {
        alarms(cx, &service.alarms).await?;
    }
    hook_functions(cx, hooks).await?;
    if let Some(pre) = pre_deploy {
        task_definition(cx, pre).await?;
    }
    Ok(())
}

fn missing(key: &'static str, what: &'static str, names: Vec<String>) -> Result<(), StepError> {
    if names.is_empty() {
        return Ok(());
    }
    Err(StepError::from(InputError::Missing { key, what, names }))
}

async fn alarms(cx: &StepContext<'_>, names: &[String]) -> Result<(), StepError> {
    const KEY: &str = "rollout.alarms";
    let mut found = Vec::new();
    for chunk in names.chunks(ALARM_BATCH) {
        let out = cx
            .clients()
            .cloudwatch()
            .describe_alarms()
            .set_alarm_names(Some(chunk.to_vec()))
            .max_records(100)
            .send()
            .await
            .map_err(|err| InputError::Api {
                key: KEY,
                operation: "cloudwatch:DescribeAlarms",
                name: chunk.join(", "),
                source: SdkFailure::new(err),
            })?;
        let metric = out.metric_alarms().iter().filter_map(|a| a.alarm_name());
        let composite = out.composite_alarms().iter().filter_map(|a| a.alarm_name());
        found.extend(metric.chain(composite).map(str::to_owned));
    }
    let absent = names.iter().filter(|n| !found.contains(n)).cloned();
    missing(KEY, "CloudWatch alarm", absent.collect())
}

async fn hook_functions(cx: &StepContext<'_>, hooks: &[LifecycleHook]) -> Result<(), StepError> {
    const KEY: &str = "rollout.lifecycle_hooks.function";
    let mut absent = Vec::new();
    for hook in hooks {
        let got = cx
            .clients()
            .lambda()
            .get_function()
            .function_name(&hook.function)
            .send()
            .await;
        match got {
            Ok(_) => {}
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_resource_not_found_exception()) =>
            {
                absent.push(hook.function.clone());
            }
            Err(err) => {
                return Err(StepError::from(InputError::Api {
                    key: KEY,
                    operation: "lambda:GetFunction",
                    name: hook.function.clone(),
                    source: SdkFailure::new(err),
                }));
            }
        }
    }
    missing(KEY, "Lambda function", absent)
}

async fn task_definition(cx: &StepContext<'_>, pre: &PreDeploy) -> Result<(), StepError> {
    const KEY: &str = "rollout.pre_deploy.task_definition";
    let got = cx
        .clients()
        .ecs()
        .describe_task_definition()
        .task_definition(&pre.task_definition)
        .send()
        .await;
    match got {
        Ok(out) if out.task_definition().is_some() => Ok(()),
        Ok(_) => missing(KEY, "task definition", vec![pre.task_definition.clone()]),
        // ECS answers ClientException "Unable to describe task definition." for a family or
        // revision it does not have.
        Err(err)
            if err
                .as_service_error()
                .is_some_and(aws_sdk_ecs::operation::describe_task_definition::DescribeTaskDefinitionError::is_client_exception) =>
        {
            missing(KEY, "task definition", vec![pre.task_definition.clone()])
        }
        Err(err) => Err(StepError::from(InputError::Api {
            key: KEY,
            operation: "ecs:DescribeTaskDefinition",
            name: pre.task_definition.clone(),
            source: SdkFailure::new(err),
        })),
    }
}

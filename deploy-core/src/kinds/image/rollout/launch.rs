//! How the migration task is launched: the network configuration, launch type or capacity
//! provider strategy and platform version of what normally runs the image. For a service,
//! the service's; for `task-definitions` jobs, the ECS parameters of the first configured
//! EventBridge rule target or Scheduler schedule that runs one of the families; without
//! either, the launch type the migration family requires (FARGATE when it requires only
//! that) and no network configuration.

use aws_sdk_ecs::types::{
    AssignPublicIp, AwsVpcConfiguration, CapacityProviderStrategyItem, LaunchType,
    NetworkConfiguration, Service, TaskDefinition,
};
use serde::{Deserialize, Serialize};

/// Where the migration takes its launch settings from, besides a service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LaunchFrom {
    /// The ECS target of an EventBridge rule (`rule` or `bus/rule`).
    Rule(String),
    /// The ECS target of a Scheduler schedule (`name` or `group/name`).
    Schedule(String),
}

/// The launch settings of a `RunTask`.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Launch {
    pub network: Option<NetworkConfiguration>,
    pub launch_type: Option<LaunchType>,
    pub capacity: Vec<CapacityProviderStrategyItem>,
    pub platform_version: Option<String>,
}

impl Launch {
    /// The service's own.
    pub(crate) fn of_service(service: &Service) -> Launch {
        Launch {
            network: service.network_configuration().cloned(),
            launch_type: service.launch_type().cloned(),
            capacity: service.capacity_provider_strategy().to_vec(),
            platform_version: service.platform_version().map(str::to_owned),
        }
    }

    /// FARGATE when `definition` requires only that; otherwise ECS's default.
    pub(crate) fn of_definition(definition: &TaskDefinition) -> Launch {
        let requires = definition.requires_compatibilities();
        let fargate_only = !requires.is_empty()
            && requires
                .iter()
                .all(|c| c == &aws_sdk_ecs::types::Compatibility::Fargate);
        Launch {
            launch_type: fargate_only.then_some(LaunchType::Fargate),
            ..Launch::default()
        }
    }

    /// A capacity provider strategy replaces the launch type (ECS takes one or the other).
    pub(crate) fn launch_type(&self) -> Option<LaunchType> {
        if self.capacity.is_empty() {
            self.launch_type.clone()
        } else {
            None
        }
    }

    /// The strategy, when there is one.
    pub(crate) fn capacity(&self) -> Option<Vec<CapacityProviderStrategyItem>> {
        (!self.capacity.is_empty()).then(|| self.capacity.clone())
    }
}

/// Converts the ECS parameters of an EventBridge or Scheduler target (the same shapes in
/// each SDK) into ECS launch settings.
macro_rules! launch_from_target {
    ($name:ident, $krate:ident) => {
        pub(crate) fn $name(params: &$krate::types::EcsParameters) -> Launch {
            let network = params
                .network_configuration
                .as_ref()
                .and_then(|n| n.awsvpc_configuration.as_ref())
                .and_then(|vpc| {
                    AwsVpcConfiguration::builder()
                        .set_subnets(Some(vpc.subnets.clone()))
                        .set_security_groups(vpc.security_groups.clone())
                        .set_assign_public_ip(
                            vpc.assign_public_ip
                                .as_ref()
                                .map(|a| AssignPublicIp::from(a.as_str())),
                        )
                        .build()
                        .ok()
                })
                .map(|vpc| {
                    NetworkConfiguration::builder()
                        .awsvpc_configuration(vpc)
                        .build()
                });
            let capacity = params
                .capacity_provider_strategy
                .iter()
                .flatten()
                .filter_map(|item| {
                    CapacityProviderStrategyItem::builder()
                        .capacity_provider(&item.capacity_provider)
                        .weight(item.weight)
                        .base(item.base)
                        .build()
                        .ok()
                })
                .collect();
            Launch {
                network,
                launch_type: params
                    .launch_type
                    .as_ref()
                    .map(|l| LaunchType::from(l.as_str())),
                capacity,
                platform_version: params.platform_version.clone(),
            }
        }
    };
}

launch_from_target!(of_rule_target, aws_sdk_eventbridge);
launch_from_target!(of_schedule_target, aws_sdk_scheduler);

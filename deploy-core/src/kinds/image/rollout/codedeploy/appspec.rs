//! The AppSpec of an ECS blue/green deployment (CodeDeploy User Guide, "AppSpec 'resources'
//! section for Amazon ECS deployments"): the new task definition, the container and port the
//! load balancer sends to, and the service's platform version, network configuration and
//! capacity provider strategy, sent as `appSpecContent` (JSON) with its sha256.

use crate::engine::StepError;
use crate::error::ErrorClass;
use crate::kinds::image::rollout::LifecycleHook;
use crate::kinds::image::rollout::ecs_blue_green::config::CODEDEPLOY_HOOKS;
use aws_sdk_ecs::types::{Service, TaskDefinition};
use serde_json::{Value, json};

/// The load balancer's container and port are not what the task definition has.
#[derive(Debug, thiserror::Error)]
pub enum PortError {
    /// The configured port is not a port mapping of the container.
    #[error(
        "`container_port` is {port}, but container {container} of {task_definition} maps {}; set `container_port` to one of them",
        mapped(ports)
    )]
    NotMapped {
        /// The configured port.
        port: u16,
        /// The container.
        container: String,
        /// `family:revision`.
        task_definition: String,
        /// The ports the container maps.
        ports: Vec<i32>,
    },
    /// No port configured and none in the service's `loadBalancers` for the container.
    #[error(
        "service {service} has no load balancer entry for container {container}; set `container_port` in the rollout"
    )]
    Unknown {
        /// The service.
        service: String,
        /// The container.
        container: String,
    },
}

fn mapped(ports: &[i32]) -> String {
    if ports.is_empty() {
        return "no port".to_owned();
    }
    let list: Vec<String> = ports.iter().map(ToString::to_string).collect();
    list.join(", ")
}

/// The port the load balancer sends to: `configured`, which must be mapped by the container,
/// or the service's `loadBalancers` entry for the container. A mismatch is a configuration
/// error (exit 2).
pub(crate) fn container_port(
    service: &Service,
    definition: &TaskDefinition,
    container: &str,
    configured: Option<u16>,
) -> Result<i32, StepError> {
    let from_service = service
        .load_balancers()
        .iter()
        .find(|lb| lb.container_name() == Some(container))
        .and_then(|lb| lb.container_port());
    let Some(port) = configured.map(i32::from).or(from_service) else {
        return Err(StepError::new(
            ErrorClass::Usage,
            PortError::Unknown {
                service: service.service_name().unwrap_or_default().to_owned(),
                container: container.to_owned(),
            },
        ));
    };
    let ports: Vec<i32> = definition
        .container_definitions()
        .iter()
        .filter(|c| c.name() == Some(container))
        .flat_map(|c| c.port_mappings())
        .filter_map(|m| m.container_port())
        .collect();
    if ports.contains(&port) {
        return Ok(port);
    }
    Err(StepError::new(
        ErrorClass::Usage,
        PortError::NotMapped {
            port: u16::try_from(port).unwrap_or_default(),
            container: container.to_owned(),
            task_definition: format!(
                "{}:{}",
                definition.family().unwrap_or("?"),
                definition.revision()
            ),
            ports,
        },
    ))
}

/// The AppSpec (JSON) and its hex sha256.
pub(crate) fn render(
    service: &Service,
    task_definition: &str,
    (container, port): (&str, i32),
    hooks: &[LifecycleHook],
) -> (String, String) {
    let mut properties = json!({
        "TaskDefinition": task_definition,
        "LoadBalancerInfo": { "ContainerName": container, "ContainerPort": port },
    });
    if let Some(version) = service.platform_version() {
        properties["PlatformVersion"] = json!(version);
    }
    if let Some(vpc) = service
        .network_configuration()
        .and_then(|n| n.awsvpc_configuration())
    {
        let mut awsvpc = json!({ "Subnets": vpc.subnets() });
        if !vpc.security_groups().is_empty() {
            awsvpc["SecurityGroups"] = json!(vpc.security_groups());
        }
        if let Some(public) = vpc.assign_public_ip() {
            awsvpc["AssignPublicIp"] = json!(public.as_str());
        }
        properties["NetworkConfiguration"] = json!({ "AwsvpcConfiguration": awsvpc });
    }
    let strategy: Vec<Value> = service
        .capacity_provider_strategy()
        .iter()
        .map(|item| {
            json!({
                "CapacityProvider": item.capacity_provider(),
                "Base": item.base(),
                "Weight": item.weight(),
            })
        })
        .collect();
    if !strategy.is_empty() {
        properties["CapacityProviderStrategy"] = json!(strategy);
    }
    let mut appspec = json!({
        "version": 0.0,
        "Resources": [{ "TargetService": { "Type": "AWS::ECS::Service", "Properties": properties } }],
    });
    let named: Vec<Value> = CODEDEPLOY_HOOKS
        .iter()
        .flat_map(|event| {
            hooks
                .iter()
                .filter(move |h| h.stages.iter().any(|s| s == event))
                .map(move |h| json!({ *event: h.function }))
        })
        .collect();
    if !named.is_empty() {
        appspec["Hooks"] = json!(named);
    }
    let content = appspec.to_string();
    let sha256 = crate::hash::sha256_hex(content.as_bytes());
    (content, sha256)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_ecs::types::{
        AssignPublicIp, AwsVpcConfiguration, ContainerDefinition, LoadBalancer,
        NetworkConfiguration, PortMapping,
    };

    fn service() -> Service {
        Service::builder()
            .service_name("api")
            .platform_version("1.4.0")
            .load_balancers(
                LoadBalancer::builder()
                    .container_name("api")
                    .container_port(8080)
                    .build(),
            )
            .network_configuration(
                NetworkConfiguration::builder()
                    .awsvpc_configuration(
                        AwsVpcConfiguration::builder()
                            .subnets("subnet-1")
                            .security_groups("sg-1")
                            .assign_public_ip(AssignPublicIp::Disabled)
                            .build()
                            .expect("awsvpc"),
                    )
                    .build(),
            )
            .build()
    }

    fn definition() -> TaskDefinition {
        TaskDefinition::builder()
            .family("api")
            .revision(7)
            .container_definitions(
                ContainerDefinition::builder()
                    .name("api")
                    .port_mappings(PortMapping::builder().container_port(8080).build())
                    .port_mappings(PortMapping::builder().container_port(9090).build())
                    .build(),
            )
            .build()
    }

    #[test]
    fn the_port_comes_from_the_service_or_the_config_and_must_be_mapped() {
        let (s, d) = (service(), definition());
        assert_eq!(container_port(&s, &d, "api", None).ok(), Some(8080));
        assert_eq!(container_port(&s, &d, "api", Some(9090)).ok(), Some(9090));
        let wrong = container_port(&s, &d, "api", Some(8081)).expect_err("not mapped");
        assert_eq!(wrong.class(), ErrorClass::Usage);
        assert!(wrong.to_string().contains("maps 8080, 9090"), "{wrong}");
        let none = container_port(&s, &d, "worker", None).expect_err("no entry");
        assert!(none.to_string().contains("set `container_port`"), "{none}");
    }

    #[test]
    fn the_appspec_names_the_revision_container_port_and_network() {
        let hook = LifecycleHook {
            function: "arn:aws:lambda:eu-west-1:1:function:smoke".into(),
            stages: vec!["AfterAllowTestTraffic".into()],
            role: String::new(),
        };
        let (content, sha256) = render(&service(), "arn:td/api:8", ("api", 8080), &[hook]);
        let appspec: Value = serde_json::from_str(&content).expect("json");
        let properties = &appspec["Resources"][0]["TargetService"]["Properties"];
        assert_eq!(properties["TaskDefinition"], "arn:td/api:8");
        assert_eq!(properties["LoadBalancerInfo"]["ContainerPort"], 8080);
        assert_eq!(properties["PlatformVersion"], "1.4.0");
        let vpc = &properties["NetworkConfiguration"]["AwsvpcConfiguration"];
        assert_eq!(vpc["Subnets"], json!(["subnet-1"]));
        assert_eq!(vpc["AssignPublicIp"], "DISABLED");
        assert_eq!(sha256.len(), 64);
        let hooks =
            json!([{ "AfterAllowTestTraffic": "arn:aws:lambda:eu-west-1:1:function:smoke" }]);
        assert_eq!(appspec["Hooks"], hooks);
    }
}

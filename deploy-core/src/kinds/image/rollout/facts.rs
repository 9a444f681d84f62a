//! What an image's services and job families run, as facts for `diff`: the task definition's
//! fields other than the released image (cpu, memory, roles, network mode, each container's
//! image, environment values, secret names (never their values), ports, health check, log
//! configuration), and a service's desired count and capacity.

use aws_sdk_ecs::types::{ContainerDefinition, TaskDefinition};

use super::status::{describe, describe_service};
use super::{EcsService, JobFamilies};
use crate::aws::AwsClients;
use crate::kinds::Facts;

/// The facts of `service` and the task definition it runs.
pub(crate) async fn service(clients: &AwsClients, service: &EcsService) -> Result<Facts, String> {
    let found = describe_service(clients, service).await?;
    let mut facts = Facts::new();
    facts.insert("desired_count".into(), found.desired_count().to_string());
    if let Some(launch) = found.launch_type() {
        facts.insert("launch_type".into(), launch.as_str().to_owned());
    }
    let capacity: Vec<String> = found
        .capacity_provider_strategy()
        .iter()
        .map(|c| format!("{}:{}:{}", c.capacity_provider(), c.weight(), c.base()))
        .collect();
    if !capacity.is_empty() {
        facts.insert("capacity".into(), capacity.join(","));
    }
    let arn = found.task_definition().unwrap_or_default();
    task_definition(&describe(clients, arn).await?, "", &mut facts);
    Ok(facts)
}

/// The facts of each family's latest revision, prefixed `families[i].`.
pub(crate) async fn families(clients: &AwsClients, jobs: &JobFamilies) -> Result<Facts, String> {
    let mut facts = Facts::new();
    for (index, family) in jobs.families.iter().enumerate() {
        let prefix = format!("families[{index}].");
        task_definition(&describe(clients, family).await?, &prefix, &mut facts);
    }
    Ok(facts)
}

/// Adds the fields of `definition` under `prefix`.
fn task_definition(definition: &TaskDefinition, prefix: &str, facts: &mut Facts) {
    let mut put = |key: &str, value: Option<&str>| {
        if let Some(value) = value {
            facts.insert(format!("{prefix}{key}"), value.to_owned());
        }
    };
    put("cpu", definition.cpu());
    put("memory", definition.memory());
    put("task_role", definition.task_role_arn());
    put("execution_role", definition.execution_role_arn());
    put(
        "network_mode",
        definition.network_mode().map(|m| m.as_str()),
    );
    for container in definition.container_definitions() {
        let name = container.name().unwrap_or("?");
        container_facts(container, &format!("{prefix}{name}."), facts);
    }
}

fn container_facts(container: &ContainerDefinition, prefix: &str, facts: &mut Facts) {
    let mut put = |key: String, value: String| {
        facts.insert(format!("{prefix}{key}"), value);
    };
    put(
        "image".into(),
        container.image().unwrap_or_default().to_owned(),
    );
    if container.cpu() != 0 {
        put("cpu".into(), container.cpu().to_string());
    }
    if let Some(memory) = container.memory() {
        put("memory".into(), memory.to_string());
    }
    for pair in container.environment() {
        let value = pair.value().unwrap_or_default().to_owned();
        put(format!("env.{}", pair.name().unwrap_or("?")), value);
    }
    for secret in container.secrets() {
        // The name only: what the secret holds is never read or shown.
        put(format!("secret.{}", secret.name()), "set".into());
    }
    let ports: Vec<String> = container
        .port_mappings()
        .iter()
        .map(|p| {
            let port = p.container_port().unwrap_or_default();
            let protocol = p.protocol().map_or("tcp", |p| p.as_str());
            format!("{port}/{protocol}")
        })
        .collect();
    if !ports.is_empty() {
        put("ports".into(), ports.join(","));
    }
    if let Some(check) = container.health_check() {
        let command = check.command().join(" ");
        let timing = (check.interval(), check.timeout(), check.retries());
        put("health_check".into(), format!("{command} {timing:?}"));
    }
    if let Some(log) = container.log_configuration() {
        let mut options: Vec<String> = log
            .options()
            .into_iter()
            .flatten()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        options.sort();
        put(
            "log".into(),
            format!("{} {}", log.log_driver().as_str(), options.join(" ")),
        );
    }
}

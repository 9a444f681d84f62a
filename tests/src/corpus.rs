//! The task definitions of `tests/corpus/task-definitions`, written by others (sources in its
//! README), and what the tests need to register them in moto as their authors wrote them and
//! to compare a next revision with the one before.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use aws_sdk_ecs::types::{ContainerDefinition, Tag, TaskDefinition, TaskDefinitionField};
use serde_json::{Value, json};

use crate::{REGION, workspace_root};

/// Fields ECS returns but refuses in a registration.
pub const READ_ONLY: [&str; 9] = [
    "taskDefinitionArn",
    "revision",
    "status",
    "requiresAttributes",
    "compatibilities",
    "registeredAt",
    "registeredBy",
    "deregisteredAt",
    "deleteRequestedAt",
];

/// Every corpus definition, by file name.
pub fn corpus() -> Vec<(String, Value)> {
    let dir = workspace_root().join("tests/corpus/task-definitions");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("corpus folder")
        .map(|entry| entry.expect("corpus entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).expect("corpus file");
            let value = serde_json::from_str(&text).expect("corpus file is JSON");
            let name = path.file_name().expect("file name").to_string_lossy();
            (name.into_owned(), value)
        })
        .collect()
}

/// The registration body for a corpus definition (see the module docs for what changes).
pub fn moto_ready(raw: &Value, family: &str) -> Value {
    let mut body = raw.get("taskDefinition").unwrap_or(raw).clone();
    let object = body
        .as_object_mut()
        .expect("a task definition is an object");
    for field in READ_ONLY {
        object.remove(field);
    }
    object.insert("family".to_owned(), json!(family));
    let task_memory = object.contains_key("memory");
    let containers = object
        .get_mut("containerDefinitions")
        .and_then(Value::as_array_mut)
        .expect("containerDefinitions");
    for container in containers.iter_mut().filter_map(Value::as_object_mut) {
        let sized = container.contains_key("memory") || container.contains_key("memoryReservation");
        if !task_memory && !sized {
            container.insert("memoryReservation".to_owned(), json!(128));
        }
    }
    body
}

/// One ECS JSON call to moto over plain HTTP; returns the status and the answer.
pub fn moto_call(moto_url: &str, action: &str, body: &Value) -> (u16, Value) {
    let host = moto_url.trim_start_matches("http://").trim_end_matches('/');
    let mut stream = TcpStream::connect(host).expect("moto listens");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let body = body.to_string();
    write!(
        stream,
        "POST / HTTP/1.0\r\nHost: {host}\r\nContent-Type: application/x-amz-json-1.1\r\n\
         X-Amz-Target: AmazonEC2ContainerServiceV20141113.{action}\r\n\
         Authorization: AWS4-HMAC-SHA256 Credential=ANOTREAL/20260101/{REGION}/ecs/aws4_request, \
         SignedHeaders=host, Signature=0\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .expect("request written");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("answer read");
    let (head, payload) = answer.split_once("\r\n\r\n").expect("HTTP answer");
    let status = head
        .get(9..12)
        .and_then(|code| code.parse().ok())
        .expect("status code");
    (status, serde_json::from_str(payload).unwrap_or(Value::Null))
}

/// Every value of `wanted` is in `got` at the same place (objects may hold more keys).
pub fn contains(got: &Value, wanted: &Value, path: &str) -> Result<(), String> {
    match (got, wanted) {
        (Value::Object(got), Value::Object(wanted)) => {
            wanted.iter().try_for_each(|(key, value)| {
                let inner = got
                    .get(key)
                    .ok_or_else(|| format!("{path}/{key}: not returned"))?;
                contains(inner, value, &format!("{path}/{key}"))
            })
        }
        (Value::Array(got), Value::Array(wanted)) if got.len() == wanted.len() => got
            .iter()
            .zip(wanted)
            .enumerate()
            .try_for_each(|(at, (got, wanted))| contains(got, wanted, &format!("{path}[{at}]"))),
        _ if got == wanted => Ok(()),
        _ => Err(format!("{path}: sent {wanted}, got {got}")),
    }
}

pub async fn describe(client: &aws_sdk_ecs::Client, name: &str) -> (TaskDefinition, Vec<Tag>) {
    let output = client
        .describe_task_definition()
        .task_definition(name)
        .include(TaskDefinitionField::Tags)
        .send()
        .await
        .expect("DescribeTaskDefinition");
    let tags = output.tags.clone().unwrap_or_default();
    (output.task_definition.expect("a task definition"), tags)
}

/// The container to change: the one with the most environment entries and secrets (the
/// last of equals), so merges meet existing entries where the corpus has any.
pub fn pick(definition: &TaskDefinition) -> ContainerDefinition {
    definition
        .container_definitions()
        .iter()
        .max_by_key(|c| c.environment().len() + c.secrets().len())
        .expect("at least one container")
        .clone()
}

/// Replaces the first existing name's value and adds two names that sort before and after
/// each other (`A...` < `Z...`), whatever the container has.
pub fn changes(
    container: &ContainerDefinition,
) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
    let mut env = BTreeMap::from([
        ("ZZ_DEPLOY_RELEASE".to_owned(), "r-42".to_owned()),
        ("AA_DEPLOY_ENV".to_owned(), "staging".to_owned()),
    ]);
    if let Some(name) = container.environment().first().and_then(|pair| pair.name()) {
        env.insert(name.to_owned(), "replaced by deploy".to_owned());
    }
    let mut secrets = BTreeMap::from([
        (
            "ZZ_API_TOKEN".to_owned(),
            "arn:aws:ssm:eu-west-1:123456789012:parameter/planwise/token".to_owned(),
        ),
        (
            "AA_DATABASE_URL".to_owned(),
            "arn:aws:secretsmanager:eu-west-1:123456789012:secret:planwise/db".to_owned(),
        ),
    ]);
    if let Some(secret) = container.secrets().first() {
        secrets.insert(secret.name().to_owned(), "/planwise/replaced".to_owned());
    }
    (env, secrets)
}

/// `old` with the values of `change` for the names it lists, then the names it did not have,
/// sorted.
pub fn merged(
    old: Vec<(String, String)>,
    change: &BTreeMap<String, String>,
) -> Vec<(String, String)> {
    let mut out: Vec<_> = old
        .iter()
        .map(|(name, value)| (name.clone(), change.get(name).unwrap_or(value).clone()))
        .collect();
    let new = change
        .iter()
        .filter(|(name, _)| !old.iter().any(|(had, _)| had == *name));
    out.extend(new.map(|(name, value)| (name.clone(), value.clone())));
    out
}

pub fn env_pairs(container: &ContainerDefinition) -> Vec<(String, String)> {
    container
        .environment()
        .iter()
        .map(|p| {
            let name = p.name().unwrap_or_default().to_owned();
            (name, p.value().unwrap_or_default().to_owned())
        })
        .collect()
}

pub fn secret_pairs(container: &ContainerDefinition) -> Vec<(String, String)> {
    container
        .secrets()
        .iter()
        .map(|s| (s.name().to_owned(), s.value_from().to_owned()))
        .collect()
}

/// `new` with the read-only fields and the changed container's image, environment and secrets
/// of `old`: equal to `old` when nothing else changed.
pub fn with_old_changeables(
    new: &TaskDefinition,
    old: &TaskDefinition,
    container: &str,
) -> TaskDefinition {
    let mut out = new.clone();
    out.task_definition_arn.clone_from(&old.task_definition_arn);
    out.revision = old.revision;
    out.status.clone_from(&old.status);
    out.requires_attributes.clone_from(&old.requires_attributes);
    out.compatibilities.clone_from(&old.compatibilities);
    out.registered_at = old.registered_at;
    out.registered_by.clone_from(&old.registered_by);
    out.deregistered_at = old.deregistered_at;
    out.delete_requested_at = old.delete_requested_at;
    let old_container = old
        .container_definitions()
        .iter()
        .find(|c| c.name() == Some(container))
        .expect("the changed container was there");
    for c in out.container_definitions.iter_mut().flatten() {
        if c.name() == Some(container) {
            c.image.clone_from(&old_container.image);
            c.environment.clone_from(&old_container.environment);
            c.secrets.clone_from(&old_container.secrets);
        }
    }
    out
}

//! `rollout::task_definition` end to end against moto, on task definitions written by others
//! (`tests/corpus/task-definitions`, sources in its README).
//!
//! Each corpus definition is registered in moto as its author wrote it (the JSON body of
//! `RegisterTaskDefinition`, sent as is, so no hand mapping of ours decides what reaches moto),
//! described through the SDK with its tags, rendered with a change of one container's image,
//! environment and secrets, registered with `register`, and the new revision, described through
//! the SDK, compared with the previous one: everything equal but that container's image,
//! environment and secrets and the read-only fields. Rendering the new revision with the same
//! change says `Unchanged`, and registering that registers nothing.
//!
//! What the test changes in the corpus before registering it: the read-only fields of a
//! described definition are dropped (ECS refuses them in a registration), a
//! `{"taskDefinition": ...}` answer is unwrapped, and the family gets a unique prefix so runs
//! sharing a moto do not meet. Moto requires `memory` or `memoryReservation` on every container
//! of a task without task-level `memory`; every corpus file already has one or the other, and
//! `moto_ready` adds `memoryReservation: 128` to a container that lacks both (none today).
//!
//! What moto does to a definition (checked by `moto_keeps_what_the_author_wrote`): it keeps
//! every field it was sent and fills defaults the real ECS also reports (`cpu: 0`,
//! `environment`, `mountPoints`, `portMappings`, `volumesFrom` as `[]`, `networkMode`
//! `bridge`, `placementConstraints` and `volumes` as `[]`). It does not keep
//! `enableFaultInjection` (no corpus file sets it; the unit tests cover it), and does not
//! return `registeredBy`.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use aws_sdk_ecs::types::{ContainerDefinition, Tag, TaskDefinition, TaskDefinitionField};
use deploy_core::aws::SdkFailure;
use deploy_core::rollout::task_definition::{Change, RenderError, Rendered, register, render};
use deploy_tests::{REGION, moto, unique, workspace_root};
use serde_json::{Value, json};

/// Fields ECS returns but refuses in a registration.
const READ_ONLY: [&str; 9] = [
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

const NEW_IMAGE: &str = "127.0.0.1:5000/planwise/api@sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

async fn ecs(moto_url: &str) -> aws_sdk_ecs::Client {
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(REGION))
        .endpoint_url(moto_url)
        .credentials_provider(aws_credential_types::Credentials::for_tests())
        .load()
        .await;
    aws_sdk_ecs::Client::new(&config)
}

/// Every corpus definition, by file name.
fn corpus() -> Vec<(String, Value)> {
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
fn moto_ready(raw: &Value, family: &str) -> Value {
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
fn moto_call(moto_url: &str, action: &str, body: &Value) -> (u16, Value) {
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
fn contains(got: &Value, wanted: &Value, path: &str) -> Result<(), String> {
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

async fn describe(client: &aws_sdk_ecs::Client, name: &str) -> (TaskDefinition, Vec<Tag>) {
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
fn pick(definition: &TaskDefinition) -> ContainerDefinition {
    definition
        .container_definitions()
        .iter()
        .max_by_key(|c| c.environment().len() + c.secrets().len())
        .expect("at least one container")
        .clone()
}

/// Replaces the first existing name's value and adds two names that sort before and after
/// each other (`A...` < `Z...`), whatever the container has.
fn changes(
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
fn merged(old: Vec<(String, String)>, change: &BTreeMap<String, String>) -> Vec<(String, String)> {
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

fn env_pairs(container: &ContainerDefinition) -> Vec<(String, String)> {
    container
        .environment()
        .iter()
        .map(|p| {
            let name = p.name().unwrap_or_default().to_owned();
            (name, p.value().unwrap_or_default().to_owned())
        })
        .collect()
}

fn secret_pairs(container: &ContainerDefinition) -> Vec<(String, String)> {
    container
        .secrets()
        .iter()
        .map(|s| (s.name().to_owned(), s.value_from().to_owned()))
        .collect()
}

/// `new` with the read-only fields and the changed container's image, environment and secrets
/// of `old`: equal to `old` when nothing else changed.
fn with_old_changeables(
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

#[test]
fn the_corpus_is_there() {
    let corpus = corpus();
    assert!(corpus.len() >= 4, "{} corpus files", corpus.len());
    let tagged = corpus.iter().any(|(_, raw)| {
        raw.get("tags")
            .and_then(Value::as_array)
            .is_some_and(|tags| !tags.is_empty())
    });
    assert!(tagged, "at least one corpus definition carries tags");
}

#[test]
fn moto_keeps_what_the_author_wrote() {
    let moto = moto();
    for (file, raw) in corpus() {
        let body = moto_ready(&raw, &unique("kept"));
        let (status, answer) = moto_call(&moto.url, "RegisterTaskDefinition", &body);
        assert_eq!(status, 200, "{file}: {answer}");
        let mut sent = body.clone();
        let tags = sent.as_object_mut().and_then(|o| o.remove("tags"));
        let arn = answer["taskDefinition"]["taskDefinitionArn"].clone();
        let described = json!({"taskDefinition": arn, "include": ["TAGS"]});
        let (status, described) = moto_call(&moto.url, "DescribeTaskDefinition", &described);
        assert_eq!(status, 200, "{file}: {described}");
        contains(&described["taskDefinition"], &sent, "").unwrap_or_else(|e| panic!("{file}: {e}"));
        let tags = tags.unwrap_or(json!([]));
        assert_eq!(described["tags"], tags, "{file}");
    }
}

#[tokio::test]
async fn each_corpus_definition_gets_a_next_revision_that_changes_only_the_container() {
    let moto = moto();
    let client = ecs(&moto.url).await;
    for (file, raw) in corpus() {
        let family = unique("td");
        let (status, answer) = moto_call(
            &moto.url,
            "RegisterTaskDefinition",
            &moto_ready(&raw, &family),
        );
        assert_eq!(status, 200, "{file}: {answer}");
        next_revision_of(&client, &file, &family).await;
    }
}

async fn next_revision_of(client: &aws_sdk_ecs::Client, file: &str, family: &str) {
    let (old, old_tags) = describe(client, family).await;
    let container = pick(&old);
    let name = container.name().expect("named container").to_owned();
    let (env, secrets) = changes(&container);
    let change = Change {
        container: &name,
        image: NEW_IMAGE,
        env: &env,
        secrets: &secrets,
    };
    let rendered = render(&old, &old_tags, &change).expect("renders");
    assert!(
        matches!(rendered, Rendered::Register(_)),
        "{file}: a change"
    );
    let old_arn = old.task_definition_arn().expect("ARN");
    let new_arn = register(client, old_arn, rendered)
        .await
        .expect("registers");
    assert_eq!(
        new_arn,
        format!(
            "{}{}",
            old_arn.trim_end_matches(char::is_numeric),
            old.revision + 1
        )
    );

    let (new, new_tags) = describe(client, &new_arn).await;
    assert_eq!(new.revision, old.revision + 1, "{file}");
    assert_eq!(new_tags, old_tags, "{file}: tags kept");
    let changed = new
        .container_definitions()
        .iter()
        .find(|c| c.name() == Some(name.as_str()))
        .expect("container kept");
    assert_eq!(changed.image(), Some(NEW_IMAGE), "{file}");
    let old_env = env_pairs(&container);
    let new_env = env_pairs(changed);
    assert_eq!(
        new_env,
        merged(old_env.clone(), &env),
        "{file}: environment"
    );
    assert_eq!(new_env.len(), old_env.len() + 2, "{file}: two names added");
    let new_secrets = secret_pairs(changed);
    assert_eq!(
        new_secrets,
        merged(secret_pairs(&container), &secrets),
        "{file}: secrets"
    );
    assert_eq!(
        with_old_changeables(&new, &old, &name),
        old,
        "{file}: all else kept"
    );

    let again = render(&new, &new_tags, &change).expect("renders");
    assert_eq!(again, Rendered::Unchanged, "{file}");
    let held = register(client, &new_arn, again)
        .await
        .expect("nothing to do");
    assert_eq!(held, new_arn);
    let revisions = client
        .list_task_definitions()
        .family_prefix(family)
        .send()
        .await
        .expect("ListTaskDefinitions");
    assert_eq!(
        revisions.task_definition_arns().len(),
        2,
        "{file}: {revisions:?}"
    );
}

#[tokio::test]
async fn a_container_the_definition_does_not_have_is_named_with_the_ones_it_has() {
    let moto = moto();
    let client = ecs(&moto.url).await;
    let (_, raw) = corpus()
        .into_iter()
        .find(|(file, _)| file == "firelens-appmesh-colorteller.json")
        .expect("corpus file");
    let family = unique("missing");
    let (status, answer) = moto_call(
        &moto.url,
        "RegisterTaskDefinition",
        &moto_ready(&raw, &family),
    );
    assert_eq!(status, 200, "{answer}");
    let (old, tags) = describe(&client, &family).await;
    let none = BTreeMap::new();
    let change = Change {
        container: "api",
        image: NEW_IMAGE,
        env: &none,
        secrets: &none,
    };
    let err = render(&old, &tags, &change).expect_err("no api container");
    assert_eq!(
        err.to_string(),
        format!(
            "container `api` is not in task definition {family}:1; it has: log_router, app, envoy"
        )
    );
}

/// A registration ECS refuses is an error that keeps the SDK's (with the service's code), and
/// registers nothing.
#[tokio::test]
async fn a_refused_registration_keeps_the_service_error_and_registers_nothing() {
    let moto = moto();
    let client = ecs(&moto.url).await;
    let (_, raw) = corpus()
        .into_iter()
        .find(|(file, _)| file == "firelens-multi-config.json")
        .expect("corpus file");
    let family = unique("refused");
    let (status, answer) = moto_call(
        &moto.url,
        "RegisterTaskDefinition",
        &moto_ready(&raw, &family),
    );
    assert_eq!(status, 200, "{answer}");
    let (mut old, tags) = describe(&client, &family).await;
    // Without task-level memory, a container without memory or memoryReservation is refused.
    for container in old.container_definitions.iter_mut().flatten() {
        container.memory_reservation = None;
    }
    let none = BTreeMap::new();
    let change = Change {
        container: "app",
        image: NEW_IMAGE,
        env: &none,
        secrets: &none,
    };
    let rendered = render(&old, &tags, &change).expect("renders");
    let old_arn = old.task_definition_arn().expect("ARN").to_owned();
    let err = register(&client, &old_arn, rendered)
        .await
        .expect_err("moto refuses the registration");
    assert!(
        matches!(&err, RenderError::Register { family: f, .. } if *f == family),
        "{err:?}"
    );
    let source = std::error::Error::source(&err).expect("a source");
    let failure = source
        .downcast_ref::<SdkFailure>()
        .expect("the SDK failure");
    assert_eq!(failure.code(), Some("ClientException"), "{failure}");
    assert_eq!(
        err.to_string(),
        format!(
            "registering the next revision of task definition family `{family}` failed: \
             ClientException: Invalid setting for container 'log_router'. At least one of \
             'memory' or 'memoryReservation' must be specified."
        )
    );
    assert!(
        std::error::Error::source(failure).is_some(),
        "the SDK error is kept"
    );
    let revisions = client
        .list_task_definitions()
        .family_prefix(&family)
        .send()
        .await
        .expect("ListTaskDefinitions");
    assert_eq!(revisions.task_definition_arns().len(), 1, "{revisions:?}");
}

// The deprecated `inferenceAccelerators` are among the fields that must be carried over.
#![allow(deprecated)]

use std::collections::BTreeMap;

use aws_sdk_ecs::types::{
    Compatibility, ContainerDefinition, EphemeralStorage, InferenceAccelerator, IpcMode,
    KeyValuePair, NetworkMode, PidMode, ProxyConfiguration, RuntimePlatform, Secret, Tag,
    TaskDefinition, TaskDefinitionPlacementConstraint, TaskDefinitionStatus, Volume,
};

use super::*;

const IMAGE: &str = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/planwise/api@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn env(pairs: &[(&str, &str)]) -> Vec<KeyValuePair> {
    pairs
        .iter()
        .map(|(k, v)| KeyValuePair::builder().name(*k).value(*v).build())
        .collect()
}

fn secrets(pairs: &[(&str, &str)]) -> Vec<Secret> {
    pairs
        .iter()
        .map(|(k, v)| {
            Secret::builder()
                .name(*k)
                .value_from(*v)
                .build()
                .expect("name and valueFrom set")
        })
        .collect()
}

fn container(name: &str, image: &str) -> ContainerDefinition {
    ContainerDefinition::builder()
        .name(name)
        .image(image)
        .memory(256)
        .build()
}

fn definition(containers: Vec<ContainerDefinition>) -> TaskDefinition {
    TaskDefinition::builder()
        .family("api")
        .revision(41)
        .task_definition_arn("arn:aws:ecs:eu-west-1:123456789012:task-definition/api:41")
        .status(TaskDefinitionStatus::Active)
        .set_container_definitions(Some(containers))
        .build()
}

fn render_one(
    current: &TaskDefinition,
    env: &BTreeMap<String, String>,
    secrets: &BTreeMap<String, String>,
) -> Result<Rendered, RenderError> {
    let change = Change {
        container: "api",
        image: IMAGE,
        env,
        secrets,
    };
    render(current, &[], &change)
}

fn registered(rendered: Rendered) -> RegisterTaskDefinitionInput {
    match rendered {
        Rendered::Register(input) => *input,
        Rendered::Unchanged => panic!("expected a new revision, got Unchanged"),
    }
}

fn container_of<'a>(input: &'a RegisterTaskDefinitionInput, name: &str) -> &'a ContainerDefinition {
    input
        .container_definitions()
        .iter()
        .find(|c| c.name() == Some(name))
        .expect("container present")
}

#[test]
fn only_the_configured_containers_image_changes() {
    let current = definition(vec![
        container("web", "nginx:1"),
        container("api", "api:old"),
    ]);
    let input = registered(render_one(&current, &map(&[]), &map(&[])).expect("renders"));
    assert_eq!(container_of(&input, "api").image(), Some(IMAGE));
    assert_eq!(container_of(&input, "web"), &container("web", "nginx:1"));
    assert_eq!(input.family(), Some("api"));
    let names: Vec<_> = input
        .container_definitions()
        .iter()
        .map(|c| c.name())
        .collect();
    assert_eq!(names, [Some("web"), Some("api")]);
    assert_eq!(container_of(&input, "api").environment, None);
    assert_eq!(container_of(&input, "api").secrets, None);
}

#[test]
fn environment_replaces_keeps_and_appends_sorted() {
    let mut api = container("api", "api:old");
    api.environment = Some(env(&[("PORT", "8080"), ("LOG_LEVEL", "debug"), ("A", "1")]));
    let current = definition(vec![api]);
    let wanted = map(&[("ZED", "z"), ("LOG_LEVEL", "info"), ("BETA", "b")]);
    let input = registered(render_one(&current, &wanted, &map(&[])).expect("renders"));
    assert_eq!(
        container_of(&input, "api").environment(),
        env(&[
            ("PORT", "8080"),
            ("LOG_LEVEL", "info"),
            ("A", "1"),
            ("BETA", "b"),
            ("ZED", "z"),
        ])
    );
}

#[test]
fn secrets_replace_keep_and_append_sorted() {
    let mut api = container("api", "api:old");
    api.secrets = Some(secrets(&[("DB", "arn:old"), ("KEEP", "arn:keep")]));
    let current = definition(vec![api]);
    let wanted = map(&[
        ("TOKEN", "arn:token"),
        ("DB", "arn:new"),
        ("API_KEY", "arn:key"),
    ]);
    let input = registered(render_one(&current, &map(&[]), &wanted).expect("renders"));
    assert_eq!(
        container_of(&input, "api").secrets(),
        secrets(&[
            ("DB", "arn:new"),
            ("KEEP", "arn:keep"),
            ("API_KEY", "arn:key"),
            ("TOKEN", "arn:token"),
        ])
    );
}

#[test]
fn a_name_listed_twice_in_the_definition_gets_the_value_in_both_places() {
    let mut api = container("api", "api:old");
    api.environment = Some(env(&[("X", "1"), ("Y", "2"), ("X", "3")]));
    let current = definition(vec![api]);
    let input = registered(render_one(&current, &map(&[("X", "9")]), &map(&[])).expect("renders"));
    assert_eq!(
        container_of(&input, "api").environment(),
        env(&[("X", "9"), ("Y", "2"), ("X", "9")])
    );
}

#[test]
fn the_current_revision_with_the_change_is_unchanged() {
    let mut api = container("api", IMAGE);
    api.environment = Some(env(&[("LOG_LEVEL", "info"), ("OTHER", "x")]));
    api.secrets = Some(secrets(&[("DB", "arn:db")]));
    let current = definition(vec![container("web", "nginx:1"), api]);
    let rendered = render_one(
        &current,
        &map(&[("LOG_LEVEL", "info")]),
        &map(&[("DB", "arn:db")]),
    );
    assert_eq!(rendered.expect("renders"), Rendered::Unchanged);
}

#[test]
fn a_different_env_value_or_secret_is_a_change() {
    let mut api = container("api", IMAGE);
    api.environment = Some(env(&[("LOG_LEVEL", "info")]));
    api.secrets = Some(secrets(&[("DB", "arn:db")]));
    let current = definition(vec![api]);
    let by_env = render_one(&current, &map(&[("LOG_LEVEL", "debug")]), &map(&[]));
    assert!(matches!(by_env, Ok(Rendered::Register(_))));
    let by_secret = render_one(&current, &map(&[]), &map(&[("DB", "arn:other")]));
    assert!(matches!(by_secret, Ok(Rendered::Register(_))));
    let new_key = render_one(&current, &map(&[("NEW", "1")]), &map(&[]));
    assert!(matches!(new_key, Ok(Rendered::Register(_))));
}

#[test]
fn a_missing_container_names_the_ones_there_are() {
    let current = definition(vec![
        container("web", "nginx:1"),
        container("sidecar", "envoy"),
    ]);
    let err = render_one(&current, &map(&[]), &map(&[])).expect_err("no api container");
    assert!(matches!(err, RenderError::MissingContainer { .. }));
    assert_eq!(
        err.to_string(),
        "container `api` is not in task definition api:41; it has: web, sidecar"
    );
}

#[test]
fn an_empty_or_odd_definition_is_an_error_not_a_panic() {
    let empty = TaskDefinition::builder().build();
    let err = render_one(&empty, &map(&[]), &map(&[])).expect_err("no containers");
    assert_eq!(
        err.to_string(),
        "container `api` is not in task definition (without family); it has: "
    );
    let unnamed = definition(vec![ContainerDefinition::builder().build()]);
    let err = render_one(&unnamed, &map(&[]), &map(&[])).expect_err("no api container");
    assert!(err.to_string().ends_with("it has: (unnamed)"), "{err}");
}

fn every_field_set() -> TaskDefinition {
    let mut api = container("api", "api:old");
    api.secrets = Some(secrets(&[("DB", "arn:db")]));
    TaskDefinition::builder()
        .task_definition_arn("arn:aws:ecs:eu-west-1:123456789012:task-definition/api:41")
        .container_definitions(api)
        .family("api")
        .task_role_arn("arn:aws:iam::123456789012:role/task")
        .execution_role_arn("arn:aws:iam::123456789012:role/exec")
        .network_mode(NetworkMode::Awsvpc)
        .revision(41)
        .volumes(Volume::builder().name("data").build())
        .status(TaskDefinitionStatus::Active)
        .requires_attributes(
            aws_sdk_ecs::types::Attribute::builder()
                .name("a")
                .build()
                .expect("name"),
        )
        .placement_constraints(
            TaskDefinitionPlacementConstraint::builder()
                .expression("attribute:ecs.os-type == linux")
                .build(),
        )
        .compatibilities(Compatibility::Ec2)
        .runtime_platform(
            RuntimePlatform::builder()
                .cpu_architecture("ARM64".into())
                .build(),
        )
        .requires_compatibilities(Compatibility::Fargate)
        .cpu("256")
        .memory("512")
        .inference_accelerators(
            InferenceAccelerator::builder()
                .device_name("d")
                .device_type("t")
                .build()
                .expect("fields set"),
        )
        .pid_mode(PidMode::Task)
        .ipc_mode(IpcMode::None)
        .proxy_configuration(
            ProxyConfiguration::builder()
                .container_name("envoy")
                .build()
                .expect("container set"),
        )
        .registered_at(aws_smithy_types::DateTime::from_secs(1))
        .deregistered_at(aws_smithy_types::DateTime::from_secs(2))
        .delete_requested_at(aws_smithy_types::DateTime::from_secs(3))
        .registered_by("arn:aws:iam::123456789012:user/someone")
        .ephemeral_storage(EphemeralStorage::builder().size_in_gib(30).build())
        .enable_fault_injection(true)
        .build()
}

#[test]
fn every_registrable_field_and_the_tags_are_kept() {
    let current = every_field_set();
    let tags = [Tag::builder().key("team").value("api").build()];
    let change = Change {
        container: "api",
        image: IMAGE,
        env: &map(&[]),
        secrets: &map(&[]),
    };
    let input = registered(render(&current, &tags, &change).expect("renders"));
    let mut api = current.container_definitions()[0].clone();
    api.image = Some(IMAGE.to_owned());
    let expected = RegisterTaskDefinitionInput::builder()
        .family("api")
        .task_role_arn("arn:aws:iam::123456789012:role/task")
        .execution_role_arn("arn:aws:iam::123456789012:role/exec")
        .network_mode(NetworkMode::Awsvpc)
        .container_definitions(api)
        .set_volumes(current.volumes.clone())
        .set_placement_constraints(current.placement_constraints.clone())
        .requires_compatibilities(Compatibility::Fargate)
        .cpu("256")
        .memory("512")
        .tags(tags[0].clone())
        .pid_mode(PidMode::Task)
        .ipc_mode(IpcMode::None)
        .set_proxy_configuration(current.proxy_configuration.clone())
        .set_inference_accelerators(current.inference_accelerators.clone())
        .set_ephemeral_storage(current.ephemeral_storage.clone())
        .set_runtime_platform(current.runtime_platform.clone())
        .enable_fault_injection(true)
        .build()
        .expect("builds");
    assert_eq!(input, expected);
    let set = [
        input.family.is_some(),
        input.task_role_arn.is_some(),
        input.execution_role_arn.is_some(),
        input.network_mode.is_some(),
        input.container_definitions.is_some(),
        input.volumes.is_some(),
        input.placement_constraints.is_some(),
        input.requires_compatibilities.is_some(),
        input.cpu.is_some(),
        input.memory.is_some(),
        input.tags.is_some(),
        input.pid_mode.is_some(),
        input.ipc_mode.is_some(),
        input.proxy_configuration.is_some(),
        input.inference_accelerators.is_some(),
        input.ephemeral_storage.is_some(),
        input.runtime_platform.is_some(),
        input.enable_fault_injection.is_some(),
    ];
    assert_eq!(set.len(), REGISTRABLE.len());
    assert!(set.iter().all(|set| *set), "{set:?}");
}

/// The top-level field names of a value's derived `Debug` output.
fn debug_fields(debug: &str) -> Vec<String> {
    let body = debug
        .split_once('{')
        .map(|(_, rest)| rest)
        .unwrap_or_default();
    body.split(", ")
        .filter_map(|part| part.trim().split_once(':').map(|(name, _)| name.to_owned()))
        .collect()
}

const REGISTRABLE: [&str; 18] = [
    "family",
    "task_role_arn",
    "execution_role_arn",
    "network_mode",
    "container_definitions",
    "volumes",
    "placement_constraints",
    "requires_compatibilities",
    "cpu",
    "memory",
    "tags",
    "pid_mode",
    "ipc_mode",
    "proxy_configuration",
    "inference_accelerators",
    "ephemeral_storage",
    "runtime_platform",
    "enable_fault_injection",
];

/// Fails when an SDK update adds a field to `RegisterTaskDefinition` or `TaskDefinition`, so
/// that `render` and `apply` are taught to carry it over.
#[test]
fn the_sdk_has_no_field_render_does_not_know() {
    let mut registrable: Vec<&str> = REGISTRABLE.to_vec();
    let input = format!(
        "{:?}",
        RegisterTaskDefinitionInput::builder()
            .build()
            .expect("builds")
    );
    let mut fields = debug_fields(&input);
    fields.sort();
    registrable.sort_unstable();
    assert_eq!(fields, registrable);

    let read_only = [
        "task_definition_arn",
        "revision",
        "status",
        "requires_attributes",
        "compatibilities",
        "registered_at",
        "deregistered_at",
        "delete_requested_at",
        "registered_by",
    ];
    let mut described = debug_fields(&format!("{:?}", TaskDefinition::builder().build()));
    described.sort();
    let mut expected: Vec<&str> = registrable
        .iter()
        .copied()
        .filter(|name| *name != "tags")
        .chain(read_only)
        .collect();
    expected.sort_unstable();
    assert_eq!(described, expected);
}

#[test]
fn apply_sets_every_field_on_the_request() {
    let current = every_field_set();
    let tags = [Tag::builder().key("team").value("api").build()];
    let change = Change {
        container: "api",
        image: IMAGE,
        env: &map(&[("A", "1")]),
        secrets: &map(&[]),
    };
    let input = registered(render(&current, &tags, &change).expect("renders"));
    let config = aws_sdk_ecs::Config::builder()
        .behavior_version(aws_sdk_ecs::config::BehaviorVersion::latest())
        .region(aws_sdk_ecs::config::Region::new("eu-west-1"))
        .build();
    let client = aws_sdk_ecs::Client::from_conf(config);
    let request = apply(input.clone(), client.register_task_definition());
    let sent = request.as_input().clone().build().expect("builds");
    assert_eq!(sent, input);
}

#[tokio::test]
async fn unchanged_registers_nothing_and_answers_the_current_arn() {
    // No endpoint and no credentials: any request would fail.
    let config = aws_sdk_ecs::Config::builder()
        .behavior_version(aws_sdk_ecs::config::BehaviorVersion::latest())
        .region(aws_sdk_ecs::config::Region::new("eu-west-1"))
        .build();
    let client = aws_sdk_ecs::Client::from_conf(config);
    let arn = "arn:aws:ecs:eu-west-1:123456789012:task-definition/api:41";
    let answered = register(&client, arn, Rendered::Unchanged).await;
    assert_eq!(answered.expect("no request"), arn);
}

#[tokio::test]
async fn a_refused_registration_keeps_the_sdk_error_as_its_source() {
    let config = aws_sdk_ecs::Config::builder()
        .behavior_version(aws_sdk_ecs::config::BehaviorVersion::latest())
        .region(aws_sdk_ecs::config::Region::new("eu-west-1"))
        .credentials_provider(aws_sdk_ecs::config::Credentials::for_tests())
        .endpoint_url("http://127.0.0.1:1")
        .retry_config(aws_sdk_ecs::config::retry::RetryConfig::disabled())
        .build();
    let client = aws_sdk_ecs::Client::from_conf(config);
    let current = definition(vec![container("api", "api:old")]);
    let rendered = render_one(&current, &map(&[]), &map(&[])).expect("renders");
    let err = register(&client, "arn:current", rendered)
        .await
        .expect_err("nothing listens on port 1");
    assert!(matches!(&err, RenderError::Register { family, .. } if family == "api"));
    let source = std::error::Error::source(&err).expect("has a source");
    assert!(source.downcast_ref::<SdkFailure>().is_some(), "{source:?}");
    assert!(std::error::Error::source(source).is_some());
}

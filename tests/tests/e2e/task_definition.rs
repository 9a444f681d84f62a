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

use deploy_core::aws::SdkFailure;
use deploy_core::kinds::image::rollout::task_definition::{
    Change, RenderError, Rendered, register, render,
};
use deploy_tests::corpus::{
    changes, contains, corpus, describe, env_pairs, merged, moto_call, moto_ready, pick,
    secret_pairs, with_old_changeables,
};
use deploy_tests::{REGION, moto, unique};
use serde_json::{Value, json};
use std::collections::BTreeMap;

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

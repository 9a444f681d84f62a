//! Many services of one cluster released together: they roll out at once and share their
//! polls, one `DescribeServices` per cluster per round with at most ten services per call
//! (ECS's limit), instead of one call per service per round. Counted in the ECS double's
//! request log.

use aws_sdk_ecs::types::ContainerDefinition;
use deploy_tests::ecs_double::{self, EcsDouble, Script};
use deploy_tests::{create_repository, deploy, moto, unique};

const SERVICES: u32 = 12;
const POLLS: u32 = 6;

#[tokio::test(flavor = "multi_thread")]
async fn twelve_services_share_their_polls() {
    let double = EcsDouble::start(&moto().url);
    let ecs = ecs_double::client(&moto().url).await;
    let cluster = ecs_double::cluster(&ecs, "scale").await;
    let registered = ecs
        .register_task_definition()
        .family(unique("svc"))
        .container_definitions(
            ContainerDefinition::builder()
                .name("app")
                .image("public.ecr.aws/old/app:1")
                .memory(128)
                .build(),
        )
        .send()
        .await
        .expect("register");
    let project = deploy_tests::image_project("scale").await;
    let mut text = deploy_tests::dev_head(&project.bucket, &double.endpoints())
        .replace("[settings]\n", "[settings]\nparallel_uploads = 12\n");
    for i in 0..SERVICES {
        let service = format!("svc{i}");
        ecs_double::service_on(&ecs, &cluster, &service, &registered, 1).await;
        double.script_service(&cluster, &service, Script::Complete { after_polls: POLLS });
        let repo = format!("scale/{}", unique(&service));
        create_repository(&moto().url, &repo).await;
        text += &format!(
            "[artifacts.{service}]\nkind = \"image\"\nrepository = \"{repo}\"\nsource = \"oci:./layout:latest\"\n\
             rollout = {{ strategy = \"ecs-rolling\", cluster = \"{cluster}\", service = \"{service}\", container = \"app\", keep_revisions = 20 }}\n"
        );
    }
    let config = project.dir.join("deploy.toml");
    std::fs::write(&config, text).expect("write config");

    let out = deploy(&moto().url)
        .arg("--config")
        .arg(&config)
        .args(["release", "dev", "--version", "v1"])
        .output()
        .expect("run deploy");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");

    let requests = double.requests();
    let widest = requests
        .iter()
        .filter(|r| r.operation == "DescribeServices")
        .map(|r| r.services.len())
        .max();
    assert_eq!(
        widest,
        Some(10),
        "ten services per call at most, and batched"
    );
    // Once every service is being deployed, each round is two calls (ten services and two;
    // `keep_revisions` leaves cleanup nothing to do, so it reads no services):
    // one call per service per poll would be at least SERVICES calls per round.
    let last_update = requests
        .iter()
        .rposition(|r| r.operation == "UpdateService")
        .expect("updates");
    let following = requests[last_update..]
        .iter()
        .filter(|r| r.operation == "DescribeServices")
        .count();
    let rounds = usize::try_from(POLLS + 2).expect("small");
    assert!(
        following <= 2 * rounds,
        "{following} DescribeServices calls after the last UpdateService for {SERVICES} services of {POLLS} polls"
    );
}

//! A release of what already runs is `unchanged`: no lock, no record, nothing sent. Images
//! here (the DAG and Lambda cases sit with their kinds' tests). Read back through the ECS double.

use deploy_tests::ecs_double;

use super::ecs_rolling::fixture;

/// The same image and configuration released again: the service already runs what the
/// rollout would register, so the run is unchanged (no UpdateService, no record, no new
/// revision). The service moved by hand makes the next release a real one again.
#[tokio::test(flavor = "multi_thread")]
async fn a_release_of_what_already_runs_is_unchanged() {
    let f = fixture("2m").await;
    let (status, stderr) = f.release("v1");
    assert_eq!(status, Some(0), "{stderr}");
    let running = f.running().await;
    let updates = f.updates();

    let (status, stderr) = f.release("v2");
    assert_eq!(status, Some(0), "{stderr}");
    assert_eq!(f.updates(), updates, "no UpdateService");
    assert_eq!(f.running().await, running);
    assert_eq!(f.outcomes().await, ["succeeded"], "no record");
    assert_eq!(
        f.double.requests_of("RegisterTaskDefinition").len(),
        1,
        "no new revision"
    );

    // By hand, through the ECS endpoint `deploy` uses.
    let ecs = ecs_double::client(&f.double.url).await;
    ecs.update_service()
        .cluster(&f.cluster)
        .service("api")
        .task_definition(&f.first)
        .send()
        .await
        .expect("move the service by hand");
    let (status, stderr) = f.release("v3");
    assert_eq!(status, Some(0), "{stderr}");
    assert_ne!(f.running().await, f.first, "the release rolled out again");
    assert_eq!(f.outcomes().await, ["succeeded", "succeeded"]);
}

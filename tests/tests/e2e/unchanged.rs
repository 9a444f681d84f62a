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

/// In a release that changes one artifact, another that already runs what it would put in
/// place is left alone: none of its steps run (no new Lambda version) and it gets no record,
/// while the changed one is released and recorded.
#[tokio::test(flavor = "multi_thread")]
async fn an_unchanged_artifact_beside_a_changed_one_is_left_alone_and_not_recorded() {
    let url = deploy_tests::moto().url.clone();
    let function = deploy_tests::unique("mixed-fn");
    deploy_tests::lambda_function(&url, &function).await;
    let handler = "handler = \"main.handler\"\n";
    let (config, state) = deploy_tests::lambda_project("mixed", &function, handler).await;
    let dags = deploy_tests::dags::versioned_bucket("mixed-dags").await;
    let dir = config.parent().expect("project folder").to_path_buf();
    std::fs::create_dir_all(dir.join("dags")).expect("mkdir");
    std::fs::write(dir.join("dags/a.py"), "# v1\n").expect("write a DAG");
    let mut text = std::fs::read_to_string(&config).expect("config");
    text.push_str(&format!(
        "[artifacts.dags]\nkind = \"dags\"\nsource = \"./dags\"\nbucket = \"{dags}\"\n"
    ));
    std::fs::write(&config, text).expect("write config");
    let release = |version: &str| {
        let out = deploy_tests::deploy(&url)
            .arg("--config")
            .arg(&config)
            .args(["release", "dev", "--version", version])
            .output()
            .expect("run deploy");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        (
            out.status.code(),
            stdout + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let (code, output) = release("v1");
    assert_eq!(code, Some(0), "{output}");

    std::fs::write(dir.join("dags/a.py"), "# v2\n").expect("change the DAG");
    let (code, output) = release("v2");
    assert_eq!(code, Some(0), "{output}");
    assert!(
        output.contains("fn unchanged in dev: it already runs what this would put in place"),
        "{output}"
    );
    assert!(
        !output.contains("[fn.publish-lambda]"),
        "no step of fn ran: {output}"
    );
    let lambda = aws_sdk_lambda::Client::new(&deploy_tests::moto_config(&url).await);
    let versions = lambda
        .list_versions_by_function()
        .function_name(&function)
        .send()
        .await
        .expect("list versions");
    assert_eq!(versions.versions().len(), 2, "$LATEST and version 1 only");
    let records = |artifact: &str| {
        let prefix = format!("deploy/t/dev/artifacts/{artifact}/releases/");
        let (url, state) = (url.clone(), state.clone());
        async move { deploy_tests::list_keys(&url, &state, &prefix).await.len() }
    };
    assert_eq!(records("fn").await, 1, "fn recorded at v1 only");
    assert_eq!(records("dags").await, 2, "dags recorded at v1 and v2");
}

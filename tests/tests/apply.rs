//! `deploy apply <plan.json>`: a saved plan runs as shown, only once, only with the
//! configuration it was made from. Read back with plain SDK clients.

use std::path::{Path, PathBuf};

use deploy_tests::{
    REGION, copy_dir, create_bucket, create_repository, deploy, get_json, moto, oci_registry,
    scratch_dir, unique, workspace_root,
};

/// A project whose `api` image goes live when released (`strategy = "none"`).
async fn project() -> (PathBuf, String) {
    let url = moto().url.clone();
    let bucket = unique("apply-state");
    create_bucket(&url, &bucket).await;
    let repo = format!("apply/{}", unique("api"));
    create_repository(&url, &repo).await;
    let dir = scratch_dir("apply");
    copy_dir(
        &workspace_root().join("examples/planwise/build/api"),
        &dir.join("layout"),
    );
    let config = dir.join("deploy.toml");
    let text = format!(
        "project = \"t\"\n[environments.dev]\nregion = \"{REGION}\"\naccount = \"123456789012\"\nstate_bucket = \"{bucket}\"\nendpoints = {{ registry = \"http://{}\" }}\n[artifacts.api]\nkind = \"image\"\nrepository = \"{repo}\"\nsource = \"oci:./layout:latest\"\nrollout = {{ strategy = \"none\" }}\n",
        oci_registry().host
    );
    std::fs::write(&config, text).expect("write config");
    (config, bucket)
}

fn run(config: &Path, args: &[&str]) -> (Option<i32>, String) {
    let out = deploy(&moto().url)
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .expect("run deploy");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_saved_plan_runs_once_as_shown() {
    let (config, bucket) = project().await;
    let plan = config.with_file_name("plan.json");
    let plan_arg = plan.to_str().expect("path");
    let (code, stderr) = run(
        &config,
        &["plan", "dev", "api", "--version", "v1", "--out", plan_arg],
    );
    assert_eq!(code, Some(0), "{stderr}");
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&plan).expect("plan")).expect("json");

    let (code, stderr) = run(&config, &["apply", plan_arg]);
    assert_eq!(code, Some(0), "{stderr}");
    let live = get_json(&moto().url, &bucket, "deploy/t/dev/artifacts/api/live.json").await;
    assert_eq!(live["version"], "v1");
    let record = get_json(
        &moto().url,
        &bucket,
        live["record_key"].as_str().expect("key"),
    )
    .await;
    assert_eq!(record["plan_id"], saved["id"], "the record names the plan");

    let (code, stderr) = run(&config, &["apply", plan_arg]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("changed since the plan was made"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plan_of_another_configuration_or_format_is_refused() {
    let (config, _bucket) = project().await;
    let plan = config.with_file_name("plan.json");
    let plan_arg = plan.to_str().expect("path");
    let (code, stderr) = run(
        &config,
        &["plan", "dev", "api", "--version", "v1", "--out", plan_arg],
    );
    assert_eq!(code, Some(0), "{stderr}");
    let text = std::fs::read_to_string(&plan).expect("plan");

    let old = config.with_file_name("old.json");
    std::fs::write(&old, text.replace("\"format\": 2", "\"format\": 1")).expect("write");
    let (code, stderr) = run(&config, &["apply", old.to_str().expect("path")]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("Make a new plan"), "{stderr}");

    let garbage = config.with_file_name("garbage.json");
    std::fs::write(&garbage, "{\"steps\": 3}").expect("write");
    let (code, stderr) = run(&config, &["apply", garbage.to_str().expect("path")]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("is not a plan"), "{stderr}");

    let edited = std::fs::read_to_string(&config).expect("config") + "# edited\n";
    std::fs::write(&config, edited).expect("write config");
    let (code, stderr) = run(&config, &["apply", plan_arg]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("another version of"), "{stderr}");
}

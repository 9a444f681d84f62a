//! `deploy apply <plan.json>`: a saved plan runs as shown, only once, only with the
//! configuration it was made from. Read back with plain SDK clients.

use std::path::{Path, PathBuf};

use deploy_tests::dags::{Project, ok};
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
        stderr.contains("changed since the plan was made") && stderr.contains("make a new plan"),
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
    std::fs::write(&old, text.replace("\"format\": 3", "\"format\": 2")).expect("write");
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

/// A hand edit of a step's action.
type Edit = fn(&mut serde_json::Value);

/// Hand-edits `plan`'s `sync-dags` step with `edit`.
fn edit_sync_step(plan: &Path, edit: impl Fn(&mut serde_json::Value)) -> PathBuf {
    let mut doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(plan).expect("plan")).expect("json");
    let steps = doc["steps"].as_array_mut().expect("steps");
    let sync = steps
        .iter_mut()
        .find(|s| s["action"]["type"] == "sync-dags")
        .expect("a sync-dags step");
    edit(&mut sync["action"]);
    let edited = plan.with_file_name("edited.json");
    std::fs::write(&edited, serde_json::to_string_pretty(&doc).expect("json")).expect("write");
    edited
}

/// A plan whose step inputs were edited by hand (the DAG prefix widened to the whole bucket,
/// any share of it deletable) is refused before anything runs, although its configuration
/// hash still matches; the bucket keeps every object, the unedited plan then runs.
#[tokio::test(flavor = "multi_thread")]
async fn a_plan_edited_by_hand_is_refused() {
    let p = Project::new("").await;
    p.write("a.py", "A = 1\n");
    ok(&p.release("v1", &[]));
    p.write("b.py", "B = 1\n");
    let plan = p.dir.join("plan.json");
    let plan_arg = plan.to_str().expect("path");
    let (code, stderr) = run(
        &p.config,
        &["plan", "dev", "dags", "--version", "v2", "--out", plan_arg],
    );
    assert_eq!(code, Some(0), "{stderr}");
    let before = p.objects().await;
    let edits: [(&str, Edit); 3] = [
        ("prefix", |a| a["prefix"] = "".into()),
        ("bucket", |a| a["bucket"] = "someone-elses-bucket".into()),
        ("max_delete_share", |a| a["max_delete_share"] = 1.0.into()),
    ];
    for (field, edit) in edits {
        let edited = edit_sync_step(&plan, edit);
        let (code, stderr) = run(&p.config, &["apply", edited.to_str().expect("path")]);
        assert_eq!(code, Some(2), "{field}: {stderr}");
        assert!(
            stderr.contains("no longer match its seal"),
            "{field}: {stderr}"
        );
        assert_eq!(p.objects().await, before, "{field}: nothing was touched");
    }
    let (code, stderr) = run(&p.config, &["apply", plan_arg]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(p.objects().await.keys().any(|k| k.ends_with("b.py")));
}

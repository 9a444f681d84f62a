//! `deploy plan` against moto: the JSON document is stable (snapshot), saved with `--out`, and
//! reflects the ledger; making a plan changes nothing.

use deploy_tests::{create_bucket, deploy, list_keys, moto, unique, workspace_root};

/// The example project, with every environment's state bucket renamed to a fresh one.
async fn example_config() -> (std::path::PathBuf, String) {
    let url = moto().url.clone();
    let bucket = unique("plan");
    create_bucket(&url, &bucket).await;
    let example = workspace_root().join("examples/planwise");
    let text = std::fs::read_to_string(example.join("deploy.toml"))
        .expect("example config")
        .replace("{project}-deploy-state-{env}", &bucket);
    let path = example.join(format!(".{bucket}.toml"));
    std::fs::write(&path, text).expect("write config");
    (path, bucket)
}

#[tokio::test(flavor = "multi_thread")]
async fn plan_json_is_stable_and_changes_nothing() {
    let (config, bucket) = example_config().await;
    let out_file = std::env::temp_dir().join(format!("{bucket}.plan.json"));
    let out = deploy(&moto().url)
        .arg("--config")
        .arg(&config)
        .args(["--output", "json", "plan", "dev", "--version", "1f2e3d4c"])
        .arg("--out")
        .arg(&out_file)
        .output()
        .expect("run deploy");
    let _ = std::fs::remove_file(&config);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut plan: serde_json::Value = serde_json::from_slice(&out.stdout).expect("plan JSON");
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out_file).expect("saved plan"))
            .expect("saved JSON");
    assert_eq!(plan, saved, "--out saves the same document");
    assert!(
        list_keys(&moto().url, &bucket, "").await.is_empty(),
        "plan wrote to the state bucket"
    );

    // Fields that change run to run.
    for (field, value) in [
        ("id", "<id>"),
        ("created_at", "<time>"),
        ("config_sha256", "<sha256>"),
        ("seal", "<seal>"),
    ] {
        assert!(plan[field].is_string(), "{field} missing");
        plan[field] = value.into();
    }
    let text = serde_json::to_string_pretty(&sorted(plan))
        .expect("json")
        .replace(&bucket, "<state-bucket>");
    insta::assert_snapshot!("plan_dev_release", text);
}

/// The same value with object keys in sorted order, whatever order serde_json keeps them in.
fn sorted(value: serde_json::Value) -> serde_json::Value {
    match value {
        serde_json::Value::Object(map) => {
            let mut entries: Vec<(String, serde_json::Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            serde_json::Value::Object(entries.into_iter().map(|(k, v)| (k, sorted(v))).collect())
        }
        serde_json::Value::Array(items) => {
            serde_json::Value::Array(items.into_iter().map(sorted).collect())
        }
        other => other,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn human_plan_lists_every_step() {
    let (config, _bucket) = example_config().await;
    let out = deploy(&moto().url)
        .arg("--config")
        .arg(&config)
        .args(["plan", "staging", "api", "--version", "abc"])
        .output()
        .expect("run deploy");
    // prod only receives promotions: a release plan for it is refused.
    let refused = deploy(&moto().url)
        .arg("--config")
        .arg(&config)
        .args(["plan", "prod", "api", "--version", "abc"])
        .output()
        .expect("run deploy");
    let _ = std::fs::remove_file(&config);
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("deploy promote staging prod"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    for expected in [
        "release abc to staging",
        "check the credentials are for account 123456789012",
        "lock environment staging",
        "push api to ECR planwise/api:abc",
        "roll out api (codedeploy-blue-green)",
        "record the release of api in the ledger",
        "unlock environment staging",
    ] {
        assert!(text.contains(expected), "missing `{expected}` in:\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unwritable_out_path_says_why() {
    let (config, _bucket) = example_config().await;
    let out = deploy(&moto().url)
        .arg("--config")
        .arg(&config)
        .args(["plan", "dev", "api", "--version", "abc"])
        .args(["--out", "/nonexistent-dir/plan.json"])
        .output()
        .expect("run deploy");
    let _ = std::fs::remove_file(&config);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(
            "cannot write the plan to /nonexistent-dir/plan.json: No such file or directory"
        ),
        "{stderr}"
    );
}

//! Drift in `status` for every kind, made by hand behind deploy's back and read by `status`:
//! a Lambda alias moved to another version and left with routing weights, and DAG files
//! uploaded, changed and deleted under the prefix. `--exit-code` gives 1 on drift, 0 without.

use deploy_tests::dags::{Project, ok};
use deploy_tests::{deploy, moto, s3};

use super::lambda::{Fixture, code, lambda, write_source, zip_of};

/// `status dev` as JSON with `--exit-code`: its exit code and the `running` of the first row.
fn status(config: &std::path::Path) -> (Option<i32>, serde_json::Value) {
    let out = deploy(&moto().url)
        .arg("--config")
        .arg(config)
        .args(["--output", "json", "status", "dev", "--exit-code"])
        .output()
        .expect("run deploy");
    let text = String::from_utf8_lossy(&out.stdout);
    let rows: serde_json::Value = serde_json::Deserializer::from_str(&text)
        .into_iter()
        .next()
        .and_then(Result::ok)
        .unwrap_or_else(|| panic!("no JSON in {text}"));
    (out.status.code(), rows[0]["running"].clone())
}

/// Each `(object, first word of the difference)` of `running`.
fn named(running: &serde_json::Value) -> Vec<(String, String)> {
    let drift = running["drift"].as_array().cloned().unwrap_or_default();
    drift
        .iter()
        .map(|d| {
            let difference = d["difference"].as_str().unwrap_or_default();
            let word = difference.split(' ').next().unwrap_or_default();
            (
                d["object"].as_str().unwrap_or_default().to_owned(),
                word.to_owned(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hand_moved_alias_and_routing_left_are_drift() {
    let fx = Fixture::new().await;
    fx.configure("v1", "{ strategy = \"lambda-all-at-once\" }");
    let (status_code, text) = code(&fx.release("v1"));
    assert_eq!(status_code, Some(0), "{text}");
    let live = fx.alias().await.0;
    let config = fx.dir.join("deploy.toml");
    let (exit, running) = status(&config);
    assert_eq!((exit, named(&running)), (Some(0), vec![]), "{running}");
    assert_eq!(running["runs"], format!("version {live}"));

    // Someone publishes other code and points the alias at it, 20% left on the live version.
    let client = lambda().await;
    client
        .update_function_code()
        .function_name(&fx.function)
        .zip_file(aws_smithy_types::Blob::new(tiny_zip()))
        .send()
        .await
        .expect("update code");
    let other = client
        .publish_version()
        .function_name(&fx.function)
        .send()
        .await
        .expect("publish")
        .version()
        .expect("version")
        .to_owned();
    let routing = aws_sdk_lambda::types::AliasRoutingConfiguration::builder()
        .additional_version_weights(&live, 0.2)
        .build();
    client
        .update_alias()
        .function_name(&fx.function)
        .name("live")
        .function_version(&other)
        .routing_config(routing)
        .send()
        .await
        .expect("move the alias");

    let (exit, running) = status(&config);
    assert_eq!(exit, Some(1), "{running}");
    let alias = format!("{}:live", fx.function);
    assert_eq!(
        named(&running),
        [
            (alias.clone(), "routing".to_owned()),
            (alias, "on".to_owned()),
            (format!("{}:{other}", fx.function), "runs".to_owned()),
        ],
        "{running}"
    );
}

/// A zip with one file, other code than any release.
fn tiny_zip() -> Vec<u8> {
    let dir = deploy_tests::scratch_dir("by-hand");
    write_source(&dir, "by hand");
    zip_of(&dir).bytes
}

#[tokio::test(flavor = "multi_thread")]
async fn dag_files_added_changed_and_removed_by_hand_are_drift() {
    let project = Project::new("").await;
    project.write("a.py", "A = 1\n");
    project.write("b.py", "B = 1\n");
    ok(&project.release("v1", &[]));
    let (exit, running) = status(&project.config);
    assert_eq!((exit, named(&running)), (Some(0), vec![]), "{running}");
    assert_eq!(running["runs"], "2 files");

    let s3 = s3(&moto().url).await;
    for (key, body) in [("dags/a.py", "A = 2\n"), ("dags/c.py", "C = 1\n")] {
        s3.put_object()
            .bucket(&project.dags)
            .key(key)
            .body(body.as_bytes().to_vec().into())
            .send()
            .await
            .expect("put by hand");
    }
    s3.delete_object()
        .bucket(&project.dags)
        .key("dags/b.py")
        .send()
        .await
        .expect("delete by hand");

    let (exit, running) = status(&project.config);
    assert_eq!(exit, Some(1), "{running}");
    let pairs = |list: &[(&str, &str)]| -> Vec<(String, String)> {
        list.iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect()
    };
    assert_eq!(
        named(&running),
        pairs(&[
            ("dags/a.py", "changed"),
            ("dags/b.py", "removed"),
            ("dags/c.py", "added")
        ])
    );
}

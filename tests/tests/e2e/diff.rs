//! `deploy diff` between dev and staging, read back from what the command prints: the same
//! after a promotion (`--exit-code` 0), the bytes after a new dev release, and a Lambda's memory
//! changed by hand in staging, each named; values that differ only by the environment's name
//! are kept apart.

use std::path::PathBuf;
use std::process::Output;

use deploy_tests::layouts::tiny_layout;
use deploy_tests::{
    REGION, copy_dir, create_bucket, create_repository, deploy, moto, oci_registry, scratch_dir,
    unique, workspace_root,
};

use super::lambda::{create_function, lambda, write_source};

/// dev and staging, each with an image (strategy `none`) and a Lambda function of its own.
struct Project {
    dir: PathBuf,
    config: PathBuf,
    function: String,
}

impl Project {
    async fn new() -> Project {
        let url = moto().url.clone();
        let (name, function) = (unique("api"), unique("fn"));
        let dir = scratch_dir("diff");
        let mut text = "project = \"t\"\n[settings]\npoll_interval = \"100ms\"\n".to_owned();
        for env in ["dev", "staging"] {
            let bucket = unique(&format!("diff-{env}"));
            create_bucket(&url, &bucket).await;
            create_repository(&url, &format!("{env}/{name}")).await;
            create_function(&format!("{function}-{env}"), &dir).await;
            text += &format!(
                "[environments.{env}]\nregion = \"{REGION}\"\naccount = \"123456789012\"\nstate_bucket = \"{bucket}\"\nendpoints = {{ registry = \"http://{}\" }}\n",
                oci_registry().host
            );
        }
        text += &format!(
            "[artifacts.api]\nkind = \"image\"\nrepository = \"{{env}}/{name}\"\nsource = \"oci:./layout:latest\"\nrollout = {{ strategy = \"none\" }}\n\
             [artifacts.fn]\nkind = \"lambda\"\nsource = \"./src\"\nfunction = \"{function}-{{env}}\"\nalias = \"live\"\n\
             rollout = {{ strategy = \"lambda-all-at-once\" }}\nenv = {{ STAGE = \"{{env}}\" }}\n"
        );
        copy_dir(
            &workspace_root().join("examples/planwise/build/api"),
            &dir.join("layout"),
        );
        write_source(&dir.join("src"), "v1");
        let config = dir.join("deploy.toml");
        std::fs::write(&config, text).expect("write config");
        Project {
            dir,
            config,
            function,
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        let out = deploy(&moto().url)
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .output()
            .expect("run deploy");
        assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
        out
    }

    /// `diff dev staging --exit-code --output json`: the exit code and the document.
    fn diff(&self) -> (Option<i32>, serde_json::Value) {
        let out = self.run(&["--output", "json", "diff", "dev", "staging", "--exit-code"]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let document = serde_json::Deserializer::from_str(&text)
            .into_iter::<serde_json::Value>()
            .next()
            .and_then(Result::ok)
            .unwrap_or_else(|| panic!("no JSON in {text}"));
        (out.status.code(), document)
    }
}

fn ok(out: &Output) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The artifact's entry of a diff document.
fn entry<'a>(document: &'a serde_json::Value, artifact: &str) -> &'a serde_json::Value {
    let entries = document.as_array().expect("a list");
    entries
        .iter()
        .find(|e| e["artifact"] == artifact)
        .expect("the artifact")
}

fn fields(entry: &serde_json::Value, list: &str) -> Vec<String> {
    let items = entry[list].as_array().cloned().unwrap_or_default();
    items
        .iter()
        .filter_map(|f| f["field"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_same_after_a_promotion_then_each_difference_named() {
    let p = Project::new().await;
    ok(&p.run(&["release", "dev", "--version", "v1"]));
    ok(&p.run(&["promote", "dev", "staging"]));
    let (code, document) = p.diff();
    assert_eq!(code, Some(0), "{document}");
    for artifact in ["api", "fn"] {
        let entry = entry(&document, artifact);
        assert_eq!(entry["same_bytes"], true, "{entry}");
        assert!(fields(entry, "differences").is_empty(), "{entry}");
    }
    assert!(
        fields(entry(&document, "fn"), "expected").contains(&"env.STAGE".to_owned()),
        "STAGE differs only by the environment's name: {document}"
    );

    // Someone gives staging's function more memory and points the alias at it by hand.
    let client = lambda().await;
    let staging = format!("{}-staging", p.function);
    client
        .update_function_configuration()
        .function_name(&staging)
        .memory_size(1024)
        .send()
        .await
        .expect("update configuration");
    let version = client
        .publish_version()
        .function_name(&staging)
        .send()
        .await
        .expect("publish")
        .version()
        .expect("version")
        .to_owned();
    client
        .update_alias()
        .function_name(&staging)
        .name("live")
        .function_version(&version)
        .send()
        .await
        .expect("move alias");
    // And dev gets a new image.
    tiny_layout(&p.dir.join("layout"), b"a newer build");
    ok(&p.run(&["release", "dev", "api", "--version", "v2"]));

    let (code, document) = p.diff();
    assert_eq!(code, Some(1), "{document}");
    let api = entry(&document, "api");
    assert_eq!(api["same_bytes"], false, "{api}");
    let function = entry(&document, "fn");
    assert_eq!(function["same_bytes"], true, "the same code: {function}");
    assert_eq!(fields(function, "differences"), ["memory"], "{function}");
    let memory = &function["differences"][0];
    assert_eq!(memory["b"], "1024", "{memory}");

    let out = p.run(&["diff", "dev", "staging"]);
    ok(&out);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("memory") && table.contains("1024"),
        "{table}"
    );
    assert!(
        !table.contains("STAGE"),
        "expected differences need -v: {table}"
    );
    let out = p.run(&["-v", "diff", "dev", "staging"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("env.STAGE"));
}

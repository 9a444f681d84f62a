//! Every malformed configuration in `tests/corpus/config/` is rejected by `deploy validate`
//! with exit code 2, the expected message at the expected `file:line:column`, no panic, and not
//! a single request to AWS.

use std::path::PathBuf;
use std::process::Command;

use deploy_tests::{RecordingEndpoint, deploy_bin, isolate_aws_env, workspace_root};

struct Case {
    path: PathBuf,
    expect: Vec<String>,
    at: Option<String>,
}

fn corpus() -> Vec<Case> {
    let dir = workspace_root().join("tests/corpus/config");
    let mut cases: Vec<Case> = std::fs::read_dir(&dir)
        .expect("corpus dir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .map(|path| {
            let text = std::fs::read_to_string(&path).expect("read case");
            let header = |tag: &str| -> Vec<String> {
                text.lines()
                    .filter_map(|l| l.strip_prefix(tag))
                    .map(|v| v.trim().to_owned())
                    .collect()
            };
            Case {
                expect: header("# expect:"),
                at: header("# at:").into_iter().next(),
                path,
            }
        })
        .collect();
    cases.sort_by(|a, b| a.path.cmp(&b.path));
    cases
}

#[test]
fn every_bad_config_is_rejected_with_location_and_no_aws_call() {
    let endpoint = RecordingEndpoint::start();
    let cases = corpus();
    assert!(cases.len() >= 30, "corpus has only {} cases", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        assert!(
            !case.expect.is_empty(),
            "{} has no `# expect:` line",
            case.path.display()
        );
        let mut cmd = Command::new(deploy_bin());
        isolate_aws_env(&mut cmd);
        let out = cmd
            .env("AWS_ENDPOINT_URL", &endpoint.url)
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .arg("--config")
            .arg(&case.path)
            .arg("validate")
            .output()
            .expect("run deploy");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let name = case
            .path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let mut problems = Vec::new();
        if out.status.code() != Some(2) {
            problems.push(format!("exit {:?} instead of 2", out.status.code()));
        }
        if stderr.contains("panicked") {
            problems.push("panicked".into());
        }
        for expected in &case.expect {
            if !stderr.contains(expected.as_str()) {
                problems.push(format!("missing `{expected}`"));
            }
        }
        if let Some(at) = &case.at {
            let first = stderr.lines().next().unwrap_or_default();
            if !first.contains(&format!("{name}:{at}:")) {
                problems.push(format!("first error not at {at}"));
            }
        }
        if !problems.is_empty() {
            failures.push(format!("{name}: {}\n{stderr}", problems.join("; ")));
        }
    }
    assert_eq!(endpoint.hits(), 0, "validate sent requests to AWS");
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn json_errors_list_each_problem_with_its_location() {
    let path = workspace_root().join("tests/corpus/config/99-several-problems.toml");
    let mut cmd = Command::new(deploy_bin());
    isolate_aws_env(&mut cmd);
    let out = cmd
        .arg("--config")
        .arg(&path)
        .args(["--output", "json", "validate"])
        .output()
        .expect("run deploy");
    assert_eq!(out.status.code(), Some(2));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    assert_eq!(doc["error"]["class"], "usage");
    let diagnostics = doc["error"]["diagnostics"]
        .as_array()
        .expect("diagnostics array");
    assert_eq!(diagnostics.len(), 3, "{doc:#}");
    for d in diagnostics {
        assert!(d["location"]["line"].as_u64().is_some_and(|l| l > 0), "{d}");
        assert!(d["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
}

/// Runs `deploy --config <config> validate` with AWS pointed at `endpoint` and the shared AWS
/// files at `aws_config`; kills it if it runs longer than 20 s (a FIFO read would never end).
fn validate(
    config: &std::path::Path,
    endpoint: &RecordingEndpoint,
    aws_config: Option<&std::path::Path>,
) -> std::process::Output {
    let mut cmd = Command::new(deploy_bin());
    isolate_aws_env(&mut cmd);
    if let Some(file) = aws_config {
        cmd.env("AWS_CONFIG_FILE", file);
    }
    let mut child = cmd
        .env("AWS_ENDPOINT_URL", &endpoint.url)
        .arg("--config")
        .arg(config)
        .arg("validate")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run deploy");
    let started = std::time::Instant::now();
    while child.try_wait().expect("poll").is_none() {
        if started.elapsed() > std::time::Duration::from_secs(20) {
            let _ = child.kill();
            panic!("validate of {} hangs", config.display());
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.wait_with_output().expect("output")
}

/// A copy of the example image layout in a scratch directory, with a config publishing it;
/// returns the config and the path of the image's first layer blob.
fn layout_project(name: &str) -> (PathBuf, PathBuf) {
    let dir = deploy_tests::scratch_dir(name);
    let layout = dir.join("layout");
    deploy_tests::copy_dir(
        &workspace_root().join("examples/planwise/build/api"),
        &layout,
    );
    let json = |path: PathBuf| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(path).expect("read")).expect("json")
    };
    let blob = |digest: &serde_json::Value| {
        let hex = digest
            .as_str()
            .and_then(|d| d.strip_prefix("sha256:"))
            .expect("digest");
        layout.join("blobs/sha256").join(hex)
    };
    let index = json(layout.join("index.json"));
    let manifest = json(blob(&index["manifests"][0]["digest"]));
    let layer = blob(&manifest["layers"][0]["digest"]);
    let config = dir.join("deploy.toml");
    std::fs::write(
        &config,
        "project = \"t\"\n[environments.dev]\nregion = \"eu-west-1\"\naccount = \"123456789012\"\nstate_bucket = \"t-state-dev\"\n[artifacts.api]\nkind = \"image\"\nrepository = \"t/api\"\nsource = \"oci:./layout:latest\"\n",
    )
    .expect("write config");
    (config, layer)
}

fn mkfifo(path: &std::path::Path) {
    let _ = std::fs::remove_file(path);
    let made = Command::new("mkfifo").arg(path).status().expect("mkfifo");
    assert!(made.success());
}

#[test]
fn unreadable_layout_files_are_refused_with_their_path_without_hanging() {
    let endpoint = RecordingEndpoint::start();
    let (config, _) = layout_project("corpus-ok-layout");
    let out = validate(&config, &endpoint, None);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let (config, layer) = layout_project("corpus-fifo-blob");
    mkfifo(&layer);
    let out = validate(&config, &endpoint, None);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("blob {} is not a regular file", layer.display())),
        "{stderr}"
    );
    assert!(stderr.contains("deploy.toml:9:10:"), "{stderr}");

    let (config, layer) = layout_project("corpus-loop-blob");
    std::fs::remove_file(&layer).expect("remove layer");
    std::os::unix::fs::symlink(&layer, &layer).expect("symlink loop");
    let out = validate(&config, &endpoint, None);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot read {}", layer.display())),
        "{stderr}"
    );

    let (config, _) = layout_project("corpus-fifo-index");
    mkfifo(&config.with_file_name("layout").join("index.json"));
    let out = validate(&config, &endpoint, None);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("index.json: not a regular file"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(endpoint.hits(), 0, "validate sent requests to AWS");
}

#[test]
fn a_profile_defined_in_the_shared_config_file_is_accepted() {
    let endpoint = RecordingEndpoint::start();
    let dir = deploy_tests::scratch_dir("corpus-profile");
    let aws_config = dir.join("aws-config");
    std::fs::write(&aws_config, "[profile t-dev]\nregion = eu-west-1\n").expect("write");
    let config = dir.join("deploy.toml");
    std::fs::write(
        &config,
        "project = \"t\"\n[environments.dev]\nregion = \"eu-west-1\"\naccount = \"123456789012\"\nstate_bucket = \"t-state-dev\"\nprofile = \"{project}-{env}\"\n",
    )
    .expect("write config");
    let out = validate(&config, &endpoint, Some(&aws_config));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = validate(&config, &endpoint, None);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("deploy.toml:6:11: AWS profile `t-dev` is not defined"),
        "{stderr}"
    );
    assert_eq!(endpoint.hits(), 0);
}

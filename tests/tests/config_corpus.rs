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

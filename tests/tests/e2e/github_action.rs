//! The GitHub Action's run script (`scripts/action-run.sh`, what `action.yml` runs) under a
//! simulated GitHub Actions step: `GITHUB_ACTIONS`, `GITHUB_OUTPUT`, `GITHUB_STEP_SUMMARY`,
//! `GITHUB_SHA`, `GITHUB_RUN_ID` set, `deploy` on the PATH, the inputs as `INPUT_*`. The outputs
//! file is parsed as GitHub parses it (`name=value` lines and `name<<DELIMITER` blocks) and
//! compared with what the ledger holds, read back from S3.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};

use deploy_tests::dags::{Project, ok};
use deploy_tests::{deploy_bin, get_json, isolate_aws_env, moto, workspace_root};

/// Parses a `$GITHUB_OUTPUT` file: the last value of each name wins, as in GitHub.
fn parse_outputs(text: &str) -> BTreeMap<String, String> {
    let mut outputs = BTreeMap::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if let Some((name, delimiter)) = line.split_once("<<") {
            let mut value = Vec::new();
            for body in lines.by_ref() {
                if body == delimiter {
                    break;
                }
                value.push(body);
            }
            outputs.insert(name.to_owned(), value.join("\n"));
        } else if let Some((name, value)) = line.split_once('=') {
            outputs.insert(name.to_owned(), value.to_owned());
        }
    }
    outputs
}

/// Runs the action's run script in `p`'s folder with `inputs`; the step's outputs and summary
/// are read from fresh files.
fn step(p: &Project, inputs: &[(&str, &str)]) -> (Output, BTreeMap<String, String>, String) {
    let output = p.dir.join("github-output");
    let summary = p.dir.join("github-summary");
    for file in [&output, &summary] {
        std::fs::write(file, "").expect("reset");
    }
    let bin_dir = deploy_bin().parent().expect("bin dir").to_owned();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut cmd = Command::new("bash");
    isolate_aws_env(&mut cmd);
    cmd.arg(workspace_root().join("scripts/action-run.sh"))
        .current_dir(&p.dir)
        .env("PATH", path)
        .env("AWS_ENDPOINT_URL", &moto().url)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_OUTPUT", &output)
        .env("GITHUB_STEP_SUMMARY", &summary)
        .env("GITHUB_SHA", "0123456789abcdef0123456789abcdef01234567")
        .env("GITHUB_RUN_ID", "4242")
        .env("GITHUB_SERVER_URL", "https://github.com")
        .env("GITHUB_REPOSITORY", "acme/dags")
        .env("INPUT_CONFIG", "deploy.toml");
    for (name, value) in inputs {
        cmd.env(format!("INPUT_{name}"), value);
    }
    let out = cmd.output().expect("run the action script");
    let read = |file: &Path| std::fs::read_to_string(file).expect("read");
    (out, parse_outputs(&read(&output)), read(&summary))
}

#[tokio::test(flavor = "multi_thread")]
async fn the_action_sets_outputs_and_a_summary_for_each_outcome() {
    let p = Project::new("").await;
    p.write("etl.py", "from airflow import DAG\n");
    let release = [
        ("COMMAND", "release"),
        ("ENVIRONMENT", "dev"),
        ("ARTIFACTS", "dags"),
        ("VERSION", "v1"),
    ];
    let (out, outputs, summary) = step(&p, &release);
    ok(&out);
    let live = get_json(
        &moto().url,
        &p.state,
        "deploy/t/dev/artifacts/dags/live.json",
    )
    .await;
    let id = live["release_id"].as_str().expect("id");
    assert_eq!(outputs["outcome"], "succeeded", "{outputs:?}");
    assert_eq!(outputs["release-ids"], id);
    assert_eq!(outputs["dags-release-id"], id);
    assert_eq!(outputs["dags-version"], "v1");
    assert_eq!(
        outputs["dags-content-id"],
        live["artifact_ref"]["content_id"]
            .as_str()
            .expect("content id")
    );
    let result: serde_json::Value = serde_json::from_str(&outputs["result"]).expect("JSON");
    assert_eq!(result["releases"][0]["release_id"], id);
    assert!(
        summary.contains("### deploy release to dev: succeeded") && summary.contains(id),
        "{summary}"
    );

    let (out, outputs, summary) = step(&p, &release);
    ok(&out);
    assert_eq!(outputs["outcome"], "unchanged");
    assert_eq!(outputs["dags-release-id"], id, "the live release");
    assert_eq!(outputs["release-ids"], "");
    assert!(summary.contains("Nothing to change"), "{summary}");

    p.write("broken.py", "def broken(:\n");
    let (out, outputs, summary) = step(&p, &release);
    assert_eq!(out.status.code(), Some(2), "a syntax error is bad input");
    assert_eq!(outputs["outcome"], "failed");
    assert!(summary.contains(": failed"), "{summary}");

    let (out, _, _) = step(&p, &[("COMMAND", "launch"), ("ENVIRONMENT", "dev")]);
    assert_eq!(out.status.code(), Some(2));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("::error title=deploy action::unknown command 'launch'"),
        "{stdout}"
    );
}

#[test]
fn configuration_errors_are_inline_annotations_under_github_actions() {
    let dir = deploy_tests::scratch_dir("annotations");
    std::fs::write(
        dir.join("deploy.toml"),
        "project = \"t\"\n[environments.dev]\nregion = \"eu-west-1\"\naccount = \"12\"\nstate_bucket = \"b-state\"\n",
    )
    .expect("write");
    let mut cmd = Command::new(deploy_bin());
    isolate_aws_env(&mut cmd);
    let out = cmd
        .args(["validate"])
        .current_dir(&dir)
        .env("GITHUB_ACTIONS", "true")
        .output()
        .expect("run deploy");
    assert_eq!(out.status.code(), Some(2));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("::error file=deploy.toml,line=4,col=11,title=deploy::")),
        "{stdout}"
    );
}

#[test]
fn output_files_are_parsed_as_github_does() {
    let parsed = parse_outputs("a=1\nresult<<EOF_X\n{\n}\nEOF_X\nb=x=y\n");
    assert_eq!(parsed["a"], "1");
    assert_eq!(parsed["result"], "{\n}");
    assert_eq!(parsed["b"], "x=y");
}

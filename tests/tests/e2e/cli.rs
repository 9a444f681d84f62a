//! The command line itself: help, completions, validate on the example, exit codes for usage.

use std::process::Command;

use deploy_tests::{deploy_bin, isolate_aws_env, workspace_root};

fn deploy() -> Command {
    let mut cmd = Command::new(deploy_bin());
    isolate_aws_env(&mut cmd);
    cmd
}

#[test]
fn help_lists_the_commands_that_work() {
    let out = deploy().arg("--help").output().expect("run");
    assert_eq!(out.status.code(), Some(0));
    insta::assert_snapshot!("help", String::from_utf8_lossy(&out.stdout));
}

#[test]
fn plan_help_is_stable() {
    let out = deploy().args(["plan", "--help"]).output().expect("run");
    assert_eq!(out.status.code(), Some(0));
    insta::assert_snapshot!("plan_help", String::from_utf8_lossy(&out.stdout));
}

#[test]
fn usage_errors_exit_2() {
    let out = deploy().arg("frobnicate").output().expect("run");
    assert_eq!(out.status.code(), Some(2));
    let out = deploy()
        .args(["--output", "yaml", "validate"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let out = deploy()
        .args(["publish", "dev", "--wait-lock", "soon"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not a duration"));
    let out = deploy()
        .args(["--config", "/nonexistent/deploy.toml", "validate"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read /nonexistent/deploy.toml"));
}

#[test]
fn completions_are_generated() {
    for shell in ["bash", "zsh", "fish"] {
        let out = deploy().args(["completions", shell]).output().expect("run");
        assert_eq!(out.status.code(), Some(0));
        let script = String::from_utf8_lossy(&out.stdout);
        assert!(
            script.contains("validate") && script.contains("history"),
            "{shell}"
        );
    }
}

#[test]
fn example_project_validates() {
    let config = workspace_root().join("examples/planwise/deploy.toml");
    let out = deploy()
        .arg("--config")
        .arg(&config)
        .args(["--output", "json", "validate"])
        .output()
        .expect("run");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(doc["valid"], true);
    let prod = doc["environments"]
        .as_array()
        .and_then(|e| e.iter().find(|e| e["name"] == "prod"))
        .expect("prod");
    assert_eq!(prod["promote_from"], "staging");
    assert_eq!(prod["approval"], true);
    let dev = doc["environments"]
        .as_array()
        .and_then(|e| e.iter().find(|e| e["name"] == "dev"))
        .expect("dev");
    let api = dev["artifacts"]
        .as_array()
        .and_then(|a| a.iter().find(|a| a["name"] == "api"))
        .expect("api");
    assert_eq!(api["strategy"], "ecs-rolling", "the dev override applies");
}

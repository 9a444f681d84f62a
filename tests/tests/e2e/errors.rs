//! Set-up failures that users hit first: each is one line naming the cause plus a hint, with
//! exit code 1 (or 2 for usage), and no panic.

use std::path::PathBuf;
use std::process::{Command, Output};

use deploy_tests::{
    RecordingEndpoint, deploy, deploy_bin, free_port, isolate_aws_env, moto, scratch_dir,
};

fn config(account: &str, extra: &str) -> PathBuf {
    let dir = scratch_dir("errors");
    let path = dir.join("deploy.toml");
    let text = format!(
        "project = \"t\"\n[environments.e2e]\nregion = \"eu-west-1\"\naccount = \"{account}\"\nstate_bucket = \"t-errors\"\n{extra}\n[artifacts.app]\nkind = \"image\"\nrepository = \"t/app\"\n"
    );
    std::fs::write(&path, text).expect("write config");
    path
}

fn run(mut cmd: Command, config: &PathBuf) -> (Option<i32>, String) {
    let out: Output = cmd
        .arg("--config")
        .arg(config)
        .args(["plan", "e2e", "--version", "v1"])
        .output()
        .expect("run deploy");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn assert_one_line(stderr: &str) {
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "expected one line:\n{stderr}");
    assert!(lines[0].starts_with("error: "), "{stderr}");
    assert!(!stderr.contains("panicked"));
}

#[test]
fn account_mismatch_names_both_accounts() {
    let (code, stderr) = run(deploy(&moto().url), &config("111111111111", ""));
    assert_eq!(code, Some(1));
    assert_one_line(&stderr);
    assert!(
        stderr.contains("111111111111") && stderr.contains("123456789012"),
        "{stderr}"
    );
    assert!(stderr.contains("nothing was changed"), "{stderr}");
}

#[test]
fn missing_credentials_say_what_to_set() {
    let mut cmd = Command::new(deploy_bin());
    isolate_aws_env(&mut cmd);
    cmd.env("AWS_ENDPOINT_URL", &moto().url);
    let (code, stderr) = run(cmd, &config("123456789012", ""));
    assert_eq!(code, Some(1));
    assert_one_line(&stderr);
    assert!(stderr.contains("no usable AWS credentials"), "{stderr}");
    assert!(stderr.contains("AWS_ACCESS_KEY_ID"), "{stderr}");
}

#[test]
fn unknown_profile_is_named_before_any_aws_call() {
    let endpoint = RecordingEndpoint::start();
    let mut cmd = Command::new(deploy_bin());
    isolate_aws_env(&mut cmd);
    cmd.env("AWS_ENDPOINT_URL", &endpoint.url);
    let (code, stderr) = run(
        cmd,
        &config("123456789012", "profile = \"no-such-profile\""),
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        stderr.contains("deploy.toml:6:11: AWS profile `no-such-profile` is not defined"),
        "{stderr}"
    );
    assert!(stderr.contains("aws configure --profile"), "{stderr}");
    assert_eq!(
        endpoint.hits(),
        0,
        "no AWS request before the profile check"
    );
}

#[test]
fn unreachable_endpoint_is_reported_with_a_hint() {
    let closed = format!("http://127.0.0.1:{}", free_port());
    let started = std::time::Instant::now();
    let (code, stderr) = run(deploy(&closed), &config("123456789012", ""));
    assert_eq!(code, Some(1));
    assert_one_line(&stderr);
    assert!(stderr.contains("cannot reach AWS"), "{stderr}");
    assert!(stderr.contains("AWS_ENDPOINT_URL"), "{stderr}");
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
}

#[test]
fn missing_state_bucket_points_at_the_infra_stack() {
    let (code, stderr) = run(deploy(&moto().url), &config("123456789012", ""));
    assert_eq!(code, Some(1));
    assert_one_line(&stderr);
    assert!(
        stderr.contains("state bucket `t-errors` does not exist"),
        "{stderr}"
    );
}

#[test]
fn unknown_environment_and_artifact_are_usage_errors() {
    let config = config("123456789012", "");
    let out = deploy(&moto().url)
        .arg("--config")
        .arg(&config)
        .args(["plan", "nope"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown environment `nope`"));
    let out = deploy(&moto().url)
        .arg("--config")
        .arg(&config)
        .args(["plan", "e2e", "web", "--version", "v1"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown artifact `web`"));
    let _ = scratch_dir("unused");
}

//! Bad command-line input: durations, configuration paths and artifact names. Each is a usage
//! error (exit 2) with a message saying what is allowed, never a panic, never a hang, and not a
//! single request to AWS.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use deploy_tests::{RecordingEndpoint, deploy_bin, isolate_aws_env, scratch_dir};

/// Runs `deploy` with AWS pointed at `endpoint`, killing it if it runs longer than 20 s.
fn run(endpoint: &RecordingEndpoint, args: &[&str]) -> Output {
    let mut cmd = Command::new(deploy_bin());
    isolate_aws_env(&mut cmd);
    let mut child = cmd
        .env("AWS_ENDPOINT_URL", &endpoint.url)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn deploy");
    let started = Instant::now();
    while child.try_wait().expect("poll deploy").is_none() {
        if started.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            panic!("deploy {args:?} still runs after 20 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("deploy output")
}

fn valid_config() -> PathBuf {
    let path = scratch_dir("bad-input").join("deploy.toml");
    std::fs::write(
        &path,
        "project = \"t\"\n[environments.dev]\nregion = \"eu-west-1\"\naccount = \"123456789012\"\nstate_bucket = \"t-state-dev\"\n[artifacts.app]\nkind = \"image\"\nrepository = \"t/app\"\n",
    )
    .expect("write config");
    path
}

/// Asserts exit code 2, no panic, and every `expected` fragment on stderr.
fn assert_usage(out: &Output, args: &[&str], expected: &[&str]) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}:\n{stderr}");
    assert!(!stderr.contains("panicked"), "{args:?}:\n{stderr}");
    for fragment in expected {
        assert!(
            stderr.contains(fragment),
            "{args:?}: no `{fragment}` in\n{stderr}"
        );
    }
}

#[test]
fn durations_out_of_range_or_malformed_are_usage_errors() {
    let endpoint = RecordingEndpoint::start();
    let config = valid_config();
    let config = config.to_str().unwrap_or_default();
    let cases: &[(&[&str], &str)] = &[
        (&["plan", "dev", "--timeout", "0s"], "allowed: 1s to 24h"),
        (&["plan", "dev", "--timeout", "25h"], "allowed: 1s to 24h"),
        (
            &["plan", "dev", "--timeout", "100000000h"],
            "allowed: 1s to 24h",
        ),
        (
            &["plan", "dev", "--timeout", "99999999999999999999h"],
            "is not a duration",
        ),
        (&["plan", "dev", "--timeout", "10"], "is not a duration"),
        (&["plan", "dev", "--timeout", ""], "is not a duration"),
        (
            &["publish", "dev", "--wait-lock", "25h"],
            "allowed: 0s to 24h",
        ),
        (&["publish", "dev", "--wait-lock=-1s"], "is not a duration"),
        (
            &["publish", "dev", "--wait-lock", "soon"],
            "is not a duration",
        ),
    ];
    for (args, expected) in cases {
        let mut full = vec!["--config", config];
        full.extend_from_slice(args);
        let out = run(&endpoint, &full);
        assert_usage(&out, &full, &[expected]);
    }
    assert_eq!(endpoint.hits(), 0, "a bad duration reached AWS");
}

#[test]
fn configuration_paths_that_are_not_small_regular_files_are_refused_unread() {
    let endpoint = RecordingEndpoint::start();
    let dir = scratch_dir("bad-config-path");
    let fifo = dir.join("deploy.fifo");
    let made = Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("run mkfifo");
    assert!(made.success(), "mkfifo failed");
    let huge = dir.join("huge.toml");
    let file = std::fs::File::create(&huge).expect("create");
    file.set_len(4 * 1024 * 1024 + 1).expect("sparse 4 MiB + 1");
    // Built before the clock starts: only the command itself is timed.
    deploy_bin();
    let cases: Vec<(PathBuf, Vec<&str>)> = vec![
        (
            PathBuf::from("/nonexistent/deploy.toml"),
            vec!["cannot read /nonexistent/deploy.toml"],
        ),
        (
            dir.clone(),
            vec!["is a directory, not a configuration file"],
        ),
        (
            PathBuf::from("/dev/zero"),
            vec!["/dev/zero is a device, not a configuration file"],
        ),
        (fifo.clone(), vec!["is a FIFO, not a configuration file"]),
        (
            huge.clone(),
            vec!["is 4194305 bytes; a configuration may be at most 4194304 bytes"],
        ),
    ];
    for (path, expected) in &cases {
        for command in [&["validate"][..], &["plan", "dev"], &["status"]] {
            let started = Instant::now();
            let mut args = vec!["--config", path.to_str().unwrap_or_default()];
            args.extend_from_slice(command);
            let out = run(&endpoint, &args);
            assert_usage(&out, &args, expected);
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "{args:?} took {:?}",
                started.elapsed()
            );
        }
    }
    assert_eq!(endpoint.hits(), 0, "a bad config path reached AWS");
}

#[test]
fn artifact_names_that_are_not_in_the_configuration_are_usage_errors() {
    let endpoint = RecordingEndpoint::start();
    let config = valid_config();
    let config = config.to_str().unwrap_or_default();
    for name in ["nope", "../x", "", "app/../app", "APP"] {
        for command in ["plan", "publish", "release", "rollback"] {
            let args = ["--config", config, command, "dev", name];
            let out = run(&endpoint, &args);
            assert_usage(
                &out,
                &args,
                &[&format!("unknown artifact `{name}`"), "defines: app"],
            );
        }
    }
    assert_eq!(endpoint.hits(), 0, "an unknown artifact reached AWS");
}

#[test]
fn a_release_id_for_several_artifacts_is_a_usage_error() {
    let endpoint = RecordingEndpoint::start();
    let config = valid_config();
    let text = std::fs::read_to_string(&config).expect("config")
        + "[artifacts.worker]\nkind = \"image\"\nrepository = \"t/worker\"\n";
    std::fs::write(&config, text).expect("write config");
    let config = config.to_str().unwrap_or_default();
    let args = [
        "--config",
        config,
        "rollback",
        "dev",
        "--to",
        "20260101T000000Z-x",
    ];
    let out = run(&endpoint, &args);
    assert_usage(
        &out,
        &args,
        &["a release id (--to) belongs to one artifact"],
    );
    assert_eq!(endpoint.hits(), 0, "the refusal reached AWS");
}

#[test]
fn a_publish_of_dags_is_refused_because_their_files_go_live_when_synced() {
    let endpoint = RecordingEndpoint::start();
    let config = valid_config();
    std::fs::create_dir_all(config.parent().expect("dir").join("dags")).expect("mkdir");
    let text = std::fs::read_to_string(&config).expect("config")
        + "[artifacts.dags]\nkind = \"dags\"\nsource = \"./dags\"\nbucket = \"t-dags-dev\"\n";
    std::fs::write(&config, text).expect("write config");
    let config = config.to_str().unwrap_or_default();
    for args in [
        vec![
            "--config",
            config,
            "publish",
            "dev",
            "dags",
            "--version",
            "v1",
        ],
        vec!["--config", config, "publish", "dev", "--version", "v1"],
    ] {
        let out = run(&endpoint, &args);
        assert_usage(
            &out,
            &args,
            &[
                "cannot be published apart from its release",
                "deploy release dev dags",
            ],
        );
    }
    let args = ["--config", config, "publish", "dev", "--version", "v1"];
    assert_usage(&run(&endpoint, &args), &args, &["deploy publish dev app"]);
    assert_eq!(endpoint.hits(), 0, "the refusal reached AWS");
}

#[test]
fn an_oversized_file_is_not_read() {
    // A sparse file of 2 GiB would take seconds to read and gigabytes of memory; refusing it by
    // its size is instant.
    let endpoint = RecordingEndpoint::start();
    let path = scratch_dir("bad-config-huge").join("deploy.toml");
    let file = std::fs::File::create(&path).expect("create");
    file.set_len(2 * 1024 * 1024 * 1024).expect("sparse 2 GiB");
    deploy_bin();
    let started = Instant::now();
    let args = ["--config", path.to_str().unwrap_or_default(), "validate"];
    let out = run(&endpoint, &args);
    let _ = std::fs::remove_file(&path);
    assert_usage(&out, &args, &["is 2147483648 bytes"]);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(endpoint.hits(), 0);
}

/// A version becomes the image tag and part of registry URLs: only the OCI tag grammar passes,
/// checked before the lock, a blob or any AWS request.
#[test]
fn versions_that_are_not_image_tags_are_usage_errors() {
    let endpoint = RecordingEndpoint::start();
    let config = valid_config();
    let config = config.to_str().unwrap_or_default();
    let long = "a".repeat(300);
    let cases: &[(&str, &str)] = &[
        (
            "x/../../../other/manifests/v10",
            "a branch name is not a version",
        ),
        ("v7?x=1", "1 to 128 characters"),
        ("v1\nv2", "v1\\nv2"),
        ("", "it is empty"),
        (&long, "it is 300 characters long"),
        ("feature/x", "--version feature-x"),
        ("two words", "1 to 128 characters"),
        ("versión", "1 to 128 characters"),
        ("-v1", "not starting with `.` or `-`"),
    ];
    for (version, expected) in cases {
        for command in ["publish", "release", "plan"] {
            let flag = format!("--version={version}");
            let args = ["--config", config, command, "dev", "app", &flag];
            let out = run(&endpoint, &args);
            assert_usage(&out, &args, &[expected, "cannot be an image tag"]);
        }
    }
    assert_eq!(endpoint.hits(), 0, "a bad version reached AWS");
}

#[test]
fn a_misspelt_region_is_refused_with_the_one_meant_and_a_new_one_is_a_warning() {
    let endpoint = RecordingEndpoint::start();
    let config = valid_config();
    let text = std::fs::read_to_string(&config).expect("read config");
    std::fs::write(&config, text.replace("eu-west-1", "eu-wset-1")).expect("write config");
    let args = ["--config", config.to_str().expect("utf-8"), "validate"];
    let out = run(&endpoint, &args);
    assert_usage(
        &out,
        &args,
        &[
            "`eu-wset-1` is not an AWS region",
            "did you mean `eu-west-1`?",
        ],
    );

    std::fs::write(&config, text.replace("eu-west-1", "eu-southwest-9")).expect("write config");
    let out = run(&endpoint, &args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let warning = stderr
        .lines()
        .find(|l| l.starts_with("warning: "))
        .unwrap_or_else(|| panic!("no warning:\n{stderr}"));
    assert!(
        warning.ends_with(":3:10: `eu-southwest-9` is not a region this version of deploy knows"),
        "{warning}"
    );
    assert!(!stderr.contains('\x1b'), "{stderr}");
    assert_eq!(endpoint.hits(), 0, "validate calls nothing");
}

#[test]
fn iam_policy_of_an_unknown_environment_or_format_is_a_usage_error() {
    let endpoint = RecordingEndpoint::start();
    let config = valid_config();
    let config = config.to_str().expect("utf-8");
    let args = ["--config", config, "iam-policy", "prod"];
    assert_usage(&run(&endpoint, &args), &args, &["prod"]);
    let args = ["--config", config, "iam-policy", "dev", "--format", "yaml"];
    assert_usage(&run(&endpoint, &args), &args, &["cloudformation"]);
    assert_eq!(endpoint.hits(), 0, "nothing reached AWS");
}

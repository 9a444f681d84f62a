//! On a terminal (a pseudo-terminal from util-linux `script`), a rollout's progress is one
//! line redrawn in place (`\r`, erase line), cleared before the next line is written; the
//! plain, timestamped lines of a log are not written there. Off a terminal, a wait (a health
//! gate, a migration task) is a plain line with the time of day and the time left, written
//! again only when what it waits for changes.

use std::process::Command;

use deploy_tests::{
    answering, deploy_bin, isolate_aws_env, lambda_function, moto, release_dev_v1, unique,
};

#[tokio::test(flavor = "multi_thread")]
async fn a_shift_on_a_terminal_redraws_its_progress_line() {
    let url = moto().url.clone();
    let function = unique("tty-fn");
    lambda_function(&url, &function).await;
    let rollout = "handler = \"main.handler\"\n\
                   rollout = { strategy = \"lambda-canary\", steps = [50, 100], interval = \"1s\" }\n";
    let (config, _) = deploy_tests::lambda_project("tty", &function, rollout).await;
    let command = format!(
        "{} --config {} release dev --version v1",
        deploy_bin().display(),
        config.display()
    );
    let mut script = Command::new("script");
    isolate_aws_env(&mut script);
    let out = script
        .args(["-qec", &command, "/dev/null"])
        .env("AWS_ENDPOINT_URL", &url)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .output()
        .expect("run deploy under script");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    // The first release has no earlier version to share traffic with: the alias goes to the
    // new one at once, drawn in place and erased before the step's next line.
    assert!(
        text.contains(
            "\r\x1b[2K    fn: 100% of alias live on version 1\r\x1b[2K[fn.shift-lambda-alias] done"
        ),
        "a redrawn progress line, cleared before the next:\n{text:?}"
    );
    let stamped = text.lines().any(|l| {
        let l = l
            .trim_start_matches(['\r', '\u{1b}', '[', '2', 'K'])
            .trim_start();
        l.len() > 9 && l.as_bytes()[2] == b':' && l.as_bytes()[5] == b':' && l.contains(" fn: ")
    });
    assert!(
        !stamped,
        "no timestamped log lines on a terminal:\n{text:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_health_gate_off_a_terminal_is_one_timestamped_line_until_it_changes() {
    let function = unique("wait-fn");
    lambda_function(&moto().url, &function).await;
    let rollout = format!(
        "handler = \"main.handler\"\nrollout = {{ strategy = \"lambda-all-at-once\", \
         health_check = {{ url = \"{}\", timeout = \"4s\" }} }}\n",
        answering(503)
    );
    let (config, _) = deploy_tests::lambda_project("wait", &function, &rollout).await;
    let text = std::fs::read_to_string(&config).expect("config");
    std::fs::write(
        &config,
        text.replace(
            "[environments.dev]",
            "[settings]\npoll_interval = \"500ms\"\n[environments.dev]",
        ),
    )
    .expect("poll every half second");
    let (code, stderr) = release_dev_v1(&config);
    // The gate never passes; without an artifact bucket the new code stays on $LATEST (exit 1).
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("last answered 503"), "{stderr}");
    let waits: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("fn: health check answered 503, expecting 200"))
        .collect();
    assert_eq!(
        waits.len(),
        1,
        "several polls, one line while nothing changes:\n{stderr}"
    );
    let line = waits[0].trim_start();
    let stamp = line.as_bytes();
    assert!(
        stamp.len() > 9 && stamp[2] == b':' && stamp[5] == b':' && stamp[8] == b' ',
        "the time of day first: {line}"
    );
    assert!(line.ends_with("s left)"), "with the time left: {line}");
    assert!(
        !stderr.contains('\x1b'),
        "no terminal escapes off a terminal:\n{stderr:?}"
    );
}

/// A migration task that takes a few polls: its status, with the time left, one line per
/// status it passes through.
#[tokio::test(flavor = "multi_thread")]
async fn a_migration_off_a_terminal_shows_each_status_with_the_time_left() {
    use super::ecs_rolling::{fixture, migration_family, with_migration};
    let f = fixture("30s").await;
    let family = migration_family().await;
    with_migration(&f, &family);
    f.double.script_task(
        &family,
        deploy_tests::ecs_double::TaskScript {
            exit_code: 0,
            after_polls: 4,
            reason: "Essential container in task exited".into(),
        },
    );
    let (code, stderr) = f.release("v1");
    assert_eq!(code, Some(0), "{stderr}");
    for status in ["PENDING", "RUNNING"] {
        let lines: Vec<&str> = stderr
            .lines()
            .filter(|l| l.contains("api: migration task ") && l.contains(&format!(": {status} (")))
            .collect();
        assert_eq!(lines.len(), 1, "one {status} line:\n{stderr}");
        assert!(lines[0].ends_with("s left)"), "{}", lines[0]);
    }
}

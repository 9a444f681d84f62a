//! `deploy init` in fresh repositories of several shapes: the `deploy.toml` it writes passes
//! `deploy validate` (an image's archive made by `skopeo copy` from the example's OCI layout,
//! as the workflow's `docker save` would), the workflows pass `actionlint` and `zizmor`, a
//! second `init` changes nothing, and a file edited since is not overwritten without --force.

use std::path::Path;
use std::process::{Command, Output};

use deploy_tests::{deploy_bin, scratch_dir, tool, workspace_root};

const ACTION: &str = "acme/deploy@0123456789abcdef0123456789abcdef01234567";

fn run(dir: &Path, args: &[&str]) -> Output {
    Command::new(deploy_bin())
        .args(args)
        .current_dir(dir)
        .env_remove("DEPLOY_CONFIG")
        .output()
        .expect("run deploy")
}

fn ok(out: &Output) -> String {
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?}: {text}", out.status.code());
    text
}

fn write(dir: &Path, path: &str, text: &str) {
    let file = dir.join(path);
    std::fs::create_dir_all(file.parent().expect("parent")).expect("mkdir");
    std::fs::write(file, text).expect("write");
}

/// The workflows pass actionlint and zizmor (no finding at any severity).
fn lint(dir: &Path) {
    let workflows: Vec<String> = std::fs::read_dir(dir.join(".github/workflows"))
        .expect("workflows")
        .flatten()
        .map(|e| e.path().display().to_string())
        .collect();
    assert!(workflows.len() >= 2, "{workflows:?}");
    let out = Command::new(tool("actionlint"))
        .args(&workflows)
        .output()
        .expect("actionlint (scripts/emulators.sh install)");
    ok(&out);
    let out = Command::new(tool("zizmor"))
        .args(["--offline", "--min-severity", "low", "--no-progress"])
        .args(&workflows)
        .output()
        .expect("zizmor (scripts/emulators.sh install)");
    let text = ok(&out);
    assert!(text.contains("No findings"), "{text}");
}

/// `build/NAME.tar` as `docker save` writes it, from the example's OCI layout.
fn docker_archive(dir: &Path, name: &str) {
    std::fs::create_dir_all(dir.join("build")).expect("mkdir");
    let layout = workspace_root().join("examples/planwise/build/api");
    let out = Command::new("skopeo")
        .arg("copy")
        .arg(format!("oci:{}", layout.display()))
        .arg(format!(
            "docker-archive:{}:{name}:latest",
            dir.join(format!("build/{name}.tar")).display()
        ))
        .output()
        .expect("skopeo");
    ok(&out);
}

fn snapshot(dir: &Path) -> Vec<(String, String)> {
    let mut files = vec![(
        "deploy.toml".to_owned(),
        std::fs::read_to_string(dir.join("deploy.toml")).expect("toml"),
    )];
    for entry in std::fs::read_dir(dir.join(".github/workflows"))
        .expect("workflows")
        .flatten()
    {
        files.push((
            entry.file_name().to_string_lossy().into_owned(),
            std::fs::read_to_string(entry.path()).expect("read"),
        ));
    }
    files.sort();
    files
}

#[test]
fn an_image_dags_and_lambda_repository_with_a_chain() {
    let dir = scratch_dir("init-all");
    write(&dir, "api/Dockerfile", "FROM scratch\n");
    write(&dir, "dags/.airflowignore", "^scratch/\n");
    write(&dir, "dags/etl.py", "from airflow import DAG\n");
    write(
        &dir,
        "lambdas/resize/handler.py",
        "def handler(event, context):\n    return 1\n",
    );
    let args = [
        "init",
        "--project",
        "shop",
        "--account",
        "111111111111",
        "--action",
        ACTION,
        "--chain",
        "acme/next",
    ];
    let text = ok(&run(&dir, &args));
    assert!(
        text.contains("artifact api: image built from api/Dockerfile"),
        "{text}"
    );
    assert!(text.contains("artifact dags: DAG folder dags"), "{text}");
    assert!(
        text.contains("artifact resize: Lambda function in lambdas/resize (handler.handler)"),
        "{text}"
    );
    let toml = std::fs::read_to_string(dir.join("deploy.toml")).expect("toml");
    assert!(
        toml.contains("source = \"docker-archive:./build/api.tar\""),
        "{toml}"
    );
    let chain = std::fs::read_to_string(dir.join(".github/workflows/chain.yml")).expect("chain");
    assert!(chain.contains("NEXT: acme/next"), "{chain}");

    docker_archive(&dir, "api");
    ok(&run(&dir, &["validate"]));
    lint(&dir);

    let before = snapshot(&dir);
    let text = ok(&run(&dir, &args));
    assert_eq!(text.matches("unchanged ").count(), 4, "{text}");
    assert_eq!(snapshot(&dir), before, "a second init changes nothing");

    write(&dir, ".github/workflows/deploy.yml", "# mine\n");
    let refused = run(&dir, &args);
    assert_eq!(refused.status.code(), Some(2));
    let text = String::from_utf8_lossy(&refused.stderr);
    assert!(
        text.contains(".github/workflows/deploy.yml already exist") && text.contains("--force"),
        "{text}"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join(".github/workflows/deploy.yml")).expect("read"),
        "# mine\n"
    );
    let forced: Vec<&str> = args.iter().copied().chain(["--force"]).collect();
    let text = ok(&run(&dir, &forced));
    assert!(
        text.contains("replaced .github/workflows/deploy.yml"),
        "{text}"
    );
    assert_eq!(snapshot(&dir), before);
}

#[test]
fn an_image_only_repository_names_the_image_after_the_project() {
    let dir = scratch_dir("init-image");
    write(&dir, "Dockerfile", "FROM scratch\n");
    let text = ok(&run(
        &dir,
        &["init", "--project", "billing", "--action", ACTION],
    ));
    assert!(
        text.contains("artifact billing: image built from ./Dockerfile"),
        "{text}"
    );
    assert!(!dir.join(".github/workflows/chain.yml").exists());
    docker_archive(&dir, "billing");
    ok(&run(&dir, &["validate"]));
    lint(&dir);
}

#[test]
fn a_dags_only_repository_validates_at_once_and_a_dry_run_writes_nothing() {
    let dir = scratch_dir("init-dags");
    write(&dir, "dags/daily.py", "from airflow import DAG\n");
    let text = ok(&run(&dir, &["init", "--project", "lake", "--dry-run"]));
    assert!(
        text.contains("# deploy.toml") && text.contains("dry run: nothing was written"),
        "{text}"
    );
    assert!(!dir.join("deploy.toml").exists());
    let text = ok(&run(&dir, &["init", "--project", "lake"]));
    assert!(
        text.contains("replace OWNER/deploy@"),
        "the placeholder action is named: {text}"
    );
    ok(&run(&dir, &["validate"]));
    lint(&dir);
}

#[test]
fn bad_flags_are_refused_before_anything_is_written() {
    let dir = scratch_dir("init-bad");
    for args in [
        vec!["init", "--action", "acme/deploy@v1"],
        vec!["init", "--chain", "not a repo"],
        vec!["init", "--account", "12345"],
        vec!["init", "--project", "Bad Name"],
    ] {
        let out = run(&dir, &args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(!dir.join("deploy.toml").exists(), "{args:?}");
    }
}

#[test]
fn the_manual_pages_render() {
    let dir = scratch_dir("man");
    let out = run(&dir, &["man", "--out", "pages"]);
    ok(&out);
    for page in ["deploy", "deploy-release", "deploy-rollback", "deploy-init"] {
        let path = dir.join(format!("pages/{page}.1"));
        let roff = std::fs::read_to_string(&path).expect("page");
        assert!(
            roff.starts_with(".ie") || roff.contains(".TH"),
            "{page}: {roff}"
        );
        let rendered = Command::new("groff")
            .args(["-man", "-Tutf8"])
            .arg(&path)
            .output()
            .expect("groff (scripts/emulators.sh install)");
        let text = ok(&rendered);
        assert!(text.contains(page), "{page}: {text}");
    }
    let release = std::fs::read_to_string(dir.join("pages/deploy-release.1")).expect("page");
    assert!(
        release.contains("approve"),
        "the options are documented: {release}"
    );
}

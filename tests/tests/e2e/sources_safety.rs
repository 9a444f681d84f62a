//! Local sources are read safely, through the `deploy` binary against moto: a symbolic link out
//! of a Lambda folder, a FIFO in a Lambda or DAG folder, and a Lambda source that is missing, a
//! plain file, a FIFO or a link loop are refused before the lock (exit 2, promptly, nothing
//! uploaded, nothing written to the state bucket); a latin-1 DAG file with its coding cookie
//! ships byte for byte.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use deploy_core::kinds::lambda::package::{Packaging, package};
use deploy_tests::dags::{Project, ok};
use deploy_tests::{REGION, create_bucket, deploy, list_keys, moto, scratch_dir, unique};

/// How long a refused command may take: reading a FIFO would block it forever.
const BOUND: Duration = Duration::from_secs(60);

/// Runs `cmd` and kills it if it has not ended within [`BOUND`].
fn bounded(cmd: &mut Command) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start deploy");
    let started = Instant::now();
    while child.try_wait().expect("wait").is_none() {
        if started.elapsed() > BOUND {
            let _ = child.kill();
            let _ = child.wait();
            panic!("deploy {cmd:?} still running after {BOUND:?} (blocked on a FIFO?)");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().expect("collect output")
}

fn refused(out: &Output, expect: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(expect), "missing `{expect}` in:\n{stderr}");
}

fn mkfifo(path: &Path) {
    let status = Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("run mkfifo");
    assert!(status.success(), "mkfifo {}", path.display());
}

async fn lambda() -> aws_sdk_lambda::Client {
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(REGION))
        .endpoint_url(&moto().url)
        .credentials_provider(aws_credential_types::Credentials::for_tests())
        .load()
        .await;
    aws_sdk_lambda::Client::new(&config)
}

/// A Lambda project `t`: a function in moto (seed code), a state bucket and an artifact
/// bucket, and `deploy.toml` whose artifact's `source` is `source`.
struct LambdaProject {
    dir: PathBuf,
    function: String,
    state: String,
    artifacts: String,
    seed_sha256: String,
}

impl LambdaProject {
    async fn new(source: Option<&str>) -> LambdaProject {
        let url = moto().url.clone();
        let dir = scratch_dir("sources");
        let (state, artifacts) = (unique("src-state"), unique("src-zips"));
        create_bucket(&url, &state).await;
        create_bucket(&url, &artifacts).await;
        let function = unique("src-fn");
        let seed_sha256 = create_function(&function, &dir.join("seed")).await;
        let source = source
            .map(|s| format!("source = \"{s}\"\n"))
            .unwrap_or_default();
        let text = format!(
            "project = \"t\"\n[environments.dev]\nregion = \"{REGION}\"\n\
             account = \"123456789012\"\nstate_bucket = \"{state}\"\n\
             [artifacts.fn]\nkind = \"lambda\"\n{source}function = \"{function}\"\n\
             artifact_bucket = \"{artifacts}\"\n"
        );
        std::fs::write(dir.join("deploy.toml"), text).expect("write config");
        LambdaProject {
            dir,
            function,
            state,
            artifacts,
            seed_sha256,
        }
    }

    fn write(&self, path: &str, text: &str) {
        let file = self.dir.join(path);
        std::fs::create_dir_all(file.parent().expect("a parent")).expect("mkdir");
        std::fs::write(file, text).expect("write");
    }

    fn run(&self, args: &[&str]) -> Output {
        bounded(
            deploy(&moto().url)
                .arg("--config")
                .arg(self.dir.join("deploy.toml"))
                .args(args),
        )
    }

    /// Nothing changed in AWS: no object in either bucket (no lock, no record, no zip), the
    /// function still runs its seed code and has no published version.
    async fn unchanged(&self) {
        let url = &moto().url;
        assert_eq!(list_keys(url, &self.state, "").await, Vec::<String>::new());
        assert_eq!(
            list_keys(url, &self.artifacts, "").await,
            Vec::<String>::new()
        );
        let client = lambda().await;
        let config = client
            .get_function_configuration()
            .function_name(&self.function)
            .send()
            .await
            .expect("get function configuration");
        assert_eq!(config.code_sha256(), Some(self.seed_sha256.as_str()));
        let versions = client
            .list_versions_by_function()
            .function_name(&self.function)
            .send()
            .await
            .expect("list versions");
        let published: Vec<_> = versions
            .versions()
            .iter()
            .filter_map(|v| v.version())
            .filter(|v| *v != "$LATEST")
            .collect();
        assert!(published.is_empty(), "{published:?}");
    }
}

/// Creates `function` with seed code; returns its `CodeSha256`.
async fn create_function(function: &str, seed: &Path) -> String {
    std::fs::create_dir_all(seed).expect("seed dir");
    std::fs::write(seed.join("main.py"), "def handler(e, c):\n    return 0\n").expect("seed");
    let zip = package(&Packaging {
        source: seed,
        exclude: &[],
        handler: None,
    })
    .expect("seed zip");
    let iam = aws_sdk_iam::Client::new(
        &aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(REGION))
            .endpoint_url(&moto().url)
            .credentials_provider(aws_credential_types::Credentials::for_tests())
            .load()
            .await,
    );
    let policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
    let role = iam
        .create_role()
        .role_name(unique("src-role"))
        .assume_role_policy_document(policy)
        .send()
        .await
        .expect("create role")
        .role()
        .map(|r| r.arn().to_owned())
        .expect("role arn");
    lambda()
        .await
        .create_function()
        .function_name(function)
        .runtime(aws_sdk_lambda::types::Runtime::Python312)
        .role(role)
        .handler("main.handler")
        .code(
            aws_sdk_lambda::types::FunctionCode::builder()
                .zip_file(zip.bytes.into())
                .build(),
        )
        .send()
        .await
        .expect("create function");
    zip.code_sha256
}

#[tokio::test(flavor = "multi_thread")]
async fn a_link_out_of_the_lambda_folder_is_refused_before_any_aws_change() {
    let p = LambdaProject::new(Some("./fn")).await;
    p.write("fn/main.py", "def handler(e, c):\n    return 1\n");
    p.write("secret.env", "AWS_SECRET_ACCESS_KEY=do-not-ship\n");
    std::os::unix::fs::symlink(p.dir.join("secret.env"), p.dir.join("fn/environ.txt"))
        .expect("link");
    refused(&p.run(&["validate"]), "outside the Lambda source");
    refused(
        &p.run(&["release", "dev", "--version", "v1"]),
        "environ.txt is a symbolic link",
    );
    p.unchanged().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fifo_in_the_lambda_folder_is_refused_promptly() {
    let p = LambdaProject::new(Some("./fn")).await;
    p.write("fn/main.py", "def handler(e, c):\n    return 1\n");
    mkfifo(&p.dir.join("fn/pipe.py"));
    refused(&p.run(&["validate"]), "pipe.py is a FIFO");
    refused(
        &p.run(&["release", "dev", "--version", "v1"]),
        "pipe.py is a FIFO",
    );
    p.unchanged().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_lambda_source_is_a_usage_error_before_the_lock() {
    let missing = LambdaProject::new(Some("./nowhere")).await;
    refused(
        &missing.run(&["release", "dev", "--version", "v1"]),
        "nowhere does not exist",
    );
    missing.unchanged().await;
    let plain = LambdaProject::new(Some("./main.py")).await;
    plain.write("main.py", "def handler(e, c):\n    return 1\n");
    refused(
        &plain.run(&["release", "dev", "--version", "v1"]),
        "is a file but not a .zip",
    );
    plain.unchanged().await;
    let fifo = LambdaProject::new(Some("./fn.zip")).await;
    mkfifo(&fifo.dir.join("fn.zip"));
    refused(&fifo.run(&["validate"]), "fn.zip is a FIFO");
    refused(
        &fifo.run(&["release", "dev", "--version", "v1"]),
        "fn.zip is a FIFO",
    );
    fifo.unchanged().await;
    let looped = LambdaProject::new(Some("./fn")).await;
    std::os::unix::fs::symlink("fn", looped.dir.join("fn")).expect("link");
    refused(
        &looped.run(&["release", "dev", "--version", "v1"]),
        "cannot be followed",
    );
    looped.unchanged().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lambda_artifact_without_source_says_so() {
    let p = LambdaProject::new(None).await;
    refused(&p.run(&["validate"]), "has no `source`");
    refused(
        &p.run(&["release", "dev", "--version", "v1"]),
        "has no `source`",
    );
    p.unchanged().await;
}

fn release_dags(p: &Project) -> Output {
    bounded(deploy(&moto().url).arg("--config").arg(&p.config).args([
        "release",
        "dev",
        "dags",
        "--version",
        "v1",
    ]))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fifo_in_the_dag_folder_is_refused_promptly() {
    let p = Project::new("").await;
    p.write("a.py", "x = 1\n");
    mkfifo(&p.folder().join("pipe.py"));
    refused(
        &bounded(
            deploy(&moto().url)
                .arg("--config")
                .arg(&p.config)
                .arg("validate"),
        ),
        "pipe.py is a FIFO",
    );
    refused(&release_dags(&p), "pipe.py is a FIFO");
    assert_eq!(p.dag_puts(), 0);
    assert!(p.objects().await.is_empty());
    assert_eq!(
        list_keys(&moto().url, &p.state, "").await,
        Vec::<String>::new()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_latin1_dag_file_with_its_coding_cookie_ships_as_is() {
    let p = Project::new("").await;
    let text = b"# -*- coding: latin-1 -*-\nfrom airflow import DAG\nDAG('caf\xe9')\n".to_vec();
    std::fs::write(p.folder().join("latin.py"), &text).expect("write");
    ok(&release_dags(&p));
    let objects = p.objects().await;
    assert_eq!(
        objects.get("dags/latin.py"),
        Some(&text),
        "{:?}",
        objects.keys()
    );
}

//! The emulator harness for end-to-end tests: a moto server (AWS control plane) started once per
//! test process on a free loopback port, or reused from `DEPLOY_TEST_MOTO_URL`; unique
//! per-test buckets and config files; the built `deploy` binary.
//!
//! Processes this harness starts are watched by a small shell loop that kills them as soon as
//! the test process is gone, so an aborted run leaves nothing behind.

pub mod cloudwatch_bridge;
pub mod codedeploy_double;
pub mod corpus;
pub mod dags;
mod health;
pub use health::answering;
pub mod ecs_double;
pub mod fault_proxy;
pub mod iam_moto;
pub mod layouts;
mod registry_proxy;
pub mod rollout_faults;
pub mod s3_proxy;
pub mod slack_double;
pub mod walk;

pub use registry_proxy::{BearerAuth, ProxyOptions, RegistryProxy};

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The account moto answers with.
pub const ACCOUNT: &str = "123456789012";
/// The region tests use.
pub const REGION: &str = "eu-west-1";

/// A running moto server.
#[derive(Debug)]
pub struct Moto {
    /// Base URL, e.g. `http://127.0.0.1:40123`.
    pub url: String,
    _child: Option<Child>,
}

static MOTO: OnceLock<Moto> = OnceLock::new();

/// The shared moto server of this test process.
pub fn moto() -> &'static Moto {
    MOTO.get_or_init(|| {
        if let Ok(url) = std::env::var("DEPLOY_TEST_MOTO_URL") {
            wait_http(&url, "/moto-api/", Duration::from_secs(30));
            return Moto { url, _child: None };
        }
        let port = free_port();
        let log = scratch_dir("moto").join("moto.log");
        let child = watched(
            &moto_binary(),
            &["-H", "127.0.0.1", "-p", &port.to_string()],
            &log,
        );
        let url = format!("http://127.0.0.1:{port}");
        wait_http(&url, "/moto-api/", Duration::from_secs(60));
        Moto {
            url,
            _child: Some(child),
        }
    })
}

pub(crate) fn moto_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("DEPLOY_MOTO_SERVER") {
        return PathBuf::from(path);
    }
    tool("moto_server")
}

/// A command-line tool the emulators' set-up installs into its Python environment
/// (`moto_server`, `actionlint`, `zizmor`, ...), or `name` on the PATH when it is not there.
pub fn tool(name: &str) -> PathBuf {
    let tools = std::env::var_os("DEPLOY_TOOLS_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/deploy-tools")));
    if let Some(candidate) = tools.map(|t| t.join("venv/bin").join(name))
        && candidate.is_file()
    {
        return candidate;
    }
    PathBuf::from(name)
}

/// Starts `program` with `args` under a watchdog that kills it when this process exits.
pub fn watched(program: &Path, args: &[&str], log: &Path) -> Child {
    let script = r#"prog="$1"; log="$2"; parent="$3"; shift 3
"$prog" "$@" >"$log" 2>&1 &
child=$!
trap 'kill $child 2>/dev/null; wait $child 2>/dev/null' EXIT TERM INT
while kill -0 "$parent" 2>/dev/null && kill -0 "$child" 2>/dev/null; do sleep 0.3; done"#;
    Command::new("bash")
        .arg("-c")
        .arg(script)
        .arg("watchdog")
        .arg(program)
        .arg(log)
        .arg(std::process::id().to_string())
        .args(args)
        .stdin(Stdio::null())
        .spawn()
        .unwrap_or_else(|err| panic!("cannot start {}: {err}", program.display()))
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// Blocks until `GET path` answers, or panics after `limit`.
pub fn wait_http(base: &str, path: &str, limit: Duration) {
    let start = Instant::now();
    while start.elapsed() < limit {
        if http_get(base, path).is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{base}{path} did not answer within {limit:?}");
}

/// A minimal HTTP/1.0 GET; returns the status code.
pub fn http_get(base: &str, path: &str) -> Option<u16> {
    let host = base.trim_start_matches("http://").trim_end_matches('/');
    let mut stream = TcpStream::connect(host).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").ok()?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

/// POSTs a JSON body to `base` + `path` (moto's own API, for instance); returns the status.
pub fn http_post_json(base: &str, path: &str, body: &serde_json::Value) -> Option<u16> {
    let host = base.trim_start_matches("http://").trim_end_matches('/');
    let mut stream = TcpStream::connect(host).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    let body = body.to_string();
    write!(
        stream,
        "POST {path} HTTP/1.0\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A name unique to this process and call, usable as an S3 bucket name.
pub fn unique(prefix: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{prefix}-{}-{n}-{nanos:x}", std::process::id())
}

/// A fresh directory under the system temp dir.
pub fn scratch_dir(prefix: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(unique(&format!("deploy-test-{prefix}")));
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

/// Path of the `deploy` binary, built once per test process so it is never stale.
pub fn deploy_bin() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            // Test binaries live in <target>/<profile>/deps, other binaries in <target>/<profile>.
            let exe = std::env::current_exe().expect("executable path");
            let mut dir = exe.parent().expect("executable dir");
            if dir.ends_with("deps") {
                dir = dir.parent().expect("profile dir");
            }
            let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
            let mut build = Command::new(cargo);
            build.args(["build", "--quiet", "-p", "deploy-cli", "--bin", "deploy"]);
            if dir.ends_with("release") {
                build.arg("--release");
            }
            let status = build
                .current_dir(workspace_root())
                .status()
                .expect("run cargo build");
            assert!(status.success(), "building the deploy binary failed");
            dir.join(format!("deploy{}", std::env::consts::EXE_SUFFIX))
        })
        .clone()
}

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// A `deploy` command with dummy credentials pointed at moto, and nothing from the caller's
/// AWS environment (profiles, real credentials) leaking in.
pub fn deploy(moto_url: &str) -> Command {
    let mut cmd = Command::new(deploy_bin());
    isolate_aws_env(&mut cmd);
    cmd.env("AWS_ENDPOINT_URL", moto_url)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing");
    cmd
}

/// A project `t` with environment `dev` (a fresh state bucket) releasing Lambda function
/// `function` from a one-file Python folder; `rollout` is appended to the artifact's table.
/// Its `deploy.toml` and the state bucket.
pub async fn lambda_project(prefix: &str, function: &str, rollout: &str) -> (PathBuf, String) {
    let state = unique(&format!("{prefix}-state"));
    create_bucket(&moto().url, &state).await;
    let dir = scratch_dir(prefix);
    std::fs::create_dir_all(dir.join("src")).expect("mkdir");
    std::fs::write(
        dir.join("src/main.py"),
        "def handler(e, c):\n    return 2\n",
    )
    .expect("write the handler");
    let config = dir.join("deploy.toml");
    std::fs::write(
        &config,
        format!(
            "project = \"t\"\n[environments.dev]\nregion = \"{REGION}\"\naccount = \"{ACCOUNT}\"\n\
             state_bucket = \"{state}\"\n[artifacts.fn]\nkind = \"lambda\"\nsource = \"./src\"\n\
             function = \"{function}\"\n{rollout}"
        ),
    )
    .expect("write config");
    (config, state)
}

/// `deploy release dev --version v1` of `config` against the shared moto: the exit code and
/// stderr.
pub fn release_dev_v1(config: &Path) -> (Option<i32>, String) {
    let out = deploy(&moto().url)
        .arg("--config")
        .arg(config)
        .args(["release", "dev", "--version", "v1"])
        .output()
        .expect("run deploy release");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.code(), stderr)
}

/// Removes every AWS and CI variable that could change behaviour, and points the shared AWS
/// files at nothing.
pub fn isolate_aws_env(cmd: &mut Command) {
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy().into_owned();
        if key.starts_with("AWS_")
            || key.starts_with("GITHUB_")
            || key.starts_with("DEPLOY_ENDPOINT_URL_")
            || key == "DEPLOY_CONFIG"
        {
            cmd.env_remove(&key);
        }
    }
    cmd.env("AWS_CONFIG_FILE", "/nonexistent/deploy-test-config")
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            "/nonexistent/deploy-test-credentials",
        )
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_REGION", REGION);
}

/// An S3 client for reading results back, independent of deploy's own code.
pub async fn s3(moto_url: &str) -> aws_sdk_s3::Client {
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(REGION))
        .endpoint_url(moto_url)
        .credentials_provider(aws_credential_types::Credentials::for_tests())
        .load()
        .await;
    let s3 = aws_sdk_s3::config::Builder::from(&config)
        .force_path_style(true)
        .build();
    aws_sdk_s3::Client::from_conf(s3)
}

/// The SDK configuration of a client of moto (any service), independent of deploy's own code.
pub async fn moto_config(moto_url: &str) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(REGION))
        .endpoint_url(moto_url)
        .credentials_provider(aws_credential_types::Credentials::for_tests())
        .load()
        .await
}

/// An ECR client of moto, independent of deploy's own code.
pub async fn ecr(moto_url: &str) -> aws_sdk_ecr::Client {
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(REGION))
        .endpoint_url(moto_url)
        .credentials_provider(aws_credential_types::Credentials::for_tests())
        .load()
        .await;
    aws_sdk_ecr::Client::new(&config)
}

/// Creates an ECR repository in moto.
pub async fn create_repository(moto_url: &str, name: &str) {
    ecr(moto_url)
        .await
        .create_repository()
        .repository_name(name)
        .send()
        .await
        .unwrap_or_else(|err| panic!("create repository {name}: {err:?}"));
}

/// Creates a bucket in moto.
pub async fn create_bucket(moto_url: &str, bucket: &str) {
    let s3 = s3(moto_url).await;
    s3.create_bucket()
        .bucket(bucket)
        .create_bucket_configuration(
            aws_sdk_s3::types::CreateBucketConfiguration::builder()
                .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::from(REGION))
                .build(),
        )
        .send()
        .await
        .unwrap_or_else(|err| panic!("create bucket {bucket}: {err:?}"));
}

/// Every key under `prefix` in `bucket`.
pub async fn list_keys(moto_url: &str, bucket: &str, prefix: &str) -> Vec<String> {
    let s3 = s3(moto_url).await;
    let mut keys = Vec::new();
    let mut pages = s3
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.expect("list objects");
        keys.extend(
            page.contents()
                .iter()
                .filter_map(|o| o.key().map(str::to_owned)),
        );
    }
    keys
}

/// Reads one object as JSON.
pub async fn get_json(moto_url: &str, bucket: &str, key: &str) -> serde_json::Value {
    let s3 = s3(moto_url).await;
    let out = s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .expect("get object");
    let bytes = out.body.collect().await.expect("read body").into_bytes();
    serde_json::from_slice(&bytes).expect("object is JSON")
}

/// A one-environment project `t` with artifact `app`, state in `bucket`, lock lease `lock_ttl`.
pub fn write_config(dir: &Path, bucket: &str, lock_ttl: &str) -> PathBuf {
    let path = dir.join("deploy.toml");
    let text = format!(
        r#"project = "t"

[settings]
lock_ttl = "{lock_ttl}"
timeout = "2m"

[environments.e2e]
region = "{REGION}"
account = "{ACCOUNT}"
state_bucket = "{bucket}"

[artifacts.app]
kind = "image"
repository = "t/app"
source = "docker://registry.example/t/app:1"
  [artifacts.app.rollout]
  strategy = "ecs-rolling"
  cluster = "t-{{env}}"
  service = "app"
  container = "app"
"#
    );
    std::fs::write(&path, text).expect("write config");
    path
}

/// A loopback HTTP endpoint that answers 500 to everything and counts the requests it got.
#[derive(Debug)]
pub struct RecordingEndpoint {
    /// Its base URL.
    pub url: String,
    hits: std::sync::Arc<AtomicU32>,
}

impl RecordingEndpoint {
    /// Starts the endpoint on a free port (it lives until the test process ends).
    pub fn start() -> RecordingEndpoint {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let hits = std::sync::Arc::new(AtomicU32::new(0));
        let counter = hits.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                counter.fetch_add(1, Ordering::SeqCst);
                let mut stream = stream;
                let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf);
                let _ = stream
                    .write_all(b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\n\r\n");
            }
        });
        RecordingEndpoint { url, hits }
    }

    /// Requests received so far.
    pub fn hits(&self) -> u32 {
        self.hits.load(Ordering::SeqCst)
    }
}

/// A running OCI registry (Debian's `docker-registry`, distribution 2.8).
#[derive(Debug)]
pub struct OciRegistry {
    /// `127.0.0.1:<port>`.
    pub host: String,
    _child: Option<Child>,
}

static REGISTRY: OnceLock<OciRegistry> = OnceLock::new();

/// The shared registry of this test process: from `DEPLOY_TEST_REGISTRY`, or started on a free
/// loopback port with storage in a scratch directory.
pub fn oci_registry() -> &'static OciRegistry {
    REGISTRY.get_or_init(|| {
        if let Ok(host) = std::env::var("DEPLOY_TEST_REGISTRY") {
            wait_http(&format!("http://{host}"), "/v2/", Duration::from_secs(30));
            return OciRegistry { host, _child: None };
        }
        start_oci_registry()
    })
}

/// A registry of its own (another account's or region's, say), on a free loopback port with
/// storage in a scratch directory; it stops when this test process ends.
pub fn start_oci_registry() -> OciRegistry {
    let port = free_port();
    let dir = scratch_dir("registry");
    let config = dir.join("config.yml");
    let yaml = format!(
        "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n  secret: deploy-tests\n",
        dir.join("storage").display()
    );
    std::fs::write(&config, yaml).expect("write registry config");
    let binary = std::env::var_os("DEPLOY_REGISTRY_BIN")
        .map_or_else(|| PathBuf::from("docker-registry"), PathBuf::from);
    let child = watched(
        &binary,
        &["serve", config.to_str().unwrap_or_default()],
        &dir.join("registry.log"),
    );
    let host = format!("127.0.0.1:{port}");
    wait_http(&format!("http://{host}"), "/v2/", Duration::from_secs(30));
    OciRegistry {
        host,
        _child: Some(child),
    }
}

/// `skopeo inspect` (or `--raw`) of an image in a plain-HTTP registry, as JSON.
pub fn skopeo_inspect(image: &str, raw: bool) -> Result<serde_json::Value, String> {
    let mut cmd = Command::new("skopeo");
    cmd.args(["inspect", "--tls-verify=false"]);
    if raw {
        cmd.arg("--raw");
    }
    let out = cmd
        .arg(format!("docker://{image}"))
        .output()
        .map_err(|e| format!("cannot run skopeo: {e}"))?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())
}

/// Runs `git ARGS` in `dir` as a fixed author and committer (dated `date`, a git date such
/// as `1700000000 +0000`, when given); panics with git's stderr when it fails.
pub fn git(dir: &Path, args: &[&str], date: Option<&str>) {
    let mut cmd = Command::new("git");
    cmd.arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com");
    if let Some(date) = date {
        cmd.env("GIT_AUTHOR_DATE", date)
            .env("GIT_COMMITTER_DATE", date);
    }
    let out = cmd.output().expect("git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Copies a directory tree.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir").flatten() {
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

/// A fresh state bucket, a fresh ECR repository under `prefix/` and a scratch folder holding a
/// copy of the example image layout at `layout/`: what a test of an image release starts from.
#[derive(Debug)]
pub struct ImageProject {
    /// The state bucket.
    pub bucket: String,
    /// The ECR repository (also the path in the local registry).
    pub repo: String,
    /// The folder; write `deploy.toml` here.
    pub dir: PathBuf,
}

/// Sets up an [`ImageProject`] in moto.
pub async fn image_project(prefix: &str) -> ImageProject {
    let url = moto().url.clone();
    let bucket = unique(&format!("{prefix}-state"));
    create_bucket(&url, &bucket).await;
    let repo = format!("{prefix}/{}", unique("app"));
    create_repository(&url, &repo).await;
    let dir = scratch_dir(prefix);
    copy_dir(
        &workspace_root().join("examples/planwise/build/api"),
        &dir.join("layout"),
    );
    ImageProject { bucket, repo, dir }
}

/// The `[settings]`, `[environments.dev]` head of a test `deploy.toml`: state in `bucket`,
/// `endpoints` as given (a TOML inline table's inside), polling every 100 ms.
pub fn dev_head(bucket: &str, endpoints: &str) -> String {
    format!(
        "project = \"t\"\n[settings]\npoll_interval = \"100ms\"\n[environments.dev]\nregion = \"{REGION}\"\n\
         account = \"{ACCOUNT}\"\nstate_bucket = \"{bucket}\"\nendpoints = {{ {endpoints} }}\n"
    )
}

/// Creates the Lambda function `name` in moto (a Python handler, a fresh role) for tests whose
/// configuration names a function that must exist, such as a lifecycle hook; returns its ARN.
pub async fn lambda_function(moto_url: &str, name: &str) -> String {
    let config = moto_config(moto_url).await;
    let policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
    let role = aws_sdk_iam::Client::new(&config)
        .create_role()
        .role_name(unique("hook-role"))
        .assume_role_policy_document(policy)
        .send()
        .await
        .expect("create role");
    let role = role.role().map(|r| r.arn().to_owned()).expect("role arn");
    let dir = scratch_dir("hook-fn");
    std::fs::write(
        dir.join("main.py"),
        "def handler(event, context):\n    return 0\n",
    )
    .expect("write main.py");
    let zip = deploy_core::kinds::lambda::package::package(
        &deploy_core::kinds::lambda::package::Packaging {
            source: &dir,
            exclude: &[],
            handler: None,
        },
    )
    .expect("package");
    let created = aws_sdk_lambda::Client::new(&config)
        .create_function()
        .function_name(name)
        .runtime(aws_sdk_lambda::types::Runtime::Python312)
        .role(role)
        .handler("main.handler")
        .code(
            aws_sdk_lambda::types::FunctionCode::builder()
                .zip_file(zip.bytes.into())
                .build(),
        )
        .send()
        .await;
    match created {
        Ok(out) => out.function_arn().expect("function arn").to_owned(),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_conflict_exception()) =>
        {
            format!("arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}")
        }
        Err(e) => panic!("create function {name}: {e:?}"),
    }
}

/// Creates the CloudWatch metric alarm `name` through the CloudWatch bridge at `bridge_url`
/// (the SDK speaks CBOR, moto JSON): an alarm a configuration can name.
pub async fn metric_alarm(bridge_url: &str, name: &str) {
    use aws_sdk_cloudwatch::types::{ComparisonOperator, Statistic};
    aws_sdk_cloudwatch::Client::new(&moto_config(bridge_url).await)
        .put_metric_alarm()
        .alarm_name(name)
        .namespace("AWS/ECS")
        .metric_name("HTTPCode_Target_5XX_Count")
        .statistic(Statistic::Sum)
        .period(60)
        .evaluation_periods(1)
        .threshold(1.0)
        .comparison_operator(ComparisonOperator::GreaterThanThreshold)
        .send()
        .await
        .expect("put alarm");
}

//! `deploy release` of a Lambda function against moto, read back through the Lambda API: the
//! published version's `CodeSha256`, no upload and no version on an unchanged rerun (requests
//! counted by a proxy), `env` merged key by key, the alias weights of a canary between steps,
//! and an alarm during a canary putting the alias back (exit 3, `rolled-back`, with `$LATEST`
//! put back from the artifact bucket; exit 1, `failed`, naming `$LATEST` without one).

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::process::Output;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_cloudwatch::types::{ComparisonOperator, StateValue, Statistic};
use deploy_core::kinds::lambda::package::{Packaging, package};
use deploy_tests::cloudwatch_bridge::CloudWatchBridge;
use deploy_tests::s3_proxy::S3Proxy;
use deploy_tests::{
    ACCOUNT, REGION, create_bucket, deploy, get_json, list_keys, moto, scratch_dir, unique,
};

async fn sdk_config(url: &str) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(REGION))
        .endpoint_url(url)
        .credentials_provider(aws_credential_types::Credentials::for_tests())
        .load()
        .await
}

pub(crate) async fn lambda() -> aws_sdk_lambda::Client {
    aws_sdk_lambda::Client::new(&sdk_config(&moto().url).await)
}

/// A role Lambda functions can name (moto checks that it exists).
async fn role() -> String {
    let iam = aws_sdk_iam::Client::new(&sdk_config(&moto().url).await);
    let name = unique("lambda-role");
    let policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
    iam.create_role()
        .role_name(&name)
        .assume_role_policy_document(policy)
        .send()
        .await
        .expect("create role")
        .role()
        .map(|r| r.arn().to_owned())
        .expect("role arn")
}

pub(crate) fn write_source(dir: &std::path::Path, body: &str) {
    std::fs::create_dir_all(dir).expect("source dir");
    std::fs::write(
        dir.join("main.py"),
        format!("def handler(event, context):\n    return {body:?}\n"),
    )
    .expect("write main.py");
}

pub(crate) fn zip_of(dir: &std::path::Path) -> deploy_core::kinds::lambda::package::Package {
    package(&Packaging {
        source: dir,
        exclude: &[],
        handler: None,
    })
    .expect("package")
}

/// Creates `function` in moto with seed code and `KEEP=1`, `LOG_LEVEL=debug`.
pub(crate) async fn create_function(function: &str, dir: &std::path::Path) {
    write_source(&dir.join("seed"), "seed");
    let seed = zip_of(&dir.join("seed"));
    let env = aws_sdk_lambda::types::Environment::builder()
        .variables("KEEP", "1")
        .variables("LOG_LEVEL", "debug")
        .build();
    lambda()
        .await
        .create_function()
        .function_name(function)
        .runtime(aws_sdk_lambda::types::Runtime::Python312)
        .role(role().await)
        .handler("main.handler")
        .code(
            aws_sdk_lambda::types::FunctionCode::builder()
                .zip_file(seed.bytes.into())
                .build(),
        )
        .environment(env)
        .send()
        .await
        .expect("create function");
}

/// A function in moto, an environment `dev` whose Lambda calls go through a recording proxy,
/// and the CloudWatch bridge.
pub(crate) struct Fixture {
    pub dir: PathBuf,
    pub function: String,
    pub bucket: String,
    pub proxy: S3Proxy,
    pub bridge: CloudWatchBridge,
}

impl Fixture {
    pub(crate) async fn new() -> Fixture {
        let url = moto().url.clone();
        let bucket = unique("lambda-state");
        create_bucket(&url, &bucket).await;
        let dir = scratch_dir("lambda");
        let function = unique("fn");
        create_function(&function, &dir).await;
        Fixture {
            dir,
            function,
            bucket,
            proxy: S3Proxy::start(&url),
            bridge: CloudWatchBridge::start(&url),
        }
    }

    /// Writes the config with `rollout` (a TOML inline table) and the code returning `body`.
    pub(crate) fn configure(&self, body: &str, rollout: &str) {
        self.configure_with(body, rollout, "", "");
    }

    /// Like [`Fixture::configure`], with `extra` keys in the artifact and `endpoints` (TOML
    /// key-value pairs) besides Lambda's. (An `sts` endpoint becomes every client's default,
    /// CloudWatch's too, so the CLI tests leave it to `AWS_ENDPOINT_URL`.)
    pub(crate) fn configure_with(&self, body: &str, rollout: &str, extra: &str, endpoints: &str) {
        write_source(&self.dir.join("src"), body);
        let text = format!(
            "project = \"t\"\n[settings]\npoll_interval = \"100ms\"\n\
             [environments.dev]\nregion = \"{REGION}\"\naccount = \"{ACCOUNT}\"\nstate_bucket = \"{}\"\n\
             endpoints = {{ lambda = \"{}\"{endpoints} }}\n\
             [artifacts.fn]\nkind = \"lambda\"\nsource = \"./src\"\nfunction = \"{}\"\nalias = \"live\"\n\
             handler = \"main.handler\"\nrollout = {rollout}\n{extra}\n\
             [artifacts.fn.env]\nLOG_LEVEL = \"info\"\nNEW = \"x\"\n",
            self.bucket, self.proxy.url, self.function,
        );
        std::fs::write(self.dir.join("deploy.toml"), text).expect("write config");
    }

    pub(crate) fn release(&self, version: &str) -> Output {
        self.run(&["release", "dev", "--version", version])
    }

    pub(crate) fn run(&self, args: &[&str]) -> Output {
        deploy(&moto().url)
            .env("AWS_ENDPOINT_URL_CLOUDWATCH", &self.bridge.url)
            .arg("--config")
            .arg(self.dir.join("deploy.toml"))
            .args(args)
            .output()
            .expect("run deploy")
    }

    /// Requests of `method` whose path ends with `suffix` the proxy passed to Lambda.
    pub(crate) fn count(&self, method: &str, suffix: &str) -> usize {
        self.proxy
            .seen()
            .iter()
            .filter(|s| {
                s.method == method && s.path.split('?').next().unwrap_or("").ends_with(suffix)
            })
            .count()
    }

    pub(crate) async fn alias(&self) -> (String, HashMap<String, f64>) {
        let out = lambda()
            .await
            .get_alias()
            .function_name(&self.function)
            .name("live")
            .send()
            .await
            .expect("get alias");
        (
            out.function_version().unwrap_or_default().to_owned(),
            out.routing_config()
                .and_then(|r| r.additional_version_weights())
                .cloned()
                .unwrap_or_default(),
        )
    }

    pub(crate) async fn code_sha256(&self, version: &str) -> String {
        let out = lambda()
            .await
            .get_function_configuration()
            .function_name(&self.function)
            .qualifier(version)
            .send()
            .await
            .expect("get function configuration");
        out.code_sha256().unwrap_or_default().to_owned()
    }

    pub(crate) async fn versions(&self) -> Vec<String> {
        let out = lambda()
            .await
            .list_versions_by_function()
            .function_name(&self.function)
            .send()
            .await
            .expect("list versions");
        out.versions()
            .iter()
            .filter_map(|v| v.version().map(str::to_owned))
            .filter(|v| v != "$LATEST")
            .collect()
    }

    pub(crate) async fn outcomes(&self) -> Vec<String> {
        let prefix = "deploy/t/dev/artifacts/fn/releases/";
        let mut outcomes = Vec::new();
        for key in list_keys(&moto().url, &self.bucket, prefix).await {
            let record = get_json(&moto().url, &self.bucket, &key).await;
            outcomes.push(
                record["outcome"]["result"]
                    .as_str()
                    .unwrap_or("?")
                    .to_owned(),
            );
        }
        outcomes
    }
}

pub(crate) fn code(out: &Output) -> (Option<i32>, String) {
    let text = format!(
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

#[tokio::test(flavor = "multi_thread")]
async fn publish_then_an_unchanged_rerun_sends_and_publishes_nothing() {
    let fx = Fixture::new().await;
    fx.configure("v1", "{ strategy = \"lambda-all-at-once\" }");
    let (status, text) = code(&fx.release("v1"));
    assert_eq!(status, Some(0), "{text}");
    let expected = zip_of(&fx.dir.join("src")).code_sha256;
    let (version, routing) = fx.alias().await;
    assert!(routing.is_empty(), "{routing:?}");
    assert_eq!(fx.code_sha256(&version).await, expected);
    assert_eq!(fx.count("PUT", "/code"), 1, "one UpdateFunctionCode");
    assert_eq!(fx.count("POST", "/versions"), 1, "one PublishVersion");
    let env = lambda()
        .await
        .get_function_configuration()
        .function_name(&fx.function)
        .qualifier(&version)
        .send()
        .await
        .expect("configuration")
        .environment()
        .and_then(|e| e.variables())
        .cloned()
        .unwrap_or_default();
    let want: HashMap<String, String> = [("KEEP", "1"), ("LOG_LEVEL", "info"), ("NEW", "x")]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    assert_eq!(env, want, "env merged key by key, KEEP kept");
    let versions = fx.versions().await;

    // The same code and configuration again: unchanged, nothing sent, nothing recorded.
    let report = json_report(&fx.run(&["--output", "json", "release", "dev", "--version", "v2"]));
    assert_eq!(report["unchanged"], true, "{report}");
    assert_eq!(report["releases"], serde_json::json!([]));
    assert_eq!(fx.outcomes().await, ["succeeded"]);

    // The alias moved by hand: the next release is a real one, which reuses the version.
    lambda()
        .await
        .update_alias()
        .function_name(&fx.function)
        .name("live")
        .function_version("$LATEST")
        .send()
        .await
        .expect("move the alias by hand");
    let report = json_report(&fx.run(&["--output", "json", "release", "dev", "--version", "v3"]));
    let published = &report["lambdas"][0];
    assert_eq!(published["version"], version.as_str(), "{report}");
    assert_eq!(published["code_sha256"], expected.as_str());
    assert_eq!(published["uploaded"], false);
    assert_eq!(published["new_version"], false);
    assert_eq!(
        fx.count("PUT", "/code"),
        1,
        "no UpdateFunctionCode on the reruns"
    );
    assert_eq!(
        fx.count("PUT", "/configuration"),
        1,
        "no UpdateFunctionConfiguration"
    );
    assert_eq!(
        fx.count("POST", "/versions"),
        1,
        "no PublishVersion on the reruns"
    );
    assert_eq!(fx.versions().await, versions);
    assert_eq!(fx.alias().await.0, version);
    assert_eq!(fx.outcomes().await, ["succeeded", "succeeded"]);
}

/// The JSON report of a run that succeeded.
fn json_report(out: &Output) -> serde_json::Value {
    let (status, text) = code(out);
    assert_eq!(status, Some(0), "{text}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v.get("releases").is_some())
        .expect("a JSON report")
}

/// Polls the alias until `stop`, keeping every distinct (version, weight on `new`) seen;
/// calls `on_canary` once when routing first appears.
fn watch(
    function: String,
    stop: Arc<Mutex<bool>>,
    on_canary: impl FnOnce() -> tokio::task::JoinHandle<()> + Send + 'static,
) -> tokio::task::JoinHandle<BTreeSet<(String, String)>> {
    tokio::spawn(async move {
        let client = lambda().await;
        let mut seen = BTreeSet::new();
        let mut on_canary = Some(on_canary);
        while !*stop.lock().expect("flag") {
            if let Ok(out) = client
                .get_alias()
                .function_name(&function)
                .name("live")
                .send()
                .await
            {
                let weights = out
                    .routing_config()
                    .and_then(|r| r.additional_version_weights())
                    .cloned()
                    .unwrap_or_default();
                let routing: Vec<String> =
                    weights.iter().map(|(v, w)| format!("{v}={w}")).collect();
                if !weights.is_empty()
                    && let Some(hook) = on_canary.take()
                {
                    let _ = hook().await;
                }
                seen.insert((
                    out.function_version().unwrap_or_default().to_owned(),
                    routing.join(","),
                ));
            }
            tokio::time::sleep(Duration::from_millis(40)).await;
        }
        seen
    })
}

async fn release_in_background(fx: &Arc<Fixture>, version: &'static str) -> Output {
    let fx = fx.clone();
    tokio::task::spawn_blocking(move || fx.release(version))
        .await
        .expect("deploy ran")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_canary_moves_through_its_weights_to_the_new_version() {
    let fx = Arc::new(Fixture::new().await);
    fx.configure("v1", "{ strategy = \"lambda-all-at-once\" }");
    assert_eq!(code(&fx.release("v1")).0, Some(0));
    let (old, _) = fx.alias().await;
    fx.configure(
        "v2",
        "{ strategy = \"lambda-canary\", steps = [10, 50, 100], interval = \"1s\" }",
    );
    let stop = Arc::new(Mutex::new(false));
    let watcher = watch(fx.function.clone(), stop.clone(), || tokio::spawn(async {}));
    let (status, text) = code(&release_in_background(&fx, "v2").await);
    *stop.lock().expect("flag") = true;
    assert_eq!(status, Some(0), "{text}");
    let seen = watcher.await.expect("watcher");
    let (new, routing) = fx.alias().await;
    assert_ne!(new, old);
    assert!(routing.is_empty(), "no routing left: {routing:?}");
    assert_eq!(
        fx.code_sha256(&new).await,
        zip_of(&fx.dir.join("src")).code_sha256
    );
    assert!(
        seen.contains(&(old.clone(), format!("{new}=0.1"))),
        "{seen:?}"
    );
    assert!(
        seen.contains(&(old.clone(), format!("{new}=0.5"))),
        "{seen:?}"
    );
    assert!(seen.contains(&(new.clone(), String::new())), "{seen:?}");
    // Not a terminal: each step is one plain line with the time, saying what comes next.
    let step = text
        .lines()
        .find(|l| l.contains("fn:  10% of alias live"))
        .unwrap_or_else(|| panic!("no progress line for 10%:\n{text}"));
    assert!(step.ends_with("; 50% in 1s"), "{step}");
    let stamp = step.trim_start().split(' ').next().unwrap_or_default();
    assert!(
        stamp.len() == 8 && stamp.chars().filter(|c| *c == ':').count() == 2,
        "{step}"
    );
    assert!(text.contains("fn: 100% of alias live"), "{text}");
    assert!(
        !text.contains('\x1b'),
        "no escapes outside a terminal:\n{text}"
    );
}

/// Releases v1, then v2 (new code, and `NEW` changed) as a canary whose alarm trips at the
/// first step; `extra` goes into the artifact's table. Checks the alias went back at once and
/// returns the fixture, the previous version, and v2's exit code and output.
async fn an_alarm_during_a_canary(extra: &str) -> (Arc<Fixture>, String, Option<i32>, String) {
    let fx = Arc::new(Fixture::new().await);
    let alarm = unique("fn-errors");
    let cw = aws_sdk_cloudwatch::Client::new(&sdk_config(&fx.bridge.url).await);
    cw.put_metric_alarm()
        .alarm_name(&alarm)
        .namespace("AWS/Lambda")
        .metric_name("Errors")
        .statistic(Statistic::Sum)
        .period(60)
        .evaluation_periods(1)
        .threshold(1.0)
        .comparison_operator(ComparisonOperator::GreaterThanThreshold)
        .send()
        .await
        .expect("put alarm");
    fx.configure_with("v1", "{ strategy = \"lambda-all-at-once\" }", extra, "");
    assert_eq!(code(&fx.release("v1")).0, Some(0));
    let (old, _) = fx.alias().await;
    fx.configure_with(
        "v2",
        &format!("{{ strategy = \"lambda-canary\", steps = [10, 50, 100], interval = \"2s\", alarms = [\"{alarm}\"] }}"),
        extra,
        "",
    );
    let config = fx.dir.join("deploy.toml");
    let text = std::fs::read_to_string(&config).expect("config");
    std::fs::write(&config, text.replace("NEW = \"x\"", "NEW = \"y\"")).expect("write");
    let stop = Arc::new(Mutex::new(false));
    let trip = {
        let (cw, alarm) = (cw.clone(), alarm.clone());
        move || {
            tokio::spawn(async move {
                cw.set_alarm_state()
                    .alarm_name(alarm)
                    .state_value(StateValue::Alarm)
                    .state_reason("errors during the canary")
                    .send()
                    .await
                    .expect("set alarm state");
            })
        }
    };
    let watcher = watch(fx.function.clone(), stop.clone(), trip);
    let (status, text) = code(&release_in_background(&fx, "v2").await);
    *stop.lock().expect("flag") = true;
    let seen = watcher.await.expect("watcher");
    assert!(text.contains(&alarm), "{text}");
    let (version, routing) = fx.alias().await;
    assert_eq!(version, old, "alias back on the previous version");
    assert!(routing.is_empty(), "routing cleared: {routing:?}");
    assert!(
        seen.iter().any(|(v, r)| *v == old && r.ends_with("=0.1")),
        "{seen:?}"
    );
    assert!(
        !seen.iter().any(|(_, r)| r.ends_with("=0.5")),
        "stopped at the first step: {seen:?}"
    );
    (fx, old, status, text)
}

/// Without an artifact bucket the previous code of `$LATEST` cannot be put back: the alias
/// goes back, and the run is `failed` (exit 1) naming `$LATEST`, not a full rollback.
#[tokio::test(flavor = "multi_thread")]
async fn an_alarm_during_a_canary_puts_the_alias_back() {
    let (fx, _, status, text) = an_alarm_during_a_canary("").await;
    assert_eq!(status, Some(1), "{text}");
    assert!(text.contains("keeps the new code"), "{text}");
    assert!(text.contains("artifact_bucket"), "{text}");
    let outcomes = fx.outcomes().await;
    assert!(outcomes.contains(&"failed".to_owned()), "{outcomes:?}");
    assert!(
        !outcomes.contains(&"rolled-back".to_owned()),
        "{outcomes:?}"
    );
}

/// With an artifact bucket the previous zip is kept: the undo puts `$LATEST`'s code and the
/// changed variable back, and the run is rolled back (exit 3).
#[tokio::test(flavor = "multi_thread")]
async fn with_an_artifact_bucket_latest_is_put_back_too() {
    let artifacts = unique("lambda-kept");
    create_bucket(&moto().url, &artifacts).await;
    let extra = format!("artifact_bucket = \"{artifacts}\"");
    let (fx, old, status, text) = an_alarm_during_a_canary(&extra).await;
    assert_eq!(status, Some(3), "{text}");
    assert_eq!(
        fx.code_sha256("$LATEST").await,
        fx.code_sha256(&old).await,
        "$LATEST runs the previous code again"
    );
    let env = lambda()
        .await
        .get_function_configuration()
        .function_name(&fx.function)
        .send()
        .await
        .expect("configuration")
        .environment()
        .and_then(|e| e.variables())
        .cloned()
        .unwrap_or_default();
    assert_eq!(env.get("NEW").map(String::as_str), Some("x"), "{env:?}");
    let outcomes = fx.outcomes().await;
    assert!(outcomes.contains(&"rolled-back".to_owned()), "{outcomes:?}");
}

/// A zip over the direct upload limit goes through the artifact bucket, keyed by its sha256:
/// `UpdateFunctionCode` carries only the bucket and key. The limit is Lambda's 50 MB in
/// production; moto accepts larger direct uploads, so the library's setting is lowered here
/// and the route is told by the size of the request Lambda received.
#[tokio::test(flavor = "multi_thread")]
async fn a_zip_over_the_direct_limit_goes_through_the_artifact_bucket() {
    use deploy_core::engine::{Engine, EngineOptions};
    use deploy_core::plan::{Plan, PlanRequest};

    let fx = Fixture::new().await;
    let artifacts = unique("lambda-artifacts");
    create_bucket(&moto().url, &artifacts).await;
    fx.configure_with(
        "big",
        "{ strategy = \"lambda-all-at-once\" }",
        &format!("artifact_bucket = \"{artifacts}\""),
        &format!(", sts = \"{0}\", s3 = \"{0}\"", moto().url),
    );
    // 64 KiB that deflate cannot shrink much (a linear congruential sequence).
    let mut state: u32 = 12345;
    let noise: Vec<u8> = (0..64 * 1024)
        .map(|_| {
            state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            (state >> 16) as u8
        })
        .collect();
    std::fs::write(fx.dir.join("src/data.bin"), noise).expect("write data");
    let zip = zip_of(&fx.dir.join("src"));
    assert!(zip.bytes.len() > 32 * 1024);

    let config = deploy_core::config::Config::load(&fx.dir.join("deploy.toml")).expect("config");
    let env = config.environment("dev").expect("dev");
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(REGION))
        .credentials_provider(aws_credential_types::Credentials::for_tests())
        .load()
        .await;
    let clients = deploy_core::aws::AwsClients::from_sdk_config(&env.target, &sdk);
    let plan = Plan::build(&PlanRequest {
        environment: env,
        artifacts: env.select(&[]).expect("all"),
        operation: deploy_core::ledger::Operation::Release,
        version: Some("v1".into()),
        config_sha256: config.sha256(),
        lock_ttl: config.settings.lock_ttl,
        status: &[],
        promote: &[],
        gradual: false,
        commit_time: None,
    });
    let recorder = Arc::new(deploy_core::events::Recorder::default());
    let options = EngineOptions::new(config.settings.lock_ttl, config.base_dir().to_path_buf());
    let mut engine = Engine::new(clients, recorder, options);
    let mut builtin = deploy_core::kinds::Builtin::for_environment(&config, "dev");
    builtin.lambda.publish.direct_upload_limit = 4096;
    deploy_core::kinds::register_builtin(&mut engine, builtin);
    engine.apply(&plan).await.expect("release");

    let updates: Vec<_> = fx
        .proxy
        .seen()
        .into_iter()
        .filter(|s| s.method == "PUT" && s.path.ends_with("/code"))
        .collect();
    assert_eq!(updates.len(), 1);
    let sent = updates[0].length.expect("content-length");
    assert!(
        sent < 1024,
        "only the bucket and key were sent ({sent} bytes)"
    );
    let key = format!("lambda/{}.zip", zip.sha256_hex);
    let object = deploy_tests::s3(&moto().url)
        .await
        .head_object()
        .bucket(&artifacts)
        .key(&key)
        .send()
        .await
        .expect("the zip is in the artifact bucket");
    assert_eq!(object.content_length(), Some(zip.bytes.len() as i64));
    let (version, _) = fx.alias().await;
    assert_eq!(fx.code_sha256(&version).await, zip.code_sha256);
}

/// dev and staging of project `t`, each with its own state bucket and function
/// `<name>-<env>`; with `artifact_bucket`, each also has `<prefix>-<env>`.
struct TwoEnvironments {
    dir: PathBuf,
    name: String,
}

impl TwoEnvironments {
    async fn new(artifact_bucket: bool) -> TwoEnvironments {
        let url = moto().url.clone();
        let dir = scratch_dir("lambda-promote");
        let name = unique("fn");
        let prefix = unique("artifacts");
        let mut environments = Vec::new();
        for env in ["dev", "staging"] {
            let bucket = unique(&format!("lambda-{env}"));
            create_bucket(&url, &bucket).await;
            if artifact_bucket {
                create_bucket(&url, &format!("{prefix}-{env}")).await;
            }
            create_function(&format!("{name}-{env}"), &dir).await;
            environments.push(format!(
                "[environments.{env}]\nregion = \"{REGION}\"\naccount = \"{ACCOUNT}\"\nstate_bucket = \"{bucket}\"\n"
            ));
        }
        let bucket_key = if artifact_bucket {
            format!("artifact_bucket = \"{prefix}-{{env}}\"\n")
        } else {
            String::new()
        };
        let text = format!(
            "project = \"t\"\n[settings]\npoll_interval = \"100ms\"\n{}\n\
             [artifacts.fn]\nkind = \"lambda\"\nsource = \"./src\"\nfunction = \"{name}-{{env}}\"\n{bucket_key}",
            environments.join("\n")
        );
        std::fs::write(dir.join("deploy.toml"), text).expect("write config");
        TwoEnvironments { dir, name }
    }

    fn run(&self, args: &[&str]) -> (Option<i32>, String) {
        let out = deploy(&moto().url)
            .arg("--config")
            .arg(self.dir.join("deploy.toml"))
            .args(args)
            .output()
            .expect("run deploy");
        code(&out)
    }

    /// The alias's version in `env` and its `CodeSha256`, if the alias exists.
    async fn live(&self, env: &str) -> Option<(String, Option<String>)> {
        let client = lambda().await;
        let function = format!("{}-{env}", self.name);
        let version = client
            .get_alias()
            .function_name(&function)
            .name("live")
            .send()
            .await
            .ok()
            .and_then(|a| a.function_version().map(str::to_owned))?;
        let sha = client
            .get_function_configuration()
            .function_name(&function)
            .qualifier(&version)
            .send()
            .await
            .expect("configuration")
            .code_sha256()
            .map(str::to_owned);
        Some((version, sha))
    }
}

/// `promote dev staging`: staging publishes the bytes dev runs (its new version has dev's
/// `CodeSha256`); without an artifact bucket, a source that no longer zips to those bytes is
/// refused before anything changes in staging.
#[tokio::test(flavor = "multi_thread")]
async fn promote_publishes_the_code_the_source_runs() {
    let envs = TwoEnvironments::new(false).await;
    write_source(&envs.dir.join("src"), "v1");
    let (status, text) = envs.run(&["release", "dev", "--version", "v1"]);
    assert_eq!(status, Some(0), "{text}");
    let (_, dev_sha) = envs.live("dev").await.expect("dev alias");

    write_source(&envs.dir.join("src"), "v2, not what dev runs");
    let (status, text) = envs.run(&["promote", "dev", "staging"]);
    assert_eq!(status, Some(1), "{text}");
    assert!(text.contains("check out the commit"), "{text}");
    assert_eq!(
        envs.live("staging").await,
        None,
        "nothing changed in staging"
    );

    write_source(&envs.dir.join("src"), "v1");
    let (status, text) = envs.run(&["promote", "dev", "staging"]);
    assert_eq!(status, Some(0), "{text}");
    let (_, staging_sha) = envs.live("staging").await.expect("staging alias");
    assert_eq!(staging_sha, dev_sha);
}

/// With an artifact bucket, the zip dev released is kept there, and a promotion copies it by
/// its sha256 even when the local source has moved on.
#[tokio::test(flavor = "multi_thread")]
async fn promote_copies_the_zip_kept_in_the_source_artifact_bucket() {
    let envs = TwoEnvironments::new(true).await;
    write_source(&envs.dir.join("src"), "v1");
    let (status, text) = envs.run(&["release", "dev", "--version", "v1"]);
    assert_eq!(status, Some(0), "{text}");
    let (_, dev_sha) = envs.live("dev").await.expect("dev alias");

    write_source(&envs.dir.join("src"), "v2, not what dev runs");
    let (status, text) = envs.run(&["promote", "dev", "staging"]);
    assert_eq!(status, Some(0), "{text}");
    let (_, staging_sha) = envs.live("staging").await.expect("staging alias");
    assert_eq!(
        staging_sha, dev_sha,
        "staging runs dev's bytes, not the local source"
    );
}

/// `keep_versions = 2`: after the third release, the oldest version is deleted.
#[tokio::test(flavor = "multi_thread")]
async fn old_versions_beyond_keep_versions_are_deleted() {
    let fx = Fixture::new().await;
    for (n, body) in ["v1", "v2", "v3"].into_iter().enumerate() {
        fx.configure_with(
            body,
            "{ strategy = \"lambda-all-at-once\" }",
            "keep_versions = 2",
            "",
        );
        let (status, text) = code(&fx.release(&format!("r{n}")));
        assert_eq!(status, Some(0), "{text}");
    }
    let (live, _) = fx.alias().await;
    assert_eq!(live, "3");
    assert_eq!(fx.versions().await, ["2", "3"]);
}

//! A Lambda canary released under faults: proxies in front of Lambda (moto) and of the state
//! bucket answer `503`, throttle (`429 TooManyRequestsException`, `503 SlowDown`) or reset the
//! connection before or after the server acted, at random over several seeds, and one reset
//! after the server acted at each distinct call of the release in turn. Every run ends with
//! exit 0, 1 or 3, the lock given back and the ledger telling what runs (the alias read back
//! through Lambda's API); a clean rerun then converges on the new version.

use std::path::PathBuf;
use std::process::Output;

use deploy_core::kinds::lambda::package::{Packaging, package};
use deploy_tests::cloudwatch_bridge::CloudWatchBridge;
use deploy_tests::rollout_faults::{Ledger, Running, check_run, exit};
use deploy_tests::s3_proxy::{Fault, Rule, S3Proxy};
use deploy_tests::{
    ACCOUNT, REGION, create_bucket, deploy, moto, moto_config, scratch_dir, unique,
};

async fn lambda() -> aws_sdk_lambda::Client {
    aws_sdk_lambda::Client::new(&moto_config(&moto().url).await)
}

fn write_source(dir: &std::path::Path, body: &str) {
    std::fs::create_dir_all(dir).expect("source dir");
    let code = format!("def handler(event, context):\n    return {body:?}\n");
    std::fs::write(dir.join("main.py"), code).expect("write main.py");
}

fn code_sha256(dir: &std::path::Path) -> String {
    let packaging = Packaging {
        source: dir,
        exclude: &[],
        handler: None,
    };
    package(&packaging).expect("package").code_sha256
}

/// A role Lambda functions can name (moto checks that it exists).
async fn role() -> String {
    let iam = aws_sdk_iam::Client::new(&moto_config(&moto().url).await);
    let policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
    let created = iam
        .create_role()
        .role_name(unique("lambda-role"))
        .assume_role_policy_document(policy)
        .send()
        .await
        .expect("create role");
    created
        .role()
        .map(|r| r.arn().to_owned())
        .expect("role arn")
}

/// A function whose alias `live` runs version 1 (seed code), a project releasing new code to
/// it with a canary, Lambda and S3 behind their own fault proxies.
struct Fixture {
    dir: PathBuf,
    function: String,
    lambda: S3Proxy,
    s3: S3Proxy,
    ledger: Ledger,
    bridge: CloudWatchBridge,
}

impl Fixture {
    async fn new() -> Fixture {
        let url = moto().url.clone();
        let bucket = unique("lambda-faults");
        create_bucket(&url, &bucket).await;
        let dir = scratch_dir("lambda-faults");
        let function = unique("fn");
        write_source(&dir.join("seed"), "seed");
        let seed = package(&Packaging {
            source: &dir.join("seed"),
            exclude: &[],
            handler: None,
        })
        .expect("package");
        let client = lambda().await;
        client
            .create_function()
            .function_name(&function)
            .runtime(aws_sdk_lambda::types::Runtime::Python312)
            .role(role().await)
            .handler("main.handler")
            .code(
                aws_sdk_lambda::types::FunctionCode::builder()
                    .zip_file(seed.bytes.into())
                    .build(),
            )
            .publish(true)
            .send()
            .await
            .expect("create function");
        client
            .create_alias()
            .function_name(&function)
            .name("live")
            .function_version("1")
            .send()
            .await
            .expect("create alias");
        let lambda = S3Proxy::start(&url);
        lambda.throttle_as(429, "TooManyRequestsException");
        let fx = Fixture {
            dir,
            function,
            lambda,
            s3: S3Proxy::start(&url),
            ledger: Ledger::new(&bucket, "fn"),
            bridge: CloudWatchBridge::start(&url),
        };
        fx.configure();
        fx
    }

    fn configure(&self) {
        write_source(&self.dir.join("src"), "new");
        let text = format!(
            "project = \"t\"\n[settings]\npoll_interval = \"100ms\"\n\
             [environments.dev]\nregion = \"{REGION}\"\naccount = \"{ACCOUNT}\"\nstate_bucket = \"{}\"\n\
             endpoints = {{ lambda = \"{}\", s3 = \"{}\" }}\n\
             [artifacts.fn]\nkind = \"lambda\"\nsource = \"./src\"\nfunction = \"{}\"\nalias = \"live\"\n\
             handler = \"main.handler\"\n\
             rollout = {{ strategy = \"lambda-canary\", steps = [50, 100], interval = \"1s\" }}\n\
             [artifacts.fn.env]\nROUND = \"new\"\n",
            self.ledger.bucket, self.lambda.url, self.s3.url, self.function,
        );
        std::fs::write(self.dir.join("deploy.toml"), text).expect("write config");
    }

    fn release(&self) -> Output {
        deploy(&moto().url)
            .env("AWS_ENDPOINT_URL_CLOUDWATCH", &self.bridge.url)
            .arg("--config")
            .arg(self.dir.join("deploy.toml"))
            .args(["release", "dev", "--version", "v2"])
            .output()
            .expect("run deploy")
    }

    /// What the alias routes to, read through Lambda's API: version 1 alone, the version
    /// `live.json` names alone (with the new code), or something else.
    async fn running(&self) -> Running {
        let client = lambda().await;
        let alias = client
            .get_alias()
            .function_name(&self.function)
            .name("live")
            .send()
            .await
            .expect("get alias");
        let version = alias.function_version().unwrap_or_default().to_owned();
        let routing = alias
            .routing_config()
            .and_then(|r| r.additional_version_weights())
            .cloned()
            .unwrap_or_default();
        let shown = format!("version {version}, routing {routing:?}");
        if !routing.is_empty() {
            return Running::Other(shown);
        }
        if version == "1" {
            return Running::Previous;
        }
        let live = self.ledger.live().await.unwrap_or_default();
        let named = live["artifact_ref"]["function_version"].as_str();
        let code = client
            .get_function_configuration()
            .function_name(&self.function)
            .qualifier(&version)
            .send()
            .await
            .expect("get function configuration");
        let new_code = code.code_sha256() == Some(code_sha256(&self.dir.join("src")).as_str());
        if named == Some(version.as_str()) && new_code {
            Running::New
        } else {
            Running::Other(format!("{shown}, live.json names {named:?}"))
        }
    }

    /// The checks of a run, then a clean rerun that must converge on the new version.
    async fn check_and_converge(&self, out: &Output, label: &str) -> i32 {
        let code = check_run(&self.ledger, out, &self.running().await, label).await;
        self.lambda.calm();
        self.s3.calm();
        let again = self.release();
        let (rerun, text) = exit(&again);
        assert_eq!(rerun, 0, "{label}: the clean rerun\n{text}");
        let running = self.running().await;
        assert_eq!(running, Running::New, "{label}: after the rerun\n{text}");
        code
    }
}

/// `(method, path)` of each Lambda request, the query left out.
fn calls(proxy: &S3Proxy) -> Vec<(String, String)> {
    proxy
        .seen()
        .into_iter()
        .map(|s| {
            let path = s.path.split('?').next().unwrap_or_default().to_owned();
            (s.method, path)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn random_faults_on_lambda_and_the_state_bucket_end_in_a_known_state() {
    let mut codes = Vec::new();
    for seed in [11, 23, 37] {
        let fx = Fixture::new().await;
        fx.lambda.random_of(20, seed, "", &Fault::SERVICE);
        let state = format!("/{}", fx.ledger.bucket);
        fx.s3.random_matching(15, seed, &state);
        let out = fx.release();
        let injected = fx.lambda.faults() + fx.s3.faults();
        assert!(injected > 0, "seed {seed}: no fault was injected");
        codes.push(fx.check_and_converge(&out, &format!("seed {seed}")).await);
    }
    eprintln!("exit codes under random faults: {codes:?}");
}

/// A clean release's Lambda calls, then one release per distinct call (a call unlike the one
/// before it: repeated polls count once) whose answer is lost after Lambda acted.
#[tokio::test(flavor = "multi_thread")]
async fn an_answer_lost_at_each_call_of_the_release() {
    let clean = Fixture::new().await;
    let (code, text) = exit(&clean.release());
    assert_eq!(code, 0, "{text}");
    let sequence = calls(&clean.lambda);
    let mut targets: Vec<usize> = Vec::new();
    for (k, call) in sequence.iter().enumerate() {
        if k == 0 || sequence[k - 1] != *call {
            targets.push(k);
        }
    }
    assert!(
        sequence
            .iter()
            .any(|(m, p)| m == "PUT" && p.ends_with("/code")),
        "{sequence:?}"
    );
    let mut codes = Vec::new();
    for k in targets {
        let fx = Fixture::new().await;
        let skip = u32::try_from(k).expect("few calls");
        fx.lambda.add(Rule::any(Fault::ResetAfter, 1).after(skip));
        let out = fx.release();
        let (method, path) = &sequence[k];
        let label = format!("answer lost at call {} ({method} {path})", k + 1);
        assert_eq!(fx.lambda.faults(), 1, "{label}: the fault was met");
        codes.push(fx.check_and_converge(&out, &label).await);
    }
    eprintln!("exit codes, one lost answer per call: {codes:?}");
}

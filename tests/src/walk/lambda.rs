//! Lambda: a function (the harness's [`crate::lambda_function`], with `KEEP=1`) whose v1 is
//! released all at once (code `v1`, `LOG_LEVEL=info`, `NEW=x`); the project then holds v2
//! (new code, `NEW=y`, `ADDED=1`) with the strategy walked. What runs: the alias (version and
//! routing) and `$LATEST` (its environment, and under `#code` its `CodeSha256`).

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::{Probe, Truth, Walked};
use crate::cloudwatch_bridge::CloudWatchBridge;
use crate::{
    ACCOUNT, REGION, create_bucket, lambda_function, metric_alarm, moto, moto_config, scratch_dir,
    unique,
};

/// How the function's zips are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LambdaVariant {
    /// With an `artifact_bucket`: every publish keeps its zip, so `$LATEST` can be put back.
    KeptZips,
    /// Without one: the previous code of `$LATEST` cannot be put back.
    NoBucket,
    /// No bucket and no release before: the alias does not exist yet.
    FirstRelease,
}

/// The function and what keeps the CloudWatch bridge serving.
#[derive(Debug)]
pub(super) struct Function {
    name: String,
    _bridge: CloudWatchBridge,
}

/// The artifact's table for `rollout` (a TOML inline table), code returning `body` and `env`.
fn config_text(head: &str, function: &str, rollout: &str, extra: &str, env: &str) -> String {
    format!(
        "{head}[artifacts.fn]\nkind = \"lambda\"\nsource = \"./src\"\nfunction = \"{function}\"\n\
         alias = \"live\"\nhandler = \"main.handler\"\nrollout = {rollout}\n{extra}\n\
         [artifacts.fn.env]\n{env}\n"
    )
}

fn write_source(dir: &std::path::Path, body: &str) {
    std::fs::create_dir_all(dir).expect("source dir");
    let code = format!("def handler(event, context):\n    return {body:?}\n");
    std::fs::write(dir.join("main.py"), code).expect("write main.py");
}

/// The walk's Lambda environment for `rollout` (a TOML inline table; `ALARM` in it names an
/// alarm that exists and stays OK), with `keys` added to the artifact's table.
pub async fn lambda(rollout: &str, variant: LambdaVariant, keys: &str) -> Walked {
    let url = moto().url.clone();
    let bucket = unique("walk-fn-state");
    create_bucket(&url, &bucket).await;
    let mut extra = keys.to_owned();
    if variant == LambdaVariant::KeptZips {
        let zips = unique("walk-fn-zips");
        create_bucket(&url, &zips).await;
        extra += &format!("\nartifact_bucket = \"{zips}\"");
    }
    let bridge = CloudWatchBridge::start(&url);
    let alarm = unique("walk-fn-errors");
    metric_alarm(&bridge.url, &alarm).await;
    let name = unique("walk-fn");
    lambda_function(&url, &name).await;
    keep_variable(&name).await;
    let dir = scratch_dir("walk-fn");
    write_source(&dir.join("src"), "v1");
    let head = format!(
        "project = \"t\"\n[settings]\npoll_interval = \"100ms\"\n[environments.dev]\nregion = \"{REGION}\"\n\
         account = \"{ACCOUNT}\"\nstate_bucket = \"{bucket}\"\n"
    );
    let first = config_text(
        &head,
        &name,
        "{ strategy = \"lambda-all-at-once\" }",
        &extra,
        "LOG_LEVEL = \"info\"\nNEW = \"x\"",
    );
    let path = dir.join("deploy.toml");
    std::fs::write(&path, &first).expect("write config");
    let cloudwatch = bridge.url.clone();
    let function = Function {
        name: name.clone(),
        _bridge: bridge,
    };
    let mut walked = Walked::new(&path, &bucket, "fn", Probe::Lambda(function));
    walked.cloudwatch = Some(cloudwatch);
    if variant != LambdaVariant::FirstRelease {
        walked.release("v1", None).await.result.expect("release v1");
    }
    write_source(&dir.join("src"), "v2");
    let rollout = rollout.replace("ALARM", &alarm);
    let env = "LOG_LEVEL = \"info\"\nNEW = \"y\"\nADDED = \"1\"";
    walked.configure(&config_text(&head, &name, &rollout, &extra, env));
    walked
}

/// Sets `KEEP=1` on `$LATEST`, a variable no release names.
async fn keep_variable(function: &str) {
    let env = aws_sdk_lambda::types::Environment::builder()
        .variables("KEEP", "1")
        .build();
    aws_sdk_lambda::Client::new(&moto_config(&moto().url).await)
        .update_function_configuration()
        .function_name(function)
        .environment(env)
        .send()
        .await
        .expect("set KEEP");
}

impl Function {
    /// The alias (`null` when it does not exist) and `$LATEST`, through Lambda's API.
    pub(super) async fn truth(&self) -> Truth {
        let client = aws_sdk_lambda::Client::new(&moto_config(&moto().url).await);
        let latest = client
            .get_function_configuration()
            .function_name(&self.name)
            .send()
            .await
            .expect("get $LATEST");
        let env: BTreeMap<String, String> = latest
            .environment()
            .and_then(|e| e.variables())
            .map(|v| v.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        Truth::from([
            (
                "fn.shift-lambda-alias".to_owned(),
                self.alias(&client).await,
            ),
            ("fn.publish-lambda".to_owned(), json!(env)),
            (
                "fn.publish-lambda#code".to_owned(),
                json!(latest.code_sha256()),
            ),
        ])
    }

    async fn alias(&self, client: &aws_sdk_lambda::Client) -> Value {
        let read = client
            .get_alias()
            .function_name(&self.name)
            .name("live")
            .send()
            .await;
        let alias = match read {
            Ok(alias) => alias,
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_resource_not_found_exception()) =>
            {
                return Value::Null;
            }
            Err(err) => panic!("get alias: {err:?}"),
        };
        let routing: BTreeMap<String, f64> = alias
            .routing_config()
            .and_then(|r| r.additional_version_weights())
            .map(|w| w.iter().map(|(k, v)| (k.clone(), *v)).collect())
            .unwrap_or_default();
        json!({ "version": alias.function_version(), "routing": routing })
    }
}

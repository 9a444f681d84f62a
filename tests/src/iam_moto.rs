//! A moto server of its own with IAM enforcement on (`INITIAL_NO_AUTH_ACTION_COUNT`): after an
//! administrator is made with the first three requests, every request must be signed with
//! the keys of a moto IAM user and is judged against that user's policies. moto 5.2.6 judges S3
//! requests against the bucket and key ARNs and IAM requests against the role ARNs, other
//! services' actions against `*` (see [`as_moto_judges`]).

use std::process::Child;
use std::time::Duration;

use serde_json::Value;

use crate::{REGION, free_port, moto_binary, scratch_dir, unique, wait_http, watched};

/// An access key id and its secret.
pub type Keys = (String, String);

/// The requests moto lets through before it enforces: the administrator's user, policy, key.
const UNAUTHENTICATED: u32 = 3;

/// An IAM-enforcing moto and the keys of its administrator.
#[derive(Debug)]
pub struct EnforcingMoto {
    /// Base URL.
    pub url: String,
    /// The administrator's keys (every action on every resource).
    pub admin: Keys,
    _child: Child,
}

impl EnforcingMoto {
    /// Starts the server and makes the administrator.
    pub async fn start() -> EnforcingMoto {
        let port = free_port();
        let log = scratch_dir("moto-iam").join("moto.log");
        let count = format!("INITIAL_NO_AUTH_ACTION_COUNT={UNAUTHENTICATED}");
        let moto = moto_binary();
        let moto = moto.to_string_lossy();
        let args = [
            count.as_str(),
            &*moto,
            "-H",
            "127.0.0.1",
            "-p",
            &port.to_string(),
        ];
        let child = watched(std::path::Path::new("/usr/bin/env"), &args, &log);
        let url = format!("http://127.0.0.1:{port}");
        wait_http(&url, "/moto-api/", Duration::from_secs(60));
        let bootstrap = ("bootstrap".to_owned(), "bootstrap".to_owned());
        let iam = aws_sdk_iam::Client::new(&config(&url, &bootstrap).await);
        let all = serde_json::json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "*", "Resource": "*"}]});
        let admin = user(&iam, "admin", &all).await;
        EnforcingMoto {
            url,
            admin,
            _child: child,
        }
    }

    /// The SDK configuration of a client signing with `keys`.
    pub async fn config(&self, keys: &Keys) -> aws_config::SdkConfig {
        config(&self.url, keys).await
    }

    /// A new user whose only policy is `document`; its keys.
    pub async fn user(&self, document: &Value) -> (String, Keys) {
        let iam = aws_sdk_iam::Client::new(&self.config(&self.admin).await);
        let name = unique("deployer");
        let keys = user(&iam, &name, document).await;
        (name, keys)
    }

    /// Replaces the policy of user `name` with `document`.
    pub async fn set_policy(&self, name: &str, document: &Value) {
        let iam = aws_sdk_iam::Client::new(&self.config(&self.admin).await);
        put_policy(&iam, name, document).await;
    }
}

async fn config(url: &str, keys: &Keys) -> aws_config::SdkConfig {
    let credentials = aws_credential_types::Credentials::new(&keys.0, &keys.1, None, None, "test");
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(REGION))
        .endpoint_url(url)
        .credentials_provider(credentials)
        .load()
        .await
}

async fn user(iam: &aws_sdk_iam::Client, name: &str, document: &Value) -> Keys {
    iam.create_user()
        .user_name(name)
        .send()
        .await
        .unwrap_or_else(|e| panic!("create user {name}: {e:?}"));
    put_policy(iam, name, document).await;
    let key = iam
        .create_access_key()
        .user_name(name)
        .send()
        .await
        .unwrap_or_else(|e| panic!("create access key of {name}: {e:?}"));
    let key = key.access_key().expect("an access key");
    (
        key.access_key_id().to_owned(),
        key.secret_access_key().to_owned(),
    )
}

async fn put_policy(iam: &aws_sdk_iam::Client, name: &str, document: &Value) {
    iam.put_user_policy()
        .user_name(name)
        .policy_name("deploy")
        .policy_document(document.to_string())
        .send()
        .await
        .unwrap_or_else(|e| panic!("put the policy of {name}: {e:?}"));
}

/// The services whose requests moto 5.2 judges against the resource they name; it judges the
/// actions of every other service against `*`.
const SCOPED: &[&str] = &["s3", "iam", "sts", "sqs"];

/// The IAM actions moto 5.2.6 asks for some S3 requests, named after the operation, next to
/// the IAM action AWS asks for them.
const MOTO_S3_NAMES: &[(&str, &str)] = &[
    ("s3:ListBucket", "s3:ListObjectsV2"),
    ("s3:ListBucketVersions", "s3:ListObjectVersions"),
    ("s3:DeleteObject", "s3:DeleteObjects"),
    ("s3:PutObject", "s3:CopyObject"),
];

/// `document` as moto judges it: each statement whose actions are all of services moto
/// judges against `*` gets `Resource: "*"` and loses its condition (moto knows no ECS
/// condition keys); S3 and IAM statements are kept, scoping and conditions included, except
/// that a statement allowing `s3:DeleteObject` on keys also names their bucket (moto judges a
/// `DeleteObjects` request against the bucket's ARN, AWS each key), and one allowing an S3
/// action also allows moto's name for the request ([`MOTO_S3_NAMES`]).
pub fn as_moto_judges(document: &Value) -> Value {
    let mut out = document.clone();
    if let Some(statements) = out["Statement"].as_array_mut() {
        for statement in statements {
            let actions = strings(&statement["Action"]);
            let judged_on_star = actions.iter().all(|action| {
                let service = action.split(':').next().unwrap_or_default();
                !SCOPED.contains(&service)
            });
            if judged_on_star && let Some(statement) = statement.as_object_mut() {
                statement.insert("Resource".into(), "*".into());
                statement.remove("Condition");
            } else {
                if actions.iter().any(|a| a == "s3:DeleteObject") {
                    add_buckets(statement);
                }
                let mut named = actions.clone();
                for (aws, moto) in MOTO_S3_NAMES {
                    if actions.iter().any(|a| a == aws) {
                        named.push((*moto).to_owned());
                    }
                }
                statement["Action"] = named.into();
            }
        }
    }
    out
}

/// An IAM element that is one string or a list of them, as a list.
fn strings(element: &Value) -> Vec<String> {
    match element {
        Value::String(one) => vec![one.clone()],
        Value::Array(many) => many
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    }
}

/// Adds the bucket of each `arn:aws:s3:::bucket/prefix*` resource of `statement`.
fn add_buckets(statement: &mut Value) {
    let resources = strings(&statement["Resource"]);
    let mut all = resources.clone();
    for resource in &resources {
        if let Some((bucket, _)) = resource.split_once('/') {
            all.push(bucket.to_owned());
        }
    }
    statement["Resource"] = all.into();
}

/// Whether moto judges `statement` at all: the statements of services whose requests moto
/// authorizes (S3, ECR, ECS, IAM, STS, SSM) do, except `iam:PassRole`, which moto never
/// checks; Lambda and CloudWatch it refuses even when allowed (so their statements are
/// checked by the policy's content).
pub fn enforced(statement: &Value) -> bool {
    if statement["Action"] == "iam:PassRole" {
        return false;
    }
    let enforced = ["s3", "ecr", "ecs", "iam", "sts", "ssm"];
    let first = strings(&statement["Action"])
        .into_iter()
        .next()
        .unwrap_or_default();
    enforced.contains(&first.split(':').next().unwrap_or_default())
}

//! The least-privilege IAM policy for what a configuration does in one environment: each
//! action the kinds and strategies call, on ARNs built from the configuration, `iam:PassRole`
//! only for the roles the task definitions and schedules name (with `iam:PassedToService`),
//! and `*` only for actions that take no resource.
//!
//! The ledger, the lock and the run journal are granted here; each kind adds its own
//! statements ([`Grants`]) from its folder, and reads what only AWS knows (the roles a live
//! task definition names) through [`Referenced`].

mod render;

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::{Value, json};

use crate::target::Target;

pub use render::cloudformation;

/// One statement of the policy, and why it is there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Statement {
    /// `Sid`: what the statement is for (`DagsObjects`).
    pub sid: String,
    /// `Action`, sorted.
    pub actions: BTreeSet<String>,
    /// `Resource`, sorted; `["*"]` only for actions that take no resource.
    pub resources: BTreeSet<String>,
    /// `Condition`, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub condition: Option<Value>,
    /// Why deploy calls these actions, for people (not part of the IAM document).
    pub why: String,
}

/// The statements of one environment's policy, by `Sid`.
#[derive(Debug, Clone, Default)]
pub struct Grants {
    statements: BTreeMap<String, Statement>,
}

impl Grants {
    /// Allows `actions` on `resources` under `sid`. A second call with the same `sid` adds its
    /// resources (and actions) to the statement: callers keep one action list per `sid`.
    pub fn allow<I, S>(&mut self, sid: &str, why: &str, actions: &[&str], resources: I)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.add(sid, why, actions, resources, None);
    }

    /// [`Grants::allow`] with a `Condition`.
    pub fn allow_when<I, S>(
        &mut self,
        sid: &str,
        why: &str,
        actions: &[&str],
        resources: I,
        condition: Value,
    ) where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.add(sid, why, actions, resources, Some(condition));
    }

    /// `iam:PassRole` on `roles`, only to `service` (`ecs-tasks.amazonaws.com`).
    pub fn pass_roles(&mut self, sid: &str, why: &str, roles: &BTreeSet<String>, service: &str) {
        if roles.is_empty() {
            return;
        }
        let condition = json!({ "StringEquals": { "iam:PassedToService": service } });
        self.allow_when(sid, why, &["iam:PassRole"], roles.clone(), condition);
    }

    fn add<I, S>(
        &mut self,
        sid: &str,
        why: &str,
        actions: &[&str],
        resources: I,
        condition: Option<Value>,
    ) where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let resources: BTreeSet<String> = resources.into_iter().map(Into::into).collect();
        if resources.is_empty() {
            return;
        }
        let statement = self
            .statements
            .entry(sid.to_owned())
            .or_insert_with(|| Statement {
                sid: sid.to_owned(),
                actions: BTreeSet::new(),
                resources: BTreeSet::new(),
                condition,
                why: why.to_owned(),
            });
        statement
            .actions
            .extend(actions.iter().map(|a| (*a).to_owned()));
        statement.resources.extend(resources);
    }

    /// The statements, by `Sid`, each without the resources another of its resources covers
    /// (`task-definition/api:*` under `task-definition/*`).
    pub fn into_policy(self, environment: &str, notes: Vec<String>) -> Policy {
        let mut statements: Vec<Statement> = self.statements.into_values().collect();
        for statement in &mut statements {
            let wide: Vec<String> = statement
                .resources
                .iter()
                .filter_map(|r| r.strip_suffix('*').map(str::to_owned))
                .collect();
            statement.resources.retain(|r| {
                !wide.iter().any(|w| {
                    r.starts_with(w.as_str()) && r.len() > w.len() && r.as_str() != format!("{w}*")
                })
            });
        }
        Policy {
            environment: environment.to_owned(),
            statements,
            notes,
        }
    }
}

/// The policy of one environment.
#[derive(Debug, Clone, Serialize)]
pub struct Policy {
    /// The environment.
    pub environment: String,
    /// Its statements, by `Sid`.
    pub statements: Vec<Statement>,
    /// What could not be read from AWS and was granted wider because of it.
    pub notes: Vec<String>,
}

impl Policy {
    /// The IAM policy document (`Version`, `Statement`), as IAM takes it.
    pub fn document(&self) -> Value {
        let statements: Vec<Value> = self.statements.iter().map(statement_json).collect();
        json!({ "Version": "2012-10-17", "Statement": statements })
    }

    /// The statement `sid`, if the policy has it.
    pub fn statement(&self, sid: &str) -> Option<&Statement> {
        self.statements.iter().find(|s| s.sid == sid)
    }
}

fn statement_json(statement: &Statement) -> Value {
    let list = |set: &BTreeSet<String>| match set.len() {
        1 => json!(set.iter().next()),
        _ => json!(set),
    };
    let mut out = json!({
        "Sid": statement.sid,
        "Effect": "Allow",
        "Action": list(&statement.actions),
        "Resource": list(&statement.resources),
    });
    if let Some(condition) = &statement.condition {
        out["Condition"] = condition.clone();
    }
    out
}

/// What a kind's statements are built from besides its own artifact.
#[derive(Debug, Clone)]
pub struct GrantContext<'a> {
    /// The environment's ARNs.
    pub scope: &'a Scope<'a>,
    /// The same artifact in the promotion source, when this environment's credentials read it.
    pub source: Option<&'a crate::config::ArtifactSpec>,
    /// What the kind found in AWS.
    pub referenced: &'a Referenced,
}

/// Where ARNs of one environment point: partition, region, account.
#[derive(Debug, Clone)]
pub struct Scope<'a> {
    /// The environment the policy is for.
    pub target: &'a Target,
    /// Whether `target`'s clients read the promotion source too (the source environment names
    /// no profile or role of its own), so its reads belong in this policy.
    pub source: Option<&'a Target>,
}

impl Scope<'_> {
    /// `aws`, `aws-cn` or `aws-us-gov`, from the region.
    pub fn partition(&self) -> &'static str {
        partition(&self.target.region)
    }

    /// `arn:{partition}:{service}:{region}:{account}:{rest}`.
    pub fn arn(&self, service: &str, rest: &str) -> String {
        arn_in(self.target, service, rest)
    }

    /// The ARN of an S3 bucket, or of keys under `prefix` in it (`prefix*`).
    pub fn s3(&self, bucket: &str, prefix: Option<&str>) -> String {
        s3_arn(self.partition(), bucket, prefix)
    }

    /// The ARN of an IAM role given by name (or by ARN, kept as it is).
    pub fn role(&self, role: &str) -> String {
        if role.starts_with("arn:") {
            return role.to_owned();
        }
        format!(
            "arn:{}:iam::{}:role/{role}",
            self.partition(),
            self.target.account
        )
    }
}

/// `arn:{partition}:{service}:{region}:{account}:{rest}` in `target`.
pub fn arn_in(target: &Target, service: &str, rest: &str) -> String {
    format!(
        "arn:{}:{service}:{}:{}:{rest}",
        partition(&target.region),
        target.region,
        target.account
    )
}

/// The ARN of an S3 bucket, or of the keys under `prefix` in it.
pub fn s3_arn(partition: &str, bucket: &str, prefix: Option<&str>) -> String {
    match prefix {
        Some(prefix) => format!("arn:{partition}:s3:::{bucket}/{prefix}*"),
        None => format!("arn:{partition}:s3:::{bucket}"),
    }
}

/// The partition of `region`.
pub fn partition(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else if region.starts_with("us-iso-") {
        "aws-iso"
    } else if region.starts_with("us-isob-") {
        "aws-iso-b"
    } else {
        "aws"
    }
}

/// What the kinds found in AWS that the policy must name: roles passed to services, and
/// the objects the pre-rollout check reads (parameters, secrets, log groups).
#[derive(Debug, Clone, Default)]
pub struct Referenced {
    /// Role ARNs by the service they are passed to (`ecs-tasks.amazonaws.com`).
    pub pass_roles: BTreeMap<String, BTreeSet<String>>,
    /// Role ARNs looked up (`iam:GetRole`).
    pub roles: BTreeSet<String>,
    /// SSM parameter ARNs (`ssm:GetParameters`).
    pub parameters: BTreeSet<String>,
    /// Secrets Manager secret ARNs (`secretsmanager:DescribeSecret`).
    pub secrets: BTreeSet<String>,
    /// Task-definition family ARNs (`task-definition/FAMILY:*`) new revisions go into.
    pub families: BTreeSet<String>,
    /// Whether a task definition names an `awslogs` log group it does not create (the check
    /// before a rollout looks it up).
    pub log_groups: bool,
    /// What could not be read, and what was granted instead.
    pub notes: Vec<String>,
}

/// The ledger, the lock and the journal of `scope`'s environment, and (when its clients read
/// the promotion source) the source's live pointers, records and manifests.
pub fn state_grants(scope: &Scope<'_>, grants: &mut Grants) {
    let target = scope.target;
    let prefix = target.state_prefix();
    let partition = scope.partition();
    grants.allow_when(
        "StateList",
        "list the release ledger (history, status) under the environment's prefix",
        &["s3:ListBucket"],
        [s3_arn(partition, &target.state_bucket, None)],
        json!({ "StringLike": { "s3:prefix": [prefix.clone(), format!("{prefix}*")] } }),
    );
    grants.allow(
        "StateObjects",
        "read and write release records, live pointers, the lock and the run journal (conditional writes)",
        &["s3:GetObject", "s3:PutObject"],
        [s3_arn(partition, &target.state_bucket, Some(&prefix))],
    );
    if let Some(source) = scope.source {
        // What runs there is read by key (live pointers, records, manifests): no listing.
        let prefix = source.state_prefix();
        grants.allow(
            "SourceStateRead",
            "promote: read what the source environment runs (its live pointers and records)",
            &["s3:GetObject"],
            [s3_arn(partition, &source.state_bucket, Some(&prefix))],
        );
    }
}

/// `iam:GetRole`, `ssm:GetParameters` and `secretsmanager:DescribeSecret` on what `referenced`
/// names, and `iam:PassRole` on its passed roles.
pub fn referenced_grants(referenced: &Referenced, grants: &mut Grants) {
    let why = "check before a rollout that every object the task definitions reference exists";
    grants.allow(
        "TaskRoleCheck",
        why,
        &["iam:GetRole"],
        referenced.roles.clone(),
    );
    grants.allow(
        "ParameterCheck",
        why,
        &["ssm:GetParameters"],
        referenced.parameters.clone(),
    );
    grants.allow(
        "SecretCheck",
        why,
        &["secretsmanager:DescribeSecret"],
        referenced.secrets.clone(),
    );
    for (service, roles) in &referenced.pass_roles {
        let sid = pass_role_sid(service);
        let why =
            format!("register task definitions and targets that name these roles ({service})");
        grants.pass_roles(&sid, &why, roles, service);
    }
}

/// `PassRoleToEcsTasks` for `ecs-tasks.amazonaws.com`.
fn pass_role_sid(service: &str) -> String {
    sid("PassRoleTo", service.trim_end_matches(".amazonaws.com"))
}

/// A `Sid` of `base` and `name` in camel case, letters and digits only (`DagsObjects` +
/// `etl-dags` → `DagsObjectsEtlDags`), for statements kept apart per artifact.
pub fn sid(base: &str, name: &str) -> String {
    let mut out = String::from(base);
    let mut upper = true;
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(if upper { c.to_ascii_uppercase() } else { c });
            upper = false;
        } else {
            upper = true;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_follow_the_region() {
        assert_eq!(partition("eu-west-1"), "aws");
        assert_eq!(partition("cn-north-1"), "aws-cn");
        assert_eq!(partition("us-gov-west-1"), "aws-us-gov");
    }

    #[test]
    fn a_sid_adds_resources_and_one_resource_is_a_string() {
        let mut grants = Grants::default();
        grants.allow("A", "x", &["s3:GetObject"], ["arn:aws:s3:::a/*"]);
        grants.allow("A", "x", &["s3:GetObject"], ["arn:aws:s3:::b/*"]);
        grants.allow("B", "y", &["ecr:GetAuthorizationToken"], ["*"]);
        grants.allow("C", "nothing named", &["iam:GetRole"], Vec::<String>::new());
        let policy = grants.into_policy("dev", Vec::new());
        let document = policy.document();
        assert_eq!(document["Statement"].as_array().map(Vec::len), Some(2));
        assert_eq!(
            document["Statement"][0]["Resource"],
            json!(["arn:aws:s3:::a/*", "arn:aws:s3:::b/*"])
        );
        assert_eq!(document["Statement"][1]["Resource"], json!("*"));
        assert_eq!(
            document["Statement"][1]["Action"],
            json!("ecr:GetAuthorizationToken")
        );
    }

    #[test]
    fn a_wildcard_resource_takes_the_ones_it_covers() {
        let mut grants = Grants::default();
        let td = "arn:aws:ecs:eu-west-1:1:task-definition/";
        grants.allow(
            "Register",
            "x",
            &["ecs:RegisterTaskDefinition"],
            [format!("{td}*"), format!("{td}api:*"), format!("{td}api")],
        );
        grants.allow(
            "Other",
            "x",
            &["s3:GetObject"],
            ["arn:aws:s3:::b/p*", "arn:aws:s3:::b/p"],
        );
        let policy = grants.into_policy("dev", Vec::new());
        let kept = |sid: &str| policy.statement(sid).map(|s| s.resources.clone());
        assert_eq!(kept("Register"), Some([format!("{td}*")].into()));
        // `b/p*` does not take `b/p` (the same text without the star is a different key).
        assert_eq!(kept("Other").map(|r| r.len()), Some(2));
    }

    #[test]
    fn pass_role_sids_name_the_service() {
        assert_eq!(
            pass_role_sid("ecs-tasks.amazonaws.com"),
            "PassRoleToEcsTasks"
        );
        assert_eq!(
            pass_role_sid("scheduler.amazonaws.com"),
            "PassRoleToScheduler"
        );
    }
}

//! Plans: the ordered, serializable steps a command will take. Every mutating command builds a
//! plan first; `--dry-run` prints it, `plan --out` saves it, `apply` runs a saved one.
//!
//! A plan is made without changing anything. Steps carry their inputs and the AWS objects they
//! will touch. Steps run stage by stage; steps sharing a stage (the publishes of several
//! artifacts, say) run concurrently. `preconditions` capture what the ledger said when the plan
//! was made; applying refuses if that changed.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::artifact::{ArtifactDetail, ArtifactKind, ArtifactSpec, ImageSource, ScanGate};
use crate::config::Environment;
use crate::ledger::{
    ArtifactRef, ArtifactStatus, AwsObject, Operation, PointerKind, new_release_id,
};
use crate::lock::rfc3339;
use crate::rollout::{ImageRollout, LambdaRollout};
use crate::target::Target;

/// The plan document format this library reads and writes.
pub const PLAN_FORMAT: u32 = 1;

/// A command's plan for one environment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// Document format ([`PLAN_FORMAT`]).
    pub format: u32,
    /// Plan id (also the `plan_id` of the records it writes).
    pub id: String,
    /// Project.
    pub project: String,
    /// Environment.
    pub environment: String,
    /// Account the plan may change.
    pub account: String,
    /// Region.
    pub region: String,
    /// What the plan does overall.
    pub operation: Operation,
    /// The version released, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// When the plan was made (RFC 3339).
    pub created_at: String,
    /// SHA-256 of the configuration file the plan was made from.
    pub config_sha256: String,
    /// What the ledger said when the plan was made.
    pub preconditions: Vec<Precondition>,
    /// The steps, in order.
    pub steps: Vec<Step>,
}

/// A ledger pointer value the plan was made against.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Precondition {
    /// Artifact.
    pub artifact: String,
    /// Which pointer.
    pub pointer: PointerKind,
    /// The release it pointed at (`null`: none yet).
    pub release_id: Option<String>,
}

/// One step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// Position in the plan, from 1.
    pub id: usize,
    /// Steps of one stage run concurrently; stages run in order.
    pub stage: usize,
    /// The artifact this step belongs to, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact: Option<String>,
    /// One line for humans.
    pub description: String,
    /// What to do, with its inputs.
    pub action: Action,
    /// AWS objects the step will create or change.
    #[serde(default)]
    pub touches: Vec<AwsObject>,
}

/// What a step does, with its inputs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Action {
    /// Check the credentials belong to the environment's account.
    VerifyAccount {
        /// Expected account.
        account: String,
    },
    /// Take the environment lock.
    AcquireLock {
        /// State bucket.
        bucket: String,
        /// Lock object key.
        key: String,
        /// Lease length.
        #[serde(with = "crate::duration_serde")]
        ttl: Duration,
    },
    /// Push an image to the environment's ECR repository.
    PublishImage {
        /// ECR repository.
        repository: String,
        /// Where the image comes from.
        source: ImageSource,
        /// Tag to set (the version).
        tag: String,
        /// Create the repository if it is missing.
        #[serde(default)]
        create_repository: bool,
    },
    /// Copy an image by digest from another environment's repository (mounted when both are in
    /// one registry, streamed blob by blob otherwise) and tag it.
    PromoteImage {
        /// ECR repository in this environment.
        repository: String,
        /// What is copied.
        from: PromoteSource,
        /// Tag to set (the source release's version).
        tag: String,
        /// Create the repository if it is missing.
        #[serde(default)]
        create_repository: bool,
    },
    /// Wait for the ECR scan of an image and stop if its findings are above the gate.
    ScanImage {
        /// Environment whose repository holds the image.
        environment: String,
        /// ECR repository.
        repository: String,
        /// The image; `null`: the image this plan published for the step's artifact.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        digest: Option<String>,
        /// The gate.
        gate: ScanGate,
    },
    /// Roll an image out by digest.
    RolloutImage {
        /// ECR repository.
        repository: String,
        /// How.
        rollout: ImageRollout,
    },
    /// Upload changed DAG files and delete removed ones.
    SyncDags {
        /// Local folder.
        source: String,
        /// DAG bucket.
        bucket: String,
        /// Key prefix.
        prefix: String,
    },
    /// Upload the zip, update the function code and publish a version.
    PublishLambda {
        /// Directory or zip.
        source: String,
        /// Function name.
        function: String,
    },
    /// Move the alias to the new version.
    ShiftLambdaAlias {
        /// Function name.
        function: String,
        /// Alias.
        alias: String,
        /// How.
        rollout: LambdaRollout,
    },
    /// Write the release record and move the ledger pointers.
    RecordRelease {
        /// Artifact kind.
        kind: ArtifactKind,
        /// What the release did.
        operation: Operation,
    },
    /// Give the lock back.
    ReleaseLock {
        /// State bucket.
        bucket: String,
        /// Lock object key.
        key: String,
    },
    /// A step run by a handler the embedding tool registered under `name`.
    Custom {
        /// Handler name.
        name: String,
        /// Handler input.
        #[serde(default)]
        input: serde_json::Value,
    },
}

impl Action {
    /// The action's name as in the JSON `type` field.
    pub fn name(&self) -> &'static str {
        match self {
            Action::VerifyAccount { .. } => "verify-account",
            Action::AcquireLock { .. } => "acquire-lock",
            Action::PublishImage { .. } => "publish-image",
            Action::PromoteImage { .. } => "promote-image",
            Action::ScanImage { .. } => "scan-image",
            Action::RolloutImage { .. } => "rollout-image",
            Action::SyncDags { .. } => "sync-dags",
            Action::PublishLambda { .. } => "publish-lambda",
            Action::ShiftLambdaAlias { .. } => "shift-lambda-alias",
            Action::RecordRelease { .. } => "record-release",
            Action::ReleaseLock { .. } => "release-lock",
            Action::Custom { .. } => "custom",
        }
    }
}

/// The release a promotion copies: what is live in the source environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromoteSource {
    /// Artifact.
    pub artifact: String,
    /// Source environment.
    pub environment: String,
    /// The source's live release.
    pub release_id: String,
    /// Its version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Its exact bytes.
    pub artifact_ref: ArtifactRef,
}

/// Stage numbers: steps of one stage run concurrently, stages in this order.
mod stage {
    pub const VERIFY: usize = 1;
    pub const LOCK: usize = 2;
    pub const GATE: usize = 3;
    pub const PUBLISH: usize = 4;
    pub const GATE_AFTER_PUBLISH: usize = 5;
    pub const ROLLOUT: usize = 6;
    pub const RECORD: usize = 7;
    pub const UNLOCK: usize = 8;
}

/// What to plan.
#[derive(Debug, Clone)]
pub struct PlanRequest<'a> {
    /// The environment.
    pub environment: &'a Environment,
    /// Artifacts to include (all when empty is resolved by the caller with [`Environment::select`]).
    pub artifacts: Vec<&'a ArtifactSpec>,
    /// What to do.
    pub operation: Operation,
    /// Version to publish or roll out.
    pub version: Option<String>,
    /// SHA-256 of the configuration ([`crate::config::Config::sha256`]).
    pub config_sha256: &'a str,
    /// Lock lease length.
    pub lock_ttl: Duration,
    /// What the ledger says now, one entry per artifact.
    pub status: &'a [ArtifactStatus],
    /// For [`Operation::Promote`]: the source environment's live release of each artifact.
    pub promote: &'a [PromoteSource],
}

impl Plan {
    /// Builds the plan for `request`. Pure: reads nothing, changes nothing.
    pub fn build(request: &PlanRequest<'_>) -> Plan {
        let env = request.environment;
        let target = &env.target;
        let lock_key = target.lock_key();
        let mut steps = Vec::new();
        let mut push = |stage: usize,
                        artifact: Option<&str>,
                        description: String,
                        action: Action,
                        touches: Vec<AwsObject>| {
            steps.push(Step {
                id: steps.len() + 1,
                stage,
                artifact: artifact.map(str::to_owned),
                description,
                action,
                touches,
            });
        };
        push(
            stage::VERIFY,
            None,
            format!("check the credentials are for account {}", target.account),
            Action::VerifyAccount {
                account: target.account.to_string(),
            },
            vec![],
        );
        push(
            stage::LOCK,
            None,
            format!("lock environment {}", target.environment),
            Action::AcquireLock {
                bucket: target.state_bucket.clone(),
                key: lock_key.clone(),
                ttl: request.lock_ttl,
            },
            vec![s3_object(&target.state_bucket, &lock_key)],
        );
        let version = request.version.clone().unwrap_or_default();
        for spec in &request.artifacts {
            let name = Some(spec.name.as_str());
            let publish = request.operation.publishes();
            let rollout = request.operation.changes_live();
            match &spec.detail {
                ArtifactDetail::Image(image) => {
                    let repo = image.repository.clone();
                    let promoted = request.promote.iter().find(|p| p.artifact == spec.name);
                    if let Some(from) = promoted
                        && let ArtifactRef::Image {
                            repository: from_repo,
                            digest,
                        } = &from.artifact_ref
                    {
                        if image.scan != ScanGate::None {
                            push(
                                stage::GATE,
                                name,
                                format!(
                                    "check the scan of {} in {} ({})",
                                    spec.name,
                                    from.environment,
                                    image.scan.as_str()
                                ),
                                Action::ScanImage {
                                    environment: from.environment.clone(),
                                    repository: from_repo.clone(),
                                    digest: Some(digest.clone()),
                                    gate: image.scan,
                                },
                                vec![],
                            );
                        }
                        let tag = from
                            .version
                            .clone()
                            .unwrap_or_else(|| from.release_id.clone());
                        push(
                            stage::PUBLISH,
                            name,
                            format!(
                                "copy {} {digest} from {} to ECR {repo}:{tag}",
                                spec.name, from.environment
                            ),
                            Action::PromoteImage {
                                repository: repo.clone(),
                                from: from.clone(),
                                tag: tag.clone(),
                                create_repository: image.create_repository,
                            },
                            vec![AwsObject {
                                kind: "ecr-image".into(),
                                id: format!("{repo}:{tag}"),
                            }],
                        );
                    } else if publish && let Some(source) = &image.source {
                        push(
                            stage::PUBLISH,
                            name,
                            format!("push {} to ECR {repo}:{version}", spec.name),
                            Action::PublishImage {
                                repository: repo.clone(),
                                source: source.clone(),
                                tag: version.clone(),
                                create_repository: image.create_repository,
                            },
                            vec![AwsObject {
                                kind: "ecr-image".into(),
                                id: format!("{repo}:{version}"),
                            }],
                        );
                        if image.scan_on_publish && image.scan != ScanGate::None {
                            push(
                                stage::GATE_AFTER_PUBLISH,
                                name,
                                format!(
                                    "check the scan of {} ({})",
                                    spec.name,
                                    image.scan.as_str()
                                ),
                                Action::ScanImage {
                                    environment: target.environment.clone(),
                                    repository: repo.clone(),
                                    digest: None,
                                    gate: image.scan,
                                },
                                vec![],
                            );
                        }
                    }
                    if rollout && image.rollout != ImageRollout::None {
                        push(
                            stage::ROLLOUT,
                            name,
                            format!("roll out {} ({})", spec.name, image.rollout.strategy()),
                            Action::RolloutImage {
                                repository: repo,
                                rollout: image.rollout.clone(),
                            },
                            rollout_touches(&image.rollout),
                        );
                    }
                }
                ArtifactDetail::Dags(dags) => {
                    push(
                        stage::PUBLISH,
                        name,
                        format!(
                            "sync {} to s3://{}/{}",
                            dags.source.display(),
                            dags.bucket,
                            dags.prefix
                        ),
                        Action::SyncDags {
                            source: dags.source.display().to_string(),
                            bucket: dags.bucket.clone(),
                            prefix: dags.prefix.clone(),
                        },
                        vec![s3_object(&dags.bucket, &format!("{}*", dags.prefix))],
                    );
                }
                ArtifactDetail::Lambda(lambda) => {
                    if publish && let Some(source) = &lambda.source {
                        push(
                            stage::PUBLISH,
                            name,
                            format!("publish a new version of {}", lambda.function),
                            Action::PublishLambda {
                                source: source.display().to_string(),
                                function: lambda.function.clone(),
                            },
                            vec![AwsObject {
                                kind: "lambda-version".into(),
                                id: lambda.function.clone(),
                            }],
                        );
                    }
                    if rollout {
                        push(
                            stage::ROLLOUT,
                            name,
                            format!(
                                "move alias {} of {} ({})",
                                lambda.alias, lambda.function, lambda.rollout.strategy
                            ),
                            Action::ShiftLambdaAlias {
                                function: lambda.function.clone(),
                                alias: lambda.alias.clone(),
                                rollout: lambda.rollout.clone(),
                            },
                            vec![AwsObject {
                                kind: "lambda-alias".into(),
                                id: format!("{}:{}", lambda.function, lambda.alias),
                            }],
                        );
                    }
                }
            }
            let record_key = format!(
                "deploy/{}/{}/artifacts/{}/",
                target.project, target.environment, spec.name
            );
            push(
                stage::RECORD,
                name,
                format!(
                    "record the {} of {} in the ledger",
                    operation_noun(request.operation),
                    spec.name
                ),
                Action::RecordRelease {
                    kind: spec.kind(),
                    operation: request.operation,
                },
                vec![s3_object(&target.state_bucket, &record_key)],
            );
        }
        push(
            stage::UNLOCK,
            None,
            format!("unlock environment {}", target.environment),
            Action::ReleaseLock {
                bucket: target.state_bucket.clone(),
                key: lock_key.clone(),
            },
            vec![s3_object(&target.state_bucket, &lock_key)],
        );
        // Stages run in order: sort by stage (stable, so each stage keeps artifact order).
        steps.sort_by_key(|s| s.stage);
        for (index, step) in steps.iter_mut().enumerate() {
            step.id = index + 1;
        }
        let preconditions = request
            .status
            .iter()
            .map(|s| Precondition {
                artifact: s.artifact.clone(),
                pointer: PointerKind::Live,
                release_id: s.live.as_ref().map(|p| p.release_id.clone()),
            })
            .collect();
        Plan::envelope(
            target,
            request.operation,
            request.version.clone(),
            request.config_sha256,
            preconditions,
            steps,
        )
    }

    /// A plan for an embedder's own change: check the account, take the lock, run `inner` one
    /// step after another, give the lock back. Each inner entry is `(artifact, action)`.
    pub fn locked(
        target: &Target,
        operation: Operation,
        version: Option<String>,
        config_sha256: &str,
        lock_ttl: Duration,
        inner: Vec<(Option<String>, Action)>,
    ) -> Plan {
        let (bucket, key) = (target.state_bucket.clone(), target.lock_key());
        let actions = [
            (
                None,
                Action::VerifyAccount {
                    account: target.account.to_string(),
                },
            ),
            (
                None,
                Action::AcquireLock {
                    bucket: bucket.clone(),
                    key: key.clone(),
                    ttl: lock_ttl,
                },
            ),
        ]
        .into_iter()
        .chain(inner)
        .chain([(None, Action::ReleaseLock { bucket, key })]);
        let steps = actions
            .enumerate()
            .map(|(i, (artifact, action))| Step {
                id: i + 1,
                stage: i + 1,
                artifact,
                description: action.name().to_owned(),
                action,
                touches: vec![],
            })
            .collect();
        Plan::envelope(target, operation, version, config_sha256, vec![], steps)
    }

    fn envelope(
        target: &Target,
        operation: Operation,
        version: Option<String>,
        config_sha256: &str,
        preconditions: Vec<Precondition>,
        steps: Vec<Step>,
    ) -> Plan {
        let now = OffsetDateTime::now_utc();
        Plan {
            format: PLAN_FORMAT,
            id: new_release_id(now),
            project: target.project.clone(),
            environment: target.environment.clone(),
            account: target.account.to_string(),
            region: target.region.clone(),
            operation,
            version,
            created_at: rfc3339(now),
            config_sha256: config_sha256.to_owned(),
            preconditions,
            steps,
        }
    }

    /// The plan as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Reads a plan saved with `plan --out`.
    pub fn from_json(text: &str) -> Result<Plan, serde_json::Error> {
        serde_json::from_str(text)
    }
}

fn operation_noun(operation: Operation) -> &'static str {
    match operation {
        Operation::Publish => "publish",
        Operation::Rollout => "rollout",
        Operation::Release => "release",
        Operation::Promote => "promotion",
        Operation::Rollback => "rollback",
        Operation::Custom => "change",
    }
}

fn s3_object(bucket: &str, key: &str) -> AwsObject {
    AwsObject {
        kind: "s3-object".into(),
        id: format!("s3://{bucket}/{key}"),
    }
}

fn rollout_touches(rollout: &ImageRollout) -> Vec<AwsObject> {
    let obj = |kind: &str, id: String| AwsObject {
        kind: kind.into(),
        id,
    };
    match rollout {
        ImageRollout::EcsRolling(s) => vec![
            obj("task-definition", format!("{}:*", s.service)),
            obj("ecs-service", format!("{}/{}", s.cluster, s.service)),
        ],
        ImageRollout::CodedeployBlueGreen {
            service,
            application,
            deployment_group,
        } => vec![
            obj("task-definition", format!("{}:*", service.service)),
            obj(
                "codedeploy-deployment",
                format!("{application}/{deployment_group}"),
            ),
        ],
        ImageRollout::TaskDefinitions { families, .. } => families
            .iter()
            .map(|f| obj("task-definition", format!("{f}:*")))
            .collect(),
        ImageRollout::None => vec![],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    const CONFIG: &str = r#"
project = "p"
[environments.dev]
region = "eu-west-1"
account = "111111111111"
state_bucket = "p-state-{env}"
[artifacts.api]
kind = "image"
repository = "p/api"
source = "oci:./build/api"
rollout = { strategy = "ecs-rolling", cluster = "c", service = "s", container = "api" }
[artifacts.fn]
kind = "lambda"
source = "./fn"
function = "p-fn-{env}"
"#;

    /// The plan of `operation` for every artifact of `env` in the configuration `text`.
    fn build_from(text: &str, env: &str, operation: Operation, promote: &[PromoteSource]) -> Plan {
        let config = Config::from_toml(text, "deploy.toml".as_ref()).expect("valid config");
        let env = config.environment(env).expect("environment");
        Plan::build(&PlanRequest {
            environment: env,
            artifacts: env.select(&[]).expect("all"),
            operation,
            version: Some("v1".into()),
            config_sha256: config.sha256(),
            lock_ttl: Duration::from_secs(60),
            status: &[],
            promote,
        })
    }

    fn build(operation: Operation) -> Plan {
        build_from(CONFIG, "dev", operation, &[])
    }

    #[test]
    fn steps_are_ordered_by_stage_and_numbered() {
        let plan = build(Operation::Release);
        let stages: Vec<usize> = plan.steps.iter().map(|s| s.stage).collect();
        let mut sorted = stages.clone();
        sorted.sort_unstable();
        assert_eq!(stages, sorted);
        let ids: Vec<usize> = plan.steps.iter().map(|s| s.id).collect();
        assert_eq!(ids, (1..=plan.steps.len()).collect::<Vec<_>>());
        let names: Vec<&str> = plan.steps.iter().map(|s| s.action.name()).collect();
        assert_eq!(
            names,
            [
                "verify-account",
                "acquire-lock",
                "publish-image",
                "publish-lambda",
                "rollout-image",
                "shift-lambda-alias",
                "record-release",
                "record-release",
                "release-lock"
            ]
        );
    }

    #[test]
    fn publish_only_plans_do_not_roll_out() {
        let plan = build(Operation::Publish);
        assert!(!plan.steps.iter().any(|s| matches!(
            s.action,
            Action::RolloutImage { .. } | Action::ShiftLambdaAlias { .. }
        )));
    }

    const PROMOTE_CONFIG: &str = r#"
project = "p"
[environments.staging]
region = "eu-west-1"
account = "111111111111"
state_bucket = "p-state-{env}"
[environments.prod]
region = "eu-west-1"
account = "222222222222"
state_bucket = "p-state-{env}"
promote_from = "staging"
[artifacts.api]
kind = "image"
repository = "p/api"
source = "oci:./build/api"
scan = "block-high"
scan_on_publish = true
rollout = { strategy = "none" }
"#;

    fn promote_source() -> PromoteSource {
        PromoteSource {
            artifact: "api".into(),
            environment: "staging".into(),
            release_id: "r1".into(),
            version: Some("v3".into()),
            artifact_ref: ArtifactRef::Image {
                repository: "p/api".into(),
                digest: "sha256:aa".into(),
            },
        }
    }

    fn build_in(env: &str, operation: Operation, promote: &[PromoteSource]) -> Plan {
        build_from(PROMOTE_CONFIG, env, operation, promote)
    }

    #[test]
    fn promotions_check_the_source_scan_then_copy_by_digest() {
        let plan = build_in("prod", Operation::Promote, &[promote_source()]);
        let names: Vec<&str> = plan.steps.iter().map(|s| s.action.name()).collect();
        assert_eq!(
            names,
            [
                "verify-account",
                "acquire-lock",
                "scan-image",
                "promote-image",
                "record-release",
                "release-lock"
            ]
        );
        match &plan.steps[2].action {
            Action::ScanImage {
                environment,
                digest,
                gate,
                ..
            } => {
                assert_eq!(environment, "staging");
                assert_eq!(digest.as_deref(), Some("sha256:aa"));
                assert_eq!(*gate, ScanGate::BlockHigh);
            }
            other => panic!("expected a scan, got {other:?}"),
        }
        match &plan.steps[3].action {
            Action::PromoteImage { tag, from, .. } => {
                assert_eq!(tag, "v3", "the source release's version is the tag");
                assert_eq!(from.release_id, "r1");
            }
            other => panic!("expected a copy, got {other:?}"),
        }
    }

    #[test]
    fn scan_on_publish_gates_right_after_the_push() {
        let plan = build_in("staging", Operation::Release, &[]);
        let names: Vec<&str> = plan.steps.iter().map(|s| s.action.name()).collect();
        assert_eq!(
            names,
            [
                "verify-account",
                "acquire-lock",
                "publish-image",
                "scan-image",
                "record-release",
                "release-lock"
            ]
        );
        assert!(matches!(
            &plan.steps[3].action,
            Action::ScanImage { digest: None, environment, .. } if environment == "staging"
        ));
    }

    #[test]
    fn plans_round_trip_through_json() {
        let plan = build(Operation::Release);
        assert_eq!(Plan::from_json(&plan.to_json()).expect("parse"), plan);
    }
}

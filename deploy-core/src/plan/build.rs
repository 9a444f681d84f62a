//! [`Plan::build`]: the account check and the lock, each artifact's steps from its kind, the
//! records and the unlock. The kinds' planners live with the kinds.

use std::time::Duration;

use super::{Action, Chain, Plan, PlanRequest, Precondition, core};
use crate::config::ArtifactSpec;
use crate::ledger::{Operation, PointerKind};
use crate::target::Target;

/// Adds an artifact's steps to a plan: each kind's planner, behind one seam, so that plans are
/// assembled without naming a kind (`Plan::build`, in `kinds`, passes the planner of every kind
/// of this build).
pub trait ArtifactPlanner {
    /// Adds `spec`'s steps for `request` to `chain`.
    fn steps(&self, spec: &ArtifactSpec, request: &PlanRequest<'_>, chain: &mut Chain<'_>);
}

impl Plan {
    /// Builds the plan for `request`, `planner` adding each artifact's steps. Pure: reads
    /// nothing, changes nothing.
    pub fn build_with(request: &PlanRequest<'_>, planner: &dyn ArtifactPlanner) -> Plan {
        let target = &request.environment.target;
        let mut list = super::StepList::new();
        let lock = core::open(&mut list, target, request.lock_ttl);
        let mut work = Vec::new();
        for spec in &request.artifacts {
            let mut chain = list.chain(&spec.name, &lock);
            planner.steps(spec, request, &mut chain);
            work.extend_from_slice(chain.added());
        }
        if work.is_empty() {
            work.push(lock);
        }
        let records: Vec<_> = request
            .artifacts
            .iter()
            .map(|s| (s.name.clone(), s.kind()))
            .collect();
        core::close(&mut list, target, &work, &records, request.operation);
        let preconditions = request
            .status
            .iter()
            .map(|s| Precondition {
                artifact: s.artifact.clone(),
                pointer: PointerKind::Live,
                release_id: s.live.as_ref().map(|p| p.release_id.clone()),
            })
            .collect();
        let mut plan = Plan::envelope(
            target,
            request.operation,
            request.version.clone(),
            request.config_sha256,
            preconditions,
            list.finish(),
        );
        plan.commit_times = commit_times(request);
        plan.seal = plan.expected_seal();
        plan
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
        let steps = core::locked_steps(target, lock_ttl, inner).finish();
        Plan::envelope(target, operation, version, config_sha256, vec![], steps)
    }
}

/// Each artifact's commit time: its promotion or rollback source's, else the release's.
fn commit_times(request: &PlanRequest<'_>) -> std::collections::BTreeMap<String, String> {
    let of = |name: &str| {
        let source = request.promote.iter().find(|p| p.artifact == name);
        match source {
            Some(source) => source.commit_time,
            None => request.commit_time,
        }
    };
    request
        .artifacts
        .iter()
        .filter_map(|spec| Some((spec.name.clone(), crate::lock::rfc3339(of(&spec.name)?))))
        .collect()
}

#[cfg(all(test, feature = "image"))]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::kinds::ScanGate;
    use crate::kinds::image::actions::{PromoteImage, ScanImage};
    use crate::ledger::ArtifactRef;
    use crate::plan::PromoteSource;

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
            gradual: false,
            commit_time: None,
        })
    }

    fn build(operation: Operation) -> Plan {
        build_from(CONFIG, "dev", operation, &[])
    }

    #[test]
    fn steps_come_after_what_they_need() {
        let plan = build(Operation::Release);
        for (i, step) in plan.steps.iter().enumerate() {
            for need in &step.needs {
                let at = plan.steps.iter().position(|s| &s.id == need);
                assert!(at.is_some_and(|at| at < i), "{} needs {need}", step.id);
            }
        }
        let ids: Vec<&str> = plan.steps.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "verify-account",
                "acquire-lock",
                "api.publish-image",
                "fn.publish-lambda",
                "api.rollout-image",
                "fn.shift-lambda-alias",
                "api.record-release",
                "fn.record-release",
                "release-lock"
            ]
        );
        let record = plan.step("api.record-release").expect("record");
        assert_eq!(
            record.needs,
            [
                "api.publish-image",
                "api.rollout-image",
                "fn.publish-lambda",
                "fn.shift-lambda-alias"
            ],
            "records wait for every change"
        );
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
        assert!(
            !plan
                .steps
                .iter()
                .any(|s| ["rollout-image", "shift-lambda-alias"].contains(&s.action.name()))
        );
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
            artifact_ref: ArtifactRef::new(&crate::kinds::image::ImageRef {
                repository: "p/api".into(),
                digest: "sha256:aa".into(),
            }),
            commit_time: None,
            touched: Vec::new(),
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
        let scan: ScanImage = plan.steps[2].action.input().expect("a scan");
        assert_eq!(scan.environment, "staging");
        assert_eq!(scan.digest.as_deref(), Some("sha256:aa"));
        assert_eq!(scan.gate, ScanGate::BlockHigh);
        let copy: PromoteImage = plan.steps[3].action.input().expect("a copy");
        assert_eq!(copy.tag, "v3", "the source release's version is the tag");
        assert_eq!(copy.from.release_id, "r1");
        assert_eq!(plan.steps[3].needs, [plan.steps[2].id.clone()]);
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
        let scan: ScanImage = plan.steps[3].action.input().expect("a scan");
        assert_eq!(scan.digest, None);
        assert_eq!(scan.environment, "staging");
    }

    #[test]
    fn plans_round_trip_through_json() {
        let plan = build(Operation::Release);
        assert_eq!(Plan::from_json(&plan.to_json()).expect("parse"), plan);
    }
}

//! ECS's own blue/green, canary and linear deployments (API `ServiceDeployment`,
//! Developer Guide "Amazon ECS blue/green deployments"), which moto does not know.
//!
//! An `UpdateService` whose `deploymentConfiguration.strategy` is `BLUE_GREEN`, `CANARY` or
//! `LINEAR` starts a service deployment (`PENDING`). Each `DescribeServiceDeployments` of it
//! is one poll and moves it one lifecycle stage on, `IN_PROGRESS` from `RECONCILE_SERVICE`
//! through `BAKE_TIME` (two polls) and `CLEAN_UP` to `SUCCESSFUL`. The service's next
//! [`Script`]: `FailAndRollBack` fails at `SCALE_UP` (tasks failed to start) and ECS rolls back
//! by itself (`ROLLBACK_IN_PROGRESS`, then `ROLLBACK_SUCCESSFUL`); `Stuck` stays at
//! `SCALE_UP`. `StopServiceDeployment` with `stopType` `ROLLBACK` of one in progress:
//! `ROLLBACK_REQUESTED`, `ROLLBACK_IN_PROGRESS`, `ROLLBACK_SUCCESSFUL`; of one that ended:
//! `ConflictException`. A rollback puts the service in moto back on its previous task
//! definition (moto moved it at `UpdateService`).

use serde_json::{Value, json};

use super::Script;

/// The lifecycle stages of a service deployment, in order.
pub const STAGES: [&str; 10] = [
    "RECONCILE_SERVICE",
    "PRE_SCALE_UP",
    "SCALE_UP",
    "POST_SCALE_UP",
    "TEST_TRAFFIC_SHIFT",
    "POST_TEST_TRAFFIC_SHIFT",
    "PRODUCTION_TRAFFIC_SHIFT",
    "POST_PRODUCTION_TRAFFIC_SHIFT",
    "BAKE_TIME",
    "CLEAN_UP",
];

const SCALE_UP: usize = 2;
const BAKE_TIME: usize = 8;
const BAKE_POLLS: u32 = 2;

/// Whether an `UpdateService` body asks for one of ECS's own blue/green strategies.
pub fn is_blue_green(body: &Value) -> bool {
    let strategy = body["deploymentConfiguration"]["strategy"].as_str();
    matches!(strategy, Some("BLUE_GREEN" | "CANARY" | "LINEAR"))
}

/// One service deployment.
#[derive(Debug, Clone)]
pub struct ServiceDeployment {
    pub arn: String,
    pub service_arn: String,
    pub cluster: String,
    pub service: String,
    pub status: &'static str,
    stage: usize,
    baked: u32,
    script: Script,
    pub previous: String,
    pub target: String,
    config: Value,
    created: f64,
    reason: Option<String>,
}

/// What a poll asks the double to do in moto.
pub enum Effect {
    /// Nothing.
    None,
    /// Put the service back on this task definition.
    Restore(String),
}

impl ServiceDeployment {
    /// A deployment of `target` (from `previous`) asked by `body`.
    pub fn new(
        arn: String,
        service_arn: String,
        body: &Value,
        previous: String,
        target: String,
        script: Script,
    ) -> Self {
        let text = |key: &str| body[key].as_str().unwrap_or_default().to_owned();
        ServiceDeployment {
            arn,
            service_arn,
            cluster: text("cluster"),
            service: text("service"),
            status: "PENDING",
            stage: 0,
            baked: 0,
            script,
            previous,
            target,
            config: body["deploymentConfiguration"].clone(),
            created: now(),
            reason: None,
        }
    }

    /// One poll.
    pub fn poll(&mut self) -> Effect {
        match self.status {
            "PENDING" => self.status = "IN_PROGRESS",
            "IN_PROGRESS" => return self.progress(),
            "ROLLBACK_REQUESTED" => self.status = "ROLLBACK_IN_PROGRESS",
            "ROLLBACK_IN_PROGRESS" => {
                self.status = "ROLLBACK_SUCCESSFUL";
                return Effect::Restore(self.previous.clone());
            }
            _ => {}
        }
        Effect::None
    }

    fn progress(&mut self) -> Effect {
        if self.stage == SCALE_UP {
            match self.script {
                Script::FailAndRollBack { .. } => {
                    self.reason =
                        Some("ECS deployment circuit breaker: tasks failed to start.".into());
                    self.status = "ROLLBACK_IN_PROGRESS";
                    return Effect::None;
                }
                Script::Stuck => return Effect::None,
                Script::Complete { .. } => {}
            }
        }
        if self.stage == BAKE_TIME && self.baked < BAKE_POLLS {
            self.baked += 1;
            return Effect::None;
        }
        self.stage += 1;
        if self.stage == STAGES.len() {
            self.status = "SUCCESSFUL";
        }
        Effect::None
    }

    /// `StopServiceDeployment` with rollback; `false` when it already ended.
    pub fn stop(&mut self) -> bool {
        if !matches!(self.status, "PENDING" | "IN_PROGRESS") {
            return false;
        }
        self.status = "ROLLBACK_REQUESTED";
        self.reason = Some("Rollback requested by StopServiceDeployment".into());
        true
    }

    /// The `ServiceDeploymentBrief` of `ListServiceDeployments`.
    pub fn brief(&self) -> Value {
        json!({
            "serviceDeploymentArn": self.arn,
            "serviceArn": self.service_arn,
            "clusterArn": self.cluster,
            "status": self.status,
            "createdAt": self.created,
            "targetServiceRevisionArn": self.target,
        })
    }

    /// The `ServiceDeployment` of `DescribeServiceDeployments`.
    pub fn describe(&self) -> Value {
        let stage = STAGES[self.stage.min(STAGES.len() - 1)];
        let mut out = json!({
            "serviceDeploymentArn": self.arn,
            "serviceArn": self.service_arn,
            "clusterArn": self.cluster,
            "status": self.status,
            "lifecycleStage": stage,
            "createdAt": self.created,
            "deploymentConfiguration": self.config,
            "targetServiceRevision": { "arn": self.target },
            "sourceServiceRevisions": [{ "arn": self.previous }],
        });
        if let Some(reason) = &self.reason {
            out["statusReason"] = json!(reason);
        }
        out
    }
}

fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

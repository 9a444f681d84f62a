//! A service's deployments as ECS shows them, and how a script moves them on each poll.

use serde_json::{Value, json};

use super::{Ids, ROLLBACK_POLLS, Script};

/// At most this many events are kept (ECS shows the latest 100).
const MAX_EVENTS: usize = 100;

/// One entry of `deployments`.
#[derive(Debug, Clone)]
pub(super) struct Deployment {
    pub id: String,
    pub status: &'static str,
    pub task_definition: String,
    pub desired: i64,
    pub running: i64,
    pub pending: i64,
    pub failed: i64,
    pub rollout: &'static str,
    pub reason: String,
    pub created_at: f64,
    pub updated_at: f64,
}

impl Deployment {
    fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "status": self.status,
            "taskDefinition": self.task_definition,
            "desiredCount": self.desired,
            "runningCount": self.running,
            "pendingCount": self.pending,
            "failedTasks": self.failed,
            "rolloutState": self.rollout,
            "rolloutStateReason": self.reason,
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
        })
    }
}

/// Where a scripted rollout is.
#[derive(Debug, Clone)]
enum Phase {
    /// The new deployment is rolling out; `previous` is the task definition it replaces.
    Deploying { previous: String },
    /// The circuit breaker rolled back; the rollback deployment is rolling out.
    RollingBack,
}

#[derive(Debug, Clone)]
struct Progress {
    script: Script,
    polls: u32,
    phase: Phase,
}

/// What the double knows of one service.
#[derive(Debug, Clone)]
pub(super) struct Service {
    pub name: String,
    /// Newest first, `PRIMARY` first.
    pub deployments: Vec<Deployment>,
    /// The last `deploymentConfiguration` sent by CreateService or UpdateService.
    pub config: Option<Value>,
    /// Newest first.
    pub events: Vec<Value>,
    progress: Option<Progress>,
}

/// A change to pass on to moto after a poll: the circuit breaker put `task_definition` back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct RolledBack {
    pub task_definition: String,
}

impl Service {
    /// A service in a steady state, from moto's description of it.
    pub fn steady(described: &Value, ids: &Ids) -> Service {
        let name = described["serviceName"].as_str().unwrap_or_default();
        let desired = described["desiredCount"].as_i64().unwrap_or(0);
        let moto_id = described["deployments"][0]["id"].as_str();
        let id = moto_id.map_or_else(|| ids.deployment(), str::to_owned);
        let now = super::now();
        Service {
            name: name.to_owned(),
            deployments: vec![Deployment {
                reason: format!("ECS deployment {id} completed."),
                id,
                status: "PRIMARY",
                task_definition: described["taskDefinition"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                desired,
                running: desired,
                pending: 0,
                failed: 0,
                rollout: "COMPLETED",
                created_at: now,
                updated_at: now,
            }],
            config: None,
            events: Vec::new(),
            progress: None,
        }
    }

    /// The task definition of the `PRIMARY` deployment: the service's own.
    pub fn task_definition(&self) -> &str {
        self.deployments
            .first()
            .map_or("", |d| d.task_definition.as_str())
    }

    /// Whether no deployment of the double is under way (one PRIMARY, completed).
    pub fn settled(&self) -> bool {
        self.deployments.len() == 1 && self.deployments[0].rollout == "COMPLETED"
    }

    /// UpdateService without a new deployment: the desired count follows.
    pub fn set_desired(&mut self, desired: i64) {
        if let Some(primary) = self.deployments.first_mut() {
            primary.desired = desired;
            if primary.rollout == "COMPLETED" {
                primary.running = desired;
            }
        }
    }

    /// UpdateService with a new task definition (or a forced new deployment): every deployment
    /// so far becomes `ACTIVE`, a new `PRIMARY` one starts `IN_PROGRESS`.
    pub fn start(&mut self, task_definition: &str, desired: i64, script: Script, ids: &Ids) {
        let previous = self.task_definition().to_owned();
        self.push_deployment(task_definition, desired, ids);
        self.progress = Some(Progress {
            script,
            polls: 0,
            phase: Phase::Deploying { previous },
        });
    }

    fn push_deployment(&mut self, task_definition: &str, desired: i64, ids: &Ids) {
        for old in &mut self.deployments {
            old.status = "ACTIVE";
        }
        let id = ids.deployment();
        let now = super::now();
        self.deployments.insert(
            0,
            Deployment {
                reason: format!("ECS deployment {id} in progress."),
                id,
                status: "PRIMARY",
                task_definition: task_definition.to_owned(),
                desired,
                running: 0,
                pending: desired,
                failed: 0,
                rollout: "IN_PROGRESS",
                created_at: now,
                updated_at: now,
            },
        );
    }

    fn breaker(&self) -> (bool, bool) {
        let breaker = self
            .config
            .as_ref()
            .map_or(&Value::Null, |c| &c["deploymentCircuitBreaker"]);
        (
            breaker["enable"].as_bool().unwrap_or(false),
            breaker["rollback"].as_bool().unwrap_or(false),
        )
    }

    /// One DescribeServices of this service: the scripted rollout moves one step.
    pub fn poll(&mut self, ids: &Ids) -> Option<RolledBack> {
        let mut progress = self.progress.take()?;
        progress.polls += 1;
        if progress.polls == 1 {
            self.started_tasks(ids);
        }
        let (next, rolled_back) = self.step(progress, ids);
        self.progress = next;
        rolled_back
    }

    /// One step of the script: what is left of the rollout, and a rollback to pass on.
    fn step(&mut self, progress: Progress, ids: &Ids) -> (Option<Progress>, Option<RolledBack>) {
        let polls = progress.polls;
        match (progress.script, &progress.phase) {
            (_, Phase::RollingBack) if polls >= ROLLBACK_POLLS => {
                self.complete(ids);
                (None, None)
            }
            (_, Phase::RollingBack) | (Script::Stuck, _) => (Some(progress), None),
            (Script::Complete { after_polls }, _) if polls >= after_polls => {
                self.complete(ids);
                (None, None)
            }
            (Script::Complete { after_polls }, _) => {
                self.advance(polls, after_polls);
                (Some(progress), None)
            }
            (Script::FailAndRollBack { after_polls }, Phase::Deploying { previous }) => {
                self.fail_task(ids);
                if polls < after_polls {
                    return (Some(progress), None);
                }
                match self.breaker() {
                    (true, true) => {
                        let previous = previous.clone();
                        self.roll_back(&previous, ids);
                        let rolling_back = Progress {
                            script: progress.script,
                            polls: 0,
                            phase: Phase::RollingBack,
                        };
                        let back = RolledBack {
                            task_definition: previous,
                        };
                        (Some(rolling_back), Some(back))
                    }
                    (true, false) => {
                        self.fail(ids);
                        (None, None)
                    }
                    (false, _) => (Some(progress), None),
                }
            }
        }
    }

    fn event(&mut self, message: String, ids: &Ids) {
        self.events.insert(
            0,
            json!({ "id": ids.uuid(), "createdAt": super::now(), "message": message }),
        );
        self.events.truncate(MAX_EVENTS);
    }

    fn started_tasks(&mut self, ids: &Ids) {
        let count = self.deployments.first().map_or(0, |d| d.desired.max(1));
        let tasks: Vec<String> = (0..count)
            .map(|_| format!("(task {})", ids.task()))
            .collect();
        let message = format!(
            "(service {}) has started {count} tasks: {}.",
            self.name,
            tasks.join(" ")
        );
        self.event(message, ids);
    }

    /// Part of the new tasks run, the old deployments' tasks drain.
    fn advance(&mut self, polls: u32, after: u32) {
        let Some(primary) = self.deployments.first_mut() else {
            return;
        };
        let desired = primary.desired;
        primary.running = desired * i64::from(polls) / i64::from(after.max(1));
        primary.pending = desired - primary.running;
        primary.updated_at = super::now();
        let left = desired - primary.running;
        for old in self.deployments.iter_mut().skip(1) {
            old.running = left.min(old.running);
        }
    }

    /// The `PRIMARY` deployment reached a steady state; the others are gone.
    fn complete(&mut self, ids: &Ids) {
        self.deployments.truncate(1);
        let Some(primary) = self.deployments.first_mut() else {
            return;
        };
        primary.running = primary.desired;
        primary.pending = 0;
        primary.rollout = "COMPLETED";
        primary.reason = format!("ECS deployment {} completed.", primary.id);
        primary.updated_at = super::now();
        let id = primary.id.clone();
        let message = format!(
            "(service {}) (deployment {id}) deployment completed.",
            self.name
        );
        self.event(message, ids);
        self.event(
            format!("(service {}) has reached a steady state.", self.name),
            ids,
        );
    }

    /// A task of the new deployment failed to start; ECS counts it and starts another.
    fn fail_task(&mut self, ids: &Ids) {
        let Some(primary) = self.deployments.first_mut() else {
            return;
        };
        primary.failed += 1;
        primary.running = 0;
        primary.pending = primary.desired;
        primary.updated_at = super::now();
        let message = format!(
            "(service {}) has stopped 1 running tasks: (task {}).",
            self.name,
            ids.task()
        );
        self.event(message, ids);
    }

    /// The circuit breaker failed the `PRIMARY` deployment; it launches no more tasks.
    fn fail(&mut self, ids: &Ids) -> Option<String> {
        let primary = self.deployments.first_mut()?;
        primary.rollout = "FAILED";
        primary.reason = "ECS deployment circuit breaker: tasks failed to start.".into();
        primary.pending = 0;
        primary.updated_at = super::now();
        let id = primary.id.clone();
        let message = format!(
            "(service {}) (deployment {id}) deployment failed: tasks failed to start.",
            self.name
        );
        self.event(message, ids);
        Some(id)
    }

    /// The failed deployment is followed by a new one with the task definition it replaced.
    fn roll_back(&mut self, previous: &str, ids: &Ids) {
        let failed = self.fail(ids).unwrap_or_default();
        let desired = self.deployments.first().map_or(0, |d| d.desired);
        let last_good = self
            .deployments
            .iter()
            .skip(1)
            .find(|d| d.rollout == "COMPLETED")
            .map_or_else(String::new, |d| d.id.clone());
        self.push_deployment(previous, desired, ids);
        if let Some(primary) = self.deployments.first_mut() {
            primary.reason = format!(
                "ECS deployment circuit breaker: rolling back to deploymentId {last_good}."
            );
        }
        let message = format!(
            "(service {}) (deployment {failed}) rolling back to deployment {last_good}.",
            self.name
        );
        self.event(message, ids);
    }

    /// Puts this state over moto's description of the service.
    pub fn overlay(&self, described: &mut Value) {
        let Some(fields) = described.as_object_mut() else {
            return;
        };
        let deployments: Vec<Value> = self.deployments.iter().map(Deployment::to_json).collect();
        let running: i64 = self.deployments.iter().map(|d| d.running).sum();
        let pending: i64 = self.deployments.iter().map(|d| d.pending).sum();
        let config = self.config.clone().unwrap_or_else(|| {
            json!({
                "maximumPercent": 200,
                "minimumHealthyPercent": 100,
                "deploymentCircuitBreaker": { "enable": false, "rollback": false },
            })
        });
        if let Some(primary) = self.deployments.first() {
            fields.insert("desiredCount".into(), primary.desired.into());
        }
        fields.insert("taskDefinition".into(), self.task_definition().into());
        fields.insert("deployments".into(), deployments.into());
        fields.insert("runningCount".into(), running.into());
        fields.insert("pendingCount".into(), pending.into());
        fields.insert("deploymentConfiguration".into(), config);
        fields.insert("events".into(), self.events.clone().into());
    }
}

//! A scripted CodeDeploy double for ECS blue/green, in front of a moto server.
//!
//! moto's CodeDeploy keeps applications and deployment groups but never moves a deployment
//! past `Created` and has no `StopDeployment` or `ContinueDeployment`. This double speaks the
//! CodeDeploy JSON protocol (`X-Amz-Target: CodeDeploy_20141006.<Operation>`, reached through
//! `AWS_ENDPOINT_URL_CODEDEPLOY`), passes applications and deployment groups through to moto,
//! and plays the deployments itself, as the CodeDeploy User Guide describes an Amazon ECS
//! blue/green deployment ("What happens during an Amazon ECS deployment", "AppSpec 'hooks'
//! section for an Amazon ECS deployment", "Redeploy and roll back a deployment"):
//!
//! - *CreateDeployment* reads the AppSpec (`revision.appSpecContent.content`, JSON) and checks
//!   it against moto's ECS: the task definition must exist, and the load balancer's container
//!   name and port must be a container of it with that port mapping; otherwise
//!   `InvalidRevisionException`, and no deployment. A deployment of the group already in
//!   progress is refused with `DeploymentLimitExceededException`, naming it.
//! - *GetDeployment*: each call is one poll; the deployment moves one lifecycle event per poll
//!   through `BeforeInstall`, `Install`, `AfterInstall`, `AllowTestTraffic`,
//!   `AfterAllowTestTraffic`, `BeforeAllowTraffic`, `AllowTraffic`, `AfterAllowTraffic`
//!   (`Created`, then `InProgress`). When the group's `deploymentReadyOption.actionOnTimeout` is
//!   `STOP_DEPLOYMENT`, it stops before `BeforeAllowTraffic` with status `Ready` until
//!   *ContinueDeployment*. After `AfterAllowTraffic` it is `Succeeded`, and the service in moto
//!   is moved to the new task definition (`UpdateService`), as the replacement task set now
//!   serves production.
//! - [`Lifecycle::FailHook`] fails the deployment at that event (`Failed`,
//!   `HOOK_EXECUTION_FAILURE`); with the group's `autoRollbackConfiguration` on for
//!   `DEPLOYMENT_FAILURE`, a rollback deployment starts (`creator` `autoRollback`, linked both
//!   ways by `rollbackInfo`) and succeeds after [`ROLLBACK_POLLS`] polls of it; the service
//!   stays on its task definition. [`Lifecycle::Stuck`] stays `InProgress` at `Install`.
//! - *StopDeployment* of a deployment not yet done: `Stopped`, and with `autoRollbackEnabled`
//!   a rollback deployment as above; answer `Pending`. Of a done one:
//!   `DeploymentAlreadyCompletedException`.
//! - *ListDeploymentTargets* / *BatchGetDeploymentTargets*: one `ECSTarget`
//!   (`<cluster>:<service>`) with the lifecycle events' statuses and the two task sets
//!   (`BLUE` and `GREEN`) with their traffic weights.
//! - *ListDeployments* answers from the double's deployments (filter by group and status).
//!
//! [`CodeDeployDouble::requests`] lists every operation received with its body.

use std::collections::BTreeMap;
use std::io::BufReader;
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::{Value, json};

use crate::ecs_double::http::{self, Message};

/// The `X-Amz-Target` prefix of every CodeDeploy operation.
const TARGET_PREFIX: &str = "CodeDeploy_20141006.";

/// Polls of a rollback deployment until it succeeds.
pub const ROLLBACK_POLLS: u32 = 2;

/// The lifecycle events of an ECS blue/green deployment, in order.
pub const EVENTS: [&str; 8] = [
    "BeforeInstall",
    "Install",
    "AfterInstall",
    "AllowTestTraffic",
    "AfterAllowTestTraffic",
    "BeforeAllowTraffic",
    "AllowTraffic",
    "AfterAllowTraffic",
];

/// The index of `BeforeAllowTraffic`, where a group that waits stops (`Ready`).
const READY_AT: usize = 5;

/// How the next deployment of a group goes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Lifecycle {
    /// Every event succeeds.
    #[default]
    Succeed,
    /// The hook of this event fails.
    FailHook(&'static str),
    /// Stays at `Install` for ever.
    Stuck,
}

/// One request the double received.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// The operation, e.g. `CreateDeployment`.
    pub operation: String,
    /// The JSON body.
    pub body: Value,
}

#[derive(Debug, Clone)]
struct Deployment {
    id: String,
    application: String,
    group: String,
    creator: &'static str,
    status: &'static str,
    /// Events done (index into [`EVENTS`]).
    done: usize,
    failed_at: Option<usize>,
    lifecycle: Lifecycle,
    wait_ready: bool,
    /// The group's `autoRollbackConfiguration` rolls back on `DEPLOYMENT_FAILURE`.
    rollback_on_failure: bool,
    continued: bool,
    polls: u32,
    task_definition: String,
    cluster: String,
    service: String,
    rollback_of: Option<String>,
    rolled_back_by: Option<String>,
    error: Option<(String, String)>,
    created: f64,
    /// The `revision` CreateDeployment sent (GetDeployment shows it).
    revision: Value,
    /// The `description` CreateDeployment sent (GetDeployment shows it).
    description: Option<String>,
}

#[derive(Debug, Default)]
struct State {
    requests: Vec<Request>,
    scripts: BTreeMap<String, Lifecycle>,
    deployments: Vec<Deployment>,
    next: u64,
}

#[derive(Debug)]
struct Shared {
    moto: String,
    region: String,
    state: Mutex<State>,
}

/// The double; it serves until the process ends.
#[derive(Debug)]
pub struct CodeDeployDouble {
    /// `http://127.0.0.1:<port>`, the CodeDeploy endpoint to use.
    pub url: String,
    shared: Arc<Shared>,
}

impl CodeDeployDouble {
    /// Starts a double in front of moto at `moto_url`, for deployments in `region`.
    pub fn start(moto_url: &str, region: &str) -> CodeDeployDouble {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let url = format!("http://{}", listener.local_addr().expect("local address"));
        let shared = Arc::new(Shared {
            moto: moto_url
                .trim_start_matches("http://")
                .trim_end_matches('/')
                .to_owned(),
            region: region.to_owned(),
            state: Mutex::new(State::default()),
        });
        let serving = shared.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let shared = serving.clone();
                std::thread::spawn(move || shared.serve(client));
            }
        });
        CodeDeployDouble { url, shared }
    }

    /// The next deployment of `application`/`group` follows `lifecycle` (once).
    pub fn script(&self, application: &str, group: &str, lifecycle: Lifecycle) {
        self.shared
            .state()
            .scripts
            .insert(format!("{application}/{group}"), lifecycle);
    }

    /// Every request received, in order.
    pub fn requests(&self) -> Vec<Request> {
        self.shared.state().requests.clone()
    }

    /// The requests of `operation`.
    pub fn requests_of(&self, operation: &str) -> Vec<Request> {
        self.requests()
            .into_iter()
            .filter(|r| r.operation == operation)
            .collect()
    }
}

fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn error(kind: &str, message: &str) -> Message {
    Message::error(400, kind, message)
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn serve(&self, client: TcpStream) {
        let _ = client.set_read_timeout(Some(Duration::from_secs(120)));
        let Ok(reader) = client.try_clone() else {
            return;
        };
        let (mut reader, mut writer) = (BufReader::new(reader), client);
        while let Some(request) = http::read_message(&mut reader, false) {
            let keep = request.keep_alive();
            let answer = self.handle(&request);
            if http::write_message(&mut writer, &answer, keep).is_err() || !keep {
                return;
            }
        }
    }

    fn handle(&self, request: &Message) -> Message {
        let target = request.header("x-amz-target").unwrap_or_default();
        let operation = target
            .strip_prefix(TARGET_PREFIX)
            .unwrap_or(target)
            .to_owned();
        let body = request.json();
        self.state().requests.push(Request {
            operation: operation.clone(),
            body: body.clone(),
        });
        match operation.as_str() {
            "CreateDeployment" => self.create(request, &body),
            "GetDeployment" => self.get(&body),
            "ListDeployments" => self.list(&body),
            "StopDeployment" => self.stop(request, &body),
            "ContinueDeployment" => self.resume(&body),
            "ListDeploymentTargets" => self.targets(&body),
            "BatchGetDeploymentTargets" => self.batch_targets(&body),
            _ => http::exchange(&self.moto, request).unwrap_or_else(|err| {
                Message::error(500, "ServerException", &format!("moto: {err}"))
            }),
        }
    }

    /// An ECS call to moto.
    fn ecs(&self, operation: &str, body: &Value) -> Option<Value> {
        let request = Message::ecs_request(&self.moto, &self.region, operation, body);
        let answer = http::exchange(&self.moto, &request).ok()?;
        (answer.status() == 200).then(|| answer.json())
    }

    /// The group as moto keeps it.
    fn group(&self, request: &Message, application: &str, group: &str) -> Option<Value> {
        let body = json!({ "applicationName": application, "deploymentGroupName": group });
        let target = format!("{TARGET_PREFIX}GetDeploymentGroup");
        let answer = http::exchange(&self.moto, &request.with_target(&target, &body)).ok()?;
        (answer.status() == 200).then(|| answer.json()["deploymentGroupInfo"].clone())
    }

    fn create(&self, request: &Message, body: &Value) -> Message {
        let application = body["applicationName"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let group_name = body["deploymentGroupName"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let Some(group) = self.group(request, &application, &group_name) else {
            return error(
                "DeploymentGroupDoesNotExistException",
                &format!("No Deployment Group found for name: {group_name}"),
            );
        };
        let appspec = match self.check_appspec(body) {
            Ok(appspec) => appspec,
            Err(answer) => return answer,
        };
        let (cluster, service) = group_service(&group);
        let wait_ready = group["blueGreenDeploymentConfiguration"]["deploymentReadyOption"]["actionOnTimeout"]
            == "STOP_DEPLOYMENT";
        let auto = &group["autoRollbackConfiguration"];
        let rollback_on_failure = auto["enabled"].as_bool().unwrap_or(false)
            && auto["events"]
                .as_array()
                .is_some_and(|e| e.iter().any(|e| e == "DEPLOYMENT_FAILURE"));
        let mut state = self.state();
        let busy = state.deployments.iter().find(|d| {
            d.application == application
                && d.group == group_name
                && ["Created", "InProgress", "Ready"].contains(&d.status)
        });
        if let Some(busy) = busy {
            return error(
                "DeploymentLimitExceededException",
                &format!(
                    "The Deployment Group '{group_name}' already has an active Deployment '{}'",
                    busy.id
                ),
            );
        }
        let key = format!("{application}/{group_name}");
        let lifecycle = state.scripts.remove(&key).unwrap_or_default();
        state.next += 1;
        let id = format!("d-DOUBLE{:05}", state.next);
        state.deployments.push(Deployment {
            id: id.clone(),
            application,
            group: group_name,
            creator: "user",
            status: "Created",
            done: 0,
            failed_at: None,
            lifecycle,
            wait_ready,
            rollback_on_failure,
            continued: false,
            polls: 0,
            task_definition: appspec,
            cluster,
            service,
            rollback_of: None,
            rolled_back_by: None,
            error: None,
            created: now(),
            revision: body["revision"].clone(),
            description: body["description"].as_str().map(str::to_owned),
        });
        Message::ok(&json!({ "deploymentId": id }))
    }

    /// The task definition of the AppSpec, once its container and port are checked.
    fn check_appspec(&self, body: &Value) -> Result<String, Message> {
        let invalid = |m: &str| error("InvalidRevisionException", m);
        let content = body["revision"]["appSpecContent"]["content"]
            .as_str()
            .ok_or_else(|| invalid("The revision has no appSpecContent."))?;
        let appspec: Value = serde_json::from_str(content)
            .map_err(|e| invalid(&format!("The AppSpec is not valid JSON: {e}")))?;
        let properties = &appspec["Resources"][0]["TargetService"]["Properties"];
        let task_definition = properties["TaskDefinition"]
            .as_str()
            .ok_or_else(|| invalid("The AppSpec names no TaskDefinition."))?;
        let described = self
            .ecs(
                "DescribeTaskDefinition",
                &json!({ "taskDefinition": task_definition }),
            )
            .ok_or_else(|| {
                invalid(&format!(
                    "The task definition {task_definition} does not exist."
                ))
            })?;
        let info = &properties["LoadBalancerInfo"];
        let (name, port) = (
            info["ContainerName"].as_str(),
            info["ContainerPort"].as_i64(),
        );
        let containers = described["taskDefinition"]["containerDefinitions"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let container = containers
            .iter()
            .find(|c| name.is_some() && c["name"].as_str() == name)
            .ok_or_else(|| {
                invalid(&format!(
                    "The container {name:?} is not in {task_definition}."
                ))
            })?;
        let mapped = container["portMappings"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|m| m["containerPort"].as_i64() == port);
        if !mapped {
            return Err(invalid(&format!(
                "The container {name:?} of {task_definition} has no port mapping for {port:?}."
            )));
        }
        Ok(task_definition.to_owned())
    }

    fn get(&self, body: &Value) -> Message {
        let id = body["deploymentId"].as_str().unwrap_or_default();
        let mut state = self.state();
        let Some(at) = state.deployments.iter().position(|d| d.id == id) else {
            return error(
                "DeploymentDoesNotExistException",
                &format!("Deployment {id} does not exist"),
            );
        };
        let succeeded = step(&mut state.deployments[at]);
        let failed_rollback = rollback_needed(&state.deployments[at]);
        let deployment = state.deployments[at].clone();
        if failed_rollback {
            start_rollback(
                &mut state,
                at,
                "Automatic rollback after a lifecycle hook failed",
            );
        }
        let info = info(&state.deployments[at]);
        drop(state);
        if succeeded && deployment.rollback_of.is_none() {
            let update = json!({
                "cluster": deployment.cluster,
                "service": deployment.service,
                "taskDefinition": deployment.task_definition,
            });
            self.ecs("UpdateService", &update);
        }
        Message::ok(&json!({ "deploymentInfo": info }))
    }

    fn list(&self, body: &Value) -> Message {
        let statuses: Vec<&str> = body["includeOnlyStatuses"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let state = self.state();
        let ids: Vec<&str> = state
            .deployments
            .iter()
            .filter(|d| {
                body["applicationName"]
                    .as_str()
                    .is_none_or(|a| a == d.application)
            })
            .filter(|d| {
                body["deploymentGroupName"]
                    .as_str()
                    .is_none_or(|g| g == d.group)
            })
            .filter(|d| statuses.is_empty() || statuses.contains(&d.status))
            .map(|d| d.id.as_str())
            .collect();
        Message::ok(&json!({ "deployments": ids }))
    }

    fn stop(&self, _request: &Message, body: &Value) -> Message {
        let id = body["deploymentId"].as_str().unwrap_or_default();
        let rollback = body["autoRollbackEnabled"].as_bool().unwrap_or(false);
        let mut state = self.state();
        let Some(at) = state.deployments.iter().position(|d| d.id == id) else {
            return error(
                "DeploymentDoesNotExistException",
                &format!("Deployment {id} does not exist"),
            );
        };
        if ["Succeeded", "Failed", "Stopped"].contains(&state.deployments[at].status) {
            return error(
                "DeploymentAlreadyCompletedException",
                &format!("Deployment {id} has already completed"),
            );
        }
        state.deployments[at].status = "Stopped";
        state.deployments[at].error = Some((
            "DEPLOYMENT_STOPPED".into(),
            "The deployment was stopped by a user".into(),
        ));
        if rollback {
            start_rollback(&mut state, at, "Rollback after the deployment was stopped");
        }
        Message::ok(&json!({ "status": "Pending", "statusMessage": "Stopping the deployment" }))
    }

    fn resume(&self, body: &Value) -> Message {
        let id = body["deploymentId"].as_str().unwrap_or_default();
        let mut state = self.state();
        match state.deployments.iter_mut().find(|d| d.id == id) {
            Some(d) if d.status == "Ready" => {
                d.continued = true;
                d.status = "InProgress";
                Message::ok(&json!({}))
            }
            Some(_) => error(
                "DeploymentIsNotInReadyStateException",
                &format!("Deployment {id} is not in a ready state"),
            ),
            None => error(
                "DeploymentDoesNotExistException",
                &format!("Deployment {id} does not exist"),
            ),
        }
    }

    fn targets(&self, body: &Value) -> Message {
        let id = body["deploymentId"].as_str().unwrap_or_default();
        let state = self.state();
        match state.deployments.iter().find(|d| d.id == id) {
            Some(d) => {
                Message::ok(&json!({ "targetIds": [format!("{}:{}", d.cluster, d.service)] }))
            }
            None => error(
                "DeploymentDoesNotExistException",
                &format!("Deployment {id} does not exist"),
            ),
        }
    }

    fn batch_targets(&self, body: &Value) -> Message {
        let id = body["deploymentId"].as_str().unwrap_or_default();
        let state = self.state();
        let Some(d) = state.deployments.iter().find(|d| d.id == id) else {
            return error(
                "DeploymentDoesNotExistException",
                &format!("Deployment {id} does not exist"),
            );
        };
        Message::ok(&json!({ "deploymentTargets": [ecs_target(d)] }))
    }
}

/// The cluster and service of a group's `ecsServices`.
fn group_service(group: &Value) -> (String, String) {
    let service = &group["ecsServices"][0];
    let text = |key: &str| service[key].as_str().unwrap_or_default().to_owned();
    (text("clusterName"), text("serviceName"))
}

/// One poll of `d`: moves it one event on; whether it succeeded now.
fn step(d: &mut Deployment) -> bool {
    d.polls += 1;
    if let Some(_of) = &d.rollback_of {
        if d.status == "InProgress" && d.polls >= ROLLBACK_POLLS {
            d.status = "Succeeded";
            return true;
        }
        return false;
    }
    match d.status {
        "Created" => d.status = "InProgress",
        "InProgress" => {
            let event = EVENTS[d.done];
            if d.lifecycle == Lifecycle::FailHook(event) {
                d.status = "Failed";
                d.failed_at = Some(d.done);
                d.error = Some((
                    "HOOK_EXECUTION_FAILURE".into(),
                    format!("The {event} lifecycle hook returned Failed"),
                ));
                return false;
            }
            if d.lifecycle == Lifecycle::Stuck && event == "Install" {
                return false;
            }
            if d.done == READY_AT && d.wait_ready && !d.continued {
                d.status = "Ready";
                return false;
            }
            d.done += 1;
            if d.done == EVENTS.len() {
                d.status = "Succeeded";
                return true;
            }
        }
        _ => {}
    }
    false
}

/// A hook failure just failed `d` and its group rolls back on failure.
fn rollback_needed(d: &Deployment) -> bool {
    d.rollback_on_failure
        && d.status == "Failed"
        && d.failed_at.is_some()
        && d.rolled_back_by.is_none()
}

/// Starts the rollback deployment of `state.deployments[at]`.
fn start_rollback(state: &mut State, at: usize, message: &str) {
    state.next += 1;
    let id = format!("d-DOUBLE{:05}", state.next);
    let original = state.deployments[at].clone();
    state.deployments[at].rolled_back_by = Some(id.clone());
    state.deployments[at]
        .error
        .get_or_insert(("DEPLOYMENT_STOPPED".into(), message.to_owned()));
    state.deployments.push(Deployment {
        id,
        creator: "autoRollback",
        status: "InProgress",
        done: 0,
        failed_at: None,
        lifecycle: Lifecycle::Succeed,
        continued: true,
        polls: 0,
        rollback_of: Some(original.id.clone()),
        rolled_back_by: None,
        error: None,
        created: now(),
        revision: Value::Null,
        description: None,
        ..original
    });
}

fn info(d: &Deployment) -> Value {
    let mut info = json!({
        "applicationName": d.application,
        "deploymentGroupName": d.group,
        "deploymentId": d.id,
        "status": d.status,
        "creator": d.creator,
        "computePlatform": "ECS",
        "createTime": d.created,
        "deploymentOverview": overview(d),
    });
    if !d.revision.is_null() {
        info["revision"] = d.revision.clone();
    }
    if let Some(description) = &d.description {
        info["description"] = json!(description);
    }
    if let Some((code, message)) = &d.error {
        info["errorInformation"] = json!({ "code": code, "message": message });
    }
    let mut rollback = serde_json::Map::new();
    if let Some(by) = &d.rolled_back_by {
        rollback.insert("rollbackDeploymentId".into(), json!(by));
    }
    if let Some(of) = &d.rollback_of {
        rollback.insert("rollbackTriggeringDeploymentId".into(), json!(of));
    }
    if !rollback.is_empty() {
        info["rollbackInfo"] = Value::Object(rollback);
    }
    if ["Succeeded", "Failed", "Stopped"].contains(&d.status) {
        info["completeTime"] = json!(now());
    }
    info
}

fn overview(d: &Deployment) -> Value {
    let (succeeded, failed, ready) = match d.status {
        "Succeeded" => (1, 0, 0),
        "Failed" | "Stopped" => (0, 1, 0),
        "Ready" => (0, 0, 1),
        _ => (0, 0, 0),
    };
    let in_progress = i32::from(d.status == "InProgress");
    json!({ "Pending": i32::from(d.status == "Created"), "InProgress": in_progress,
            "Succeeded": succeeded, "Failed": failed, "Skipped": 0, "Ready": ready })
}

fn ecs_target(d: &Deployment) -> Value {
    let events: Vec<Value> = EVENTS
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let status = if d.failed_at == Some(i) {
                "Failed"
            } else if i < d.done || d.status == "Succeeded" {
                "Succeeded"
            } else if i == d.done && d.status == "InProgress" {
                "InProgress"
            } else {
                "Pending"
            };
            json!({ "lifecycleEventName": name, "status": status })
        })
        .collect();
    let shifted = d.status == "Succeeded" || d.done > 6;
    let (blue, green) = if shifted { (0.0, 100.0) } else { (100.0, 0.0) };
    json!({
        "deploymentTargetType": "ECSTarget",
        "ecsTarget": {
            "deploymentId": d.id,
            "targetId": format!("{}:{}", d.cluster, d.service),
            "status": d.status,
            "lifecycleEvents": events,
            "taskSetsInfo": [
                { "identifer": "ecs-svc/blue", "taskSetLabel": "Blue", "trafficWeight": blue, "status": "PRIMARY" },
                { "identifer": "ecs-svc/green", "taskSetLabel": "Green", "trafficWeight": green, "status": "ACTIVE" },
            ],
        },
    })
}

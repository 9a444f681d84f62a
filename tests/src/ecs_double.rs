//! A scripted ECS double in front of moto, for rollouts moto does not play.
//!
//! moto 5.2 keeps ECS resources but no rollout lifecycle: UpdateService swaps the task
//! definition without a new deployment, `deploymentConfiguration` is dropped, and RunTask tasks
//! never stop with an exit code. [`EcsDouble`] is a loopback HTTP server speaking the ECS wire
//! protocol (awsJson1_1: `POST /`, `X-Amz-Target: AmazonEC2ContainerServiceV20141113.<Op>`, JSON
//! bodies, errors `{"__type", "message"}`). Point a client at [`EcsDouble::url`]
//! (`AWS_ENDPOINT_URL_ECS`, or `endpoints = { ecs = "..." }` in deploy.toml).
//!
//! **Passed through unchanged:** every operation not named below (CreateCluster,
//! RegisterTaskDefinition, DescribeTaskDefinition, ListTasks, ...), and every error moto
//! answers, status and body as moto sent them. The double only adds to moto's successful answers.
//!
//! **Scripted** (moto is called first, so it holds every resource and ARN):
//! - *UpdateService* with a new `taskDefinition` (or `forceNewDeployment`) starts a deployment,
//!   as the ECS rolling update does (Developer Guide, "Deploy Amazon ECS services by replacing
//!   tasks"; API `Deployment`): the `PRIMARY` deployment becomes `ACTIVE`, a new `PRIMARY` one
//!   (`ecs-svc/<digits>`, `rolloutState` `IN_PROGRESS`, `runningCount` 0, `pendingCount` =
//!   `desiredCount`, `failedTasks` 0) is added. The `deploymentConfiguration` sent (also by
//!   CreateService) is kept and shown; without one ECS's default is shown (200 %, 100 %, circuit
//!   breaker off). The next [`Script`] set for the service drives the deployment; without one,
//!   [`Script::Complete`] after one poll. A service the double has not seen deploy is shown in
//!   a steady state: one `PRIMARY`, `COMPLETED` deployment with every desired task running.
//! - *DescribeServices*: each call naming a service is one poll; its scripted deployment moves
//!   one step and the double's `deployments`, `deploymentConfiguration`, `taskDefinition`
//!   (the `PRIMARY` deployment's), counts and `events` (newest first, ECS's wording) replace
//!   moto's. [`Script::Complete`] follows "the deployment transitions to COMPLETED when the
//!   service reaches a steady state", old deployments then gone. [`Script::FailAndRollBack`]
//!   follows the deployment circuit breaker (API `DeploymentCircuitBreaker`): `failedTasks`
//!   rises one per poll; at `after_polls`, with the breaker on and `rollback` true, the
//!   deployment turns `FAILED` ("ECS deployment circuit breaker: tasks failed to start.") and
//!   ECS's own rollback starts: a new `PRIMARY` deployment of the previous task definition that
//!   completes [`ROLLBACK_POLLS`] polls later; moto gets an UpdateService back to the previous
//!   task definition so reads through moto agree. Breaker on without rollback: `FAILED`, nothing
//!   more. Breaker off: the deployment keeps failing, `IN_PROGRESS` for ever, as ECS keeps
//!   launching tasks. [`Script::Stuck`]: `IN_PROGRESS` for ever with tasks pending.
//! - *RunTask* / *DescribeTasks* / *StopTask* follow the task lifecycle (Developer Guide, "Amazon
//!   ECS task lifecycle"; API `Task`, `Container`): `lastStatus` `PROVISIONING` in RunTask's
//!   answer, `PENDING`, `RUNNING`, then `STOPPED` with `stopCode` `EssentialContainerExited`,
//!   `stoppedReason` and `containers[].exitCode` from the family's [`TaskScript`] (default:
//!   exit 0 at the first poll). The request's `overrides` are kept. StopTask stops the task at
//!   once with `stopCode` `UserInitiated` and no exit code. (moto places non-Fargate tasks only
//!   on registered container instances: run tasks with `launchType` `FARGATE`.) Tasks in
//!   these answers get `cpu` and `memory` as the strings the API defines (moto sends numbers,
//!   which the SDKs refuse).
//!
//! [`EcsDouble::requests`] lists every operation received, in order. Each connection is served by
//! a thread that ends with the connection; the listener's thread ends with the test process.

pub(crate) mod http;
mod service_deployments;
mod services;
mod tasks;

use std::collections::HashMap;
use std::io::BufReader;
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::Value;

use http::Message;

/// DescribeServices calls the circuit breaker's rollback deployment takes to complete.
pub const ROLLBACK_POLLS: u32 = 2;

/// How the next deployment of a service goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Script {
    /// Tasks start over the polls; at poll `after_polls` the deployment is `COMPLETED`.
    Complete {
        /// DescribeServices calls until the steady state.
        after_polls: u32,
    },
    /// Tasks fail to start; at poll `after_polls` the circuit breaker acts (if it is on).
    FailAndRollBack {
        /// DescribeServices calls until the circuit breaker trips.
        after_polls: u32,
    },
    /// `IN_PROGRESS` for ever, tasks pending.
    Stuck,
}

impl Default for Script {
    fn default() -> Script {
        Script::Complete { after_polls: 1 }
    }
}

/// How the tasks of one task definition family run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskScript {
    /// The exit code of every container.
    pub exit_code: i32,
    /// DescribeTasks calls until the task is `STOPPED` (at least 1).
    pub after_polls: u32,
    /// The task's `stoppedReason`.
    pub reason: String,
}

impl Default for TaskScript {
    fn default() -> TaskScript {
        TaskScript {
            exit_code: 0,
            after_polls: 1,
            reason: "Essential container in task exited".into(),
        }
    }
}

/// One request the double received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The ECS operation, e.g. `UpdateService`.
    pub operation: String,
    /// `cluster` of the request, as sent.
    pub cluster: Option<String>,
    /// `service`, `serviceName` or `services` of the request, as sent.
    pub services: Vec<String>,
    /// `taskDefinition` of the request, as sent.
    pub task_definition: Option<String>,
    /// The whole JSON body, as sent.
    pub body: Value,
}

impl Request {
    fn of(operation: &str, body: &Value) -> Request {
        let text = |key: &str| body[key].as_str().map(str::to_owned);
        let mut services: Vec<String> = ["service", "serviceName"]
            .iter()
            .filter_map(|key| text(key))
            .collect();
        if let Some(list) = body["services"].as_array() {
            services.extend(list.iter().filter_map(|s| s.as_str().map(str::to_owned)));
        }
        Request {
            operation: operation.to_owned(),
            cluster: text("cluster"),
            services,
            task_definition: text("taskDefinition"),
            body: body.clone(),
        }
    }
}

/// Random ids: deployments, tasks, events.
#[derive(Debug)]
struct Ids(AtomicU64);

impl Ids {
    fn new() -> Ids {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        Ids(AtomicU64::new(nanos as u64 ^ u64::from(std::process::id())))
    }

    /// splitmix64.
    fn next(&self) -> u64 {
        let mut z = self
            .0
            .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed)
            .wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn deployment(&self) -> String {
        format!("ecs-svc/{:019}", self.next() % 10_000_000_000_000_000_000)
    }

    fn task(&self) -> String {
        format!("{:016x}{:016x}", self.next(), self.next())
    }

    fn uuid(&self) -> String {
        let (a, b) = (self.next(), self.next());
        format!(
            "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xffff,
            b >> 48,
            b & 0xffff_ffff_ffff
        )
    }
}

/// Seconds since the epoch, as ECS's JSON timestamps.
fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// `(cluster name, service name)` from names or ARNs (`.../cluster/name`, `.../service/c/name`).
type Key = (String, String);

fn key(cluster: Option<&str>, service: &str) -> Key {
    let last = |s: &str| s.rsplit('/').next().unwrap_or(s).to_owned();
    (last(cluster.unwrap_or("default")), last(service))
}

#[derive(Debug, Default)]
struct State {
    services: HashMap<Key, services::Service>,
    service_scripts: HashMap<Key, Script>,
    task_scripts: HashMap<String, TaskScript>,
    tasks: HashMap<String, tasks::Task>,
    service_deployments: Vec<service_deployments::ServiceDeployment>,
    requests: Vec<Request>,
}

#[derive(Debug)]
struct Shared {
    /// moto's `host:port`.
    moto: String,
    /// The keys the double's own calls to moto are signed with (an IAM-enforcing moto), as
    /// ECS acts with its own service role and not the caller's policy; `None`: the caller's
    /// headers are kept.
    keys: Option<(String, String)>,
    state: Mutex<State>,
    ids: Ids,
}

/// The double; it serves until the test process ends.
#[derive(Debug)]
pub struct EcsDouble {
    /// `http://127.0.0.1:<port>`, the ECS endpoint to use.
    pub url: String,
    shared: Arc<Shared>,
}

impl EcsDouble {
    /// Starts a double in front of moto at `moto_url` (`http://host:port`).
    pub fn start(moto_url: &str) -> EcsDouble {
        EcsDouble::start_with(moto_url, None)
    }

    /// Starts a double in front of an IAM-enforcing moto: the caller's requests reach moto as
    /// they were signed (moto judges them by the caller's policy), the double's own calls are
    /// signed with `keys` (access key id, secret) of an administrator.
    pub fn start_signed(moto_url: &str, keys: (String, String)) -> EcsDouble {
        EcsDouble::start_with(moto_url, Some(keys))
    }

    fn start_with(moto_url: &str, keys: Option<(String, String)>) -> EcsDouble {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let url = format!("http://{}", listener.local_addr().expect("local address"));
        let moto = moto_url.trim_start_matches("http://").trim_end_matches('/');
        let shared = Arc::new(Shared {
            moto: moto.to_owned(),
            keys,
            state: Mutex::new(State::default()),
            ids: Ids::new(),
        });
        let serving = shared.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let shared = serving.clone();
                std::thread::spawn(move || shared.serve(client));
            }
        });
        EcsDouble { url, shared }
    }

    /// The next deployment UpdateService starts for `service` of `cluster` follows `script`
    /// (once; later deployments complete at the first poll again).
    pub fn script_service(&self, cluster: &str, service: &str, script: Script) {
        let mut state = self.shared.state();
        state
            .service_scripts
            .insert(key(Some(cluster), service), script);
    }

    /// Every task RunTask starts from now on of task definition `family` follows `script`.
    pub fn script_task(&self, family: &str, script: TaskScript) {
        let mut state = self.shared.state();
        state.task_scripts.insert(family.to_owned(), script);
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<Request> {
        self.shared.state().requests.clone()
    }

    /// The requests of one operation received so far, in order.
    pub fn requests_of(&self, operation: &str) -> Vec<Request> {
        let mut requests = self.requests();
        requests.retain(|r| r.operation == operation);
        requests
    }
}

impl Shared {
    /// The state; a panic while it was held does not poison the double for later requests.
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
        let operation = request.operation().to_owned();
        let body = request.json();
        self.state().requests.push(Request::of(&operation, &body));
        match operation.as_str() {
            "CreateService" => self.create_service(request, &body),
            "UpdateService" if service_deployments::is_blue_green(&body) => {
                self.update_service_blue_green(request, &body)
            }
            "UpdateService" => self.update_service(request, &body),
            "ListServiceDeployments" => self.list_service_deployments(&body),
            "DescribeServiceDeployments" => self.describe_service_deployments(request, &body),
            "StopServiceDeployment" => self.stop_service_deployment(&body),
            "DescribeServices" => self.describe_services(request),
            "RunTask" => self.run_task(request, &body),
            "DescribeTasks" => self.describe_tasks(request),
            "StopTask" => self.stop_task(request, &body),
            _ => self.forward(request),
        }
    }

    /// moto's answer to `request`, or a `ServerException` when moto cannot be reached.
    fn forward(&self, request: &Message) -> Message {
        http::exchange(&self.moto, request)
            .unwrap_or_else(|err| Message::error(500, "ServerException", &format!("moto: {err}")))
    }

    /// moto's successful answer as JSON, or the answer to pass back as it is.
    fn forward_json(&self, request: &Message) -> Result<(Message, Value), Message> {
        let answer = self.forward(request);
        let json = answer.json();
        if answer.status() != 200 || !json.is_object() {
            return Err(answer);
        }
        Ok((answer, json))
    }

    /// Calls `operation` on moto with the headers (and region) of `request`.
    fn call(&self, request: &Message, operation: &str, body: &Value) -> Option<Value> {
        let mut own = request.with(operation, body);
        if let Some(keys) = &self.keys {
            own = own.signed("ecs", keys);
        }
        let (_, json) = self.forward_json(&own).ok()?;
        Some(json)
    }

    /// The ARN of a task definition named by family, `family:revision` or ARN.
    fn task_definition_arn(&self, request: &Message, name: &str) -> String {
        if name.starts_with("arn:") {
            return name.to_owned();
        }
        let body = serde_json::json!({ "taskDefinition": name });
        self.call(request, "DescribeTaskDefinition", &body)
            .and_then(|v| {
                v["taskDefinition"]["taskDefinitionArn"]
                    .as_str()
                    .map(str::to_owned)
            })
            .unwrap_or_else(|| name.to_owned())
    }

    fn create_service(&self, request: &Message, body: &Value) -> Message {
        let (answer, mut json) = match self.forward_json(request) {
            Ok(ok) => ok,
            Err(answer) => return answer,
        };
        let described = &mut json["service"];
        let key = key(
            body["cluster"].as_str(),
            described["serviceName"].as_str().unwrap_or(""),
        );
        let mut service = services::Service::steady(described, &self.ids);
        service.config = body.get("deploymentConfiguration").cloned();
        service.overlay(described);
        self.state().services.insert(key, service);
        answer.with_json(&json)
    }

    fn update_service(&self, request: &Message, body: &Value) -> Message {
        let cluster = body["cluster"].as_str();
        let key = key(cluster, body["service"].as_str().unwrap_or_default());
        let known = self.state().services.contains_key(&key);
        if !known {
            let mut describe = serde_json::json!({ "services": [key.1] });
            if let Some(cluster) = cluster {
                describe["cluster"] = cluster.into();
            }
            let seed = self.call(request, "DescribeServices", &describe);
            if let Some(described) = seed.as_ref().map(|v| &v["services"][0])
                && described.is_object()
            {
                let service = services::Service::steady(described, &self.ids);
                self.state().services.entry(key.clone()).or_insert(service);
            }
        }
        let (answer, mut json) = match self.forward_json(request) {
            Ok(ok) => ok,
            Err(answer) => return answer,
        };
        let target = body["taskDefinition"]
            .as_str()
            .map(|name| self.task_definition_arn(request, name));
        let force = body["forceNewDeployment"].as_bool().unwrap_or(false);
        let described = &mut json["service"];
        let desired = described["desiredCount"].as_i64().unwrap_or(0);
        let mut guard = self.state();
        let state = &mut *guard;
        let service = state
            .services
            .entry(key.clone())
            .or_insert_with(|| services::Service::steady(described, &self.ids));
        if let Some(config) = body.get("deploymentConfiguration") {
            service.config = Some(config.clone());
        }
        let current = service.task_definition().to_owned();
        let target = target.unwrap_or(current.clone());
        if target != current || force {
            let script = state.service_scripts.remove(&key).unwrap_or_default();
            service.start(&target, desired, script, &self.ids);
        } else {
            service.set_desired(desired);
        }
        service.overlay(described);
        drop(guard);
        answer.with_json(&json)
    }

    fn describe_services(&self, request: &Message) -> Message {
        let (answer, mut json) = match self.forward_json(request) {
            Ok(ok) => ok,
            Err(answer) => return answer,
        };
        let mut rolled_back = Vec::new();
        if let Some(described) = json["services"].as_array_mut() {
            let mut state = self.state();
            for described in described.iter_mut() {
                let name = described["serviceName"].as_str().unwrap_or_default();
                let key = key(described["clusterArn"].as_str(), name);
                let service = state
                    .services
                    .entry(key.clone())
                    .or_insert_with(|| services::Service::steady(described, &self.ids));
                // Moved by someone else while nothing of the double's ran (CodeDeploy's own
                // deployment): moto's service is the truth again.
                let in_moto = described["taskDefinition"].as_str().unwrap_or_default();
                if service.settled() && !in_moto.is_empty() && service.task_definition() != in_moto
                {
                    *service = services::Service::steady(described, &self.ids);
                }
                if let Some(back) = service.poll(&self.ids) {
                    rolled_back.push((key, back.task_definition));
                }
                service.overlay(described);
            }
        }
        for ((cluster, service), task_definition) in rolled_back {
            let update = serde_json::json!({
                "cluster": cluster, "service": service, "taskDefinition": task_definition,
            });
            let _ = self.call(request, "UpdateService", &update);
        }
        answer.with_json(&json)
    }

    /// `UpdateService` with ECS's own blue/green: moto moves the service, the double plays
    /// the service deployment.
    fn update_service_blue_green(&self, request: &Message, body: &Value) -> Message {
        let cluster = body["cluster"].as_str();
        let name = body["service"].as_str().unwrap_or_default();
        let mut describe = serde_json::json!({ "services": [name] });
        if let Some(cluster) = cluster {
            describe["cluster"] = cluster.into();
        }
        let before = self.call(request, "DescribeServices", &describe);
        let previous = before
            .as_ref()
            .and_then(|v| v["services"][0]["taskDefinition"].as_str())
            .unwrap_or_default()
            .to_owned();
        let (answer, json) = match self.forward_json(request) {
            Ok(ok) => ok,
            Err(answer) => return answer,
        };
        let service_arn = json["service"]["serviceArn"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let target = json["service"]["taskDefinition"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let id = self.ids.next();
        let arn = format!(
            "{}/{id:016x}",
            service_arn.replacen(":service/", ":service-deployment/", 1)
        );
        let mut state = self.state();
        let script = state
            .service_scripts
            .remove(&key(cluster, name))
            .unwrap_or_default();
        let deployment = service_deployments::ServiceDeployment::new(
            arn,
            service_arn,
            body,
            previous,
            target,
            script,
        );
        state.service_deployments.push(deployment);
        drop(state);
        answer.with_json(&json)
    }

    fn list_service_deployments(&self, body: &Value) -> Message {
        let statuses: Vec<&str> = body["status"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let state = self.state();
        let service = body["service"].as_str().unwrap_or_default();
        let mut found: Vec<Value> = state
            .service_deployments
            .iter()
            .rev()
            .filter(|d| d.service == service || d.service_arn == service)
            .filter(|d| body["cluster"].as_str().is_none_or(|c| c == d.cluster))
            .filter(|d| statuses.is_empty() || statuses.contains(&d.status))
            .map(service_deployments::ServiceDeployment::brief)
            .collect();
        found.truncate(20);
        Message::ok(&serde_json::json!({ "serviceDeployments": found }))
    }

    fn describe_service_deployments(&self, request: &Message, body: &Value) -> Message {
        let arns: Vec<&str> = body["serviceDeploymentArns"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let mut described = Vec::new();
        let mut restores = Vec::new();
        let mut state = self.state();
        for d in state
            .service_deployments
            .iter_mut()
            .filter(|d| arns.contains(&d.arn.as_str()))
        {
            if let service_deployments::Effect::Restore(td) = d.poll() {
                restores.push((d.cluster.clone(), d.service.clone(), td));
            }
            described.push(d.describe());
        }
        drop(state);
        for (cluster, service, td) in restores {
            let update =
                serde_json::json!({ "cluster": cluster, "service": service, "taskDefinition": td });
            let _ = self.call(request, "UpdateService", &update);
        }
        Message::ok(&serde_json::json!({ "serviceDeployments": described, "failures": [] }))
    }

    fn stop_service_deployment(&self, body: &Value) -> Message {
        let arn = body["serviceDeploymentArn"].as_str().unwrap_or_default();
        let mut state = self.state();
        let Some(d) = state.service_deployments.iter_mut().find(|d| d.arn == arn) else {
            return Message::error(
                400,
                "ServiceDeploymentNotFoundException",
                "The service deployment does not exist.",
            );
        };
        if !d.stop() {
            return Message::error(
                400,
                "ConflictException",
                "The service deployment is not in progress.",
            );
        }
        Message::ok(&serde_json::json!({ "serviceDeploymentArn": arn }))
    }

    fn run_task(&self, request: &Message, body: &Value) -> Message {
        let (answer, mut json) = match self.forward_json(request) {
            Ok(ok) => ok,
            Err(answer) => return answer,
        };
        let mut state = self.state();
        for task in json["tasks"].as_array_mut().into_iter().flatten() {
            tasks::conform(task);
            let Some(arn) = task["taskArn"].as_str().map(str::to_owned) else {
                continue;
            };
            let definition = task["taskDefinitionArn"].as_str().unwrap_or_default();
            let script = state
                .task_scripts
                .get(tasks::family(definition))
                .cloned()
                .unwrap_or_default();
            let scripted = tasks::Task::new(script, body.get("overrides").cloned());
            scripted.overlay(task);
            state.tasks.insert(arn, scripted);
        }
        drop(state);
        answer.with_json(&json)
    }

    fn describe_tasks(&self, request: &Message) -> Message {
        let (answer, mut json) = match self.forward_json(request) {
            Ok(ok) => ok,
            Err(answer) => return answer,
        };
        let mut state = self.state();
        for task in json["tasks"].as_array_mut().into_iter().flatten() {
            tasks::conform(task);
            let arn = task["taskArn"].as_str().unwrap_or_default();
            if let Some(scripted) = state.tasks.get_mut(arn) {
                scripted.poll();
                scripted.overlay(task);
            }
        }
        drop(state);
        answer.with_json(&json)
    }

    fn stop_task(&self, request: &Message, body: &Value) -> Message {
        let (answer, mut json) = match self.forward_json(request) {
            Ok(ok) => ok,
            Err(answer) => return answer,
        };
        let task = &mut json["task"];
        tasks::conform(task);
        let arn = task["taskArn"].as_str().unwrap_or_default().to_owned();
        if let Some(scripted) = self.state().tasks.get_mut(&arn) {
            scripted.stop(body["reason"].as_str());
            scripted.overlay(task);
        }
        answer.with_json(&json)
    }
}

/// A new cluster named `<prefix>-<unique>`; its name.
pub async fn cluster(ecs: &aws_sdk_ecs::Client, prefix: &str) -> String {
    let cluster = crate::unique(prefix);
    ecs.create_cluster()
        .cluster_name(&cluster)
        .send()
        .await
        .expect("create cluster");
    cluster
}

/// An ECS client for `endpoint` (the double, or moto itself), independent of deploy's code.
pub async fn client(endpoint: &str) -> aws_sdk_ecs::Client {
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(crate::REGION))
        .endpoint_url(endpoint)
        .credentials_provider(aws_credential_types::Credentials::for_tests())
        .load()
        .await;
    aws_sdk_ecs::Client::new(&config)
}

impl EcsDouble {
    /// The inside of a test `deploy.toml`'s `endpoints` table: ECS through this double, images
    /// to the local registry.
    pub fn endpoints(&self) -> String {
        format!(
            "registry = \"http://{}\", ecs = \"{}\"",
            crate::oci_registry().host,
            self.url
        )
    }
}

/// Creates the Fargate service `service` of `cluster` on the task definition `registered`
/// answered, `desired` tasks; returns that task definition's ARN.
pub async fn service_on(
    ecs: &aws_sdk_ecs::Client,
    cluster: &str,
    service: &str,
    registered: &aws_sdk_ecs::operation::register_task_definition::RegisterTaskDefinitionOutput,
    desired: i32,
) -> String {
    let arn = registered
        .task_definition()
        .and_then(|t| t.task_definition_arn())
        .expect("a task definition ARN")
        .to_owned();
    ecs.create_service()
        .cluster(cluster)
        .service_name(service)
        .task_definition(&arn)
        .desired_count(desired)
        .launch_type(aws_sdk_ecs::types::LaunchType::Fargate)
        .send()
        .await
        .expect("create service");
    arn
}

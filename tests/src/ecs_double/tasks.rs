//! A task started by RunTask, and its lifecycle over DescribeTasks polls.

use serde_json::{Value, json};

use super::TaskScript;

/// What the double knows of one task.
#[derive(Debug, Clone)]
pub(super) struct Task {
    script: TaskScript,
    /// DescribeTasks calls that named it so far.
    polls: u32,
    /// `overrides` of the RunTask request.
    overrides: Option<Value>,
    started_at: f64,
    stopped_at: Option<f64>,
    /// Set by StopTask: the stop code and reason.
    stopped_by_user: Option<String>,
}

/// The family of a task definition named by family, `family:revision` or ARN.
pub(super) fn family(task_definition: &str) -> &str {
    let name = task_definition
        .rsplit_once("task-definition/")
        .map_or(task_definition, |(_, name)| name);
    name.split(':').next().unwrap_or(name)
}

/// moto answers `cpu` and `memory` of a task and its containers as numbers; the ECS API (and
/// so every SDK) has strings there.
pub(super) fn conform(task: &mut Value) {
    fn strings(fields: &mut serde_json::Map<String, Value>) {
        for key in ["cpu", "memory", "memoryReservation"] {
            if let Some(value) = fields.get_mut(key)
                && value.is_number()
            {
                *value = value.to_string().into();
            }
        }
    }
    let Some(fields) = task.as_object_mut() else {
        return;
    };
    strings(fields);
    if let Some(containers) = fields.get_mut("containers").and_then(Value::as_array_mut) {
        containers
            .iter_mut()
            .filter_map(Value::as_object_mut)
            .for_each(strings);
    }
}

impl Task {
    pub fn new(script: TaskScript, overrides: Option<Value>) -> Task {
        Task {
            script,
            polls: 0,
            overrides,
            started_at: 0.0,
            stopped_at: None,
            stopped_by_user: None,
        }
    }

    /// One DescribeTasks that named this task.
    pub fn poll(&mut self) {
        self.polls = self.polls.saturating_add(1);
        if self.started_at == 0.0 && self.status() != "PENDING" {
            self.started_at = super::now();
        }
        if self.status() == "STOPPED" && self.stopped_at.is_none() {
            self.stopped_at = Some(super::now());
        }
    }

    /// StopTask: the task stops at once, as ECS reports a task a user stopped.
    pub fn stop(&mut self, reason: Option<&str>) {
        self.stopped_by_user = Some(reason.unwrap_or("Task stopped by user").to_owned());
        self.stopped_at.get_or_insert_with(super::now);
    }

    /// `lastStatus` now: PROVISIONING in RunTask's answer, then PENDING, RUNNING on the poll
    /// before the last, STOPPED from poll `after_polls` on.
    fn status(&self) -> &'static str {
        let after = self.script.after_polls.max(1);
        if self.stopped_by_user.is_some() || self.polls >= after {
            "STOPPED"
        } else if self.polls == 0 {
            "PROVISIONING"
        } else if self.polls + 1 == after {
            "RUNNING"
        } else {
            "PENDING"
        }
    }

    /// Puts this state over moto's description of the task.
    pub fn overlay(&self, described: &mut Value) {
        let status = self.status();
        let stopped = status == "STOPPED";
        let Some(fields) = described.as_object_mut() else {
            return;
        };
        fields.insert("lastStatus".into(), status.into());
        let desired = if stopped { "STOPPED" } else { "RUNNING" };
        fields.insert("desiredStatus".into(), desired.into());
        if let Some(overrides) = &self.overrides {
            fields.insert("overrides".into(), overrides.clone());
        }
        if self.started_at > 0.0 {
            fields.insert("startedAt".into(), self.started_at.into());
        }
        let exit = (stopped && self.stopped_by_user.is_none()).then_some(self.script.exit_code);
        if stopped {
            let (code, reason) = match &self.stopped_by_user {
                Some(reason) => ("UserInitiated", reason.clone()),
                None => ("EssentialContainerExited", self.script.reason.clone()),
            };
            let at = self.stopped_at.unwrap_or_else(super::now);
            fields.insert("stopCode".into(), code.into());
            fields.insert("stoppedReason".into(), reason.into());
            fields.insert("stoppingAt".into(), at.into());
            fields.insert("stoppedAt".into(), at.into());
            fields.insert("executionStoppedAt".into(), at.into());
        } else {
            for key in ["stopCode", "stoppedReason", "stoppingAt", "stoppedAt"] {
                fields.remove(key);
            }
        }
        if let Some(containers) = fields.get_mut("containers").and_then(Value::as_array_mut) {
            for container in containers.iter_mut().filter_map(Value::as_object_mut) {
                container.insert("lastStatus".into(), status.into());
                match exit {
                    Some(code) => container.insert("exitCode".into(), json!(code)),
                    None => container.remove("exitCode"),
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{conform, family};

    #[test]
    fn numbers_become_the_strings_the_api_has() {
        let mut task = serde_json::json!({
            "cpu": 256, "memory": "512",
            "containers": [{ "cpu": 0, "memory": 128, "name": "web" }],
        });
        conform(&mut task);
        assert_eq!(
            task,
            serde_json::json!({
                "cpu": "256", "memory": "512",
                "containers": [{ "cpu": "0", "memory": "128", "name": "web" }],
            })
        );
    }

    #[test]
    fn family_of_every_form() {
        assert_eq!(family("web"), "web");
        assert_eq!(family("web:3"), "web");
        assert_eq!(
            family("arn:aws:ecs:eu-west-1:123456789012:task-definition/web:3"),
            "web"
        );
    }
}

//! What only AWS knows of an image's policy: the roles, secrets and family of the task
//! definitions that run now (a new revision copies them), and the roles EventBridge rules and
//! schedules pass. What cannot be read is granted account-wide, and a note says so.

use std::collections::BTreeSet;

use aws_sdk_ecs::types::TaskDefinition;

use crate::aws::AwsClients;
use crate::iam::{Referenced, Scope};
use crate::kinds::image::ImageSpec;
use crate::kinds::image::rollout::verify::{Kind as RefKind, references};
use crate::kinds::image::rollout::{ImageRollout, JobFamilies, schedules};

const TASKS: &str = "ecs-tasks.amazonaws.com";
const ECS: &str = "ecs.amazonaws.com";
const EVENTS: &str = "events.amazonaws.com";
const SCHEDULER: &str = "scheduler.amazonaws.com";

/// What the task definitions, rules and schedules of `spec` name; without `clients`
/// (`--offline`) the account-wide fallbacks.
pub(crate) async fn referenced(
    clients: Option<&AwsClients>,
    spec: &ImageSpec,
    scope: &Scope<'_>,
) -> Referenced {
    let mut found = Referenced::default();
    let mut reader = Reader {
        clients,
        scope,
        found: &mut found,
    };
    match &spec.rollout {
        ImageRollout::None => {}
        ImageRollout::TaskDefinitions(jobs) => reader.jobs(jobs).await,
        rollout => {
            if let Some(service) = rollout.service() {
                reader.service(&service.cluster, &service.service).await;
                if let Some(pre_deploy) = &service.pre_deploy {
                    reader.family(&pre_deploy.task_definition).await;
                }
            }
        }
    }
    if let ImageRollout::EcsBlueGreen(blue_green) = &spec.rollout {
        let roles = blue_green.lifecycle_hooks.iter().map(|h| h.role.clone());
        let roles: BTreeSet<String> = roles.filter(|r| !r.is_empty()).collect();
        found
            .pass_roles
            .entry(ECS.into())
            .or_default()
            .extend(roles);
    }
    found
}

struct Reader<'a, 'b> {
    clients: Option<&'a AwsClients>,
    scope: &'a Scope<'a>,
    found: &'b mut Referenced,
}

impl Reader<'_, '_> {
    async fn jobs(&mut self, jobs: &JobFamilies) {
        for family in &jobs.families {
            self.family(family).await;
        }
        if let Some(pre_deploy) = &jobs.pre_deploy {
            self.family(&pre_deploy.task_definition).await;
        }
        for rule in &jobs.schedules {
            self.rule(rule).await;
        }
        for schedule in &jobs.scheduler_schedules {
            self.schedule(schedule).await;
        }
    }

    /// The task definition the service runs now.
    async fn service(&mut self, cluster: &str, service: &str) {
        let what = format!("service {cluster}/{service}");
        let Some(clients) = self.clients else {
            return self.unread_definition(&what, None);
        };
        let answer = clients
            .ecs()
            .describe_services()
            .cluster(cluster)
            .services(service)
            .send()
            .await;
        let arn = match answer {
            Ok(out) => out
                .services()
                .first()
                .and_then(|s| s.task_definition())
                .map(str::to_owned),
            Err(err) => {
                let why = crate::aws::SdkFailure::new(err).to_string();
                return self.unread_definition(&what, Some(&why));
            }
        };
        match arn {
            Some(arn) => self.definition(&what, &arn).await,
            None => self.unread_definition(&what, Some("the service was not found")),
        }
    }

    /// The latest ACTIVE revision of `family` (a new revision copies it).
    async fn family(&mut self, family: &str) {
        self.found.families.insert(
            self.scope
                .arn("ecs", &format!("task-definition/{family}:*")),
        );
        self.definition(&format!("task-definition family {family}"), family)
            .await;
    }

    async fn definition(&mut self, what: &str, name: &str) {
        let Some(clients) = self.clients else {
            return self.unread_definition(what, None);
        };
        let answer = clients
            .ecs()
            .describe_task_definition()
            .task_definition(name)
            .send()
            .await;
        match answer {
            Ok(out) => match out.task_definition() {
                Some(definition) => self.add_definition(definition),
                None => self.unread_definition(what, Some("no task definition came back")),
            },
            Err(err) => {
                let why = crate::aws::SdkFailure::new(err).to_string();
                self.unread_definition(what, Some(&why));
            }
        }
    }

    fn add_definition(&mut self, definition: &TaskDefinition) {
        let scope = self.scope;
        if let Some(family) = definition.family() {
            self.found
                .families
                .insert(scope.arn("ecs", &format!("task-definition/{family}:*")));
        }
        let roles = [definition.task_role_arn(), definition.execution_role_arn()];
        for role in roles.into_iter().flatten() {
            let arn = scope.role(role);
            self.found.roles.insert(arn.clone());
            self.found
                .pass_roles
                .entry(TASKS.into())
                .or_default()
                .insert(arn);
        }
        for reference in references(definition) {
            match reference.kind {
                RefKind::Secret => {
                    self.found.secrets.insert(format!("{}*", reference.name));
                }
                RefKind::Parameter => {
                    let name = reference.name.trim_start_matches('/');
                    let arn = scope.arn("ssm", &format!("parameter/{name}"));
                    self.found.parameters.insert(arn);
                }
                RefKind::LogGroup => self.found.log_groups = true,
                RefKind::Role => {}
            }
        }
    }

    /// Account-wide roles, parameters, secrets and families in place of what `what` names.
    fn unread_definition(&mut self, what: &str, why: Option<&str>) {
        let scope = self.scope;
        let every_role = scope.role("*");
        self.found.roles.insert(every_role.clone());
        self.found
            .pass_roles
            .entry(TASKS.into())
            .or_default()
            .insert(every_role);
        self.found
            .parameters
            .insert(scope.arn("ssm", "parameter/*"));
        self.found
            .secrets
            .insert(scope.arn("secretsmanager", "secret:*"));
        self.found
            .families
            .insert(scope.arn("ecs", "task-definition/*"));
        self.found.log_groups = true;
        self.note(
            what,
            why,
            "roles, parameters, secrets and task-definition families",
        );
    }

    async fn rule(&mut self, rule: &str) {
        let what = format!("EventBridge rule {rule}");
        let Some(clients) = self.clients else {
            return self.unread_target(&what, EVENTS, None);
        };
        match schedules::rule_targets(clients, rule).await {
            Ok(targets) => {
                let roles = targets.iter().filter_map(|t| t.role_arn());
                self.pass(EVENTS, roles);
            }
            Err(err) => self.unread_target(&what, EVENTS, Some(&err.to_string())),
        }
    }

    async fn schedule(&mut self, schedule: &str) {
        let what = format!("schedule {schedule}");
        let Some(clients) = self.clients else {
            return self.unread_target(&what, SCHEDULER, None);
        };
        match schedules::get_schedule(clients, schedule).await {
            Ok(found) => {
                let roles = found.target().map(|t| t.role_arn());
                self.pass(SCHEDULER, roles.into_iter());
            }
            Err(err) => self.unread_target(&what, SCHEDULER, Some(&err.to_string())),
        }
    }

    fn pass<'r>(&mut self, service: &str, roles: impl Iterator<Item = &'r str>) {
        let scope = self.scope;
        let entry = self.found.pass_roles.entry(service.into()).or_default();
        entry.extend(roles.map(|role| scope.role(role)));
    }

    fn unread_target(&mut self, what: &str, service: &str, why: Option<&str>) {
        let every_role = self.scope.role("*");
        self.pass(service, std::iter::once(every_role.as_str()));
        self.note(what, why, &format!("roles passed to {service}"));
    }

    fn note(&mut self, what: &str, why: Option<&str>, granted: &str) {
        let account = &self.scope.target.account;
        self.found.notes.push(match why {
            None => format!(
                "{what} was not read (--offline): {granted} are granted account-wide in {account}"
            ),
            Some(why) => format!(
                "{what} could not be read ({why}): {granted} are granted account-wide in {account}"
            ),
        });
    }
}

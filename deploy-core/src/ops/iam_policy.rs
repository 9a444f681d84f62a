//! `deploy iam-policy <env>`: the least-privilege policy for what the configuration does in
//! one environment (see [`crate::iam`]).

use crate::config::Config;
use crate::iam::{GrantContext, Grants, Policy, Scope, referenced_grants, state_grants};

use super::{OpsError, clients};

/// What `iam-policy` is asked.
#[derive(Debug, Clone)]
pub struct IamPolicyRequest<'a> {
    /// The environment.
    pub environment: &'a str,
    /// Read nothing from AWS: what only AWS knows (the roles live task definitions pass) is
    /// granted account-wide, and [`Policy::notes`] says so.
    pub offline: bool,
}

/// The policy of `request.environment`: the ledger and lock, each artifact's kind and
/// strategy, and the promotion source's reads when this environment's credentials make them
/// (the source names no `profile` or `role_arn` of its own). Reads only, and only the live
/// task definitions, rules and schedules the artifacts name; the account is checked first.
pub async fn iam_policy(
    config: &Config,
    request: &IamPolicyRequest<'_>,
) -> Result<Policy, OpsError> {
    let env = config.environment(request.environment)?;
    let source = match env.promote_from.as_deref() {
        Some(name) => Some(config.environment(name)?),
        None => None,
    };
    let shared = source.filter(|s| s.target.profile.is_none() && s.target.role_arn.is_none());
    let scope = Scope {
        target: &env.target,
        source: shared.map(|s| &s.target),
    };
    let clients = match request.offline {
        true => None,
        false => {
            let clients = clients(config, env).await;
            clients.verify_account().await?;
            Some(clients)
        }
    };
    let mut grants = Grants::default();
    state_grants(&scope, &mut grants);
    let mut notes = Vec::new();
    for spec in env.select(&[])? {
        let referenced = crate::kinds::referenced(clients.as_ref(), spec, &scope).await;
        referenced_grants(&referenced, &mut grants);
        let with = GrantContext {
            scope: &scope,
            source: shared.and_then(|s| s.artifacts.get(&spec.name)),
            referenced: &referenced,
        };
        crate::kinds::grants(spec, &with, &mut grants);
        notes.extend(referenced.notes);
    }
    Ok(grants.into_policy(&env.name, notes))
}

#[cfg(all(test, feature = "image", feature = "dags", feature = "lambda"))]
mod tests {
    use std::path::Path;

    use super::{IamPolicyRequest, iam_policy};
    use crate::config::Config;
    use crate::iam::Policy;

    async fn example(environment: &str) -> Policy {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/planwise/deploy.toml");
        let config = Config::load(&path).expect("the example loads");
        let request = IamPolicyRequest {
            environment,
            offline: true,
        };
        iam_policy(&config, &request).await.expect("a policy")
    }

    fn resources(policy: &Policy, sid: &str) -> Vec<String> {
        let statement = policy.statement(sid).unwrap_or_else(|| panic!("no {sid}"));
        statement.resources.iter().cloned().collect()
    }

    #[tokio::test]
    async fn the_example_s_prod_policy_is_scoped_to_its_names() {
        let policy = example("prod").await;
        assert_eq!(
            resources(&policy, "StateObjects"),
            ["arn:aws:s3:::planwise-deploy-state-prod/deploy/planwise/prod/*"]
        );
        assert_eq!(
            resources(&policy, "EcsServices"),
            ["arn:aws:ecs:eu-west-1:123456789012:service/planwise-prod/api"]
        );
        assert_eq!(
            resources(&policy, "CodeDeployGroup"),
            ["arn:aws:codedeploy:eu-west-1:123456789012:deploymentgroup:planwise-api-prod/api"]
        );
        assert_eq!(
            resources(&policy, "ScheduleRules"),
            ["arn:aws:events:eu-west-1:123456789012:rule/etl-nightly-prod"]
        );
        // prod is promoted from staging with the same credentials: staging's DAG versions are read.
        assert_eq!(
            resources(&policy, "DagsSourceDags"),
            ["arn:aws:s3:::planwise-airflow-staging/dags/*"]
        );
        // Offline, the roles are account-wide and only passed to ECS tasks and EventBridge.
        let pass = policy.statement("PassRoleToEcsTasks").expect("pass role");
        assert_eq!(
            pass.condition
                .as_ref()
                .map(|c| c["StringEquals"]["iam:PassedToService"].clone()),
            Some("ecs-tasks.amazonaws.com".into())
        );
        assert_eq!(policy.notes.len(), 5, "{:?}", policy.notes);
    }

    #[tokio::test]
    async fn star_is_only_for_actions_that_take_no_resource() {
        let no_resource = [
            "ecr:GetAuthorizationToken",
            "ecs:DescribeTaskDefinition",
            "ecs:ListTaskDefinitions",
            "ecs:DeregisterTaskDefinition",
            "ecs:ListServices",
            "logs:DescribeLogGroups",
            "codedeploy:ContinueDeployment",
            "codedeploy:StopDeployment",
            "codedeploy:ListDeploymentTargets",
            "codedeploy:BatchGetDeploymentTargets",
            "cloudwatch:GetMetricStatistics",
        ];
        for environment in ["dev", "staging", "prod"] {
            let policy = example(environment).await;
            for statement in &policy.statements {
                if statement.resources.contains("*") {
                    for action in &statement.actions {
                        assert!(
                            no_resource.contains(&action.as_str()),
                            "{action} on * in {environment}"
                        );
                    }
                }
            }
        }
    }

    #[tokio::test]
    async fn dev_is_not_promoted_so_reads_nothing_of_another_environment() {
        let policy = example("dev").await;
        let text = policy.document().to_string();
        assert!(!text.contains("staging"), "{text}");
        assert!(policy.statement("DagsSourceDags").is_none());
        // dev rolls the api out with ecs-rolling: no CodeDeploy.
        assert!(!text.contains("codedeploy:"), "{text}");
    }
}

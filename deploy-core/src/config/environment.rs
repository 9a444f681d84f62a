//! `[environments.<name>]`: the AWS target (region, account, credentials, state bucket,
//! endpoints), promotions between environments, and which overrides may apply.

use std::collections::BTreeMap;

use super::checks::{bucket_problem, endpoint_problem, name_problem, role_arn_problem};
use super::diagnose::Resolver;
use super::placeholder::Vars;
use super::placeholder::{self, closest};
use super::raw::{RawConfig, RawEndpoints, RawEnvironment};
use super::source_map::path;
use super::{Environment, artifacts};
use crate::target::{AccountId, Endpoints, Target};

pub(super) fn resolve_environment(
    r: &mut Resolver<'_>,
    raw: &RawConfig,
    name: &str,
    env: &RawEnvironment,
) -> Option<Environment> {
    let at = |key: &str| path(["environments", name, key]);
    check_name(r, name, &path(["environments", name]), "environment");
    let region = env.region.trim();
    let account = check_region_and_account(r, name, env);
    let vars: Vars<'_> = [
        ("env", name),
        ("project", raw.project.as_str()),
        ("account", env.account.as_str()),
        ("region", region),
    ];
    let state_bucket = expand(r, &vars, &env.state_bucket, &at("state_bucket"));
    // A failed expansion was reported already; the bucket check would only repeat it.
    if !state_bucket.contains('{')
        && let Some(problem) = bucket_problem(&state_bucket)
    {
        r.error(&at("state_bucket"), problem.message, Some(problem.help));
    }
    let role_arn = env.role_arn.as_ref().map(|arn| {
        let arn = expand(r, &vars, arn, &at("role_arn"));
        if let Some(problem) = role_arn_problem(&arn) {
            r.error(&at("role_arn"), problem.message, Some(problem.help));
        }
        arn
    });
    let profile = env
        .profile
        .as_ref()
        .map(|p| expand(r, &vars, p, &at("profile")));
    let endpoints = resolve_endpoints(r, name, &env.endpoints, &vars);
    check_overrides(r, raw, name, env);

    let mut artifacts = BTreeMap::new();
    for (artifact, base) in &raw.artifacts {
        let over = env.overrides.get(artifact);
        if let Some(spec) = artifacts::resolve_artifact(r, name, artifact, base, over, &vars) {
            artifacts.insert(artifact.clone(), spec);
        }
    }
    Some(Environment {
        name: name.to_owned(),
        target: Target {
            project: raw.project.clone(),
            environment: name.to_owned(),
            region: region.to_owned(),
            account: account?,
            profile,
            role_arn,
            state_bucket,
            endpoints,
        },
        promote_from: env.promote_from.clone(),
        approval: env.approval,
        notify: env.notify.unwrap_or(true),
        artifact_order: artifacts::file_order(r.map, "artifacts", artifacts.keys()),
        artifacts,
    })
}

fn expand(r: &mut Resolver<'_>, vars: &Vars<'_>, value: &str, at: &[String]) -> String {
    placeholder::expand(value, vars).unwrap_or_else(|message| {
        r.error(at, message, None);
        value.to_owned()
    })
}

pub(super) fn check_name(r: &mut Resolver<'_>, name: &str, at: &[String], what: &str) {
    if let Some(problem) = name_problem(name, what) {
        r.error(at, problem.message, Some(problem.help));
    }
}

fn check_region_and_account(
    r: &mut Resolver<'_>,
    name: &str,
    env: &RawEnvironment,
) -> Option<AccountId> {
    let at = |key: &str| path(["environments", name, key]);
    let region = env.region.trim();
    match super::regions::check(region) {
        None => {}
        Some(super::regions::RegionProblem::Unknown) => r.warn(
            &at("region"),
            format!("`{region}` is not a region this version of deploy knows"),
            Some(
                "if AWS opened it after this release, ignore this; otherwise fix the spelling"
                    .into(),
            ),
        ),
        Some(super::regions::RegionProblem::Invalid(suggestion)) => r.error(
            &at("region"),
            format!("`{region}` is not an AWS region"),
            Some(match suggestion {
                Some(known) => format!("did you mean `{known}`?"),
                None => "write a region code such as eu-west-1 or us-east-1".into(),
            }),
        ),
    }
    let account = AccountId::parse(env.account.trim());
    if account.is_none() {
        r.error(
            &at("account"),
            format!("`{}` is not an AWS account id", env.account),
            Some("write the 12-digit account id as a string, e.g. \"111111111111\"".into()),
        );
    }
    account
}

/// Overrides must name artifacts the file defines, and may not change their kind.
fn check_overrides(r: &mut Resolver<'_>, raw: &RawConfig, name: &str, env: &RawEnvironment) {
    for (artifact, table) in &env.overrides {
        let opath = path(["environments", name, "overrides", artifact.as_str()]);
        if !raw.artifacts.contains_key(artifact) {
            let known: Vec<&str> = raw.artifacts.keys().map(String::as_str).collect();
            r.error(
                &opath,
                format!("override for unknown artifact `{artifact}`"),
                Some(format!("artifacts: {}", known.join(", "))),
            );
        } else if table.contains_key("kind") {
            let mut kpath = opath.clone();
            kpath.push("kind".into());
            r.error(
                &kpath,
                "an override cannot change an artifact's `kind`",
                Some("define a separate artifact instead".into()),
            );
        }
    }
}

fn resolve_endpoints(
    r: &mut Resolver<'_>,
    env: &str,
    raw: &RawEndpoints,
    vars: &Vars<'_>,
) -> Endpoints {
    let mut one = |service: &str, value: &Option<String>| {
        value.as_ref().map(|url| {
            let at = path(["environments", env, "endpoints", service]);
            let url = expand(r, vars, url, &at);
            if !url.contains(['{', '}'])
                && let Some(problem) = endpoint_problem(service, &url, service == "registry")
            {
                r.error(&at, problem.message, Some(problem.help));
            }
            url
        })
    };
    Endpoints {
        sts: one("sts", &raw.sts),
        s3: one("s3", &raw.s3),
        ecr: one("ecr", &raw.ecr),
        registry: one("registry", &raw.registry),
        ecs: one("ecs", &raw.ecs),
        codedeploy: one("codedeploy", &raw.codedeploy),
        lambda: one("lambda", &raw.lambda),
    }
}

pub(super) fn check_promotions(
    r: &mut Resolver<'_>,
    environments: &BTreeMap<String, RawEnvironment>,
) {
    for (name, env) in environments {
        let Some(from) = &env.promote_from else {
            continue;
        };
        let at = path(["environments", name.as_str(), "promote_from"]);
        if from == name {
            r.error(
                &at,
                format!("environment `{name}` cannot promote from itself"),
                None,
            );
        } else if !environments.contains_key(from) {
            let known: Vec<&str> = environments.keys().map(String::as_str).collect();
            let hint = closest(from, known.iter().copied())
                .map(|c| format!("did you mean `{c}`? "))
                .unwrap_or_default();
            r.error(
                &at,
                format!("`promote_from` names unknown environment `{from}`"),
                Some(format!("{hint}environments: {}", known.join(", "))),
            );
        } else if let Some(cycle) = promotion_cycle(environments, name) {
            r.error(
                &at,
                format!("`promote_from` forms a loop: {}", cycle.join(" <- ")),
                Some("an environment may only receive from one that does not, in turn, receive from it".into()),
            );
        }
    }
}

/// The loop through `start`, following `promote_from`, if `start` is on one.
fn promotion_cycle<'a>(
    environments: &'a BTreeMap<String, RawEnvironment>,
    start: &'a str,
) -> Option<Vec<&'a str>> {
    let mut chain = vec![start];
    let mut current = start;
    while let Some(next) = environments
        .get(current)
        .and_then(|e| e.promote_from.as_deref())
    {
        if next == start {
            chain.push(start);
            return Some(chain);
        }
        if chain.contains(&next) {
            return None;
        }
        chain.push(next);
        current = next;
    }
    None
}

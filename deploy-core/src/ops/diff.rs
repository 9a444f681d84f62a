//! `diff`: what differs between two environments, read only. For each artifact: whether the
//! two live releases hold the same bytes (their content ids: digest, content hash,
//! `CodeSha256`), and every other fact of what AWS runs that differs, as each kind reads it
//! ([`crate::kinds::Facts`]: task definition fields, desired count, Lambda configuration, DAG
//! files). A value that differs only by the environments' names, accounts or regions is
//! expected and kept apart.

use serde::Serialize;

use super::release::dedup;
use super::{OpsError, clients};
use crate::config::{ArtifactSpec, Config, Environment};
use crate::kinds::Facts;
use crate::ledger::{ArtifactStatus, Ledger};
use crate::target::Target;

/// A diff of some artifacts (all when empty) between two environments.
#[derive(Debug, Clone, Copy)]
pub struct DiffRequest<'a> {
    /// The first environment.
    pub a: &'a str,
    /// The second environment.
    pub b: &'a str,
    /// The artifacts; empty: all of them.
    pub artifacts: &'a [String],
}

/// What differs for one artifact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ArtifactDiff {
    /// Artifact.
    pub artifact: String,
    /// What the ledger says is live on each side.
    pub live: [Side; 2],
    /// Both sides run the same bytes (the same content id).
    pub same_bytes: bool,
    /// Facts that differ.
    pub differences: Vec<FieldDiff>,
    /// Facts that differ only by the environments' names, accounts or regions.
    pub expected: Vec<FieldDiff>,
    /// What could not be read, per side.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
}

impl ArtifactDiff {
    /// Whether anything differs besides what is expected to.
    pub fn differs(&self) -> bool {
        !self.same_bytes || !self.differences.is_empty() || !self.problems.is_empty()
    }
}

/// One side's live release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Side {
    /// Environment.
    pub environment: String,
    /// Live release id, if any.
    pub release_id: Option<String>,
    /// Its version.
    pub version: Option<String>,
    /// Its content id.
    pub content_id: Option<String>,
}

/// One fact that differs: its value on each side (`None`: that side does not have it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldDiff {
    /// The fact (`api.env.LOG_LEVEL`, `memory`, `file dags/a.py`).
    pub field: String,
    /// Its value in the first environment.
    pub a: Option<String>,
    /// Its value in the second.
    pub b: Option<String>,
}

/// Compares what runs in two environments. Reads the ledger and AWS; changes nothing.
pub async fn diff(
    config: &Config,
    request: &DiffRequest<'_>,
) -> Result<Vec<ArtifactDiff>, OpsError> {
    let envs = [
        config.environment(request.a)?,
        config.environment(request.b)?,
    ];
    let names = dedup(request.artifacts);
    let specs = [envs[0].select(&names)?, envs[1].select(&names)?];
    let names: Vec<String> = specs[0].iter().map(|s| s.name.clone()).collect();
    let mut sides = Vec::new();
    for env in envs {
        let clients = clients(config, env).await;
        let status = Ledger::new(clients.s3.clone(), &env.target)
            .status(&names)
            .await?;
        sides.push(Reader {
            env,
            clients,
            status,
        });
    }
    let (a, b) = (&sides[0], &sides[1]);
    let mut out = Vec::new();
    for (index, spec_a) in specs[0].iter().enumerate() {
        let Some(spec_b) = specs[1].iter().find(|s| s.name == spec_a.name) else {
            continue;
        };
        // Both environments are read at once.
        let facts = futures::join!(a.facts(spec_a, index), b.facts(spec_b, index));
        out.push(compare(&spec_a.name, [a, b], index, [facts.0, facts.1]));
    }
    Ok(out)
}

/// One environment of a diff: its clients and what its ledger says.
struct Reader<'c> {
    env: &'c Environment,
    clients: crate::aws::AwsClients,
    status: Vec<ArtifactStatus>,
}

impl Reader<'_> {
    /// The facts of `spec` (the `index`th artifact), an error naming the environment.
    async fn facts(&self, spec: &ArtifactSpec, index: usize) -> Result<Facts, String> {
        let read = match crate::kinds::of(spec) {
            Some(kind) => kind.facts(&self.clients, spec, &self.status[index]).await,
            None => Ok(Facts::new()),
        };
        read.map_err(|e| format!("{}: {e}", self.env.target.environment))
    }
}

fn side(env: &Environment, status: &ArtifactStatus) -> Side {
    let live = status.live.as_ref();
    Side {
        environment: env.target.environment.clone(),
        release_id: live.map(|p| p.release_id.clone()),
        version: live.and_then(|p| p.version.clone()),
        content_id: live
            .and_then(|p| p.artifact_ref.as_ref())
            .map(|r| r.content_id().to_owned()),
    }
}

fn compare(
    artifact: &str,
    [a, b]: [&Reader<'_>; 2],
    index: usize,
    facts: [Result<Facts, String>; 2],
) -> ArtifactDiff {
    let live = [side(a.env, &a.status[index]), side(b.env, &b.status[index])];
    let same_bytes = live[0].content_id.is_some() && live[0].content_id == live[1].content_id;
    let mut diff = ArtifactDiff {
        artifact: artifact.to_owned(),
        live,
        same_bytes,
        differences: Vec::new(),
        expected: Vec::new(),
        problems: Vec::new(),
    };
    let (fa, fb) = match facts {
        [Ok(fa), Ok(fb)] => (fa, fb),
        [ra, rb] => {
            diff.problems
                .extend([ra.err(), rb.err()].into_iter().flatten());
            return diff;
        }
    };
    let keys: std::collections::BTreeSet<&String> = fa.keys().chain(fb.keys()).collect();
    for key in keys {
        let (va, vb) = (fa.get(key), fb.get(key));
        if va == vb {
            continue;
        }
        let field = FieldDiff {
            field: key.clone(),
            a: va.cloned(),
            b: vb.cloned(),
        };
        match (va, vb) {
            (Some(va), Some(vb)) if renamed(va, &a.env.target, &b.env.target) == *vb => {
                diff.expected.push(field);
            }
            _ => diff.differences.push(field),
        }
    }
    diff
}

/// `value` of environment `a` with `a`'s account, region and name as `b`'s.
fn renamed(value: &str, a: &Target, b: &Target) -> String {
    value
        .replace(&a.account.to_string(), &b.account.to_string())
        .replace(&a.region, &b.region)
        .replace(&a.environment, &b.environment)
}

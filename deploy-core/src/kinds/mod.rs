//! What gets deployed: the artifact kinds, each a folder of its own (its configuration table,
//! plan, steps, rollout strategies, status), behind the `Kind` trait, and the registration
//! list (`all`) that is the only place naming them all.

mod builtin;
#[cfg(feature = "dags")]
pub mod dags;
#[cfg(feature = "image")]
pub mod image;
#[cfg(feature = "lambda")]
pub mod lambda;

use std::sync::Arc;

use serde::Serialize;

pub use crate::catalog::ArtifactKind;
pub use crate::config::ArtifactSpec;
pub use builtin::{Builtin, register_builtin};
#[cfg(feature = "dags")]
pub use dags::DagsSpec;
#[cfg(feature = "image")]
pub use image::{ImageSource, ImageSpec, ScanGate};
#[cfg(feature = "lambda")]
pub use lambda::LambdaSpec;

use crate::aws::AwsClients;
use crate::config::spec::KindConfig;
use crate::engine::{ApplyReport, BoxFuture};
use crate::iam::{GrantContext, Grants, Referenced, Scope};
use crate::ledger::ArtifactStatus;
use crate::plan::{ArtifactPlanner, Chain, PlanRequest};

/// What the library asks of an artifact kind: read its table of `deploy.toml`
/// ([`KindConfig`]), plan its steps, and say what runs.
pub(crate) trait Kind: KindConfig {
    /// Adds the artifact's steps for `request` to `chain`: its publish and gates, and its
    /// rollout strategy's steps.
    fn plan_steps(&self, spec: &ArtifactSpec, request: &PlanRequest<'_>, chain: &mut Chain<'_>);

    /// What runs now, read from AWS, and how it drifted from the live release in `status`,
    /// for `status`; `None` when nothing runs that could drift (an image with strategy `none`).
    fn running<'a>(
        &'a self,
        _clients: &'a AwsClients,
        _spec: &'a ArtifactSpec,
        _status: &'a ArtifactStatus,
    ) -> BoxFuture<'a, Option<Running>> {
        Box::pin(async { None })
    }

    /// What runs for the artifact, as named facts (`api.env.LOG_LEVEL` → `info`), for
    /// `diff`: everything that makes two environments behave differently besides the bytes
    /// (which the ledger's content id compares). Never a secret's value.
    fn facts<'a>(
        &'a self,
        _clients: &'a AwsClients,
        _spec: &'a ArtifactSpec,
        _status: &'a ArtifactStatus,
    ) -> BoxFuture<'a, Result<Facts, String>> {
        Box::pin(async { Ok(Facts::new()) })
    }

    /// What the kind's steps call in AWS for `spec` in `scope`'s environment, as IAM
    /// statements (`deploy iam-policy`); `source` is the same artifact in the promotion
    /// source when this environment's credentials read it, `referenced` what
    /// [`Kind::referenced`] found.
    fn grants(&self, _spec: &ArtifactSpec, _with: &GrantContext<'_>, _grants: &mut Grants) {}

    /// What the policy must name that only AWS knows: the roles a live task definition or
    /// schedule passes, the secrets it references (`deploy iam-policy`). Without `clients`
    /// (`--offline`), or where AWS cannot be read, what is granted instead says so in
    /// [`Referenced::notes`].
    fn referenced<'a>(
        &'a self,
        _clients: Option<&'a AwsClients>,
        _spec: &'a ArtifactSpec,
        _scope: &'a Scope<'a>,
    ) -> BoxFuture<'a, Referenced> {
        Box::pin(async { Referenced::default() })
    }

    /// Lines for people about what the kind's steps reported in `report` (scan findings).
    fn report_lines(&self, _report: &ApplyReport) -> Vec<String> {
        Vec::new()
    }

    /// What `artifact` was released as, for people (`p/api@sha256:...`), when the kind's steps
    /// reported it in `report`.
    fn released_as(&self, _report: &ApplyReport, _artifact: &str) -> Option<String> {
        None
    }
}

/// Lines for people about what the kinds reported in a run's `report` (an image's scan
/// findings, say), for a front-end to print after the run.
pub fn report_lines(report: &ApplyReport) -> Vec<String> {
    all().iter().flat_map(|k| k.report_lines(report)).collect()
}

/// What `artifact` was released as in the run of `report` (`p/api@sha256:...`), when its
/// kind says.
pub fn released_as(report: &ApplyReport, artifact: &str) -> Option<String> {
    all().iter().find_map(|k| k.released_as(report, artifact))
}

/// The kinds this build has, one line each (cargo features `image`, `dags`, `lambda`).
#[allow(clippy::vec_init_then_push)] // each push is behind its kind's feature
pub(crate) fn all() -> Vec<&'static dyn Kind> {
    let mut all: Vec<&'static dyn Kind> = Vec::new();
    #[cfg(feature = "image")]
    all.push(&image::kind::Image);
    #[cfg(feature = "dags")]
    all.push(&dags::kind::Dags);
    #[cfg(feature = "lambda")]
    all.push(&lambda::kind::Lambda);
    all
}

/// The kind of `spec`.
pub(crate) fn of(spec: &ArtifactSpec) -> Option<&'static dyn Kind> {
    all().into_iter().find(|k| k.kind() == spec.kind())
}

/// The readers of every kind's table, for loading a configuration.
pub(crate) fn configs() -> Vec<&'static dyn KindConfig> {
    all().into_iter().map(|k| k as &dyn KindConfig).collect()
}

/// The statements `spec`'s kind grants (see [`Kind::grants`]).
pub(crate) fn grants(spec: &ArtifactSpec, with: &GrantContext<'_>, grants: &mut Grants) {
    if let Some(kind) = of(spec) {
        kind.grants(spec, with, grants);
    }
}

/// What `spec`'s kind finds in AWS for its policy (see [`Kind::referenced`]).
pub(crate) async fn referenced(
    clients: Option<&AwsClients>,
    spec: &ArtifactSpec,
    scope: &Scope<'_>,
) -> Referenced {
    match of(spec) {
        Some(kind) => kind.referenced(clients, spec, scope).await,
        None => Referenced::default(),
    }
}

/// Plans each artifact with its kind.
pub(crate) struct Planner;

impl ArtifactPlanner for Planner {
    fn steps(&self, spec: &ArtifactSpec, request: &PlanRequest<'_>, chain: &mut Chain<'_>) {
        if let Some(kind) = of(spec) {
            kind.plan_steps(spec, request, chain);
        }
    }
}

/// What runs in AWS for an artifact, read for `status`, and each way it differs from what the
/// ledger says is live (drift).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Running {
    /// What was read: `cluster/service`, `function:alias`, `s3://bucket/prefix/`, families.
    pub object: String,
    /// What runs there, in a few words (`api:7`, `version 12`, `14 files`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runs: Option<String>,
    /// Each difference from the live release; empty: none.
    pub drift: Vec<Drift>,
    /// Why it could not be read, if it could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

impl Running {
    /// `object`, read: what it `runs` and how it drifted.
    pub fn read(object: impl Into<String>, runs: Option<String>, drift: Vec<Drift>) -> Running {
        Running {
            object: object.into(),
            runs,
            drift,
            problem: None,
        }
    }

    /// `object` could not be read: `problem` says why.
    pub fn unreadable(object: impl Into<String>, problem: impl std::fmt::Display) -> Running {
        Running {
            object: object.into(),
            runs: None,
            drift: Vec::new(),
            problem: Some(problem.to_string()),
        }
    }
}

/// Named facts about what runs (`field` → value), compared field by field by `diff`.
pub type Facts = std::collections::BTreeMap<String, String>;

/// One way what runs differs from the live release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Drift {
    /// The AWS object that differs (`cluster/service`, a rule, `function:alias`, a DAG file).
    pub object: String,
    /// How, in words (`runs sha256:... instead of sha256:...`, `added`, `routing left`).
    pub difference: String,
}

impl Drift {
    /// `object` differs as `difference` says.
    pub fn new(object: impl Into<String>, difference: impl Into<String>) -> Drift {
        Drift {
            object: object.into(),
            difference: difference.into(),
        }
    }
}

/// Wraps a kind's resolved settings for [`ArtifactSpec::detail`].
fn spec<T: crate::config::spec::KindSpec>(
    detail: Option<T>,
) -> Option<Arc<dyn crate::config::spec::KindSpec>> {
    detail.map(|d| Arc::new(d) as Arc<dyn crate::config::spec::KindSpec>)
}

#[cfg(all(test, not(feature = "image")))]
mod without_image {
    use crate::config::{Config, ConfigError};

    /// A build without the `image` feature refuses an image artifact at its `kind` key, naming
    /// the feature, instead of panicking or ignoring it.
    #[test]
    fn an_image_artifact_is_refused_naming_the_feature() {
        let text = "project = \"p\"\n[environments.dev]\nregion = \"eu-west-1\"\n\
                    account = \"111111111111\"\nstate_bucket = \"state-bucket\"\n\
                    [artifacts.api]\nkind = \"image\"\nrepository = \"p/api\"\n";
        let err = Config::from_toml(text, "deploy.toml".as_ref()).expect_err("refused");
        let ConfigError::Invalid { diagnostics } = err else {
            panic!("not a diagnostic: {err}");
        };
        assert_eq!(diagnostics.len(), 1, "{diagnostics:?}");
        let d = &diagnostics[0];
        assert!(
            d.message.contains("compiled without the `image` feature"),
            "{d}"
        );
        assert_eq!(d.location.as_ref().map(|l| l.line), Some(7), "{d}");
    }
}

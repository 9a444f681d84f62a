//! The seam between loading `deploy.toml` and the kinds: an artifact's resolved settings are a
//! [`KindSpec`] its kind made from the table ([`KindConfig`]); loading never looks inside one.

use std::any::Any;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use serde::Serialize;

use super::kind::ArtifactContext;
use super::raw::RawArtifact;
use crate::catalog::{ArtifactKind, Strategy};

/// One artifact as it applies to one environment: overrides merged, placeholders expanded,
/// its kind's settings resolved.
#[derive(Debug, Clone)]
pub struct ArtifactSpec {
    /// The artifact's name (its key under `[artifacts]`).
    pub name: String,
    /// The kind's settings.
    pub detail: Arc<dyn KindSpec>,
}

impl ArtifactSpec {
    /// The artifact's kind.
    pub fn kind(&self) -> ArtifactKind {
        self.detail.kind()
    }

    /// The kind's settings as `T`, when the artifact is of the kind whose settings `T` holds.
    ///
    /// ```
    /// # use deploy_core::config::Config;
    /// # use deploy_core::kinds::dags::DagsSpec;
    /// let text = "project = \"p\"\n[environments.dev]\nregion = \"eu-west-1\"\n\
    ///             account = \"111111111111\"\nstate_bucket = \"state\"\n\
    ///             [artifacts.dags]\nkind = \"dags\"\nsource = \"dags\"\nbucket = \"dag-bucket\"\n";
    /// let config = Config::from_toml(text, "deploy.toml".as_ref()).unwrap();
    /// let spec = &config.environment("dev").unwrap().artifacts["dags"];
    /// assert_eq!(spec.detail_as::<DagsSpec>().unwrap().bucket, "dag-bucket");
    /// ```
    pub fn detail_as<T: KindSpec>(&self) -> Option<&T> {
        let detail: &dyn Any = self.detail.as_any();
        detail.downcast_ref::<T>()
    }
}

impl PartialEq for ArtifactSpec {
    fn eq(&self, other: &ArtifactSpec) -> bool {
        self.name == other.name && self.detail.to_json() == other.detail.to_json()
    }
}

impl Serialize for ArtifactSpec {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut value = self.detail.to_json();
        if let Some(map) = value.as_object_mut() {
            map.insert("name".into(), self.name.clone().into());
            map.insert("kind".into(), self.kind().as_str().into());
        }
        value.serialize(serializer)
    }
}

/// A place in S3 an artifact writes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Place {
    /// The bucket.
    pub bucket: String,
    /// The key prefix (empty: the whole bucket).
    pub prefix: String,
    /// Whether the artifact also deletes there what it did not write (a sync).
    pub deletes: bool,
    /// Who writes there, for messages, with `{name}` for the artifact's name:
    /// "DAG artifact `{name}`".
    pub owner: &'static str,
    /// The configuration keys that set the place, the most specific first: a problem is
    /// reported at the first one the file writes.
    pub keys: &'static [&'static str],
}

/// An artifact's settings as its kind resolved them.
pub trait KindSpec: fmt::Debug + Send + Sync + Any {
    /// The kind.
    fn kind(&self) -> ArtifactKind;

    /// The rollout strategy.
    fn strategy(&self) -> Strategy;

    /// The settings as JSON (`validate --output json`, plans, equality).
    fn to_json(&self) -> serde_json::Value;

    /// What is wrong with the local source, relative to `base` (the configuration's folder).
    fn check_source(&self, base: &Path) -> Option<String>;

    /// The places in S3 the artifact writes to, checked against each other and the ledgers.
    fn s3_places(&self) -> Vec<S3Place> {
        Vec::new()
    }

    /// `self`, for [`ArtifactSpec::detail_as`].
    fn as_any(&self) -> &dyn Any;
}

/// How a kind reads its table of `deploy.toml`.
pub(crate) trait KindConfig: Send + Sync {
    /// The kind.
    fn kind(&self) -> ArtifactKind;

    /// The kind's settings, or `None` with the problems reported on `ctx`.
    fn resolve(
        &self,
        ctx: &mut ArtifactContext<'_, '_, '_>,
        raw: RawArtifact,
    ) -> Option<Arc<dyn KindSpec>>;

    /// The keys of the kind's table besides `kind`: a key of another kind's table set on an
    /// artifact of this kind is refused naming where it belongs.
    fn keys(&self) -> &'static [&'static str];
}

/// Serializes `value` for [`KindSpec::to_json`]: the kinds' settings are plain data, so this
/// cannot fail; `null` would only stand for a type that is not.
pub(crate) fn json<T: Serialize>(value: &T) -> serde_json::Value {
    serde_json::to_value(value).unwrap_or(serde_json::Value::Null)
}

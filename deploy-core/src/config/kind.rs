//! Resolving one artifact: the context each kind's resolver works in (`kinds::image::config`,
//! `kinds::dags::config`, `kinds::lambda::config`, `rollout::config`).

use std::time::Duration;

use super::diagnose::Resolver;
use super::limits::DurationBounds;
use super::source_map::path;
use crate::catalog::ArtifactKind;
use crate::catalog::Strategy;

/// One artifact of one environment being resolved: reports problems at the key's place in the
/// file, in the environment's override when the key is written there, else in the artifact.
pub(crate) struct ArtifactContext<'r, 'm, 'l> {
    pub(crate) r: &'r mut Resolver<'m>,
    pub(crate) locate: &'l dyn Fn(&[String]) -> Vec<String>,
    pub(crate) name: &'l str,
    /// The environment's account and region, which ARNs in the artifact must name.
    pub(crate) home: super::aws_names::Home<'l>,
}

impl ArtifactContext<'_, '_, '_> {
    /// The full key path of `rel` (relative to the artifact) where the file writes it.
    pub(crate) fn at(&self, rel: &[&str]) -> Vec<String> {
        (self.locate)(&path(rel.iter().copied()))
    }

    /// Whether `rel` is written in an environment's override rather than in the artifact.
    pub(crate) fn in_override(&self, rel: &[&str]) -> bool {
        self.at(rel).first().is_some_and(|s| s == "environments")
    }

    pub(crate) fn error(&mut self, rel: &[&str], message: impl Into<String>, help: Option<String>) {
        let at = self.at(rel);
        self.r.error(&at, message, help);
    }

    /// The value, or `""` with a problem reported when it is missing or blank.
    pub(crate) fn require(&mut self, value: Option<&String>, rel: &[&str]) -> String {
        let at = self.at(rel);
        let what = rel.last().copied().unwrap_or_default();
        self.r
            .require(value.map(String::as_str), &at, what)
            .to_owned()
    }

    /// Whether `strategy` rolls out artifacts of `kind`; reports it when not.
    pub(crate) fn check_strategy(&mut self, kind: ArtifactKind, strategy: Strategy) -> bool {
        let owner = ArtifactKind::of_strategy(strategy);
        if owner == kind {
            return true;
        }
        let allowed: Vec<&str> = kind.strategies().iter().map(|s| s.as_str()).collect();
        self.error(
            &["rollout", "strategy"],
            format!("strategy `{strategy}` is for {owner} artifacts, not {kind}"),
            Some(format!("{kind} strategies: {}", allowed.join(", "))),
        );
        false
    }

    /// The artifact's table read with its kind's schema `T` (unknown keys refused, listing the
    /// kind's own), or `None` with serde's complaint reported where it applies.
    pub(crate) fn read<T: serde::de::DeserializeOwned>(
        &mut self,
        raw: super::raw::RawArtifact,
    ) -> Option<T> {
        self.deserialize(toml::Value::Table(raw.table), &[])
    }

    /// `value` (written at `rel`) as `T`, or `None` with serde's complaint reported there.
    pub(crate) fn deserialize<T: serde::de::DeserializeOwned>(
        &mut self,
        value: toml::Value,
        rel: &[&str],
    ) -> Option<T> {
        let at = |inner: &[String]| {
            let mut full: Vec<String> = rel.iter().map(|s| (*s).to_owned()).collect();
            full.extend(inner.iter().cloned());
            (self.locate)(&full)
        };
        self.r.deserialize(value, &at)
    }

    /// The duration at `rel`, or `default`, within `bounds`.
    pub(crate) fn duration(
        &mut self,
        text: Option<&String>,
        rel: &[&str],
        default: Duration,
        bounds: DurationBounds,
    ) -> Duration {
        let at = self.at(rel);
        self.r
            .duration(text.map(String::as_str), &at, default, bounds)
    }

    /// Reports `problem`, if any, at `rel`.
    pub(crate) fn problem(&mut self, rel: &[&str], problem: Option<super::checks::Problem>) {
        if let Some(problem) = problem {
            self.error(rel, problem.message, Some(problem.help));
        }
    }

    /// Reports a bucket name at `rel` that S3 would refuse.
    pub(crate) fn check_bucket(&mut self, bucket: &str, rel: &[&str]) {
        if let Some(problem) = super::checks::bucket_problem(bucket) {
            self.error(rel, problem.message, Some(problem.help));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each kind module's list agrees with the exhaustive mapping, and together they list all
    /// nine strategies once.
    #[test]
    fn every_strategy_belongs_to_exactly_one_kind() {
        let kinds = [
            ArtifactKind::Image,
            ArtifactKind::Dags,
            ArtifactKind::Lambda,
        ];
        let all: Vec<Strategy> = kinds.iter().flat_map(|k| k.strategies()).copied().collect();
        assert_eq!(all.len(), 9);
        for strategy in all {
            let owners: Vec<ArtifactKind> = kinds
                .into_iter()
                .filter(|k| k.strategies().contains(&strategy))
                .collect();
            assert_eq!(owners, [ArtifactKind::of_strategy(strategy)], "{strategy}");
        }
    }
}

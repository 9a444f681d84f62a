//! `kind = "dags"` in `deploy.toml`: the DAG folder, its bucket and prefix.

use std::path::{Path, PathBuf};

use super::IgnoreSyntax;
use crate::config::kind::ArtifactContext;
use serde::Deserialize;

use crate::config::raw::RawArtifact;
use crate::kinds::{ArtifactKind, DagsSpec};
use crate::rollout::raw::RawRollout;

/// The keys a DAG artifact takes.
pub(crate) const KEYS: &[&str] = &[
    "source",
    "bucket",
    "prefix",
    "whole_bucket",
    "ignore_syntax",
    "include",
    "exclude",
    "max_delete_share",
    "rollout",
];

/// A DAG artifact's table as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDags {
    source: Option<String>,
    bucket: Option<String>,
    prefix: Option<String>,
    whole_bucket: Option<bool>,
    ignore_syntax: Option<String>,
    include: Option<Vec<String>>,
    exclude: Option<Vec<String>>,
    max_delete_share: Option<f64>,
    rollout: Option<RawRollout>,
}

/// The default of `max_delete_share`.
pub const DEFAULT_MAX_DELETE_SHARE: f64 = 0.5;

/// Resolves a DAG artifact (overrides merged, placeholders expanded).
pub(crate) fn resolve(ctx: &mut ArtifactContext<'_, '_, '_>, raw: RawArtifact) -> Option<DagsSpec> {
    let raw: RawDags = ctx.read(raw)?;
    if let Some(rollout) = &raw.rollout
        && ctx.check_strategy(ArtifactKind::Dags, rollout.strategy)
    {
        crate::rollout::config::reject_unused_by_strategy(ctx, rollout);
    }
    let source = ctx.require(raw.source.as_ref(), &["source"]);
    let bucket = ctx.require(raw.bucket.as_ref(), &["bucket"]);
    if !bucket.is_empty() {
        ctx.check_bucket(&bucket, &["bucket"]);
    }
    let prefix = prefix(ctx, raw.prefix.as_deref(), raw.whole_bucket);
    let ignore_syntax = ignore_syntax(ctx, raw.ignore_syntax.as_deref());
    let include = globs(ctx, "include", raw.include.unwrap_or_default());
    let exclude = globs(ctx, "exclude", raw.exclude.unwrap_or_default());
    let max_delete_share = raw.max_delete_share.unwrap_or(DEFAULT_MAX_DELETE_SHARE);
    if !(0.0..=1.0).contains(&max_delete_share) {
        ctx.error(
            &["max_delete_share"],
            format!("`max_delete_share` must be between 0 and 1, not {max_delete_share}"),
            Some("e.g. 0.5 refuses to delete more than half of the files".into()),
        );
    }
    Some(DagsSpec {
        source: PathBuf::from(source),
        bucket,
        prefix,
        ignore_syntax,
        include,
        exclude,
        max_delete_share,
    })
}

/// `prefix`, checked: a folder (ending in `/`) without `..`, `//`, `\\`, `?`, `#` or control
/// characters, leading `/` dropped; empty (the whole bucket) only with `whole_bucket = true`.
fn prefix(
    ctx: &mut ArtifactContext<'_, '_, '_>,
    raw: Option<&str>,
    whole_bucket: Option<bool>,
) -> String {
    let prefix = raw.unwrap_or("dags/").trim_start_matches('/').to_owned();
    if let Some(problem) = prefix_problem(&prefix) {
        ctx.error(&["prefix"], problem, Some(PREFIX_HELP.into()));
    }
    match (prefix.is_empty(), whole_bucket == Some(true)) {
        (true, false) => ctx.error(
            &["prefix"],
            "an empty `prefix` syncs the whole bucket: every object in it not in the DAG folder is deleted",
            Some("name the folder (`prefix = \"dags/\"`), or add `whole_bucket = true` if the bucket holds nothing else".into()),
        ),
        (false, true) => ctx.error(
            &["whole_bucket"],
            format!("`whole_bucket = true` needs an empty `prefix`, and `prefix` is `{prefix}`"),
            Some("remove `whole_bucket`, or set `prefix = \"\"` to sync the whole bucket".into()),
        ),
        _ => {}
    }
    prefix
}

const PREFIX_HELP: &str =
    "write the folder the DAGs go to, ending in `/`, e.g. \"dags/\" or \"airflow/dags/\"";

/// What is wrong with a (non-empty) DAG prefix, if anything.
fn prefix_problem(prefix: &str) -> Option<String> {
    let shown = prefix.escape_debug();
    if let Some(bad) = ["..", "//", "\\", "?", "#"]
        .into_iter()
        .find(|bad| prefix.contains(bad))
    {
        return Some(format!("`prefix` `{shown}` contains `{bad}`"));
    }
    if prefix.chars().any(char::is_control) {
        return Some(format!("`prefix` `{shown}` contains a control character"));
    }
    if !prefix.is_empty() && !prefix.ends_with('/') {
        return Some(format!(
            "`prefix` `{shown}` does not end with `/`; write `{shown}/`"
        ));
    }
    None
}

fn ignore_syntax(ctx: &mut ArtifactContext<'_, '_, '_>, name: Option<&str>) -> IgnoreSyntax {
    let Some(name) = name else {
        return IgnoreSyntax::default();
    };
    IgnoreSyntax::parse(name).unwrap_or_else(|| {
        ctx.error(
            &["ignore_syntax"],
            format!("unknown `ignore_syntax` `{name}`"),
            Some("use \"regexp\" (Airflow 2's default) or \"glob\" (Airflow 3's)".into()),
        );
        IgnoreSyntax::default()
    })
}

/// The globs at `key`, each checked.
fn globs(
    ctx: &mut ArtifactContext<'_, '_, '_>,
    key: &'static str,
    globs: Vec<String>,
) -> Vec<String> {
    if let Err(error) = super::collect::globs(key, &globs) {
        ctx.error(
            &[key],
            error.to_string(),
            Some("gitignore-style globs, relative to `source`".into()),
        );
    }
    globs
}

/// Why the DAG folder cannot be synced, if it cannot.
pub(crate) fn check_source(base: &Path, dags: &DagsSpec) -> Option<String> {
    let dir = crate::config::paths::absolute(base, &dags.source);
    if let Some(problem) = crate::config::paths::kind_problem(&dir, "DAG folder", true) {
        return Some(problem);
    }
    let input = super::plan::SyncDags {
        source: dags.source.display().to_string(),
        bucket: dags.bucket.clone(),
        prefix: dags.prefix.clone(),
        ignore_syntax: dags.ignore_syntax,
        include: dags.include.clone(),
        exclude: dags.exclude.clone(),
        max_delete_share: dags.max_delete_share,
        allow_mass_delete: false,
    };
    super::steps::prepare(base, &input)
        .err()
        .map(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, ConfigError};

    const HEAD: &str = r#"project = "p"
[environments.dev]
region = "eu-west-1"
account = "111111111111"
state_bucket = "s-{env}"
[artifacts.dags]
kind = "dags"
source = "./dags"
bucket = "b-{env}"
"#;

    fn problems(extra: &str) -> Vec<String> {
        match Config::from_toml(&format!("{HEAD}{extra}"), "deploy.toml".as_ref()) {
            Ok(_) => Vec::new(),
            Err(ConfigError::Invalid { diagnostics }) => {
                diagnostics.iter().map(ToString::to_string).collect()
            }
            Err(other) => vec![other.to_string()],
        }
    }

    #[test]
    fn dag_keys_resolve_with_their_defaults() {
        let config = Config::from_toml(HEAD, "deploy.toml".as_ref()).expect("valid");
        let env = config.environment("dev").expect("dev");
        let spec = env.select(&[]).expect("all").remove(0);
        let dags = spec
            .detail_as::<super::DagsSpec>()
            .expect("a dags artifact");
        assert_eq!(dags.ignore_syntax, super::IgnoreSyntax::Regexp);
        assert!((dags.max_delete_share - 0.5).abs() < f64::EPSILON);
        assert!(problems("ignore_syntax = \"glob\"\nexclude = [\"tests/**\"]\n").is_empty());
    }

    #[test]
    fn dag_prefixes_are_folders_of_their_own() {
        for good in ["dags/", "airflow/dags/", "team-a_1/dags.v2/", "/dags/"] {
            assert_eq!(
                super::prefix_problem(good.trim_start_matches('/')),
                None,
                "{good}"
            );
            assert!(
                problems(&format!("prefix = \"{good}\"\n")).is_empty(),
                "{good}"
            );
        }
        assert!(problems("prefix = \"\"\nwhole_bucket = true\n").is_empty());
        for bad in [
            "dags",
            "a/../dags/",
            "dags//",
            "dags\\\\x/",
            "dags?/",
            "dags#/",
            "da\\u0001gs/",
        ] {
            let found = problems(&format!("prefix = \"{bad}\"\n"));
            assert_eq!(found.len(), 1, "{bad}: {found:?}");
            assert!(
                found[0].starts_with("deploy.toml:10:10: `prefix`"),
                "{found:?}"
            );
        }
        let empty = problems("prefix = \"/\"\n");
        assert!(empty[0].contains("syncs the whole bucket"), "{empty:?}");
        let both = problems("prefix = \"dags/\"\nwhole_bucket = true\n");
        assert!(both[0].contains("needs an empty `prefix`"), "{both:?}");
    }

    #[test]
    #[cfg(all(feature = "image", feature = "lambda"))] // its configuration names every kind
    fn bad_dag_keys_are_errors_with_their_place() {
        let found = problems("ignore_syntax = \"gitignore\"\n");
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].starts_with("deploy.toml:10:"), "{}", found[0]);
        assert!(found[0].contains("ignore_syntax"), "{}", found[0]);
        let found = problems("max_delete_share = 1.5\nexclude = [\"!x\"]\n");
        assert_eq!(found.len(), 2, "{found:?}");
        let image =
            "[artifacts.api]\nkind = \"image\"\nrepository = \"p/api\"\nexclude = [\"x\"]\n";
        let found = problems(image);
        assert!(
            found
                .iter()
                .any(|p| p.contains("`exclude` does not apply to image")),
            "{found:?}"
        );
    }
}

//! What each environment writes and deletes in S3 must not overlap: a DAG sync deletes every
//! object under its prefix that is not in the folder, so a DAG location that holds a release
//! ledger (records, pointers, `lock.json`), another DAG artifact's files or a Lambda artifact's
//! zips would delete them. Checked once every environment is resolved, placeholders expanded
//! and overrides merged; two places overlap when they are in the same bucket and one prefix
//! starts with the other (an empty prefix, the whole bucket, overlaps everything in it).

use std::collections::BTreeMap;

use super::Environment;
use super::diagnose::Resolver;
use super::source_map::path;

/// A place in S3 that one owner writes and may delete in.
struct Place {
    bucket: String,
    prefix: String,
    /// Who owns it, for messages: "DAG artifact `dags`".
    owner: String,
    /// Where the configuration sets it.
    at: Vec<String>,
}

impl Place {
    fn overlaps(&self, other: &Place) -> bool {
        self.bucket == other.bucket
            && (self.prefix.starts_with(&other.prefix) || other.prefix.starts_with(&self.prefix))
    }

    fn url(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.prefix)
    }
}

/// Reports every DAG location that overlaps a ledger (of any environment), another DAG
/// artifact (of any environment: two environments syncing one place undo each other), or the zips of a Lambda artifact of its environment, and every
/// Lambda zip location that falls under a ledger.
pub(super) fn check(r: &mut Resolver<'_>, environments: &BTreeMap<String, Environment>) {
    let prefixes: Vec<String> = environments
        .values()
        .map(|env| env.target.state_prefix())
        .collect();
    let ledgers: Vec<Place> = environments
        .values()
        .zip(&prefixes)
        .map(|(env, prefix)| Place {
            bucket: env.target.state_bucket.clone(),
            prefix: prefix.clone(),
            owner: format!("the release ledger and lock of environment `{}`", env.name),
            at: path(["environments", env.name.as_str(), "state_bucket"]),
        })
        .collect();
    let mut earlier: Vec<Place> = Vec::new();
    for env in environments.values() {
        let (dags, zips) = places(r, env);
        for dag in &dags {
            for other in earlier.iter().filter(|d| dag.overlaps(d)) {
                refuse(
                    r,
                    dag,
                    other,
                    "a sync of either would delete the other's files",
                );
            }
        }
        for dag in &dags {
            for ledger in ledgers.iter().filter(|l| dag.overlaps(l)) {
                refuse(r, dag, ledger, "a sync would delete them");
            }
            for zip in zips.iter().filter(|z| dag.overlaps(z)) {
                refuse(r, dag, zip, "a sync would delete them");
            }
        }
        for (i, first) in dags.iter().enumerate() {
            for second in dags[i + 1..].iter().filter(|d| first.overlaps(d)) {
                refuse(
                    r,
                    second,
                    first,
                    "a sync of either would delete the other's files",
                );
            }
        }
        for zip in &zips {
            for ledger in ledgers.iter().filter(|l| zip.overlaps(l)) {
                refuse(r, zip, ledger, "an upload would write among them");
            }
        }
        earlier.extend(dags);
    }
}

fn refuse(r: &mut Resolver<'_>, place: &Place, other: &Place, why: &str) {
    r.error(
        &place.at,
        format!(
            "{} writes to {}, which overlaps {} at {}: {why}",
            place.owner,
            place.url(),
            other.owner,
            other.url()
        ),
        Some(
            "give it a bucket of its own, or a `prefix` that neither starts with nor is the \
             start of the other's"
                .into(),
        ),
    );
}

/// The places `env`'s artifacts sync to (deleting what they did not write), and those they
/// only write to.
fn places(r: &Resolver<'_>, env: &Environment) -> (Vec<Place>, Vec<Place>) {
    let (mut syncs, mut writes) = (Vec::new(), Vec::new());
    for name in &env.artifact_order {
        let Some(spec) = env.artifacts.get(name) else {
            continue;
        };
        for place in spec.detail.s3_places() {
            let key = place
                .keys
                .iter()
                .find(|key| written(r, env, name, key))
                .or(place.keys.last())
                .copied()
                .unwrap_or("kind");
            let owned = Place {
                owner: place
                    .owner
                    .replace("{name}", name)
                    .replace("{env}", &env.name),
                at: located(r, env, name, key),
                bucket: place.bucket,
                prefix: place.prefix,
            };
            if place.deletes {
                syncs.push(owned);
            } else {
                writes.push(owned);
            }
        }
    }
    (syncs, writes)
}

fn override_path(env: &Environment, artifact: &str, key: &str) -> Vec<String> {
    path([
        "environments",
        env.name.as_str(),
        "overrides",
        artifact,
        key,
    ])
}

/// Whether the file writes `key` of `artifact`, in `env`'s override or the artifact.
fn written(r: &Resolver<'_>, env: &Environment, artifact: &str, key: &str) -> bool {
    r.map.contains(&override_path(env, artifact, key))
        || r.map.contains(&path(["artifacts", artifact, key]))
}

/// Where `key` of `artifact` is set for `env`: its override when it has one.
fn located(r: &Resolver<'_>, env: &Environment, artifact: &str, key: &str) -> Vec<String> {
    let over = override_path(env, artifact, key);
    if r.map.contains(&over) {
        over
    } else {
        path(["artifacts", artifact, key])
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, ConfigError};

    const HEAD: &str = r#"project = "planwise"
[environments.dev]
region = "eu-west-1"
account = "111111111111"
state_bucket = "planwise-state-{env}"
[environments.prod]
region = "eu-west-1"
account = "111111111111"
state_bucket = "planwise-state-{env}"
"#;

    fn problems(artifacts: &str) -> Vec<String> {
        match Config::from_toml(&format!("{HEAD}{artifacts}"), "deploy.toml".as_ref()) {
            Ok(_) => Vec::new(),
            Err(ConfigError::Invalid { diagnostics }) => {
                diagnostics.iter().map(ToString::to_string).collect()
            }
            Err(other) => vec![other.to_string()],
        }
    }

    fn dags(name: &str, bucket: &str, prefix: &str) -> String {
        format!(
            "[artifacts.{name}]\nkind = \"dags\"\nsource = \"./dags\"\nbucket = \"{bucket}\"\nprefix = \"{prefix}\"\n"
        )
    }

    #[test]
    fn a_dag_prefix_holding_the_ledger_is_refused() {
        let found = problems(&dags("dags", "planwise-state-{env}", "deploy/planwise/"));
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found[0].starts_with("deploy.toml:14:10: "), "{found:?}");
        assert!(
            found.iter().any(|p| p.contains(
                "overlaps the release ledger and lock of environment `dev` at s3://planwise-state-dev/deploy/planwise/dev/"
            )),
            "{found:?}"
        );
        let inside = problems(&dags(
            "dags",
            "planwise-state-dev",
            "deploy/planwise/dev/dags/",
        ));
        // prod's copy of the artifact names dev's bucket too: refused there as well, and as
        // the same place as dev's.
        let ledger = "the release ledger and lock of environment `dev`";
        assert_eq!(inside.len(), 3, "{inside:?}");
        assert_eq!(inside.iter().filter(|p| p.contains(ledger)).count(), 2);
        assert!(
            inside
                .iter()
                .any(|p| p.contains("overlaps DAG artifact `dags` of environment `dev`")),
            "{inside:?}"
        );
    }

    #[test]
    fn dags_next_to_the_ledger_in_the_state_bucket_pass() {
        assert!(problems(&dags("dags", "planwise-state-{env}", "dags/")).is_empty());
        assert!(problems(&dags("dags", "planwise-state-{env}", "deploy/other/")).is_empty());
        assert!(problems(&dags("dags", "planwise-state-{env}", "deploy/planwise-x/")).is_empty());
    }

    #[test]
    fn the_whole_state_bucket_overlaps_its_ledger() {
        let text = format!(
            "{}whole_bucket = true\n",
            dags("dags", "planwise-state-{env}", "")
        );
        let found = problems(&text);
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(
            found[0].contains("writes to s3://planwise-state-dev/,"),
            "{found:?}"
        );
    }

    #[test]
    fn overlapping_dag_artifacts_are_refused_and_separate_ones_pass() {
        let text = dags("outer", "planwise-dags-{env}", "dags/")
            + &dags("inner", "planwise-dags-{env}", "dags/team/");
        let found = problems(&text);
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(
            found[0].contains("DAG artifact `inner` of environment `dev`"),
            "{found:?}"
        );
        assert!(
            found[0].contains("overlaps DAG artifact `outer`"),
            "{found:?}"
        );
        let apart = dags("a", "planwise-dags-{env}", "dags/a/")
            + &dags("b", "planwise-dags-{env}", "dags/b/")
            + &dags("c", "planwise-other-{env}", "dags/a/");
        assert!(problems(&apart).is_empty());
    }

    #[test]
    fn two_environments_syncing_one_place_are_refused() {
        let found = problems(&dags("dags", "planwise-dags", "dags/"));
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].contains("DAG artifact `dags` of environment `prod` writes to s3://planwise-dags/dags/, which overlaps DAG artifact `dags` of environment `dev`"),
            "{found:?}"
        );
        let text = dags("dags", "planwise-dags", "dags/")
            + "[environments.prod.overrides.dags]\nprefix = \"prod/dags/\"\n";
        assert!(problems(&text).is_empty());
    }

    #[test]
    fn an_override_moving_a_dag_onto_the_ledger_is_refused_where_it_is_written() {
        let text = dags("dags", "planwise-dags-{env}", "dags/")
            + "[environments.prod.overrides.dags]\nbucket = \"planwise-state-prod\"\nprefix = \"deploy/\"\n";
        let found = problems(&text);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].starts_with("deploy.toml:17:10: "), "{found:?}");
        assert!(found[0].contains("environment `prod`"), "{found:?}");
    }

    #[test]
    #[cfg(all(feature = "image", feature = "lambda"))] // its configuration names every kind
    fn a_dag_sync_over_lambda_zips_is_refused() {
        let lambda = "[artifacts.resize]\nkind = \"lambda\"\nfunction = \"resize\"\nartifact_bucket = \"planwise-shared-{env}\"\n";
        let text = format!(
            "{lambda}{}whole_bucket = true\n",
            dags("dags", "planwise-shared-{env}", "")
        );
        let found = problems(&text);
        assert!(
            found
                .iter()
                .any(|p| p.contains("the zips of Lambda artifact `resize`")),
            "{found:?}"
        );
        let beside = format!("{lambda}{}", dags("dags", "planwise-shared-{env}", "dags/"));
        assert!(problems(&beside).is_empty());
    }

    #[test]
    #[cfg(all(feature = "image", feature = "lambda"))] // its configuration names every kind
    fn lambda_zips_may_share_the_state_bucket() {
        let lambda = "[artifacts.resize]\nkind = \"lambda\"\nfunction = \"resize\"\nartifact_bucket = \"planwise-state-{env}\"\n";
        assert!(problems(lambda).is_empty());
    }
}

//! What the DAG prefix holds now, for `status`, and how that drifted from the live release:
//! files added under the prefix, changed (another current S3 version than the release wrote)
//! or removed since. One `ListObjectVersions` of the prefix, and the release's manifest when
//! it is kept apart.

use std::collections::{BTreeSet, HashMap};

use super::DagsSpec;
use super::sync::Place;
use crate::aws::AwsClients;
use crate::kinds::{Drift, Running};
use crate::ledger::ArtifactStatus;

/// What `spec`'s prefix holds, compared with the live release in `status`.
pub(crate) async fn running(
    clients: &AwsClients,
    spec: &DagsSpec,
    status: &ArtifactStatus,
) -> Running {
    let place = Place {
        bucket: spec.bucket.clone(),
        prefix: spec.prefix.clone(),
    };
    let object = format!("s3://{}/{}", place.bucket, place.prefix);
    let current = match place.latest_versions(&clients.s3).await {
        Ok(current) => current,
        Err(err) => return Running::unreadable(object, err),
    };
    let runs = Some(format!("{} files", current.len()));
    let drift = match status.live.as_ref().and_then(|p| p.artifact_ref.as_ref()) {
        None => Vec::new(),
        Some(live) => match super::manifest::files(&clients.s3, live).await {
            Ok(files) => {
                let recorded: Vec<_> = files.into_iter().map(|f| (f.path, f.version_id)).collect();
                compare(&place.prefix, &recorded, &current)
            }
            Err(err) => return Running::unreadable(object, err),
        },
    };
    Running::read(object, runs, drift)
}

/// The files of `current` (path → current version id) that differ from `recorded` (path and
/// the version id the release wrote), each named by its key under `prefix`.
fn compare(
    prefix: &str,
    recorded: &[(String, Option<String>)],
    current: &HashMap<String, String>,
) -> Vec<Drift> {
    let key = |path: &str| format!("{prefix}{path}");
    let mut drift = Vec::new();
    let mut known = BTreeSet::new();
    for (path, version) in recorded {
        known.insert(path.as_str());
        match (current.get(path), version) {
            (None, _) => drift.push(Drift::new(key(path), "removed since the live release")),
            (Some(now), Some(written)) if now != written => drift.push(Drift::new(
                key(path),
                format!("changed since the live release (version {now}, it wrote {written})"),
            )),
            _ => {}
        }
    }
    let added: BTreeSet<&str> = current
        .keys()
        .map(String::as_str)
        .filter(|p| !known.contains(p))
        .collect();
    drift.extend(
        added
            .into_iter()
            .map(|p| Drift::new(key(p), "added since the live release")),
    );
    drift
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn added_changed_and_removed_files_are_each_named() {
        let recorded = vec![
            ("a.py".to_owned(), Some("1".to_owned())),
            ("b.py".to_owned(), Some("2".to_owned())),
            ("c.py".to_owned(), Some("3".to_owned())),
            ("d.py".to_owned(), None),
        ];
        let current: HashMap<String, String> =
            [("a.py", "1"), ("b.py", "9"), ("d.py", "x"), ("e.py", "5")]
                .into_iter()
                .map(|(p, v)| (p.to_owned(), v.to_owned()))
                .collect();
        let drift = compare("dags/", &recorded, &current);
        let named: Vec<(&str, &str)> = drift
            .iter()
            .map(|d| {
                (
                    d.object.as_str(),
                    d.difference.split(' ').next().unwrap_or(""),
                )
            })
            .collect();
        assert_eq!(
            named,
            [
                ("dags/b.py", "changed"),
                ("dags/c.py", "removed"),
                ("dags/e.py", "added")
            ],
            "a file written without a version id is not called changed"
        );
    }
}

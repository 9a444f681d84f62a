//! One artifact of one environment: the base table and the environment's override merged key
//! by key, placeholders expanded, then handed to its kind ([`super::spec::KindConfig`]).

use super::diagnose::Resolver;
use super::kind::ArtifactContext;
use super::placeholder::{self, Vars};
use super::raw::RawArtifact;
use super::source_map::{SourceMap, path};
use super::spec::{ArtifactSpec, KindConfig};

/// `names` (keys of the `section` table) in the order the file writes them.
pub(super) fn file_order<'n>(
    map: &SourceMap,
    section: &str,
    names: impl Iterator<Item = &'n String>,
) -> Vec<String> {
    let mut names: Vec<(usize, String)> = names
        .map(|name| {
            let at = map
                .key_offset(&path([section, name.as_str()]))
                .unwrap_or(usize::MAX);
            (at, name.clone())
        })
        .collect();
    names.sort();
    names.into_iter().map(|(_, name)| name).collect()
}

/// Tables merge key by key; any other value in the override replaces the base.
fn merge(base: &mut toml::Table, over: &toml::Table) {
    for (key, value) in over {
        match (base.get_mut(key), value) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            _ => {
                base.insert(key.clone(), value.clone());
            }
        }
    }
}

/// Expands placeholders in every string of `value`, reporting failures at their path.
fn expand_all(
    r: &mut Resolver<'_>,
    value: &mut toml::Value,
    rel: &mut Vec<String>,
    vars: &[(&str, &str)],
    locate: &dyn Fn(&[String]) -> Vec<String>,
) {
    match value {
        toml::Value::String(s) => {
            if let Err(message) = placeholder::expand(s, vars).map(|e| *s = e) {
                let at = locate(rel);
                r.error(&at, message, None);
            }
        }
        toml::Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                rel.push(i.to_string());
                expand_all(r, item, rel, vars, locate);
                rel.pop();
            }
        }
        toml::Value::Table(table) => {
            for (key, item) in table.iter_mut() {
                rel.push(key.clone());
                expand_all(r, item, rel, vars, locate);
                rel.pop();
            }
        }
        _ => {}
    }
}

/// Refuses, and takes out of `table`, each key that `kind` does not take but another kind of
/// the build does, naming where it belongs; keys no kind takes are left for the kind's own
/// schema to refuse as unknown.
fn refuse_foreign_keys(
    ctx: &mut ArtifactContext<'_, '_, '_>,
    kind: &dyn KindConfig,
    kinds: &[&dyn KindConfig],
    table: &mut toml::Table,
) {
    let own = kind.keys();
    let foreign: Vec<String> = table
        .keys()
        .filter(|key| !own.contains(&key.as_str()))
        .cloned()
        .collect();
    for key in foreign {
        let owners: Vec<&str> = kinds
            .iter()
            .filter(|k| k.keys().contains(&key.as_str()))
            .map(|k| k.kind().as_str())
            .collect();
        if owners.is_empty() {
            continue;
        }
        table.remove(&key);
        let this = kind.kind();
        ctx.error(
            &[&key],
            format!(
                "`{key}` does not apply to {this} artifacts (artifact `{}`): it belongs to {} artifacts",
                ctx.name,
                owners.join(" and ")
            ),
            Some(format!("remove `{key}`; {this} artifacts take: {}", own.join(", "))),
        );
    }
}

pub(super) fn resolve_artifact(
    r: &mut Resolver<'_>,
    env: &str,
    name: &str,
    base: &toml::Table,
    over: Option<&toml::Table>,
    vars: &Vars<'_>,
) -> Option<ArtifactSpec> {
    let map = r.map;
    let locate = |rel: &[String]| -> Vec<String> {
        let mut in_override = path(["environments", env, "overrides", name]);
        in_override.extend(rel.iter().cloned());
        if map.contains(&in_override) {
            return in_override;
        }
        let mut in_base = path(["artifacts", name]);
        in_base.extend(rel.iter().cloned());
        in_base
    };
    let mut merged = base.clone();
    if let Some(over) = over {
        merged
            .remove("kind")
            .map(|kind| merged.insert("kind".into(), kind));
        let mut over = over.clone();
        over.remove("kind");
        merge(&mut merged, &over);
    }
    let mut value = toml::Value::Table(merged);
    expand_all(r, &mut value, &mut Vec::new(), vars, &locate);
    let mut raw: RawArtifact = r.deserialize(value, &locate)?;
    let mut ctx = ArtifactContext {
        r,
        locate: &locate,
        name,
        home: super::aws_names::Home {
            account: vars[2].1,
            region: vars[3].1,
        },
    };
    let kinds = ctx.r.kinds;
    let Some(kind) = kinds.iter().find(|k| k.kind() == raw.kind) else {
        let built: Vec<&str> = kinds.iter().map(|k| k.kind().as_str()).collect();
        ctx.error(
            &["kind"],
            format!(
                "this build of deploy has no `{}` artifacts: it was compiled without the `{}` feature",
                raw.kind, raw.kind
            ),
            Some(format!(
                "use a build with that feature (the `deploy` binary has every kind); this one has: {}",
                built.join(", ")
            )),
        );
        return None;
    };
    refuse_foreign_keys(&mut ctx, *kind, kinds, &mut raw.table);
    let detail = kind.resolve(&mut ctx, raw)?;
    Some(ArtifactSpec {
        name: name.to_owned(),
        detail,
    })
}

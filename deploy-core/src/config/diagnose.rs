//! Problems found while resolving, each with its place in the file; serde's wording rewritten
//! for someone editing `deploy.toml`.

use std::time::Duration;

use serde::de::DeserializeOwned;

use super::Diagnostic;
use super::limits::{DURATION_HELP, DurationBounds};
use super::source_map::SourceMap;

/// Collects diagnostics while resolving.
pub(crate) struct Resolver<'a> {
    pub(crate) map: &'a SourceMap,
    pub(crate) diagnostics: Vec<Diagnostic>,
    /// What is accepted but probably not meant (an unknown region).
    pub(crate) warnings: Vec<Diagnostic>,
    /// The kinds that read artifact tables.
    pub(crate) kinds: &'a [&'a dyn super::spec::KindConfig],
    /// The environment being resolved, when the problems found belong to one.
    pub(crate) env: Option<String>,
    /// The environment each of `diagnostics` was found in (parallel to it).
    pub(crate) origins: Vec<Option<String>>,
}

impl Resolver<'_> {
    pub(crate) fn error(
        &mut self,
        at: &[String],
        message: impl Into<String>,
        help: Option<String>,
    ) {
        let diagnostic = Diagnostic {
            location: self.map.value(at),
            message: message.into(),
            help,
        };
        self.push(diagnostic);
    }

    fn push(&mut self, diagnostic: Diagnostic) {
        if !self.diagnostics.contains(&diagnostic) {
            self.diagnostics.push(diagnostic);
            self.origins.push(self.env.clone());
        }
    }

    /// The problems found, in file order; one that every environment (or several) has but for
    /// the environment's name is reported once, with `{env}` in its place and the environments
    /// named.
    pub(crate) fn take_diagnostics(&mut self, environments: usize) -> Vec<Diagnostic> {
        let found = std::mem::take(&mut self.diagnostics);
        let origins = std::mem::take(&mut self.origins);
        // (as found, with `{env}` for the environment's name, where it was found)
        let mut groups: Vec<(Diagnostic, Diagnostic, Vec<String>)> = Vec::new();
        for (diagnostic, origin) in found.into_iter().zip(origins) {
            let general = match &origin {
                Some(env) => generalize(&diagnostic, env),
                None => diagnostic.clone(),
            };
            let same = groups
                .iter_mut()
                .find(|(_, g, envs)| !envs.is_empty() && *g == general);
            match (same, origin) {
                (Some((_, _, envs)), Some(env)) => envs.push(env),
                (_, origin) => groups.push((diagnostic, general, origin.into_iter().collect())),
            }
        }
        let mut diagnostics: Vec<Diagnostic> = groups
            .into_iter()
            .map(|(first, general, envs)| match envs.len() {
                0 | 1 => first,
                n => {
                    let which = if n == environments {
                        "in every environment".to_owned()
                    } else {
                        format!("in environments {}", envs.join(", "))
                    };
                    Diagnostic {
                        message: format!("{} ({which})", general.message),
                        ..general
                    }
                }
            })
            .collect();
        diagnostics.sort_by(|a, b| {
            let key = |d: &Diagnostic| d.location.as_ref().map(|l| (l.line, l.column));
            key(a).cmp(&key(b))
        });
        diagnostics
    }

    /// Notes something accepted but probably not meant, with its place.
    pub(crate) fn warn(&mut self, at: &[String], message: impl Into<String>, help: Option<String>) {
        let diagnostic = Diagnostic {
            location: self.map.value(at),
            message: message.into(),
            help,
        };
        if !self.warnings.contains(&diagnostic) {
            self.warnings.push(diagnostic);
        }
    }

    /// Deserializes `value` (found at `at`) and reports serde's complaint at the exact key.
    pub(crate) fn deserialize<T: DeserializeOwned>(
        &mut self,
        value: toml::Value,
        locate: &dyn Fn(&[String]) -> Vec<String>,
    ) -> Option<T> {
        let original = value.clone();
        match serde_path_to_error::deserialize::<_, T>(value) {
            Ok(value) => Some(value),
            Err(err) => {
                let mut inner: Vec<String> = err
                    .path()
                    .iter()
                    .filter_map(|segment| match segment {
                        serde_path_to_error::Segment::Map { key } => Some(key.clone()),
                        serde_path_to_error::Segment::Seq { index } => Some(index.to_string()),
                        _ => None,
                    })
                    .collect();
                let full = err.into_inner().to_string();
                // toml appends "in `path`" on later lines; the location says that better.
                let message = full.lines().next().unwrap_or_default().to_owned();
                let unknown = unknown_field(&message);
                if let Some(field) = &unknown
                    && inner.last() != Some(field)
                {
                    inner.push(field.clone());
                }
                let at = locate(&inner);
                let narrowed = allowed_in(&original, &inner);
                let (message, help) = explain_serde(&message, &at, narrowed.as_deref());
                let location = if unknown.is_some() {
                    self.map.key(&at)
                } else {
                    self.map.value(&at)
                };
                self.push(Diagnostic {
                    location,
                    message,
                    help,
                });
                None
            }
        }
    }

    /// Parses the duration at `at` (or takes `default` when it is not set) and checks it
    /// against `bounds`; a problem is reported and `default` returned instead.
    pub(crate) fn duration(
        &mut self,
        text: Option<&str>,
        at: &[String],
        default: Duration,
        bounds: DurationBounds,
    ) -> Duration {
        let Some(text) = text else { return default };
        let key = at.last().map_or("duration", String::as_str);
        match humantime::parse_duration(text.trim()) {
            Ok(d) if bounds.contains(d) => d,
            Ok(d) => {
                let side = if d < bounds.min { "short" } else { "long" };
                self.error(
                    at,
                    format!("`{key}` of `{text}` is too {side}"),
                    Some(format!("allowed: {}", bounds.describe())),
                );
                default
            }
            Err(_) => {
                self.error(
                    at,
                    format!("`{text}` is not a duration"),
                    Some(format!("{DURATION_HELP}; allowed: {}", bounds.describe())),
                );
                default
            }
        }
    }

    pub(crate) fn require<'v>(
        &mut self,
        value: Option<&'v str>,
        at: &[String],
        what: &str,
    ) -> &'v str {
        match value {
            Some(v) if !v.trim().is_empty() => v,
            Some(_) => {
                self.error(at, format!("`{what}` must not be empty"), None);
                ""
            }
            None => {
                let parent = &at[..at.len().saturating_sub(1)];
                self.error(
                    parent,
                    format!("missing `{what}` in `{}`", parent.join(".")),
                    Some(format!("add `{what} = \"...\"`")),
                );
                ""
            }
        }
    }
}

fn unknown_field(message: &str) -> Option<String> {
    let rest = message
        .strip_prefix("unknown field `")
        .or_else(|| message.strip_prefix("unknown variant `"))?;
    if message.starts_with("unknown variant") {
        return None;
    }
    rest.split('`').next().map(str::to_owned)
}

/// "did you mean `scan`? " when the unknown word in `head` (serde's "unknown key `scna`") is
/// close to one of `allowed` (serde's "`a`, `b` or `c`").
/// `diagnostic` with the environment's name written `{env}`, as in the file.
fn generalize(diagnostic: &Diagnostic, env: &str) -> Diagnostic {
    let general = |text: &str| text.replace(env, "{env}");
    Diagnostic {
        location: diagnostic.location.clone(),
        message: general(&diagnostic.message),
        help: diagnostic.help.as_deref().map(general),
    }
}

fn did_you_mean(head: &str, allowed: &str) -> String {
    let word = head.split('`').nth(1).unwrap_or_default();
    let candidates: Vec<&str> = allowed.split('`').skip(1).step_by(2).collect();
    super::placeholder::closest(word, candidates.into_iter())
        .map(|c| format!("did you mean `{c}`? "))
        .unwrap_or_default()
}

/// The keys a `rollout` table takes, for an unknown key found in it (`inner` is the path to
/// that key inside `value`): `strategy` and what the table's strategy uses. `None` when the
/// path is not in a rollout or the strategy is not known.
fn allowed_in(value: &toml::Value, inner: &[String]) -> Option<String> {
    let (_, table_path) = inner.split_last()?;
    if table_path.last().map(String::as_str) != Some("rollout") {
        return None;
    }
    let table = table_path
        .iter()
        .try_fold(value, |v, key| v.get(key.as_str()))?
        .as_table()?;
    let name = table.get("strategy")?.as_str()?;
    let strategy = crate::catalog::Strategy::ALL
        .into_iter()
        .find(|s| s.as_str() == name)?;
    // lambda-linear takes `steps` or `increment`: both are the table's keys.
    let mut keys = vec!["strategy"];
    for key in strategy
        .rollout_keys(true)
        .iter()
        .chain(strategy.rollout_keys(false))
    {
        if !keys.contains(key) {
            keys.push(key);
        }
    }
    let listed: Vec<String> = keys.iter().map(|k| format!("`{k}`")).collect();
    Some(listed.join(", "))
}

/// Rewrites serde's wording into what a user of the file needs; `allowed`, when given, is what
/// the table takes in place of serde's list of every field (a rollout's strategy's keys).
fn explain_serde(message: &str, at: &[String], allowed: Option<&str>) -> (String, Option<String>) {
    let key = at.join(".");
    if let Some((head, expected)) = message.split_once(", expected ") {
        let head = head.replace("unknown field", "unknown key");
        let serde_list = expected
            .trim_start_matches("one of ")
            .trim_start_matches("a ");
        let allowed = match allowed {
            Some(allowed) if head.starts_with("unknown key") => allowed.to_owned(),
            _ => serde_list.to_owned(),
        };
        let hint = did_you_mean(&head, &allowed);
        if head.starts_with("unknown key") {
            let table = at[..at.len().saturating_sub(1)].join(".");
            let place = if table.is_empty() {
                "at the top level".to_owned()
            } else {
                format!("in `{table}`")
            };
            return (
                format!("{head} {place}"),
                Some(format!("{hint}allowed: {allowed}")),
            );
        }
        if head.starts_with("unknown variant") {
            return (
                format!("{head} for `{key}`"),
                Some(format!("{hint}allowed: {allowed}")),
            );
        }
        return (
            format!("wrong type for `{key}`: {head}"),
            Some(format!("expected {expected}")),
        );
    }
    if let Some(field) = message.strip_prefix("missing field ") {
        let field = field.trim_matches('`');
        let full = if key.is_empty() {
            field.to_owned()
        } else {
            format!("{key}.{field}")
        };
        return (
            format!("missing required key `{full}`"),
            Some(format!("add `{field} = ...` here")),
        );
    }
    (format!("`{key}`: {message}"), None)
}

#[cfg(test)]
mod tests {
    use super::explain_serde;

    #[test]
    fn an_unknown_key_close_to_an_allowed_one_names_it() {
        let at = ["artifacts".to_owned(), "api".to_owned(), "scna".to_owned()];
        let (message, help) = explain_serde(
            "unknown field `scna`, expected one of `repository`, `source`, `scan`, `rollout`",
            &at,
            None,
        );
        assert_eq!(message, "unknown key `scna` in `artifacts.api`");
        let help = help.unwrap_or_default();
        assert!(help.starts_with("did you mean `scan`? allowed: "), "{help}");
    }

    #[test]
    fn an_unknown_key_far_from_every_allowed_one_only_lists_them() {
        let at = [
            "artifacts".to_owned(),
            "api".to_owned(),
            "function".to_owned(),
        ];
        let (_, help) = explain_serde(
            "unknown field `function`, expected one of `repository`, `source`, `scan`",
            &at,
            None,
        );
        assert_eq!(
            help.as_deref(),
            Some("allowed: `repository`, `source`, `scan`")
        );
    }
}

#[cfg(test)]
mod rollout_keys {
    use super::allowed_in;

    fn allowed(artifact: &str) -> Option<String> {
        let value: toml::Value = toml::from_str(artifact).expect("toml");
        let inner = ["rollout".to_owned(), "stpes".to_owned()];
        allowed_in(&value, &inner)
    }

    #[test]
    fn an_unknown_rollout_key_lists_only_its_strategy_keys() {
        let ecs = allowed("[rollout]\nstrategy = \"ecs-rolling\"\nstpes = 1\n").expect("a list");
        assert!(ecs.starts_with("`strategy`, `cluster`"), "{ecs}");
        assert!(ecs.contains("`fail_fast`"), "{ecs}");
        assert!(
            !ecs.contains("`steps`") && !ecs.contains("`families`"),
            "{ecs}"
        );
        let linear = allowed("[rollout]\nstrategy = \"lambda-linear\"\n").expect("a list");
        assert!(
            linear.contains("`steps`") && linear.contains("`increment`"),
            "{linear}"
        );
        assert!(!linear.contains("`cluster`"), "{linear}");
    }

    #[test]
    fn outside_a_rollout_or_without_a_known_strategy_nothing_is_narrowed() {
        assert_eq!(allowed("[rollout]\nstrategy = \"sideways\"\n"), None);
        assert_eq!(allowed("[rollout]\ncluster = \"c\"\n"), None);
        let value: toml::Value = toml::from_str("[env]\nA = \"1\"\n").expect("toml");
        assert_eq!(
            allowed_in(&value, &["env".to_owned(), "B".to_owned()]),
            None
        );
    }
}

//! Raw TOML to typed values: overrides merged, placeholders expanded, every rule checked,
//! every problem reported with its location.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::DeserializeOwned;
use toml::de::DeTable;

use super::placeholder::{self, closest};
use super::raw::{
    RawArtifact, RawConfig, RawEndpoints, RawEnvironment, RawHealthCheck, RawPreDeploy, RawRollout,
};
use super::source_map::{SourceMap, path};
use super::{Config, ConfigError, Diagnostic, Environment, Notifications, Settings};
use crate::artifact::{
    ArtifactDetail, ArtifactKind, ArtifactSpec, DagsSpec, ImageSource, ImageSpec, LambdaSpec,
    ScanGate,
};
use crate::rollout::{EcsService, HealthCheck, ImageRollout, LambdaRollout, PreDeploy, Strategy};
use crate::target::{AccountId, Endpoints, Target};

const DURATION_HELP: &str = "write a number with a unit: 500ms, 30s, 5m, 1h30m";

/// Collects diagnostics while resolving.
struct Resolver<'a> {
    map: &'a SourceMap,
    diagnostics: Vec<Diagnostic>,
}

impl Resolver<'_> {
    fn error(&mut self, at: &[String], message: impl Into<String>, help: Option<String>) {
        let diagnostic = Diagnostic {
            location: self.map.value(at),
            message: message.into(),
            help,
        };
        if !self.diagnostics.contains(&diagnostic) {
            self.diagnostics.push(diagnostic);
        }
    }

    /// Deserializes `value` (found at `at`) and reports serde's complaint at the exact key.
    fn deserialize<T: DeserializeOwned>(
        &mut self,
        value: toml::Value,
        locate: &dyn Fn(&[String]) -> Vec<String>,
    ) -> Option<T> {
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
                let (message, help) = explain_serde(&message, &at);
                let location = if unknown.is_some() {
                    self.map.key(&at)
                } else {
                    self.map.value(&at)
                };
                let diagnostic = Diagnostic {
                    location,
                    message,
                    help,
                };
                if !self.diagnostics.contains(&diagnostic) {
                    self.diagnostics.push(diagnostic);
                }
                None
            }
        }
    }

    fn duration(&mut self, text: Option<&str>, at: &[String], default: Duration) -> Duration {
        let Some(text) = text else { return default };
        match humantime::parse_duration(text) {
            Ok(d) if !d.is_zero() => d,
            Ok(_) => {
                self.error(
                    at,
                    format!("duration `{text}` must be greater than zero"),
                    None,
                );
                default
            }
            Err(_) => {
                self.error(
                    at,
                    format!("`{text}` is not a duration"),
                    Some(DURATION_HELP.into()),
                );
                default
            }
        }
    }

    fn require<'v>(&mut self, value: Option<&'v str>, at: &[String], what: &str) -> &'v str {
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

/// Rewrites serde's wording into what a user of the file needs.
fn explain_serde(message: &str, at: &[String]) -> (String, Option<String>) {
    let key = at.join(".");
    if let Some((head, expected)) = message.split_once(", expected ") {
        let head = head.replace("unknown field", "unknown key");
        let allowed = expected
            .trim_start_matches("one of ")
            .trim_start_matches("a ")
            .to_owned();
        if head.starts_with("unknown key") {
            let table = at[..at.len().saturating_sub(1)].join(".");
            let place = if table.is_empty() {
                "at the top level".to_owned()
            } else {
                format!("in `{table}`")
            };
            return (
                format!("{head} {place}"),
                Some(format!("allowed: {allowed}")),
            );
        }
        if head.starts_with("unknown variant") {
            return (
                format!("{head} for `{key}`"),
                Some(format!("allowed: {allowed}")),
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

pub(super) fn resolve(text: &str, file: &Path) -> Result<Config, ConfigError> {
    let empty = SourceMap::default();
    let de_table = DeTable::parse(text).map_err(|err| syntax_error(&err, file, text, &empty))?;
    let map = SourceMap::new(file, text, de_table.get_ref());
    let root: toml::Table =
        toml::from_str(text).map_err(|err| syntax_error(&err, file, text, &map))?;

    let mut r = Resolver {
        map: &map,
        diagnostics: Vec::new(),
    };
    let raw: Option<RawConfig> = r.deserialize(toml::Value::Table(root), &|inner| inner.to_vec());
    let Some(raw) = raw else {
        return Err(ConfigError::Invalid {
            diagnostics: r.diagnostics,
        });
    };
    let mut config = resolve_config(&mut r, raw, file);
    config.sha256 = crate::hash::sha256_hex(text.as_bytes());
    if r.diagnostics.is_empty() {
        Ok(config)
    } else {
        r.diagnostics.sort_by(|a, b| {
            let key = |d: &Diagnostic| d.location.as_ref().map(|l| (l.line, l.column));
            key(a).cmp(&key(b))
        });
        Err(ConfigError::Invalid {
            diagnostics: r.diagnostics,
        })
    }
}

fn syntax_error(err: &toml::de::Error, file: &Path, text: &str, map: &SourceMap) -> ConfigError {
    let location = err.span().map(|span| {
        if map.contains(&[]) {
            map.offset(span.start)
        } else {
            SourceMap::new(file, text, &DeTable::default()).offset(span.start)
        }
    });
    let mut message = err.message().trim().to_owned();
    // A key followed by nothing reads to the parser as an unquoted string; say what happened.
    let rest_of_line = err
        .span()
        .and_then(|span| text.get(span.start..))
        .and_then(|rest| rest.lines().next())
        .map(str::trim);
    if message.starts_with("string values must be quoted")
        && rest_of_line.is_some_and(|rest| rest.is_empty() || rest.starts_with('#'))
    {
        message = "missing value after `=`".to_owned();
    }
    ConfigError::Invalid {
        diagnostics: vec![Diagnostic {
            location,
            message: format!("invalid TOML: {message}"),
            help: None,
        }],
    }
}

fn resolve_config(r: &mut Resolver<'_>, raw: RawConfig, file: &Path) -> Config {
    check_name(r, &raw.project, &path(["project"]), "project");
    if raw.environments.is_empty() {
        r.error(
            &path(["environments"]),
            "no environments defined",
            Some("add at least one `[environments.<name>]` table".into()),
        );
    }
    for name in raw.artifacts.keys() {
        check_name(r, name, &path(["artifacts", name.as_str()]), "artifact");
    }
    check_promotions(r, &raw.environments);

    let mut environments = BTreeMap::new();
    for (name, env) in &raw.environments {
        if let Some(environment) = resolve_environment(r, &raw, name, env) {
            environments.insert(name.clone(), environment);
        }
    }
    let environment_order = file_order(r.map, "environments", environments.keys());
    Config {
        project: raw.project.clone(),
        environments,
        environment_order,
        notifications: Notifications {
            slack_webhook_env: raw
                .notifications
                .as_ref()
                .and_then(|n| n.slack_webhook_env.clone()),
        },
        settings: resolve_settings(r, raw.settings.as_ref()),
        path: file.to_path_buf(),
        sha256: String::new(),
        source_map: r.map.clone(),
    }
}

fn check_name(r: &mut Resolver<'_>, name: &str, at: &[String], what: &str) {
    let valid = name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if !valid {
        r.error(
            at,
            format!("invalid {what} name `{name}`"),
            Some("use lowercase letters, digits, `-` and `_`, starting with a letter".into()),
        );
    }
}

fn check_promotions(r: &mut Resolver<'_>, environments: &BTreeMap<String, RawEnvironment>) {
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

/// A byte size: a plain number, or one with a `KiB`, `MiB`, `GiB` (or `KB`, `MB`, `GB`) suffix.
fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().ok()?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        _ => return None,
    };
    number.checked_mul(factor)
}

fn resolve_settings(r: &mut Resolver<'_>, raw: Option<&super::raw::RawSettings>) -> Settings {
    let defaults = Settings::default();
    let Some(raw) = raw else { return defaults };
    let at = |key: &str| path(["settings", key]);
    let retry_max_attempts = raw
        .retry_max_attempts
        .unwrap_or(defaults.retry_max_attempts);
    if retry_max_attempts == 0 {
        r.error(
            &at("retry_max_attempts"),
            "`retry_max_attempts` must be at least 1",
            None,
        );
    }
    let parallel_uploads = raw.parallel_uploads.unwrap_or(defaults.parallel_uploads);
    if !(1..=32).contains(&parallel_uploads) {
        r.error(
            &at("parallel_uploads"),
            format!("`parallel_uploads` is {parallel_uploads}; it must be between 1 and 32"),
            None,
        );
    }
    let part_size = match raw.part_size.as_deref().map(parse_size) {
        None => defaults.part_size,
        Some(Some(size)) if crate::registry::ECR_PART_SIZE.contains(&size) => size,
        Some(_) => {
            r.error(
                &at("part_size"),
                format!(
                    "`part_size` is `{}`; ECR takes upload parts of 5 MiB to 20 MiB",
                    raw.part_size.as_deref().unwrap_or_default()
                ),
                Some("write a size such as \"10MiB\" or \"5242880\"".into()),
            );
            defaults.part_size
        }
    };
    Settings {
        lock_ttl: r.duration(raw.lock_ttl.as_deref(), &at("lock_ttl"), defaults.lock_ttl),
        poll_interval: r.duration(
            raw.poll_interval.as_deref(),
            &at("poll_interval"),
            defaults.poll_interval,
        ),
        timeout: r.duration(raw.timeout.as_deref(), &at("timeout"), defaults.timeout),
        retry_max_attempts,
        parallel_uploads,
        upload: raw.upload.unwrap_or(defaults.upload),
        part_size,
        scan_timeout: r.duration(
            raw.scan_timeout.as_deref(),
            &at("scan_timeout"),
            defaults.scan_timeout,
        ),
    }
}

fn resolve_environment(
    r: &mut Resolver<'_>,
    raw: &RawConfig,
    name: &str,
    env: &RawEnvironment,
) -> Option<Environment> {
    let at = |key: &str| path(["environments", name, key]);
    check_name(r, name, &path(["environments", name]), "environment");

    let region = env.region.trim();
    let region_ok = region.split('-').count() >= 3
        && region
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !region_ok {
        r.error(
            &at("region"),
            format!("`{region}` is not an AWS region"),
            Some("write a region code such as eu-west-1 or us-east-1".into()),
        );
    }
    let account = AccountId::parse(env.account.trim());
    if account.is_none() {
        r.error(
            &at("account"),
            format!("`{}` is not an AWS account id", env.account),
            Some("write the 12-digit account id as a string, e.g. \"111111111111\"".into()),
        );
    }
    let vars = [
        ("env", name),
        ("project", raw.project.as_str()),
        ("account", env.account.as_str()),
        ("region", region),
    ];
    let mut expand = |r: &mut Resolver<'_>, value: &str, key: &[String]| -> String {
        placeholder::expand(value, &vars).unwrap_or_else(|message| {
            r.error(key, message, None);
            value.to_owned()
        })
    };

    let state_bucket = expand(r, &env.state_bucket, &at("state_bucket"));
    // A failed expansion was reported already; the bucket check would only repeat it.
    if !state_bucket.contains('{') && !valid_bucket_name(&state_bucket) {
        r.error(
            &at("state_bucket"),
            format!("`{state_bucket}` is not a valid S3 bucket name"),
            Some("3-63 characters: lowercase letters, digits, `-` and `.`".into()),
        );
    }
    let role_arn = env.role_arn.as_ref().map(|arn| {
        let arn = expand(r, arn, &at("role_arn"));
        if !(arn.starts_with("arn:aws") && arn.contains(":iam::") && arn.contains(":role/")) {
            r.error(
                &at("role_arn"),
                format!("`{arn}` is not an IAM role ARN"),
                Some("expected arn:aws:iam::<account>:role/<name>".into()),
            );
        }
        arn
    });
    let profile = env.profile.as_ref().map(|p| expand(r, p, &at("profile")));
    let endpoints = resolve_endpoints(r, name, &env.endpoints, &mut expand);

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

    let mut artifacts = BTreeMap::new();
    for (artifact, base) in &raw.artifacts {
        let spec = resolve_artifact(r, name, artifact, base, env.overrides.get(artifact), &vars);
        if let Some(spec) = spec {
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
        artifact_order: file_order(r.map, "artifacts", artifacts.keys()),
        artifacts,
    })
}

/// `names` (keys of the `section` table) in the order the file writes them.
fn file_order<'n>(
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

fn resolve_endpoints(
    r: &mut Resolver<'_>,
    env: &str,
    raw: &RawEndpoints,
    expand: &mut dyn FnMut(&mut Resolver<'_>, &str, &[String]) -> String,
) -> Endpoints {
    let mut one = |r: &mut Resolver<'_>, service: &str, value: &Option<String>| {
        value.as_ref().map(|url| {
            let at = path(["environments", env, "endpoints", service]);
            let url = expand(r, url, &at);
            let is_url = url.starts_with("http://") || url.starts_with("https://");
            let is_host = service == "registry" && !url.contains('/') && !url.is_empty();
            if !(is_url || is_host) {
                r.error(
                    &at,
                    format!("endpoint `{url}` for {service} is not an http(s) URL"),
                    Some("write it like http://127.0.0.1:5000".into()),
                );
            }
            url
        })
    };
    Endpoints {
        sts: one(r, "sts", &raw.sts),
        s3: one(r, "s3", &raw.s3),
        ecr: one(r, "ecr", &raw.ecr),
        registry: one(r, "registry", &raw.registry),
        ecs: one(r, "ecs", &raw.ecs),
        codedeploy: one(r, "codedeploy", &raw.codedeploy),
        lambda: one(r, "lambda", &raw.lambda),
    }
}

fn valid_bucket_name(name: &str) -> bool {
    (3..=63).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric())
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

fn resolve_artifact(
    r: &mut Resolver<'_>,
    env: &str,
    name: &str,
    base: &toml::Table,
    over: Option<&toml::Table>,
    vars: &[(&str, &str)],
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
    let raw: RawArtifact = r.deserialize(value, &locate)?;
    let mut ctx = ArtifactContext {
        r,
        locate: &locate,
        name,
    };
    let detail = match raw.kind {
        ArtifactKind::Image => ArtifactDetail::Image(ctx.image(raw)?),
        ArtifactKind::Dags => ArtifactDetail::Dags(ctx.dags(raw)?),
        ArtifactKind::Lambda => ArtifactDetail::Lambda(ctx.lambda(raw)?),
    };
    Some(ArtifactSpec {
        name: name.to_owned(),
        detail,
    })
}

struct ArtifactContext<'r, 'm, 'l> {
    r: &'r mut Resolver<'m>,
    locate: &'l dyn Fn(&[String]) -> Vec<String>,
    name: &'l str,
}

impl ArtifactContext<'_, '_, '_> {
    fn at(&self, rel: &[&str]) -> Vec<String> {
        (self.locate)(&path(rel.iter().copied()))
    }

    fn error(&mut self, rel: &[&str], message: impl Into<String>, help: Option<String>) {
        let at = self.at(rel);
        self.r.error(&at, message, help);
    }

    fn require(&mut self, value: Option<&String>, rel: &[&str]) -> String {
        let at = self.at(rel);
        let what = rel.last().copied().unwrap_or_default();
        self.r
            .require(value.map(String::as_str), &at, what)
            .to_owned()
    }

    /// Rejects keys set on this artifact that its kind does not use.
    fn reject(&mut self, kind: ArtifactKind, present: &[(&str, bool)], rel: &[&str]) {
        for (key, set) in present {
            if *set {
                let mut full = rel.to_vec();
                full.push(key);
                self.error(
                    &full,
                    format!(
                        "`{key}` does not apply to {kind} artifacts (artifact `{}`)",
                        self.name
                    ),
                    Some(format!("remove `{key}`; {}", kind_keys(kind))),
                );
            }
        }
    }

    fn check_strategy(&mut self, kind: ArtifactKind, strategy: Strategy) -> bool {
        if strategy.kind() == kind {
            return true;
        }
        let allowed: Vec<&str> = Strategy::for_kind(kind)
            .iter()
            .map(|s| s.as_str())
            .collect();
        self.error(
            &["rollout", "strategy"],
            format!(
                "strategy `{strategy}` is for {} artifacts, not {kind}",
                strategy.kind()
            ),
            Some(format!("{kind} strategies: {}", allowed.join(", "))),
        );
        false
    }

    fn duration(&mut self, text: Option<&String>, rel: &[&str], default: Duration) -> Duration {
        let at = self.at(rel);
        self.r.duration(text.map(String::as_str), &at, default)
    }

    fn image(&mut self, raw: RawArtifact) -> Option<ImageSpec> {
        self.reject(
            ArtifactKind::Image,
            &[
                ("bucket", raw.bucket.is_some()),
                ("prefix", raw.prefix.is_some()),
                ("function", raw.function.is_some()),
                ("alias", raw.alias.is_some()),
                ("artifact_bucket", raw.artifact_bucket.is_some()),
            ],
            &[],
        );
        let repository = self.require(raw.repository.as_ref(), &["repository"]);
        if !repository.is_empty()
            && !repository.contains(['{', '}'])
            && !valid_repository(&repository)
        {
            self.error(
                &["repository"],
                format!("`{repository}` is not a valid ECR repository name"),
                Some(
                    "2-256 characters: lowercase letters, digits, and `-` `_` `.` `/` between them"
                        .into(),
                ),
            );
        }
        let source = raw.source.as_deref().and_then(|s| self.image_source(s));
        let rollout = match raw.rollout {
            None => ImageRollout::None,
            Some(rollout) => self.image_rollout(rollout)?,
        };
        Some(ImageSpec {
            repository,
            source,
            scan: raw.scan.unwrap_or(ScanGate::None),
            scan_on_publish: raw.scan_on_publish.unwrap_or(false),
            create_repository: raw.create_repository.unwrap_or(false),
            env: raw.env.unwrap_or_default(),
            secrets: raw.secrets.unwrap_or_default(),
            rollout,
        })
    }

    fn image_source(&mut self, text: &str) -> Option<ImageSource> {
        let parsed = parse_image_source(text);
        if let Err(message) = &parsed {
            self.error(
                &["source"],
                message.clone(),
                Some("use oci:<layout dir>[:tag], docker-archive:<file.tar> or docker://<registry>/<repo>:<tag>".into()),
            );
        }
        parsed.ok()
    }

    fn image_rollout(&mut self, raw: RawRollout) -> Option<ImageRollout> {
        if !self.check_strategy(ArtifactKind::Image, raw.strategy) {
            return None;
        }
        self.reject(
            ArtifactKind::Image,
            &[
                ("steps", raw.steps.is_some()),
                ("increment", raw.increment.is_some()),
                ("interval", raw.interval.is_some()),
                ("alarms", raw.alarms.is_some()),
            ],
            &["rollout"],
        );
        self.reject_unused_by_strategy(&raw);
        let keep_revisions = raw.keep_revisions.unwrap_or(5);
        if keep_revisions == 0 {
            self.error(
                &["rollout", "keep_revisions"],
                "`keep_revisions` must be at least 1 (the running revision is always kept)",
                None,
            );
        }
        let pre_deploy = raw.pre_deploy.as_ref().map(|p| self.pre_deploy(p));
        let health_check = raw
            .health_check
            .as_ref()
            .map(|h| self.health_check(h, &["rollout", "health_check"]));
        let timeout = self.duration(
            raw.timeout.as_ref(),
            &["rollout", "timeout"],
            Duration::from_secs(15 * 60),
        );
        let service = |ctx: &mut Self| EcsService {
            cluster: ctx.require(raw.cluster.as_ref(), &["rollout", "cluster"]),
            service: ctx.require(raw.service.as_ref(), &["rollout", "service"]),
            container: ctx.require(raw.container.as_ref(), &["rollout", "container"]),
            keep_revisions,
            pre_deploy: pre_deploy.clone(),
            health_check: health_check.clone(),
            timeout,
        };
        Some(match raw.strategy {
            Strategy::EcsRolling => ImageRollout::EcsRolling(service(self)),
            Strategy::CodedeployBlueGreen => ImageRollout::CodedeployBlueGreen {
                service: service(self),
                application: self.require(raw.application.as_ref(), &["rollout", "application"]),
                deployment_group: self.require(
                    raw.deployment_group.as_ref(),
                    &["rollout", "deployment_group"],
                ),
            },
            Strategy::TaskDefinitions => {
                let families = raw.families.clone().unwrap_or_default();
                if families.is_empty() {
                    let at: &[&str] = if raw.families.is_some() {
                        &["rollout", "families"]
                    } else {
                        &["rollout"]
                    };
                    self.error(
                        at,
                        "strategy `task-definitions` needs `families`",
                        Some("add `families = [\"<family>\", ...]`".into()),
                    );
                }
                if pre_deploy.is_some() && raw.cluster.is_none() {
                    self.error(
                        &["rollout", "pre_deploy"],
                        "`pre_deploy` runs a task and needs `cluster` in the rollout",
                        Some("add `cluster = \"...\"`".into()),
                    );
                }
                ImageRollout::TaskDefinitions {
                    families,
                    container: self.require(raw.container.as_ref(), &["rollout", "container"]),
                    cluster: raw.cluster.clone(),
                    keep_revisions,
                    pre_deploy,
                }
            }
            _ => ImageRollout::None,
        })
    }

    fn pre_deploy(&mut self, raw: &RawPreDeploy) -> PreDeploy {
        if raw.task_definition.trim().is_empty() {
            self.error(
                &["rollout", "pre_deploy", "task_definition"],
                "`task_definition` must not be empty",
                None,
            );
        }
        PreDeploy {
            task_definition: raw.task_definition.clone(),
            command: raw.command.clone(),
            timeout: self.duration(
                raw.timeout.as_ref(),
                &["rollout", "pre_deploy", "timeout"],
                Duration::from_secs(15 * 60),
            ),
        }
    }

    fn health_check(&mut self, raw: &RawHealthCheck, rel: &[&str]) -> HealthCheck {
        if !(raw.url.starts_with("http://") || raw.url.starts_with("https://")) {
            let mut at = rel.to_vec();
            at.push("url");
            self.error(
                &at,
                format!("health check URL `{}` is not an http(s) URL", raw.url),
                None,
            );
        }
        let status = raw.expect_status.unwrap_or(200);
        if !(100..=599).contains(&status) {
            let mut at = rel.to_vec();
            at.push("expect_status");
            self.error(
                &at,
                format!("`{status}` is not an HTTP status code"),
                Some("use 100-599".into()),
            );
        }
        let mut at = rel.to_vec();
        at.push("timeout");
        HealthCheck {
            url: raw.url.clone(),
            expect_status: status,
            timeout: self.duration(raw.timeout.as_ref(), &at, Duration::from_secs(120)),
        }
    }

    fn dags(&mut self, raw: RawArtifact) -> Option<DagsSpec> {
        self.reject(
            ArtifactKind::Dags,
            &[
                ("env", raw.env.is_some()),
                ("secrets", raw.secrets.is_some()),
                ("repository", raw.repository.is_some()),
                ("scan", raw.scan.is_some()),
                ("scan_on_publish", raw.scan_on_publish.is_some()),
                ("create_repository", raw.create_repository.is_some()),
                ("function", raw.function.is_some()),
                ("alias", raw.alias.is_some()),
                ("artifact_bucket", raw.artifact_bucket.is_some()),
            ],
            &[],
        );
        if let Some(rollout) = &raw.rollout
            && self.check_strategy(ArtifactKind::Dags, rollout.strategy)
        {
            self.reject_rollout_keys(ArtifactKind::Dags, rollout);
        }
        let source = self.require(raw.source.as_ref(), &["source"]);
        let bucket = self.require(raw.bucket.as_ref(), &["bucket"]);
        if !bucket.is_empty() && !valid_bucket_name(&bucket) {
            self.error(
                &["bucket"],
                format!("`{bucket}` is not a valid S3 bucket name"),
                None,
            );
        }
        let mut prefix = raw.prefix.unwrap_or_else(|| "dags/".into());
        let trimmed = prefix.trim_start_matches('/').to_owned();
        prefix = trimmed;
        if !prefix.is_empty() && !prefix.ends_with('/') {
            prefix.push('/');
        }
        Some(DagsSpec {
            source: PathBuf::from(source),
            bucket,
            prefix,
        })
    }

    /// Rejects rollout keys of this kind that the chosen strategy does not use. When an
    /// environment override switches the strategy, keys left from the base artifact are
    /// tolerated: they belong to the strategy the other environments use.
    fn reject_unused_by_strategy(&mut self, raw: &RawRollout) {
        let used: &[&str] = match raw.strategy {
            Strategy::EcsRolling => &[
                "cluster",
                "service",
                "container",
                "pre_deploy",
                "keep_revisions",
                "health_check",
                "timeout",
            ],
            Strategy::CodedeployBlueGreen => &[
                "cluster",
                "service",
                "container",
                "application",
                "deployment_group",
                "pre_deploy",
                "keep_revisions",
                "health_check",
                "timeout",
            ],
            Strategy::TaskDefinitions => &[
                "families",
                "container",
                "cluster",
                "keep_revisions",
                "pre_deploy",
            ],
            Strategy::LambdaAllAtOnce => &["alarms", "health_check"],
            Strategy::LambdaCanary => &["steps", "interval", "alarms", "health_check"],
            Strategy::LambdaLinear if raw.steps.is_some() => {
                &["steps", "interval", "alarms", "health_check"]
            }
            Strategy::LambdaLinear => &["increment", "interval", "alarms", "health_check"],
            Strategy::None | Strategy::S3Sync => &[],
        };
        let set = [
            ("cluster", raw.cluster.is_some()),
            ("service", raw.service.is_some()),
            ("container", raw.container.is_some()),
            ("families", raw.families.is_some()),
            ("application", raw.application.is_some()),
            ("deployment_group", raw.deployment_group.is_some()),
            ("pre_deploy", raw.pre_deploy.is_some()),
            ("keep_revisions", raw.keep_revisions.is_some()),
            ("steps", raw.steps.is_some()),
            ("increment", raw.increment.is_some()),
            ("interval", raw.interval.is_some()),
            ("alarms", raw.alarms.is_some()),
            ("health_check", raw.health_check.is_some()),
            ("timeout", raw.timeout.is_some()),
        ];
        let in_override = |at: &[String]| at.first().is_some_and(|s| s == "environments");
        let strategy_overridden = in_override(&self.at(&["rollout", "strategy"]));
        for (key, present) in set {
            if !present || used.contains(&key) {
                continue;
            }
            if strategy_overridden && !in_override(&self.at(&["rollout", key])) {
                continue;
            }
            self.error(
                &["rollout", key],
                format!("`{key}` does not apply to strategy `{}`", raw.strategy),
                Some(format!(
                    "`{}` takes: {}",
                    raw.strategy,
                    if used.is_empty() {
                        "no other keys".to_owned()
                    } else {
                        used.join(", ")
                    }
                )),
            );
        }
    }

    fn reject_rollout_keys(&mut self, kind: ArtifactKind, rollout: &RawRollout) {
        let mut present = vec![
            ("cluster", rollout.cluster.is_some()),
            ("service", rollout.service.is_some()),
            ("container", rollout.container.is_some()),
            ("families", rollout.families.is_some()),
            ("application", rollout.application.is_some()),
            ("deployment_group", rollout.deployment_group.is_some()),
            ("pre_deploy", rollout.pre_deploy.is_some()),
            ("keep_revisions", rollout.keep_revisions.is_some()),
        ];
        if kind == ArtifactKind::Dags {
            present.extend([
                ("steps", rollout.steps.is_some()),
                ("increment", rollout.increment.is_some()),
                ("interval", rollout.interval.is_some()),
                ("alarms", rollout.alarms.is_some()),
                ("health_check", rollout.health_check.is_some()),
                ("timeout", rollout.timeout.is_some()),
            ]);
        }
        self.reject(kind, &present, &["rollout"]);
    }

    fn lambda(&mut self, raw: RawArtifact) -> Option<LambdaSpec> {
        self.reject(
            ArtifactKind::Lambda,
            &[
                ("secrets", raw.secrets.is_some()),
                ("repository", raw.repository.is_some()),
                ("scan", raw.scan.is_some()),
                ("scan_on_publish", raw.scan_on_publish.is_some()),
                ("create_repository", raw.create_repository.is_some()),
                ("bucket", raw.bucket.is_some()),
                ("prefix", raw.prefix.is_some()),
            ],
            &[],
        );
        let function = self.require(raw.function.as_ref(), &["function"]);
        let alias = match &raw.alias {
            Some(alias) => self.require(Some(alias), &["alias"]),
            None => "live".into(),
        };
        if let Some(bucket) = &raw.artifact_bucket
            && !valid_bucket_name(bucket)
        {
            self.error(
                &["artifact_bucket"],
                format!("`{bucket}` is not a valid S3 bucket name"),
                None,
            );
        }
        let rollout = match &raw.rollout {
            None => LambdaRollout {
                strategy: Strategy::LambdaAllAtOnce,
                steps: vec![100],
                interval: Duration::ZERO,
                alarms: Vec::new(),
                health_check: None,
            },
            Some(rollout) => self.lambda_rollout(rollout)?,
        };
        Some(LambdaSpec {
            source: raw.source.map(PathBuf::from),
            function,
            alias,
            artifact_bucket: raw.artifact_bucket,
            env: raw.env.unwrap_or_default(),
            rollout,
        })
    }

    fn lambda_rollout(&mut self, raw: &RawRollout) -> Option<LambdaRollout> {
        if !self.check_strategy(ArtifactKind::Lambda, raw.strategy) {
            return None;
        }
        self.reject_rollout_keys(ArtifactKind::Lambda, raw);
        self.reject_unused_by_strategy(raw);
        let steps = match (raw.strategy, &raw.steps, raw.increment) {
            (Strategy::LambdaAllAtOnce, _, _) => vec![100],
            (_, Some(steps), _) => steps.clone(),
            (Strategy::LambdaCanary, None, _) => vec![10, 100],
            (_, None, increment) => {
                let increment = increment.unwrap_or(10);
                if !(1..=100).contains(&increment) {
                    self.error(
                        &["rollout", "increment"],
                        format!("`increment` {increment} is not a percentage between 1 and 100"),
                        None,
                    );
                    return None;
                }
                let mut steps: Vec<u32> = (1..)
                    .map(|i| i * increment)
                    .take_while(|s| *s < 100)
                    .collect();
                steps.push(100);
                steps
            }
        };
        let ordered = steps.windows(2).all(|w| w[0] < w[1]);
        if steps.last() != Some(&100) || !ordered || steps.first().is_some_and(|s| *s == 0) {
            self.error(
                &["rollout", "steps"],
                format!("traffic steps {steps:?} must rise strictly from above 0 to 100"),
                Some("write cumulative percentages, e.g. steps = [10, 50, 100]".into()),
            );
        }
        let interval = self.duration(
            raw.interval.as_ref(),
            &["rollout", "interval"],
            Duration::from_secs(300),
        );
        let health_check = raw
            .health_check
            .as_ref()
            .map(|h| self.health_check(h, &["rollout", "health_check"]));
        Some(LambdaRollout {
            strategy: raw.strategy,
            steps,
            interval,
            alarms: raw.alarms.clone().unwrap_or_default(),
            health_check,
        })
    }
}

fn kind_keys(kind: ArtifactKind) -> &'static str {
    match kind {
        ArtifactKind::Image => {
            "image artifacts take: repository, source, scan, scan_on_publish, create_repository, env, secrets, rollout"
        }
        ArtifactKind::Dags => "dags artifacts take: source, bucket, prefix, rollout",
        ArtifactKind::Lambda => {
            "lambda artifacts take: source, function, alias, artifact_bucket, env, rollout"
        }
    }
}

fn valid_repository(name: &str) -> bool {
    (2..=256).contains(&name.len())
        && name.split('/').all(|part| {
            !part.is_empty()
                && part.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
                && part.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
                && part
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
        })
}

/// Parses `oci:<dir>[:tag]`, `docker-archive:<file>` and `docker://<registry>/<repo>:<tag|@digest>`.
pub(crate) fn parse_image_source(text: &str) -> Result<ImageSource, String> {
    if let Some(rest) = text.strip_prefix("oci:") {
        let (dir, tag) = match rest.rsplit_once(':') {
            Some((dir, tag)) if !tag.contains('/') && !dir.is_empty() => {
                (dir, Some(tag.to_owned()))
            }
            _ => (rest, None),
        };
        if dir.is_empty() {
            return Err(format!("image source `{text}` names no directory"));
        }
        return Ok(ImageSource::Oci {
            path: PathBuf::from(dir),
            tag,
        });
    }
    if let Some(file) = text.strip_prefix("docker-archive:") {
        if file.is_empty() {
            return Err(format!("image source `{text}` names no file"));
        }
        return Ok(ImageSource::DockerArchive {
            path: PathBuf::from(file),
        });
    }
    if let Some(rest) = text.strip_prefix("docker://") {
        let (registry, remainder) = rest
            .split_once('/')
            .ok_or_else(|| format!("image source `{text}` needs <registry>/<repository>"))?;
        let (repository, reference) = if let Some((repo, digest)) = remainder.split_once('@') {
            (repo, digest.to_owned())
        } else if let Some((repo, tag)) = remainder.rsplit_once(':') {
            (repo, tag.to_owned())
        } else {
            return Err(format!(
                "image source `{text}` needs a :tag or @sha256:digest"
            ));
        };
        if registry.is_empty() || repository.is_empty() || reference.is_empty() {
            return Err(format!("image source `{text}` is incomplete"));
        }
        return Ok(ImageSource::Registry {
            registry: registry.to_owned(),
            repository: repository.to_owned(),
            reference,
        });
    }
    Err(format!("unknown image source `{text}`"))
}

pub(super) fn check_sources(config: &Config) -> Vec<Diagnostic> {
    let mut r = Resolver {
        map: &config.source_map,
        diagnostics: Vec::new(),
    };
    let base = config.base_dir();
    for env in config.environments.values() {
        for (name, spec) in &env.artifacts {
            let in_override = path([
                "environments",
                env.name.as_str(),
                "overrides",
                name.as_str(),
                "source",
            ]);
            let at = if config.source_map.contains(&in_override) {
                in_override
            } else {
                path(["artifacts", name.as_str(), "source"])
            };
            if let Some(problem) = source_problem(base, &spec.detail) {
                r.error(&at, problem, None);
            }
        }
    }
    r.diagnostics
}

fn source_problem(base: &Path, detail: &ArtifactDetail) -> Option<String> {
    let abs = |p: &Path| base.join(p.strip_prefix("./").unwrap_or(p));
    match detail {
        ArtifactDetail::Image(ImageSpec {
            source: Some(ImageSource::Oci { path, tag }),
            ..
        }) => {
            let dir = abs(path);
            if !dir.is_dir() {
                return Some(format!(
                    "OCI layout directory {} does not exist",
                    dir.display()
                ));
            }
            crate::artifact::image::layout::OciLayout::open(&dir)
                .and_then(|layout| layout.resolve(tag.as_deref()))
                .err()
                .map(|err| err.to_string())
        }
        ArtifactDetail::Image(ImageSpec {
            source: Some(ImageSource::DockerArchive { path }),
            ..
        }) => {
            let file = abs(path);
            if !file.is_file() {
                return Some(format!("image archive {} does not exist", file.display()));
            }
            crate::artifact::image::archive::DockerArchive::open(&file)
                .and_then(|mut archive| archive.image(None))
                .err()
                .map(|err| err.to_string())
        }
        ArtifactDetail::Dags(dags) => {
            let dir = abs(&dags.source);
            (!dir.is_dir()).then(|| format!("DAG folder {} does not exist", dir.display()))
        }
        ArtifactDetail::Lambda(LambdaSpec {
            source: Some(source),
            ..
        }) => {
            let p = abs(source);
            let is_zip = p.extension().is_some_and(|e| e.eq_ignore_ascii_case("zip"));
            match (p.is_dir(), p.is_file()) {
                (true, _) => None,
                (_, true) if is_zip => None,
                (_, true) => Some(format!(
                    "Lambda source {} is a file but not a .zip",
                    p.display()
                )),
                _ => Some(format!("Lambda source {} does not exist", p.display())),
            }
        }
        _ => None,
    }
}

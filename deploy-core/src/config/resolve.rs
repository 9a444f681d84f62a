//! Raw TOML to typed values, the generic part: the file parsed with every key's place kept,
//! environments resolved ([`super::environment`]), each artifact's environment override merged
//! into it and its placeholders expanded, then handed to its kind's resolver
//! (a [`super::spec::KindConfig`]). Every problem is reported with its location.

use std::collections::BTreeMap;
use std::path::Path;

use toml::de::DeTable;

use super::artifacts::file_order;
use super::diagnose::Resolver;
use super::environment::{check_name, check_promotions, resolve_environment};
use super::raw::RawConfig;
use super::source_map::{SourceMap, path};
use super::spec::KindConfig;
use super::{Config, ConfigError, Diagnostic, Notifications};

pub(super) fn resolve(
    text: &str,
    file: &Path,
    kinds: &[&dyn KindConfig],
) -> Result<Config, ConfigError> {
    let empty = SourceMap::default();
    let de_table = DeTable::parse(text).map_err(|err| syntax_error(&err, file, text, &empty))?;
    let map = SourceMap::new(file, text, de_table.get_ref());
    let root: toml::Table =
        toml::from_str(text).map_err(|err| syntax_error(&err, file, text, &map))?;

    let mut r = Resolver {
        map: &map,
        diagnostics: Vec::new(),
        warnings: Vec::new(),
        kinds,
        env: None,
        origins: Vec::new(),
    };
    let raw: Option<RawConfig> = r.deserialize(toml::Value::Table(root), &|inner| inner.to_vec());
    let Some(raw) = raw else {
        return Err(ConfigError::Invalid {
            diagnostics: r.diagnostics,
        });
    };
    let environments = raw.environments.len();
    let mut config = resolve_config(&mut r, raw, file);
    config.sha256 = crate::hash::sha256_hex(text.as_bytes());
    if r.diagnostics.is_empty() {
        Ok(config)
    } else {
        Err(ConfigError::Invalid {
            diagnostics: r.take_diagnostics(environments),
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
        r.env = Some(name.clone());
        if let Some(environment) = resolve_environment(r, &raw, name, env) {
            environments.insert(name.clone(), environment);
        }
    }
    r.env = None;
    super::overlap::check(r, &environments);
    let environment_order = file_order(r.map, "environments", environments.keys());
    Config {
        project: raw.project.clone(),
        environments,
        environment_order,
        notifications: Notifications {
            slack: super::notify::resolve_slack(r, raw.notifications.as_ref()),
        },
        settings: super::settings::resolve_settings(r, raw.settings.as_ref()),
        path: file.to_path_buf(),
        sha256: String::new(),
        source_map: r.map.clone(),
        warnings: std::mem::take(&mut r.warnings),
    }
}

//! `deploy.toml`: parsed into raw serde structs, then resolved once into typed values
//! (a [`Target`] and an [`ArtifactSpec`] per artifact for every environment).
//!
//! ```
//! let toml = r#"
//! project = "planwise"
//! [environments.dev]
//! region = "eu-west-1"
//! account = "111111111111"
//! state_bucket = "{project}-deploy-state-{env}"
//! [artifacts.api]
//! kind = "image"
//! repository = "planwise/api"
//! "#;
//! let config = deploy_core::config::Config::from_toml(toml, "deploy.toml".as_ref()).unwrap();
//! let dev = config.environment("dev").unwrap();
//! assert_eq!(dev.target.state_bucket, "planwise-deploy-state-dev");
//! ```

mod placeholder;
mod raw;
mod resolve;
mod source_map;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use crate::artifact::ArtifactSpec;
use crate::target::Target;

pub use placeholder::KNOWN as PLACEHOLDERS;
pub use source_map::Location;
use source_map::SourceMap;

/// A loaded and resolved `deploy.toml`.
#[derive(Debug, Clone)]
pub struct Config {
    /// The `project` name.
    pub project: String,
    /// Every environment, by name, with its artifacts resolved for it.
    pub environments: BTreeMap<String, Environment>,
    /// Environment names in the order the file lists them; environments missing here come
    /// after, by name. See [`Config::environments_in_order`].
    pub environment_order: Vec<String>,
    /// Where notifications go.
    pub notifications: Notifications,
    /// Timeouts, poll intervals and retries.
    pub settings: Settings,
    path: PathBuf,
    sha256: String,
    source_map: SourceMap,
}

/// One environment: its AWS target and its artifacts as they apply to it.
#[derive(Debug, Clone, Serialize)]
pub struct Environment {
    /// Environment name.
    pub name: String,
    /// The AWS side.
    pub target: Target,
    /// The environment whose live releases this one receives on promote.
    pub promote_from: Option<String>,
    /// Whether changes here need `--approve`.
    pub approval: bool,
    /// Every artifact, overrides merged, placeholders expanded.
    pub artifacts: BTreeMap<String, ArtifactSpec>,
    /// Artifact names in the order the file lists them; artifacts missing here come after, by
    /// name. [`Environment::select`] returns all artifacts in this order.
    #[serde(skip)]
    pub artifact_order: Vec<String>,
}

/// The `[notifications]` table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Notifications {
    /// Name of the environment variable holding the Slack webhook URL.
    pub slack_webhook_env: Option<String>,
}

/// The optional `[settings]` table: how long to wait and how often to look.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Settings {
    /// Lease length of the environment lock; renewed while work runs. Default 2 minutes.
    #[serde(with = "crate::duration_serde")]
    pub lock_ttl: Duration,
    /// Interval between polls of long-running AWS operations. Default 5 seconds.
    #[serde(with = "crate::duration_serde")]
    pub poll_interval: Duration,
    /// Upper bound of a whole command. Default 30 minutes.
    #[serde(with = "crate::duration_serde")]
    pub timeout: Duration,
    /// Attempts per AWS request (standard retry mode). Default 3.
    pub retry_max_attempts: u32,
    /// Image blobs uploaded at the same time. Default 6.
    pub parallel_uploads: usize,
    /// How image blobs are sent. Default `auto`: one streamed `PATCH` for ECR, one `PUT` elsewhere.
    pub upload: crate::registry::UploadMode,
    /// Part size of `chunked` uploads in bytes. Default 10 MiB; ECR takes 5 to 20 MiB.
    pub part_size: u64,
    /// How long a scan gate waits for the ECR scan of an image. Default 10 minutes.
    #[serde(with = "crate::duration_serde")]
    pub scan_timeout: Duration,
}

impl Settings {
    /// Registry push tuning from these settings.
    pub fn registry(&self) -> crate::registry::RegistrySettings {
        crate::registry::RegistrySettings {
            parallel_blobs: self.parallel_uploads,
            upload: self.upload,
            part_size: self.part_size,
            ..crate::registry::RegistrySettings::default()
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            lock_ttl: Duration::from_secs(120),
            poll_interval: Duration::from_secs(5),
            timeout: Duration::from_secs(30 * 60),
            retry_max_attempts: 3,
            parallel_uploads: 6,
            upload: crate::registry::UploadMode::Auto,
            part_size: 10 * 1024 * 1024,
            scan_timeout: Duration::from_secs(10 * 60),
        }
    }
}

/// Something wrong in a configuration, with where it is and what to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    /// Where in the file, when the problem has a place.
    pub location: Option<Location>,
    /// What is wrong.
    pub message: String,
    /// What is allowed or what to do.
    pub help: Option<String>,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(location) = &self.location {
            write!(f, "{location}: ")?;
        }
        f.write_str(&self.message)?;
        if let Some(help) = &self.help {
            write!(f, "\n  help: {help}")?;
        }
        Ok(())
    }
}

/// Errors of loading, resolving and querying a configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a valid configuration; every problem found is listed.
    #[error("{}", render(diagnostics))]
    Invalid {
        /// The problems, in file order.
        diagnostics: Vec<Diagnostic>,
    },
    /// A command named an environment the configuration does not have.
    #[error("unknown environment `{name}`; {}", known_list("environments", known))]
    UnknownEnvironment {
        /// The name given.
        name: String,
        /// The environments the configuration has.
        known: Vec<String>,
    },
    /// A command named an artifact the configuration does not have.
    #[error("unknown artifact `{name}`; {}", known_list("artifacts", known))]
    UnknownArtifact {
        /// The name given.
        name: String,
        /// The artifacts the configuration has.
        known: Vec<String>,
    },
}

fn render(diagnostics: &[Diagnostic]) -> String {
    let lines: Vec<String> = diagnostics.iter().map(ToString::to_string).collect();
    lines.join("\n")
}

fn known_list(what: &str, known: &[String]) -> String {
    if known.is_empty() {
        format!("the configuration defines no {what}")
    } else {
        format!("the configuration defines: {}", known.join(", "))
    }
}

impl Config {
    /// Reads and resolves a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::from_toml(&text, path)
    }

    /// Resolves configuration text; `path` is used in messages and to resolve relative sources.
    pub fn from_toml(text: &str, path: &Path) -> Result<Config, ConfigError> {
        resolve::resolve(text, path)
    }

    /// The file this configuration came from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// SHA-256 (hex) of the configuration text, fingerprinted into plans.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    /// The directory relative source paths are resolved against.
    pub fn base_dir(&self) -> &Path {
        self.path.parent().unwrap_or_else(|| Path::new("."))
    }

    /// Every environment, in the order the file lists them (dev, staging, prod, say).
    pub fn environments_in_order(&self) -> Vec<&Environment> {
        in_order(&self.environments, &self.environment_order)
    }

    /// Looks up an environment by name.
    pub fn environment(&self, name: &str) -> Result<&Environment, ConfigError> {
        self.environments
            .get(name)
            .ok_or_else(|| ConfigError::UnknownEnvironment {
                name: name.to_owned(),
                known: self.environments.keys().cloned().collect(),
            })
    }

    /// Checks that every local source (image layouts and archives, DAG folders, Lambda
    /// sources) exists and has the expected shape. Reads only the local disk.
    pub fn check_sources(&self) -> Vec<Diagnostic> {
        resolve::check_sources(self)
    }
}

/// The values of `map`, those named in `order` first and in that order, then the rest by name.
fn in_order<'a, T>(map: &'a BTreeMap<String, T>, order: &[String]) -> Vec<&'a T> {
    let rank = |name: &String| order.iter().position(|o| o == name).unwrap_or(usize::MAX);
    let mut entries: Vec<(&String, &T)> = map.iter().collect();
    entries.sort_by_key(|(name, _)| rank(name));
    entries.into_iter().map(|(_, value)| value).collect()
}

impl Environment {
    /// The artifacts named (in the order given), or all of them, by name, when `names` is empty.
    pub fn select(&self, names: &[String]) -> Result<Vec<&ArtifactSpec>, ConfigError> {
        if names.is_empty() {
            return Ok(in_order(&self.artifacts, &self.artifact_order));
        }
        names
            .iter()
            .map(|name| {
                self.artifacts
                    .get(name)
                    .ok_or_else(|| ConfigError::UnknownArtifact {
                        name: name.clone(),
                        known: self.artifacts.keys().cloned().collect(),
                    })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environments_and_artifacts_keep_the_file_order() {
        let text = r#"
project = "p"
[environments.dev]
region = "eu-west-1"
account = "111111111111"
state_bucket = "s-{env}"
[environments.staging]
region = "eu-west-1"
account = "111111111111"
state_bucket = "s-{env}"
[environments.prod]
region = "eu-west-1"
account = "111111111111"
state_bucket = "s-{env}"
[artifacts.web]
kind = "image"
repository = "p/web"
[artifacts.api]
kind = "image"
repository = "p/api"
"#;
        let config = Config::from_toml(text, "deploy.toml".as_ref()).expect("valid");
        let names: Vec<&str> = config
            .environments_in_order()
            .iter()
            .map(|e| e.name.as_str())
            .collect();
        assert_eq!(names, ["dev", "staging", "prod"]);
        let env = config.environment("prod").expect("prod");
        let artifacts: Vec<&str> = env
            .select(&[])
            .expect("all")
            .iter()
            .map(|a| a.name.as_str())
            .collect();
        assert_eq!(artifacts, ["web", "api"]);
    }
}

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

mod artifacts;
pub(crate) mod aws_names;
pub(crate) mod checks;
mod diagnose;
mod environment;
pub(crate) mod kind;
pub mod limits;
mod notify;
mod overlap;
pub(crate) mod paths;
mod placeholder;
mod profiles;
pub(crate) mod raw;
mod regions;
mod resolve;
mod settings;
mod source_map;
mod sources;
pub(crate) mod spec;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use crate::target::Target;

pub use placeholder::KNOWN as PLACEHOLDERS;
pub use source_map::Location;
use source_map::SourceMap;
pub use spec::{ArtifactSpec, KindSpec, S3Place};

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
    /// What the file says that is accepted but probably not meant (an unknown region), for a
    /// front-end to show.
    pub warnings: Vec<Diagnostic>,
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
    /// Whether runs here notify (`notify = false` keeps an environment quiet).
    pub notify: bool,
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
    /// `[notifications.slack]`: where runs are told.
    pub slack: Option<SlackConfig>,
}

/// `[notifications.slack]`: an incoming webhook, or a bot token and a channel. The URL and the
/// token are read from the environment variables named here when a run starts; the
/// configuration holds only their names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "mode", rename_all = "kebab-case")]
pub enum SlackConfig {
    /// One message per event, posted to the webhook URL in `webhook_env`.
    Webhook {
        /// The variable holding the webhook URL.
        webhook_env: String,
    },
    /// One message per run, updated in place (`chat.update`), each step a reply in its thread.
    Bot {
        /// The variable holding the bot token (`xoxb-...`).
        token_env: String,
        /// The channel id or name.
        channel: String,
        /// The Web API's base URL (default `https://slack.com/api`): a Slack-compatible server.
        api_url: String,
    },
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

impl From<&Settings> for crate::aws::AwsSettings {
    fn from(settings: &Settings) -> Self {
        crate::aws::AwsSettings {
            retry_max_attempts: settings.retry_max_attempts,
            ..crate::aws::AwsSettings::default()
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
    /// The path is not a regular file (a directory, FIFO, device...).
    #[error("{} is {what}, not a configuration file; pass the path of a deploy.toml", path.display())]
    NotAFile {
        /// The path given.
        path: PathBuf,
        /// What it is instead (`a directory`, `a FIFO`, `a device`...).
        what: &'static str,
    },
    /// The file is larger than any configuration should be; it was not read.
    #[error(
        "{} is {size} bytes; a configuration may be at most {limit} bytes (4 MiB)",
        path.display()
    )]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size, or a lower bound of it when it grew while being read.
        size: u64,
        /// The limit, [`limits::MAX_CONFIG_BYTES`].
        limit: u64,
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

impl crate::error::Classify for ConfigError {
    fn class(&self) -> crate::error::ErrorClass {
        match self {
            ConfigError::Read { .. }
            | ConfigError::NotAFile { .. }
            | ConfigError::TooLarge { .. }
            | ConfigError::Invalid { .. }
            | ConfigError::UnknownEnvironment { .. }
            | ConfigError::UnknownArtifact { .. } => crate::error::ErrorClass::Usage,
        }
    }
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
    /// Reads and resolves a configuration file, `kinds` reading the artifact tables
    /// (`Config::load`, in `kinds`, passes every kind of this build). Anything but a regular
    /// file of at most [`limits::MAX_CONFIG_BYTES`] is refused before its content is read.
    pub(crate) fn load_with(
        path: &Path,
        kinds: &[&dyn spec::KindConfig],
    ) -> Result<Config, ConfigError> {
        let text = read_config(path)?;
        Config::from_toml_with(&text, path, kinds)
    }

    /// Resolves configuration text, `kinds` reading the artifact tables; `path` is used in
    /// messages and to resolve relative sources.
    pub(crate) fn from_toml_with(
        text: &str,
        path: &Path,
        kinds: &[&dyn spec::KindConfig],
    ) -> Result<Config, ConfigError> {
        resolve::resolve(text, path, kinds)
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
        self.path.parent().unwrap_or(Path::new("."))
    }

    /// Where the value of `key` (dotted: `rollout.cluster`) of `artifact` comes from for
    /// `environment`: its override there, else the artifact's own table.
    pub fn locate(&self, environment: &str, artifact: &str, key: &str) -> Option<Location> {
        let rel = key.split('.').map(str::to_owned);
        let mut over = source_map::path(["environments", environment, "overrides", artifact]);
        over.extend(rel.clone());
        let mut base = source_map::path(["artifacts", artifact]);
        base.extend(rel);
        [over, base]
            .into_iter()
            .find(|at| self.source_map.contains(at))
            .and_then(|at| self.source_map.value(&at))
    }

    /// Every environment, in the order the file lists them (dev, staging, prod, say).
    pub fn environments_in_order(&self) -> Vec<&Environment> {
        in_order(&self.environments, &self.environment_order)
    }

    /// Looks up an environment by name, and checks that the AWS profile it names (if any) is
    /// defined in the shared AWS files (a local read, no AWS call): every command that acts on
    /// an environment finds a missing profile before it makes a plan.
    pub fn environment(&self, name: &str) -> Result<&Environment, ConfigError> {
        let env = self
            .environments
            .get(name)
            .ok_or_else(|| ConfigError::UnknownEnvironment {
                name: name.to_owned(),
                known: self.environments.keys().cloned().collect(),
            })?;
        let diagnostics = self.profile_problems(std::iter::once(env));
        if diagnostics.is_empty() {
            Ok(env)
        } else {
            Err(ConfigError::Invalid { diagnostics })
        }
    }

    /// Checks that every local source (image layouts and archives, DAG folders, Lambda
    /// sources) exists and reads as `publish` would read it, and that every AWS profile named
    /// is defined in the shared AWS files. Reads only the local disk.
    pub fn check_sources(&self) -> Vec<Diagnostic> {
        let mut diagnostics = self.profile_problems(self.environments_in_order().into_iter());
        diagnostics.extend(sources::check_sources(self));
        diagnostics
    }

    fn profile_problems<'a>(&self, envs: impl Iterator<Item = &'a Environment>) -> Vec<Diagnostic> {
        envs.filter_map(|env| {
            let profile = env.target.profile.as_deref()?;
            let problem = profiles::profile_problem(profile)?;
            Some(Diagnostic {
                location: self.source_map.value(&source_map::path([
                    "environments",
                    env.name.as_str(),
                    "profile",
                ])),
                message: problem.message,
                help: Some(problem.help),
            })
        })
        .collect()
    }
}

/// The text of the configuration file at `path`: a regular file of at most
/// [`limits::MAX_CONFIG_BYTES`], checked before reading (`/dev/zero` or a FIFO would never end).
fn read_config(path: &Path) -> Result<String, ConfigError> {
    use std::io::Read;
    let read_error = |source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(read_error)?;
    if !meta.is_file() {
        return Err(ConfigError::NotAFile {
            path: path.to_path_buf(),
            what: file_kind(&meta.file_type()),
        });
    }
    let too_large = |size| ConfigError::TooLarge {
        path: path.to_path_buf(),
        size,
        limit: limits::MAX_CONFIG_BYTES,
    };
    if meta.len() > limits::MAX_CONFIG_BYTES {
        return Err(too_large(meta.len()));
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|file| {
            file.take(limits::MAX_CONFIG_BYTES + 1)
                .read_to_end(&mut bytes)
        })
        .map_err(read_error)?;
    if bytes.len() as u64 > limits::MAX_CONFIG_BYTES {
        return Err(too_large(bytes.len() as u64));
    }
    String::from_utf8(bytes)
        .map_err(|err| read_error(std::io::Error::new(std::io::ErrorKind::InvalidData, err)))
}

fn file_kind(file_type: &std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if file_type.is_fifo() {
            return "a FIFO";
        }
        if file_type.is_char_device() || file_type.is_block_device() {
            return "a device";
        }
        if file_type.is_socket() {
            return "a socket";
        }
    }
    if file_type.is_dir() {
        "a directory"
    } else {
        "not a regular file"
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
    #[cfg(all(feature = "image", feature = "lambda"))] // its configuration names every kind
    fn environments_and_artifacts_keep_the_file_order() {
        let text = format!(
            "{THREE}[artifacts.web]\nkind = \"image\"\nrepository = \"p/web\"\n\
             [artifacts.api]\nkind = \"image\"\nrepository = \"p/api\"\n"
        );
        let config = Config::from_toml(&text, "deploy.toml".as_ref()).expect("valid");
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

    fn invalid(text: &str) -> Vec<String> {
        match Config::from_toml(text, "deploy.toml".as_ref()) {
            Err(ConfigError::Invalid { diagnostics }) => {
                diagnostics.iter().map(|d| d.message.clone()).collect()
            }
            other => panic!("expected an invalid configuration, got {other:?}"),
        }
    }

    const THREE: &str = r#"
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
"#;

    #[test]
    #[cfg(feature = "dags")]
    fn a_problem_every_environment_has_is_reported_once_with_env_in_place() {
        let text = format!(
            "{THREE}[artifacts.dags]\nkind = \"dags\"\nsource = \"./dags\"\nbucket = \"p_Airflow-{{env}}\"\n"
        );
        let messages = invalid(&text);
        assert_eq!(messages.len(), 1, "{messages:#?}");
        assert!(
            messages[0].starts_with("`p_Airflow-{env}` is not a valid S3 bucket name"),
            "{messages:#?}"
        );
        assert!(
            messages[0].ends_with("(in every environment)"),
            "{messages:#?}"
        );
    }

    #[test]
    #[cfg(feature = "dags")]
    fn a_problem_of_some_environments_names_them_and_one_alone_is_as_found() {
        // 59 + 1 + the environment's name: dev fits in 63 characters, prod and staging do not.
        let long = "a".repeat(59);
        let text = format!(
            "{THREE}[artifacts.dags]\nkind = \"dags\"\nsource = \"./dags\"\nbucket = \"{long}-{{env}}\"\n"
        );
        let messages = invalid(&text);
        assert_eq!(messages.len(), 1, "{messages:#?}");
        assert!(
            messages[0].starts_with(&format!("`{long}-{{env}}`")),
            "{messages:#?}"
        );
        assert!(
            messages[0].ends_with("(in environments prod, staging)"),
            "{messages:#?}"
        );
        // 58 + 1: only staging's name is too long; its problem is reported as found.
        let long = "a".repeat(58);
        let text = format!(
            "{THREE}[artifacts.dags]\nkind = \"dags\"\nsource = \"./dags\"\nbucket = \"{long}-{{env}}\"\n"
        );
        let messages = invalid(&text);
        assert_eq!(messages.len(), 1, "{messages:#?}");
        assert!(
            messages[0].starts_with(&format!("`{long}-staging`")),
            "{messages:#?}"
        );
        assert!(!messages[0].contains("environment"), "{messages:#?}");
    }
}

//! The kinds this library ships, registered on an [`Engine`] in one call.

use std::path::Path;

use crate::config::{Config, ConfigError, Settings};
use crate::engine::Engine;
use crate::kinds::image::rollout::image::{self as image_rollout, RolloutSettings, Runtime};
use crate::kinds::image::steps::{self as image, ImageSettings};
use crate::kinds::lambda::publish::PublishSettings;
use crate::kinds::lambda::settings::LambdaSettings;
use crate::kinds::lambda::shift::ShiftSettings;
use crate::kinds::{ImageSpec, LambdaSpec};
use crate::plan::{Plan, PlanRequest};

/// Settings of the built-in kinds, from the configuration's `[settings]`.
#[derive(Debug, Clone, Default)]
pub struct Builtin {
    /// Images: registry tuning and scan gate waits.
    pub image: ImageSettings,
    /// Image rollouts: poll interval and each artifact's runtime configuration.
    pub rollout: RolloutSettings,
    /// DAG syncs: files uploaded at once.
    pub dags: crate::kinds::dags::steps::DagsSettings,
    /// Lambda publishes and alias shifts.
    pub lambda: LambdaSettings,
}

impl Builtin {
    /// The settings of `config`, with the runtime configuration (`env`, `secrets`) of every
    /// artifact of `environment`.
    pub fn for_environment(config: &Config, environment: &str) -> Builtin {
        let mut builtin = Builtin::from(&config.settings);
        let specs = config
            .environment(environment)
            .ok()
            .and_then(|env| env.select(&[]).ok())
            .unwrap_or_default();
        for spec in specs {
            let runtime = if let Some(image) = spec.detail_as::<ImageSpec>() {
                Runtime {
                    env: image.env.clone(),
                    secrets: image.secrets.clone(),
                }
            } else if let Some(lambda) = spec.detail_as::<LambdaSpec>() {
                builtin.lambda.add(&spec.name, lambda);
                Runtime {
                    env: lambda.env.clone(),
                    secrets: Default::default(),
                }
            } else {
                continue;
            };
            builtin.rollout.runtime.insert(spec.name.clone(), runtime);
        }
        builtin
    }
}

impl From<&Settings> for Builtin {
    fn from(settings: &Settings) -> Builtin {
        Builtin {
            image: ImageSettings {
                registry: settings.registry(),
                scan_wait: crate::kinds::image::scan::ScanWait {
                    timeout: settings.scan_timeout,
                    poll: settings.poll_interval,
                },
            },
            rollout: RolloutSettings {
                poll: settings.poll_interval,
                runtime: Default::default(),
                skip_verify: false,
                parallel: settings.parallel_uploads,
            },
            dags: crate::kinds::dags::steps::DagsSettings {
                parallel: settings.parallel_uploads,
                allow_mass_delete: false,
            },
            lambda: LambdaSettings {
                publish: PublishSettings {
                    poll: settings.poll_interval,
                    ..PublishSettings::default()
                },
                shift: ShiftSettings {
                    poll: settings.poll_interval,
                    interval: None,
                    keep_versions: Default::default(),
                },
                env: Default::default(),
            },
        }
    }
}

/// Registers the steps of every built-in kind with `engine`: images (publish, promote, and the
/// rollout of every strategy with its gates), DAG folders, and Lambda functions.
pub fn register_builtin(engine: &mut Engine, settings: Builtin) {
    image::register(engine, settings.image);
    crate::rollout::health::register(engine, settings.rollout.poll);
    image_rollout::register(engine, settings.rollout);
    crate::kinds::dags::steps::register(engine, settings.dags);
    crate::kinds::lambda::register(engine, settings.lambda);
}

impl Plan {
    /// Builds the plan for `request`, each artifact planned by its kind. Pure: reads nothing,
    /// changes nothing.
    pub fn build(request: &PlanRequest<'_>) -> Plan {
        Plan::build_with(request, &super::Planner)
    }
}

impl Config {
    /// Reads and resolves a configuration file, with every kind of this build. Anything but a
    /// regular file of at most [`crate::config::limits::MAX_CONFIG_BYTES`] is refused before
    /// its content is read.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        Config::load_with(path, &super::configs())
    }

    /// Resolves configuration text, with every kind of this build; `path` is used in messages
    /// and to resolve relative sources.
    pub fn from_toml(text: &str, path: &Path) -> Result<Config, ConfigError> {
        Config::from_toml_with(text, path, &super::configs())
    }
}

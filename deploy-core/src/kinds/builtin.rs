//! The kinds this library ships, registered on an [`Engine`] in one call.

use std::path::Path;

use crate::config::{Config, ConfigError, Settings};
use crate::engine::Engine;
#[cfg(feature = "image")]
use crate::kinds::ImageSpec;
#[cfg(feature = "lambda")]
use crate::kinds::LambdaSpec;
#[cfg(feature = "dags")]
use crate::kinds::dags::steps::DagsSettings;
#[cfg(feature = "image")]
use crate::kinds::image::rollout::image::{self as image_rollout, RolloutSettings, Runtime};
#[cfg(feature = "image")]
use crate::kinds::image::steps::{self as image, ImageSettings};
#[cfg(feature = "lambda")]
use crate::kinds::lambda::publish::PublishSettings;
#[cfg(feature = "lambda")]
use crate::kinds::lambda::settings::LambdaSettings;
#[cfg(feature = "lambda")]
use crate::kinds::lambda::shift::ShiftSettings;
use crate::plan::{Plan, PlanRequest};

/// Settings of the built-in kinds, from the configuration's `[settings]`.
#[derive(Debug, Clone, Default)]
pub struct Builtin {
    /// Images: registry tuning and scan gate waits.
    #[cfg(feature = "image")]
    pub image: ImageSettings,
    /// Image rollouts: poll interval and each artifact's runtime configuration.
    #[cfg(feature = "image")]
    pub rollout: RolloutSettings,
    /// DAG syncs: files uploaded at once.
    #[cfg(feature = "dags")]
    pub dags: DagsSettings,
    /// Lambda publishes and alias shifts.
    #[cfg(feature = "lambda")]
    pub lambda: LambdaSettings,
}

impl Builtin {
    /// With the command's flags: `--skip-verify` (images), `--allow-mass-delete` (DAGs).
    pub fn with_flags(mut self, skip_verify: bool, allow_mass_delete: bool) -> Builtin {
        #[cfg(feature = "image")]
        {
            self.rollout.skip_verify = skip_verify;
        }
        #[cfg(feature = "dags")]
        {
            self.dags.allow_mass_delete = allow_mass_delete;
        }
        let _ = (skip_verify, allow_mass_delete);
        self
    }

    /// The settings of `config`, with the runtime configuration (`env`, `secrets`) of every
    /// artifact of `environment`.
    pub fn for_environment(config: &Config, environment: &str) -> Builtin {
        #[allow(unused_mut)]
        let mut builtin = Builtin::from(&config.settings);
        let specs = config
            .environment(environment)
            .ok()
            .and_then(|env| env.select(&[]).ok())
            .unwrap_or_default();
        for spec in specs {
            #[cfg(feature = "image")]
            if let Some(image) = spec.detail_as::<ImageSpec>() {
                let runtime = Runtime {
                    env: image.env.clone(),
                    secrets: image.secrets.clone(),
                };
                builtin.rollout.runtime.insert(spec.name.clone(), runtime);
            }
            #[cfg(feature = "lambda")]
            if let Some(lambda) = spec.detail_as::<LambdaSpec>() {
                builtin.lambda.add(&spec.name, lambda);
            }
            let _ = spec;
        }
        builtin
    }
}

impl From<&Settings> for Builtin {
    fn from(settings: &Settings) -> Builtin {
        let _ = settings;
        Builtin {
            #[cfg(feature = "image")]
            image: ImageSettings {
                registry: settings.registry(),
                scan_wait: crate::kinds::image::scan::ScanWait {
                    timeout: settings.scan_timeout,
                    poll: settings.poll_interval,
                },
            },
            #[cfg(feature = "image")]
            rollout: RolloutSettings {
                poll: settings.poll_interval,
                runtime: Default::default(),
                skip_verify: false,
                parallel: settings.parallel_uploads,
            },
            #[cfg(feature = "dags")]
            dags: DagsSettings {
                parallel: settings.parallel_uploads,
                allow_mass_delete: false,
            },
            #[cfg(feature = "lambda")]
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
    let _ = (&engine, &settings);
    #[cfg(feature = "image")]
    {
        image::register(engine, settings.image);
        crate::rollout::health::register(engine, settings.rollout.poll);
        image_rollout::register(engine, settings.rollout);
    }
    #[cfg(feature = "dags")]
    crate::kinds::dags::steps::register(engine, settings.dags);
    #[cfg(feature = "lambda")]
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

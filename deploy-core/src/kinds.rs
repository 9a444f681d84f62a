//! The kinds this library ships, registered on an [`Engine`] in one call.

use crate::artifact::image::steps::{self as image, ImageSettings};
use crate::config::Settings;
use crate::engine::Engine;

/// Settings of the built-in kinds, from the configuration's `[settings]`.
#[derive(Debug, Clone, Default)]
pub struct Builtin {
    /// Images: registry tuning and scan gate waits.
    pub image: ImageSettings,
}

impl From<&Settings> for Builtin {
    fn from(settings: &Settings) -> Builtin {
        Builtin {
            image: ImageSettings {
                registry: settings.registry(),
                scan_wait: crate::artifact::image::scan::ScanWait {
                    timeout: settings.scan_timeout,
                    poll: settings.poll_interval,
                },
            },
        }
    }
}

/// Registers the steps of every built-in kind (today: images) with `engine`.
pub fn register_builtin(engine: &mut Engine, settings: Builtin) {
    image::register(engine, settings.image);
}

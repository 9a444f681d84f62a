//! The bounds every configuration value (and every duration flag) is checked against, in one
//! place. A value outside them is refused when the configuration is loaded, before any AWS call;
//! `docs/config.md` lists them for users.

use std::ops::RangeInclusive;
use std::time::Duration;

/// The largest configuration file read, in bytes (4 MiB); a larger one is refused unread.
pub const MAX_CONFIG_BYTES: u64 = 4 * 1024 * 1024;

/// The longest project, environment or artifact name: they become S3 key segments and tags.
pub const MAX_NAME_LEN: usize = 63;

/// Attempts per AWS request (`settings.retry_max_attempts`).
pub const RETRY_MAX_ATTEMPTS: RangeInclusive<u32> = 1..=10;

/// Image blobs uploaded at the same time (`settings.parallel_uploads`).
pub const PARALLEL_UPLOADS: RangeInclusive<usize> = 1..=64;

/// Old task-definition revisions kept per family (`rollout.keep_revisions`).
pub const KEEP_REVISIONS: RangeInclusive<u32> = 1..=100;

/// An inclusive range of durations a setting accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DurationBounds {
    /// The shortest allowed.
    pub min: Duration,
    /// The longest allowed.
    pub max: Duration,
}

const fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

const HOUR: u64 = 3600;

/// `settings.lock_ttl`: a lease shorter than 10 s expires between renewals on a slow network;
/// one longer than a day keeps a crashed holder's lock far too long.
pub const LOCK_TTL: DurationBounds = DurationBounds::new(secs(10), secs(24 * HOUR));
/// `settings.poll_interval`: how often long-running AWS operations are polled.
pub const POLL_INTERVAL: DurationBounds =
    DurationBounds::new(Duration::from_millis(100), secs(5 * 60));
/// `settings.timeout` and `--timeout`: the upper bound of a whole command.
pub const COMMAND_TIMEOUT: DurationBounds = DurationBounds::new(secs(1), secs(24 * HOUR));
/// `settings.scan_timeout`: how long a scan gate waits for an ECR scan.
pub const SCAN_TIMEOUT: DurationBounds = DurationBounds::new(secs(1), secs(6 * HOUR));
/// `rollout.timeout` and `rollout.pre_deploy.timeout`: waits for ECS and CodeDeploy.
pub const ROLLOUT_TIMEOUT: DurationBounds = DurationBounds::new(secs(1), secs(24 * HOUR));
/// `rollout.health_check.timeout`: how long a health check keeps trying.
pub const HEALTH_CHECK_TIMEOUT: DurationBounds = DurationBounds::new(secs(1), secs(HOUR));
/// `rollout.interval`: the wait between Lambda traffic steps.
pub const STEP_INTERVAL: DurationBounds = DurationBounds::new(secs(1), secs(24 * HOUR));
/// `history --since`: the window of the delivery metrics, an hour to ten years.
pub const HISTORY_WINDOW: DurationBounds = DurationBounds::new(secs(HOUR), secs(3650 * 24 * HOUR));
/// `--wait-lock`: how long a command waits for a held lock (0 = do not wait).
pub const WAIT_LOCK: DurationBounds = DurationBounds::new(Duration::ZERO, secs(24 * HOUR));

impl DurationBounds {
    /// The range `min..=max`.
    pub const fn new(min: Duration, max: Duration) -> DurationBounds {
        DurationBounds { min, max }
    }

    /// Whether `duration` is within the bounds.
    pub fn contains(&self, duration: Duration) -> bool {
        (self.min..=self.max).contains(&duration)
    }

    /// `"10s to 24h"`.
    pub fn describe(&self) -> String {
        format!(
            "{} to {}",
            format_duration(self.min),
            format_duration(self.max)
        )
    }
}

/// How durations are written: numbers with units, `500ms`, `30s`, `5m`, `1h30m`.
pub const DURATION_HELP: &str = "write a number with a unit: 500ms, 30s, 5m, 1h30m";

/// Parses a duration (`500ms`, `30s`, `1h30m`) and checks it against `bounds`; the error says
/// what is allowed.
///
/// ```
/// use deploy_core::config::limits::{parse_duration, LOCK_TTL};
/// assert_eq!(parse_duration("1m", LOCK_TTL).unwrap().as_secs(), 60);
/// assert!(parse_duration("1ms", LOCK_TTL).unwrap_err().contains("10s to 24h"));
/// assert!(parse_duration("soon", LOCK_TTL).is_err());
/// ```
pub fn parse_duration(text: &str, bounds: DurationBounds) -> Result<Duration, String> {
    let duration = humantime::parse_duration(text.trim())
        .map_err(|_| format!("`{text}` is not a duration; {DURATION_HELP}"))?;
    if bounds.contains(duration) {
        Ok(duration)
    } else {
        Err(format!(
            "`{text}` is out of range; allowed: {}",
            bounds.describe()
        ))
    }
}

/// A duration in the largest whole unit among `h`, `m`, `s` and `ms`.
pub fn format_duration(duration: Duration) -> String {
    let ms = duration.as_millis();
    if ms == 0 {
        return "0s".to_owned();
    }
    let units = [(3_600_000, "h"), (60_000, "m"), (1_000, "s")];
    for (size, unit) in units {
        if ms >= size && ms.is_multiple_of(size) {
            return format!("{}{unit}", ms / size);
        }
    }
    format!("{ms}ms")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_read_as_written() {
        assert_eq!(LOCK_TTL.describe(), "10s to 24h");
        assert_eq!(POLL_INTERVAL.describe(), "100ms to 5m");
        assert_eq!(WAIT_LOCK.describe(), "0s to 24h");
        assert_eq!(format_duration(Duration::from_secs(90)), "90s");
    }

    #[test]
    fn durations_outside_their_bounds_are_refused() {
        assert!(parse_duration("100000000h", LOCK_TTL).is_err());
        assert!(parse_duration("9s", LOCK_TTL).is_err());
        assert_eq!(parse_duration("10s", LOCK_TTL), Ok(secs(10)));
        assert_eq!(parse_duration("24h", LOCK_TTL), Ok(secs(24 * HOUR)));
        assert!(parse_duration("99999999999999999999h", LOCK_TTL).is_err());
        assert!(parse_duration("", LOCK_TTL).is_err());
        assert_eq!(parse_duration("0s", WAIT_LOCK), Ok(Duration::ZERO));
    }
}

//! The `[settings]` table: durations, retries and upload tuning, each within its bounds
//! ([`super::limits`]).

use std::fmt::Display;
use std::ops::RangeInclusive;

use super::Settings;
use super::diagnose::Resolver;
use super::limits::{
    COMMAND_TIMEOUT, LOCK_TTL, PARALLEL_UPLOADS, POLL_INTERVAL, RETRY_MAX_ATTEMPTS, SCAN_TIMEOUT,
};
use super::raw::RawSettings;
use super::source_map::path;

pub(super) fn resolve_settings(r: &mut Resolver<'_>, raw: Option<&RawSettings>) -> Settings {
    let defaults = Settings::default();
    let Some(raw) = raw else { return defaults };
    let at = |key: &str| path(["settings", key]);
    let retry_max_attempts = raw
        .retry_max_attempts
        .unwrap_or(defaults.retry_max_attempts);
    check_range(
        r,
        "retry_max_attempts",
        retry_max_attempts,
        &RETRY_MAX_ATTEMPTS,
    );
    let parallel_uploads = raw.parallel_uploads.unwrap_or(defaults.parallel_uploads);
    check_range(r, "parallel_uploads", parallel_uploads, &PARALLEL_UPLOADS);
    Settings {
        lock_ttl: r.duration(
            raw.lock_ttl.as_deref(),
            &at("lock_ttl"),
            defaults.lock_ttl,
            LOCK_TTL,
        ),
        poll_interval: r.duration(
            raw.poll_interval.as_deref(),
            &at("poll_interval"),
            defaults.poll_interval,
            POLL_INTERVAL,
        ),
        timeout: r.duration(
            raw.timeout.as_deref(),
            &at("timeout"),
            defaults.timeout,
            COMMAND_TIMEOUT,
        ),
        retry_max_attempts,
        parallel_uploads,
        upload: raw.upload.unwrap_or(defaults.upload),
        part_size: part_size(r, raw.part_size.as_deref(), defaults.part_size),
        scan_timeout: r.duration(
            raw.scan_timeout.as_deref(),
            &at("scan_timeout"),
            defaults.scan_timeout,
            SCAN_TIMEOUT,
        ),
    }
}

fn check_range<T: PartialOrd + Display>(
    r: &mut Resolver<'_>,
    key: &str,
    value: T,
    range: &RangeInclusive<T>,
) {
    if !range.contains(&value) {
        r.error(
            &path(["settings", key]),
            format!(
                "`{key}` is {value}; it must be between {} and {}",
                range.start(),
                range.end()
            ),
            None,
        );
    }
}

fn part_size(r: &mut Resolver<'_>, text: Option<&str>, default: u64) -> u64 {
    match text.map(parse_size) {
        None => default,
        Some(Some(size)) if crate::registry::ECR_PART_SIZE.contains(&size) => size,
        Some(_) => {
            r.error(
                &path(["settings", "part_size"]),
                format!(
                    "`part_size` is `{}`; ECR takes upload parts of 5 MiB to 20 MiB",
                    text.unwrap_or_default()
                ),
                Some("write a size such as \"10MiB\" or \"5242880\"".into()),
            );
            default
        }
    }
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

//! Named AWS profiles (`profile = "..."`) checked against the shared AWS files before any AWS
//! call: `AWS_CONFIG_FILE` (default `~/.aws/config`, sections `[profile <name>]`, `[default]`)
//! and `AWS_SHARED_CREDENTIALS_FILE` (default `~/.aws/credentials`, sections `[<name>]`).

use std::io::Read;
use std::path::{Path, PathBuf};

use super::checks::Problem;
use super::limits::MAX_CONFIG_BYTES;

/// The shared config file and the shared credentials file, as the AWS SDK finds them.
fn shared_files() -> [PathBuf; 2] {
    let home = std::env::var_os("HOME")
        .or_else(|| std::env::var_os("USERPROFILE"))
        .map(PathBuf::from)
        .unwrap_or_default();
    let file = |var: &str, default: &str| {
        std::env::var_os(var)
            .filter(|v| !v.is_empty())
            .map_or_else(|| home.join(".aws").join(default), PathBuf::from)
    };
    [
        file("AWS_CONFIG_FILE", "config"),
        file("AWS_SHARED_CREDENTIALS_FILE", "credentials"),
    ]
}

/// Why `profile` cannot be used, if it cannot: it is defined in neither shared file.
pub(super) fn profile_problem(profile: &str) -> Option<Problem> {
    let [config, credentials] = shared_files();
    profile_problem_in(profile, &config, &credentials)
}

fn profile_problem_in(profile: &str, config: &Path, credentials: &Path) -> Option<Problem> {
    let profile = profile.trim();
    if profile.is_empty() {
        return Some(Problem {
            message: "`profile` must not be empty".into(),
            help: "name a profile of ~/.aws/config, or remove `profile` to use the default credential chain".into(),
        });
    }
    let in_config = read_small(config).is_some_and(|text| {
        sections(&text).any(|s| {
            s.strip_prefix("profile")
                .filter(|rest| rest.starts_with(char::is_whitespace))
                .map_or(s == profile && !s.contains(char::is_whitespace), |name| {
                    name.trim() == profile
                })
        })
    });
    let in_credentials =
        read_small(credentials).is_some_and(|text| sections(&text).any(|s| s == profile));
    if in_config || in_credentials {
        return None;
    }
    Some(Problem {
        message: format!(
            "AWS profile `{profile}` is not defined in {} or {}",
            config.display(),
            credentials.display()
        ),
        help: format!(
            "create it (`aws configure --profile {profile}`, or `[profile {profile}]` in the config \
             file), point AWS_CONFIG_FILE at the file that has it, or remove `profile` to use \
             the default credential chain"
        ),
    })
}

/// The section names (`[...]` headers, trimmed) of an INI-style AWS file.
fn sections(text: &str) -> impl Iterator<Item = &str> {
    text.lines().filter_map(|line| {
        let line = line.trim();
        line.strip_prefix('[')
            .and_then(|rest| rest.split_once(']'))
            .map(|(name, _)| name.trim())
    })
}

/// A regular file's text, when it is one and not larger than a configuration may be.
fn read_small(path: &Path) -> Option<String> {
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_file() || meta.len() > MAX_CONFIG_BYTES {
        return None;
    }
    let mut text = String::new();
    std::fs::File::open(path)
        .ok()?
        .take(MAX_CONFIG_BYTES)
        .read_to_string(&mut text)
        .ok()?;
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_are_found_in_either_file() {
        let dir = std::env::temp_dir().join(format!("deploy-profiles-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let config = dir.join("config");
        let credentials = dir.join("credentials");
        std::fs::write(
            &config,
            "[default]\nregion = eu-west-1\n[profile  ci ]\nrole_arn = x\n[sso-session s]\n",
        )
        .expect("write");
        std::fs::write(&credentials, "[local]\naws_access_key_id = a\n").expect("write");
        for known in ["default", "ci", "local"] {
            assert_eq!(
                profile_problem_in(known, &config, &credentials),
                None,
                "{known}"
            );
        }
        for unknown in ["prod", "s", "sso-session s", ""] {
            assert!(
                profile_problem_in(unknown, &config, &credentials).is_some(),
                "{unknown}"
            );
        }
        let missing =
            profile_problem_in("ci", &dir.join("nope"), &dir.join("nope2")).expect("no files");
        assert!(
            missing.message.contains("`ci` is not defined"),
            "{missing:?}"
        );
    }
}

//! The version a release publishes: it becomes the image tag and part of URLs and keys, so it
//! must match the OCI tag grammar `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`.

use super::OpsError;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::config::Config;

/// The version to release: `flag`, else `GITHUB_SHA`, else `git rev-parse HEAD` in the
/// configuration's directory; checked with [`check_version`].
pub fn resolve_version(flag: Option<&str>, config: &Config) -> Result<String, OpsError> {
    let version = match flag {
        Some(version) => version.to_owned(),
        None => match std::env::var("GITHUB_SHA").ok().filter(|s| !s.is_empty()) {
            Some(sha) => sha,
            None => git_head(config)?,
        },
    };
    check_version(&version)?;
    Ok(version)
}

/// Whether the version comes from the work tree (no `--version`, no `GITHUB_SHA`) and that
/// tree has uncommitted changes to tracked files: then what is released is not exactly the
/// HEAD commit it is labelled with.
pub fn dirty_work_tree(flag: Option<&str>, config: &Config) -> bool {
    if flag.is_some() || std::env::var("GITHUB_SHA").is_ok_and(|s| !s.is_empty()) {
        return false;
    }
    std::process::Command::new("git")
        .arg("-C")
        .arg(repository_dir(config))
        .args(["status", "--porcelain", "--untracked-files=no"])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .is_some_and(|o| !o.stdout.is_empty())
}

fn git_head(config: &Config) -> Result<String, OpsError> {
    let output = std::process::Command::new("git")
        .arg("-C")
        .arg(repository_dir(config))
        .args(["rev-parse", "HEAD"])
        .output();
    match output {
        Ok(o) if o.status.success() => Ok(String::from_utf8_lossy(&o.stdout).trim().to_owned()),
        _ => Err(OpsError::Usage(
            "no version to release: pass --version V, set GITHUB_SHA, or run inside a git repository"
                .into(),
        )),
    }
}

/// When `version`'s commit was made (its git committer date, where lead time starts): read
/// from the repository the configuration is in (`git log -1 --format=%cI`), else from the
/// GitHub event that started the run (`head_commit` of a push, when it is that commit). `None`
/// when the version is not a commit found there.
pub fn commit_time(version: &str, config: &Config) -> Option<OffsetDateTime> {
    let is_commit =
        (7..=64).contains(&version.len()) && version.chars().all(|c| c.is_ascii_hexdigit());
    if !is_commit {
        return None;
    }
    from_git(version, config).or_else(|| from_github_event(version))
}

fn from_git(version: &str, config: &Config) -> Option<OffsetDateTime> {
    let output = std::process::Command::new("git")
        .arg("-C")
        .arg(repository_dir(config))
        .args(["log", "-1", "--format=%cI", version, "--"])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())?;
    let text = String::from_utf8_lossy(&output.stdout);
    OffsetDateTime::parse(text.trim(), &Rfc3339).ok()
}

fn from_github_event(version: &str) -> Option<OffsetDateTime> {
    let path = std::env::var_os("GITHUB_EVENT_PATH")?;
    let text = std::fs::read(path).ok()?;
    let event: serde_json::Value = serde_json::from_slice(&text).ok()?;
    let head = &event["head_commit"];
    let id = head["id"].as_str()?;
    if !id.starts_with(version) {
        return None;
    }
    OffsetDateTime::parse(head["timestamp"].as_str()?, &Rfc3339).ok()
}

/// The directory of the configuration, where git is asked.
fn repository_dir(config: &Config) -> &std::path::Path {
    let dir = config.base_dir();
    if dir.as_os_str().is_empty() {
        std::path::Path::new(".")
    } else {
        dir
    }
}

/// Checks `version` against the OCI tag grammar; the error says what is allowed and, for a
/// branch-like value, what to pass instead.
pub fn check_version(version: &str) -> Result<(), OpsError> {
    let mut chars = version.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if first_ok && rest_ok && version.len() <= 128 {
        return Ok(());
    }
    let shown: String = version.escape_debug().take(80).collect();
    let hint = if version.contains('/') {
        format!(
            "; a branch name is not a version: pass the commit (`--version $(git rev-parse HEAD)`) or replace `/` (`--version {}`)",
            version
                .replace('/', "-")
                .escape_debug()
                .take(80)
                .collect::<String>()
        )
    } else if version.is_empty() {
        "; it is empty".to_owned()
    } else if version.len() > 128 {
        format!("; it is {} characters long", version.len())
    } else {
        String::new()
    };
    Err(OpsError::Usage(format!(
        "version \"{shown}\" cannot be an image tag: a version is 1 to 128 characters of letters, digits, \
         `_`, `.` and `-`, not starting with `.` or `-`{hint}"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_of_the_oci_grammar_pass() {
        for ok in ["v1", "1f2e3d4c", "_x", "v1.2.3-rc.1", &"a".repeat(128)] {
            assert!(check_version(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn everything_else_is_refused_with_what_is_allowed() {
        for bad in [
            "x/../../../other/manifests/v10",
            "v7?x=1",
            "v1\nv2",
            "",
            &"a".repeat(300),
            "feature/x",
            "a b",
            "vé",
            ".v1",
            "-v1",
        ] {
            let err = check_version(bad).expect_err(bad).to_string();
            assert!(err.contains("1 to 128 characters"), "{err}");
            assert!(!err.contains('\n'), "one line: {err}");
        }
        let err = check_version("feature/x").expect_err("branch").to_string();
        assert!(err.contains("--version feature-x"), "{err}");
    }
}

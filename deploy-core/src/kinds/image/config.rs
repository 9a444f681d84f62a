//! `kind = "image"` in `deploy.toml`: the ECR repository, where the image comes from, scan and
//! rollout settings; and the check that a local image source is readable before any AWS call.

use std::path::{Path, PathBuf};

use crate::config::checks::{Problem, redact, registry_host_problem};
use crate::config::kind::ArtifactContext;
use std::collections::BTreeMap;

use serde::Deserialize;

use crate::config::raw::RawArtifact;
use crate::kinds::image::rollout::ImageRollout;
use crate::kinds::{ArtifactKind, ImageSource, ImageSpec, ScanGate};
use crate::rollout::raw::RawRollout;

/// The keys an image artifact takes.
pub(crate) const KEYS: &[&str] = &[
    "repository",
    "source",
    "scan",
    "scan_on_publish",
    "create_repository",
    "env",
    "secrets",
    "rollout",
];

/// An image artifact's table as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawImage {
    repository: Option<String>,
    source: Option<String>,
    scan: Option<ScanGate>,
    scan_on_publish: Option<bool>,
    create_repository: Option<bool>,
    env: Option<BTreeMap<String, String>>,
    secrets: Option<BTreeMap<String, String>>,
    rollout: Option<RawRollout>,
}

const SOURCE_FORMS: &str =
    "use oci:<layout dir>[:tag], docker-archive:<file.tar> or docker://<registry>/<repo>:<tag>";

const REPOSITORY_HELP: &str = "2-256 characters: path components of lowercase letters and digits, \
     separated by single `.`, `_` or `-`, joined by `/` (e.g. planwise/api)";

/// Resolves an image artifact (overrides merged, placeholders expanded).
pub(crate) fn resolve(
    ctx: &mut ArtifactContext<'_, '_, '_>,
    raw: RawArtifact,
) -> Option<ImageSpec> {
    let raw: RawImage = ctx.read(raw)?;
    let repository = ctx.require(raw.repository.as_ref(), &["repository"]);
    if !repository.is_empty() && !repository.contains(['{', '}']) && !valid_repository(&repository)
    {
        ctx.error(
            &["repository"],
            format!("`{repository}` is not a valid ECR repository name"),
            Some(REPOSITORY_HELP.into()),
        );
    }
    let source = raw.source.as_deref().and_then(|s| source(ctx, s));
    let rollout = match raw.rollout {
        None => ImageRollout::None,
        Some(rollout) => self::rollout(ctx, &rollout)?,
    };
    Some(ImageSpec {
        repository,
        source,
        scan: raw.scan.unwrap_or(ScanGate::None),
        scan_on_publish: raw.scan_on_publish.unwrap_or(false),
        create_repository: raw.create_repository.unwrap_or(false),
        env: raw.env.unwrap_or_default(),
        secrets: raw.secrets.unwrap_or_default(),
        rollout,
    })
}

fn source(ctx: &mut ArtifactContext<'_, '_, '_>, text: &str) -> Option<ImageSource> {
    match parse_image_source(text) {
        Ok(source) => Some(source),
        Err(problem) => {
            ctx.error(&["source"], problem.message, Some(problem.help));
            None
        }
    }
}

fn rollout(ctx: &mut ArtifactContext<'_, '_, '_>, raw: &RawRollout) -> Option<ImageRollout> {
    if !ctx.check_strategy(ArtifactKind::Image, raw.strategy) {
        return None;
    }
    Some(super::rollout::config::image(ctx, raw))
}

/// Whether `name` is an ECR repository name:
/// `(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*`, 2 to 256 characters.
pub(crate) fn valid_repository(name: &str) -> bool {
    let component = |part: &str| {
        !part.is_empty()
            && part.split(['.', '_', '-']).all(|run| {
                !run.is_empty()
                    && run
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            })
    };
    (2..=256).contains(&name.len()) && name.split('/').all(component)
}

/// Parses `oci:<dir>[:tag]`, `docker-archive:<file>` and `docker://<registry>/<repo>:<tag|@digest>`.
pub(crate) fn parse_image_source(text: &str) -> Result<ImageSource, Problem> {
    let problem = |message: String| Problem {
        message,
        help: SOURCE_FORMS.into(),
    };
    if let Some(rest) = text.strip_prefix("oci:") {
        let (dir, tag) = match rest.rsplit_once(':') {
            Some((dir, tag)) if !tag.contains('/') && !dir.is_empty() => {
                (dir, Some(tag.to_owned()))
            }
            _ => (rest, None),
        };
        if dir.is_empty() {
            return Err(problem(format!("image source `{text}` names no directory")));
        }
        return Ok(ImageSource::Oci {
            path: PathBuf::from(dir),
            tag,
        });
    }
    if let Some(file) = text.strip_prefix("docker-archive:") {
        if file.is_empty() {
            return Err(problem(format!("image source `{text}` names no file")));
        }
        return Ok(ImageSource::DockerArchive {
            path: PathBuf::from(file),
        });
    }
    if let Some(rest) = text.strip_prefix("docker://") {
        return parse_registry_source(text, rest);
    }
    Err(problem(format!("unknown image source `{}`", redact(text))))
}

fn parse_registry_source(text: &str, rest: &str) -> Result<ImageSource, Problem> {
    let problem = |message: String| Problem {
        message,
        help: SOURCE_FORMS.into(),
    };
    let (registry, remainder) = rest.split_once('/').ok_or_else(|| {
        problem(format!(
            "image source `{}` needs <registry>/<repository>",
            redact(text)
        ))
    })?;
    if let Some(problem) = registry_host_problem(text, registry) {
        return Err(problem);
    }
    let (repository, reference) = if let Some((repo, digest)) = remainder.split_once('@') {
        (repo, digest.to_owned())
    } else if let Some((repo, tag)) = remainder.rsplit_once(':') {
        (repo, tag.to_owned())
    } else {
        return Err(problem(format!(
            "image source `{text}` needs a :tag or @sha256:digest"
        )));
    };
    if registry.is_empty() || repository.is_empty() || reference.is_empty() {
        return Err(problem(format!("image source `{text}` is incomplete")));
    }
    Ok(ImageSource::Registry {
        registry: registry.to_owned(),
        repository: repository.to_owned(),
        reference,
    })
}

/// What keeps a local image source from being published, if anything: the layout or archive is
/// opened as `publish` opens it, every manifest read and checked against its digest, every blob
/// found as a regular file of the size its descriptor gives. Layers are not hashed.
pub(crate) fn check_source(base: &Path, source: &ImageSource) -> Option<String> {
    match source {
        ImageSource::Oci { path, tag } => {
            let dir = crate::config::paths::absolute(base, path);
            if let Some(problem) =
                crate::config::paths::kind_problem(&dir, "OCI layout directory", true)
            {
                return Some(problem);
            }
            check_layout(&dir, tag.as_deref()).err()
        }
        ImageSource::DockerArchive { path } => {
            let file = crate::config::paths::absolute(base, path);
            if let Some(problem) = crate::config::paths::kind_problem(&file, "image archive", false)
            {
                return Some(problem);
            }
            super::archive::DockerArchive::open(&file)
                .and_then(|mut archive| archive.image(None))
                .err()
                .map(|err| err.to_string())
        }
        ImageSource::Registry { .. } => None,
    }
}

fn check_layout(dir: &Path, tag: Option<&str>) -> Result<(), String> {
    let layout = super::layout::OciLayout::open(dir).map_err(|e| e.to_string())?;
    let contents = layout.image(tag).map_err(|e| e.to_string())?;
    for blob in &contents.blobs {
        let path = layout.blob_path(&blob.digest);
        let meta = std::fs::metadata(&path)
            .map_err(|err| format!("cannot read blob {}: {err}", path.display()))?;
        if meta.len() != blob.size {
            return Err(format!(
                "blob {} has {} bytes but its descriptor says {}; the layout is corrupt",
                path.display(),
                meta.len(),
                blob.size
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_names_follow_ecr_rules() {
        for good in ["ab", "planwise/api", "a.b_c-d/e1", "x/y/z"] {
            assert!(valid_repository(good), "{good}");
        }
        for bad in [
            "a",
            "Planwise/api",
            "a..b",
            "a-_b",
            "/a",
            "a/",
            "a//b",
            "-ab",
            "ab-",
            "a b",
        ] {
            assert!(!valid_repository(bad), "{bad}");
        }
        assert!(!valid_repository(&"a".repeat(257)));
    }

    #[test]
    fn registry_sources_with_credentials_are_refused_without_echoing_them() {
        let err = parse_image_source("docker://me:hunter2@registry.example/t/app:1")
            .expect_err("credentials");
        assert!(!err.message.contains("hunter2"), "{err:?}");
        assert!(err.help.contains("docker login"), "{err:?}");
        assert!(parse_image_source("docker://registry.example/t/app:1").is_ok());
    }
}

//! What goes into a registry URL: repository names, tags and digests checked against the
//! distribution grammar before any request, URLs built segment by segment (percent-encoded),
//! and upload locations resolved against the registry's own origin.

use reqwest::Url;

use super::{Registry, RegistryError};
use crate::oci::Digest;

const REPOSITORY_RULE: &str = "a repository is lowercase path components ([a-z0-9]+ joined by \
     `.`, `_`, `__` or dashes) separated by `/`, at most 255 characters";
const TAG_RULE: &str = "a tag is [A-Za-z0-9_][A-Za-z0-9._-]{0,127}";
const REFERENCE_RULE: &str =
    "a reference is a tag ([A-Za-z0-9_][A-Za-z0-9._-]{0,127}) or a digest sha256:<64 hex>";

/// A tag or a digest, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Reference {
    /// A tag.
    Tag(String),
    /// A digest.
    Digest(Digest),
}

impl Reference {
    pub(super) fn as_str(&self) -> &str {
        match self {
            Reference::Tag(tag) => tag,
            Reference::Digest(digest) => digest.as_str(),
        }
    }
}

/// Whether `name` is a repository name of the distribution grammar: components
/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*` joined by `/`, 255 characters at most.
pub fn valid_repository(name: &str) -> bool {
    !name.is_empty() && name.len() <= 255 && name.split('/').all(valid_component)
}

fn valid_component(part: &str) -> bool {
    let alnum = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    let bytes = part.as_bytes();
    let (Some(&first), Some(&last)) = (bytes.first(), bytes.last()) else {
        return false;
    };
    if !alnum(first) || !alnum(last) {
        return false;
    }
    // Separators: one `.`, one or two `_`, or any run of `-`; never mixed, never at the ends.
    let mut run: Vec<u8> = Vec::new();
    for &c in bytes {
        if alnum(c) {
            let ok = matches!(run.as_slice(), [] | [b'.'] | [b'_'] | [b'_', b'_'])
                || run.iter().all(|&s| s == b'-');
            if !ok {
                return false;
            }
            run.clear();
        } else if matches!(c, b'.' | b'_' | b'-') {
            run.push(c);
        } else {
            return false;
        }
    }
    true
}

/// Whether `tag` matches the OCI tag grammar `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`.
pub fn valid_tag(tag: &str) -> bool {
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let bytes = tag.as_bytes();
    bytes.first().is_some_and(|&c| word(c))
        && bytes.len() <= 128
        && bytes.iter().all(|&c| word(c) || c == b'.' || c == b'-')
}

/// `value` escaped (control characters visible) and cut to a printable length.
fn shown(value: &str) -> String {
    let escaped: String = value.escape_debug().collect();
    if escaped.chars().count() <= 80 {
        return escaped;
    }
    let head: String = escaped.chars().take(80).collect();
    format!("{head}... ({} characters)", value.chars().count())
}

impl Registry {
    fn invalid(&self, kind: &'static str, value: &str, rule: &'static str) -> RegistryError {
        RegistryError::InvalidName {
            registry: self.host.clone(),
            kind,
            value: shown(value),
            rule,
        }
    }

    /// `name` if it is a valid repository name.
    pub(super) fn repository<'n>(&self, name: &'n str) -> Result<&'n str, RegistryError> {
        if valid_repository(name) {
            Ok(name)
        } else {
            Err(self.invalid("repository", name, REPOSITORY_RULE))
        }
    }

    /// `tag` if it matches the tag grammar.
    pub(super) fn tag<'t>(&self, tag: &'t str) -> Result<&'t str, RegistryError> {
        if valid_tag(tag) {
            Ok(tag)
        } else {
            Err(self.invalid("tag", tag, TAG_RULE))
        }
    }

    /// `text` as a tag or a sha256 digest.
    pub(super) fn reference(&self, text: &str) -> Result<Reference, RegistryError> {
        if text.contains(':') {
            return text
                .parse::<Digest>()
                .map(Reference::Digest)
                .map_err(|_| self.invalid("reference", text, REFERENCE_RULE));
        }
        if valid_tag(text) {
            return Ok(Reference::Tag(text.to_owned()));
        }
        Err(self.invalid("reference", text, REFERENCE_RULE))
    }

    /// `<base>/v2/<repository>/<segments...>`, every part percent-encoded as a path segment.
    pub(super) fn endpoint(&self, repository: &str, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().push("v2");
            path.extend(repository.split('/'));
            path.extend(segments);
        }
        url
    }

    /// An upload location the registry sent, resolved against the registry's URL: relative
    /// locations are joined; absolute ones must keep the registry's origin.
    pub(super) fn resolve_location(
        &self,
        operation: &str,
        location: &str,
    ) -> Result<Url, RegistryError> {
        let foreign = || RegistryError::ForeignLocation {
            registry: self.host.clone(),
            operation: operation.to_owned(),
            location: shown(&super::error::redact(location)),
        };
        let mut url = self.base.join(location).map_err(|_| foreign())?;
        if url.origin() != self.base.origin() {
            return Err(foreign());
        }
        // Credentials go in headers, never in URLs.
        let _ = url.set_username("");
        let _ = url.set_password(None);
        Ok(url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::RegistrySettings;

    fn registry() -> Registry {
        Registry::new("http://127.0.0.1:5000", None, RegistrySettings::default()).expect("client")
    }

    #[test]
    fn repositories_follow_the_distribution_grammar() {
        for good in [
            "a",
            "planwise/api",
            "a.b/c_d/e__f/g--h",
            "x1/2y",
            &"a".repeat(255),
        ] {
            assert!(valid_repository(good), "{good}");
        }
        for bad in [
            "",
            "A",
            "a/",
            "/a",
            "a//b",
            "x/../../../other",
            "a..b",
            "a___b",
            "a._b",
            "-a",
            "a-",
            "a b",
            "é",
            "a?b",
            &"a".repeat(256),
        ] {
            assert!(!valid_repository(bad), "{bad}");
        }
    }

    #[test]
    fn tags_follow_the_oci_grammar() {
        for good in ["v1", "_x", "1.2.3-rc_1", &"a".repeat(128)] {
            assert!(valid_tag(good), "{good}");
        }
        for bad in [
            "",
            ".v1",
            "-v1",
            "v7?x=1",
            "v1\nv2",
            "feature/x",
            "väter",
            "a b",
            &"a".repeat(129),
            &"a".repeat(300),
        ] {
            assert!(!valid_tag(bad), "{bad}");
        }
    }

    #[test]
    fn references_are_tags_or_sha256_digests() {
        let r = registry();
        let digest = Digest::of(b"x");
        assert_eq!(
            r.reference(digest.as_str()).expect("digest"),
            Reference::Digest(digest)
        );
        assert_eq!(r.reference("v1").expect("tag"), Reference::Tag("v1".into()));
        for bad in ["sha256:abc", "md5:00", "v1:x", "../v1", "", "v1\nv2"] {
            let err = r.reference(bad).expect_err(bad);
            assert!(matches!(err, RegistryError::InvalidName { .. }), "{err}");
        }
        let text = r.reference("v1\nv2").expect_err("newline").to_string();
        assert!(text.contains(r"v1\nv2") && !text.contains('\n'), "{text}");
    }

    #[test]
    fn urls_are_built_from_segments() {
        let r = registry();
        assert_eq!(
            r.endpoint("planwise/api", &["manifests", "v1"]).as_str(),
            "http://127.0.0.1:5000/v2/planwise/api/manifests/v1"
        );
    }

    #[test]
    fn locations_are_resolved_and_must_stay_on_the_registry() {
        let r = registry();
        let op = "upload";
        assert_eq!(
            r.resolve_location(op, "/v2/a/blobs/uploads/1?_state=x")
                .expect("relative")
                .as_str(),
            "http://127.0.0.1:5000/v2/a/blobs/uploads/1?_state=x"
        );
        assert_eq!(
            r.resolve_location(op, "http://127.0.0.1:5000/v2/a/blobs/uploads/2")
                .expect("same origin")
                .as_str(),
            "http://127.0.0.1:5000/v2/a/blobs/uploads/2"
        );
        for foreign in [
            "http://evil.example/v2/a/blobs/uploads/1",
            "https://127.0.0.1:5000/v2/a/blobs/uploads/1",
            "http://127.0.0.1:5001/v2/a/blobs/uploads/1",
            "//evil.example/upload",
        ] {
            let err = r.resolve_location(op, foreign).expect_err(foreign);
            assert!(
                matches!(err, RegistryError::ForeignLocation { .. }),
                "{err}"
            );
        }
        let err = r
            .resolve_location(op, "http://u:secret@evil.example/x")
            .expect_err("foreign");
        assert!(!err.to_string().contains("secret"), "{err}");
    }
}

//! The shape rules of AWS names and addresses a configuration holds: S3 buckets, endpoints, IAM
//! role ARNs, and our own project, environment and artifact names. Pure functions over the
//! expanded values; each problem comes back as a sentence and what is allowed.

use super::limits::MAX_NAME_LEN;

/// What is wrong with a value, and what is allowed instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Problem {
    pub message: String,
    pub help: String,
}

impl Problem {
    pub(crate) fn new(message: impl Into<String>, help: impl Into<String>) -> Problem {
        Problem {
            message: message.into(),
            help: help.into(),
        }
    }
}

const BUCKET_HELP: &str = "3-63 characters: lowercase letters, digits, `-` and `.`, starting and \
     ending with a letter or digit, no `..`, not an IP address, no `xn--`/`sthree-` prefix and no \
     `-s3alias`/`--ol-s3` suffix";

/// Whether `name` follows S3's rules for general purpose bucket names.
pub(crate) fn bucket_problem(name: &str) -> Option<Problem> {
    let bad = |why: &str| {
        Some(Problem::new(
            format!("`{name}` is not a valid S3 bucket name ({why})"),
            BUCKET_HELP,
        ))
    };
    if !(3..=63).contains(&name.len()) {
        return bad("it must be 3 to 63 characters long");
    }
    let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.';
    if !name.chars().all(allowed) {
        return bad("only lowercase letters, digits, `-` and `.` are allowed");
    }
    let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    if !name.starts_with(alnum) || !name.ends_with(alnum) {
        return bad("it must start and end with a letter or digit");
    }
    if name.contains("..") {
        return bad("it must not contain `..`");
    }
    if name.parse::<std::net::Ipv4Addr>().is_ok() {
        return bad("it must not look like an IP address");
    }
    if let Some(prefix) = ["xn--", "sthree-", "amzn-s3-demo-"]
        .iter()
        .find(|p| name.starts_with(**p))
    {
        return bad(&format!("the prefix `{prefix}` is reserved"));
    }
    if let Some(suffix) = ["-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"]
        .iter()
        .find(|s| name.ends_with(**s))
    {
        return bad(&format!("the suffix `{suffix}` is reserved"));
    }
    None
}

const LOGIN_HELP: &str = "keep credentials out of deploy.toml: log in with `docker login <host>` \
     (stored in ~/.docker/config.json, which deploy reads) or use the AWS credential chain";

/// Whether `url` is an endpoint: `http(s)://host[:port]` with nothing after the authority but an
/// optional `/`. A bare `host[:port]` is accepted where `bare_host` is (the registry).
pub(crate) fn endpoint_problem(service: &str, url: &str, bare_host: bool) -> Option<Problem> {
    let form = "write it like http://127.0.0.1:5000 or https://s3.eu-west-1.amazonaws.com";
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"));
    let (authority, tail) = match rest {
        Some(rest) => rest.split_at(rest.find(['/', '?', '#']).unwrap_or(rest.len())),
        None if bare_host && !url.contains("://") => {
            url.split_at(url.find(['/', '?', '#']).unwrap_or(url.len()))
        }
        None => {
            return Some(Problem::new(
                format!("endpoint `{url}` for {service} is not an http(s) URL"),
                form,
            ));
        }
    };
    if authority.contains('@') {
        return Some(Problem::new(
            format!("endpoint for {service} carries credentials (`user:password@`)"),
            LOGIN_HELP,
        ));
    }
    if !tail.is_empty() && tail != "/" {
        return Some(Problem::new(
            format!(
                "endpoint `{url}` for {service} has a path, query or fragment; only scheme, host and port are used"
            ),
            form,
        ));
    }
    if let Some(problem) = authority_problem(authority) {
        return Some(Problem::new(
            format!("endpoint `{url}` for {service}: {problem}"),
            form,
        ));
    }
    None
}

/// Whether `url` is an absolute `http(s)://host[:port][/path]` URL a check can GET: a host,
/// a port from 1 to 65535, no spaces or control characters, and no credentials (the message
/// never repeats them).
pub(crate) fn http_url_problem(what: &str, url: &str) -> Option<Problem> {
    let form = "write it like https://api.example.com/health or http://127.0.0.1:8080/health";
    let shown = redact(url);
    let Some(rest) = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
    else {
        return Some(Problem::new(
            format!("{what} `{shown}` is not an http(s) URL"),
            form,
        ));
    };
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Some(Problem::new(
            format!(
                "{what} `{}` contains a space or control character",
                shown.escape_debug()
            ),
            "percent-encode it (a space is %20)",
        ));
    }
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    if authority.contains('@') {
        return Some(Problem::new(
            format!("{what} `{shown}` carries credentials (`user:password@`)"),
            "keep credentials out of deploy.toml: a health check sends no credentials, so \
             point it at an endpoint that answers without them",
        ));
    }
    if authority.is_empty() {
        return Some(Problem::new(format!("{what} `{shown}` has no host"), form));
    }
    authority_problem(authority)
        .map(|problem| Problem::new(format!("{what} `{shown}`: {problem}"), form))
}

/// Checks `host[:port]` (IPv6 hosts in brackets).
fn authority_problem(authority: &str) -> Option<&'static str> {
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, _)) if !host.ends_with(']') && host.contains(':') => (authority, None),
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    };
    let host_ok = if let Some(inner) = host.strip_prefix('[') {
        inner
            .strip_suffix(']')
            .is_some_and(|h| h.parse::<std::net::Ipv6Addr>().is_ok())
    } else {
        !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_')
    };
    if !host_ok {
        return Some("the host name is not valid");
    }
    match port.map(str::parse::<u16>) {
        Some(Ok(0) | Err(_)) => Some("the port must be a number from 1 to 65535"),
        _ => None,
    }
}

/// Whether a `docker://` registry host carries credentials.
pub(crate) fn registry_host_problem(source: &str, host: &str) -> Option<Problem> {
    host.contains('@').then(|| {
        Problem::new(
            format!("image source `{}` carries credentials", redact(source)),
            LOGIN_HELP,
        )
    })
}

/// `text` with anything between `://` and the next `@` replaced, so passwords never reach a
/// terminal or a log.
pub(crate) fn redact(text: &str) -> String {
    let Some((scheme, rest)) = text.split_once("://") else {
        return text.to_owned();
    };
    match rest.split_once('@') {
        Some((_, after)) => format!("{scheme}://***@{after}"),
        None => text.to_owned(),
    }
}

/// Whether `arn` is an IAM role ARN: `arn:<partition>:iam::<12 digits>:role/<path/name>`.
pub(crate) fn role_arn_problem(arn: &str) -> Option<Problem> {
    let problem = || {
        Some(Problem::new(
            format!("`{arn}` is not an IAM role ARN"),
            "expected arn:aws:iam::<12-digit account>:role/<name> (or role/<path>/<name>)",
        ))
    };
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let [arn_word, partition, service, region, account, resource] = parts.as_slice() else {
        return problem();
    };
    let partition_ok = partition
        .strip_prefix("aws")
        .is_some_and(|rest| rest.chars().all(|c| c.is_ascii_lowercase() || c == '-'));
    let account_ok = account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit());
    let name_ok = resource.strip_prefix("role/").is_some_and(|path| {
        let name = path.rsplit('/').next().unwrap_or_default();
        !name.is_empty()
            && path.len() <= 512
            && path
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+=,.@_-/".contains(c))
            && !path.contains("//")
    });
    let ok = *arn_word == "arn"
        && partition_ok
        && *service == "iam"
        && region.is_empty()
        && account_ok
        && name_ok;
    if ok { None } else { problem() }
}

/// Whether `name` is a valid project, environment or artifact name: it ends up in S3 keys,
/// tags and URLs, so lowercase letters, digits, `-` and `_`, starting with a letter.
pub(crate) fn name_problem(name: &str, what: &str) -> Option<Problem> {
    let valid = name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name.len() <= MAX_NAME_LEN
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    (!valid).then(|| {
        Problem::new(
            format!("invalid {what} name `{name}`"),
            format!(
                "use 1 to {MAX_NAME_LEN} lowercase letters, digits, `-` and `_`, starting with a letter"
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_names_follow_s3_rules() {
        for good in ["planwise-state", "a.b-c", "abc", "my.bucket.1"] {
            assert_eq!(bucket_problem(good), None, "{good}");
        }
        for bad in [
            "ab",
            "Upper",
            "-start",
            "end-",
            "a..b",
            "192.168.1.1",
            "xn--punycode",
            "sthree-x",
            "data-s3alias",
            "under_score",
            &"a".repeat(64),
        ] {
            assert!(bucket_problem(bad).is_some(), "{bad}");
        }
    }

    #[test]
    fn endpoints_are_scheme_host_and_port() {
        assert_eq!(endpoint_problem("s3", "http://127.0.0.1:4566", false), None);
        assert_eq!(
            endpoint_problem("s3", "https://s3.amazonaws.com/", false),
            None
        );
        assert_eq!(endpoint_problem("registry", "localhost:5000", true), None);
        assert_eq!(endpoint_problem("s3", "http://[::1]:4566", false), None);
        for bad in [
            "localhost:4566",
            "ftp://host",
            "http://host/path",
            "http://host?x=1",
            "http://host#f",
            "http://:80",
            "http://host:99999",
            "http://host:0",
        ] {
            assert!(endpoint_problem("s3", bad, false).is_some(), "{bad}");
        }
        let creds =
            endpoint_problem("registry", "https://user:secret@host", true).expect("refused");
        assert!(!creds.message.contains("secret"), "{creds:?}");
        assert!(creds.help.contains("docker login"));
        assert!(endpoint_problem("registry", "user:pw@host:5000", true).is_some());
    }

    #[test]
    fn http_urls_have_a_host_a_port_and_no_credentials() {
        for good in [
            "https://api.example.com/health",
            "http://127.0.0.1:8080/health?deep=1",
            "http://[::1]:8080/",
            "http://localhost",
            "https://api-dev.planwise.example:65535/a/b#frag",
        ] {
            assert_eq!(http_url_problem("health check URL", good), None, "{good}");
        }
        for bad in [
            "http://",
            "https:///health",
            "http://host name/",
            "http://host/a b",
            "http://host:99999/",
            "http://host:0/",
            "http://[::1/health",
            "ftp://host/",
            "host/health",
            "http://host\n/",
        ] {
            assert!(
                http_url_problem("health check URL", bad).is_some(),
                "{bad:?}"
            );
        }
        let creds = http_url_problem("health check URL", "https://me:s3cret@api.example/health")
            .expect("credentials refused");
        assert!(!creds.message.contains("s3cret"), "{creds:?}");
        assert!(creds.message.contains("credentials"), "{creds:?}");
    }

    #[test]
    fn role_arns_name_a_role_in_an_account() {
        for good in [
            "arn:aws:iam::111111111111:role/deployer",
            "arn:aws-us-gov:iam::111111111111:role/ci/deployer",
            "arn:aws-cn:iam::111111111111:role/a+b=c,d.e@f_g-h",
        ] {
            assert_eq!(role_arn_problem(good), None, "{good}");
        }
        for bad in [
            "arn:aws:iam::111111111111:user/deployer",
            "arn:aws:iam::11111111111:role/deployer",
            "arn:aws:iam:eu-west-1:111111111111:role/deployer",
            "arn:aws:sts::111111111111:role/deployer",
            "arn:aws:iam::111111111111:role/",
            "arn:aws:iam::111111111111:role/has space",
            "arn:azure:iam::111111111111:role/x",
            "deployer",
        ] {
            assert!(role_arn_problem(bad).is_some(), "{bad}");
        }
    }

    #[test]
    fn names_are_safe_for_keys_and_urls() {
        assert_eq!(name_problem("api-v2_x", "artifact"), None);
        for bad in [
            "",
            "../x",
            "a/b",
            "a b",
            "Api",
            "1api",
            "a.b",
            &"a".repeat(64),
        ] {
            assert!(name_problem(bad, "artifact").is_some(), "{bad:?}");
        }
    }

    #[test]
    fn credentials_are_redacted() {
        assert_eq!(
            redact("docker://me:pw@host/repo:1"),
            "docker://***@host/repo:1"
        );
        assert_eq!(redact("docker://host/repo:1"), "docker://host/repo:1");
    }
}

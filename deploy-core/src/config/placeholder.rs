//! `{env}`, `{project}`, `{account}` and `{region}` in configuration strings.

/// The placeholders a configuration string may use.
pub const KNOWN: [&str; 4] = ["env", "project", "account", "region"];

/// Replaces `{name}` by its value; `{{` and `}}` stand for literal braces.
///
/// Fails with a message naming the offending placeholder when it is not among `vars`.
pub(crate) fn expand(text: &str, vars: &[(&str, &str)]) -> Result<String, String> {
    if !text.contains(['{', '}']) {
        return Ok(text.to_owned());
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find(['{', '}']) {
        out.push_str(&rest[..pos]);
        let tail = &rest[pos..];
        if let Some(after) = tail.strip_prefix("{{").or_else(|| tail.strip_prefix("}}")) {
            out.push_str(&tail[..1]);
            rest = after;
            continue;
        }
        if tail.starts_with('}') {
            return Err(format!(
                "unmatched `}}` in \"{text}\" (write `}}}}` for a literal brace)"
            ));
        }
        let Some(end) = tail.find('}') else {
            return Err(format!(
                "unclosed `{{` in \"{text}\" (write `{{{{` for a literal brace)"
            ));
        };
        let name = &tail[1..end];
        match vars.iter().find(|(key, _)| *key == name) {
            Some((_, value)) => out.push_str(value),
            None => {
                let known: Vec<String> = vars.iter().map(|(k, _)| format!("{{{k}}}")).collect();
                let hint = closest(name, vars.iter().map(|(k, _)| *k))
                    .map(|k| format!(" (did you mean `{{{k}}}`?)"))
                    .unwrap_or_default();
                return Err(format!(
                    "unknown placeholder `{{{name}}}`{hint}; placeholders here: {}",
                    known.join(", ")
                ));
            }
        }
        rest = &tail[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The candidate closest to `word` by edit distance, if it is close enough to be a typo.
pub(crate) fn closest<'a>(
    word: &str,
    candidates: impl Iterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Placeholder values of one environment: `{env}`, `{project}`, `{account}`, `{region}`.
pub(crate) type Vars<'a> = [(&'static str, &'a str); 4];

#[cfg(test)]
mod tests {
    use super::*;

    const VARS: [(&str, &str); 2] = [("env", "dev"), ("project", "planwise")];

    #[test]
    fn expands_known_names_and_escapes() {
        assert_eq!(
            expand("{project}-{env}", &VARS).as_deref(),
            Ok("planwise-dev")
        );
        assert_eq!(expand("{{env}}", &VARS).as_deref(), Ok("{env}"));
        assert_eq!(expand("plain", &VARS).as_deref(), Ok("plain"));
    }

    #[test]
    fn rejects_typos_with_a_suggestion() {
        let err = expand("api-{enviroment}", &VARS).expect_err("typo");
        assert!(err.contains("unknown placeholder `{enviroment}`"), "{err}");
        let err = expand("api-{evn}", &VARS).expect_err("typo");
        assert!(err.contains("did you mean `{env}`"), "{err}");
    }

    #[test]
    fn rejects_unbalanced_braces() {
        assert!(
            expand("a{env", &VARS)
                .expect_err("open")
                .contains("unclosed")
        );
        assert!(
            expand("a}b", &VARS)
                .expect_err("close")
                .contains("unmatched")
        );
    }
}

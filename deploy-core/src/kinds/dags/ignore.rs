//! `.airflowignore` rules, read and matched the way Airflow's `find_path_from_directory`
//! (`airflow/utils/file.py`) does, in both of Airflow's syntaxes.
//!
//! The details that decide which files ship:
//! - Comments start at the first `#` (with the whitespace before it); blank lines are skipped,
//!   but a line of spaces is a pattern.
//! - `regexp`: each pattern is searched (not anchored) in the path relative to the DAG folder's
//!   root, even when a nested ignore file defines it; an invalid pattern is skipped.
//! - `glob` (gitignore rules, as the `pathspec` package translates them): a pattern with a slash
//!   at its start or in its middle is matched relative to the folder of the ignore file that
//!   defines it, any other pattern against the file or folder name alone; the last matching
//!   pattern wins (`!` negates); of identical patterns only the first counts.
//! - A folder a pattern matches is skipped whole, with everything below it.

use regex::Regex;
use serde::{Deserialize, Serialize};

/// How `.airflowignore` patterns are read, as Airflow's `[core] dag_ignore_file_syntax`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IgnoreSyntax {
    /// Regular expressions (Airflow 2's default).
    #[default]
    Regexp,
    /// gitignore-style globs (Airflow 3's default).
    Glob,
}

impl IgnoreSyntax {
    /// The name `deploy.toml` and Airflow use.
    pub fn as_str(self) -> &'static str {
        match self {
            IgnoreSyntax::Regexp => "regexp",
            IgnoreSyntax::Glob => "glob",
        }
    }

    /// The syntax named `name`, if Airflow knows it.
    pub fn parse(name: &str) -> Option<IgnoreSyntax> {
        match name {
            "regexp" => Some(IgnoreSyntax::Regexp),
            "glob" => Some(IgnoreSyntax::Glob),
            _ => None,
        }
    }
}

/// One rule of an ignore file.
#[derive(Debug, Clone)]
pub(crate) enum Rule {
    /// A regular expression searched in the root-relative path.
    Regexp(Regex),
    /// A gitignore pattern.
    Glob(GlobRule),
}

/// A gitignore pattern with what Airflow keeps of it.
#[derive(Debug, Clone)]
pub(crate) struct GlobRule {
    raw: String,
    pattern: Option<Glob>,
    /// The folder (relative to the root, `""` for the root) the pattern is matched from; `None`:
    /// matched against the name alone.
    relative_to: Option<String>,
}

/// A pattern that cannot be read (Airflow stops with an error on these too).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid pattern `{pattern}`: {reason}")]
pub struct PatternError {
    /// The pattern as written.
    pub pattern: String,
    /// Why it is invalid.
    pub reason: String,
}

/// Reads the rules of an ignore file in folder `dir` (relative to the root, `""` for the
/// root). Invalid regular expressions are skipped, as Airflow does, and returned as warnings.
pub(crate) fn parse(
    text: &str,
    syntax: IgnoreSyntax,
    dir: &str,
) -> Result<(Vec<Rule>, Vec<PatternError>), PatternError> {
    let text = text.replace("\r\n", "\n").replace('\r', "\n");
    let mut rules = Vec::new();
    let mut skipped = Vec::new();
    for line in text.split('\n') {
        let line = strip_comment(line);
        if line.is_empty() {
            continue;
        }
        match syntax {
            IgnoreSyntax::Regexp => match Regex::new(line) {
                Ok(regex) => rules.push(Rule::Regexp(regex)),
                Err(error) => skipped.push(PatternError {
                    pattern: line.to_owned(),
                    reason: error.to_string(),
                }),
            },
            IgnoreSyntax::Glob => {
                if let Some(rule) = glob_rule(line, dir)? {
                    rules.push(Rule::Glob(rule));
                }
            }
        }
    }
    Ok((rules, skipped))
}

/// `re.sub(r"\s*#.*", "", line)` with RE2's ASCII `\s`.
fn strip_comment(line: &str) -> &str {
    match line.find('#') {
        Some(hash) => line[..hash].trim_end_matches(['\t', '\n', '\x0c', '\r', ' ']),
        None => line,
    }
}

fn glob_rule(raw: &str, dir: &str) -> Result<Option<GlobRule>, PatternError> {
    if raw.trim() == "/" {
        return Ok(None);
    }
    let anchored = raw.starts_with('/') || raw.trim_end_matches('/').contains('/');
    Ok(Some(GlobRule {
        raw: raw.to_owned(),
        pattern: Glob::new(raw)?,
        relative_to: anchored.then(|| dir.to_owned()),
    }))
}

/// Appends `new` to `inherited`, keeping only the first of identical glob rules (Airflow's
/// `dict.fromkeys`, which matters with negation).
pub(crate) fn extend(inherited: &[Rule], new: Vec<Rule>) -> Vec<Rule> {
    let mut rules = inherited.to_vec();
    for rule in new {
        let duplicate = match &rule {
            Rule::Regexp(_) => false,
            Rule::Glob(g) => rules.iter().any(
                |r| matches!(r, Rule::Glob(o) if o.raw == g.raw && o.relative_to == g.relative_to),
            ),
        };
        if !duplicate {
            rules.push(rule);
        }
    }
    rules
}

/// Whether `rules` ignore the file or folder at `path` (relative to the root, `/`-separated).
pub(crate) fn ignored(rules: &[Rule], path: &str, is_dir: bool) -> bool {
    let mut matched = false;
    for rule in rules {
        match rule {
            Rule::Regexp(regex) => {
                if regex.is_match(path) {
                    return true;
                }
            }
            Rule::Glob(rule) => {
                let Some(pattern) = &rule.pattern else {
                    continue;
                };
                let mut candidate = match &rule.relative_to {
                    Some(dir) if dir.is_empty() => path.to_owned(),
                    Some(dir) => path
                        .strip_prefix(dir.as_str())
                        .and_then(|p| p.strip_prefix('/'))
                        .unwrap_or(path)
                        .to_owned(),
                    None => path.rsplit('/').next().unwrap_or(path).to_owned(),
                };
                if rule.raw.ends_with('/') && is_dir {
                    candidate.push('/');
                }
                if pattern.regex.is_match(&candidate) {
                    matched = pattern.include;
                }
            }
        }
    }
    matched
}

/// A gitignore pattern translated to a regular expression, as `pathspec`'s
/// `GitWildMatchPattern` does; `include` is false for a negated (`!`) pattern.
#[derive(Debug, Clone)]
pub(crate) struct Glob {
    pub(crate) regex: Regex,
    pub(crate) include: bool,
}

impl Glob {
    /// The pattern, or `None` when it matches nothing (blank, a comment, `/`).
    pub(crate) fn new(raw: &str) -> Result<Option<Glob>, PatternError> {
        let invalid = |reason: &str| PatternError {
            pattern: raw.to_owned(),
            reason: reason.to_owned(),
        };
        let pattern = if raw.ends_with("\\ ") {
            raw.trim_start()
        } else {
            raw.trim()
        };
        if pattern.is_empty() || pattern.starts_with('#') || pattern == "/" {
            return Ok(None);
        }
        let (include, pattern) = match pattern.strip_prefix('!') {
            Some(rest) => (false, rest),
            None => (true, pattern),
        };
        let regex = translate(pattern).map_err(&invalid)?;
        let regex = Regex::new(&regex).map_err(|e| invalid(&e.to_string()))?;
        Ok(Some(Glob { regex, include }))
    }
}

/// `GitWildMatchPattern.pattern_to_regex` of pathspec 0.12, for a pattern without its `!`.
fn translate(pattern: &str) -> Result<String, &'static str> {
    let mut segs: Vec<&str> = pattern.split('/').collect();
    let mut i = segs.len().saturating_sub(1);
    while i > 0 {
        if segs[i - 1] == "**" && segs[i] == "**" {
            segs.remove(i);
        }
        i -= 1;
    }
    if segs.len() == 2 && segs[0] == "**" && segs[1].is_empty() {
        return Ok("^.+/.*$".to_owned());
    }
    if segs.first().is_some_and(|s| s.is_empty()) {
        segs.remove(0);
    } else if (segs.len() == 1 || (segs.len() == 2 && segs[1].is_empty())) && segs[0] != "**" {
        segs.insert(0, "**");
    }
    if segs.is_empty() {
        return Err("nothing left to match");
    }
    let last = segs.len() - 1;
    if segs[last].is_empty() && segs.len() > 1 {
        segs[last] = "**";
    }
    let mut out = String::from("^");
    let mut need_slash = false;
    for (i, seg) in segs.iter().enumerate() {
        if *seg == "**" {
            if i == 0 && i == last {
                out.push_str("[^/]+(?:/.*)?");
            } else if i == 0 {
                out.push_str("(?:.+/)?");
                need_slash = false;
            } else if i == last {
                out.push_str("/.*");
            } else {
                out.push_str("(?:/.+)?");
                need_slash = true;
            }
            continue;
        }
        if need_slash {
            out.push('/');
        }
        if *seg == "*" {
            out.push_str("[^/]+");
        } else {
            out.push_str(&segment(seg)?);
        }
        if i == last {
            out.push_str("(?:/.*)?");
        }
        need_slash = true;
    }
    out.push('$');
    Ok(out)
}

/// `GitWildMatchPattern._translate_segment_glob`: one path segment's glob as a regex.
fn segment(glob: &str) -> Result<String, &'static str> {
    let chars: Vec<char> = glob.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    let mut escape = false;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        if escape {
            escape = false;
            out.push_str(&regex::escape(&c.to_string()));
        } else if c == '\\' {
            escape = true;
        } else if c == '*' {
            out.push_str("[^/]*");
        } else if c == '?' {
            out.push_str("[^/]");
        } else if c == '[' {
            match bracket(&chars, i) {
                Some((class, next)) => {
                    out.push_str(&class);
                    i = next;
                }
                None => out.push_str("\\["),
            }
        } else {
            out.push_str(&regex::escape(&c.to_string()));
        }
    }
    if escape {
        return Err("escape character with no character to escape");
    }
    Ok(out)
}

/// The bracket expression opened just before `start`, as a regex class, and the index after
/// it; `None` when it is not closed (then `[` is a literal).
fn bracket(chars: &[char], start: usize) -> Option<(String, usize)> {
    let end = chars.len();
    let mut j = start;
    if j < end && (chars[j] == '!' || chars[j] == '^') {
        j += 1;
    }
    if j < end && chars[j] == ']' {
        j += 1;
    }
    while j < end && chars[j] != ']' {
        j += 1;
    }
    if j >= end {
        return None;
    }
    j += 1;
    let mut i = start;
    let mut class = String::from("[");
    if chars[i] == '!' || chars[i] == '^' {
        class.push('^');
        i += 1;
    }
    for &c in &chars[i..j - 1] {
        // Python's `re` takes these literally inside a class; Rust's regex would read them as
        // nested classes or set operations.
        match c {
            '\\' => class.push_str("\\\\"),
            '[' | '&' | '~' => {
                class.push('\\');
                class.push(c);
            }
            _ => class.push(c),
        }
    }
    class.push(']');
    Some((class, j))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn glob_matches(pattern: &str, path: &str) -> bool {
        Glob::new(pattern)
            .ok()
            .flatten()
            .is_some_and(|g| g.regex.is_match(path))
    }

    #[test]
    fn glob_translation_follows_gitignore() {
        assert!(glob_matches("*.py", "a/b/c.py"));
        assert!(glob_matches("/top.py", "top.py"));
        assert!(!glob_matches("/top.py", "sub/top.py"));
        assert!(glob_matches("build/", "x/build/"));
        assert!(!glob_matches("build/", "x/build"));
        assert!(glob_matches("a/**/b", "a/b"));
        assert!(glob_matches("a/**/b", "a/x/y/b"));
        assert!(glob_matches("**/", "a/b"));
        assert!(!glob_matches("**/", "a"));
        assert!(glob_matches("[!a]x", "bx"));
        assert!(!glob_matches("[!a]x", "ax"));
        assert!(glob_matches("[[]x", "[x"));
        assert!(glob_matches("\\!bang", "!bang"));
        assert!(glob_matches("x[", "x["));
    }

    #[test]
    fn invalid_globs_are_errors() {
        assert!(Glob::new("trailing\\").is_err());
        assert!(Glob::new("!").is_err());
        assert!(matches!(Glob::new("   "), Ok(None)));
    }

    #[test]
    fn comments_are_cut_at_the_first_hash_with_the_space_before() {
        assert_eq!(strip_comment("a.py   # note"), "a.py");
        assert_eq!(strip_comment("# all"), "");
        assert_eq!(strip_comment("  "), "  ");
        assert_eq!(strip_comment("x[#]"), "x[");
    }

    #[test]
    fn regexp_rules_search_the_root_relative_path() {
        let (rules, skipped) = parse("^sub/x\n^x\n(unclosed\n", IgnoreSyntax::Regexp, "sub")
            .expect("regexp files always parse");
        assert_eq!(skipped.len(), 1);
        assert!(ignored(&rules, "sub/x.py", false));
        assert!(!ignored(&rules, "sub/y.py", false));
    }

    #[test]
    fn glob_rules_with_a_slash_are_relative_to_their_file() {
        let (rules, _) = parse(
            "/local.py\ndeep/*.py\n!deep/keep.py\n",
            IgnoreSyntax::Glob,
            "n",
        )
        .expect("valid globs");
        assert!(ignored(&rules, "n/local.py", false));
        assert!(ignored(&rules, "n/deep/d.py", false));
        assert!(!ignored(&rules, "n/deep/keep.py", false));
    }
}

//! Where each key and value of a `deploy.toml` sits in the file, so that errors found after
//! parsing (in resolution, merging or source checks) still point at `file:line:column`.

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::de::{DeTable, DeValue};

/// A position in a configuration file, 1-based like editors show it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Location {
    /// The file, as given to the loader.
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, counted in characters.
    pub column: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
    }
}

/// Spans of every key and value, indexed by their dotted path (`["artifacts", "api", "kind"]`).
#[derive(Debug, Clone, Default)]
pub(crate) struct SourceMap {
    file: PathBuf,
    text: String,
    keys: HashMap<Vec<String>, Range<usize>>,
    values: HashMap<Vec<String>, Range<usize>>,
}

impl SourceMap {
    pub(crate) fn new(file: &Path, text: &str, root: &DeTable<'_>) -> Self {
        let mut map = SourceMap {
            file: file.to_path_buf(),
            text: text.to_owned(),
            ..SourceMap::default()
        };
        let mut path = Vec::new();
        map.index_table(&mut path, root);
        map
    }

    fn index_table(&mut self, path: &mut Vec<String>, table: &DeTable<'_>) {
        for (key, value) in table {
            path.push(key.get_ref().to_string());
            self.keys.insert(path.clone(), key.span());
            self.index_value(path, value);
            path.pop();
        }
    }

    fn index_value(&mut self, path: &mut Vec<String>, value: &toml::Spanned<DeValue<'_>>) {
        self.values.insert(path.clone(), value.span());
        match value.get_ref() {
            DeValue::Table(table) => self.index_table(path, table),
            DeValue::Array(items) => {
                for (index, item) in items.iter().enumerate() {
                    path.push(index.to_string());
                    self.index_value(path, item);
                    path.pop();
                }
            }
            _ => {}
        }
    }

    /// The location of a byte offset in the file.
    pub(crate) fn offset(&self, offset: usize) -> Location {
        let before = self.text.get(..offset).unwrap_or(&self.text);
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
        Location {
            file: self.file.clone(),
            line,
            column,
        }
    }

    /// Where the value at `path` is; falls back to the closest ancestor that exists.
    pub(crate) fn value(&self, path: &[String]) -> Option<Location> {
        self.lookup(path, &self.values)
    }

    /// Where the key at `path` is written (for "unknown key" errors); falls back like [`Self::value`].
    pub(crate) fn key(&self, path: &[String]) -> Option<Location> {
        self.lookup(path, &self.keys)
    }

    /// Byte offset of the key at exactly `path`, if the file spells it out.
    pub(crate) fn key_offset(&self, path: &[String]) -> Option<usize> {
        self.keys.get(path).map(|span| span.start)
    }

    /// Whether the file itself spells out `path`.
    pub(crate) fn contains(&self, path: &[String]) -> bool {
        self.values.contains_key(path)
    }

    fn lookup(
        &self,
        path: &[String],
        spans: &HashMap<Vec<String>, Range<usize>>,
    ) -> Option<Location> {
        (0..=path.len())
            .rev()
            .find_map(|len| {
                spans
                    .get(&path[..len])
                    .or_else(|| self.values.get(&path[..len]))
            })
            .map(|span| self.offset(span.start))
    }
}

/// Builds a dotted path from string-ish segments.
pub(crate) fn path<I, S>(segments: I) -> Vec<String>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    segments.into_iter().map(Into::into).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locates_nested_keys_and_array_items() {
        let text = "project = \"p\"\n\n[artifacts.api]\nkind = \"image\"\nlist = [\"a\", \"b\"]\n";
        let root = DeTable::parse(text).expect("valid toml");
        let map = SourceMap::new(Path::new("deploy.toml"), text, root.get_ref());
        let kind = map
            .value(&path(["artifacts", "api", "kind"]))
            .expect("kind");
        assert_eq!((kind.line, kind.column), (4, 8));
        let key = map.key(&path(["artifacts", "api", "kind"])).expect("key");
        assert_eq!((key.line, key.column), (4, 1));
        let second = map
            .value(&path(["artifacts", "api", "list", "1"]))
            .expect("item");
        assert_eq!((second.line, second.column), (5, 14));
        let missing = map
            .value(&path(["artifacts", "api", "nope"]))
            .expect("ancestor");
        assert_eq!(missing.line, 3);
        assert_eq!(missing.to_string(), "deploy.toml:3:1");
    }
}

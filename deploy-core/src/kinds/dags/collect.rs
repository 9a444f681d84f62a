//! The files of a DAG folder that ship: what Airflow would read (honouring `.airflowignore`,
//! [`super::ignore`]), plus the ignore files themselves, minus caches and the configured
//! `exclude` globs, and only what `include` names when it names anything.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use super::ignore::{self, Glob, IgnoreSyntax, PatternError, Rule};

/// The name of Airflow's ignore files.
pub const IGNORE_FILE: &str = ".airflowignore";

/// What decides which files of the folder ship.
#[derive(Debug, Clone, Default)]
pub struct CollectOptions {
    /// How `.airflowignore` is read.
    pub syntax: IgnoreSyntax,
    /// When not empty, only files matching one of these globs (relative to the folder) ship.
    pub include: Vec<String>,
    /// Files matching one of these globs never ship.
    pub exclude: Vec<String>,
}

/// One file that ships.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFile {
    /// Path relative to the folder, `/`-separated: the key below the prefix.
    pub path: String,
    /// Where it is read from.
    pub local: PathBuf,
    /// Size in bytes.
    pub size: u64,
}

/// The folder's files that ship, sorted by path.
#[derive(Debug, Clone, Default)]
pub struct Collection {
    /// The files.
    pub files: Vec<SourceFile>,
    /// Patterns Airflow would skip as invalid (and so does this), with their file.
    pub skipped_patterns: Vec<(String, PatternError)>,
}

/// Why the folder cannot be collected.
#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    /// A file or folder could not be read.
    #[error("cannot read {}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A name is not UTF-8, so it cannot be an S3 key.
    #[error("{} has a name that is not UTF-8", path.display())]
    NotUtf8 {
        /// The path.
        path: PathBuf,
    },
    /// A symbolic link leads outside the folder (or nowhere).
    #[error("{path} is a symbolic link to {target}, outside the DAG folder; refusing to ship it")]
    SymlinkOutside {
        /// The link, relative to the folder.
        path: String,
        /// Where it leads.
        target: String,
    },
    /// A symbolic link that cannot be followed: a loop, or a missing target.
    #[error(
        "{path} is a symbolic link that cannot be followed ({source}: a loop, or a missing target); fix or remove it"
    )]
    BrokenLink {
        /// The link, relative to the folder.
        path: String,
        /// Why it cannot be followed.
        #[source]
        source: std::io::Error,
    },
    /// A FIFO, socket or device: never opened (a FIFO would block the read forever).
    #[error(
        "{path} is a {kind}, not a regular file or folder; remove it from the DAG folder (or add it to `exclude`)"
    )]
    Special {
        /// The file, relative to the folder.
        path: String,
        /// What it is: `FIFO`, `socket`, `device`.
        kind: &'static str,
    },
    /// A folder is reached twice through symbolic links (Airflow refuses it too).
    #[error("{path} leads to a folder already walked (a symbolic link loop or alias)")]
    Loop {
        /// The folder, relative to the DAG folder.
        path: String,
    },
    /// An ignore file has a pattern Airflow cannot read.
    #[error("{file}: {source}")]
    Pattern {
        /// The ignore file, relative to the folder.
        file: String,
        /// The pattern.
        #[source]
        source: PatternError,
    },
    /// An `include` or `exclude` glob is invalid.
    #[error("`{key}`: {source}")]
    Filter {
        /// `include` or `exclude`.
        key: &'static str,
        /// The pattern.
        #[source]
        source: PatternError,
    },
}

/// Lists the files of `root` that ship.
pub fn collect(root: &Path, options: &CollectOptions) -> Result<Collection, CollectError> {
    let include = globs("include", &options.include)?;
    let exclude = globs("exclude", &options.exclude)?;
    let mut walk = Walk {
        root: root.canonicalize().map_err(|source| CollectError::Io {
            path: root.to_owned(),
            source,
        })?,
        syntax: options.syntax,
        seen: HashSet::new(),
        out: Collection::default(),
        special: Vec::new(),
    };
    let mut pending = vec![(root.to_owned(), String::new(), Vec::new())];
    while let Some((dir, rel, rules)) = pending.pop() {
        pending.extend(walk.folder(&dir, &rel, &rules)?);
    }
    let mut out = walk.out;
    let ships = |path: &str| {
        !is_cache(path)
            && !exclude.iter().any(|g| g.regex.is_match(path))
            && (include.is_empty() || include.iter().any(|g| g.regex.is_match(path)))
    };
    if let Some((path, kind)) = walk.special.into_iter().find(|(p, _)| ships(p)) {
        return Err(CollectError::Special { path, kind });
    }
    out.files.retain(|f| ships(&f.path));
    out.files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

/// Compiles `include`/`exclude` globs (gitignore rules, relative to the folder).
pub(crate) fn globs(key: &'static str, patterns: &[String]) -> Result<Vec<Glob>, CollectError> {
    let mut out = Vec::new();
    for pattern in patterns {
        match Glob::new(pattern) {
            Ok(Some(glob)) if glob.include => out.push(glob),
            Ok(_) => {
                return Err(CollectError::Filter {
                    key,
                    source: PatternError {
                        pattern: pattern.clone(),
                        reason: "matches nothing (blank, `/`, a comment or a negation)".into(),
                    },
                });
            }
            Err(source) => return Err(CollectError::Filter { key, source }),
        }
    }
    Ok(out)
}

/// Python caches never ship.
fn is_cache(path: &str) -> bool {
    path.ends_with(".pyc") || path.split('/').any(|part| part == "__pycache__")
}

struct Walk {
    root: PathBuf,
    syntax: IgnoreSyntax,
    /// Folders walked, resolved.
    seen: HashSet<PathBuf>,
    out: Collection,
    /// FIFOs, sockets and devices met (never opened), refused if they would ship.
    special: Vec<(String, &'static str)>,
}

type Pending = (PathBuf, String, Vec<Rule>);

impl Walk {
    /// Collects the files of one folder and returns its subfolders to walk.
    fn folder(
        &mut self,
        dir: &Path,
        rel: &str,
        inherited: &[Rule],
    ) -> Result<Vec<Pending>, CollectError> {
        let rules = self.rules(dir, rel, inherited)?;
        let mut subfolders = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(io(dir))? {
            let entry = entry.map_err(io(dir))?;
            if let Some(folder) = self.entry(&entry, rel, &rules)? {
                subfolders.push(folder);
            }
        }
        Ok(subfolders)
    }

    /// Takes one entry of a folder (its type read from metadata, nothing opened): a file
    /// is collected, a special file noted, a subfolder returned to walk.
    fn entry(
        &mut self,
        entry: &std::fs::DirEntry,
        rel: &str,
        rules: &[Rule],
    ) -> Result<Option<Pending>, CollectError> {
        let local = entry.path();
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            return Err(CollectError::NotUtf8 { path: local });
        };
        let path = join(rel, &name);
        let meta = std::fs::metadata(&local).ok();
        let is_dir = meta.as_ref().is_some_and(std::fs::Metadata::is_dir);
        if (is_dir && name == "__pycache__")
            || (name != IGNORE_FILE && ignore::ignored(rules, &path, is_dir))
        {
            return Ok(None);
        }
        if entry.file_type().map_err(io(&local))?.is_symlink() {
            self.check_link(&local, &path)?;
        }
        let meta = match meta {
            Some(meta) => meta,
            None => std::fs::metadata(&local).map_err(io(&local))?,
        };
        if is_dir {
            let resolved = local.canonicalize().map_err(io(&local))?;
            if !self.seen.insert(resolved) {
                return Err(CollectError::Loop { path });
            }
            return Ok(Some((local, path, rules.to_vec())));
        }
        if meta.is_file() {
            let size = meta.len();
            self.out.files.push(SourceFile { path, local, size });
        } else {
            self.special
                .push((path, crate::config::paths::special_kind(&meta.file_type())));
        }
        Ok(None)
    }

    /// The rules that apply in `dir`: the inherited ones and its ignore file's.
    fn rules(
        &mut self,
        dir: &Path,
        rel: &str,
        inherited: &[Rule],
    ) -> Result<Vec<Rule>, CollectError> {
        let file = dir.join(IGNORE_FILE);
        let name = join(rel, IGNORE_FILE);
        // Checked before it is read: a link out of the folder or a FIFO is never opened.
        if std::fs::symlink_metadata(&file).is_ok_and(|m| m.is_symlink()) {
            self.check_link(&file, &name)?;
        }
        if !std::fs::metadata(&file).is_ok_and(|m| m.is_file()) {
            return Ok(inherited.to_vec());
        }
        let text = std::fs::read_to_string(&file).map_err(|source| CollectError::Io {
            path: file.clone(),
            source,
        })?;
        let (new, skipped) =
            ignore::parse(&text, self.syntax, rel).map_err(|source| CollectError::Pattern {
                file: name.clone(),
                source,
            })?;
        self.out
            .skipped_patterns
            .extend(skipped.into_iter().map(|p| (name.clone(), p)));
        Ok(ignore::extend(inherited, new))
    }

    fn check_link(&self, local: &Path, path: &str) -> Result<(), CollectError> {
        let target = std::fs::read_link(local)
            .map(|t| t.display().to_string())
            .unwrap_or_default();
        match local.canonicalize() {
            Ok(resolved) if resolved.starts_with(&self.root) => Ok(()),
            Ok(_) => Err(CollectError::SymlinkOutside {
                path: path.to_owned(),
                target,
            }),
            Err(source) => Err(CollectError::BrokenLink {
                path: path.to_owned(),
                source,
            }),
        }
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CollectError {
    let path = path.to_owned();
    move |source| CollectError::Io { path, source }
}

fn join(rel: &str, name: &str) -> String {
    if rel.is_empty() {
        name.to_owned()
    } else {
        format!("{rel}/{name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cases() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/dags/ignore")
    }

    /// Our collection, seen as Airflow's function lists it: without the ignore files.
    fn as_airflow_lists(root: &Path, syntax: IgnoreSyntax) -> Result<Vec<String>, CollectError> {
        let options = CollectOptions {
            syntax,
            ..CollectOptions::default()
        };
        Ok(collect(root, &options)?
            .files
            .into_iter()
            .map(|f| f.path)
            .filter(|p| p.rsplit('/').next() != Some(IGNORE_FILE))
            .collect())
    }

    /// Every committed case, in both syntaxes, gives the list Airflow's own function gave
    /// (tests/data/dags/ignore/README.md), caches aside.
    #[test]
    fn collection_matches_airflow_on_every_committed_case() {
        let mut checked = 0;
        for entry in std::fs::read_dir(cases()).expect("the cases folder") {
            let tree = entry.expect("an entry").path();
            if !tree.is_dir() {
                continue;
            }
            for syntax in [IgnoreSyntax::Regexp, IgnoreSyntax::Glob] {
                let name = tree
                    .file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or_default();
                let expected_file = cases().join(format!("{name}.{}.txt", syntax.as_str()));
                let expected = std::fs::read_to_string(&expected_file).expect("expected list");
                let expected: Vec<&str> = expected.lines().filter(|p| !is_cache(p)).collect();
                let ours = as_airflow_lists(&tree, syntax).expect("collects");
                assert_eq!(ours, expected, "{name} with {}", syntax.as_str());
                checked += 1;
            }
        }
        assert_eq!(checked, 6);
    }

    #[test]
    fn ignore_files_ship_and_caches_do_not() {
        let root = cases().join("regexp-nested");
        let files: Vec<String> = collect(&root, &CollectOptions::default())
            .expect("collects")
            .files
            .into_iter()
            .map(|f| f.path)
            .collect();
        assert!(files.contains(&".airflowignore".to_owned()));
        assert!(files.contains(&"subdir/.airflowignore".to_owned()));
        assert!(
            !files
                .iter()
                .any(|f| f.contains("__pycache__") || f.ends_with(".pyc"))
        );
    }

    #[test]
    fn include_and_exclude_filter_what_airflow_would_read() {
        let root = cases().join("regexp-nested");
        let options = CollectOptions {
            include: vec!["*.py".into()],
            exclude: vec!["sibling/".into()],
            ..CollectOptions::default()
        };
        let files: Vec<String> = collect(&root, &options)
            .expect("collects")
            .files
            .into_iter()
            .map(|f| f.path)
            .collect();
        assert_eq!(
            files,
            [
                "dag_a.py",
                "not_ignored_dir/z.py",
                "subdir/deep/local_b.py",
                "subdir/keep.py",
                "subdir/rel_only.py"
            ]
        );
        let bad = CollectOptions {
            exclude: vec!["!x".into()],
            ..CollectOptions::default()
        };
        assert!(matches!(
            collect(&root, &bad),
            Err(CollectError::Filter { key: "exclude", .. })
        ));
    }

    #[test]
    fn symlinks_out_of_the_folder_are_refused_and_inside_ones_followed() {
        let dir = tempdir("links");
        let root = dir.join("dags");
        std::fs::create_dir_all(root.join("real")).expect("mkdir");
        std::fs::write(root.join("real/a.py"), "x = 1\n").expect("write");
        std::fs::write(dir.join("secret.txt"), "s").expect("write");
        std::os::unix::fs::symlink(root.join("real/a.py"), root.join("alias.py")).expect("link");
        let files = collect(&root, &CollectOptions::default()).expect("inside links follow");
        let paths: Vec<&str> = files.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["alias.py", "real/a.py"]);
        std::os::unix::fs::symlink(dir.join("secret.txt"), root.join("leak.txt")).expect("link");
        let err = collect(&root, &CollectOptions::default()).expect_err("outside refused");
        assert!(matches!(err, CollectError::SymlinkOutside { ref path, .. } if path == "leak.txt"));
        std::fs::remove_file(root.join("leak.txt")).expect("rm");
        std::os::unix::fs::symlink(&root, root.join("real/loop")).expect("link");
        let err = collect(&root, &CollectOptions::default()).expect_err("loop refused");
        assert!(matches!(err, CollectError::Loop { .. }), "{err}");
        std::fs::remove_dir_all(&dir).expect("clean up");
    }

    #[test]
    fn special_files_and_links_that_lead_nowhere_are_refused_unless_not_shipped() {
        let root = tempdir("special");
        std::fs::write(root.join("a.py"), "x = 1\n").expect("write");
        let status = std::process::Command::new("mkfifo")
            .arg(root.join("pipe.py"))
            .status()
            .expect("mkfifo");
        assert!(status.success());
        let (tx, rx) = std::sync::mpsc::channel();
        let folder = root.clone();
        std::thread::spawn(move || tx.send(collect(&folder, &CollectOptions::default())));
        let err = rx
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("collected without opening the FIFO")
            .expect_err("a FIFO is refused");
        assert!(
            matches!(err, CollectError::Special { ref path, kind: "FIFO" } if path == "pipe.py"),
            "{err}"
        );
        let options = CollectOptions {
            exclude: vec!["pipe.py".into()],
            ..CollectOptions::default()
        };
        assert_eq!(collect(&root, &options).expect("excluded").files.len(), 1);
        std::fs::write(root.join(IGNORE_FILE), "pipe\n").expect("write");
        assert_eq!(
            collect(&root, &CollectOptions::default())
                .expect("ignored")
                .files
                .len(),
            2
        );
        std::fs::remove_file(root.join(IGNORE_FILE)).expect("rm");
        std::os::unix::fs::symlink(root.join("pipe.py"), root.join(IGNORE_FILE)).expect("link");
        let err = collect(&root, &options).expect_err("an ignore file that is a FIFO");
        assert!(matches!(err, CollectError::Special { .. }), "{err}");
        std::fs::remove_file(root.join(IGNORE_FILE)).expect("rm");
        std::os::unix::fs::symlink("/etc/hostname", root.join(IGNORE_FILE)).expect("link");
        let err = collect(&root, &options).expect_err("an ignore file outside");
        assert!(matches!(err, CollectError::SymlinkOutside { .. }), "{err}");
        std::fs::remove_file(root.join(IGNORE_FILE)).expect("rm");
        std::os::unix::fs::symlink("b.py", root.join("c.py")).expect("link");
        std::os::unix::fs::symlink("c.py", root.join("b.py")).expect("link");
        let err = collect(&root, &options).expect_err("a link loop");
        assert!(matches!(err, CollectError::BrokenLink { .. }), "{err}");
        std::fs::remove_dir_all(&root).expect("clean up");
    }

    fn tempdir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "deploy-dags-{name}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        dir
    }
}

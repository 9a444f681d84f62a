//! What `deploy init` finds in a repository: Dockerfiles (images), a `dags/` folder (Airflow
//! DAGs), and Lambda handler directories. It reads names and the first lines of handler files
//! only, walks at most [`MAX_DEPTH`] folders down, and follows no symbolic link.

use std::path::{Path, PathBuf};

/// How deep the walk goes below the repository root.
pub const MAX_DEPTH: usize = 3;

/// Folders never looked into.
const SKIP: &[&str] = &[
    ".git",
    ".github",
    "node_modules",
    "target",
    "venv",
    ".venv",
    "__pycache__",
    "build",
    "dist",
];

/// An artifact found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// A Dockerfile: the image built from its folder.
    Image {
        /// Artifact name.
        name: String,
        /// The folder holding the Dockerfile, relative to the root (`.` for the root).
        context: String,
    },
    /// An Airflow DAG folder.
    Dags {
        /// The folder, relative to the root.
        folder: String,
    },
    /// A Lambda handler directory.
    Lambda {
        /// Artifact name.
        name: String,
        /// The folder, relative to the root.
        folder: String,
        /// `file.function`.
        handler: String,
    },
}

impl Found {
    /// The artifact's name in `deploy.toml`.
    pub fn name(&self) -> &str {
        match self {
            Found::Image { name, .. } | Found::Lambda { name, .. } => name,
            Found::Dags { .. } => "dags",
        }
    }
}

/// Everything found under `root`, images first, each name once, in path order.
pub fn detect(root: &Path, project: &str) -> Vec<Found> {
    let mut dirs = Vec::new();
    walk(root, 0, &mut dirs);
    dirs.sort();
    let mut found = Vec::new();
    for dir in &dirs {
        let rel = relative(root, dir);
        if dir.join("Dockerfile").is_file() {
            let base = if rel == "." { project } else { last(&rel) };
            found.push(Found::Image {
                name: name_of(base),
                context: rel.clone(),
            });
        }
        if last(&rel) == "dags" && (dir.join(".airflowignore").is_file() || has_python(dir)) {
            found.push(Found::Dags {
                folder: rel.clone(),
            });
        }
        if let Some(handler) = handler(dir) {
            found.push(Found::Lambda {
                name: name_of(last(&rel)),
                folder: rel.clone(),
                handler,
            });
        }
    }
    dedup(found)
}

fn walk(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) {
    out.push(dir.to_owned());
    if depth >= MAX_DEPTH {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        let name = entry.file_name().to_string_lossy().into_owned();
        if kind.is_dir() && !SKIP.contains(&name.as_str()) && !name.starts_with('.') {
            walk(&entry.path(), depth + 1, out);
        }
    }
}

/// The handler of a Lambda directory: one under `lambdas/`, `functions/` or `lambda/` with a
/// known entry file, or any folder with `lambda_function.py` (the console's default).
fn handler(dir: &Path) -> Option<String> {
    let parent = dir.parent().and_then(Path::file_name)?.to_string_lossy();
    let in_lambdas = ["lambdas", "functions", "lambda"].contains(&parent.as_ref());
    let candidates: &[(&str, &str)] = &[
        ("lambda_function.py", "lambda_function.lambda_handler"),
        ("handler.py", "handler.handler"),
        ("main.py", "main.handler"),
        ("index.mjs", "index.handler"),
        ("index.js", "index.handler"),
    ];
    candidates
        .iter()
        .filter(|(file, _)| in_lambdas || *file == "lambda_function.py")
        .find(|(file, _)| dir.join(file).is_file())
        .map(|(_, handler)| (*handler).to_owned())
}

fn has_python(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|entries| {
        entries
            .flatten()
            .any(|e| e.path().extension().is_some_and(|x| x == "py"))
    })
}

fn relative(root: &Path, dir: &Path) -> String {
    let rel = dir.strip_prefix(root).unwrap_or(dir);
    let text = rel.to_string_lossy().replace('\\', "/");
    if text.is_empty() { ".".into() } else { text }
}

fn last(rel: &str) -> &str {
    rel.rsplit('/').next().unwrap_or(rel)
}

/// `name` as an artifact name: lowercase letters, digits and `-`, starting with a letter.
pub fn name_of(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        match c {
            'a'..='z' | '0'..='9' => out.push(c),
            'A'..='Z' => out.push(c.to_ascii_lowercase()),
            _ if !out.ends_with('-') && !out.is_empty() => out.push('-'),
            _ => {}
        }
    }
    let out = out.trim_end_matches('-').to_owned();
    match out.chars().next() {
        Some(c) if c.is_ascii_lowercase() => out.chars().take(40).collect(),
        _ => format!("a-{out}").chars().take(40).collect(),
    }
}

/// Each name once: a second artifact of the same name gets its kind as a suffix.
fn dedup(found: Vec<Found>) -> Vec<Found> {
    let mut seen = std::collections::HashSet::new();
    found
        .into_iter()
        .map(|f| {
            if seen.insert(f.name().to_owned()) {
                return f;
            }
            let renamed = |name: &str, suffix: &str| format!("{name}-{suffix}");
            let f = match f {
                Found::Image { name, context } => Found::Image {
                    name: renamed(&name, "image"),
                    context,
                },
                Found::Lambda {
                    name,
                    folder,
                    handler,
                } => Found::Lambda {
                    name: renamed(&name, "fn"),
                    folder,
                    handler,
                },
                other => other,
            };
            seen.insert(f.name().to_owned());
            f
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_artifact_names() {
        assert_eq!(name_of("My_Service"), "my-service");
        assert_eq!(name_of("2fa"), "a-2fa");
        assert_eq!(name_of("--api--"), "api");
    }
}

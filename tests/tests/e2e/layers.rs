//! The shape of deploy-core's tree: no import circle between its top-level modules (read from
//! the `crate::<module>` paths of each file, test modules and comments left out), and no source
//! file of the workspace over 800 lines.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use deploy_tests::workspace_root;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The file's code before its first test module, without comment lines.
fn code(text: &str) -> String {
    let mut lines = Vec::new();
    let mut previous = "";
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with("mod ")
            && previous.starts_with("#[cfg(")
            && previous.contains("test")
        {
            break;
        }
        if !trimmed.starts_with("//") {
            lines.push(line);
        }
        previous = trimmed;
    }
    lines.join("\n")
}

/// Each top-level module of deploy-core and the top-level modules its files name.
fn imports() -> BTreeMap<String, BTreeSet<String>> {
    let src = workspace_root().join("deploy-core/src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let top = |path: &Path| -> String {
        let rel = path.strip_prefix(&src).expect("under src");
        let first = rel.components().next().expect("a component");
        let name = first.as_os_str().to_string_lossy();
        name.trim_end_matches(".rs").to_owned()
    };
    let modules: BTreeSet<String> = files
        .iter()
        .map(|f| top(f))
        .filter(|m| m != "lib")
        .collect();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in &files {
        let from = top(file);
        if from == "lib" {
            continue;
        }
        let text = std::fs::read_to_string(file).expect("read source");
        let code = code(&text);
        let targets = edges.entry(from.clone()).or_default();
        for (i, _) in code.match_indices("crate::") {
            let name: String = code[i + 7..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect();
            if name != from && modules.contains(&name) {
                targets.insert(name);
            }
        }
    }
    edges
}

/// The modules reachable from `start`.
fn reachable(edges: &BTreeMap<String, BTreeSet<String>>, start: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut todo = vec![start.to_owned()];
    while let Some(module) = todo.pop() {
        for next in edges.get(&module).into_iter().flatten() {
            if seen.insert(next.clone()) {
                todo.push(next.clone());
            }
        }
    }
    seen
}

#[test]
fn no_import_circle_between_top_level_modules() {
    let edges = imports();
    assert!(edges.len() >= 10, "modules read: {:?}", edges.keys());
    let circles: Vec<String> = edges
        .iter()
        .flat_map(|(from, targets)| {
            let edges = &edges;
            targets
                .iter()
                .filter(move |to| reachable(edges, to).contains(from))
                .map(move |to| format!("{from} -> {to} -> ... -> {from}"))
        })
        .collect();
    assert!(circles.is_empty(), "import circles: {circles:#?}");
}

#[test]
fn the_check_sees_a_circle() {
    let mut edges = imports();
    edges
        .entry("error".into())
        .or_default()
        .insert("ops".into());
    assert!(
        reachable(&edges, "ops").contains("ops"),
        "ops reaches error"
    );
}

#[test]
fn no_source_file_over_800_lines() {
    let root = workspace_root();
    let mut files = Vec::new();
    for dir in [
        "deploy-core/src",
        "deploy-cli/src",
        "tests/src",
        "tests/tests",
    ] {
        rust_files(&root.join(dir), &mut files);
    }
    assert!(files.len() > 50, "{} files", files.len());
    let long: Vec<String> = files
        .iter()
        .filter_map(|f| {
            let lines = std::fs::read_to_string(f).expect("read").lines().count();
            (lines > 800).then(|| format!("{}: {lines}", f.display()))
        })
        .collect();
    assert!(long.is_empty(), "files over 800 lines: {long:#?}");
}

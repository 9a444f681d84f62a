//! Checks of a DAG folder before anything is uploaded: every `.py` file parses as Python (with
//! a Rust parser, so the runner needs no Python), no two files define the same `dag_id` where
//! it is written as a string literal, and sizes stay within bounds.

use std::collections::BTreeMap;

use ruff_python_ast::visitor::{self, Visitor};
use ruff_python_ast::{Expr, ExprCall};

use super::collect::SourceFile;

mod encoding;

/// The largest file that ships (each is read whole to hash and upload).
pub const MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;
/// The most files one folder ships.
pub const MAX_FILES: usize = 100_000;

/// One problem found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// `file:line:column` or `file`.
    pub at: String,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.at, self.message)
    }
}

/// The DAG folder is not fit to ship: every problem found, nothing uploaded.
#[derive(Debug, thiserror::Error)]
#[error("the DAG folder {folder} has {} problem(s), nothing was uploaded:\n{}", problems.len(), render(problems))]
pub struct InvalidDags {
    /// The folder.
    pub folder: String,
    /// The problems, by file.
    pub problems: Vec<Problem>,
}

impl crate::error::Classify for InvalidDags {
    fn class(&self) -> crate::error::ErrorClass {
        crate::error::ErrorClass::Usage
    }
}

fn render(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| format!("  {p}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Checks `files` with their bytes; `folder` names them in messages.
#[cfg(test)]
pub fn check<'f>(
    folder: &str,
    files: impl IntoIterator<Item = (&'f SourceFile, &'f [u8])>,
) -> Result<(), InvalidDags> {
    conclude(
        folder,
        files
            .into_iter()
            .map(|(file, bytes)| (file, check_file(folder, file, bytes))),
    )
}

/// One file's own checks (size, Python syntax): the `dag_id` literals it defines, or what is
/// wrong with it. Files may be checked in any order and on any thread; [`conclude`] adds the
/// checks across files.
pub fn check_file(folder: &str, file: &SourceFile, bytes: &[u8]) -> Result<Vec<String>, Problem> {
    let at = format!("{folder}/{}", file.path);
    if file.size > MAX_FILE_BYTES {
        return Err(Problem {
            at,
            message: format!("{} bytes, over the limit of {MAX_FILE_BYTES}", file.size),
        });
    }
    if !file.path.ends_with(".py") {
        return Ok(Vec::new());
    }
    python(bytes).map_err(|(line, column, message)| Problem {
        at: format!("{at}:{line}:{column}"),
        message,
    })
}

/// The folder's verdict from each file's [`check_file`], in folder order: every problem, the
/// file count and the `dag_id`s defined twice.
pub fn conclude<'f>(
    folder: &str,
    checked: impl IntoIterator<Item = (&'f SourceFile, Result<Vec<String>, Problem>)>,
) -> Result<(), InvalidDags> {
    let mut problems = Vec::new();
    let mut dag_ids: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut count = 0;
    for (file, result) in checked {
        count += 1;
        match result {
            Ok(ids) => {
                for id in ids {
                    dag_ids.entry(id).or_default().push(file.path.clone());
                }
            }
            Err(problem) => problems.push(problem),
        }
    }
    if count > MAX_FILES {
        problems.push(Problem {
            at: folder.to_owned(),
            message: format!("{count} files, over the limit of {MAX_FILES}"),
        });
    }
    for (id, paths) in dag_ids.into_iter().filter(|(_, p)| p.len() > 1) {
        problems.push(Problem {
            at: format!("{folder}/{}", paths[0]),
            message: format!("dag_id `{id}` is also defined in {}", paths[1..].join(", ")),
        });
    }
    if problems.is_empty() {
        return Ok(());
    }
    Err(InvalidDags {
        folder: folder.to_owned(),
        problems,
    })
}

/// The `dag_id` literals of a Python file, or where and why it does not parse.
fn python(bytes: &[u8]) -> Result<Vec<String>, (usize, usize, String)> {
    let source = encoding::decode(bytes)?;
    let parsed = ruff_python_parser::parse_module(&source).map_err(|error| {
        let (line, column) = position(&source, error.location.start().to_usize());
        (line, column, error.error.to_string())
    })?;
    let mut finder = DagIds::default();
    finder.visit_body(&parsed.syntax().body);
    Ok(finder.ids)
}

/// 1-based line and column (in characters) of byte `offset`.
pub(super) fn position(source: &str, offset: usize) -> (usize, usize) {
    let before = source.get(..offset).unwrap_or(source);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    (line, column)
}

/// `DAG("id", ...)`, `DAG(dag_id="id")`, `@dag(dag_id="id")` with a literal id.
#[derive(Default)]
struct DagIds {
    ids: Vec<String>,
}

impl<'a> Visitor<'a> for DagIds {
    fn visit_expr(&mut self, expr: &'a Expr) {
        if let Expr::Call(call) = expr
            && let Some(id) = dag_id(call)
        {
            self.ids.push(id);
        }
        visitor::walk_expr(self, expr);
    }
}

fn dag_id(call: &ExprCall) -> Option<String> {
    let name = match call.func.as_ref() {
        Expr::Name(name) => name.id.as_str(),
        Expr::Attribute(attribute) => attribute.attr.as_str(),
        _ => return None,
    };
    if name != "DAG" && name != "dag" {
        return None;
    }
    let keyword = call
        .arguments
        .keywords
        .iter()
        .find(|k| k.arg.as_ref().is_some_and(|a| a.as_str() == "dag_id"))
        .map(|k| &k.value);
    let positional = (name == "DAG")
        .then(|| call.arguments.args.first())
        .flatten();
    match keyword.or(positional)? {
        Expr::StringLiteral(literal) => Some(literal.value.to_str().to_owned()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, text: &str) -> (SourceFile, Vec<u8>) {
        (
            SourceFile {
                path: path.into(),
                local: path.into(),
                size: text.len() as u64,
            },
            text.as_bytes().to_vec(),
        )
    }

    fn run(files: &[(SourceFile, Vec<u8>)]) -> Result<(), InvalidDags> {
        check("dags", files.iter().map(|(f, b)| (f, b.as_slice())))
    }

    #[test]
    fn a_syntax_error_names_file_line_and_column() {
        let files = [
            file("ok.py", "x = 1\n"),
            file("sub/bad.py", "import os\n\ndef f(:\n    pass\n"),
            file("notes.txt", "def (\n"),
        ];
        let err = run(&files).expect_err("bad.py does not parse");
        assert_eq!(err.problems.len(), 1, "{err}");
        assert!(
            err.problems[0].at.starts_with("dags/sub/bad.py:3:"),
            "{err}"
        );
        assert!(err.to_string().contains("dags/sub/bad.py:3:"), "{err}");
    }

    #[test]
    fn modern_syntax_parses() {
        let files = [file(
            "new.py",
            "type Point = tuple[float, float]\nmatch x:\n    case 1: pass\nf\"{d[\"k\"]}\"\n",
        )];
        run(&files).expect("3.12 syntax parses");
    }

    #[test]
    fn duplicate_literal_dag_ids_are_flagged() {
        let files = [
            file(
                "a.py",
                "from airflow import DAG\nwith DAG(\"etl\") as d:\n    pass\n",
            ),
            file("b.py", "import airflow\nd = airflow.DAG(dag_id=\"etl\")\n"),
            file(
                "c.py",
                "from airflow.decorators import dag\n@dag(dag_id=\"other\")\ndef f(): pass\n",
            ),
            file("d.py", "DAG(name)\n"),
        ];
        let err = run(&files).expect_err("etl twice");
        assert_eq!(err.problems.len(), 1, "{err}");
        assert_eq!(
            err.problems[0].message,
            "dag_id `etl` is also defined in b.py"
        );
    }

    #[test]
    fn a_latin1_file_with_its_coding_cookie_parses() {
        let text = b"# -*- coding: latin-1 -*-\nfrom airflow import DAG\nDAG('caf\xe9')\n";
        let files = [(
            SourceFile {
                path: "latin.py".into(),
                local: "latin.py".into(),
                size: text.len() as u64,
            },
            text.to_vec(),
        )];
        run(&files).expect("Python reads it, so do we");
        let (mut plain, _) = file("plain.py", "");
        plain.size = 8;
        let err = run(&[(plain, b"x = '\xe9'\n".to_vec())]).expect_err("no cookie: UTF-8");
        assert!(err.problems[0].at.ends_with("plain.py:1:6"), "{err}");
    }

    #[test]
    fn oversized_files_are_refused() {
        let (mut big, bytes) = file("big.bin", "");
        big.size = MAX_FILE_BYTES + 1;
        assert!(run(&[(big, bytes)]).is_err());
    }
}

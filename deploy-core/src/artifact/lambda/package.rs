//! The zip Lambda receives: built from a directory so that the same files give the same bytes
//! on every run and machine (sorted entries, fixed timestamps, permissions reduced to "executable
//! or not", no OS or cache junk), or a given `.zip` taken as it is. What Lambda would refuse
//! (too large unzipped, empty, a handler file that is missing) is refused here, before any AWS
//! call.

use std::io::{Cursor, Read, Write};
use std::path::{Path, PathBuf};

use globset::{Glob, GlobSet, GlobSetBuilder};
use sha2::{Digest, Sha256};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, DateTime, ZipArchive, ZipWriter};

use crate::error::{Classify, ErrorClass};

/// Lambda's limit on the unzipped size of a function's code: 250 MiB.
pub const MAX_UNZIPPED: u64 = 250 * 1024 * 1024;

/// Names never zipped: operating-system and editor junk, version control, Python caches.
const JUNK: &[&str] = &[
    ".DS_Store",
    "Thumbs.db",
    "desktop.ini",
    ".git",
    "__pycache__",
];

/// Extensions never zipped (compiled Python caches).
const JUNK_EXT: &[&str] = &["pyc", "pyo"];

/// Where a handler's module may live, by runtime: `main.handler` → `main.py`, `main.js`, ...
const HANDLER_EXT: &[&str] = &["py", "js", "mjs", "cjs", "rb", "ts"];

/// A zip ready to upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Package {
    /// The zip's bytes.
    pub bytes: Vec<u8>,
    /// Base64 SHA-256 of `bytes`, as Lambda reports `CodeSha256`.
    pub code_sha256: String,
    /// Hex SHA-256 of `bytes`, the artifact bucket's key.
    pub sha256_hex: String,
    /// Files in the zip.
    pub files: usize,
    /// Sum of the files' unzipped sizes.
    pub unzipped: u64,
}

/// What is zipped and checked: the source and the artifact's packaging options.
#[derive(Debug, Clone, Copy)]
pub struct Packaging<'a> {
    /// A directory, or a `.zip` file.
    pub source: &'a Path,
    /// Globs (relative to the directory, `/`-separated) never zipped.
    pub exclude: &'a [String],
    /// The function's handler (`main.handler`), whose file must be in the zip.
    pub handler: Option<&'a str>,
}

/// Why a Lambda zip cannot be made or would be refused.
#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    /// A file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The zip could not be written or the given one read.
    #[error("{} is not a usable zip: {source}", path.display())]
    Zip {
        /// The source.
        path: PathBuf,
        /// The zip error.
        #[source]
        source: zip::result::ZipError,
    },
    /// An `exclude` glob does not parse.
    #[error("`exclude` pattern `{pattern}` is not a glob: {source}")]
    Glob {
        /// The pattern.
        pattern: String,
        /// The parse error.
        #[source]
        source: globset::Error,
    },
    /// Nothing to ship.
    #[error("{} holds no file to zip (after `exclude` and the junk that is never shipped)", path.display())]
    Empty {
        /// The source.
        path: PathBuf,
    },
    /// Over Lambda's unzipped limit.
    #[error("{} is {unzipped} bytes unzipped; Lambda takes at most {MAX_UNZIPPED} (250 MiB)", path.display())]
    TooLarge {
        /// The source.
        path: PathBuf,
        /// Its unzipped size.
        unzipped: u64,
    },
    /// The handler's file is not in the zip.
    #[error("handler `{handler}` needs one of {expected} in {}, and there is none", path.display())]
    MissingHandler {
        /// The configured handler.
        handler: String,
        /// The files that would do.
        expected: String,
        /// The source.
        path: PathBuf,
    },
    /// A directory symlink (not followed, so a loop cannot hang the build).
    #[error("{} is a symbolic link to a directory; link the files, or copy the directory", path.display())]
    DirectoryLink {
        /// The link.
        path: PathBuf,
    },
}

impl Classify for PackageError {
    fn class(&self) -> ErrorClass {
        match self {
            PackageError::Read { .. } => ErrorClass::Failure,
            _ => ErrorClass::Usage,
        }
    }
}

/// One file of a directory source: its name in the zip, its path, size and mode.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    name: String,
    path: PathBuf,
    size: u64,
    executable: bool,
}

/// Checks `packaging` without building the zip (what `validate` and preflight run): the files
/// exist, fit, and hold the handler. Returns the file count and the unzipped size.
pub fn inspect(packaging: &Packaging<'_>) -> Result<(usize, u64), PackageError> {
    if is_zip(packaging.source) {
        let bytes = read(packaging.source)?;
        let (names, unzipped) = zip_names(packaging, &bytes)?;
        return Ok((names.len(), unzipped));
    }
    let entries = walk(packaging)?;
    Ok((entries.len(), entries.iter().map(|e| e.size).sum()))
}

/// Builds (or reads) the zip of `packaging`, refusing what Lambda would refuse.
pub fn package(packaging: &Packaging<'_>) -> Result<Package, PackageError> {
    let path = packaging.source;
    let (bytes, files, unzipped) = if is_zip(path) {
        let bytes = read(path)?;
        let (names, unzipped) = zip_names(packaging, &bytes)?;
        (bytes, names.len(), unzipped)
    } else {
        let entries = walk(packaging)?;
        let unzipped = entries.iter().map(|e| e.size).sum();
        (write_zip(path, &entries)?, entries.len(), unzipped)
    };
    Ok(finish(bytes, files, unzipped))
}

/// A zip held in memory (a promotion's copy from the artifact bucket), checked as a `.zip`
/// source would be; `packaging.source` only names it in errors.
pub fn from_zip(packaging: &Packaging<'_>, bytes: Vec<u8>) -> Result<Package, PackageError> {
    let (names, unzipped) = zip_names(packaging, &bytes)?;
    Ok(finish(bytes, names.len(), unzipped))
}

fn finish(bytes: Vec<u8>, files: usize, unzipped: u64) -> Package {
    let digest = Sha256::digest(&bytes);
    Package {
        code_sha256: aws_smithy_types::base64::encode(digest),
        sha256_hex: crate::hash::sha256_hex(&bytes),
        bytes,
        files,
        unzipped,
    }
}

fn is_zip(path: &Path) -> bool {
    path.is_file()
        && path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("zip"))
}

fn read(path: &Path) -> Result<Vec<u8>, PackageError> {
    std::fs::read(path).map_err(|source| PackageError::Read {
        path: path.to_owned(),
        source,
    })
}

/// The file names of a given zip and their unzipped size, checked like a directory's.
fn zip_names(packaging: &Packaging<'_>, bytes: &[u8]) -> Result<(Vec<String>, u64), PackageError> {
    let path = packaging.source;
    let zip_err = |source| PackageError::Zip {
        path: path.to_owned(),
        source,
    };
    let mut archive = ZipArchive::new(Cursor::new(bytes)).map_err(zip_err)?;
    let mut names = Vec::new();
    let mut unzipped = 0_u64;
    for index in 0..archive.len() {
        let file = archive.by_index_raw(index).map_err(zip_err)?;
        unzipped = unzipped.saturating_add(file.size());
        if file.is_file() {
            names.push(file.name().map_err(zip_err)?.into_owned());
        }
    }
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    check(packaging, &refs, unzipped)?;
    Ok((names, unzipped))
}

/// Every file of the directory to zip, sorted by name, checked.
fn walk(packaging: &Packaging<'_>) -> Result<Vec<Entry>, PackageError> {
    let root = packaging.source;
    let exclude = globs(packaging.exclude)?;
    let mut entries = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for item in read_dir(&dir)? {
            let path = item.path();
            let name = relative(root, &path);
            let file_name = item.file_name().to_string_lossy().into_owned();
            let junk = JUNK.contains(&file_name.as_str())
                || path
                    .extension()
                    .is_some_and(|e| JUNK_EXT.iter().any(|j| e == *j));
            if junk || exclude.is_match(&name) {
                continue;
            }
            let link = item.file_type().is_ok_and(|t| t.is_symlink());
            let meta = std::fs::metadata(&path).map_err(|source| PackageError::Read {
                path: path.clone(),
                source,
            })?;
            if meta.is_dir() && link {
                return Err(PackageError::DirectoryLink { path });
            }
            if meta.is_dir() {
                dirs.push(path);
            } else if meta.is_file() {
                entries.push(Entry {
                    name,
                    path,
                    size: meta.len(),
                    executable: executable(&meta),
                });
            }
        }
    }
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
    check(packaging, &names, entries.iter().map(|e| e.size).sum())?;
    Ok(entries)
}

fn read_dir(dir: &Path) -> Result<Vec<std::fs::DirEntry>, PackageError> {
    let read_err = |source| PackageError::Read {
        path: dir.to_owned(),
        source,
    };
    std::fs::read_dir(dir)
        .map_err(read_err)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(read_err)
}

/// Lambda's refusals, made before the zip is built.
fn check(packaging: &Packaging<'_>, names: &[&str], unzipped: u64) -> Result<(), PackageError> {
    let path = packaging.source.to_owned();
    if names.is_empty() {
        return Err(PackageError::Empty { path });
    }
    if unzipped > MAX_UNZIPPED {
        return Err(PackageError::TooLarge { path, unzipped });
    }
    check_handler(packaging.handler, names, &path)
}

/// The handler `dir/main.handler` needs `dir/main.<ext>` (Python, Node.js, Ruby) or a package
/// `dir/main/__init__.py`. Handlers of compiled runtimes (`Class::method`, a bare `bootstrap`
/// name) name no file and are not checked.
fn check_handler(handler: Option<&str>, names: &[&str], path: &Path) -> Result<(), PackageError> {
    let Some(handler) = handler else {
        return Ok(());
    };
    let Some((module, _function)) = handler.rsplit_once('.') else {
        return Ok(());
    };
    if handler.contains("::") || module.is_empty() {
        return Ok(());
    }
    let module = module.replace('.', "/");
    let mut expected: Vec<String> = HANDLER_EXT
        .iter()
        .map(|ext| format!("{module}.{ext}"))
        .collect();
    expected.push(format!("{module}/__init__.py"));
    if expected.iter().any(|e| names.contains(&e.as_str())) {
        return Ok(());
    }
    Err(PackageError::MissingHandler {
        handler: handler.to_owned(),
        expected: expected.join(", "),
        path: path.to_owned(),
    })
}

/// `exclude` compiled; a pattern that does not parse is an error.
pub fn globs(patterns: &[String]) -> Result<GlobSet, PackageError> {
    let mut set = GlobSetBuilder::new();
    for pattern in patterns {
        let glob = Glob::new(pattern).map_err(|source| PackageError::Glob {
            pattern: pattern.clone(),
            source,
        })?;
        set.add(glob);
    }
    set.build().map_err(|source| PackageError::Glob {
        pattern: patterns.join(", "),
        source,
    })
}

/// `path` relative to `root`, `/`-separated.
fn relative(root: &Path, path: &Path) -> String {
    let rel = path.strip_prefix(root).unwrap_or(path);
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(unix)]
fn executable(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o111 != 0
}

#[cfg(not(unix))]
fn executable(_meta: &std::fs::Metadata) -> bool {
    false
}

/// The zip of `entries`: deflated, dated 1980-01-01 00:00, mode 0755 or 0644, Unix attributes.
fn write_zip(root: &Path, entries: &[Entry]) -> Result<Vec<u8>, PackageError> {
    let zip_err = |source| PackageError::Zip {
        path: root.to_owned(),
        source,
    };
    let mut zip = ZipWriter::new(Cursor::new(Vec::new()));
    let base = SimpleFileOptions::default()
        .compression_method(CompressionMethod::Deflated)
        .compression_level(Some(6))
        .last_modified_time(DateTime::default());
    for entry in entries {
        let mode = if entry.executable { 0o755 } else { 0o644 };
        zip.start_file(entry.name.as_str(), base.unix_permissions(mode))
            .map_err(zip_err)?;
        let mut file = std::fs::File::open(&entry.path).map_err(|source| PackageError::Read {
            path: entry.path.clone(),
            source,
        })?;
        copy(&mut file, &mut zip, &entry.path)?;
    }
    Ok(zip.finish().map_err(zip_err)?.into_inner())
}

fn copy(from: &mut impl Read, to: &mut impl Write, path: &Path) -> Result<(), PackageError> {
    std::io::copy(from, to)
        .map(drop)
        .map_err(|source| PackageError::Read {
            path: path.to_owned(),
            source,
        })
}

#[cfg(test)]
mod tests;

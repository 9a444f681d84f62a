//! The zip Lambda receives: built from a directory so that the same files give the same bytes
//! on every run and machine (sorted entries, fixed timestamps, permissions reduced to "executable
//! or not", no OS or cache junk), or a given `.zip` taken as it is. What Lambda would refuse
//! (too large unzipped, empty, a handler file that is missing) is refused here, before any AWS
//! call.

use std::path::{Path, PathBuf};

use globset::{Glob, GlobSet, GlobSetBuilder};
use sha2::{Digest, Sha256};

use crate::error::{Classify, ErrorClass};

/// Lambda's limit on the unzipped size of a function's code: 250 MiB.
pub const MAX_UNZIPPED: u64 = 250 * 1024 * 1024;

mod archive;
mod walk;

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
    /// The source named in the configuration is not there.
    #[error("Lambda source {} does not exist; set `source` to the function's directory or .zip", path.display())]
    Missing {
        /// The source.
        path: PathBuf,
    },
    /// The source is a regular file but not a zip.
    #[error("Lambda source {} is a file but not a .zip; set `source` to the function's directory or a .zip", path.display())]
    NotAZip {
        /// The source.
        path: PathBuf,
    },
    /// A FIFO, socket or device: never opened (a FIFO would block the read forever).
    #[error("{} is a {kind}, not a regular file or directory; remove it from the Lambda source (or add it to `exclude`)", path.display())]
    Special {
        /// The file.
        path: PathBuf,
        /// What it is: `FIFO`, `socket`, `device`.
        kind: &'static str,
    },
    /// A symbolic link that leads out of the source folder (it would ship what it points at).
    #[error("{} is a symbolic link to {target}, outside the Lambda source {}; copy the file into the folder, or remove the link", path.display(), root.display())]
    LinkOutside {
        /// The link.
        path: PathBuf,
        /// Where it leads.
        target: String,
        /// The source folder.
        root: PathBuf,
    },
    /// A symbolic link that cannot be followed: a loop, or a missing target.
    #[error("{} is a symbolic link that cannot be followed ({source}: a loop, or a missing target); fix or remove it", path.display())]
    BrokenLink {
        /// The link.
        path: PathBuf,
        /// Why it cannot be followed.
        #[source]
        source: std::io::Error,
    },
    /// A file name that is not UTF-8 (a zip entry name would have to be rewritten).
    #[error("{} has a name that is not UTF-8; rename it (zip entry names are kept exactly, never rewritten)", path.display())]
    NotUtf8 {
        /// The file.
        path: PathBuf,
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
    /// An entry of a given zip Lambda would not unpack as named.
    #[error("{} holds an entry {name} that {reason}; rebuild the zip without it", path.display())]
    BadEntry {
        /// The zip.
        path: PathBuf,
        /// The entry's name, quoted and escaped.
        name: String,
        /// What is wrong with it.
        reason: String,
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
        /// Its unzipped size (for a given zip: as far as it was inflated, past the limit).
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

/// What a source path is, from its metadata (never opened to find out).
enum SourceKind {
    Directory,
    Zip,
}

/// Checks `packaging` without building the zip (what `validate` and preflight run): the files
/// exist, fit, and hold the handler. Returns the file count and the unzipped size.
pub fn inspect(packaging: &Packaging<'_>) -> Result<(usize, u64), PackageError> {
    match source_kind(packaging.source)? {
        SourceKind::Zip => {
            let bytes = read(packaging.source)?;
            archive::check(packaging, &bytes)
        }
        SourceKind::Directory => {
            let entries = walk::walk(packaging)?;
            Ok((entries.len(), entries.iter().map(|e| e.size).sum()))
        }
    }
}

/// Builds (or reads) the zip of `packaging`, refusing what Lambda would refuse.
pub fn package(packaging: &Packaging<'_>) -> Result<Package, PackageError> {
    let path = packaging.source;
    let (bytes, files, unzipped) = match source_kind(path)? {
        SourceKind::Zip => {
            let bytes = read(path)?;
            let (files, unzipped) = archive::check(packaging, &bytes)?;
            (bytes, files, unzipped)
        }
        SourceKind::Directory => {
            let entries = walk::walk(packaging)?;
            let unzipped = entries.iter().map(|e| e.size).sum();
            (walk::write_zip(path, &entries)?, entries.len(), unzipped)
        }
    };
    Ok(finish(bytes, files, unzipped))
}

/// A zip held in memory (a promotion's copy from the artifact bucket), checked as a `.zip`
/// source would be; `packaging.source` only names it in errors.
pub fn from_zip(packaging: &Packaging<'_>, bytes: Vec<u8>) -> Result<Package, PackageError> {
    let (files, unzipped) = archive::check(packaging, &bytes)?;
    Ok(finish(bytes, files, unzipped))
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

/// A directory, or a regular `.zip` file; anything else is refused without being opened.
fn source_kind(path: &Path) -> Result<SourceKind, PackageError> {
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(source) if std::fs::symlink_metadata(path).is_ok_and(|m| m.is_symlink()) => {
            return Err(PackageError::BrokenLink {
                path: path.to_owned(),
                source,
            });
        }
        Err(err)
            if matches!(
                err.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
            ) =>
        {
            return Err(PackageError::Missing {
                path: path.to_owned(),
            });
        }
        Err(source) => {
            return Err(PackageError::Read {
                path: path.to_owned(),
                source,
            });
        }
    };
    let zip_name = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("zip"));
    if meta.is_dir() {
        return Ok(SourceKind::Directory);
    }
    if meta.is_file() && zip_name {
        return Ok(SourceKind::Zip);
    }
    if meta.is_file() {
        return Err(PackageError::NotAZip {
            path: path.to_owned(),
        });
    }
    Err(PackageError::Special {
        path: path.to_owned(),
        kind: crate::config::paths::special_kind(&meta.file_type()),
    })
}

/// Reads a regular file (checked to be one before: a FIFO is never opened).
fn read(path: &Path) -> Result<Vec<u8>, PackageError> {
    std::fs::read(path).map_err(|source| PackageError::Read {
        path: path.to_owned(),
        source,
    })
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

#[cfg(test)]
mod tests;

//! A directory source: the files to zip, found from metadata alone (nothing is opened before
//! it is known to be a regular file inside the folder), and their deterministic zip.

use std::io::{Cursor, Read, Write};
use std::path::{Path, PathBuf};

use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, DateTime, ZipWriter};

use super::{JUNK, JUNK_EXT, PackageError, Packaging, check, globs};

/// One file of a directory source: its name in the zip, what is read, its size and mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Entry {
    pub(super) name: String,
    /// The file itself, or for a symbolic link the file it leads to.
    pub(super) path: PathBuf,
    pub(super) size: u64,
    executable: bool,
}

/// What an entry of the folder is.
enum Found {
    Directory(PathBuf),
    File(PathBuf, std::fs::Metadata),
}

/// Every file of the directory to zip, sorted by name, checked.
pub(super) fn walk(packaging: &Packaging<'_>) -> Result<Vec<Entry>, PackageError> {
    let root = packaging.source;
    let real_root = root.canonicalize().map_err(read_err(root))?;
    let exclude = globs(packaging.exclude)?;
    let mut entries = Vec::new();
    let mut dirs = vec![(root.to_path_buf(), String::new())];
    while let Some((dir, rel)) = dirs.pop() {
        for item in read_dir(&dir)? {
            let Some(file_name) = item.file_name().to_str().map(str::to_owned) else {
                return Err(PackageError::NotUtf8 { path: item.path() });
            };
            let name = if rel.is_empty() {
                file_name.clone()
            } else {
                format!("{rel}/{file_name}")
            };
            if is_junk(&file_name) || exclude.is_match(&name) {
                continue;
            }
            match found(&real_root, &item)? {
                Found::Directory(path) => dirs.push((path, name)),
                Found::File(path, meta) => entries.push(Entry {
                    name,
                    path,
                    size: meta.len(),
                    executable: executable(&meta),
                }),
            }
        }
    }
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
    check(packaging, &names, entries.iter().map(|e| e.size).sum())?;
    Ok(entries)
}

fn is_junk(file_name: &str) -> bool {
    JUNK.contains(&file_name)
        || Path::new(file_name)
            .extension()
            .is_some_and(|e| JUNK_EXT.iter().any(|j| e == *j))
}

/// What `item` is, from metadata: a symbolic link is resolved (it must lead to a file inside
/// `root`); FIFOs, sockets and devices are refused, never opened.
fn found(root: &Path, item: &std::fs::DirEntry) -> Result<Found, PackageError> {
    let path = item.path();
    let link = item.file_type().map_err(read_err(&path))?.is_symlink();
    let (read_from, meta) = if link {
        let target = path
            .canonicalize()
            .map_err(|source| PackageError::BrokenLink {
                path: path.clone(),
                source,
            })?;
        if !target.starts_with(root) {
            let written = std::fs::read_link(&path).unwrap_or_else(|_| target.clone());
            return Err(PackageError::LinkOutside {
                target: written.display().to_string(),
                path,
                root: root.to_owned(),
            });
        }
        let meta = std::fs::metadata(&target).map_err(read_err(&target))?;
        if meta.is_dir() {
            return Err(PackageError::DirectoryLink { path });
        }
        (target, meta)
    } else {
        (path.clone(), item.metadata().map_err(read_err(&path))?)
    };
    if meta.is_dir() {
        Ok(Found::Directory(read_from))
    } else if meta.is_file() {
        Ok(Found::File(read_from, meta))
    } else {
        Err(PackageError::Special {
            path,
            kind: crate::config::paths::special_kind(&meta.file_type()),
        })
    }
}

fn read_err(path: &Path) -> impl FnOnce(std::io::Error) -> PackageError {
    let path = path.to_owned();
    move |source| PackageError::Read { path, source }
}

fn read_dir(dir: &Path) -> Result<Vec<std::fs::DirEntry>, PackageError> {
    std::fs::read_dir(dir)
        .map_err(read_err(dir))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(read_err(dir))
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
pub(super) fn write_zip(root: &Path, entries: &[Entry]) -> Result<Vec<u8>, PackageError> {
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
        let mut file = std::fs::File::open(&entry.path).map_err(read_err(&entry.path))?;
        copy(&mut file, &mut zip, &entry.path)?;
    }
    Ok(zip.finish().map_err(zip_err)?.into_inner())
}

fn copy(from: &mut impl Read, to: &mut impl Write, path: &Path) -> Result<(), PackageError> {
    std::io::copy(from, to).map(drop).map_err(read_err(path))
}

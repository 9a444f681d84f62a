//! Local paths named in the configuration: relative to its directory, checked without opening.

use std::path::{Path, PathBuf};

/// `path` relative to the configuration's directory.
pub(crate) fn absolute(base: &Path, path: &Path) -> PathBuf {
    base.join(path.strip_prefix("./").unwrap_or(path))
}

/// Why `path` is not the directory (`dir`) or regular file `what` should be, if it is not;
/// never opens it (a FIFO would block).
pub(crate) fn kind_problem(path: &Path, what: &str, dir: bool) -> Option<String> {
    match std::fs::metadata(path) {
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            Some(format!("{what} {} does not exist", path.display()))
        }
        Err(err) => Some(format!("cannot read {what} {}: {err}", path.display())),
        Ok(meta) if dir && !meta.is_dir() => {
            Some(format!("{what} {} is not a directory", path.display()))
        }
        Ok(meta) if !dir && !meta.is_file() => Some(format!(
            "{what} {} is not a regular file (a directory, FIFO or device)",
            path.display()
        )),
        Ok(_) => None,
    }
}

/// What a file that is neither a regular file nor a folder is, for messages.
#[cfg(unix)]
pub(crate) fn special_kind(kind: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if kind.is_fifo() {
        "FIFO"
    } else if kind.is_socket() {
        "socket"
    } else if kind.is_block_device() || kind.is_char_device() {
        "device"
    } else {
        "special file"
    }
}

/// What a file that is neither a regular file nor a folder is, for messages.
#[cfg(not(unix))]
pub(crate) fn special_kind(_kind: &std::fs::FileType) -> &'static str {
    "special file"
}

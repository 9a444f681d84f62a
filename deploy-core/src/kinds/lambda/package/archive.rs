//! A given zip (a `.zip` source, or a promotion's copy from the artifact bucket), checked as
//! Lambda unpacks it: each entry is inflated and counted (headers can under-declare sizes), and
//! names are kept exactly or refused (never rewritten, never leading out of the folder).

use std::io::{Cursor, Read};
use std::path::Path;

use flate2::read::DeflateDecoder;
use zip::{CompressionMethod, ZipArchive};

use super::{MAX_UNZIPPED, PackageError, Packaging, check as check_names};

/// Checks the zip `bytes`; returns its file count and its unzipped size (counted from what
/// inflates, stopping as soon as it passes [`MAX_UNZIPPED`]).
pub(super) fn check(packaging: &Packaging<'_>, bytes: &[u8]) -> Result<(usize, u64), PackageError> {
    let path = packaging.source;
    let zip_err = |source| PackageError::Zip {
        path: path.to_owned(),
        source,
    };
    let mut archive = ZipArchive::new(Cursor::new(bytes)).map_err(zip_err)?;
    let declared = (0..archive.len()).try_fold(0_u64, |sum, index| {
        let size = archive.by_index_raw(index).map_err(zip_err)?.size();
        Ok::<_, PackageError>(sum.saturating_add(size))
    })?;
    if declared > MAX_UNZIPPED {
        return Err(PackageError::TooLarge {
            path: path.to_owned(),
            unzipped: declared,
        });
    }
    let mut names = Vec::new();
    let mut unzipped = 0_u64;
    for index in 0..archive.len() {
        let mut file = archive.by_index_raw(index).map_err(zip_err)?;
        let name = entry_name(path, file.name_raw())?;
        if file.encrypted() {
            return Err(bad_entry(path, &name, "is encrypted"));
        }
        let method = file.compression();
        unzipped = inflate(path, &name, method, &mut file, unzipped)?;
        if file.is_file() {
            names.push(name);
        }
    }
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    check_names(packaging, &refs, unzipped)?;
    Ok((names.len(), unzipped))
}

/// The entry's name as written, when Lambda would unpack it under that name inside the folder.
fn entry_name(path: &Path, raw: &[u8]) -> Result<String, PackageError> {
    let Ok(name) = std::str::from_utf8(raw) else {
        return Err(PackageError::BadEntry {
            path: path.to_owned(),
            name: format!("`{}`", raw.escape_ascii()),
            reason: "is not UTF-8 (names are kept exactly, never rewritten)".into(),
        });
    };
    let absolute = name.starts_with(['/', '\\'])
        || name.as_bytes().get(1) == Some(&b':') && name.as_bytes()[0].is_ascii_alphabetic();
    let reason = if name.is_empty() || name.contains('\0') {
        Some("is empty or holds a NUL byte")
    } else if absolute {
        Some("is an absolute path")
    } else if name.split(['/', '\\']).any(|part| part == "..") {
        Some("leads out of the folder (`..`)")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(bad_entry(path, name, reason)),
        None => Ok(name.to_owned()),
    }
}

fn bad_entry(path: &Path, name: &str, reason: &str) -> PackageError {
    PackageError::BadEntry {
        path: path.to_owned(),
        name: format!("`{}`", name.escape_debug()),
        reason: reason.to_owned(),
    }
}

/// Inflates the raw bytes of one entry into nothing, counting; `used` is what the entries
/// before inflated. Returns the new total, or refuses as soon as it passes the limit.
fn inflate(
    path: &Path,
    name: &str,
    method: CompressionMethod,
    raw: &mut impl Read,
    used: u64,
) -> Result<u64, PackageError> {
    let room = MAX_UNZIPPED.saturating_sub(used).saturating_add(1);
    let mut sink = std::io::sink();
    let counted = match method {
        CompressionMethod::Stored => std::io::copy(&mut raw.take(room), &mut sink),
        CompressionMethod::Deflated => {
            std::io::copy(&mut DeflateDecoder::new(raw).take(room), &mut sink)
        }
        other => {
            let reason = format!("is compressed with {other}; use deflate (or no compression)");
            return Err(bad_entry(path, name, &reason));
        }
    };
    let counted =
        counted.map_err(|err| bad_entry(path, name, &format!("does not inflate: {err}")))?;
    let total = used.saturating_add(counted);
    if total > MAX_UNZIPPED {
        return Err(PackageError::TooLarge {
            path: path.to_owned(),
            unzipped: total,
        });
    }
    Ok(total)
}

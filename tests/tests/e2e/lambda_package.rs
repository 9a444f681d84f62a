//! Lambda zips: byte-identical across runs, sensitive to the executable bit, and readable by
//! other tools (Python's `zipfile`, Info-ZIP's `unzip`).

use std::path::Path;
use std::process::Command;

use deploy_core::kinds::lambda::package::{
    MAX_UNZIPPED, Package, PackageError, Packaging, from_zip, inspect, package,
};
use deploy_tests::scratch_dir;

fn write(root: &Path, name: &str, text: &str) {
    let path = root.join(name);
    std::fs::create_dir_all(path.parent().expect("parent")).expect("create dir");
    std::fs::write(path, text).expect("write");
}

fn zip(source: &Path) -> Package {
    package(&Packaging {
        source,
        exclude: &[],
        handler: Some("main.handler"),
    })
    .expect("package")
}

fn source() -> std::path::PathBuf {
    let root = scratch_dir("lambda-zip");
    write(
        &root,
        "main.py",
        "import lib.util\ndef handler(event, context):\n    return 1\n",
    );
    write(&root, "lib/__init__.py", "");
    write(&root, "lib/util.py", "X = 1\n");
    write(&root, "bin/tool", "#!/bin/sh\necho hi\n");
    write(&root, ".DS_Store", "junk");
    root
}

#[cfg(unix)]
fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

#[test]
fn the_same_directory_gives_the_same_bytes() {
    let root = source();
    let first = zip(&root);
    // Timestamps and the order files were created in must not matter.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let copy = scratch_dir("lambda-zip-copy");
    for name in ["lib/util.py", "bin/tool", "lib/__init__.py", "main.py"] {
        let text = std::fs::read_to_string(root.join(name)).expect("read");
        write(&copy, name, &text);
    }
    let second = zip(&root);
    let third = zip(&copy);
    assert_eq!(first.bytes, second.bytes);
    assert_eq!(first.bytes, third.bytes);
    assert_eq!(first.code_sha256, third.code_sha256);
    assert_eq!(first.files, 4, ".DS_Store is never shipped");
}

#[cfg(unix)]
#[test]
fn the_executable_bit_changes_the_hash_and_is_kept() {
    let root = source();
    chmod(&root.join("bin/tool"), 0o644);
    let plain = zip(&root);
    chmod(&root.join("bin/tool"), 0o755);
    let executable = zip(&root);
    assert_ne!(plain.code_sha256, executable.code_sha256);
    // Other mode bits (group write, setgid) do not change anything.
    chmod(&root.join("bin/tool"), 0o775);
    assert_eq!(zip(&root).code_sha256, executable.code_sha256);
    let listing = python(
        &executable,
        "import sys, zipfile\nz = zipfile.ZipFile(sys.argv[1])\nfor i in z.infolist(): print(i.filename, oct(i.external_attr >> 16), i.date_time)",
    );
    assert!(
        listing.contains("bin/tool 0o100755 (1980, 1, 1, 0, 0, 0)"),
        "{listing}"
    );
    assert!(
        listing.contains("main.py 0o100644 (1980, 1, 1, 0, 0, 0)"),
        "{listing}"
    );
}

/// Runs `script` with the zip's path as its argument; returns stdout.
fn python(zip: &Package, script: &str) -> String {
    let path = scratch_dir("lambda-zip-out").join("fn.zip");
    std::fs::write(&path, &zip.bytes).expect("write zip");
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(&path)
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_zip_passes_python_zipfile_and_unzip_tests() {
    let zip = zip(&source());
    let path = scratch_dir("lambda-zip-test").join("fn.zip");
    std::fs::write(&path, &zip.bytes).expect("write zip");
    let out = Command::new("python3")
        .args(["-m", "zipfile", "-t"])
        .arg(&path)
        .output()
        .expect("run python3 -m zipfile");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let names = python(
        &zip,
        "import sys, zipfile\nprint(zipfile.ZipFile(sys.argv[1]).namelist())",
    );
    assert_eq!(
        names.trim(),
        "['bin/tool', 'lib/__init__.py', 'lib/util.py', 'main.py']"
    );
    match Command::new("unzip").arg("-t").arg(&path).output() {
        Ok(out) => {
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(out.status.success(), "{text}");
            assert!(text.contains("No errors detected"), "{text}");
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("unzip is not installed; checked with Python's zipfile only");
        }
        Err(err) => panic!("run unzip: {err}"),
    }
}

/// Deflate (RFC 1951) of `1 + 258 * repeats` zero bytes, written by hand with the fixed Huffman
/// codes: one literal 0, then `repeats` copies of length 258 at distance 1. About 13 bits per
/// 258 bytes, so hundreds of MiB inflated take a few MiB.
fn deflated_zeros(repeats: u64) -> Vec<u8> {
    let mut bits = Bits::default();
    bits.put(1, 1); // BFINAL
    bits.put(1, 2); // BTYPE = fixed Huffman
    bits.code(0x30, 8); // literal 0
    for _ in 0..repeats {
        bits.code(0xC5, 8); // length code 285: 258
        bits.code(0, 5); // distance code 0: 1
    }
    bits.code(0, 7); // end of block
    bits.finish()
}

#[derive(Default)]
struct Bits {
    out: Vec<u8>,
    acc: u64,
    n: u32,
}

impl Bits {
    fn put(&mut self, value: u64, count: u32) {
        self.acc |= value << self.n;
        self.n += count;
        while self.n >= 8 {
            self.out.push((self.acc & 0xff) as u8);
            self.acc >>= 8;
            self.n -= 8;
        }
    }

    /// A Huffman code, written most significant bit first.
    fn code(&mut self, code: u64, len: u32) {
        let reversed = (0..len).fold(0, |r, i| (r << 1) | ((code >> i) & 1));
        self.put(reversed, len);
    }

    fn finish(mut self) -> Vec<u8> {
        if self.n > 0 {
            self.out.push((self.acc & 0xff) as u8);
        }
        self.out
    }
}

/// One entry of a hand-made zip: its raw name, method (0 stored, 8 deflated), data and the
/// uncompressed size its headers declare.
struct Raw<'a> {
    name: &'a [u8],
    method: u16,
    data: &'a [u8],
    declared: u32,
}

/// A zip written byte by byte (local headers, central directory, end record), so that sizes
/// and names can be what no honest writer would write. CRCs are left at 0.
fn raw_zip(entries: &[Raw<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for entry in entries {
        let offset = u32::try_from(out.len()).expect("small zip");
        let size = u32::try_from(entry.data.len()).expect("small entry");
        let name_len = u16::try_from(entry.name.len()).expect("short name");
        let common = |buf: &mut Vec<u8>| {
            buf.extend(20_u16.to_le_bytes()); // version needed
            buf.extend(0_u16.to_le_bytes()); // flags
            buf.extend(entry.method.to_le_bytes());
            buf.extend(0_u16.to_le_bytes()); // time
            buf.extend(0x21_u16.to_le_bytes()); // date: 1980-01-01
            buf.extend(0_u32.to_le_bytes()); // crc-32
            buf.extend(size.to_le_bytes());
            buf.extend(entry.declared.to_le_bytes());
            buf.extend(name_len.to_le_bytes());
            buf.extend(0_u16.to_le_bytes()); // extra field length
        };
        out.extend(0x0403_4b50_u32.to_le_bytes());
        common(&mut out);
        out.extend(entry.name);
        out.extend(entry.data);
        central.extend(0x0201_4b50_u32.to_le_bytes());
        central.extend(0x031E_u16.to_le_bytes()); // made by: Unix
        common(&mut central);
        central.extend(0_u16.to_le_bytes()); // comment length
        central.extend(0_u16.to_le_bytes()); // disk
        central.extend(0_u16.to_le_bytes()); // internal attributes
        central.extend((0o100_644_u32 << 16).to_le_bytes());
        central.extend(offset.to_le_bytes());
        central.extend(entry.name);
    }
    let count = u16::try_from(entries.len()).expect("few entries");
    let central_at = u32::try_from(out.len()).expect("small zip");
    let central_len = u32::try_from(central.len()).expect("small directory");
    out.extend(central);
    out.extend(0x0605_4b50_u32.to_le_bytes());
    out.extend([0; 4]); // disk numbers
    out.extend(count.to_le_bytes());
    out.extend(count.to_le_bytes());
    out.extend(central_len.to_le_bytes());
    out.extend(central_at.to_le_bytes());
    out.extend(0_u16.to_le_bytes());
    out
}

fn handler_entry() -> Raw<'static> {
    Raw {
        name: b"main.py",
        method: 0,
        data: b"def handler(e, c): pass\n",
        declared: 24,
    }
}

/// Checks `bytes` both as a `.zip` source on disk and as a promotion's copy.
fn check_zip(
    bytes: &[u8],
) -> (
    Result<(usize, u64), PackageError>,
    Result<Package, PackageError>,
) {
    let path = scratch_dir("lambda-crafted").join("fn.zip");
    std::fs::write(&path, bytes).expect("write zip");
    let packaging = Packaging {
        source: &path,
        exclude: &[],
        handler: Some("main.handler"),
    };
    (inspect(&packaging), from_zip(&packaging, bytes.to_vec()))
}

#[test]
fn a_zip_whose_headers_under_declare_its_size_is_refused() {
    let mib = 1024 * 1024;
    let repeats = (270 * mib) / 258 + 1;
    let data = deflated_zeros(repeats);
    assert!(
        data.len() < 3 * mib as usize,
        "{} bytes on disk",
        data.len()
    );
    let bomb = Raw {
        name: b"data.bin",
        method: 8,
        data: &data,
        declared: 1000,
    };
    let bytes = raw_zip(&[handler_entry(), bomb]);
    let (inspected, promoted) = check_zip(&bytes);
    for err in [
        inspected.expect_err("inspect"),
        promoted.expect_err("from_zip"),
    ] {
        match err {
            PackageError::TooLarge { unzipped, .. } => {
                assert!(unzipped > MAX_UNZIPPED, "{unzipped}");
                assert!(
                    unzipped <= MAX_UNZIPPED + 1 + 24,
                    "stopped at the limit: {unzipped}"
                );
            }
            other => panic!("not TooLarge: {other}"),
        }
    }
    let small = deflated_zeros(3);
    let honest = Raw {
        name: b"zeros.bin",
        method: 8,
        data: &small,
        declared: 1 + 3 * 258,
    };
    let (inspected, promoted) = check_zip(&raw_zip(&[handler_entry(), honest]));
    assert_eq!(inspected.expect("an honest zip passes"), (2, 24 + 775));
    assert_eq!(promoted.expect("and as a copy").unzipped, 24 + 775);
}

#[test]
fn entries_that_leave_the_folder_or_are_not_utf8_are_refused() {
    let cases: [(&[u8], &str); 4] = [
        (b"../../evil.py", "leads out of the folder"),
        (b"/etc/evil.py", "absolute path"),
        (b"lib/..\\..\\evil.py", "leads out of the folder"),
        (b"caf\xe9.py", "not UTF-8"),
    ];
    for (name, reason) in cases {
        let evil = Raw {
            name,
            method: 0,
            data: b"x = 1\n",
            declared: 6,
        };
        let bytes = raw_zip(&[handler_entry(), evil]);
        let (inspected, promoted) = check_zip(&bytes);
        for err in [
            inspected.expect_err("inspect"),
            promoted.expect_err("from_zip"),
        ] {
            assert!(matches!(err, PackageError::BadEntry { .. }), "{err}");
            assert!(err.to_string().contains(reason), "{err}");
        }
    }
    let kept = Raw {
        name: "lib/café.py".as_bytes(),
        method: 0,
        data: b"x = 1\n",
        declared: 6,
    };
    let (inspected, _) = check_zip(&raw_zip(&[handler_entry(), kept]));
    assert_eq!(inspected.expect("a UTF-8 name is kept").0, 2);
}

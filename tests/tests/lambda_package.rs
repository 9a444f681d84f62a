//! Lambda zips: byte-identical across runs, sensitive to the executable bit, and readable by
//! other tools (Python's `zipfile`, Info-ZIP's `unzip`).

use std::path::Path;
use std::process::Command;

use deploy_core::artifact::lambda::package::{Package, Packaging, package};
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

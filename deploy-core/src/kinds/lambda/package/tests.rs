use std::io::Cursor;
use std::path::Path;
use std::time::Duration;

use zip::ZipArchive;

use super::*;
use crate::error::{Classify, ErrorClass};

fn dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "deploy-lambda-package-{name}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create dir");
    dir
}

fn write(root: &Path, name: &str, text: &str) {
    let path = root.join(name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("create parent");
    }
    std::fs::write(path, text).expect("write file");
}

fn packaging<'a>(
    source: &'a Path,
    exclude: &'a [String],
    handler: Option<&'a str>,
) -> Packaging<'a> {
    Packaging {
        source,
        exclude,
        handler,
    }
}

fn names(bytes: &[u8]) -> Vec<String> {
    let archive = ZipArchive::new(Cursor::new(bytes)).expect("zip opens");
    archive
        .file_names()
        .map(|n| n.expect("utf-8 name").into_owned())
        .collect()
}

#[test]
fn junk_and_excluded_files_are_left_out_and_entries_sorted() {
    let root = dir("junk");
    write(&root, "main.py", "def handler(e, c): pass\n");
    write(&root, "lib/b.py", "b = 1\n");
    write(&root, "lib/a.py", "a = 1\n");
    write(&root, ".DS_Store", "junk");
    write(&root, "__pycache__/main.cpython-312.pyc", "junk");
    write(&root, "lib/a.pyc", "junk");
    write(&root, "tests/test_main.py", "");
    write(&root, "README.md", "");
    let exclude = vec!["tests/**".to_owned(), "*.md".to_owned()];
    let zip = package(&packaging(&root, &exclude, Some("main.handler"))).expect("package");
    assert_eq!(names(&zip.bytes), ["lib/a.py", "lib/b.py", "main.py"]);
    assert_eq!(zip.files, 3);
    assert_eq!(zip.unzipped, 24 + 6 + 6);
    assert_eq!(zip.sha256_hex.len(), 64);
    assert_eq!(zip.code_sha256.len(), 44);
}

#[test]
fn an_empty_directory_is_refused() {
    let root = dir("empty");
    write(&root, ".DS_Store", "junk");
    let err = package(&packaging(&root, &[], None)).expect_err("empty");
    assert!(matches!(err, PackageError::Empty { .. }), "{err}");
    assert_eq!(err.class(), ErrorClass::Usage);
}

#[test]
fn a_missing_handler_file_is_refused() {
    let root = dir("handler");
    write(&root, "app/main.py", "");
    let ok = inspect(&packaging(&root, &[], Some("app.main.handler")));
    assert_eq!(ok.expect("handler found").0, 1);
    let err = inspect(&packaging(&root, &[], Some("main.handler"))).expect_err("missing");
    assert!(err.to_string().contains("main.py"), "{err}");
    assert_eq!(err.class(), ErrorClass::Usage);
    assert!(inspect(&packaging(&root, &[], Some("com.example.Fn::handle"))).is_ok());
}

#[test]
fn over_250_mib_unzipped_is_refused_before_reading() {
    let root = dir("large");
    let file = std::fs::File::create(root.join("big.bin")).expect("create");
    file.set_len(MAX_UNZIPPED + 1).expect("sparse file");
    let err = package(&packaging(&root, &[], None)).expect_err("too large");
    assert!(matches!(err, PackageError::TooLarge { .. }), "{err}");
}

#[test]
fn a_given_zip_is_taken_as_is_and_checked() {
    let root = dir("given");
    write(&root, "src/index.js", "exports.handler = async () => 1;\n");
    let built = package(&packaging(&root.join("src"), &[], None)).expect("package");
    let zip_path = root.join("fn.zip");
    std::fs::write(&zip_path, &built.bytes).expect("write zip");
    let given = package(&packaging(&zip_path, &[], Some("index.handler"))).expect("given zip");
    assert_eq!(given, built);
    let err = package(&packaging(&zip_path, &[], Some("main.handler"))).expect_err("no main");
    assert!(matches!(err, PackageError::MissingHandler { .. }), "{err}");
    std::fs::write(&zip_path, b"not a zip").expect("write junk");
    let err = package(&packaging(&zip_path, &[], None)).expect_err("junk");
    assert!(matches!(err, PackageError::Zip { .. }), "{err}");
}

#[test]
fn a_bad_exclude_glob_is_an_error() {
    let err = globs(&["a[".to_owned()]).expect_err("bad glob");
    assert!(err.to_string().contains("a["), "{err}");
}

#[cfg(unix)]
fn mkfifo(path: &Path) {
    let status = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("run mkfifo");
    assert!(status.success(), "mkfifo {}", path.display());
}

/// Runs `f` on another thread; a FIFO opened by mistake would block it, so the test fails on a
/// timeout instead of hanging.
fn bounded<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(10))
        .expect("returned within 10 s (a FIFO was opened?)")
}

#[cfg(unix)]
#[test]
fn a_fifo_in_the_folder_is_refused_without_being_opened() {
    let root = dir("fifo");
    write(&root, "main.py", "def handler(e, c): pass\n");
    mkfifo(&root.join("pipe.py"));
    let source = root.clone();
    let err = bounded(move || package(&packaging(&source, &[], None))).expect_err("fifo");
    assert!(
        matches!(err, PackageError::Special { kind: "FIFO", .. }),
        "{err}"
    );
    assert!(err.to_string().contains("pipe.py"), "{err}");
    assert_eq!(err.class(), ErrorClass::Usage);
    let excluded = vec!["pipe.py".to_owned()];
    let source = root.clone();
    let zip = bounded(move || package(&packaging(&source, &excluded, None)));
    assert_eq!(zip.expect("an excluded FIFO is not read").files, 1);
    let fifo_source = root.join("pipe.py");
    let err = bounded(move || inspect(&packaging(&fifo_source, &[], None))).expect_err("source");
    assert!(matches!(err, PackageError::Special { .. }), "{err}");
}

#[cfg(unix)]
#[test]
fn links_out_of_the_folder_are_refused_and_inside_ones_zipped_as_their_file() {
    let base = dir("links");
    let root = base.join("fn");
    write(&root, "main.py", "def handler(e, c): pass\n");
    write(&base, "secret.txt", "AWS_SECRET_ACCESS_KEY=x");
    std::os::unix::fs::symlink(root.join("main.py"), root.join("alias.py")).expect("link");
    let zip = package(&packaging(&root, &[], None)).expect("an inside link is followed");
    assert_eq!(names(&zip.bytes), ["alias.py", "main.py"]);
    std::os::unix::fs::symlink(base.join("secret.txt"), root.join("environ.txt")).expect("link");
    let err = package(&packaging(&root, &[], None)).expect_err("outside");
    assert!(matches!(err, PackageError::LinkOutside { .. }), "{err}");
    assert!(err.to_string().contains("environ.txt"), "{err}");
    assert_eq!(err.class(), ErrorClass::Usage);
    std::fs::remove_file(root.join("environ.txt")).expect("rm");
    std::os::unix::fs::symlink("loop-b", root.join("loop-a")).expect("link");
    std::os::unix::fs::symlink("loop-a", root.join("loop-b")).expect("link");
    let err = inspect(&packaging(&root, &[], None)).expect_err("loop");
    assert!(matches!(err, PackageError::BrokenLink { .. }), "{err}");
    assert_eq!(err.class(), ErrorClass::Usage);
    let err = inspect(&packaging(&root.join("loop-a"), &[], None)).expect_err("loop source");
    assert!(matches!(err, PackageError::BrokenLink { .. }), "{err}");
}

#[cfg(target_os = "linux")]
#[test]
fn a_file_name_that_is_not_utf8_is_refused_not_rewritten() {
    use std::os::unix::ffi::OsStrExt;
    let root = dir("names");
    write(&root, "main.py", "def handler(e, c): pass\n");
    let name = std::ffi::OsStr::from_bytes(b"caf\xe9.py");
    std::fs::write(root.join(name), "x = 1\n").expect("write");
    let err = package(&packaging(&root, &[], None)).expect_err("not utf-8");
    assert!(matches!(err, PackageError::NotUtf8 { .. }), "{err}");
    assert_eq!(err.class(), ErrorClass::Usage);
}

#[test]
fn a_missing_source_or_a_plain_file_is_a_usage_error() {
    let root = dir("kinds");
    let err = inspect(&packaging(&root.join("nope"), &[], None)).expect_err("missing");
    assert!(matches!(err, PackageError::Missing { .. }), "{err}");
    assert_eq!(err.class(), ErrorClass::Usage);
    write(&root, "notes.txt", "");
    let err = package(&packaging(&root.join("notes.txt"), &[], None)).expect_err("plain file");
    assert!(matches!(err, PackageError::NotAZip { .. }), "{err}");
    assert_eq!(err.class(), ErrorClass::Usage);
}

use std::path::Path;

use super::*;

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

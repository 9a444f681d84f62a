//! `deploy release` of a DAG folder against moto: the bucket is listed and read back with a
//! plain S3 client and compared byte for byte with the folder; requests are counted by a proxy
//! in front of S3.

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, SystemTime};

use deploy_tests::dags::{Project, expected, ok, read_all, versioned_bucket};
use deploy_tests::{REGION, copy_dir, create_bucket, deploy, moto, s3, scratch_dir, unique};

#[tokio::test(flavor = "multi_thread")]
async fn sync_then_edit_add_delete_then_a_fresh_checkout_uploads_nothing() {
    let p = Project::new("").await;
    p.put_neighbours().await;
    p.write(
        ".airflowignore",
        "^scratch\n.*_test\\.py$  # tests stay home\n",
    );
    p.write("etl.py", "from airflow import DAG\nDAG(\"etl\")\n");
    p.write("report.py", "x = 1\n");
    p.write("lib/helpers.py", "def h():\n    return 2\n");
    p.write("lib/helpers_test.py", "assert True\n");
    p.write("scratch/notes.py", "this is not python\n");
    p.write("sql/q.sql", "select 1;\n");
    p.write("lib/__pycache__/helpers.cpython-312.pyc", "\u{0}bytecode");
    ok(&p.release("v1", &[]));
    let shipped = [
        ".airflowignore",
        "etl.py",
        "lib/helpers.py",
        "report.py",
        "sql/q.sql",
    ];
    assert_eq!(p.objects().await, expected(&p.folder(), &shipped, true));

    p.write("report.py", "x = 2\n");
    p.write("new/added.py", "y = 3\n");
    std::fs::remove_file(p.folder().join("sql/q.sql")).expect("rm");
    let before = p.dag_puts();
    let out = p.release_json("v2");
    ok(&out);
    assert_eq!(
        p.dag_puts() - before,
        2,
        "only the changed and the added file go up"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let document: serde_json::Value = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v.get("dags").is_some())
        .expect("the result document");
    let report = &document["dags"][0];
    assert_eq!(
        report["uploaded"],
        serde_json::json!(["new/added.py", "report.py"])
    );
    assert_eq!(report["deleted"], serde_json::json!(["sql/q.sql"]));
    assert_eq!(report["unchanged"], 3);
    let shipped = [
        ".airflowignore",
        "etl.py",
        "lib/helpers.py",
        "new/added.py",
        "report.py",
    ];
    assert_eq!(p.objects().await, expected(&p.folder(), &shipped, true));

    // A fresh checkout: same bytes, every mtime new.
    let fresh = p.dir.join("checkout");
    copy_dir(&p.folder(), &fresh);
    std::fs::remove_dir_all(p.folder()).expect("rm");
    std::fs::rename(&fresh, p.folder()).expect("mv");
    touch_all(&p.folder());
    let before = p.dag_puts();
    ok(&p.release("v3", &[]));
    assert_eq!(
        p.dag_puts(),
        before,
        "no PUT to the DAG bucket after a fresh checkout"
    );
    assert_eq!(p.objects().await, expected(&p.folder(), &shipped, true));
}

fn touch_all(dir: &Path) {
    let later = SystemTime::now() + Duration::from_secs(3600);
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            touch_all(&path);
        } else {
            let file = std::fs::File::options()
                .write(true)
                .open(&path)
                .expect("open");
            file.set_modified(later).expect("touch");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_syntax_error_stops_everything_before_any_upload() {
    let p = Project::new("").await;
    p.write("good.py", "x = 1\n");
    p.write("sub/bad.py", "import os\n\ndef broken(:\n    pass\n");
    let out = p.release("v1", &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("sub/bad.py:3:"), "{stderr}");
    assert_eq!(p.dag_puts(), 0);
    assert!(p.objects().await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bucket_that_keeps_no_versions_is_refused_before_any_change() {
    let p = Project::new("").await;
    p.write("good.py", "x = 1\n");
    let suspended = aws_sdk_s3::types::VersioningConfiguration::builder()
        .status(aws_sdk_s3::types::BucketVersioningStatus::Suspended)
        .build();
    deploy_tests::s3(&moto().url)
        .await
        .put_bucket_versioning()
        .bucket(&p.dags)
        .versioning_configuration(suspended)
        .send()
        .await
        .expect("suspend versioning");
    let out = p.release("v1", &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "`{}` does not keep versions (versioning Suspended)",
            p.dags
        )),
        "{stderr}"
    );
    assert!(stderr.contains("put-bucket-versioning"), "{stderr}");
    assert_eq!(p.dag_puts(), 0);
    assert!(p.objects().await.is_empty());
    let records = deploy_tests::list_keys(&moto().url, &p.state, "deploy/t/dev/artifacts/").await;
    assert!(records.is_empty(), "no record, no pointer: {records:?}");
}

/// Syncs the committed case `case` of tests/data/dags/ignore with `syntax`: what ships is
/// Airflow's own list for it (caches aside) plus the ignore files `ignore_files`.
async fn ships_what_airflow_reads(case: &str, syntax: &str, ignore_files: &[&'static str]) {
    let p = Project::new(&format!("ignore_syntax = \"{syntax}\"\n")).await;
    let data = deploy_tests::workspace_root().join("tests/data/dags/ignore");
    std::fs::remove_dir_all(p.folder()).expect("rm");
    copy_dir(&data.join(case), &p.folder());
    ok(&p.release("v1", &[]));
    let listed = std::fs::read_to_string(data.join(format!("{case}.{syntax}.txt"))).expect("list");
    let mut paths: Vec<&str> = listed
        .lines()
        .filter(|l| !l.contains("__pycache__") && !l.ends_with(".pyc"))
        .collect();
    paths.extend(ignore_files);
    assert_eq!(p.objects().await, expected(&p.folder(), &paths, false));
}

#[tokio::test(flavor = "multi_thread")]
async fn glob_ignore_files_nested_and_negated_ship_what_airflow_reads() {
    ships_what_airflow_reads(
        "glob-nested",
        "glob",
        &[".airflowignore", "nested/.airflowignore"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn regexp_ignore_files_nested_ship_what_airflow_reads() {
    ships_what_airflow_reads(
        "regexp-nested",
        "regexp",
        &[
            ".airflowignore",
            "sibling/.airflowignore",
            "subdir/.airflowignore",
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mass_deletes_are_refused_unless_allowed() {
    let p = Project::new("max_delete_share = 0.5\n").await;
    for name in ["a.py", "b.py", "c.py", "d.py"] {
        p.write(name, "x = 1\n");
    }
    ok(&p.release("v1", &[]));
    for name in ["b.py", "c.py", "d.py"] {
        std::fs::remove_file(p.folder().join(name)).expect("rm");
    }
    let out = p.release("v2", &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(6), "{stderr}");
    assert!(stderr.contains("max_delete_share"), "{stderr}");
    assert_eq!(p.objects().await.len(), 4, "nothing deleted");
    ok(&p.release_with("v2", &["--allow-mass-delete"], &[]));
    assert_eq!(p.objects().await, expected(&p.folder(), &["a.py"], false));

    // The environment variable does the same for runs that cannot pass the flag.
    for name in ["b.py", "c.py", "d.py"] {
        p.write(name, "x = 1\n");
    }
    ok(&p.release("v3", &[]));
    for name in ["b.py", "c.py", "d.py"] {
        std::fs::remove_file(p.folder().join(name)).expect("rm");
    }
    assert_eq!(p.release("v4", &[]).status.code(), Some(6));
    ok(&p.release("v4", &[("DEPLOY_ALLOW_MASS_DELETE", "1")]));
    assert_eq!(p.objects().await, expected(&p.folder(), &["a.py"], false));
}

/// dev and staging of project `t`, each with its own state bucket and versioned DAG bucket.
struct TwoEnvs {
    dir: PathBuf,
    config: PathBuf,
    dev_state: String,
    dev_dags: String,
    staging_dags: String,
}

impl TwoEnvs {
    async fn new() -> TwoEnvs {
        let url = moto().url.clone();
        let (dev_state, staging_state) = (unique("dags-dev-state"), unique("dags-stg-state"));
        create_bucket(&url, &dev_state).await;
        create_bucket(&url, &staging_state).await;
        let (dev_dags, staging_dags) = (
            versioned_bucket("dags-dev").await,
            versioned_bucket("dags-stg").await,
        );
        let dir = scratch_dir("dags-promote");
        let env = |name: &str, state: &str, dags: &str| {
            format!(
                "[environments.{name}]\nregion = \"{REGION}\"\naccount = \"123456789012\"\n\
                 state_bucket = \"{state}\"\n[environments.{name}.overrides.dags]\nbucket = \"{dags}\"\n"
            )
        };
        let text = format!(
            "project = \"t\"\n[settings]\nlock_ttl = \"30s\"\ntimeout = \"2m\"\n{}{}\
             [artifacts.dags]\nkind = \"dags\"\nsource = \"./dags\"\nbucket = \"unset\"\nprefix = \"dags/\"\n",
            env("dev", &dev_state, &dev_dags),
            env("staging", &staging_state, &staging_dags),
        );
        let config = dir.join("deploy.toml");
        std::fs::write(&config, text).expect("write config");
        TwoEnvs {
            dir,
            config,
            dev_state,
            dev_dags,
            staging_dags,
        }
    }

    fn write(&self, path: &str, text: &str) {
        let file = self.dir.join("dags").join(path);
        std::fs::create_dir_all(file.parent().expect("parent")).expect("mkdir");
        std::fs::write(file, text).expect("write");
    }

    fn run(&self, args: &[&str]) -> Output {
        deploy(&moto().url)
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run deploy")
    }
}

/// dev's release is copied to staging by its recorded S3 versions, even after dev's bucket
/// changed behind the ledger's back; staging's files the release lacks are deleted.
#[tokio::test(flavor = "multi_thread")]
async fn promote_copies_the_recorded_versions_after_the_source_changed() {
    let e = TwoEnvs::new().await;
    e.write("a.py", "a = 'staging before'\n");
    e.write("b.py", "b = 1\n");
    e.write("c.py", "c = 1\n");
    ok(&e.run(&["release", "staging", "dags", "--version", "s1"]));
    std::fs::remove_file(e.dir.join("dags/c.py")).expect("rm");
    e.write("a.py", "a = 'dev v1'\n");
    e.write("sub/d.py", "d = 1\n");
    ok(&e.run(&["release", "dev", "dags", "--version", "v1"]));
    let released = read_all(&e.dev_dags, "dags/").await;
    s3(&moto().url)
        .await
        .put_object()
        .bucket(&e.dev_dags)
        .key("dags/a.py")
        .body(b"a = 'changed behind the ledger'\n".to_vec().into())
        .send()
        .await
        .expect("overwrite in dev");
    ok(&e.run(&["promote", "dev", "staging", "dags"]));
    assert_eq!(read_all(&e.staging_dags, "dags/").await, released);
    assert_eq!(
        released.keys().collect::<Vec<_>>(),
        ["dags/a.py", "dags/b.py", "dags/sub/d.py"]
    );
}

/// A release of many files keeps its list in a manifest object, not in the live pointer, and
/// a promotion reads it from there.
#[tokio::test(flavor = "multi_thread")]
async fn large_releases_keep_their_file_list_out_of_the_pointer() {
    let e = TwoEnvs::new().await;
    let count = deploy_core::kinds::dags::manifest::INLINE_FILES + 30;
    for i in 0..count {
        e.write(&format!("team{}/dag_{i}.py", i % 7), &format!("N = {i}\n"));
    }
    ok(&e.run(&["release", "dev", "dags", "--version", "v1"]));
    let pointer = deploy_tests::get_json(
        &moto().url,
        &e.dev_state,
        "deploy/t/dev/artifacts/dags/live.json",
    )
    .await;
    let reference = &pointer["artifact_ref"];
    assert!(
        reference
            .get("files")
            .is_none_or(|f| f.as_array().is_some_and(Vec::is_empty))
    );
    let manifest = reference["manifest"].as_str().expect("a manifest address");
    assert!(
        manifest.starts_with(&format!("s3://{}/", e.dev_state)),
        "{manifest}"
    );
    ok(&e.run(&["promote", "dev", "staging", "dags"]));
    let staged = read_all(&e.staging_dags, "dags/").await;
    assert_eq!(staged.len(), count);
    assert_eq!(staged, read_all(&e.dev_dags, "dags/").await);
}

/// `503 SlowDown` on uploads is retried (the SDK's standard retry mode): the sync completes and
/// the bucket holds every file.
#[tokio::test(flavor = "multi_thread")]
async fn throttled_uploads_are_retried() {
    use deploy_tests::s3_proxy::{Fault, Rule};
    let p = Project::new("").await;
    for i in 0..6 {
        p.write(&format!("dag_{i}.py"), &format!("N = {i}\n"));
    }
    let pattern = format!("/{}/dags/", p.dags);
    p.proxy.add(Rule::new("PUT", &pattern, Fault::SlowDown, 2));
    ok(&p.release("v1", &[]));
    assert_eq!(p.proxy.faults(), 2, "two uploads were throttled");
    let paths: Vec<String> = (0..6).map(|i| format!("dag_{i}.py")).collect();
    let paths: Vec<&str> = paths.iter().map(String::as_str).collect();
    assert_eq!(p.objects().await, expected(&p.folder(), &paths, false));
}

/// `rollback` puts back the previous release's files byte for byte (its recorded S3
/// versions), recorded as a rollback; `--to` goes forward again to a named release; a second
/// plain rollback after a no-op release still finds the release with other content.
#[tokio::test(flavor = "multi_thread")]
async fn rollback_restores_the_previous_set_exactly() {
    let e = TwoEnvs::new().await;
    e.write("a.py", "a = 1\n");
    e.write("b.py", "b = 1\n");
    ok(&e.run(&["release", "dev", "dags", "--version", "v1"]));
    let v1 = read_all(&e.dev_dags, "dags/").await;
    e.write("a.py", "a = 2\n");
    std::fs::remove_file(e.dir.join("dags/b.py")).expect("rm");
    e.write("sub/c.py", "c = 1\n");
    ok(&e.run(&["release", "dev", "dags", "--version", "v2"]));
    ok(&e.run(&["release", "dev", "dags", "--version", "v2-again"]));
    let v2 = read_all(&e.dev_dags, "dags/").await;
    let live = |e: &TwoEnvs| {
        let state = e.dev_state.clone();
        async move {
            deploy_tests::get_json(&moto().url, &state, "deploy/t/dev/artifacts/dags/live.json")
                .await
        }
    };
    let v2_id = live(&e).await["release_id"]
        .as_str()
        .expect("id")
        .to_owned();

    ok(&e.run(&["rollback", "dev", "dags"]));
    assert_eq!(
        read_all(&e.dev_dags, "dags/").await,
        v1,
        "v1, byte for byte"
    );
    let pointer = live(&e).await;
    assert_eq!(pointer["operation"], "rollback");
    assert_eq!(pointer["version"], "v1");

    // The short form `history` shows names it too.
    let short = v2_id.rsplit_once('-').expect("id").1;
    let history = String::from_utf8_lossy(&e.run(&["history", "dev"]).stdout).into_owned();
    assert!(
        history
            .lines()
            .any(|l| l.contains(short) && l.contains(" v2 ")),
        "{history}"
    );
    ok(&e.run(&["rollback", "dev", "dags", "--to", short]));
    assert_eq!(read_all(&e.dev_dags, "dags/").await, v2, "forward to v2");

    let unknown = e.run(&[
        "rollback",
        "dev",
        "dags",
        "--to",
        "20200101T000000000Z-00000000",
    ]);
    assert_eq!(
        unknown.status.code(),
        Some(2),
        "an unknown release is a usage error"
    );
    assert_eq!(
        read_all(&e.dev_dags, "dags/").await,
        v2,
        "and changes nothing"
    );
}

/// The artifact moves to another bucket: the live release recorded in the old one says nothing
/// about the new one, so the release records the new bucket's own object versions (which a
/// promotion or rollback copies from).
#[tokio::test(flavor = "multi_thread")]
async fn a_release_to_another_bucket_records_that_buckets_versions() {
    let p = Project::new("").await;
    p.write("a.py", "a = 1\n");
    ok(&p.release("v1", &[]));
    let moved = versioned_bucket("dags-moved").await;
    let client = s3(&moto().url).await;
    // The same bytes are there already, put by someone else.
    client
        .put_object()
        .bucket(&moved)
        .key("dags/a.py")
        .body(b"a = 1\n".to_vec().into())
        .send()
        .await
        .expect("put");
    let text = std::fs::read_to_string(&p.config).expect("config").replace(
        &format!("bucket = \"{}\"", p.dags),
        &format!("bucket = \"{moved}\""),
    );
    std::fs::write(&p.config, text).expect("write config");
    ok(&p.release("v2", &[]));
    let listed = client
        .list_object_versions()
        .bucket(&moved)
        .prefix("dags/a.py")
        .send()
        .await
        .expect("versions");
    let version = listed.versions()[0].version_id().expect("a version id");
    let pointer = deploy_tests::get_json(
        &moto().url,
        &p.state,
        "deploy/t/dev/artifacts/dags/live.json",
    )
    .await;
    assert_eq!(pointer["artifact_ref"]["files"][0]["path"], "a.py");
    assert_eq!(pointer["artifact_ref"]["files"][0]["version_id"], version);
}

/// A release whose files are what the prefix holds and what the live release recorded changes
/// nothing: it says `unchanged` with the live release, sends no write to either bucket (no
/// lock, no record), and the ledger still names the first release. A file changed by hand
/// under the prefix makes the next release a real one, which puts it back.
#[tokio::test(flavor = "multi_thread")]
async fn a_release_that_changes_nothing_takes_no_lock_and_writes_no_record() {
    let p = Project::new("").await;
    p.write("etl.py", "from airflow import DAG\n");
    p.write("lib/util.py", "x = 1\n");
    ok(&p.release("v1", &[]));
    let live = || async {
        deploy_tests::get_json(
            &moto().url,
            &p.state,
            "deploy/t/dev/artifacts/dags/live.json",
        )
        .await
    };
    let v1 = live().await["release_id"].as_str().expect("id").to_owned();
    let writes = || {
        p.proxy
            .seen()
            .iter()
            .filter(|s| s.method != "GET" && s.method != "HEAD")
            .count()
    };
    let state_keys = || async { read_all(&p.state, "").await.into_keys().collect::<Vec<_>>() };
    let (writes_before, keys_before) = (writes(), state_keys().await);

    let out = p.release("v2", &[]);
    ok(&out);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!(
            "unchanged: dags in dev already runs this (live release {v1})"
        )),
        "{stdout}"
    );
    assert_eq!(
        writes(),
        writes_before,
        "no PUT, POST or DELETE to S3 at all"
    );
    assert_eq!(state_keys().await, keys_before, "no record, no lock object");
    assert_eq!(live().await["version"], "v1");

    let json = p.release_json("v2");
    ok(&json);
    let document: serde_json::Value = String::from_utf8_lossy(&json.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v.get("releases").is_some())
        .expect("the result document");
    assert_eq!(document["unchanged"], true);
    assert_eq!(document["releases"], serde_json::json!([]));

    // A hand edit under the prefix: the same folder is now a change, and goes back up.
    let s3 = s3(&moto().url).await;
    s3.put_object()
        .bucket(&p.dags)
        .key("dags/lib/util.py")
        .body(b"x = 'edited by hand'\n".to_vec().into())
        .send()
        .await
        .expect("hand edit");
    let before = p.dag_puts();
    ok(&p.release("v3", &[]));
    assert_eq!(p.dag_puts() - before, 1, "the edited file goes back up");
    assert_eq!(live().await["version"], "v3");
    assert_eq!(
        read_all(&p.dags, "dags/").await["dags/lib/util.py"],
        b"x = 1\n".to_vec()
    );
}

/// Released from a work tree with uncommitted changes to tracked files (no --version, no
/// GITHUB_SHA): a warning, and the record says `dirty`; a clean tree gives a record without it.
#[tokio::test(flavor = "multi_thread")]
async fn a_dirty_work_tree_is_released_with_a_warning_and_recorded_dirty() {
    let p = Project::new("").await;
    p.write("etl.py", "x = 1\n");
    let git = |args: &[&str]| deploy_tests::git(&p.dir, args, None);
    git(&["init", "-q"]);
    git(&["add", "."]);
    git(&["commit", "-q", "-m", "first"]);
    let release = || {
        deploy(&moto().url)
            .arg("--config")
            .arg(&p.config)
            .args(["release", "dev", "dags"])
            .output()
            .expect("run deploy")
    };
    let live = || async {
        let pointer = deploy_tests::get_json(
            &moto().url,
            &p.state,
            "deploy/t/dev/artifacts/dags/live.json",
        )
        .await;
        let key = pointer["record_key"].as_str().expect("key").to_owned();
        deploy_tests::get_json(&moto().url, &p.state, &key).await
    };
    let out = release();
    ok(&out);
    assert!(!String::from_utf8_lossy(&out.stderr).contains("uncommitted"));
    assert!(live().await.get("dirty").is_none(), "a clean tree");

    p.write("etl.py", "x = 2\n");
    let out = release();
    ok(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("warning: the work tree has uncommitted changes"),
        "{stderr}"
    );
    assert_eq!(live().await["dirty"], true);
}

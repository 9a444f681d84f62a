//! A DAG project for the end-to-end tests: one environment `dev` whose versioned DAG bucket and
//! state bucket sit behind a request-counting proxy, run through the `deploy` binary; results
//! are read back with a plain S3 client.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use aws_sdk_s3::types::{BucketVersioningStatus, VersioningConfiguration};

use crate::s3_proxy::S3Proxy;
use crate::{REGION, create_bucket, deploy, moto, s3, scratch_dir, unique};

/// Every object of `bucket` under `prefix` with its bytes, read with a plain S3 client.
pub async fn read_all(bucket: &str, prefix: &str) -> BTreeMap<String, Vec<u8>> {
    let s3 = s3(&moto().url).await;
    let mut out = BTreeMap::new();
    for key in crate::list_keys(&moto().url, bucket, prefix).await {
        let body = s3
            .get_object()
            .bucket(bucket)
            .key(&key)
            .send()
            .await
            .expect("get")
            .body
            .collect()
            .await
            .expect("read")
            .into_bytes()
            .to_vec();
        out.insert(key, body);
    }
    out
}

/// A fresh bucket named `unique(prefix)` with versioning enabled (what a DAG bucket needs).
pub async fn versioned_bucket(prefix: &str) -> String {
    let url = moto().url.clone();
    let bucket = unique(prefix);
    versioning(&url, &bucket).await;
    bucket
}

async fn versioning(url: &str, bucket: &str) {
    create_bucket(url, bucket).await;
    s3(url)
        .await
        .put_bucket_versioning()
        .bucket(bucket)
        .versioning_configuration(
            VersioningConfiguration::builder()
                .status(BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .expect("enable versioning");
}

/// A project `t` with one environment `dev` whose DAG bucket (versioned) and state bucket sit
/// behind a request-counting proxy.
#[derive(Debug)]
pub struct Project {
    /// The project folder (`deploy.toml`, `dags/`).
    pub dir: PathBuf,
    /// `deploy.toml`.
    pub config: PathBuf,
    /// The DAG bucket.
    pub dags: String,
    /// The state bucket.
    pub state: String,
    /// The proxy in front of S3.
    pub proxy: S3Proxy,
}

impl Project {
    /// A fresh project; `extra` is appended to the artifact's table.
    pub async fn new(extra: &str) -> Project {
        let url = moto().url.clone();
        let state = unique("dags-state");
        let dags = unique("dags-bucket");
        create_bucket(&url, &state).await;
        versioning(&url, &dags).await;
        let dir = scratch_dir("dags");
        std::fs::create_dir_all(dir.join("dags")).expect("mkdir");
        let proxy = S3Proxy::start(&url);
        let config = dir.join("deploy.toml");
        let text = format!(
            "project = \"t\"\n[settings]\nlock_ttl = \"30s\"\ntimeout = \"2m\"\n\
             [environments.dev]\nregion = \"{REGION}\"\naccount = \"123456789012\"\n\
             state_bucket = \"{state}\"\nendpoints = {{ s3 = \"{s3}\" }}\n\
             [artifacts.dags]\nkind = \"dags\"\nsource = \"./dags\"\nbucket = \"{dags}\"\n\
             prefix = \"dags/\"\n{extra}",
            s3 = proxy.url,
        );
        std::fs::write(&config, text).expect("write config");
        Project {
            dir,
            config,
            dags,
            state,
            proxy,
        }
    }

    /// The DAG folder.
    pub fn folder(&self) -> PathBuf {
        self.dir.join("dags")
    }

    /// Writes `text` to `path` in the DAG folder.
    pub fn write(&self, path: &str, text: &str) {
        let file = self.folder().join(path);
        std::fs::create_dir_all(file.parent().expect("a parent")).expect("mkdir");
        std::fs::write(file, text).expect("write");
    }

    /// `deploy release dev dags --version V` with `env` set.
    pub fn release(&self, version: &str, env: &[(&str, &str)]) -> Output {
        self.release_with(version, &[], env)
    }

    /// The same with more arguments.
    pub fn release_with(&self, version: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = deploy(&moto().url);
        cmd.arg("--config")
            .arg(&self.config)
            .args(["release", "dev", "dags", "--version", version])
            .args(args)
            .stdin(Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().expect("run deploy")
    }

    /// The same with `--output json`.
    pub fn release_json(&self, version: &str) -> Output {
        deploy(&moto().url)
            .arg("--config")
            .arg(&self.config)
            .args([
                "--output",
                "json",
                "release",
                "dev",
                "dags",
                "--version",
                version,
            ])
            .stdin(Stdio::null())
            .output()
            .expect("run deploy")
    }

    /// PUT requests to the DAG bucket the proxy passed so far.
    pub fn dag_puts(&self) -> usize {
        let bucket = format!("/{}/", self.dags);
        self.proxy
            .seen()
            .iter()
            .filter(|s| s.method == "PUT" && s.path.starts_with(&bucket))
            .count()
    }

    /// Every object of the DAG bucket with its bytes, read with a plain S3 client.
    pub async fn objects(&self) -> BTreeMap<String, Vec<u8>> {
        read_all(&self.dags, "").await
    }

    /// Objects outside the prefix that a sync must not touch.
    pub async fn put_neighbours(&self) {
        let s3 = s3(&moto().url).await;
        for key in ["other/keep.txt", "dags-old/stale.py"] {
            s3.put_object()
                .bucket(&self.dags)
                .key(key)
                .body(b"neighbour".to_vec().into())
                .send()
                .await
                .expect("put neighbour");
        }
    }
}

/// Asserts `deploy` succeeded, showing its output otherwise.
pub fn ok(out: &Output) {
    assert!(
        out.status.success(),
        "deploy failed ({:?}):\n{}\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// What the bucket should hold: `prefix` + each path, with the bytes of the folder's file.
pub fn expected(folder: &Path, paths: &[&str], neighbours: bool) -> BTreeMap<String, Vec<u8>> {
    let mut out: BTreeMap<String, Vec<u8>> = paths
        .iter()
        .map(|p| {
            (
                format!("dags/{p}"),
                std::fs::read(folder.join(p)).expect("read source"),
            )
        })
        .collect();
    if neighbours {
        out.insert("other/keep.txt".into(), b"neighbour".to_vec());
        out.insert("dags-old/stale.py".into(), b"neighbour".to_vec());
    }
    out
}

//! `deploy publish` of an image: moto for ECR and S3, a real registry for the bytes, skopeo and
//! plain SDK clients to read the result back.

use std::path::{Path, PathBuf};

use deploy_tests::{
    REGION, copy_dir, create_bucket, create_repository, deploy, get_json, moto, oci_registry,
    scratch_dir, skopeo_inspect, unique, workspace_root,
};

/// A project whose `api` image comes from a copy of the example layout.
async fn project(create_repo: bool) -> (PathBuf, String, String) {
    let url = moto().url.clone();
    let bucket = unique("pub-state");
    create_bucket(&url, &bucket).await;
    let repo = format!("pub/{}", unique("api"));
    if create_repo {
        create_repository(&url, &repo).await;
    }
    let dir = scratch_dir("publish");
    copy_dir(
        &workspace_root().join("examples/planwise/build/api"),
        &dir.join("layout"),
    );
    let config = dir.join("deploy.toml");
    let text = format!(
        "project = \"t\"\n[environments.dev]\nregion = \"{REGION}\"\naccount = \"123456789012\"\nstate_bucket = \"{bucket}\"\nendpoints = {{ registry = \"http://{}\" }}\n[artifacts.api]\nkind = \"image\"\nrepository = \"{repo}\"\nsource = \"oci:./layout:latest\"\n",
        oci_registry().host
    );
    std::fs::write(&config, text).expect("write config");
    (config, bucket, repo)
}

fn publish(config: &Path, version: &str) -> (Option<i32>, String, String) {
    let out = deploy(&moto().url)
        .arg("--config")
        .arg(config)
        .args(["publish", "dev", "api", "--version", version])
        .output()
        .expect("run deploy");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn publish_pushes_by_digest_records_it_and_republishing_sends_nothing() {
    let (config, bucket, repo) = project(true).await;
    let (code, _, stderr) = publish(&config, "v1");
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("bytes sent"), "{stderr}");

    let inspected =
        skopeo_inspect(&format!("{}/{repo}:v1", oci_registry().host), false).expect("skopeo");
    let digest = inspected["Digest"].as_str().expect("digest").to_owned();
    let pointer = get_json(
        &moto().url,
        &bucket,
        "deploy/t/dev/artifacts/api/published.json",
    )
    .await;
    assert_eq!(
        pointer["artifact_ref"]["digest"],
        digest.as_str(),
        "the ledger records the pushed digest"
    );
    assert_eq!(pointer["version"], "v1");

    let (code, _, stderr) = publish(&config, "v1");
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains("already published, nothing sent"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_repository_names_the_infra_stack() {
    let (config, bucket, repo) = project(false).await;
    let (code, _, stderr) = publish(&config, "v1");
    assert_eq!(code, Some(2), "the configuration names it: {stderr}");
    assert!(
        stderr.contains(&format!("ECR repository `{repo}` does not exist")),
        "{stderr}"
    );
    assert!(stderr.contains("infra/environment.yaml"), "{stderr}");
    assert!(stderr.contains("nothing was changed"), "{stderr}");
    // Checked before the lock: no lock was taken and no record written.
    let keys = deploy_tests::list_keys(&moto().url, &bucket, "").await;
    assert!(keys.is_empty(), "{keys:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tag_pointing_elsewhere_is_not_moved() {
    let (config, _bucket, repo) = project(true).await;
    let (code, _, stderr) = publish(&config, "v1");
    assert_eq!(code, Some(0), "{stderr}");
    let before = skopeo_inspect(&format!("{}/{repo}:v1", oci_registry().host), false)
        .expect("skopeo")["Digest"]
        .clone();

    // Another image under the same tag: a different layer in a fresh layout.
    let other = config.parent().expect("dir").join("other");
    std::fs::create_dir_all(other.join("blobs/sha256")).expect("mkdir");
    std::fs::write(
        other.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .expect("write");
    let put = |bytes: &[u8]| {
        let digest = deploy_core::oci::Digest::of(bytes);
        std::fs::write(other.join("blobs/sha256").join(digest.hex()), bytes).expect("blob");
        (digest, bytes.len())
    };
    let (config_digest, config_size) = put(b"{\"architecture\":\"amd64\",\"os\":\"linux\"}");
    let (layer_digest, layer_size) = put(b"a different layer");
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config_digest}","size":{config_size}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{layer_digest}","size":{layer_size}}}]}}"#
    );
    let (manifest_digest, manifest_size) = put(manifest.as_bytes());
    std::fs::write(
        other.join("index.json"),
        format!(r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{manifest_digest}","size":{manifest_size},"annotations":{{"org.opencontainers.image.ref.name":"latest"}}}}]}}"#),
    )
    .expect("index");
    let text = std::fs::read_to_string(&config)
        .expect("config")
        .replace("oci:./layout:latest", "oci:./other:latest");
    std::fs::write(&config, text).expect("config");

    let (code, _, stderr) = publish(&config, "v1");
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("tags are immutable"), "{stderr}");
    let after = skopeo_inspect(&format!("{}/{repo}:v1", oci_registry().host), false)
        .expect("skopeo")["Digest"]
        .clone();
    assert_eq!(before, after, "the tag still points at the first image");
}

#[test]
fn dry_run_prints_the_plan_and_changes_nothing() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let (config, bucket, repo) = runtime.block_on(project(true));
    let out = deploy(&moto().url)
        .arg("--config")
        .arg(&config)
        .args(["publish", "dev", "--version", "v1", "--dry-run"])
        .output()
        .expect("run deploy");
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("push api to ECR {repo}:v1")),
        "{stdout}"
    );
    assert!(stdout.contains("nothing was changed"));
    assert!(skopeo_inspect(&format!("{}/{repo}:v1", oci_registry().host), true).is_err());
    let keys = runtime.block_on(deploy_tests::list_keys(&moto().url, &bucket, ""));
    assert!(keys.is_empty(), "{keys:?}");
}

/// Points the project's `api` at a new repository `<prefix>/...` whose source is `repo:v1` in
/// the registry at `registry`; returns the new repository.
async fn copy_from_registry(config: &Path, repo: &str, registry: &str, prefix: &str) -> String {
    let copy = format!("{prefix}/{}", unique("api"));
    create_repository(&moto().url, &copy).await;
    let text = std::fs::read_to_string(config)
        .expect("config")
        .replace(
            &format!("repository = \"{repo}\""),
            &format!("repository = \"{copy}\""),
        )
        .replace(
            "oci:./layout:latest",
            &format!("docker://{registry}/{repo}:v1"),
        );
    std::fs::write(config, text).expect("config");
    copy
}

#[tokio::test(flavor = "multi_thread")]
async fn an_image_in_another_registry_is_copied_by_digest() {
    let (config, _bucket, repo) = project(true).await;
    let (code, _, stderr) = publish(&config, "v1");
    assert_eq!(code, Some(0), "{stderr}");
    let copy = copy_from_registry(&config, &repo, &oci_registry().host, "copy").await;
    let (code, _, stderr) = publish(&config, "v2");
    assert_eq!(code, Some(0), "{stderr}");
    let original =
        skopeo_inspect(&format!("{}/{repo}:v1", oci_registry().host), false).expect("skopeo");
    let copied =
        skopeo_inspect(&format!("{}/{copy}:v2", oci_registry().host), false).expect("skopeo");
    assert_eq!(copied["Digest"], original["Digest"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_source_behind_a_bearer_token_registry_uses_the_stored_login() {
    let (config, _bucket, repo) = project(true).await;
    let (code, _, stderr) = publish(&config, "v1");
    assert_eq!(code, Some(0), "{stderr}");
    let proxy = deploy_tests::RegistryProxy::with(
        &oci_registry().host,
        deploy_tests::ProxyOptions {
            auth: Some(deploy_tests::BearerAuth {
                username: "ci".into(),
                password: "s3cret".into(),
                token_uses: 1000,
            }),
            ..deploy_tests::ProxyOptions::default()
        },
    );
    let copy = copy_from_registry(&config, &repo, &proxy.host, "bearer-copy").await;
    let docker_config = config.parent().expect("dir").join("docker");
    std::fs::create_dir_all(&docker_config).expect("mkdir");
    let login = |password: &str| {
        let auth = aws_smithy_types::base64::encode(format!("ci:{password}"));
        std::fs::write(
            docker_config.join("config.json"),
            format!(r#"{{"auths":{{"{}":{{"auth":"{auth}"}}}}}}"#, proxy.host),
        )
        .expect("write docker config");
    };
    let run = |version: &str| {
        deploy(&moto().url)
            .env("DOCKER_CONFIG", &docker_config)
            .env("HOME", config.parent().expect("dir"))
            .arg("--config")
            .arg(&config)
            .args(["publish", "dev", "api", "--version", version])
            .output()
            .expect("run deploy")
    };

    login("wrong");
    let out = run("v2");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("refused the credentials"), "{stderr}");
    assert!(!stderr.contains("wrong"), "no password in output: {stderr}");

    login("s3cret");
    let out = run("v2");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(proxy.tokens_issued() >= 1);
    let original =
        skopeo_inspect(&format!("{}/{repo}:v1", oci_registry().host), false).expect("skopeo");
    let copied =
        skopeo_inspect(&format!("{}/{copy}:v2", oci_registry().host), false).expect("skopeo");
    assert_eq!(copied["Digest"], original["Digest"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_artifact_named_twice_is_published_once() {
    let (config, bucket, _repo) = project(true).await;
    let out = deploy(&moto().url)
        .arg("--config")
        .arg(&config)
        .args(["publish", "dev", "api", "api", "--version", "v1"])
        .output()
        .expect("run deploy");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let records =
        deploy_tests::list_keys(&moto().url, &bucket, "deploy/t/dev/artifacts/api/releases/").await;
    assert_eq!(records.len(), 1, "one record for one publish: {records:?}");
}

//! Pushing images over the OCI distribution protocol to a real registry (Debian's
//! docker-registry), read back with skopeo.

use std::path::Path;
use std::sync::Arc;

use deploy_core::events::NoReporter;
use deploy_core::kinds::image::layout::OciLayout;
use deploy_core::kinds::image::{ImageContents, SourceError};
use deploy_core::oci::{Descriptor, Digest, Index, Manifest, OCI_INDEX, OCI_MANIFEST, Platform};
use deploy_core::registry::{
    BlobAction, Credentials, Progress, Registry, RegistryError, RegistrySettings, UploadMode,
};
use deploy_tests::layouts::{blob, empty_layout, image_blobs, sized_layout, write_top_index};
use deploy_tests::{copy_dir, oci_registry, scratch_dir, skopeo_inspect, unique, workspace_root};

fn registry() -> Registry {
    Registry::new(
        &format!("http://{}", oci_registry().host),
        None,
        RegistrySettings::default(),
    )
    .expect("client")
}

fn progress() -> Progress<'static> {
    Progress {
        artifact: "api",
        reporter: Arc::new(NoReporter),
    }
}

fn example() -> std::path::PathBuf {
    workspace_root().join("examples/planwise/build/api")
}

#[tokio::test]
async fn a_layout_push_matches_skopeo_and_republishing_sends_nothing() {
    let layout = OciLayout::open(&example()).expect("layout");
    let contents = layout.image(Some("latest")).expect("image");
    let repo = format!("push/{}", unique("api"));
    let registry = registry();
    let first = registry
        .push_layout(&repo, &layout, &contents, "v1", &progress())
        .await
        .expect("push");
    assert!(first.blobs.iter().all(|b| b.action == BlobAction::Sent));
    assert_eq!(first.bytes_sent, contents.blob_bytes());

    let image = format!("{}/{repo}:v1", oci_registry().host);
    let inspected = skopeo_inspect(&image, false).expect("skopeo inspect");
    assert_eq!(inspected["Digest"], first.digest.as_str());
    let layers: Vec<&str> = inspected["Layers"]
        .as_array()
        .expect("layers")
        .iter()
        .filter_map(|l| l.as_str())
        .collect();
    let manifest: Manifest = serde_json::from_slice(&contents.manifests[0].1).expect("manifest");
    let expected: Vec<&str> = manifest.layers.iter().map(|l| l.digest.as_str()).collect();
    assert_eq!(layers, expected);

    let again = registry
        .push_layout(&repo, &layout, &contents, "v1", &progress())
        .await
        .expect("republish");
    assert_eq!(again.bytes_sent, 0);
    assert!(again.blobs.iter().all(|b| b.action == BlobAction::Skipped));
    assert_eq!(again.digest, first.digest);
}

/// Flips one byte (at `at(len)`) of the image's largest blob, keeping its size; returns the blob.
fn corrupt_largest_blob(
    layout: &OciLayout,
    contents: &deploy_core::kinds::image::ImageContents,
    at: impl Fn(usize) -> usize,
) -> Descriptor {
    let layer = contents
        .blobs
        .iter()
        .max_by_key(|b| b.size)
        .expect("a layer")
        .clone();
    let path = layout.blob_path(&layer.digest);
    let mut bytes = std::fs::read(&path).expect("read");
    let index = at(bytes.len());
    bytes[index] ^= 0xff;
    std::fs::write(&path, bytes).expect("corrupt, same size");
    layer
}

#[tokio::test]
async fn a_corrupt_blob_stops_the_push_before_any_manifest() {
    let dir = scratch_dir("corrupt-layout");
    copy_dir(&example(), &dir);
    let layout = OciLayout::open(&dir).expect("layout");
    let contents = layout.image(Some("latest")).expect("image");
    corrupt_largest_blob(&layout, &contents, |_| 0);

    let repo = format!("corrupt/{}", unique("api"));
    let err = registry()
        .push_layout(&repo, &layout, &contents, "v1", &progress())
        .await
        .expect_err("corrupt");
    assert!(
        matches!(err, RegistryError::Source(SourceError::Corrupt { .. })),
        "{err}"
    );
    let image = format!("{}/{repo}:v1", oci_registry().host);
    let missing = skopeo_inspect(&image, true).expect_err("no tag was moved");
    assert!(
        missing.contains("manifest unknown") || missing.contains("name unknown"),
        "{missing}"
    );
}

#[tokio::test]
async fn a_multi_platform_index_round_trips_with_every_platform() {
    let dir = scratch_dir("index-layout");
    empty_layout(&dir);
    let mut entries = Vec::new();
    for (arch, variant) in [("amd64", None), ("arm64", Some("v8"))] {
        let mut descriptor = image_blobs(&dir, arch, format!("layer for {arch}").as_bytes());
        descriptor.platform = Some(Platform {
            architecture: arch.into(),
            os: "linux".into(),
            variant: variant.map(Into::into),
        });
        entries.push(descriptor);
    }
    let index = Index {
        schema_version: 2,
        media_type: Some(OCI_INDEX.into()),
        manifests: entries.clone(),
    };
    let mut root = blob(&dir, OCI_INDEX, &serde_json::to_vec(&index).expect("json"));
    root.annotations
        .insert("org.opencontainers.image.ref.name".into(), "multi".into());
    write_top_index(&dir, root.clone());

    let layout = OciLayout::open(&dir).expect("layout");
    let contents = layout.image(Some("multi")).expect("image");
    let repo = format!("multi/{}", unique("api"));
    let report = registry()
        .push_layout(&repo, &layout, &contents, "v1", &progress())
        .await
        .expect("push");
    assert_eq!(report.digest, root.digest);

    let raw = skopeo_inspect(&format!("{}/{repo}:v1", oci_registry().host), true)
        .expect("skopeo inspect --raw");
    let platforms: Vec<String> = raw["manifests"]
        .as_array()
        .expect("an index")
        .iter()
        .map(|m| {
            format!(
                "{}/{}",
                m["platform"]["os"].as_str().unwrap_or_default(),
                m["platform"]["architecture"].as_str().unwrap_or_default()
            )
        })
        .collect();
    assert_eq!(platforms, ["linux/amd64", "linux/arm64"]);
    for entry in &entries {
        let by_digest = skopeo_inspect(
            &format!("{}/{repo}@{}", oci_registry().host, entry.digest),
            true,
        )
        .expect("child manifest");
        assert_eq!(by_digest["layers"].as_array().map(Vec::len), Some(1));
    }
}

fn flaky_registry(fail_puts: u32) -> (Registry, deploy_tests::RegistryProxy) {
    let settings = RegistrySettings {
        attempts: 3,
        backoff: std::time::Duration::from_millis(10),
        ..RegistrySettings::default()
    };
    let options = deploy_tests::ProxyOptions {
        fail_puts,
        ..deploy_tests::ProxyOptions::default()
    };
    let (registry, proxy, _) = proxied(options, settings);
    (registry, proxy)
}

/// Checks, with skopeo, that `repo:v1` in the test registry is the image `digest`; returns
/// what skopeo said.
fn assert_in_registry(repo: &str, digest: &Digest) -> serde_json::Value {
    let inspected =
        skopeo_inspect(&format!("{}/{repo}:v1", oci_registry().host), false).expect("skopeo");
    assert_eq!(inspected["Digest"], digest.as_str());
    inspected
}

#[tokio::test]
async fn failed_uploads_are_retried() {
    let layout = OciLayout::open(&example()).expect("layout");
    let contents = layout.image(Some("latest")).expect("image");
    let (registry, proxy) = flaky_registry(2);
    let repo = format!("flaky/{}", unique("api"));
    let report = registry
        .push_layout(&repo, &layout, &contents, "v1", &progress())
        .await
        .expect("push succeeds after retries");
    assert_eq!(proxy.failed(), 2, "two uploads failed on purpose");
    assert_in_registry(&repo, &report.digest);
}

#[tokio::test]
async fn a_registry_that_keeps_failing_is_named_with_the_blob() {
    let layout = OciLayout::open(&example()).expect("layout");
    let contents = layout.image(Some("latest")).expect("image");
    let (registry, proxy) = flaky_registry(u32::MAX);
    let repo = format!("down/{}", unique("api"));
    let err = registry
        .push_layout(&repo, &layout, &contents, "v1", &progress())
        .await
        .expect_err("gives up");
    let text = err.to_string();
    assert!(text.contains(&proxy.host), "names the registry: {text}");
    assert!(
        contents
            .blobs
            .iter()
            .any(|b| text.contains(b.digest.as_str())),
        "names the blob: {text}"
    );
    assert!(
        skopeo_inspect(&format!("{}/{repo}:v1", oci_registry().host), true).is_err(),
        "no tag was moved"
    );
}

/// A `docker save` tarball in the legacy layout, made from the example image's blobs.
fn legacy_archive(dir: &Path) -> std::path::PathBuf {
    let layout = OciLayout::open(&example()).expect("layout");
    let contents = layout.image(Some("latest")).expect("image");
    let manifest: Manifest = serde_json::from_slice(&contents.manifests[0].1).expect("manifest");
    let read = |d: &Digest| std::fs::read(layout.blob_path(d)).expect("blob");
    let path = dir.join("image.tar");
    let mut tar = tar_builder(&path);
    let mut add = |name: &str, bytes: &[u8]| {
        let mut header = ::tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(&mut header, name, bytes).expect("append");
    };
    add("config.json", &read(&manifest.config.digest));
    add("layer1/layer.tar", &read(&manifest.layers[0].digest));
    add("manifest.json", br#"[{"Config":"config.json","RepoTags":["planwise/api:v1"],"Layers":["layer1/layer.tar"]}]"#);
    tar.finish().expect("finish");
    path
}

fn tar_builder(path: &Path) -> ::tar::Builder<std::fs::File> {
    ::tar::Builder::new(std::fs::File::create(path).expect("create tar"))
}

#[tokio::test]
async fn a_docker_save_archive_is_pushed_from_inside_the_tarball() {
    let dir = scratch_dir("archive");
    let path = legacy_archive(&dir);
    let mut archive =
        deploy_core::kinds::image::archive::DockerArchive::open(&path).expect("archive");
    let contents = archive.image(None).expect("image");
    let repo = format!("archive/{}", unique("api"));
    let report = registry()
        .push_layout(&repo, &archive, &contents, "v1", &progress())
        .await
        .expect("push");
    let inspected = assert_in_registry(&repo, &report.digest);
    assert_eq!(inspected["Layers"].as_array().map(Vec::len), Some(1));
}

/// Pushes the example image to a fresh repository and returns its name and the contents.
async fn seeded_repository() -> (String, deploy_core::kinds::image::ImageContents) {
    let layout = OciLayout::open(&example()).expect("layout");
    let contents = layout.image(Some("latest")).expect("image");
    let repo = format!("seed/{}", unique("api"));
    registry()
        .push_layout(&repo, &layout, &contents, "v1", &progress())
        .await
        .expect("seed");
    (repo, contents)
}

#[tokio::test]
async fn copying_within_one_registry_mounts_every_blob() {
    let (from, _) = seeded_repository().await;
    let source = registry();
    let contents = source
        .remote_image(&from, "v1")
        .await
        .expect("remote image");
    let to = format!("promoted/{}", unique("api"));
    let report = registry()
        .copy_image(&to, &source, &from, &contents, "v1", &progress())
        .await
        .expect("copy");
    assert_eq!(report.bytes_sent, 0, "no blob bytes cross the wire");
    assert!(
        report.blobs.iter().all(|b| b.action == BlobAction::Mounted),
        "{report:?}"
    );
    let copied =
        skopeo_inspect(&format!("{}/{to}:v1", oci_registry().host), false).expect("skopeo");
    let original =
        skopeo_inspect(&format!("{}/{from}:v1", oci_registry().host), false).expect("skopeo");
    assert_eq!(copied["Digest"], original["Digest"]);
}

#[tokio::test]
async fn copying_from_another_registry_streams_every_blob() {
    let (from, contents) = seeded_repository().await;
    // The same storage behind another address is another registry as far as the client knows.
    let proxy = deploy_tests::RegistryProxy::with(
        &oci_registry().host,
        deploy_tests::ProxyOptions::default(),
    );
    let source = Registry::new(
        &format!("http://{}", proxy.host),
        None,
        RegistrySettings::default(),
    )
    .expect("client");
    let remote = source
        .remote_image(&from, "v1")
        .await
        .expect("remote image");
    assert_eq!(remote.root.digest, contents.root.digest);
    let to = format!("copied/{}", unique("api"));
    let report = registry()
        .copy_image(&to, &source, &from, &remote, "v1", &progress())
        .await
        .expect("copy");
    assert_eq!(report.bytes_sent, contents.blob_bytes());
    let copied =
        skopeo_inspect(&format!("{}/{to}:v1", oci_registry().host), false).expect("skopeo");
    assert_eq!(copied["Digest"], contents.root.digest.as_str());
}

#[tokio::test]
async fn republishing_sends_no_upload_to_the_registry() {
    let layout = OciLayout::open(&example()).expect("layout");
    let contents = layout.image(Some("latest")).expect("image");
    let (registry, proxy) = flaky_registry(0);
    let repo = format!("counted/{}", unique("api"));
    registry
        .push_layout(&repo, &layout, &contents, "v1", &progress())
        .await
        .expect("first push");
    let first = proxy.forwarded_puts();
    assert_eq!(
        first as usize,
        contents.blobs.len(),
        "one upload per blob the first time"
    );
    registry
        .push_layout(&repo, &layout, &contents, "v1", &progress())
        .await
        .expect("republish");
    assert_eq!(
        proxy.forwarded_puts(),
        first,
        "the republish uploaded nothing"
    );
}

fn proxied(
    options: deploy_tests::ProxyOptions,
    settings: RegistrySettings,
) -> (Registry, deploy_tests::RegistryProxy, Option<Credentials>) {
    let proxy = deploy_tests::RegistryProxy::with(&oci_registry().host, options.clone());
    let credentials = options.auth.map(|a| Credentials {
        username: a.username,
        password: a.password,
    });
    let registry = Registry::new(
        &format!("http://{}", proxy.host),
        credentials.clone(),
        settings,
    )
    .expect("client");
    (registry, proxy, credentials)
}

#[tokio::test]
async fn streamed_and_chunked_uploads_send_every_byte_once_and_match_skopeo() {
    const MIB: usize = 1024 * 1024;
    let layout = sized_layout(12 * MIB + 12_345);
    let contents = layout.image(Some("latest")).expect("image");
    for (mode, part_size) in [
        (UploadMode::Streamed, 0),
        (UploadMode::Chunked, 5 * MIB as u64),
        (UploadMode::Chunked, 20 * MIB as u64),
    ] {
        let settings = RegistrySettings {
            upload: mode,
            part_size,
            ..RegistrySettings::default()
        };
        let (registry, proxy, _) = proxied(deploy_tests::ProxyOptions::default(), settings);
        let repo = format!("modes/{}", unique("api"));
        let report = registry
            .push_layout(&repo, &layout, &contents, "v1", &progress())
            .await
            .unwrap_or_else(|e| panic!("{mode:?} push: {e}"));
        assert_eq!(
            proxy.upload_bytes(),
            contents.blob_bytes(),
            "{mode:?} ({part_size}) sends each blob byte exactly once"
        );
        let inspected = skopeo_inspect(&format!("{}/{repo}:v1", oci_registry().host), false)
            .expect("skopeo inspect");
        assert_eq!(inspected["Digest"], report.digest.as_str(), "{mode:?}");
    }
}

#[tokio::test]
async fn a_corrupt_blob_in_a_chunked_upload_is_never_committed() {
    let layout = sized_layout(11 * 1024 * 1024);
    let contents = layout.image(Some("latest")).expect("image");
    // Past the first two 5 MiB parts: the corruption is only seen in the last part.
    let layer = corrupt_largest_blob(&layout, &contents, |len| len - 1);
    let settings = RegistrySettings {
        upload: UploadMode::Chunked,
        part_size: 5 * 1024 * 1024,
        ..RegistrySettings::default()
    };
    let (registry, _proxy, _) = proxied(deploy_tests::ProxyOptions::default(), settings);
    let repo = format!("chunk-corrupt/{}", unique("api"));
    let err = registry
        .push_layout(&repo, &layout, &contents, "v1", &progress())
        .await
        .expect_err("corrupt");
    assert!(
        matches!(err, RegistryError::Source(SourceError::Corrupt { .. })),
        "{err}"
    );
    assert!(
        !registry
            .blob_exists(&repo, &layer.digest)
            .await
            .expect("HEAD"),
        "the corrupt blob was not committed"
    );
    assert!(
        skopeo_inspect(&format!("{}/{repo}:v1", oci_registry().host), true).is_err(),
        "no tag was moved"
    );
}

fn bearer(password: &str, token_uses: u32) -> deploy_tests::ProxyOptions {
    deploy_tests::ProxyOptions {
        auth: Some(deploy_tests::BearerAuth {
            username: "ci".into(),
            password: password.into(),
            token_uses,
        }),
        ..deploy_tests::ProxyOptions::default()
    }
}

#[tokio::test]
async fn a_bearer_token_registry_is_pushed_to_with_tokens_from_its_realm() {
    let layout = OciLayout::open(&example()).expect("layout");
    let contents = layout.image(Some("latest")).expect("image");
    let (registry, proxy, _) = proxied(bearer("s3cret", 1000), RegistrySettings::default());
    let repo = format!("bearer/{}", unique("api"));
    let report = registry
        .push_layout(&repo, &layout, &contents, "v1", &progress())
        .await
        .expect("push with tokens");
    assert!(proxy.tokens_issued() >= 1);
    assert_in_registry(&repo, &report.digest);
}

#[tokio::test]
async fn expired_tokens_are_renewed_mid_push() {
    let layout = OciLayout::open(&example()).expect("layout");
    let contents = layout.image(Some("latest")).expect("image");
    // Every token is good for two requests: a push needs many more.
    let settings = RegistrySettings {
        parallel_blobs: 1,
        ..RegistrySettings::default()
    };
    let (registry, proxy, _) = proxied(bearer("s3cret", 2), settings);
    let repo = format!("expiring/{}", unique("api"));
    let report = registry
        .push_layout(&repo, &layout, &contents, "v1", &progress())
        .await
        .expect("push renews its token");
    assert!(
        proxy.tokens_issued() >= 3,
        "tokens issued: {}",
        proxy.tokens_issued()
    );
    assert!(proxy.refused() >= 2, "expired tokens were refused");
    assert_in_registry(&repo, &report.digest);
}

#[tokio::test]
async fn wrong_credentials_are_a_clear_error() {
    let layout = OciLayout::open(&example()).expect("layout");
    let contents = layout.image(Some("latest")).expect("image");
    let (registry, proxy, _) = proxied(bearer("s3cret", 1000), RegistrySettings::default());
    let wrong = Registry::new(
        &format!("http://{}", proxy.host),
        Some(Credentials {
            username: "ci".into(),
            password: "wrong".into(),
        }),
        RegistrySettings::default(),
    )
    .expect("client");
    drop(registry);
    let repo = format!("denied/{}", unique("api"));
    let err = wrong
        .push_layout(&repo, &layout, &contents, "v1", &progress())
        .await
        .expect_err("refused");
    assert!(matches!(err, RegistryError::Unauthorized { .. }), "{err}");
    let text = err.to_string();
    assert!(text.contains(&proxy.host), "{text}");
    assert!(
        !text.contains("wrong"),
        "the password is not printed: {text}"
    );
    assert_eq!(proxy.tokens_issued(), 0);
}

#[tokio::test]
async fn uploads_cut_by_a_reset_are_retried() {
    let layout = sized_layout(3 * 1024 * 1024);
    let contents = layout.image(Some("latest")).expect("image");
    let settings = RegistrySettings {
        attempts: 4,
        backoff: std::time::Duration::from_millis(10),
        ..RegistrySettings::default()
    };
    let (registry, proxy, _) = proxied(
        deploy_tests::ProxyOptions {
            reset_puts: 2,
            ..deploy_tests::ProxyOptions::default()
        },
        settings,
    );
    let repo = format!("reset/{}", unique("api"));
    let report = registry
        .push_layout(&repo, &layout, &contents, "v1", &progress())
        .await
        .expect("push succeeds after the resets");
    assert_eq!(proxy.failed(), 2, "two uploads were cut");
    assert_in_registry(&repo, &report.digest);
}

#[tokio::test]
async fn a_registry_refusing_monolithic_uploads_gets_streamed_ones() {
    let layout = sized_layout(2 * 1024 * 1024);
    let contents = layout.image(Some("latest")).expect("image");
    let (registry, proxy, _) = proxied(
        deploy_tests::ProxyOptions {
            refuse_monolithic: true,
            ..deploy_tests::ProxyOptions::default()
        },
        RegistrySettings {
            parallel_blobs: 1,
            ..RegistrySettings::default()
        },
    );
    assert_eq!(registry.upload_mode(), UploadMode::Monolithic);
    let repo = format!("patch-only/{}", unique("api"));
    let report = registry
        .push_layout(&repo, &layout, &contents, "v1", &progress())
        .await
        .expect("push falls back to PATCH");
    assert_eq!(proxy.refused(), 1, "one refusal, then every upload streams");
    assert_eq!(registry.upload_mode(), UploadMode::Streamed);
    assert_in_registry(&repo, &report.digest);
}

#[tokio::test]
async fn a_layer_whose_size_disagrees_with_the_registry_is_refused() {
    let layout = sized_layout(1000);
    let contents = layout.image(Some("latest")).expect("image");
    let repo = format!("sizes/{}", unique("api"));
    registry()
        .push_layout(&repo, &layout, &contents, "v1", &progress())
        .await
        .expect("the honest image");
    // The same blobs, under a manifest that says the layer is one byte longer.
    let mut manifest: Manifest = serde_json::from_slice(&contents.manifests[0].1).expect("json");
    manifest.layers[0].size += 1;
    let bytes = serde_json::to_vec(&manifest).expect("json");
    let root = Descriptor {
        media_type: OCI_MANIFEST.into(),
        digest: Digest::of(&bytes),
        size: bytes.len() as u64,
        platform: None,
        annotations: Default::default(),
    };
    let lying = ImageContents {
        root: root.clone(),
        manifests: vec![(root, bytes)],
        blobs: vec![manifest.config.clone(), manifest.layers[0].clone()],
    };
    let err = registry()
        .push_layout(&repo, &layout, &lying, "v2", &progress())
        .await
        .expect_err("refused");
    assert!(matches!(err, RegistryError::SizeMismatch { .. }), "{err}");
    assert!(
        skopeo_inspect(&format!("{}/{repo}:v2", oci_registry().host), true).is_err(),
        "no tag was moved"
    );
}

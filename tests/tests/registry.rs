//! Pushing images over the OCI distribution protocol to a real registry (Debian's
//! docker-registry), read back with skopeo.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use deploy_core::artifact::image::SourceError;
use deploy_core::artifact::image::layout::OciLayout;
use deploy_core::events::NoReporter;
use deploy_core::oci::{Descriptor, Digest, Index, Manifest, OCI_INDEX, OCI_MANIFEST, Platform};
use deploy_core::registry::{BlobAction, Progress, Registry, RegistryError, RegistrySettings};
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

#[tokio::test]
async fn a_corrupt_blob_stops_the_push_before_any_manifest() {
    let dir = scratch_dir("corrupt-layout");
    copy_dir(&example(), &dir);
    let layout = OciLayout::open(&dir).expect("layout");
    let contents = layout.image(Some("latest")).expect("image");
    let layer = contents
        .blobs
        .iter()
        .max_by_key(|b| b.size)
        .expect("a layer")
        .clone();
    let path = layout.blob_path(&layer.digest);
    let mut bytes = std::fs::read(&path).expect("read");
    bytes[0] ^= 0xff;
    std::fs::write(&path, bytes).expect("corrupt, same size");

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

fn blob(dir: &Path, media_type: &str, bytes: &[u8]) -> Descriptor {
    let digest = Digest::of(bytes);
    std::fs::write(dir.join("blobs/sha256").join(digest.hex()), bytes).expect("write blob");
    Descriptor {
        media_type: media_type.into(),
        digest,
        size: bytes.len() as u64,
        platform: None,
        annotations: BTreeMap::new(),
    }
}

#[tokio::test]
async fn a_multi_platform_index_round_trips_with_every_platform() {
    let dir = scratch_dir("index-layout");
    std::fs::create_dir_all(dir.join("blobs/sha256")).expect("mkdir");
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).expect("write");
    let mut entries = Vec::new();
    for (arch, variant) in [("amd64", None), ("arm64", Some("v8"))] {
        let config = blob(&dir, "application/vnd.oci.image.config.v1+json", format!(r#"{{"architecture":"{arch}","os":"linux","rootfs":{{"type":"layers","diff_ids":[]}}}}"#).as_bytes());
        let layer = blob(
            &dir,
            "application/vnd.oci.image.layer.v1.tar",
            format!("layer for {arch}").as_bytes(),
        );
        let manifest = Manifest {
            schema_version: 2,
            media_type: Some(OCI_MANIFEST.into()),
            config,
            layers: vec![layer],
        };
        let mut descriptor = blob(
            &dir,
            OCI_MANIFEST,
            &serde_json::to_vec(&manifest).expect("json"),
        );
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
    let top = Index {
        schema_version: 2,
        media_type: Some(OCI_INDEX.into()),
        manifests: vec![root.clone()],
    };
    std::fs::write(
        dir.join("index.json"),
        serde_json::to_vec(&top).expect("json"),
    )
    .expect("write");

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

fn flaky_registry(fail_puts: u32) -> (Registry, deploy_tests::FlakyProxy) {
    let proxy = deploy_tests::FlakyProxy::start(&oci_registry().host, fail_puts);
    let settings = RegistrySettings {
        attempts: 3,
        backoff: std::time::Duration::from_millis(10),
        ..RegistrySettings::default()
    };
    let registry =
        Registry::new(&format!("http://{}", proxy.host), None, settings).expect("client");
    (registry, proxy)
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
    let inspected =
        skopeo_inspect(&format!("{}/{repo}:v1", oci_registry().host), false).expect("skopeo");
    assert_eq!(inspected["Digest"], report.digest.as_str());
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
        deploy_core::artifact::image::archive::DockerArchive::open(&path).expect("archive");
    let contents = archive.image(None).expect("image");
    let repo = format!("archive/{}", unique("api"));
    let report = registry()
        .push_layout(&repo, &archive, &contents, "v1", &progress())
        .await
        .expect("push");
    let inspected =
        skopeo_inspect(&format!("{}/{repo}:v1", oci_registry().host), false).expect("skopeo");
    assert_eq!(inspected["Digest"], report.digest.as_str());
    assert_eq!(inspected["Layers"].as_array().map(Vec::len), Some(1));
}

/// Pushes the example image to a fresh repository and returns its name and the contents.
async fn seeded_repository() -> (String, deploy_core::artifact::image::ImageContents) {
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
    let proxy = deploy_tests::FlakyProxy::start(&oci_registry().host, 0);
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

//! What the registry client refuses to send or print: names outside the distribution
//! grammar (refused before any request), upload locations on another host, and credentials in
//! a registry address (never in an error, a Debug print or the binary's output).

use std::sync::Arc;

use deploy_core::events::NoReporter;
use deploy_core::kinds::image::BlobStore;
use deploy_core::oci::OCI_MANIFEST;
use deploy_core::registry::{
    BlobAction, BlobSource, Progress, Registry, RegistryError, RegistrySettings,
};
use deploy_tests::fault_proxy::{FaultProxy, Faults, ScriptedServer, reply};
use deploy_tests::layouts::sized_layout;
use deploy_tests::{oci_registry, scratch_dir, unique};

fn progress() -> Progress<'static> {
    Progress {
        artifact: "api",
        reporter: Arc::new(NoReporter),
    }
}

fn counted_registry() -> (Registry, FaultProxy) {
    let counter = FaultProxy::start(&oci_registry().host, Faults::none());
    let registry = Registry::new(
        &format!("http://{}", counter.host),
        None,
        RegistrySettings::default(),
    )
    .expect("client");
    (registry, counter)
}

fn refused(result: Result<impl std::fmt::Debug, RegistryError>, what: &str) {
    match result {
        Err(RegistryError::InvalidName { .. }) => {}
        other => panic!("{what}: expected a refused name, got {other:?}"),
    }
}

#[tokio::test]
async fn names_outside_the_grammar_are_refused_before_any_request() {
    let layout = sized_layout(16);
    let contents = layout.image(Some("latest")).expect("image");
    let (registry, counter) = counted_registry();
    let long = "a".repeat(300);
    let references = [
        "x/../../../other/manifests/v10",
        "v7?x=1",
        "v1\nv2",
        "",
        long.as_str(),
        "feature/x",
        "väter",
        "v1#x",
        "sha256:abc",
    ];
    for bad in references {
        refused(registry.manifest_digest("ok/repo", bad).await, bad);
        refused(registry.get_manifest("ok/repo", bad).await, bad);
        refused(
            registry
                .put_manifest("ok/repo", bad, OCI_MANIFEST, b"{}")
                .await,
            bad,
        );
        refused(registry.remote_image("ok/repo", bad).await, bad);
        refused(
            registry
                .push_layout("ok/repo", &layout, &contents, bad, &progress())
                .await,
            bad,
        );
    }
    let digest = &contents.blobs[0].digest;
    for bad in [
        "x/../../../other",
        "Upper/case",
        "a?b=c",
        "",
        long.as_str(),
        "é/x",
        "a/b\n",
        "a//b",
    ] {
        refused(registry.manifest_digest(bad, "v1").await, bad);
        refused(registry.blob_exists(bad, digest).await, bad);
        refused(registry.blob_stream(bad, digest).await.map(drop), bad);
        refused(
            registry
                .push_layout(bad, &layout, &contents, "v1", &progress())
                .await,
            bad,
        );
    }
    let err = registry
        .manifest_digest("ok/repo", "v1\nv2")
        .await
        .expect_err("refused");
    assert!(!err.to_string().contains('\n'), "{err}");
    assert_eq!(counter.requests(), 0, "no request reached the registry");
}

#[tokio::test]
async fn an_upload_sent_to_another_host_is_refused_and_a_relative_one_followed() {
    let elsewhere = deploy_tests::RecordingEndpoint::start();
    let foreign = format!("{}/v2/x/blobs/uploads/1", elsewhere.url);
    let to_foreign = ScriptedServer::start(move |head| {
        if head.starts_with("POST ") {
            reply("202 Accepted", &format!("location: {foreign}\r\n"), "")
        } else {
            reply("404 Not Found", "", "")
        }
    });
    let layout = sized_layout(32);
    let contents = layout.image(Some("latest")).expect("image");
    let settings = RegistrySettings {
        backoff: std::time::Duration::from_millis(1),
        ..RegistrySettings::default()
    };
    let registry = Registry::new(
        &format!("http://{}", to_foreign.host),
        None,
        settings.clone(),
    )
    .expect("client");
    let err = registry
        .push_layout("scripted/repo", &layout, &contents, "v1", &progress())
        .await
        .expect_err("refused");
    assert!(
        matches!(err, RegistryError::ForeignLocation { .. }),
        "{err}"
    );
    assert_eq!(elsewhere.hits(), 0, "nothing went to the other host");

    let relative = ScriptedServer::start(|head| match head.split(' ').next() {
        Some("POST") => reply(
            "202 Accepted",
            "location: /v2/scripted/repo/blobs/uploads/abc?_state=s\r\n",
            "",
        ),
        Some("PUT") => reply("201 Created", "", ""),
        _ => reply("404 Not Found", "", ""),
    });
    let registry =
        Registry::new(&format!("http://{}", relative.host), None, settings).expect("client");
    let blob = &contents.blobs[0];
    let source = BlobSource::Local(layout.locate(&blob.digest).expect("blob"));
    let action = registry
        .push_blob("scripted/repo", blob, &source, None, &progress())
        .await
        .expect("uploaded");
    assert_eq!(action, BlobAction::Sent);
    let expected = format!(
        "PUT /v2/scripted/repo/blobs/uploads/abc?_state=s&digest=sha256%3A{} HTTP/1.1",
        blob.digest.hex()
    );
    assert!(
        relative.requests().contains(&expected),
        "{:?}",
        relative.requests()
    );
}

#[tokio::test]
async fn credentials_in_a_registry_address_are_never_printed() {
    let dead = deploy_tests::free_port();
    let settings = RegistrySettings {
        attempts: 2,
        backoff: std::time::Duration::from_millis(1),
        ..RegistrySettings::default()
    };
    let registry = Registry::new(
        &format!("http://user:s3cr3t@127.0.0.1:{dead}"),
        None,
        settings,
    )
    .expect("client");
    assert!(!format!("{registry:?}").contains("s3cr3t"), "{registry:?}");
    let err = registry
        .manifest_digest("t/app", "v1")
        .await
        .expect_err("nothing listens");
    let mut texts = vec![err.to_string(), format!("{err:?}")];
    let mut cause = std::error::Error::source(&err);
    while let Some(c) = cause {
        texts.push(c.to_string());
        cause = c.source();
    }
    for text in &texts {
        assert!(!text.contains("s3cr3t"), "{text}");
    }
    assert!(texts[0].contains(&format!("127.0.0.1:{dead}")), "{texts:?}");
}

/// Credentials written into a registry address are refused before anything runs (exit 2,
/// pointing at a login file), and the secret appears in no output mode, dry run included.
#[tokio::test(flavor = "multi_thread")]
async fn credentials_in_a_registry_address_stay_out_of_the_binary_output() {
    let url = deploy_tests::moto().url.clone();
    let bucket = unique("redact-state");
    deploy_tests::create_bucket(&url, &bucket).await;
    let repo = format!("redact/{}", unique("api"));
    let dir = scratch_dir("redact");
    deploy_tests::layouts::tiny_layout(&dir.join("layout"), b"redacted");
    let host = "127.0.0.1:9";
    let sources = [
        (
            format!("http://{host}"),
            format!("docker://user:s3cr3t@{host}/t/app:1"),
        ),
        (
            format!("http://user:s3cr3t@{host}"),
            "oci:./layout:latest".to_owned(),
        ),
    ];
    for (endpoint, source) in sources {
        let config = dir.join("deploy.toml");
        std::fs::write(
            &config,
            format!(
                "project = \"t\"\n[environments.dev]\nregion = \"{}\"\naccount = \"{}\"\nstate_bucket = \"{bucket}\"\nendpoints = {{ registry = \"{endpoint}\" }}\n[artifacts.api]\nkind = \"image\"\nrepository = \"{repo}\"\nsource = \"{source}\"\n",
                deploy_tests::REGION,
                deploy_tests::ACCOUNT
            ),
        )
        .expect("config");
        for output in ["human", "json"] {
            for extra in [&[][..], &["--dry-run"][..]] {
                let out = deploy_tests::deploy(&url)
                    .arg("--config")
                    .arg(&config)
                    .args([
                        "--output",
                        output,
                        "publish",
                        "dev",
                        "api",
                        "--version",
                        "v1",
                    ])
                    .args(extra)
                    .output()
                    .expect("run deploy");
                let text = format!(
                    "{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
                let case = format!("{source} / {output} {extra:?}");
                assert!(!text.contains("s3cr3t"), "{case}: {text}");
                assert_eq!(out.status.code(), Some(2), "{case}: {text}");
                assert!(text.contains("docker login"), "{case}: {text}");
            }
        }
    }
}

/// With no `endpoints.registry`, `$DEPLOY_ENDPOINT_URL_REGISTRY` (what `. .emulators/env` sets)
/// names the registry images go to; a value that is not an address is bad input (exit 2).
#[tokio::test(flavor = "multi_thread")]
async fn the_registry_can_come_from_the_environment() {
    let project = deploy_tests::image_project("regenv").await;
    let config = project.dir.join("deploy.toml");
    let text = deploy_tests::dev_head(&project.bucket, "")
        + &format!(
            "[artifacts.api]\nkind = \"image\"\nrepository = \"{}\"\nsource = \"oci:./layout:latest\"\n",
            project.repo
        );
    std::fs::write(&config, text).expect("write config");
    let host = deploy_tests::oci_registry().host.clone();
    let publish = |registry: &str| {
        deploy_tests::deploy(&deploy_tests::moto().url)
            .arg("--config")
            .arg(&config)
            .args(["publish", "dev", "api", "--version", "v1"])
            .env("DEPLOY_ENDPOINT_URL_REGISTRY", registry)
            .output()
            .expect("run deploy")
    };
    let bad = publish("http://user:secret@somewhere");
    assert_eq!(
        bad.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(
        stderr.contains("DEPLOY_ENDPOINT_URL_REGISTRY") && !stderr.contains("secret"),
        "{stderr}"
    );

    let out = publish(&format!("http://{host}"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pushed = deploy_tests::skopeo_inspect(&format!("{host}/{}:v1", project.repo), false)
        .expect("the image is in the registry the variable names");
    assert!(
        pushed["Digest"]
            .as_str()
            .is_some_and(|d| d.starts_with("sha256:")),
        "{pushed}"
    );
}

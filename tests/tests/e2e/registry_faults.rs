//! Every registry request is retried: `deploy publish` and the registry client through a
//! proxy that injects `503`s and connection resets (before the registry sees the request, and
//! after it acted) at 10% and 30% of requests; the results are checked with skopeo.

use std::sync::Arc;

use deploy_core::events::NoReporter;
use deploy_core::oci::Digest;
use deploy_core::registry::{Credentials, Progress, Registry, RegistrySettings};
use deploy_tests::fault_proxy::{Fault, FaultProxy, Faults};
use deploy_tests::layouts::sized_layout;
use deploy_tests::{oci_registry, scratch_dir, skopeo_inspect, unique};

fn progress() -> Progress<'static> {
    Progress {
        artifact: "api",
        reporter: Arc::new(NoReporter),
    }
}

/// Publishes `runs` tiny images with `deploy publish` through a proxy injecting `kind` faults
/// in `rate` of the registry requests; checks each published image with skopeo (digest, and
/// every blob pulled and verified). Returns how many publishes succeeded.
fn publish_through_faults(rate: f64, kind: Fault, runs: usize) -> usize {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let url = deploy_tests::moto().url.clone();
    let bucket = unique("faults-state");
    let repo = format!("faults/{}", unique("api"));
    runtime.block_on(deploy_tests::create_bucket(&url, &bucket));
    runtime.block_on(deploy_tests::create_repository(&url, &repo));
    let seed = 0x5eed ^ (rate * 100.0) as u64 ^ (kind as u64) << 8;
    let proxy = FaultProxy::start(
        &oci_registry().host,
        Faults {
            rate,
            kinds: vec![kind],
            seed,
        },
    );
    let dir = scratch_dir("faults");
    let config = dir.join("deploy.toml");
    std::fs::write(
        &config,
        format!(
            "project = \"t\"\n[environments.dev]\nregion = \"{}\"\naccount = \"{}\"\nstate_bucket = \"{bucket}\"\nendpoints = {{ registry = \"http://{}\" }}\n[artifacts.api]\nkind = \"image\"\nrepository = \"{repo}\"\nsource = \"oci:./layout:latest\"\n",
            deploy_tests::REGION,
            deploy_tests::ACCOUNT,
            proxy.host
        ),
    )
    .expect("config");
    let mut succeeded = 0;
    for run in 0..runs {
        let layer = format!("{kind:?} at {rate}, run {run}, {}", unique("layer"));
        let expected = deploy_tests::layouts::tiny_layout(&dir.join("layout"), layer.as_bytes());
        let version = format!("v{run}");
        let out = deploy_tests::deploy(&url)
            .arg("--config")
            .arg(&config)
            .args(["publish", "dev", "api", "--version", &version])
            .output()
            .expect("run deploy");
        if !out.status.success() {
            eprintln!(
                "{kind:?} at {rate}: publish {run} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            continue;
        }
        let image = format!("{}/{repo}:{version}", oci_registry().host);
        assert_complete(&image, &expected);
        succeeded += 1;
    }
    assert!(proxy.injected(kind) > 0, "{kind:?} faults were injected");
    eprintln!(
        "{kind:?} at {rate}: {succeeded}/{runs} published, {} of {} requests faulted",
        proxy.injected(kind),
        proxy.requests()
    );
    succeeded
}

/// `image` in the test registry is `digest`, and every blob of it can be pulled and matches
/// its digest (skopeo verifies them).
fn assert_complete(image: &str, digest: &Digest) {
    let inspected = skopeo_inspect(image, false).expect("skopeo inspect");
    assert_eq!(inspected["Digest"], digest.as_str(), "{image}");
    let copy = scratch_dir("pulled");
    let out = std::process::Command::new("skopeo")
        .args(["copy", "--src-tls-verify=false"])
        .arg(format!("docker://{image}"))
        .arg(format!("dir:{}", copy.display()))
        .output()
        .expect("run skopeo copy");
    assert!(
        out.status.success(),
        "{image} pulls whole: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn every_publish_survives_10_percent_registry_faults() {
    let published: usize = Fault::ALL
        .into_iter()
        .map(|kind| publish_through_faults(0.10, kind, 5))
        .sum();
    assert_eq!(published, 15);
}

#[test]
fn publishes_survive_30_percent_registry_faults() {
    let published: usize = Fault::ALL
        .into_iter()
        .map(|kind| publish_through_faults(0.30, kind, 5))
        .sum();
    assert!(published >= 14, "{published} of 15 published");
}

#[tokio::test]
async fn pushes_copies_and_tokens_survive_faults_on_every_request() {
    let layout = sized_layout(2048);
    let contents = layout.image(Some("latest")).expect("image");
    let tokens = deploy_tests::RegistryProxy::with(
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
    let faulty = FaultProxy::start(
        &tokens.host,
        Faults {
            rate: 0.3,
            kinds: Fault::ALL.to_vec(),
            seed: 7,
        },
    );
    let settings = RegistrySettings {
        backoff: std::time::Duration::from_millis(5),
        ..RegistrySettings::default()
    };
    let registry = Registry::new(
        &format!("http://{}", faulty.host),
        Some(Credentials {
            username: "ci".into(),
            password: "s3cret".into(),
        }),
        settings,
    )
    .expect("client");
    let repo = format!("faulty/{}", unique("api"));
    let pushed = registry
        .push_layout(&repo, &layout, &contents, "v1", &progress())
        .await
        .expect("push");
    let remote = registry.remote_image(&repo, "v1").await.expect("read back");
    assert_eq!(remote.root.digest, pushed.digest);
    let to = format!("faulty-copy/{}", unique("api"));
    let copied = registry
        .copy_image(&to, &registry, &repo, &remote, "v1", &progress())
        .await
        .expect("copy");
    // A mount whose answer a fault ate falls back to an upload, so under faults the copy may
    // send bytes; what matters is that both images are complete (checked below).
    assert_eq!(copied.digest, pushed.digest);
    for image in [&repo, &to] {
        assert_complete(
            &format!("{}/{image}:v1", oci_registry().host),
            &pushed.digest,
        );
    }
    assert!(tokens.tokens_issued() >= 1);
    for kind in Fault::ALL {
        assert!(faulty.injected(kind) > 0, "{kind:?} injected");
    }
}

#[tokio::test]
async fn a_registry_that_never_answers_times_out_and_is_named() {
    let silent = deploy_tests::fault_proxy::ScriptedServer::start(|_| {
        std::thread::sleep(std::time::Duration::from_secs(30));
        deploy_tests::fault_proxy::reply("404 Not Found", "", "")
    });
    let settings = RegistrySettings {
        attempts: 2,
        backoff: std::time::Duration::from_millis(1),
        timeout: std::time::Duration::from_millis(300),
        ..RegistrySettings::default()
    };
    let registry =
        Registry::new(&format!("http://{}", silent.host), None, settings).expect("client");
    let started = std::time::Instant::now();
    let err = registry
        .manifest_digest("t/app", "v1")
        .await
        .expect_err("no answer");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let text = err.to_string();
    assert!(
        text.contains(&silent.host) && text.contains("after 2 attempts"),
        "{text}"
    );
    assert_eq!(silent.requests().len(), 2, "tried twice");
}

//! `deploy promote`: images copied by digest from the source environment's live release, read
//! back with skopeo and the AWS APIs; approval, `promote_from` and the scan gate.

use std::path::PathBuf;
use std::process::Output;

use deploy_tests::{
    ProxyOptions, REGION, RegistryProxy, copy_dir, create_bucket, create_repository, deploy, ecr,
    get_json, list_keys, moto, oci_registry, scratch_dir, skopeo_inspect, start_oci_registry,
    unique, workspace_root,
};

/// dev, staging and prod of project `t`, each with its own state bucket and its own repository
/// `<env>/<name>`; staging and prod push to the registries given.
struct Project {
    config: PathBuf,
    name: String,
    buckets: [String; 3],
}

impl Project {
    async fn new(staging_registry: &str, prod_registry: &str, scan: &str) -> Project {
        let url = moto().url.clone();
        let name = unique("api");
        let mut buckets = Vec::new();
        for env in ["dev", "staging", "prod"] {
            let bucket = unique(&format!("promote-{env}"));
            create_bucket(&url, &bucket).await;
            create_repository(&url, &format!("{env}/{name}")).await;
            buckets.push(bucket);
        }
        let dir = scratch_dir("promote");
        copy_dir(
            &workspace_root().join("examples/planwise/build/api"),
            &dir.join("layout"),
        );
        let env = |env: &str, bucket: &str, registry: &str, extra: &str| {
            format!(
                "[environments.{env}]\nregion = \"{REGION}\"\naccount = \"123456789012\"\nstate_bucket = \"{bucket}\"\nendpoints = {{ registry = \"http://{registry}\" }}\n{extra}"
            )
        };
        let text = [
            "project = \"t\"\n[settings]\npoll_interval = \"100ms\"\nscan_timeout = \"20s\"\n".to_owned(),
            env("dev", &buckets[0], &oci_registry().host, ""),
            env("staging", &buckets[1], staging_registry, ""),
            env(
                "prod",
                &buckets[2],
                prod_registry,
                "promote_from = \"staging\"\napproval = true\n",
            ),
            format!(
                "[artifacts.api]\nkind = \"image\"\nrepository = \"{{env}}/{name}\"\nsource = \"oci:./layout:latest\"\nscan = \"{scan}\"\nrollout = {{ strategy = \"none\" }}\n"
            ),
        ]
        .join("\n");
        let config = dir.join("deploy.toml");
        std::fs::write(&config, text).expect("write config");
        Project {
            config,
            name,
            buckets: buckets.try_into().expect("three buckets"),
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        deploy(&moto().url)
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .output()
            .expect("run deploy")
    }

    fn repo(&self, env: &str) -> String {
        format!("{env}/{}", self.name)
    }

    fn bucket(&self, env: &str) -> &str {
        let index = ["dev", "staging", "prod"]
            .iter()
            .position(|e| *e == env)
            .expect("known environment");
        &self.buckets[index]
    }

    async fn live(&self, env: &str) -> serde_json::Value {
        get_json(
            &moto().url,
            self.bucket(env),
            &format!("deploy/t/{env}/artifacts/api/live.json"),
        )
        .await
    }

    async fn records(&self, env: &str) -> Vec<String> {
        list_keys(
            &moto().url,
            self.bucket(env),
            &format!("deploy/t/{env}/artifacts/api/releases/"),
        )
        .await
    }
}

fn ok(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout: {}\nstderr: {stderr}",
        String::from_utf8_lossy(&out.stdout)
    );
    stderr
}

fn failed(out: &Output, code: i32) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(code), "{stderr}");
    stderr
}

fn digest(registry: &str, image: &str) -> String {
    skopeo_inspect(&format!("{registry}/{image}"), false).expect("skopeo inspect")["Digest"]
        .as_str()
        .expect("digest")
        .to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn promotion_within_one_registry_mounts_every_blob_and_sends_no_bytes() {
    let proxy = RegistryProxy::with(&oci_registry().host, ProxyOptions::default());
    let project = Project::new(&proxy.host, &proxy.host, "none").await;
    ok(&project.run(&["release", "staging", "api", "--version", "v7"]));
    let staging = digest(
        &oci_registry().host,
        &format!("{}:v7", project.repo("staging")),
    );
    let sent_by_release = proxy.upload_bytes();
    assert!(sent_by_release > 0);

    // prod needs approval: without it nothing happens.
    let stderr = failed(&project.run(&["promote", "staging", "prod", "api"]), 5);
    assert!(stderr.contains("--approve"), "{stderr}");
    assert!(project.records("prod").await.is_empty());

    ok(&project.run(&["promote", "staging", "prod", "api", "--approve"]));
    assert_eq!(
        proxy.upload_bytes(),
        sent_by_release,
        "promotion within one registry sends no blob bytes"
    );
    assert!(
        proxy.mounts() >= 2,
        "blobs were mounted: {}",
        proxy.mounts()
    );
    let prod = digest(
        &oci_registry().host,
        &format!("{}:v7", project.repo("prod")),
    );
    assert_eq!(prod, staging, "prod runs exactly what staging runs");

    let live = project.live("prod").await;
    assert_eq!(live["artifact_ref"]["digest"], staging.as_str());
    assert_eq!(live["artifact_ref"]["content_id"], staging.as_str());
    assert_eq!(live["artifact_ref"]["repository"], project.repo("prod"));
    assert_eq!(live["operation"], "promote");
    assert_eq!(live["version"], "v7");
    let record = get_json(
        &moto().url,
        project.bucket("prod"),
        live["record_key"].as_str().expect("key"),
    )
    .await;
    assert_eq!(record["source_environment"], "staging");
    assert_eq!(record["outcome"]["result"], "succeeded", "{record}");

    // Promoting again is a no-op on the registry and one more record.
    ok(&project.run(&["promote", "staging", "prod", "api", "--approve"]));
    assert_eq!(proxy.upload_bytes(), sent_by_release);
    assert_eq!(project.records("prod").await.len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn promotion_to_another_registry_streams_blobs_and_keeps_the_digest() {
    let other = start_oci_registry();
    let proxy = RegistryProxy::with(&other.host, ProxyOptions::default());
    let project = Project::new(&oci_registry().host, &proxy.host, "none").await;
    ok(&project.run(&["release", "staging", "api", "--version", "v1"]));
    let staging = digest(
        &oci_registry().host,
        &format!("{}:v1", project.repo("staging")),
    );
    let blob_bytes: u64 = {
        let raw = skopeo_inspect(
            &format!("{}/{}:v1", oci_registry().host, project.repo("staging")),
            true,
        )
        .expect("raw manifest");
        std::iter::once(&raw["config"])
            .chain(raw["layers"].as_array().expect("layers"))
            .map(|d| d["size"].as_u64().expect("size"))
            .sum()
    };

    let out = project.run(&[
        "--output",
        "json",
        "promote",
        "staging",
        "prod",
        "--approve",
    ]);
    ok(&out);
    assert_eq!(proxy.mounts(), 0, "nothing to mount across registries");
    assert_eq!(proxy.upload_bytes(), blob_bytes, "every blob streamed once");
    let prod = digest(&other.host, &format!("{}:v1", project.repo("prod")));
    assert_eq!(prod, staging);

    // The JSON result names each blob and what was done with it.
    let stdout = String::from_utf8_lossy(&out.stdout);
    let document: serde_json::Value = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v.get("images").is_some())
        .expect("the result document");
    let image = &document["images"][0];
    assert_eq!(image["digest"], staging.as_str());
    assert_eq!(image["bytes_sent"], blob_bytes);
    assert!(
        image["blobs"]
            .as_array()
            .expect("blobs")
            .iter()
            .all(|b| b["action"] == "sent")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn promotion_needs_something_live_and_follows_promote_from() {
    let project = Project::new(&oci_registry().host, &oci_registry().host, "none").await;
    let stderr = failed(
        &project.run(&["promote", "staging", "prod", "--approve"]),
        1,
    );
    assert!(
        stderr.contains("nothing of api is live in staging"),
        "{stderr}"
    );

    ok(&project.run(&["release", "dev", "api", "--version", "v1"]));
    let stderr = failed(&project.run(&["promote", "dev", "prod", "--approve"]), 2);
    assert!(stderr.contains("promote_from"), "{stderr}");
    assert!(stderr.contains("deploy promote staging prod"), "{stderr}");
    let stderr = failed(
        &project.run(&["publish", "prod", "api", "--version", "v1"]),
        2,
    );
    assert!(stderr.contains("deploy promote staging prod"), "{stderr}");
    let stderr = failed(&project.run(&["promote", "dev", "dev"]), 2);
    assert!(stderr.contains("itself"), "{stderr}");
    assert!(project.records("prod").await.is_empty());

    // dev -> staging has no promote_from and no approval.
    ok(&project.run(&["promote", "dev", "staging"]));
    assert_eq!(
        project.live("staging").await["artifact_ref"]["digest"],
        project.live("dev").await["artifact_ref"]["digest"]
    );
}

/// Makes moto's ECR know, in `env`'s repository, the image `pushed_in`'s repository holds under
/// `v1` (a real ECR learns it from the push) and answer its scan with one `severity` finding
/// and three LOW ones.
async fn seed_scan(project: &Project, pushed_in: &str, env: &str, severity: &str) -> String {
    let repo = project.repo(env);
    let raw = std::process::Command::new("skopeo")
        .args(["inspect", "--tls-verify=false", "--raw"])
        .arg(format!(
            "docker://{}/{}:v1",
            oci_registry().host,
            project.repo(pushed_in)
        ))
        .output()
        .expect("skopeo");
    let manifest = String::from_utf8(raw.stdout).expect("manifest");
    let digest = digest(
        &oci_registry().host,
        &format!("{}:v1", project.repo(pushed_in)),
    );
    ecr(&moto().url)
        .await
        .put_image()
        .repository_name(&repo)
        .image_manifest(&manifest)
        .image_tag("v1")
        .image_digest(&digest)
        .send()
        .await
        .expect("put image into moto");
    let findings = serde_json::json!({
        "region": REGION,
        "results": [{
            "registryId": "123456789012",
            "repositoryName": repo,
            "imageId": {"imageDigest": digest},
            "imageScanStatus": {"status": "COMPLETE", "description": "done"},
            "imageScanFindings": {
                "findingSeverityCounts": {severity: 1, "LOW": 3},
                "findings": [{
                    "name": "CVE-2026-0001",
                    "severity": severity,
                    "attributes": [
                        {"key": "package_name", "value": "openssl"},
                        {"key": "package_version", "value": "3.0.1"}
                    ]
                }]
            }
        }]
    });
    let status = deploy_tests::http_post_json(
        &moto().url,
        "/moto-api/static/ecr/scan-finding-results",
        &findings,
    );
    assert_eq!(status, Some(201), "configure moto's scan findings");
    digest
}

#[tokio::test(flavor = "multi_thread")]
async fn a_critical_finding_blocks_the_promotion_before_prod_changes() {
    let project = Project::new(&oci_registry().host, &oci_registry().host, "block-critical").await;
    ok(&project.run(&["release", "staging", "api", "--version", "v1"]));
    seed_scan(&project, "staging", "staging", "CRITICAL").await;

    let stderr = failed(
        &project.run(&["promote", "staging", "prod", "--approve"]),
        6,
    );
    assert!(stderr.contains("1 CRITICAL, 3 LOW"), "{stderr}");
    assert!(
        stderr.contains("CVE-2026-0001 in openssl 3.0.1"),
        "{stderr}"
    );
    assert!(
        skopeo_inspect(
            &format!("{}/{}:v1", oci_registry().host, project.repo("prod")),
            true
        )
        .is_err(),
        "nothing was copied to prod"
    );
    // The ledger says what happened: a failed promotion, and nothing live.
    let records = project.records("prod").await;
    assert_eq!(records.len(), 1, "{records:?}");
    let record = get_json(&moto().url, project.bucket("prod"), &records[0]).await;
    assert_eq!(record["operation"], "promote");
    assert_eq!(record["outcome"]["result"], "failed", "{record}");
    let live = list_keys(
        &moto().url,
        project.bucket("prod"),
        "deploy/t/prod/artifacts/api/live.json",
    )
    .await;
    assert!(live.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn findings_below_the_gate_are_reported_and_let_through() {
    let project = Project::new(&oci_registry().host, &oci_registry().host, "block-critical").await;
    ok(&project.run(&["release", "staging", "api", "--version", "v1"]));
    let digest = seed_scan(&project, "staging", "staging", "HIGH").await;
    let out = project.run(&["promote", "staging", "prod", "--approve"]);
    ok(&out);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("1 HIGH, 3 LOW"), "{stdout}");
    assert_eq!(
        project.live("prod").await["artifact_ref"]["digest"],
        digest.as_str()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn scan_on_publish_stops_a_release_before_it_goes_live() {
    let project = Project::new(&oci_registry().host, &oci_registry().host, "block-critical").await;
    ok(&project.run(&["release", "dev", "api", "--version", "v1"]));
    seed_scan(&project, "dev", "staging", "CRITICAL").await;
    let text = std::fs::read_to_string(&project.config)
        .expect("config")
        .replace(
            "scan = \"block-critical\"\n",
            "scan = \"block-critical\"\nscan_on_publish = true\n",
        );
    std::fs::write(&project.config, text).expect("config");

    let stderr = failed(
        &project.run(&["release", "staging", "api", "--version", "v1"]),
        6,
    );
    assert!(stderr.contains("CVE-2026-0001"), "{stderr}");
    let records = project.records("staging").await;
    assert_eq!(records.len(), 1, "{records:?}");
    let record = get_json(&moto().url, project.bucket("staging"), &records[0]).await;
    assert_eq!(record["outcome"]["result"], "failed", "{record}");
    for pointer in ["live.json", "published.json"] {
        let keys = list_keys(
            &moto().url,
            project.bucket("staging"),
            &format!("deploy/t/staging/artifacts/api/{pointer}"),
        )
        .await;
        assert!(keys.is_empty(), "{pointer} was not moved");
    }
}

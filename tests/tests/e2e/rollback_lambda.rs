//! `deploy rollback` of a Lambda function against moto, read back through the Lambda API: the
//! alias goes back to the version the earlier release published, at once, with no
//! `UpdateFunctionCode`, no new version and no upload (requests counted by a proxy), or through
//! the configured canary with `--gradual`; a version deleted since is refused before the alias
//! moves; the record names the release restored.

use deploy_tests::{get_json, moto};

use super::lambda::{Fixture, code, lambda};

const CANARY: &str = "{ strategy = \"lambda-canary\", steps = [10, 100], interval = \"1s\" }";

impl Fixture {
    /// Releases v1 and v2 (other code) with a canary; returns both versions.
    async fn two_versions(&self) -> [String; 2] {
        self.configure("v1", CANARY);
        let (status, text) = code(&self.release("v1"));
        assert_eq!(status, Some(0), "{text}");
        let first = self.alias().await.0;
        self.configure("v2", CANARY);
        let (status, text) = code(&self.release("v2"));
        assert_eq!(status, Some(0), "{text}");
        let second = self.alias().await.0;
        assert_ne!(first, second);
        [first, second]
    }

    async fn live_record(&self) -> serde_json::Value {
        let url = &moto().url;
        let live = get_json(url, &self.bucket, "deploy/t/dev/artifacts/fn/live.json").await;
        get_json(url, &self.bucket, live["record_key"].as_str().expect("key")).await
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_alias_goes_back_to_the_recorded_version_at_once() {
    let fx = Fixture::new().await;
    let [first, second] = fx.two_versions().await;
    let v1_sha = fx.code_sha256(&first).await;
    let (codes, versions) = (fx.count("PUT", "/code"), fx.versions().await);

    let out = fx.run(&["--output", "json", "rollback", "dev", "fn"]);
    assert_eq!(
        weights(&out),
        serde_json::json!([100]),
        "at once, not through the canary"
    );
    let (version, routing) = fx.alias().await;
    assert_eq!(version, first, "the alias is on v1's version");
    assert!(routing.is_empty(), "no routing left: {routing:?}");
    assert_eq!(fx.count("PUT", "/code"), codes, "no UpdateFunctionCode");
    assert_eq!(fx.versions().await, versions, "no version published");
    let record = fx.live_record().await;
    assert_eq!(record["operation"], "rollback");
    assert_eq!(record["artifact_ref"]["content_id"], v1_sha.as_str());
    assert!(record["restored"].is_string(), "{record}");

    let out = fx.run(&["--output", "json", "rollback", "dev", "fn", "--gradual"]);
    assert_eq!(
        weights(&out),
        serde_json::json!([10, 100]),
        "through the canary"
    );
    assert_eq!(fx.alias().await.0, second, "v2 again");
}

/// The weights the alias went through, from the JSON report of a successful run.
fn weights(out: &std::process::Output) -> serde_json::Value {
    let (status, text) = code(out);
    assert_eq!(status, Some(0), "{text}");
    let report: serde_json::Value = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v.get("lambda_aliases").is_some())
        .expect("a JSON report");
    report["lambda_aliases"][0]["weights"].clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deleted_version_is_refused_before_the_alias_moves() {
    let fx = Fixture::new().await;
    let [first, second] = fx.two_versions().await;
    lambda()
        .await
        .delete_function()
        .function_name(&fx.function)
        .qualifier(&first)
        .send()
        .await
        .expect("delete version");

    let (status, text) = code(&fx.run(&["rollback", "dev", "fn"]));
    assert_eq!(status, Some(1), "{text}");
    assert!(text.contains(&format!("version {first}")), "{text}");
    assert!(text.contains("no longer exists"), "{text}");
    assert_eq!(fx.alias().await.0, second, "the alias did not move");
}

//! `deploy rollback` of images from what the ledger recorded, against moto behind the scripted
//! ECS double: the service goes back to the task definition revision the earlier release ran
//! (registered again when it was deregistered), nothing is pushed to the registry, the record
//! says `rollback` and names the release it restored, `--to` goes forward again, and a rollback
//! whose health gate fails leaves the live release running (exit 3). Read back through moto's
//! ECS API, plain S3 reads and `skopeo`.

use deploy_tests::layouts::tiny_layout;
use deploy_tests::{answering, deploy, ecs_double, get_json, moto, oci_registry, skopeo_inspect};

use super::ecs_rolling::{Fixture, describe, fixture, with_health};

/// The digest `repo:tag` resolves to, read with skopeo.
fn digest_of(repo: &str, tag: &str) -> String {
    let image = format!("{}/{repo}:{tag}", oci_registry().host);
    skopeo_inspect(&image, false).expect("skopeo")["Digest"]
        .as_str()
        .expect("digest")
        .to_owned()
}

/// The image of the `api` container of task definition `arn`.
async fn image_of(arn: &str) -> String {
    image_of_container(&describe(arn).await, "api")
}

impl Fixture {
    fn deploy(&self, args: &[&str]) -> (Option<i32>, String) {
        run(&self.config, args)
    }

    /// The live pointer of `api` and its record.
    async fn live(&self) -> (serde_json::Value, serde_json::Value) {
        let url = &moto().url;
        let live = get_json(url, &self.bucket, "deploy/t/dev/artifacts/api/live.json").await;
        let key = live["record_key"].as_str().expect("record key").to_owned();
        (live, get_json(url, &self.bucket, &key).await)
    }

    /// Releases v1 (the example image) then v2 (another image); returns both revisions and
    /// release ids.
    async fn two_releases(&self) -> [(String, String); 2] {
        let (code, stderr) = self.release("v1");
        assert_eq!(code, Some(0), "{stderr}");
        let first = (
            self.running().await,
            self.live().await.0["release_id"].to_string(),
        );
        let layout = self.config.parent().expect("dir").join("layout");
        tiny_layout(&layout, b"the second build");
        let (code, stderr) = self.release("v2");
        assert_eq!(code, Some(0), "{stderr}");
        let second = (
            self.running().await,
            self.live().await.0["release_id"].to_string(),
        );
        assert_ne!(first.0, second.0, "v2 runs another revision");
        [first, second]
    }

    /// Every tag of the repository, read with skopeo.
    fn tags(&self) -> Vec<String> {
        let image = format!("docker://{}/{}", oci_registry().host, self.repo);
        let out = std::process::Command::new("skopeo")
            .args(["list-tags", "--tls-verify=false", &image])
            .output()
            .expect("skopeo list-tags");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let listed: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        let mut tags: Vec<String> = listed["Tags"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t.as_str().map(str::to_owned))
            .collect();
        tags.sort();
        tags
    }
}

fn unquoted(id: &str) -> &str {
    id.trim_matches('"')
}

#[tokio::test(flavor = "multi_thread")]
async fn a_service_goes_back_to_the_recorded_revision_and_forward_again() {
    let f = fixture("30s").await;
    let [(v1_revision, v1_id), (v2_revision, v2_id)] = f.two_releases().await;
    let v1_digest = digest_of(&f.repo, "v1");
    let tags = f.tags();

    let (code, stderr) = f.deploy(&["rollback", "dev", "api", "--dry-run"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(f.running().await, v2_revision, "a dry run changes nothing");

    let (code, stderr) = f.deploy(&["rollback", "dev", "api"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(
        f.running().await,
        v1_revision,
        "the recorded revision itself"
    );
    assert!(image_of(&v1_revision).await.ends_with(&v1_digest));
    assert_eq!(f.tags(), tags, "nothing was pushed or tagged");
    let (live, record) = f.live().await;
    assert_eq!(live["operation"], "rollback");
    assert_eq!(record["operation"], "rollback");
    assert_eq!(record["restored"], unquoted(&v1_id));
    assert_eq!(record["previous"], unquoted(&v2_id));
    assert_eq!(record["version"], "v1");
    assert_eq!(record["artifact_ref"]["content_id"], v1_digest);

    let (code, stderr) = f.deploy(&["rollback", "dev", "api", "--to", unquoted(&v2_id)]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(f.running().await, v2_revision, "--to goes forward again");
    assert_eq!(f.live().await.1["restored"], unquoted(&v2_id));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deregistered_revision_is_registered_again_from_its_contents() {
    let f = fixture("30s").await;
    let [(v1_revision, _), _] = f.two_releases().await;
    let ecs = ecs_double::client(&moto().url).await;
    ecs.deregister_task_definition()
        .task_definition(&v1_revision)
        .send()
        .await
        .expect("deregister");

    let (code, stderr) = f.deploy(&["rollback", "dev", "api"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("registered again"), "{stderr}");
    let running = f.running().await;
    assert_ne!(running, v1_revision, "an INACTIVE revision cannot run");
    let (old, new) = (describe(&v1_revision).await, describe(&running).await);
    assert_eq!(old.family(), new.family());
    assert_eq!(
        old.container_definitions(),
        new.container_definitions(),
        "every container exactly as recorded"
    );
    assert_eq!((old.cpu(), old.memory()), (new.cpu(), new.memory()));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rollback_whose_health_gate_fails_leaves_the_live_release_running() {
    let f = fixture("30s").await;
    let [_, (v2_revision, v2_id)] = f.two_releases().await;
    with_health(&f, &answering(503));

    let (code, stderr) = f.deploy(&["rollback", "dev", "api"]);
    assert_eq!(code, Some(3), "{stderr}");
    assert_eq!(f.running().await, v2_revision, "put back on what was live");
    let (live, _) = f.live().await;
    assert_eq!(live["release_id"].to_string(), v2_id, "v2 is still live");
    assert_eq!(f.outcomes().await[0], "rolled-back");
}

/// Runs `deploy` with `args` on the configuration at `config`; exit code and stderr.
fn run(config: &std::path::Path, args: &[&str]) -> (Option<i32>, String) {
    let out = deploy(&moto().url)
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .expect("run deploy");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.code(), stderr)
}

#[tokio::test(flavor = "multi_thread")]
async fn job_families_rules_and_schedules_go_back_to_the_recorded_digest() {
    use super::schedules::{fixture, scheduled_task_definition, task_definition_of};
    let f = fixture().await;
    for version in ["v1", "v2"] {
        let (code, stderr) = run(&f.config, &["release", "dev", "etl", "--version", version]);
        assert_eq!(code, Some(0), "{stderr}");
        tiny_layout(&f.config.parent().expect("dir").join("layout"), b"v2 build");
    }
    let v1 = digest_of(&f.repo, "v1");
    assert!(!image_of_container(&describe(&f.families[0]).await, "etl").ends_with(&v1));

    let (code, stderr) = run(&f.config, &["rollback", "dev", "etl"]);
    assert_eq!(code, Some(0), "{stderr}");
    for family in &f.families {
        let image = image_of_container(&describe(family).await, "etl");
        assert!(
            image.ends_with(&v1),
            "{family}'s latest revision runs {image}"
        );
    }
    let pinned = f.rule_targets().await;
    let pinned = task_definition_of(&pinned[1]).to_owned();
    assert!(pinned.starts_with("arn:"), "{pinned}");
    let image = image_of_container(&describe(&pinned).await, "etl");
    assert!(image.ends_with(&v1), "the rule's target runs {image}");
    let scheduled = scheduled_task_definition(&f.schedule().await).to_owned();
    let image = image_of_container(&describe(&scheduled).await, "etl");
    assert!(image.ends_with(&v1), "the schedule's target runs {image}");
}

fn image_of_container(definition: &aws_sdk_ecs::types::TaskDefinition, name: &str) -> String {
    let container = definition
        .container_definitions()
        .iter()
        .find(|c| c.name() == Some(name))
        .expect("container");
    container.image().unwrap_or_default().to_owned()
}

/// Writes the configuration of `project`'s image with strategy `none` to dev; its path.
fn none_config(project: &deploy_tests::ImageProject) -> std::path::PathBuf {
    let config = project.dir.join("deploy.toml");
    let registry = format!("registry = \"http://{}\"", oci_registry().host);
    let text = deploy_tests::dev_head(&project.bucket, &registry)
        + &format!(
            "[artifacts.api]\nkind = \"image\"\nrepository = \"{}\"\nsource = \"oci:./layout:latest\"\nrollout = {{ strategy = \"none\" }}\n",
            project.repo
        );
    std::fs::write(&config, text).expect("write config");
    config
}

#[tokio::test(flavor = "multi_thread")]
async fn strategy_none_moves_the_live_pointer_back_after_approval() {
    let project = deploy_tests::image_project("none").await;
    let config = none_config(&project);
    for version in ["v1", "v2"] {
        let (code, stderr) = run(&config, &["release", "dev", "api", "--version", version]);
        assert_eq!(code, Some(0), "{stderr}");
        tiny_layout(&project.dir.join("layout"), b"v2 build");
    }
    let text = std::fs::read_to_string(&config).expect("config");
    let text = text.replace(
        "[environments.dev]\n",
        "[environments.dev]\napproval = true\n",
    );
    std::fs::write(&config, text).expect("write config");
    let (code, stderr) = run(&config, &["rollback", "dev", "api"]);
    assert_eq!(code, Some(5), "approval needed: {stderr}");
    assert!(stderr.contains("--approve"), "{stderr}");
    let (code, stderr) = run(&config, &["rollback", "dev", "api", "--approve"]);
    assert_eq!(code, Some(0), "{stderr}");
    let live = get_json(
        &moto().url,
        &project.bucket,
        "deploy/t/dev/artifacts/api/live.json",
    )
    .await;
    assert_eq!(live["operation"], "rollback");
    assert_eq!(
        live["artifact_ref"]["content_id"],
        digest_of(&project.repo, "v1")
    );
    assert_eq!(live["version"], "v1");
}

/// Lead time counts from the released commit: a release of a commit made two hours earlier
/// (a repository with a dated commit, the version taken from `git rev-parse HEAD`) shows about
/// two hours in `history --output json`, and the record carries the commit time.
#[tokio::test(flavor = "multi_thread")]
async fn lead_time_counts_from_the_commit() {
    let project = deploy_tests::image_project("lead").await;
    let config = none_config(&project);
    let two_hours_ago = time::OffsetDateTime::now_utc() - time::Duration::hours(2);
    let stamp = format!("{} +0000", two_hours_ago.unix_timestamp());
    let git = |args: &[&str]| deploy_tests::git(&project.dir, args, Some(&stamp));
    git(&["init", "-q"]);
    git(&["add", "deploy.toml"]);
    git(&["commit", "-q", "-m", "two hours ago"]);

    let out = deploy(&moto().url)
        .arg("--config")
        .arg(&config)
        .args(["release", "dev", "api"])
        .env_remove("GITHUB_SHA")
        .env_remove("GITHUB_EVENT_PATH")
        .output()
        .expect("run deploy");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_lead_time(&config, 7200.0..7500.0);
    let live = get_json(
        &moto().url,
        &project.bucket,
        "deploy/t/dev/artifacts/api/live.json",
    )
    .await;
    let record = get_json(
        &moto().url,
        &project.bucket,
        live["record_key"].as_str().expect("key"),
    )
    .await;
    let recorded = record["commit_time"].as_str().expect("commit_time");
    let recorded =
        time::OffsetDateTime::parse(recorded, &time::format_description::well_known::Rfc3339)
            .expect("RFC 3339");
    assert_eq!(recorded.unix_timestamp(), two_hours_ago.unix_timestamp());
}

/// `deploy rollback` of a release whose migration has a `rollback_command`: after the service
/// is back, the down migration runs as a task with the image of the release being replaced; when
/// it fails, the run is exit 1, names the task's exit code and says the schema may be left
/// migrated, and the service runs the release the schema still matches.
#[tokio::test(flavor = "multi_thread")]
async fn a_rollback_runs_the_down_migration_of_the_release_it_replaces() {
    use super::ecs_rolling::{migration_family, with_rollout_keys};
    let f = fixture("30s").await;
    let family = migration_family().await;
    with_rollout_keys(
        &f,
        &format!(
            "pre_deploy = {{ task_definition = \"{family}\", command = [\"./migrate\", \"up\"], rollback_command = [\"./migrate\", \"down\"], timeout = \"20s\" }}"
        ),
    );
    let [(v1_revision, _), (v2_revision, _)] = f.two_releases().await;
    assert_ne!(v1_revision, v2_revision);
    let v2_image = image_of(&v2_revision).await;

    let (code, stderr) = f.deploy(&["rollback", "dev", "api"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(f.running().await, v1_revision);
    let runs = f.double.requests_of("RunTask");
    assert_eq!(runs.len(), 3, "up, up, down: {runs:?}");
    let down = &runs[2];
    assert_eq!(
        down.body["overrides"]["containerOverrides"][0]["command"],
        serde_json::json!(["./migrate", "down"])
    );
    let ran = down.task_definition.clone().expect("task definition");
    assert_eq!(
        image_of(&ran).await,
        v2_image,
        "the replaced release's image"
    );
    let last = f
        .double
        .requests()
        .into_iter()
        .rev()
        .find(|r| r.operation == "RunTask" || r.operation == "UpdateService");
    assert_eq!(
        last.map(|r| r.operation).as_deref(),
        Some("RunTask"),
        "down runs last"
    );

    // A new release v3, then back with a down migration that fails.
    let layout = f.config.parent().expect("dir").join("layout");
    tiny_layout(&layout, b"the third build");
    let (code, stderr) = f.release("v3");
    assert_eq!(code, Some(0), "{stderr}");
    let v3_revision = f.running().await;
    f.double.script_task(
        &family,
        ecs_double::TaskScript {
            exit_code: 2,
            after_polls: 1,
            reason: "Essential container in task exited".into(),
        },
    );
    let (code, stderr) = f.deploy(&["rollback", "dev", "api"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("exited with code 2"), "{stderr}");
    assert!(
        stderr.contains("the schema may be left migrated"),
        "{stderr}"
    );
    assert_eq!(
        f.running().await,
        v3_revision,
        "back on what the schema still matches"
    );
}

/// `history dev --output json` gives a lead time in `range` seconds, over all and for `api`.
fn assert_lead_time(config: &std::path::Path, range: std::ops::Range<f64>) {
    let out = deploy(&moto().url)
        .arg("--config")
        .arg(config)
        .args(["--output", "json", "history", "dev", "--since", "1d"])
        .output()
        .expect("run deploy");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let history: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let lead = history["metrics"]["lead_time_seconds"]
        .as_f64()
        .expect("lead time");
    assert!(range.contains(&lead), "{lead} s: {history}");
    let api = &history["artifacts"][0];
    assert_eq!(
        (&api["environment"], &api["artifact"]),
        (&"dev".into(), &"api".into())
    );
    assert_eq!(api["lead_time_seconds"], lead);
    assert_eq!(api["deployments"], 1, "{history}");
}

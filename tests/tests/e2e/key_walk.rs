//! Every key the configuration accepts either acts or is refused: nothing is accepted and
//! ignored. The walk learns the keys from deploy-core itself, not from a list written here:
//! for every table of a set of base configurations (each kind, each strategy), it adds an
//! unknown key and reads the keys the error says that table allows. For each allowed key it
//! then sets a value ([`VALUES`]) that differs from the base and from the default, and resolves
//! the file again: the resolved configuration (environments with their targets and artifacts,
//! settings, notifications) must differ from the base's, or the file must be refused. A key
//! the walk finds without a value here fails the test, so a new key cannot land unwalked, and
//! every key must be in the reference of docs/config.md (`## Every key`).

use std::collections::BTreeSet;

use deploy_core::config::{Config, ConfigError};
use deploy_tests::workspace_root;
use toml::{Table, Value};

const HEADER: &str = r#"
project = "p"
[environments.dev]
region = "eu-west-1"
account = "123456789012"
state_bucket = "p-state-{env}"
[environments.staging]
region = "eu-west-1"
account = "123456789012"
state_bucket = "p-state-{env}"
"#;

/// One artifact `a` of each kind and strategy, with only what it requires.
const BASES: &[(&str, &str)] = &[
    (
        "image/none",
        "kind = \"image\"\nrepository = \"p/a\"\nsource = \"oci:./build/a\"\n\
         rollout = { strategy = \"none\" }",
    ),
    (
        "image/ecs-rolling",
        "kind = \"image\"\nrepository = \"p/a\"\nsource = \"oci:./build/a\"\n\
         rollout = { strategy = \"ecs-rolling\", cluster = \"c\", service = \"s\", container = \"app\" }",
    ),
    (
        "image/ecs-blue-green",
        "kind = \"image\"\nrepository = \"p/a\"\nsource = \"oci:./build/a\"\n\
         rollout = { strategy = \"ecs-blue-green\", cluster = \"c\", service = \"s\", container = \"app\" }",
    ),
    (
        "image/codedeploy-blue-green",
        "kind = \"image\"\nrepository = \"p/a\"\nsource = \"oci:./build/a\"\n\
         rollout = { strategy = \"codedeploy-blue-green\", cluster = \"c\", service = \"s\", \
         container = \"app\", application = \"app\", deployment_group = \"g\" }",
    ),
    (
        "image/task-definitions",
        "kind = \"image\"\nrepository = \"p/a\"\nsource = \"oci:./build/a\"\n\
         rollout = { strategy = \"task-definitions\", families = [\"f1\"], container = \"app\" }",
    ),
    (
        "dags/s3-sync",
        "kind = \"dags\"\nsource = \"./dags\"\nbucket = \"p-dags-{env}\"",
    ),
    (
        "lambda/lambda-all-at-once",
        "kind = \"lambda\"\nsource = \"./fn\"\nfunction = \"p-fn-{env}\"\n\
         rollout = { strategy = \"lambda-all-at-once\" }",
    ),
    (
        "lambda/lambda-canary",
        "kind = \"lambda\"\nsource = \"./fn\"\nfunction = \"p-fn-{env}\"\n\
         rollout = { strategy = \"lambda-canary\", steps = [10, 100], interval = \"1m\" }",
    ),
    (
        "lambda/lambda-linear",
        "kind = \"lambda\"\nsource = \"./fn\"\nfunction = \"p-fn-{env}\"\n\
         rollout = { strategy = \"lambda-linear\" }",
    ),
];

/// The value each key is set to, by its path in the reference's form (`kind:path` or
/// `kind/strategy:path` when it depends on the base). `REFUSED` marks keys refused on purpose.
/// After ` ;; `, an inline table of what else changes in the same table for the value to make
/// sense: `with` (keys set beside it), `drop` (keys taken out), as when a strategy changes.
#[rustfmt::skip]
const VALUES: &[(&str, &str)] = &[
    ("project", r#""q""#),
    ("notifications", r#"{ slack = { webhook_env = "SLACK_URL" } }"#),
    ("notifications.slack_webhook_env", REFUSED),
    ("notifications.slack.webhook_env", r#""OTHER_URL""#),
    ("notifications.slack.token_env", r#""SLACK_TOKEN" ;; { with = { channel = "C1" }, drop = ["webhook_env"] }"#),
    ("notifications.slack.channel", r#""C1" ;; { with = { token_env = "SLACK_TOKEN" }, drop = ["webhook_env"] }"#),
    ("notifications.slack.api_url", r#""http://127.0.0.1:9/api" ;; { with = { token_env = "T", channel = "C1" }, drop = ["webhook_env"] }"#),
    ("settings", r#"{ lock_ttl = "5m" }"#),
    ("settings.lock_ttl", r#""3m""#),
    ("settings.poll_interval", r#""2s""#),
    ("settings.timeout", r#""20m""#),
    ("settings.retry_max_attempts", "5"),
    ("settings.parallel_uploads", "3"),
    ("settings.upload", r#""monolithic""#),
    ("settings.part_size", r#""8MiB""#),
    ("settings.scan_timeout", r#""5m""#),
    ("environments.<env>.region", r#""eu-central-1""#),
    ("environments.<env>.account", r#""210987654321""#),
    ("environments.<env>.profile", r#""ops""#),
    ("environments.<env>.role_arn", r#""arn:aws:iam::123456789012:role/deployer""#),
    ("environments.<env>.state_bucket", r#""p-other-{env}""#),
    ("environments.<env>.promote_from", r#""staging""#),
    ("environments.<env>.approval", "true"),
    ("environments.<env>.notify", "false"),
    ("environments.<env>.endpoints", r#"{ s3 = "http://127.0.0.1:9" }"#),
    ("environments.<env>.endpoints.sts", r#""http://127.0.0.1:8""#),
    ("environments.<env>.endpoints.s3", r#""http://127.0.0.1:8""#),
    ("environments.<env>.endpoints.ecr", r#""http://127.0.0.1:8""#),
    ("environments.<env>.endpoints.registry", r#""127.0.0.1:8""#),
    ("environments.<env>.endpoints.ecs", r#""http://127.0.0.1:8""#),
    ("environments.<env>.endpoints.codedeploy", r#""http://127.0.0.1:8""#),
    ("environments.<env>.endpoints.lambda", r#""http://127.0.0.1:8""#),
    ("image:environments.<env>.overrides", r#"{ a = { repository = "p/b" } }"#),
    ("dags:environments.<env>.overrides", r#"{ a = { bucket = "p-other-dags" } }"#),
    ("lambda:environments.<env>.overrides", r#"{ a = { function = "p-other-fn" } }"#),
    ("artifacts.<name>.kind", REFUSED),
    // Images.
    ("image:artifacts.<name>.repository", r#""p/b""#),
    ("image:artifacts.<name>.source", r#""oci:./build/b""#),
    ("image:artifacts.<name>.scan", r#""block-high""#),
    ("image:artifacts.<name>.scan_on_publish", "true"),
    ("image:artifacts.<name>.create_repository", "true"),
    ("image:artifacts.<name>.env", r#"{ K = "v" }"#),
    ("image:artifacts.<name>.secrets", r#"{ S = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:s" }"#),
    ("image/none:artifacts.<name>.rollout.strategy", r#""ecs-rolling" ;; { with = { cluster = "c", service = "s", container = "app" } }"#),
    ("image/ecs-rolling:artifacts.<name>.rollout.strategy", r#""ecs-blue-green""#),
    ("image/ecs-blue-green:artifacts.<name>.rollout.strategy", r#""ecs-rolling""#),
    ("image/codedeploy-blue-green:artifacts.<name>.rollout.strategy", r#""ecs-rolling" ;; { drop = ["application", "deployment_group"] }"#),
    ("image/task-definitions:artifacts.<name>.rollout.strategy", r#""none" ;; { drop = ["families", "container"] }"#),
    ("image:artifacts.<name>.rollout.cluster", r#""c2""#),
    ("image:artifacts.<name>.rollout.service", r#""s2""#),
    ("image:artifacts.<name>.rollout.container", r#""web""#),
    ("image:artifacts.<name>.rollout.application", r#""app2""#),
    ("image:artifacts.<name>.rollout.deployment_group", r#""g2""#),
    ("image:artifacts.<name>.rollout.container_port", "8080"),
    ("image:artifacts.<name>.rollout.families", r#"["f2"]"#),
    ("image:artifacts.<name>.rollout.keep_revisions", "7"),
    ("image:artifacts.<name>.rollout.schedules", r#"["nightly"]"#),
    ("image:artifacts.<name>.rollout.scheduler_schedules", r#"["grp/nightly"]"#),
    ("image:artifacts.<name>.rollout.timeout", r#""20m""#),
    ("artifacts.<name>.rollout.alarms", r#"["a1"]"#),
    ("image:artifacts.<name>.rollout.fail_fast", "true"),
    ("image:artifacts.<name>.rollout.ecs_strategy", r#""CANARY" ;; { with = { canary = { percent = 10.0 } } }"#),
    ("image:artifacts.<name>.rollout.bake", r#""5m""#),
    ("image:artifacts.<name>.rollout.canary", r#"{ percent = 10.0 } ;; { with = { ecs_strategy = "CANARY" } }"#),
    ("image:artifacts.<name>.rollout.canary.percent", "20.0"),
    ("image:artifacts.<name>.rollout.canary.bake", r#""3m""#),
    ("image:artifacts.<name>.rollout.linear", r#"{ percent = 10.0 } ;; { with = { ecs_strategy = "LINEAR" } }"#),
    ("image:artifacts.<name>.rollout.linear.percent", "20.0"),
    ("image:artifacts.<name>.rollout.linear.interval", r#""3m""#),
    ("image/ecs-blue-green:artifacts.<name>.rollout.lifecycle_hooks", r#"[{ function = "arn:aws:lambda:eu-west-1:123456789012:function:hook", stages = ["POST_SCALE_UP"], role = "arn:aws:iam::123456789012:role/hook" }]"#),
    ("image/codedeploy-blue-green:artifacts.<name>.rollout.lifecycle_hooks", r#"[{ function = "arn:aws:lambda:eu-west-1:123456789012:function:hook", stages = ["AfterAllowTraffic"] }]"#),
    ("image:artifacts.<name>.rollout.lifecycle_hooks.function", r#""arn:aws:lambda:eu-west-1:123456789012:function:hook2""#),
    ("image/ecs-blue-green:artifacts.<name>.rollout.lifecycle_hooks.stages", r#"["PRE_SCALE_UP"]"#),
    ("image/codedeploy-blue-green:artifacts.<name>.rollout.lifecycle_hooks.stages", r#"["BeforeAllowTraffic"]"#),
    ("image/ecs-blue-green:artifacts.<name>.rollout.lifecycle_hooks.role", r#""arn:aws:iam::123456789012:role/hook2""#),
    // CodeDeploy calls hooks with the deployment group's role: a hook's own is refused.
    ("image/codedeploy-blue-green:artifacts.<name>.rollout.lifecycle_hooks.role", r#"!"arn:aws:iam::123456789012:role/hook""#),
    ("image:artifacts.<name>.rollout.pre_deploy", r#"{ task_definition = "migrate", command = ["./migrate"] }"#),
    ("image/task-definitions:artifacts.<name>.rollout.pre_deploy", r#"{ task_definition = "migrate", command = ["./migrate"] } ;; { with = { cluster = "c" } }"#),
    ("image:artifacts.<name>.rollout.pre_deploy.task_definition", r#""migrate2""#),
    ("image:artifacts.<name>.rollout.pre_deploy.command", r#"["./m2"]"#),
    ("image:artifacts.<name>.rollout.pre_deploy.rollback_command", r#"["./down"]"#),
    ("image:artifacts.<name>.rollout.pre_deploy.timeout", r#""5m""#),
    ("artifacts.<name>.rollout.health_check", r#"{ url = "http://127.0.0.1:9/health" }"#),
    ("artifacts.<name>.rollout.health_check.url", r#""http://127.0.0.1:8/h""#),
    ("artifacts.<name>.rollout.health_check.expect_status", "204"),
    ("artifacts.<name>.rollout.health_check.expect_body", r#""ok""#),
    ("artifacts.<name>.rollout.health_check.timeout", r#""30s""#),
    ("artifacts.<name>.rollout.health_check.test_url", r#""http://127.0.0.1:8/t""#),
    // DAG folders.
    ("dags:artifacts.<name>.source", r#""./dags2""#),
    ("dags:artifacts.<name>.bucket", r#""p-dags2-{env}""#),
    ("dags:artifacts.<name>.prefix", r#""other/""#),
    ("dags:artifacts.<name>.whole_bucket", r#"true ;; { with = { prefix = "" } }"#),
    ("dags:artifacts.<name>.ignore_syntax", r#""glob""#),
    ("dags:artifacts.<name>.include", r#"["*.py"]"#),
    ("dags:artifacts.<name>.exclude", r#"["tests/"]"#),
    ("dags:artifacts.<name>.max_delete_share", "0.25"),
    // `s3-sync` is the only strategy of DAGs: another is refused.
    ("dags:artifacts.<name>.rollout", r#"!{ strategy = "ecs-rolling" }"#),
    // Lambda functions.
    ("lambda:artifacts.<name>.source", r#""./fn2""#),
    ("lambda:artifacts.<name>.function", r#""p-fn2-{env}""#),
    ("lambda:artifacts.<name>.alias", r#""prod""#),
    ("lambda:artifacts.<name>.artifact_bucket", r#""p-zips-{env}""#),
    ("lambda:artifacts.<name>.exclude", r#"["tests/"]"#),
    ("lambda:artifacts.<name>.handler", r#""app.main""#),
    ("lambda:artifacts.<name>.keep_versions", "5"),
    ("lambda:artifacts.<name>.env", r#"{ K = "v" }"#),
    ("lambda/lambda-all-at-once:artifacts.<name>.rollout.strategy", r#""lambda-linear""#),
    ("lambda/lambda-canary:artifacts.<name>.rollout.strategy", r#""lambda-linear""#),
    ("lambda/lambda-linear:artifacts.<name>.rollout.strategy", r#""lambda-all-at-once""#),
    ("lambda/lambda-canary:artifacts.<name>.rollout.steps", "[20, 100]"),
    ("lambda/lambda-linear:artifacts.<name>.rollout.steps", "[25, 50, 100]"),
    ("lambda:artifacts.<name>.rollout.increment", "20"),
    ("lambda:artifacts.<name>.rollout.interval", r#""2m""#),
    ("lambda:artifacts.<name>.rollout.max_errors", "3"),
];

/// A key refused whatever its value (it moved, or it is kept only to say so); a value that
/// starts with `!` is one that must be refused.
const REFUSED: &str = "!\"x\"";

#[test]
fn every_accepted_key_acts_or_is_refused() {
    let mut walk = Walk::default();
    for (base, artifact) in BASES {
        let text = format!("{HEADER}[artifacts.a]\n{artifact}\n");
        let doc: Table = text.parse().expect("a base parses as TOML");
        walk.base = (*base).to_owned();
        let seen = observe(&doc).unwrap_or_else(|e| panic!("base {base} is refused: {e}"));
        // The comparison is not blind: the same file written again resolves the same.
        let again: Table = toml::to_string(&doc)
            .expect("print")
            .parse()
            .expect("parse");
        assert_eq!(
            observe(&again).ok(),
            Some(seen),
            "{base}: resolving is not stable"
        );
        walk.table(&doc, &[], "");
    }
    let reference = reference();
    let undocumented: Vec<&String> = walk
        .keys
        .iter()
        .filter(|k| !reference.contains(&format!("`{k}`")))
        .collect();
    let report = format!(
        "keys without a value in VALUES ({}):\n  {}\nkeys that changed nothing ({}):\n  {}\n\
         keys missing from docs/config.md `## Every key` ({}):\n  {:?}",
        walk.missing.len(),
        walk.missing.join("\n  "),
        walk.ignored.len(),
        walk.ignored.join("\n  "),
        undocumented.len(),
        undocumented,
    );
    assert!(
        walk.missing.is_empty() && walk.ignored.is_empty() && undocumented.is_empty(),
        "{report}"
    );
    assert!(
        walk.keys.len() > 60,
        "the walk found only {} keys: {:?}",
        walk.keys.len(),
        walk.keys
    );
    eprintln!(
        "key walk: {} keys over {} bases, {} settings tried, every one acted or was refused",
        walk.keys.len(),
        BASES.len(),
        walk.tried
    );
}

#[derive(Default)]
struct Walk {
    base: String,
    /// Every key found, in the reference's form.
    keys: BTreeSet<String>,
    /// Keys found with no value to try.
    missing: Vec<String>,
    /// Keys whose value changed nothing that resolves.
    ignored: Vec<String>,
    /// How many values were tried.
    tried: usize,
    /// Tables already walked, by base and path.
    walked: BTreeSet<(String, String)>,
}

impl Walk {
    /// Walks the table at `path` in `doc`, named `general` in the reference's form.
    fn table(&mut self, doc: &Table, path: &[String], general: &str) {
        if !self.walked.insert((self.base.clone(), general.to_owned())) {
            return;
        }
        let Some(allowed) = allowed_keys(doc, path) else {
            return; // a map of names of the user's choosing (`env`, `secrets`)
        };
        let table = get(doc, path).clone();
        for key in allowed {
            let general = join(general, &key);
            self.keys.insert(general.clone());
            match table.get(&key) {
                Some(Value::Table(_)) => self.children(doc, path, &key, &general),
                Some(Value::Array(items)) if matches!(items.first(), Some(Value::Table(_))) => {
                    let mut at = path.to_vec();
                    at.push(key.clone()); // its first table
                    self.table(doc, &at, &general);
                }
                _ => self.try_value(doc, path, &key, &general),
            }
        }
    }

    /// The tables under a key: names of environments, artifacts and overrides stand for
    /// every one of them.
    fn children(&mut self, doc: &Table, path: &[String], key: &str, general: &str) {
        let mut at = path.to_vec();
        at.push(key.to_owned());
        let placeholder = match general {
            "environments" => Some("<env>"),
            "artifacts" => Some("<name>"),
            g if g.ends_with(".overrides") => Some("<artifact>"),
            _ => None,
        };
        let Some(placeholder) = placeholder else {
            return self.table(doc, &at, general);
        };
        if placeholder == "<artifact>" {
            // An override takes its artifact's keys, walked under `artifacts.<name>`.
            return;
        }
        let names: Vec<String> = get(doc, &at).keys().cloned().collect();
        for name in names.into_iter().take(1) {
            let mut child = at.clone();
            child.push(name);
            self.table(doc, &child, &format!("{general}.{placeholder}"));
        }
    }

    /// Sets `key` to its value and resolves: the result must differ or be refused.
    fn try_value(&mut self, doc: &Table, path: &[String], key: &str, general: &str) {
        let Some(text) = value_for(&self.base, general) else {
            self.missing.push(format!("{general} (base {})", self.base));
            return;
        };
        let before = observe(doc).expect("the walked file resolves");
        let mut changed = doc.clone();
        let (value, extras) = parse_value(text, general);
        let table = get_mut(&mut changed, path);
        table.insert(key.to_owned(), value.clone());
        if let Some(Value::Table(with)) = extras.get("with") {
            table.extend(with.clone());
        }
        for dropped in extras
            .get("drop")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            table.remove(dropped.as_str().unwrap_or_default());
        }
        self.tried += 1;
        match (observe(&changed), text.starts_with('!')) {
            (Err(_), true) => {}
            (Ok(_), true) => self.ignored.push(format!(
                "{general}: accepted, not refused (base {})",
                self.base
            )),
            (Err(e), false) => self.ignored.push(format!(
                "{general} = {text} (base {}): refused: {e}",
                self.base
            )),
            (Ok(after), false) if after == before => self
                .ignored
                .push(format!("{general} = {text} (base {})", self.base)),
            (Ok(_), false) => {
                if let Value::Table(_) = value {
                    self.children(&changed, path, key, general);
                } else if let Value::Array(items) = &value
                    && let Some(Value::Table(_)) = items.first()
                {
                    let mut at = path.to_vec();
                    at.push(key.to_owned()); // its first table
                    self.table(&changed, &at, general);
                }
            }
        }
    }
}

/// The keys the table at `path` allows, from the error an unknown key there gets; `None`
/// when an unknown key is accepted (a map of the user's names).
fn allowed_keys(doc: &Table, path: &[String]) -> Option<Vec<String>> {
    let mut probed = doc.clone();
    get_mut(&mut probed, path).insert("zzz_probe".into(), Value::String("1".into()));
    let diagnostics = match resolve(&probed) {
        Ok(_) => return None,
        Err(ConfigError::Invalid { diagnostics }) => diagnostics,
        Err(other) => panic!("at {path:?}: {other}"),
    };
    let probe = diagnostics
        .iter()
        .find(|d| d.message.contains("`zzz_probe`"))
        .unwrap_or_else(|| panic!("at {path:?}, no word on the probe: {diagnostics:#?}"));
    let help = probe.help.as_deref().unwrap_or_default();
    let list = help
        .split_once("allowed: ")
        .map(|(_, list)| list)
        .unwrap_or_else(|| panic!("at {path:?}, no allowed keys in {probe:?}"));
    Some(
        list.split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_owned)
            .collect(),
    )
}

fn value_for<'a>(base: &str, general: &str) -> Option<&'a str> {
    let specific = format!("{base}:{general}");
    let kind = format!("{}:{general}", base.split('/').next().unwrap_or_default());
    [specific.as_str(), kind.as_str(), general]
        .iter()
        .find_map(|want| VALUES.iter().find(|(k, _)| k == want).map(|(_, v)| *v))
}

/// The value of a [`VALUES`] entry and its extras (`with`, `drop`).
fn parse_value(text: &str, general: &str) -> (Value, Table) {
    let text = text.trim_start_matches('!');
    let (value, extras) = text.split_once(" ;; ").unwrap_or((text, "{}"));
    let doc: Table = format!("v = {value}\nextras = {extras}")
        .parse()
        .unwrap_or_else(|e| panic!("VALUES entry of {general} is not TOML: {e}"));
    let extras = doc["extras"].as_table().cloned().unwrap_or_default();
    (doc["v"].clone(), extras)
}

/// What the file resolves to, as text: every environment (target and artifacts), settings and
/// notifications; not where keys sit in the file.
fn observe(doc: &Table) -> Result<String, String> {
    let config = resolve(doc).map_err(|e| e.to_string())?;
    Ok(format!(
        "{}\n{:?}\n{:?}\n{:?}",
        config.project, config.environments, config.settings, config.notifications
    ))
}

fn resolve(doc: &Table) -> Result<Config, ConfigError> {
    let text = toml::to_string(doc).expect("print TOML");
    Config::from_toml(&text, "deploy.toml".as_ref())
}

fn get<'a>(doc: &'a Table, path: &[String]) -> &'a Table {
    path.iter().fold(doc, |table, key| match table.get(key) {
        Some(Value::Table(t)) => t,
        Some(Value::Array(items)) => match items.first() {
            Some(Value::Table(t)) => t,
            _ => panic!("{key} holds no table"),
        },
        _ => panic!("no table at {key} of {path:?}"),
    })
}

fn get_mut<'a>(doc: &'a mut Table, path: &[String]) -> &'a mut Table {
    path.iter()
        .fold(doc, |table, key| match table.get_mut(key) {
            Some(Value::Table(t)) => t,
            Some(Value::Array(items)) => match items.first_mut() {
                Some(Value::Table(t)) => t,
                _ => panic!("{key} holds no table"),
            },
            _ => panic!("no table at {key}"),
        })
}

fn join(general: &str, key: &str) -> String {
    if general.is_empty() {
        key.to_owned()
    } else {
        format!("{general}.{key}")
    }
}

/// The `## Every key` section of docs/config.md.
fn reference() -> String {
    let text = std::fs::read_to_string(workspace_root().join("docs/config.md")).expect("docs");
    let start = text.find("## Every key").unwrap_or(text.len());
    let end = text[start..]
        .find("\n## ")
        .map_or(text.len(), |end| start + end);
    text[start..end].to_owned()
}

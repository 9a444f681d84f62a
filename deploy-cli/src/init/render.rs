//! The files `deploy init` writes: `deploy.toml` for what was found, and the workflows that
//! run it (`deploy.yml`, `rollback.yml`, and `chain.yml` with `--chain`). Every workflow runs
//! its jobs with the least permissions (`id-token: write` only where AWS credentials are
//! needed), one `concurrency` group per environment, actions pinned by commit, inputs passed
//! through `with:` and `env:`, never pasted into a script.

use super::detect::Found;

/// `actions/checkout` v4.2.2.
const CHECKOUT: &str = "actions/checkout@11bd71901bbe5b1630ceea73d27597364c9af683 # v4.2.2";
/// `aws-actions/configure-aws-credentials` v4.0.2.
const CREDENTIALS: &str =
    "aws-actions/configure-aws-credentials@e3dd6a429d7300a6a4c196c26e071d42e0343502 # v4.0.2";

/// What the files are written for.
#[derive(Debug, Clone)]
pub struct Options {
    /// Project name.
    pub project: String,
    /// AWS region of every environment.
    pub region: String,
    /// AWS account of every environment.
    pub account: String,
    /// The deploy action, `owner/repo@sha`.
    pub action: String,
    /// The next repository of a chain, `owner/repo`.
    pub chain: Option<String>,
}

/// `deploy.toml`.
pub fn config(options: &Options, found: &[Found]) -> String {
    let mut text = format!(
        "# Written by `deploy init`. Review the account, region and names of each environment,\n\
         # then run `deploy validate`. Every key: docs/config.md.\n\
         project = \"{}\"\n",
        options.project
    );
    for env in ["dev", "staging", "prod"] {
        text.push_str(&format!(
            "\n[environments.{env}]\nregion = \"{}\"\naccount = \"{}\"\n\
             state_bucket = \"{{project}}-deploy-state-{{env}}\"\n",
            options.region, options.account
        ));
        match env {
            "dev" => text.push_str("notify = false\n"),
            "prod" => text.push_str(
                "promote_from = \"staging\"    # prod runs exactly what staging runs\n\
                 approval = true              # --approve: the prod GitHub environment's reviewers\n",
            ),
            _ => {}
        }
    }
    for artifact in found {
        text.push('\n');
        text.push_str(&artifact_table(artifact));
    }
    text
}

fn artifact_table(found: &Found) -> String {
    match found {
        Found::Image { name, .. } => format!(
            "[artifacts.{name}]\nkind = \"image\"\nrepository = \"{{project}}/{name}\"\n\
             source = \"docker-archive:./build/{name}.tar\"   # the workflow builds it: docker build, docker save\n\
             \x20 [artifacts.{name}.rollout]\n\
             \x20 strategy = \"none\"   # or ecs-rolling, ecs-blue-green, codedeploy-blue-green, task-definitions\n"
        ),
        Found::Dags { folder } => format!(
            "[artifacts.dags]\nkind = \"dags\"\nsource = \"./{folder}\"\n\
             bucket = \"{{project}}-airflow-{{env}}\"\nprefix = \"dags/\"\n"
        ),
        Found::Lambda {
            name,
            folder,
            handler,
        } => format!(
            "[artifacts.{name}]\nkind = \"lambda\"\nsource = \"./{folder}\"\n\
             function = \"{{project}}-{name}-{{env}}\"\nalias = \"live\"\nhandler = \"{handler}\"\n"
        ),
    }
}

/// Steps that build every image into `build/NAME.tar`, as `deploy.toml` expects.
fn build_steps(found: &[Found]) -> String {
    let images: Vec<(&String, &String)> = found
        .iter()
        .filter_map(|f| match f {
            Found::Image { name, context } => Some((name, context)),
            _ => None,
        })
        .collect();
    if images.is_empty() {
        return String::new();
    }
    let mut run = String::from("          mkdir -p build\n");
    for (name, context) in images {
        run.push_str(&format!(
            "          docker build --tag \"{name}:${{GITHUB_SHA}}\" \"{context}\"\n\
             \x20         docker save --output \"build/{name}.tar\" \"{name}:${{GITHUB_SHA}}\"\n"
        ));
    }
    format!("      - name: Build images\n        run: |\n{run}")
}

/// A job's first steps: the checkout, the images, the deployer role of its environment.
fn setup(found: &[Found], build: bool) -> String {
    let build = if build {
        build_steps(found)
    } else {
        String::new()
    };
    format!(
        "      - uses: {CHECKOUT}\n        with:\n          persist-credentials: false\n{build}\
         \x20     - uses: {CREDENTIALS}\n        with:\n\
         \x20         role-to-assume: ${{{{ vars.DEPLOY_ROLE_ARN }}}}\n\
         \x20         aws-region: ${{{{ vars.AWS_REGION }}}}\n"
    )
}

/// One use of the deploy action with `with` lines.
fn deploy_step(options: &Options, name: &str, with: &[(&str, &str)]) -> String {
    let mut text = format!(
        "      - name: {name}\n        uses: {}\n        with:\n",
        options.action
    );
    for (key, value) in with {
        text.push_str(&format!("          {key}: {value}\n"));
    }
    text
}

/// A job header: the environment, its concurrency group, OIDC permissions.
fn job(name: &str, condition: Option<&str>, env: &str, needs: Option<&str>) -> String {
    let mut text = format!("  {name}:\n");
    if let Some(needs) = needs {
        text.push_str(&format!("    needs: {needs}\n"));
    }
    if let Some(condition) = condition {
        text.push_str(&format!("    if: {condition}\n"));
    }
    text.push_str(&format!(
        "    runs-on: ubuntu-24.04\n    timeout-minutes: 60\n    environment: {env}\n\
         \x20   concurrency:\n      group: deploy-{env}\n      cancel-in-progress: false\n\
         \x20   permissions:\n      contents: read\n      id-token: write\n    steps:\n"
    ));
    text
}

/// `.github/workflows/deploy.yml`.
pub fn deploy_workflow(options: &Options, found: &[Found]) -> String {
    let mut text = String::from(
        "# Written by `deploy init`. Pull requests: validate and plan dev (the plan in the job\n\
         # summary). dev: pushes to other branches, manual runs and the chain's dispatch. staging:\n\
         # pushes to main. prod: what staging runs, once the prod environment's reviewers approve.\n\
         # Each GitHub environment (dev, staging, prod) holds the variables DEPLOY_ROLE_ARN (the\n\
         # infra stack's deployer role) and AWS_REGION.\n\
         name: deploy\n\non:\n  pull_request:\n  push:\n    branches: [\"**\"]\n  workflow_dispatch:\n\
         \x20 repository_dispatch:\n    types: [deploy-chain]\n\npermissions:\n  contents: read\n\njobs:\n",
    );
    text.push_str(&job(
        "plan",
        Some("github.event_name == 'pull_request'"),
        "dev",
        None,
    ));
    text.push_str(&setup(found, true));
    text.push_str(&deploy_step(
        options,
        "Validate",
        &[("command", "validate")],
    ));
    text.push_str(&deploy_step(
        options,
        "Plan dev",
        &[("command", "plan"), ("environment", "dev")],
    ));
    text.push('\n');
    let dev = "github.event_name == 'workflow_dispatch' || github.event_name == 'repository_dispatch' || (github.event_name == 'push' && github.ref != 'refs/heads/main')";
    text.push_str(&job("dev", Some(dev), "dev", None));
    text.push_str(&setup(found, true));
    text.push_str(&deploy_step(
        options,
        "Release to dev",
        &[("command", "release"), ("environment", "dev")],
    ));
    text.push('\n');
    let main = "github.event_name == 'push' && github.ref == 'refs/heads/main'";
    text.push_str(&job("staging", Some(main), "staging", None));
    text.push_str(&setup(found, true));
    text.push_str(&deploy_step(
        options,
        "Release to staging",
        &[("command", "release"), ("environment", "staging")],
    ));
    text.push('\n');
    text.push_str(&job("prod", None, "prod", Some("staging")));
    text.push_str(&setup(found, false));
    text.push_str(&deploy_step(
        options,
        "Promote staging to prod",
        &[
            ("command", "promote"),
            ("from", "staging"),
            ("environment", "prod"),
            ("approve", "\"true\""),
        ],
    ));
    text
}

/// `.github/workflows/rollback.yml`: a manual rollback from the GitHub interface.
pub fn rollback_workflow(options: &Options) -> String {
    let mut text = String::from(
        "# Written by `deploy init`. Actions > rollback > Run workflow: puts an environment back on\n\
         # an earlier release from the ledger (no rebuild). prod's reviewers approve the job.\n\
         name: rollback\n\non:\n  workflow_dispatch:\n    inputs:\n\
         \x20     environment:\n        description: Environment to roll back\n        required: true\n\
         \x20       type: choice\n        options: [dev, staging, prod]\n\
         \x20     artifact:\n        description: Artifact (empty, every artifact)\n        required: false\n\
         \x20       type: string\n        default: \"\"\n\
         \x20     release:\n        description: Release id to go back to (empty, the previous good release)\n\
         \x20       required: false\n        type: string\n        default: \"\"\n\n\
         permissions:\n  contents: read\n\njobs:\n",
    );
    text.push_str(&job("rollback", None, "${{ inputs.environment }}", None));
    text.push_str(&setup(&[], false));
    text.push_str(&deploy_step(
        options,
        "Roll back",
        &[
            ("command", "rollback"),
            ("environment", "${{ inputs.environment }}"),
            ("artifacts", "${{ inputs.artifact }}"),
            ("release", "${{ inputs.release }}"),
            ("approve", "\"true\""),
        ],
    ));
    text
}

/// `.github/workflows/chain.yml`: the daily run, then the next repository's workflow.
pub fn chain_workflow(options: &Options, found: &[Found], next: &str) -> String {
    let mut text = format!(
        "# Written by `deploy init --chain {next}`. Every day: release this repository to dev, then,\n\
         # if that succeeded, start {next}'s deploy workflow (its `repository_dispatch` of type\n\
         # deploy-chain). CHAIN_TOKEN is a secret: a token allowed to dispatch to {next}.\n\
         name: chain\n\non:\n  schedule:\n    - cron: \"17 3 * * *\"\n  workflow_dispatch:\n\n\
         permissions:\n  contents: read\n\njobs:\n"
    );
    text.push_str(&job("daily", None, "dev", None));
    text.push_str(&setup(found, true));
    text.push_str(&deploy_step(
        options,
        "Release to dev",
        &[("command", "release"), ("environment", "dev")],
    ));
    text.push_str(&format!(
        "\n  next:\n    needs: daily\n    runs-on: ubuntu-24.04\n    timeout-minutes: 5\n\
         \x20   permissions: {{}}\n    steps:\n      - name: Start {next}\n        env:\n\
         \x20         GH_TOKEN: ${{{{ secrets.CHAIN_TOKEN }}}}\n          NEXT: {next}\n\
         \x20       run: gh api --method POST \"repos/${{NEXT}}/dispatches\" -f event_type=deploy-chain\n"
    ));
    text
}

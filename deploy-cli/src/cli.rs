//! The command line, as clap sees it. Kept free of behaviour: `main` maps it onto deploy-core.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use deploy_core::config::limits;

/// AWS-native deploys: publish images, DAGs and Lambda functions per environment, roll them out
/// safely, and keep a ledger of every release.
#[derive(Debug, Parser)]
#[command(name = "deploy", version, about, max_term_width = 100)]
pub struct Cli {
    /// The configuration file.
    #[arg(
        long,
        short = 'c',
        global = true,
        default_value = "deploy.toml",
        env = "DEPLOY_CONFIG"
    )]
    pub config: PathBuf,

    /// Output format: `human` (progress and tables) or `json` (one document, or JSON lines for events).
    #[arg(long, global = true, value_enum, default_value_t = OutputFormat::Human)]
    pub output: OutputFormat,

    /// More detail (repeat for AWS request logs).
    #[arg(long, short = 'v', global = true, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,

    /// Only errors.
    #[arg(long, short = 'q', global = true)]
    pub quiet: bool,

    #[command(subcommand)]
    pub command: Command,
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Progress on a terminal, plain lines otherwise.
    Human,
    /// Machine-readable JSON.
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Parse and check the configuration and every local source; makes no AWS call.
    Validate,
    /// Show what `release` would do in an environment, step by step.
    Plan(PlanArgs),
    /// Run a plan saved with `plan --out`; refused if the environment changed since.
    Apply(ApplyArgs),
    /// Publish artifacts to an environment (images: push to ECR) and record it in the ledger.
    Publish(PublishArgs),
    /// Publish and roll out: the CI step. Images with `strategy = "none"` go live once published.
    Release(PublishArgs),
    /// Roll out in <TO> exactly what is live in <FROM>: images are copied by digest.
    Promote(PromoteArgs),
    /// Go back to the previous good release (or --to RELEASE_ID), restored from the ledger
    #[command(long_about = ROLLBACK_ABOUT)]
    Rollback(RollbackArgs),
    /// What differs between what two environments run (read only)
    Diff(DiffArgs),
    /// What is live where, from the ledger.
    Status(StatusArgs),
    /// The release ledger, newest first, with delivery metrics.
    History(HistoryArgs),
    /// Inspect or force-release an environment's lock.
    Lock(LockArgs),
    /// The least-privilege IAM policy for what the configuration does in an environment
    IamPolicy(IamPolicyArgs),
    /// Write deploy.toml and GitHub workflows for the artifacts found in a repository.
    Init(InitArgs),
    /// Write the manual pages (roff), one per command.
    Man(ManArgs),
    /// Print a shell completion script.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

impl Command {
    /// Whether the command applies a plan that changes AWS (its outcome goes to the GitHub
    /// step outputs).
    pub fn changes_aws(&self) -> bool {
        matches!(
            self,
            Command::Apply(_)
                | Command::Publish(_)
                | Command::Release(_)
                | Command::Promote(_)
                | Command::Rollback(_)
        )
    }
}

const ROLLBACK_ABOUT: &str = "\
Go back to the previous good release of each artifact (or the one --to names), from what the \
ledger recorded of it. Nothing is rebuilt, pushed or uploaded, and no up migration runs
(the replaced release's `pre_deploy.rollback_command` runs last, when it has one).

What each kind restores:
  ecs-rolling            the service on the task definition revision the release ran (registered
                         again if clean-up removed it), followed like a release: circuit breaker,
                         health check
  codedeploy-blue-green  a CodeDeploy deployment of that revision, test-listener gate included
  ecs-blue-green         a service deployment of that revision, all at once (--gradual: the
                         configured canary or linear shift)
  task-definitions       each family's latest revision on the recorded digest; rules and
                         schedules point at it
  strategy none          the live pointer on the recorded digest
  dags                   the recorded object versions under the prefix, exactly
  lambda                 the alias on the recorded version (its CodeSha256 checked first), all at
                         once (--gradual: the configured steps and gates)

The record has operation `rollback` and names the release it restored; that release is live \
again for status, promote and the next rollback.";

/// Flags shared by commands that talk to AWS.
#[derive(Debug, Args)]
pub struct AwsArgs {
    /// Upper bound for the whole command, e.g. `10m` (default: `settings.timeout`, 30m).
    #[arg(long, value_parser = parse_timeout)]
    pub timeout: Option<std::time::Duration>,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// The environment.
    pub env: String,
    /// Artifacts to include (default: all).
    pub artifacts: Vec<String>,
    /// Version to release (default: $GITHUB_SHA, else `git rev-parse HEAD`).
    #[arg(long = "version", value_name = "V")]
    pub release_version: Option<String>,
    /// Also save the plan as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub aws: AwsArgs,
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// The plan file (`deploy plan <env> --out FILE`).
    pub plan: PathBuf,
    #[command(flatten)]
    pub change: ChangeArgs,
    #[command(flatten)]
    pub aws: AwsArgs,
}

/// Flags of commands that change an environment.
#[derive(Debug, Args)]
pub struct ChangeArgs {
    /// Print the plan and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Confirm a change of an environment that needs approval (`approval = true`).
    #[arg(long)]
    pub approve: bool,
    /// Do not check, before the change, that the secrets, roles and log groups a task
    /// definition references exist.
    #[arg(long)]
    pub skip_verify: bool,
    /// Let a DAG sync, promotion or rollback delete more than `max_delete_share` of the files
    /// under its prefix.
    #[arg(long)]
    pub allow_mass_delete: bool,
    /// Wait up to this long for another deploy's lock instead of failing with exit code 4.
    #[arg(long, value_name = "DURATION", value_parser = parse_wait_lock)]
    pub wait_lock: Option<std::time::Duration>,
}

#[derive(Debug, Args)]
pub struct PublishArgs {
    /// The environment.
    pub env: String,
    /// Artifacts to publish (default: all).
    pub artifacts: Vec<String>,
    /// Version to publish, used as the image tag (default: $GITHUB_SHA, else `git rev-parse HEAD`).
    #[arg(long = "version", value_name = "V")]
    pub release_version: Option<String>,
    #[command(flatten)]
    pub change: ChangeArgs,
    #[command(flatten)]
    pub aws: AwsArgs,
}

#[derive(Debug, Args)]
pub struct PromoteArgs {
    /// The environment whose live releases are copied.
    pub from: String,
    /// The environment that receives them.
    pub to: String,
    /// Artifacts to promote (default: all).
    pub artifacts: Vec<String>,
    #[command(flatten)]
    pub change: ChangeArgs,
    #[command(flatten)]
    pub aws: AwsArgs,
}

#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// The environment.
    pub env: String,
    /// Artifacts to roll back (default: all).
    pub artifacts: Vec<String>,
    /// The release to go back to, its id or the short form `deploy history` shows; one
    /// artifact only.
    #[arg(long, value_name = "RELEASE_ID")]
    pub to: Option<String>,
    /// Shift traffic back with the configured canary/linear steps and gates (ecs-blue-green,
    /// Lambda) instead of all at once.
    #[arg(long)]
    pub gradual: bool,
    #[command(flatten)]
    pub change: ChangeArgs,
    #[command(flatten)]
    pub aws: AwsArgs,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The first environment.
    pub a: String,
    /// The second environment.
    pub b: String,
    /// Artifacts to compare (default: all).
    pub artifacts: Vec<String>,
    /// Exit 1 when something differs (as `git diff --exit-code`).
    #[arg(long)]
    pub exit_code: bool,
    #[command(flatten)]
    pub aws: AwsArgs,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Environments (default: all).
    pub envs: Vec<String>,
    /// Exit 1 when what runs drifted from the live release (a scheduled drift check).
    #[arg(long)]
    pub exit_code: bool,
    #[command(flatten)]
    pub aws: AwsArgs,
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// Environment (default: all).
    pub env: Option<String>,
    /// Artifact (default: all).
    pub artifact: Option<String>,
    /// How many records, newest first.
    #[arg(long, short = 'n', default_value_t = 20)]
    pub limit: usize,
    /// The window of the delivery metrics, back from now (`30d`, `90d`, `12h`).
    #[arg(long, default_value = "30d", value_parser = parse_history_window)]
    pub since: std::time::Duration,
    #[command(flatten)]
    pub aws: AwsArgs,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// The repository to look in and write to.
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    /// Project name (default: the directory's name).
    #[arg(long)]
    pub project: Option<String>,
    /// AWS region of the environments.
    #[arg(long, default_value = "eu-west-1")]
    pub region: String,
    /// AWS account of the environments (12 digits; edit deploy.toml when they differ).
    #[arg(long, default_value = "123456789012")]
    pub account: String,
    /// The deploy GitHub Action, pinned: OWNER/REPO@COMMIT.
    #[arg(long)]
    pub action: Option<String>,
    /// Also write a daily workflow that, on success, starts OWNER/REPO's deploy workflow.
    #[arg(long, value_name = "OWNER/REPO")]
    pub chain: Option<String>,
    /// Print the files instead of writing them.
    #[arg(long)]
    pub dry_run: bool,
    /// Overwrite files that exist with other content.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct IamPolicyArgs {
    /// The environment.
    pub env: String,
    /// What to print: the statements with their purpose, the policy document, or an
    /// `AWS::IAM::ManagedPolicy` resource for the infra stack (`--output json` is `json`).
    #[arg(long, value_enum, default_value = "text")]
    pub format: PolicyFormat,
    /// The stack's logical id of the role the CloudFormation snippet attaches the policy to.
    #[arg(long, default_value = "DeployerRole")]
    pub role: String,
    /// Read nothing from AWS: the roles and secrets live task definitions name are granted
    /// account-wide instead (a warning says which).
    #[arg(long)]
    pub offline: bool,
    #[command(flatten)]
    pub aws: AwsArgs,
}

/// How `iam-policy` prints the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PolicyFormat {
    /// Each statement with why deploy needs it.
    Text,
    /// The IAM policy document.
    Json,
    /// An `AWS::IAM::ManagedPolicy` resource (YAML) attached to `--role`.
    Cloudformation,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// The directory to write deploy.1 and deploy-<command>.1 into.
    #[arg(long, default_value = "man")]
    pub out: PathBuf,
}

#[derive(Debug, Args)]
pub struct LockArgs {
    /// The environment.
    pub env: String,
    /// What to do.
    #[arg(value_enum)]
    pub action: LockAction,
    /// Show what would happen and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Do not ask for confirmation.
    #[arg(long, short = 'y')]
    pub yes: bool,
    #[command(flatten)]
    pub aws: AwsArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LockAction {
    /// Who holds the lock, since when, until when.
    Status,
    /// End the current lease, whoever holds it (recorded in the ledger).
    Release,
}

/// `--timeout`: within the bounds of `settings.timeout`.
fn parse_timeout(text: &str) -> Result<std::time::Duration, String> {
    limits::parse_duration(text, limits::COMMAND_TIMEOUT)
}

/// `history --since`: an hour to ten years.
fn parse_history_window(text: &str) -> Result<std::time::Duration, String> {
    limits::parse_duration(text, limits::HISTORY_WINDOW)
}

/// `--wait-lock`: from 0 (do not wait) to a day.
fn parse_wait_lock(text: &str) -> Result<std::time::Duration, String> {
    limits::parse_duration(text, limits::WAIT_LOCK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_within_their_bounds() {
        assert_eq!(
            parse_timeout("1h30m"),
            Ok(std::time::Duration::from_secs(5400))
        );
        assert_eq!(
            parse_wait_lock("250ms"),
            Ok(std::time::Duration::from_millis(250))
        );
        assert_eq!(parse_wait_lock("0s"), Ok(std::time::Duration::ZERO));
        assert!(parse_timeout("0s").is_err());
        assert!(parse_timeout("25h").is_err());
        assert!(parse_timeout("10").is_err());
        assert!(parse_timeout("99999999999999999h").is_err());
    }

    #[test]
    fn command_line_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}

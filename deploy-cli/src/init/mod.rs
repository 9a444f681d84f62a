//! `deploy init`: finds the artifacts of a repository and writes `deploy.toml` and the GitHub
//! workflows that release, promote and roll them back. It asks nothing; what it cannot know
//! (accounts, the deploy action's commit) comes from flags or stays a marked placeholder. An
//! existing file that differs is never overwritten without `--force` (and then nothing is
//! written at all); a file already as it would be is left alone, so a second `init` changes
//! nothing. `--dry-run` prints the files instead.

mod detect;
mod render;

use std::path::Path;

use crate::cli::InitArgs;
use crate::commands::UsageError;
use crate::output::Output;

/// The action used when `--action` is not given: a marked placeholder to replace.
pub const PLACEHOLDER_ACTION: &str = "OWNER/deploy@0000000000000000000000000000000000000000";

/// Runs `deploy init` in `args.dir`.
pub fn init(out: &Output, args: &InitArgs) -> deploy_core::Result<()> {
    let root = &args.dir;
    if !root.is_dir() {
        return Err(UsageError(format!("{} is not a directory", root.display())).into());
    }
    let options = options(args)?;
    let found = detect::detect(root, &options.project);
    let files = files(&options, &found);
    if args.dry_run {
        for (path, text) in &files {
            out.line(format!("# {path}\n{text}"));
        }
        out.line("dry run: nothing was written");
        return Ok(());
    }
    let plan = compare(root, &files, args.force)?;
    for (path, text, state) in &plan {
        let at = root.join(path);
        match state {
            State::Same => out.line(format!("unchanged {path}")),
            State::New | State::Replace => {
                if let Some(parent) = at.parent() {
                    std::fs::create_dir_all(parent).map_err(|e| write_error(&at, &e))?;
                }
                std::fs::write(&at, text).map_err(|e| write_error(&at, &e))?;
                let verb = if *state == State::New {
                    "wrote"
                } else {
                    "replaced"
                };
                out.line(format!("{verb} {path}"));
            }
        }
    }
    summarize(out, &options, &found);
    Ok(())
}

#[derive(Debug, PartialEq, Eq)]
enum State {
    New,
    Same,
    Replace,
}

/// Each file with what writing it would do; refuses (writing nothing) if one exists with
/// other content and `force` is not given.
fn compare(
    root: &Path,
    files: &[(String, String)],
    force: bool,
) -> Result<Vec<(String, String, State)>, UsageError> {
    let mut plan = Vec::new();
    let mut conflicts = Vec::new();
    for (path, text) in files {
        let state = match std::fs::read_to_string(root.join(path)) {
            Ok(existing) if existing == *text => State::Same,
            Ok(_) => {
                conflicts.push(path.clone());
                State::Replace
            }
            Err(_) if root.join(path).exists() => {
                conflicts.push(path.clone());
                State::Replace
            }
            Err(_) => State::New,
        };
        plan.push((path.clone(), text.clone(), state));
    }
    if !conflicts.is_empty() && !force {
        return Err(UsageError(format!(
            "{} already exist(s) with other content; nothing was written. Compare with \
             `deploy init --dry-run`, or overwrite with --force",
            conflicts.join(", ")
        )));
    }
    Ok(plan)
}

fn files(options: &render::Options, found: &[detect::Found]) -> Vec<(String, String)> {
    let mut files = vec![
        ("deploy.toml".to_owned(), render::config(options, found)),
        (
            ".github/workflows/deploy.yml".to_owned(),
            render::deploy_workflow(options, found),
        ),
        (
            ".github/workflows/rollback.yml".to_owned(),
            render::rollback_workflow(options),
        ),
    ];
    if let Some(next) = &options.chain {
        files.push((
            ".github/workflows/chain.yml".to_owned(),
            render::chain_workflow(options, found, next),
        ));
    }
    files
}

/// The options, each checked (they end up in YAML and TOML).
fn options(args: &InitArgs) -> Result<render::Options, UsageError> {
    let project = match &args.project {
        Some(project) => project.clone(),
        None => {
            let dir = std::fs::canonicalize(&args.dir).unwrap_or_else(|_| args.dir.clone());
            let name = dir.file_name().map(|n| n.to_string_lossy().into_owned());
            detect::name_of(&name.unwrap_or_else(|| "project".into()))
        }
    };
    if detect::name_of(&project) != project {
        return Err(UsageError(format!(
            "--project `{project}` is not a project name: lowercase letters, digits and `-`, starting with a letter"
        )));
    }
    let plain = |s: &str, extra: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || extra.contains(c))
    };
    if !(plain(&args.region, "-") && args.region.contains('-')) {
        return Err(UsageError(format!(
            "--region `{}` is not a region such as eu-west-1",
            args.region
        )));
    }
    if !(args.account.len() == 12 && args.account.chars().all(|c| c.is_ascii_digit())) {
        return Err(UsageError(format!(
            "--account `{}` is not a 12-digit AWS account id",
            args.account
        )));
    }
    let action = args
        .action
        .clone()
        .unwrap_or_else(|| PLACEHOLDER_ACTION.into());
    let pinned = action.split_once('@').is_some_and(|(repo, sha)| {
        repo.split('/').count() >= 2
            && repo.split('/').all(|part| plain(part, "_.-"))
            && sha.len() == 40
            && sha
                .chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
    });
    if !pinned {
        return Err(UsageError(format!(
            "--action `{action}` is not OWNER/REPO@COMMIT: actions are pinned by their full commit SHA"
        )));
    }
    if let Some(next) = &args.chain {
        let ok = next.split('/').count() == 2 && next.split('/').all(|part| plain(part, "_.-"));
        if !ok {
            return Err(UsageError(format!("--chain `{next}` is not OWNER/REPO")));
        }
    }
    Ok(render::Options {
        project,
        region: args.region.clone(),
        account: args.account.clone(),
        action,
        chain: args.chain.clone(),
    })
}

fn summarize(out: &Output, options: &render::Options, found: &[detect::Found]) {
    if found.is_empty() {
        out.line("found no Dockerfile, dags/ folder or Lambda handler: add artifacts to deploy.toml (docs/config.md)");
    }
    for artifact in found {
        let what = match artifact {
            detect::Found::Image { context, .. } => {
                format!("image built from {context}/Dockerfile")
            }
            detect::Found::Dags { folder } => format!("DAG folder {folder}"),
            detect::Found::Lambda {
                folder, handler, ..
            } => format!("Lambda function in {folder} ({handler})"),
        };
        out.line(format!("artifact {}: {what}", artifact.name()));
    }
    if options.action == PLACEHOLDER_ACTION {
        out.line(format!(
            "next: replace {PLACEHOLDER_ACTION} in .github/workflows/ with the deploy action's \
             OWNER/REPO@COMMIT (or run again with --action and --force)"
        ));
    }
    out.line("next: set DEPLOY_ROLE_ARN and AWS_REGION in the dev, staging and prod GitHub environments (prod with required reviewers), then `deploy validate`");
}

fn write_error(path: &Path, err: &std::io::Error) -> UsageError {
    UsageError(format!("cannot write {}: {err}", path.display()))
}

use deploy_core::config::{Config, ConfigError};
use serde::Serialize;

use crate::cli::Cli;
use crate::output::Output;

#[derive(Serialize)]
struct Summary<'a> {
    valid: bool,
    project: &'a str,
    environments: Vec<EnvSummary<'a>>,
}

#[derive(Serialize)]
struct EnvSummary<'a> {
    name: &'a str,
    account: &'a str,
    region: &'a str,
    state_bucket: &'a str,
    promote_from: Option<&'a str>,
    approval: bool,
    artifacts: Vec<ArtifactSummary<'a>>,
}

#[derive(Serialize)]
struct ArtifactSummary<'a> {
    name: &'a str,
    kind: &'static str,
    strategy: &'static str,
    /// The artifact as this environment resolves it (placeholders expanded, overrides merged).
    detail: serde_json::Value,
}

pub fn validate(cli: &Cli, out: &Output) -> deploy_core::Result<()> {
    let config = Config::load(&cli.config)?;
    super::warn_config(&config);
    let problems = config.check_sources();
    if !problems.is_empty() {
        return Err(ConfigError::Invalid {
            diagnostics: problems,
        }
        .into());
    }
    let summary = summarize(&config);
    if out.json() {
        out.document(&summary);
        return Ok(());
    }
    out.line(format!(
        "{}: configuration is valid ({})",
        config.path().display(),
        config.project
    ));
    for env in &summary.environments {
        let mut notes = Vec::new();
        if let Some(from) = env.promote_from {
            notes.push(format!("promotes from {from}"));
        }
        if env.approval {
            notes.push("needs approval".to_owned());
        }
        let notes = if notes.is_empty() {
            String::new()
        } else {
            format!(", {}", notes.join(", "))
        };
        out.line(format!(
            "  {} -> account {} in {}{notes}",
            env.name, env.account, env.region
        ));
        for artifact in &env.artifacts {
            out.line(format!(
                "    {:<12} {:<7} {}",
                artifact.name, artifact.kind, artifact.strategy
            ));
        }
    }
    Ok(())
}

fn summarize(config: &Config) -> Summary<'_> {
    Summary {
        valid: true,
        project: &config.project,
        environments: config
            .environments_in_order()
            .into_iter()
            .map(|env| EnvSummary {
                name: &env.name,
                account: env.target.account.as_str(),
                region: &env.target.region,
                state_bucket: &env.target.state_bucket,
                promote_from: env.promote_from.as_deref(),
                approval: env.approval,
                artifacts: env
                    .select(&[])
                    .unwrap_or_default()
                    .into_iter()
                    .map(|spec| ArtifactSummary {
                        name: &spec.name,
                        kind: spec.kind().as_str(),
                        strategy: spec.detail.strategy().as_str(),
                        detail: spec.detail.to_json(),
                    })
                    .collect(),
            })
            .collect(),
    }
}

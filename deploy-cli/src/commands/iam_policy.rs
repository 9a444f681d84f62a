use deploy_core::config::Config;
use deploy_core::iam::{Policy, cloudformation};
use deploy_core::ops::IamPolicyRequest;

use crate::cli::{IamPolicyArgs, PolicyFormat};
use crate::output::Output;

/// `iam-policy <env>`: the least-privilege policy, as a document (`--output json`), a
/// CloudFormation snippet (`--format cloudformation`), or statements with their purpose.
pub async fn iam_policy(
    out: &Output,
    config: Config,
    args: &IamPolicyArgs,
) -> deploy_core::Result<()> {
    let request = IamPolicyRequest {
        environment: &args.env,
        offline: args.offline,
    };
    let policy = deploy_core::ops::iam_policy(&config, &request).await?;
    for note in &policy.notes {
        eprintln!("warning: {note}");
    }
    match (args.format, out.json()) {
        (PolicyFormat::Cloudformation, _) => print!("{}", cloudformation(&policy, &args.role)),
        (PolicyFormat::Json, _) | (_, true) => out.document(&policy.document()),
        (PolicyFormat::Text, false) => text(out, &policy),
    }
    Ok(())
}

fn text(out: &Output, policy: &Policy) {
    out.line(format!(
        "What deploy calls in {}: {} statements (`--output json` prints the policy document).",
        policy.environment,
        policy.statements.len()
    ));
    for statement in &policy.statements {
        out.line(format!("\n{}: {}", statement.sid, statement.why));
        for action in &statement.actions {
            out.line(format!("  allow {action}"));
        }
        for resource in &statement.resources {
            out.line(format!("    on {resource}"));
        }
        if let Some(condition) = &statement.condition {
            out.line(format!("    when {condition}"));
        }
    }
}

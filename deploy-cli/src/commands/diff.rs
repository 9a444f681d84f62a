use deploy_core::config::Config;
use deploy_core::ops::{ArtifactDiff, DiffRequest, FieldDiff, Side};

use crate::cli::DiffArgs;
use crate::output::Output;

/// `diff <a> <b>`: what differs between what two environments run.
pub async fn diff(out: &Output, config: Config, args: &DiffArgs) -> deploy_core::Result<()> {
    let request = DiffRequest {
        a: &args.a,
        b: &args.b,
        artifacts: &args.artifacts,
    };
    let diffs = deploy_core::ops::diff(&config, &request).await?;
    if out.json() {
        out.document(&diffs);
    } else {
        table(out, args, &diffs);
    }
    let differing = diffs.iter().filter(|d| d.differs()).count();
    if args.exit_code && differing > 0 {
        return Err(deploy_core::Error::failure(format!(
            "{differing} of {} artifacts differ between {} and {}",
            diffs.len(),
            args.a,
            args.b
        )));
    }
    Ok(())
}

fn table(out: &Output, args: &DiffArgs, diffs: &[ArtifactDiff]) {
    let row = |artifact: &str, field: &str, a: &str, b: &str| {
        format!("{artifact:<12} {field:<32} {a:<36} {b}")
    };
    out.line(row(
        "ARTIFACT",
        "FIELD",
        &args.a.to_uppercase(),
        &args.b.to_uppercase(),
    ));
    for diff in diffs {
        let [a, b] = &diff.live;
        let bytes = if diff.same_bytes {
            "same bytes"
        } else {
            "bytes"
        };
        out.line(row(&diff.artifact, bytes, &release(a), &release(b)));
        let mut fields: Vec<&FieldDiff> = diff.differences.iter().collect();
        if out.verbose > 0 {
            fields.extend(&diff.expected);
        }
        for field in fields {
            let value = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
            out.line(row("", &field.field, &value(&field.a), &value(&field.b)));
        }
        for problem in &diff.problems {
            out.line(format!("{:<12} could not be read: {problem}", ""));
        }
        if !diff.expected.is_empty() && out.verbose == 0 {
            out.line(format!(
                "{:<12} ({} fields differ only by environment name, account or region; -v shows them)",
                "",
                diff.expected.len()
            ));
        }
    }
}

/// `version (content id prefix)`, or `-` when nothing is live.
fn release(side: &Side) -> String {
    let Some(content) = &side.content_id else {
        return "-".into();
    };
    let version: String = side
        .version
        .as_deref()
        .unwrap_or("?")
        .chars()
        .take(12)
        .collect();
    let short: String = content
        .trim_start_matches("sha256:")
        .chars()
        .take(12)
        .collect();
    format!("{version} ({short})")
}

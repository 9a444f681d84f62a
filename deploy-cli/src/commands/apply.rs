use std::io::Read;

use deploy_core::config::Config;
use deploy_core::ops;

use super::{UsageError, apply, confirm};
use crate::cli::ApplyArgs;
use crate::output::Output;

/// `apply <plan.json>`: run a saved plan.
pub async fn apply_saved(
    out: &Output,
    config: Config,
    args: &ApplyArgs,
    stop: &super::Stop,
) -> deploy_core::Result<()> {
    let name = args.plan.display().to_string();
    let text = read_plan(&args.plan)?;
    let prepared = ops::saved(&config, &name, &text, confirm(&args.change)).await?;
    apply(out, &config, prepared, None, &args.change, stop).await
}

/// The plan file's text: a regular file of at most [`ops::MAX_PLAN_BYTES`].
fn read_plan(path: &std::path::Path) -> Result<String, UsageError> {
    let refuse =
        |why: String| UsageError(format!("cannot read the plan {}: {why}", path.display()));
    let meta = std::fs::metadata(path).map_err(|e| refuse(e.to_string()))?;
    if !meta.is_file() {
        return Err(refuse("not a regular file".into()));
    }
    if meta.len() > ops::MAX_PLAN_BYTES {
        return Err(refuse(format!(
            "{} bytes, more than a plan ever is ({} at most)",
            meta.len(),
            ops::MAX_PLAN_BYTES
        )));
    }
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(ops::MAX_PLAN_BYTES).read_to_string(&mut text))
        .map_err(|e| refuse(e.to_string()))?;
    Ok(text)
}

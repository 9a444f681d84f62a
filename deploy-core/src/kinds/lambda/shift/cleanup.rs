//! `keep_versions`: once the alias is on the new version, published versions beyond the newest
//! `keep` are deleted, except those an alias points or routes to and the version the alias was
//! on before, which the shift's undo points it back at if a later step of the release fails.

use std::collections::BTreeSet;

use crate::kinds::lambda::publish::LambdaError;

/// Deletes the versions of `function` beyond the newest `keep` that no alias uses, nor the
/// undo (`previous`); returns those deleted.
pub(super) async fn prune(
    lambda: &aws_sdk_lambda::Client,
    function: &str,
    keep: u32,
    previous: Option<&str>,
) -> Result<Vec<String>, LambdaError> {
    let mut protected = aliased(lambda, function).await?;
    protected.extend(previous.map(str::to_owned));
    let mut versions = versions(lambda, function).await?;
    versions.sort_unstable_by(|a, b| b.cmp(a));
    let mut deleted = Vec::new();
    for version in versions.into_iter().skip(keep as usize) {
        let version = version.to_string();
        if protected.contains(&version) {
            continue;
        }
        lambda
            .delete_function()
            .function_name(function)
            .qualifier(&version)
            .send()
            .await
            .map_err(|err| LambdaError::sdk(function, "lambda:DeleteFunction", err))?;
        deleted.push(version);
    }
    Ok(deleted)
}

/// The published version numbers of `function`.
async fn versions(
    lambda: &aws_sdk_lambda::Client,
    function: &str,
) -> Result<Vec<u64>, LambdaError> {
    let mut numbers = Vec::new();
    let mut pages = lambda
        .list_versions_by_function()
        .function_name(function)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page =
            page.map_err(|err| LambdaError::sdk(function, "lambda:ListVersionsByFunction", err))?;
        numbers.extend(
            page.versions()
                .iter()
                .filter_map(|v| v.version().and_then(|n| n.parse::<u64>().ok())),
        );
    }
    Ok(numbers)
}

/// Every version an alias of `function` points or routes to.
async fn aliased(
    lambda: &aws_sdk_lambda::Client,
    function: &str,
) -> Result<BTreeSet<String>, LambdaError> {
    let mut used = BTreeSet::new();
    let mut pages = lambda
        .list_aliases()
        .function_name(function)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|err| LambdaError::sdk(function, "lambda:ListAliases", err))?;
        for alias in page.aliases() {
            used.extend(alias.function_version().map(str::to_owned));
            if let Some(weights) = alias
                .routing_config()
                .and_then(|r| r.additional_version_weights())
            {
                used.extend(weights.keys().cloned());
            }
        }
    }
    Ok(used)
}

//! Old task-definition revisions: after a rollout, the newest revision of a family and the
//! `keep_revisions` before it stay ACTIVE (the previous one, which an undo or a rollback goes
//! back to, is always among them); older ones are deregistered. Cleaning up never fails a
//! release: a revision that cannot be deregistered is reported and left.

use crate::aws::SdkFailure;
use crate::engine::StepContext;
use crate::events::Event;

/// The family and revision of a task-definition ARN (`.../task-definition/api:41`).
fn family_and_revision(arn: &str) -> Option<(&str, u32)> {
    let name = arn.rsplit('/').next()?;
    let (family, revision) = name.rsplit_once(':')?;
    Some((family, revision.parse().ok()?))
}

/// The family of a task-definition ARN or `family:revision`.
pub(crate) fn family_of(arn: &str) -> Option<&str> {
    family_and_revision(arn).map(|(family, _)| family)
}

/// Deregisters the ACTIVE revisions of `family` older than the newest `keep + 1`, except
/// those in `in_use`. Returns how many were deregistered.
pub(crate) async fn old_revisions(
    cx: &StepContext<'_>,
    artifact: &str,
    family: &str,
    keep: u32,
    in_use: &[&str],
) -> usize {
    let active = match active_revisions(cx, family).await {
        Ok(active) => active,
        Err(err) => {
            note(
                cx,
                artifact,
                format!("could not list the revisions of {family}: {err}"),
            );
            return 0;
        }
    };
    let keep = usize::try_from(keep)
        .unwrap_or(usize::MAX)
        .saturating_add(1);
    let mut removed = 0;
    for arn in active.iter().skip(keep) {
        if in_use.contains(&arn.as_str()) {
            continue;
        }
        let answer = cx
            .clients()
            .ecs
            .deregister_task_definition()
            .task_definition(arn)
            .send()
            .await;
        match answer {
            Ok(_) => removed += 1,
            Err(err) => note(
                cx,
                artifact,
                format!("could not deregister {arn}: {}", SdkFailure::new(err)),
            ),
        }
    }
    if removed > 0 {
        note(
            cx,
            artifact,
            format!("deregistered {removed} old revisions of {family} (kept the newest {keep})"),
        );
    }
    removed
}

/// The ACTIVE revisions of exactly `family`, newest first.
async fn active_revisions(cx: &StepContext<'_>, family: &str) -> Result<Vec<String>, SdkFailure> {
    let mut found: Vec<(u32, String)> = Vec::new();
    let mut token = None;
    loop {
        let page = cx
            .clients()
            .ecs
            .list_task_definitions()
            .family_prefix(family)
            .status(aws_sdk_ecs::types::TaskDefinitionStatus::Active)
            .set_next_token(token)
            .send()
            .await
            .map_err(SdkFailure::new)?;
        for arn in page.task_definition_arns() {
            if let Some((name, revision)) = family_and_revision(arn)
                && name == family
            {
                found.push((revision, arn.clone()));
            }
        }
        token = page.next_token().map(str::to_owned);
        if token.is_none() {
            break;
        }
    }
    found.sort_by_key(|(revision, _)| std::cmp::Reverse(*revision));
    Ok(found.into_iter().map(|(_, arn)| arn).collect())
}

fn note(cx: &StepContext<'_>, artifact: &str, message: String) {
    cx.reporter().report(&Event::Note {
        message: format!("{artifact}: {message}"),
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_and_revisions_come_from_the_arn() {
        let arn = "arn:aws:ecs:eu-west-1:123456789012:task-definition/api-worker:41";
        assert_eq!(family_and_revision(arn), Some(("api-worker", 41)));
        assert_eq!(family_of("api:7"), Some("api"));
        assert_eq!(family_and_revision("api"), None);
        assert_eq!(
            family_and_revision("arn:x:task-definition/api:latest"),
            None
        );
    }
}

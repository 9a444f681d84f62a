//! The grammar ECS applies to a task definition reference, checked when the configuration
//! loads rather than by the API halfway through a release.

use crate::config::aws_names::{Home, foreign, name_chars, region_like, twelve_digits};
use crate::config::checks::Problem;

/// The longest task definition family.
const FAMILY_MAX: usize = 255;

const TASK_DEFINITION_HELP: &str = "write a family (`planwise-migrate-{env}`: up to 255 letters, \
     digits, `-` and `_`), `family:revision`, or an ARN \
     `arn:aws:ecs:<region>:<account>:task-definition/<family>[:<revision>]` of the environment's \
     account and region";

/// Why `value` is not a task definition of the environment `home`: a family, `family:revision`
/// or a task definition ARN in `home`'s account and region.
pub(crate) fn task_definition_problem(value: &str, home: Home<'_>) -> Option<Problem> {
    let bad = || {
        Some(Problem::new(
            format!("`{value}` is not a task definition family or ARN"),
            TASK_DEFINITION_HELP,
        ))
    };
    let (family, place) = match value.strip_prefix("arn:") {
        Some(rest) => {
            let parts: Vec<&str> = rest.splitn(5, ':').collect();
            let [partition, "ecs", region, account, resource] = parts.as_slice() else {
                return bad();
            };
            let Some(family) = resource.strip_prefix("task-definition/") else {
                return bad();
            };
            if !partition.starts_with("aws") || !twelve_digits(account) || !region_like(region) {
                return bad();
            }
            (family, Some((*account, *region)))
        }
        None => (value, None),
    };
    let family = match family.split_once(':') {
        Some((family, revision)) => {
            let revision_ok = !revision.is_empty()
                && revision.bytes().all(|b| b.is_ascii_digit())
                && revision.parse::<u32>().is_ok_and(|r| r > 0);
            if !revision_ok {
                return bad();
            }
            family
        }
        None => family,
    };
    if family.is_empty() || family.len() > FAMILY_MAX || !name_chars(family) {
        return bad();
    }
    let (account, region) = place.unzip();
    foreign(value, "task definition", account, region, home)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOME: Home<'static> = Home::TEST;

    #[test]
    fn task_definitions_are_families_or_arns_of_home() {
        for good in [
            "planwise-migrate-dev",
            "migrate:3",
            "arn:aws:ecs:eu-west-1:111111111111:task-definition/migrate",
            "arn:aws:ecs:eu-west-1:111111111111:task-definition/migrate:12",
        ] {
            assert_eq!(task_definition_problem(good, HOME), None, "{good}");
        }
        for bad in [
            "",
            "has space",
            "migrate:",
            "migrate:0",
            "migrate:x",
            "a/b",
            "arn:aws:ecs:eu-west-1:111111111111:service/migrate",
            "arn:aws:lambda:eu-west-1:111111111111:task-definition/migrate",
        ] {
            let problem = task_definition_problem(bad, HOME).expect(bad);
            assert!(problem.message.contains("not a task definition"), "{bad}");
        }
        let foreign = "arn:aws:ecs:eu-west-1:222222222222:task-definition/migrate";
        let problem = task_definition_problem(foreign, HOME).expect("foreign");
        assert!(
            problem.message.contains("account 222222222222"),
            "{problem:?}"
        );
        let other_region = "arn:aws:ecs:us-east-1:111111111111:task-definition/migrate:1";
        assert!(task_definition_problem(other_region, HOME).is_some());
    }
}

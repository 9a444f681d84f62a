//! The grammars AWS applies to the names a rollout hands to Lambda, ECS and CloudWatch: Lambda
//! function names and ARNs, alias names and handlers, task definition references, alarm names.
//! Pure functions over expanded values, so a bad value is refused when the configuration loads
//! rather than by the API halfway through a release.

use super::checks::Problem;

/// The longest bare Lambda function name.
const FUNCTION_NAME_MAX: usize = 64;
/// The longest Lambda function ARN (full or partial).
const FUNCTION_ARN_MAX: usize = 140;
/// The longest Lambda alias name.
const ALIAS_MAX: usize = 128;
/// The longest CloudWatch alarm name.
const ALARM_MAX: usize = 255;
/// The longest task definition family.
const FAMILY_MAX: usize = 255;

/// The account and region a name must belong to: the environment's.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Home<'a> {
    pub account: &'a str,
    pub region: &'a str,
}

/// A Lambda function named by a configuration, split into what it says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FunctionRef<'a> {
    /// The region of a full ARN.
    pub region: Option<&'a str>,
    /// The account of a full or partial ARN.
    pub account: Option<&'a str>,
    /// The function name.
    pub name: &'a str,
}

const FUNCTION_HELP: &str = "write a function name (1 to 64 letters, digits, `-` and `_`), a \
     partial ARN `<account>:function:<name>` or a full ARN \
     `arn:aws:lambda:<region>:<account>:function:<name>` (at most 140 characters, no version or \
     alias qualifier)";

fn name_chars(s: &str) -> bool {
    s.chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn twelve_digits(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

/// Splits a Lambda function name, partial ARN or full ARN, following Lambda's grammar.
pub(crate) fn parse_function(value: &str) -> Result<FunctionRef<'_>, Problem> {
    let bad = || {
        Problem::new(
            format!("`{value}` is not a Lambda function name or ARN"),
            FUNCTION_HELP,
        )
    };
    let parts: Vec<&str> = value.split(':').collect();
    let parsed = match parts.as_slice() {
        [name] => FunctionRef {
            region: None,
            account: None,
            name,
        },
        [account, "function", name] if twelve_digits(account) => FunctionRef {
            region: None,
            account: Some(account),
            name,
        },
        [
            "arn",
            partition,
            "lambda",
            region,
            account,
            "function",
            name,
        ] if partition.starts_with("aws") && twelve_digits(account) && region_like(region) => {
            FunctionRef {
                region: Some(region),
                account: Some(account),
                name,
            }
        }
        _ => return Err(bad()),
    };
    let max = if parts.len() == 1 {
        FUNCTION_NAME_MAX
    } else {
        FUNCTION_ARN_MAX
    };
    let name_ok = !parsed.name.is_empty()
        && parsed.name.len() <= FUNCTION_NAME_MAX
        && name_chars(parsed.name);
    if !name_ok || value.len() > max {
        return Err(bad());
    }
    Ok(parsed)
}

/// `eu-west-1`, `us-gov-west-1`: lowercase words and a number, joined by `-`.
fn region_like(region: &str) -> bool {
    region.split('-').count() >= 3
        && region
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// Why the function `value` cannot be used in the environment `home`, if it cannot: a name that
/// Lambda refuses, or an ARN of another account or region.
pub(crate) fn function_problem(value: &str, home: Home<'_>) -> Option<Problem> {
    let function = match parse_function(value) {
        Ok(function) => function,
        Err(problem) => return Some(problem),
    };
    foreign(
        value,
        "Lambda function",
        function.account,
        function.region,
        home,
    )
}

/// A problem when `account` or `region` (as an ARN names them) are not `home`'s.
fn foreign(
    value: &str,
    what: &str,
    account: Option<&str>,
    region: Option<&str>,
    home: Home<'_>,
) -> Option<Problem> {
    let other_account = account.filter(|a| *a != home.account);
    let other_region = region.filter(|r| *r != home.region);
    let (place, expected) = match (other_account, other_region) {
        (None, None) => return None,
        (Some(a), _) => (format!("account {a}"), format!("account {}", home.account)),
        (None, Some(r)) => (format!("region {r}"), format!("region {}", home.region)),
    };
    Some(Problem::new(
        format!("{what} `{value}` is in {place}, not in the environment's {expected}"),
        "name one in the environment's own account and region (write `{account}` and `{region}` \
         to have them filled in)",
    ))
}

/// Whether `alias` follows Lambda's alias grammar: 1 to 128 letters, digits, `-` and `_`, not
/// all digits (those are version numbers), so neither `$LATEST` nor anything with `/`.
pub(crate) fn alias_problem(alias: &str) -> Option<Problem> {
    let ok = (1..=ALIAS_MAX).contains(&alias.len())
        && name_chars(alias)
        && !alias.bytes().all(|b| b.is_ascii_digit());
    (!ok).then(|| {
        Problem::new(
            format!("`{alias}` is not a Lambda alias name"),
            "use 1 to 128 letters, digits, `-` and `_`, not only digits (those are versions), \
             e.g. \"live\"",
        )
    })
}

/// Whether `handler` names a module and a function: `module.function` (`pkg/main.handler`) or
/// `Class::method`.
pub(crate) fn handler_problem(handler: &str) -> Option<Problem> {
    let (module, function) = handler
        .rsplit_once("::")
        .or_else(|| handler.rsplit_once('.'))
        .unwrap_or((handler, ""));
    let ok = !module.is_empty()
        && !function.is_empty()
        && handler.len() <= 128
        && !handler.chars().any(|c| c.is_whitespace() || c.is_control());
    (!ok).then(|| {
        Problem::new(
            format!("handler `{handler}` does not name a module and a function"),
            "write `module.function`, e.g. \"main.handler\" (or `Class::method`), at most 128 \
             characters, no spaces; leave `handler` out for runtimes without one",
        )
    })
}

/// Whether `name` is a CloudWatch alarm name: 1 to 255 characters, no control characters.
pub(crate) fn alarm_problem(name: &str) -> Option<Problem> {
    let ok = (1..=ALARM_MAX).contains(&name.chars().count())
        && !name.chars().any(char::is_control)
        && name.trim() == name;
    (!ok).then(|| {
        Problem::new(
            if name.is_empty() {
                "an alarm name is empty".to_owned()
            } else {
                format!("`{}` is not a CloudWatch alarm name", name.escape_debug())
            },
            "use the alarm's name as CloudWatch shows it: 1 to 255 characters, no control \
             characters or surrounding spaces",
        )
    })
}

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

    const HOME: Home<'static> = Home {
        account: "111111111111",
        region: "eu-west-1",
    };

    #[test]
    fn function_names_partial_and_full_arns_pass() {
        for good in [
            "resize",
            "planwise-resize_dev",
            &"a".repeat(64),
            "111111111111:function:resize",
            "arn:aws:lambda:eu-west-1:111111111111:function:resize",
            "arn:aws-us-gov:lambda:eu-west-1:111111111111:function:a-b_c",
        ] {
            assert_eq!(function_problem(good, HOME), None, "{good}");
        }
    }

    #[test]
    fn bad_function_names_are_refused() {
        for bad in [
            "",
            "has space",
            "a/b",
            &"a".repeat(65),
            "resize:live",
            "resize:$LATEST",
            "11111111111:function:resize",
            "111111111111:func:resize",
            "arn:aws:lambda:eu-west-1:111111111111:function:",
            "arn:aws:lambda:eu-west-1:111111111111:function:resize:live",
            "arn:aws:s3:eu-west-1:111111111111:function:resize",
            "arn:aws:lambda:EU:111111111111:function:resize",
        ] {
            assert!(parse_function(bad).is_err(), "{bad:?}");
        }
        let long = format!(
            "arn:aws:lambda:eu-west-1:111111111111:function:{}",
            "a".repeat(64)
        );
        assert!(long.len() <= 140);
        assert!(parse_function(&long).is_ok());
    }

    #[test]
    fn functions_of_other_accounts_or_regions_are_refused() {
        let other = function_problem("222222222222:function:smoke", HOME).expect("foreign");
        assert!(other.message.contains("account 222222222222"), "{other:?}");
        let arn = "arn:aws:lambda:us-east-1:111111111111:function:smoke";
        let region = function_problem(arn, HOME).expect("foreign");
        assert!(region.message.contains("region us-east-1"), "{region:?}");
    }

    #[test]
    fn aliases_follow_lambdas_grammar() {
        for good in ["live", "v2", "blue-green_1", "1a", &"a".repeat(128)] {
            assert_eq!(alias_problem(good), None, "{good}");
        }
        for bad in ["", "12", "$LATEST", "a/b", "has space", &"a".repeat(129)] {
            assert!(alias_problem(bad).is_some(), "{bad:?}");
        }
    }

    #[test]
    fn handlers_name_a_module_and_a_function() {
        for good in ["main.handler", "pkg/app.main.run", "Example::handle", "a.b"] {
            assert_eq!(handler_problem(good), None, "{good}");
        }
        for bad in [
            "main",
            ".handler",
            "main.",
            "Example::",
            "main. handler",
            "",
        ] {
            assert!(handler_problem(bad).is_some(), "{bad:?}");
        }
    }

    #[test]
    fn alarm_names_are_1_to_255_characters() {
        assert_eq!(alarm_problem("planwise-api-5xx-dev"), None);
        assert_eq!(alarm_problem(&"é".repeat(255)), None);
        for bad in ["", " padded", "tab\there", &"a".repeat(256)] {
            assert!(alarm_problem(bad).is_some(), "{bad:?}");
        }
    }

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

//! The grammars AWS applies to names more than one kind hands to AWS: Lambda function names and
//! ARNs (Lambda artifacts, lifecycle hooks of ECS blue/green), alarm names, and whether an ARN
//! is of the environment's account and region. A kind's own names are checked in its folder.
//! Pure functions over expanded values, so a bad value is refused when the configuration loads
//! rather than by the API halfway through a release.

use super::checks::Problem;

/// The longest bare Lambda function name.
const FUNCTION_NAME_MAX: usize = 64;
/// The longest Lambda function ARN (full or partial).
const FUNCTION_ARN_MAX: usize = 140;
/// The longest CloudWatch alarm name.
const ALARM_MAX: usize = 255;

/// The account and region a name must belong to: the environment's.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Home<'a> {
    pub account: &'a str,
    pub region: &'a str,
}

#[cfg(test)]
impl Home<'static> {
    /// The home of unit tests: account 111111111111 in eu-west-1.
    pub(crate) const TEST: Home<'static> = Home {
        account: "111111111111",
        region: "eu-west-1",
    };
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

/// Whether `s` is only letters, digits, `-` and `_`.
pub(crate) fn name_chars(s: &str) -> bool {
    s.chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Whether `s` is twelve digits (an account id).
pub(crate) fn twelve_digits(s: &str) -> bool {
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
pub(crate) fn region_like(region: &str) -> bool {
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
pub(crate) fn foreign(
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

#[cfg(test)]
mod tests {
    use super::*;

    const HOME: Home<'static> = Home::TEST;

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
    fn alarm_names_are_1_to_255_characters() {
        assert_eq!(alarm_problem("planwise-api-5xx-dev"), None);
        assert_eq!(alarm_problem(&"é".repeat(255)), None);
        for bad in ["", " padded", "tab\there", &"a".repeat(256)] {
            assert!(alarm_problem(bad).is_some(), "{bad:?}");
        }
    }
}

//! The grammars Lambda applies to an alias name and a handler, checked when the configuration
//! loads rather than by the API halfway through a release.

use crate::config::aws_names::name_chars;
use crate::config::checks::Problem;

/// The longest Lambda alias name.
const ALIAS_MAX: usize = 128;

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

#[cfg(test)]
mod tests {
    use super::*;

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
}

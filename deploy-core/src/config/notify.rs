//! `[notifications]`: `[notifications.slack]`, an incoming webhook (`webhook_env`) or a bot
//! token and a channel (`token_env`, `channel`, `api_url`). Only the names of the variables
//! holding the URL and the token are configuration; their values never are.

use super::SlackConfig;
use super::diagnose::Resolver;
use super::raw::{RawNotifications, RawSlack};
use super::source_map::path;

/// The Slack Web API everyone but a test talks to.
pub const SLACK_API: &str = "https://slack.com/api";

pub(super) fn resolve_slack(
    r: &mut Resolver<'_>,
    raw: Option<&RawNotifications>,
) -> Option<SlackConfig> {
    let raw = raw?;
    if raw.slack_webhook_env.is_some() {
        r.error(
            &path(["notifications", "slack_webhook_env"]),
            "`slack_webhook_env` is now `webhook_env` in a `[notifications.slack]` table",
            Some("write `[notifications.slack]` then `webhook_env = \"SLACK_WEBHOOK_URL\"`".into()),
        );
    }
    let slack = raw.slack.as_ref()?;
    let at = |key: &str| path(["notifications", "slack", key]);
    let var = |r: &mut Resolver<'_>, key: &str, name: &str| {
        let ok = name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !ok {
            r.error(
                &at(key),
                format!("`{name}` is not an environment variable name"),
                Some("name the variable that holds the value, like SLACK_WEBHOOK_URL; never the value itself".into()),
            );
        }
    };
    match slack {
        RawSlack {
            webhook_env: Some(webhook),
            token_env: None,
            channel: None,
            api_url: None,
        } => {
            var(r, "webhook_env", webhook);
            Some(SlackConfig::Webhook {
                webhook_env: webhook.clone(),
            })
        }
        RawSlack {
            webhook_env: None,
            token_env: Some(token),
            channel: Some(channel),
            api_url,
        } => {
            var(r, "token_env", token);
            check_channel(r, &at("channel"), channel);
            let api_url = api_url.clone().unwrap_or_else(|| SLACK_API.to_owned());
            check_api_url(r, &at("api_url"), &api_url);
            Some(SlackConfig::Bot {
                token_env: token.clone(),
                channel: channel.clone(),
                api_url: api_url.trim_end_matches('/').to_owned(),
            })
        }
        _ => {
            r.error(
                &path(["notifications", "slack"]),
                "`[notifications.slack]` needs either `webhook_env` alone, or `token_env` and \
                 `channel` (and optionally `api_url`)",
                Some(
                    "an incoming webhook: `webhook_env = \"SLACK_WEBHOOK_URL\"`; a bot: \
                      `token_env = \"SLACK_BOT_TOKEN\"` and `channel = \"C0123456789\"`"
                        .into(),
                ),
            );
            None
        }
    }
}

fn check_channel(r: &mut Resolver<'_>, at: &[String], channel: &str) {
    let ok = !channel.is_empty()
        && channel.len() <= 80
        && channel
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "#-_.".contains(c));
    if !ok {
        r.error(
            at,
            format!("`{channel}` is not a Slack channel id or name"),
            Some("use the channel's id (C0123456789) or its name (#deploys)".into()),
        );
    }
}

fn check_api_url(r: &mut Resolver<'_>, at: &[String], url: &str) {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    let ok = rest.is_some_and(|rest| {
        !rest.is_empty()
            && !rest.contains(['@', '?', '#'])
            && !rest.chars().any(char::is_whitespace)
    });
    if !ok {
        r.error(
            at,
            format!("`{url}` is not an http(s) base URL"),
            Some(format!("leave it out for Slack itself ({SLACK_API})")),
        );
    }
}

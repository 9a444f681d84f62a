//! Rendering: human text or JSON on stdout, errors on stderr, GitHub Actions annotations.

use std::io::{IsTerminal, Write};

use serde::Serialize;

use crate::cli::OutputFormat;

/// Where and how results are printed.
#[derive(Debug, Clone)]
pub struct Output {
    pub format: OutputFormat,
    pub quiet: bool,
    pub verbose: u8,
}

impl Output {
    pub fn json(&self) -> bool {
        self.format == OutputFormat::Json
    }

    /// A line of human output (suppressed by `-q` and in JSON mode).
    pub fn line(&self, text: impl AsRef<str>) {
        if !self.quiet && !self.json() {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{}", text.as_ref());
        }
    }

    /// The JSON document of a command.
    pub fn document<T: Serialize>(&self, value: &T) {
        let mut out = std::io::stdout().lock();
        let text = serde_json::to_string_pretty(value).unwrap_or_else(|_| "null".into());
        let _ = writeln!(out, "{text}");
    }

    /// Prints the result of a command that also streamed events: one compact JSON line, so that
    /// stdout stays one JSON value per line (events first, the result last).
    pub fn result<T: Serialize>(&self, value: &T) {
        let mut out = std::io::stdout().lock();
        let text = serde_json::to_string(value).unwrap_or_else(|_| "null".into());
        let _ = writeln!(out, "{text}");
    }

    /// Whether stderr is a terminal (for prompts and colours).
    pub fn interactive(&self) -> bool {
        std::io::stderr().is_terminal() && std::io::stdin().is_terminal()
    }

    /// Reports a failure: stderr in human mode, a JSON document in JSON mode, and a
    /// `::error::` annotation under GitHub Actions.
    pub fn error(
        &self,
        message: &str,
        class: &str,
        chain: &[String],
        diagnostics: Option<serde_json::Value>,
    ) {
        if self.json() {
            let mut error =
                serde_json::json!({ "class": class, "message": message, "causes": chain });
            if let Some(diagnostics) = &diagnostics {
                error["diagnostics"] = diagnostics.clone();
            }
            self.result(&serde_json::json!({ "error": error }));
        } else {
            let mut err = std::io::stderr().lock();
            let _ = writeln!(err, "error: {message}");
            if self.verbose > 0 {
                for cause in chain {
                    let _ = writeln!(err, "  caused by: {cause}");
                }
            }
        }
        if std::env::var_os("GITHUB_ACTIONS").is_some_and(|v| v == "true") {
            for line in annotations(message, diagnostics.as_ref()) {
                println!("{line}");
            }
        }
    }

    /// Appends markdown to the GitHub Actions job summary, when there is one.
    pub fn summary(&self, markdown: &str) {
        let Some(path) = std::env::var_os("GITHUB_STEP_SUMMARY") else {
            return;
        };
        if let Ok(mut file) = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(path)
        {
            let _ = writeln!(file, "{markdown}");
        }
    }
}

/// GitHub workflow commands for an error: one `::error file=,line=,col=::` per configuration
/// diagnostic that has a place (an inline annotation on the file), else one for the message.
fn annotations(message: &str, diagnostics: Option<&serde_json::Value>) -> Vec<String> {
    let data = |text: &str| {
        text.replace('%', "%25")
            .replace('\r', "%0D")
            .replace('\n', "%0A")
    };
    let property = |text: &str| data(text).replace(':', "%3A").replace(',', "%2C");
    let placed: Vec<String> = diagnostics
        .and_then(serde_json::Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|d| {
            let at = d.get("location")?;
            let file = at.get("file")?.as_str()?;
            let (line, col) = (at.get("line")?.as_u64()?, at.get("column")?.as_u64()?);
            let mut text = d.get("message")?.as_str()?.to_owned();
            if let Some(help) = d.get("help").and_then(serde_json::Value::as_str) {
                text = format!("{text}\n{help}");
            }
            Some(format!(
                "::error file={},line={line},col={col},title=deploy::{}",
                property(file),
                data(&text)
            ))
        })
        .collect();
    if placed.is_empty() {
        vec![format!("::error title=deploy::{}", data(message))]
    } else {
        placed
    }
}

/// Draws engine events: JSON lines on stdout with `--output json`, otherwise one plain line
/// per step on stderr (so stdout keeps only results).
pub struct CliReporter {
    json: bool,
    quiet: bool,
    /// On a terminal, byte progress redraws one line in place.
    tty: bool,
    /// Bytes done and total per blob in flight, and when the first byte went.
    transfers: std::sync::Mutex<Transfers>,
    progress: std::sync::Mutex<Progress>,
}

/// The rollout progress last shown per artifact (plain lines repeat only on a change) and
/// whether a progress line is drawn on the terminal now (the next line clears it first).
#[derive(Default)]
struct Progress {
    shown: std::collections::BTreeMap<String, (Option<u8>, String)>,
    drawn: bool,
}

#[derive(Default)]
struct Transfers {
    blobs: std::collections::BTreeMap<String, (u64, u64)>,
    started: Option<std::time::Instant>,
}

impl CliReporter {
    pub fn new(out: &Output) -> CliReporter {
        CliReporter {
            json: out.json(),
            quiet: out.quiet,
            tty: std::io::stderr().is_terminal(),
            transfers: std::sync::Mutex::default(),
            progress: std::sync::Mutex::default(),
        }
    }
}

impl CliReporter {
    /// Redraws the one progress line of every blob being sent, in place.
    fn redraw(&self, item: &str, done: u64, total: u64) {
        let line = {
            let Ok(mut transfers) = self.transfers.lock() else {
                return;
            };
            let started = *transfers
                .started
                .get_or_insert_with(std::time::Instant::now);
            transfers.blobs.insert(item.to_owned(), (done, total));
            let (done, total) = transfers
                .blobs
                .values()
                .fold((0, 0), |(d, t), (bd, bt)| (d + bd, t + bt));
            progress_line(
                transfers.blobs.values().filter(|(d, t)| d >= t).count(),
                transfers.blobs.len(),
                done,
                total,
                started.elapsed().as_secs_f64(),
            )
        };
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[2K{line}");
        let _ = err.flush();
    }
}

impl CliReporter {
    /// A wait's progress (a rollout's with its percent): on a terminal one line redrawn in
    /// place, otherwise a plain line with the time of day, only when something changed.
    fn progress(
        &self,
        artifact: &str,
        percent: Option<u8>,
        detail: &str,
        remaining_ms: Option<u64>,
    ) -> Option<String> {
        let Ok(mut progress) = self.progress.lock() else {
            return None;
        };
        let left = remaining_ms.map_or(String::new(), |ms| {
            let left = std::time::Duration::from_secs(ms.div_ceil(1000));
            format!(" ({} left)", humantime::format_duration(left))
        });
        let percent_text = percent.map_or(String::new(), |p| format!("{p:>3}% "));
        let line = format!("    {artifact}: {percent_text}{detail}{left}");
        if self.tty {
            progress.drawn = true;
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[2K{line}");
            let _ = err.flush();
            return None;
        }
        let now = (percent, detail.to_owned());
        if progress.shown.get(artifact) == Some(&now) {
            return None;
        }
        progress.shown.insert(artifact.to_owned(), now);
        let stamp = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
        Some(format!(
            "    {} {artifact}: {percent_text}{detail}{left}",
            stamp.get(11..19).unwrap_or(&stamp)
        ))
    }

    /// Clears a progress line drawn on the terminal before another line is written.
    fn clear_drawn(&self, err: &mut impl Write) {
        if let Ok(mut progress) = self.progress.lock()
            && std::mem::take(&mut progress.drawn)
        {
            let _ = write!(err, "\r\x1b[2K");
        }
    }
}

/// `    1/3 blobs  12.0/80.0 MiB   15%  48.0 MiB/s`: every blob being sent, together.
fn progress_line(finished: usize, blobs: usize, done: u64, total: u64, seconds: f64) -> String {
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    let percent = done.saturating_mul(100).checked_div(total).unwrap_or(100);
    let rate = if seconds > 0.0 {
        format!("  {:.1} MiB/s", mib(done) / seconds)
    } else {
        String::new()
    };
    format!(
        "    {finished}/{blobs} blob{}  {:.1}/{:.1} MiB  {percent:>3}%{rate}",
        if blobs == 1 { "" } else { "s" },
        mib(done),
        mib(total)
    )
}

impl CliReporter {
    /// The progress line for `event`, if it has one (a transfer under way redraws instead).
    fn line(&self, event: &deploy_core::events::Event) -> Option<String> {
        use deploy_core::events::Event;
        let line = match event {
            Event::StepStarted {
                step, description, ..
            } => format!("[{step}] {description} ..."),
            Event::StepFinished { step, elapsed_ms } => {
                format!("[{step}] done ({:.1}s)", *elapsed_ms as f64 / 1000.0)
            }
            Event::StepFailed { step, error } => format!("[{step}] failed: {error}"),
            Event::UndoStarted { step, description } => format!("[{step}] undo: {description} ..."),
            Event::UndoFinished { step } => format!("[{step}] undone"),
            Event::UndoFailed { step, error } => format!("[{step}] undo failed: {error}"),
            Event::LockWaiting {
                environment,
                holder,
                since,
            } => {
                format!("waiting for the lock of {environment}, held by {holder} since {since}")
            }
            Event::BytesTransferred {
                item,
                done,
                total: Some(total),
                ..
            } if self.tty && done < total => {
                self.redraw(item, *done, *total);
                return None;
            }
            Event::BytesTransferred {
                item,
                done,
                total: Some(total),
                ..
            } if done == total => {
                if let Ok(mut transfers) = self.transfers.lock() {
                    transfers.blobs.insert(item.clone(), (*done, *total));
                }
                let clear = if self.tty { "\r\x1b[2K" } else { "" };
                format!(
                    "{clear}    sent {} ({done} bytes)",
                    item.get(..19).unwrap_or(item)
                )
            }
            Event::Note { message } => format!("    {message}"),
            Event::RolloutProgress {
                artifact,
                percent,
                detail,
                remaining_ms,
            } => return self.progress(artifact, Some(*percent), detail, *remaining_ms),
            Event::Waiting {
                artifact,
                detail,
                remaining_ms,
            } => return self.progress(artifact, None, detail, *remaining_ms),
            Event::ReleaseRecorded {
                artifact,
                release_id,
                outcome,
            } => {
                format!("    recorded {outcome} release {release_id} of {artifact}")
            }
            _ => return None,
        };
        Some(line)
    }
}

impl deploy_core::events::Reporter for CliReporter {
    fn report(&self, event: &deploy_core::events::Event) {
        use deploy_core::events::Event;
        if self.json {
            if let Ok(line) = serde_json::to_string(event) {
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{line}");
            }
            return;
        }
        if let Event::LockKept {
            environment,
            lease_id,
            expires_at,
            error,
        } = event
        {
            // A warning: shown even with -q.
            let mut err = std::io::stderr().lock();
            let _ = writeln!(
                err,
                "warning: the lock of {environment} was not given back ({error}); lease {lease_id} \
                 expires at {expires_at}, or `deploy lock {environment} release` frees it now"
            );
            return;
        }
        if self.quiet {
            return;
        }
        let Some(line) = self.line(event) else {
            return;
        };
        let mut err = std::io::stderr().lock();
        self.clear_drawn(&mut err);
        let _ = writeln!(err, "{line}");
    }
}

#[cfg(test)]
mod tests {
    use super::progress_line;

    #[test]
    fn progress_lines_show_bytes_percent_and_rate() {
        let line = progress_line(1, 2, 12 << 20, 80 << 20, 0.5);
        assert_eq!(line, "    1/2 blobs  12.0/80.0 MiB   15%  24.0 MiB/s");
        assert!(progress_line(0, 1, 0, 0, 0.0).ends_with("0/1 blob  0.0/0.0 MiB  100%"));
    }
}

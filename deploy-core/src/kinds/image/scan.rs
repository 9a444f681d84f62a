//! The scan gate: waits (bounded) for the ECR vulnerability scan of one image digest, reads its
//! findings and decides whether the image may go on.
//!
//! Both ECR scan types are read: basic scanning (`findings`, CVE name and package in the
//! attributes) and enhanced scanning (`enhancedFindings`). When the image was never scanned, a
//! scan is started once (`StartImageScan`) and waited for.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_ecr::types::{FindingSeverity, ImageIdentifier, ScanStatus};
use serde::{Deserialize, Serialize};

use crate::aws::SdkFailure;
use crate::events::{Event, Reporter};
use crate::kinds::ScanGate;
use crate::wait::{LastPause, Poll, Wait, Waited};

/// Severities from worst to least, as ECR names them.
pub const SEVERITIES: [&str; 6] = [
    "CRITICAL",
    "HIGH",
    "MEDIUM",
    "LOW",
    "INFORMATIONAL",
    "UNDEFINED",
];

/// How many findings a summary lists.
const TOP_FINDINGS: usize = 5;

/// One vulnerability in a scan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// CVE or advisory id.
    pub id: String,
    /// ECR severity.
    pub severity: String,
    /// Affected package, when ECR names it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub package: Option<String>,
    /// Its version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// What the scan of one image found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanSummary {
    /// Repository scanned.
    pub repository: String,
    /// Image digest.
    pub digest: String,
    /// Findings per severity.
    pub counts: BTreeMap<String, u64>,
    /// The worst findings, worst first.
    pub top: Vec<Finding>,
}

impl ScanSummary {
    /// Findings of `severity`.
    pub fn count(&self, severity: &str) -> u64 {
        self.counts.get(severity).copied().unwrap_or(0)
    }

    /// Counts as `2 CRITICAL, 5 HIGH` (worst first), or `no findings`.
    pub fn counts_line(&self) -> String {
        let parts: Vec<String> = SEVERITIES
            .iter()
            .filter(|s| self.count(s) > 0)
            .map(|s| format!("{} {s}", self.count(s)))
            .collect();
        if parts.is_empty() {
            "no findings".into()
        } else {
            parts.join(", ")
        }
    }

    /// The top findings, one per line.
    pub fn top_lines(&self) -> Vec<String> {
        self.top
            .iter()
            .map(|f| {
                let package = match (&f.package, &f.version) {
                    (Some(p), Some(v)) => format!(" in {p} {v}"),
                    (Some(p), None) => format!(" in {p}"),
                    _ => String::new(),
                };
                format!("{} {}{package}", f.severity, f.id)
            })
            .collect()
    }

    /// Whether `gate` lets the image through.
    pub fn passes(&self, gate: ScanGate) -> bool {
        match gate {
            ScanGate::None | ScanGate::Report => true,
            ScanGate::BlockCritical => self.count("CRITICAL") == 0,
            ScanGate::BlockHigh => self.count("CRITICAL") == 0 && self.count("HIGH") == 0,
        }
    }
}

/// Why a scan gate stopped or could not decide.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    /// The findings are above the gate.
    #[error(
        "the scan of {}@{} found {}; `scan = \"{gate}\"` blocks it{}",
        summary.repository, summary.digest, summary.counts_line(), top_block(summary)
    )]
    Blocked {
        /// The gate.
        gate: &'static str,
        /// What the scan found.
        summary: Box<ScanSummary>,
    },
    /// The scan did not finish in time.
    #[error(
        "the scan of {repository}@{digest} did not finish within {}; raise `scan_timeout` in [settings] or try again later",
        humantime::format_duration(*waited)
    )]
    Timeout {
        /// Repository.
        repository: String,
        /// Digest.
        digest: String,
        /// How long it waited.
        waited: Duration,
    },
    /// ECR could not scan the image.
    #[error("ECR could not scan {repository}@{digest} ({status}): {description}")]
    Failed {
        /// Repository.
        repository: String,
        /// Digest.
        digest: String,
        /// Scan status.
        status: String,
        /// ECR's explanation.
        description: String,
    },
    /// An ECR call failed.
    #[error("{operation} for {repository}@{digest} failed: {source}")]
    Ecr {
        /// The operation.
        operation: &'static str,
        /// Repository.
        repository: String,
        /// Digest.
        digest: String,
        /// The SDK's error.
        #[source]
        source: SdkFailure,
    },
}

impl crate::error::Classify for ScanError {
    fn class(&self) -> crate::error::ErrorClass {
        use ScanError;
        match self {
            ScanError::Blocked { .. } | ScanError::Timeout { .. } | ScanError::Failed { .. } => {
                crate::error::ErrorClass::Blocked
            }
            ScanError::Ecr { .. } => crate::error::ErrorClass::Failure,
        }
    }
}

fn top_block(summary: &ScanSummary) -> String {
    let lines = summary.top_lines();
    if lines.is_empty() {
        return String::new();
    }
    format!(":\n  {}", lines.join("\n  "))
}

impl ScanGate {
    /// The gate as written in the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            ScanGate::None => "none",
            ScanGate::Report => "report",
            ScanGate::BlockCritical => "block-critical",
            ScanGate::BlockHigh => "block-high",
        }
    }
}

/// Timing of the wait for a scan.
#[derive(Debug, Clone, Copy)]
pub struct ScanWait {
    /// Give up after this long.
    pub timeout: Duration,
    /// Pause between polls.
    pub poll: Duration,
}

impl Default for ScanWait {
    fn default() -> Self {
        ScanWait {
            timeout: Duration::from_secs(10 * 60),
            poll: Duration::from_secs(5),
        }
    }
}

/// Waits for the scan of `repository@digest` and applies `gate`: `Ok` with the summary when the
/// image may go on (always for `report`), [`ScanError::Blocked`] when it may not.
pub async fn check(
    ecr: &aws_sdk_ecr::Client,
    repository: &str,
    digest: &str,
    gate: ScanGate,
    wait: ScanWait,
    reporter: &dyn Reporter,
) -> Result<ScanSummary, ScanError> {
    let summary = findings(ecr, repository, digest, wait, reporter).await?;
    reporter.report(&Event::Note {
        message: format!("scan of {repository}@{digest}: {}", summary.counts_line()),
    });
    if summary.passes(gate) {
        Ok(summary)
    } else {
        Err(ScanError::Blocked {
            gate: gate.as_str(),
            summary: Box::new(summary),
        })
    }
}

/// Waits for the scan of `repository@digest` to complete and reads its findings.
pub async fn findings(
    ecr: &aws_sdk_ecr::Client,
    repository: &str,
    digest: &str,
    wait: ScanWait,
    reporter: &dyn Reporter,
) -> Result<ScanSummary, ScanError> {
    let started = Instant::now();
    let image = ScanTarget {
        ecr,
        repository,
        digest,
        scan_started: AtomicBool::new(false),
    };
    let image = &image;
    // No token: the image step drops this wait when the run is cancelled.
    let wait = Wait::within(wait.timeout, wait.poll).last_pause(LastPause::Skipped);
    let waited = wait
        .until_noting(
            move || async move {
                let out = image.describe(reporter).await?;
                match image.finished(&out) {
                    Some(done) => done.map(Poll::Done),
                    None => Ok(Poll::NotYet(scan_status(&out).to_owned())),
                }
            },
            |status| {
                let short = digest.get(..19).unwrap_or(digest);
                reporter.report(&wait.event(repository, format!("scan of {short}: {status}")));
            },
        )
        .await?;
    match waited {
        Waited::Done(summary) => Ok(summary),
        Waited::TimedOut(_) | Waited::Cancelled(_) => Err(ScanError::Timeout {
            repository: repository.to_owned(),
            digest: digest.to_owned(),
            waited: started.elapsed(),
        }),
    }
}

/// The scan's status as ECR names it, `pending` before it has one.
fn scan_status(out: &FindingsOutput) -> &str {
    out.image_scan_status()
        .and_then(|s| s.status())
        .map_or("pending", |s| s.as_str())
}

type FindingsOutput =
    aws_sdk_ecr::operation::describe_image_scan_findings::DescribeImageScanFindingsOutput;
type ReadFailed = aws_sdk_ecr::error::SdkError<
    aws_sdk_ecr::operation::describe_image_scan_findings::DescribeImageScanFindingsError,
>;

/// The image whose scan is awaited.
struct ScanTarget<'a> {
    ecr: &'a aws_sdk_ecr::Client,
    repository: &'a str,
    digest: &'a str,
    /// Whether this wait started the image's scan.
    scan_started: AtomicBool,
}

impl ScanTarget<'_> {
    fn error(&self, operation: &'static str, source: SdkFailure) -> ScanError {
        ScanError::Ecr {
            operation,
            repository: self.repository.to_owned(),
            digest: self.digest.to_owned(),
            source,
        }
    }

    fn id(&self) -> ImageIdentifier {
        ImageIdentifier::builder().image_digest(self.digest).build()
    }

    /// The scan's findings so far; for an image that was never scanned, once its scan is
    /// started (only once).
    async fn describe(&self, reporter: &dyn Reporter) -> Result<FindingsOutput, ScanError> {
        let err = match self.read().await {
            Ok(out) => return Ok(out),
            Err(err) => err,
        };
        let never_scanned = err
            .as_service_error()
            .is_some_and(|e| e.is_scan_not_found_exception());
        if !never_scanned || self.scan_started.load(Ordering::SeqCst) {
            return Err(self.error("ecr:DescribeImageScanFindings", SdkFailure::new(err)));
        }
        self.ecr
            .start_image_scan()
            .repository_name(self.repository)
            .image_id(self.id())
            .send()
            .await
            .map_err(|err| self.error("ecr:StartImageScan", SdkFailure::new(err)))?;
        self.scan_started.store(true, Ordering::SeqCst);
        reporter.report(&Event::Note {
            message: format!(
                "{}@{} had no scan; started one",
                self.repository, self.digest
            ),
        });
        self.read()
            .await
            .map_err(|err| self.error("ecr:DescribeImageScanFindings", SdkFailure::new(err)))
    }

    async fn read(&self) -> Result<FindingsOutput, ReadFailed> {
        self.ecr
            .describe_image_scan_findings()
            .repository_name(self.repository)
            .image_id(self.id())
            .max_results(1000)
            .send()
            .await
    }

    /// The summary of a finished scan, the error of a failed one, `None` while it runs.
    fn finished(&self, out: &FindingsOutput) -> Option<Result<ScanSummary, ScanError>> {
        let status = out.image_scan_status();
        match status.and_then(|s| s.status()) {
            Some(ScanStatus::Complete) | Some(ScanStatus::Active) => {
                Some(Ok(summarize(self.repository, self.digest, out)))
            }
            Some(
                failed @ (ScanStatus::Failed
                | ScanStatus::UnsupportedImage
                | ScanStatus::FindingsUnavailable
                | ScanStatus::ScanEligibilityExpired),
            ) => Some(Err(ScanError::Failed {
                repository: self.repository.to_owned(),
                digest: self.digest.to_owned(),
                status: failed.as_str().to_owned(),
                description: status
                    .and_then(|s| s.description())
                    .unwrap_or("no description")
                    .to_owned(),
            })),
            _ => None,
        }
    }
}

fn summarize(
    repository: &str,
    digest: &str,
    out: &aws_sdk_ecr::operation::describe_image_scan_findings::DescribeImageScanFindingsOutput,
) -> ScanSummary {
    let mut counts = BTreeMap::new();
    let mut top = Vec::new();
    if let Some(findings) = out.image_scan_findings() {
        if let Some(severity_counts) = findings.finding_severity_counts() {
            for (severity, count) in severity_counts {
                let n = u64::try_from(*count).unwrap_or(0);
                if n > 0 {
                    counts.insert(severity.as_str().to_owned(), n);
                }
            }
        }
        for f in findings.findings() {
            let attribute = |key: &str| {
                f.attributes()
                    .iter()
                    .find(|a| a.key() == key)
                    .and_then(|a| a.value())
                    .map(str::to_owned)
            };
            top.push(Finding {
                id: f.name().unwrap_or("unnamed").to_owned(),
                severity: severity_name(f.severity()),
                package: attribute("package_name"),
                version: attribute("package_version"),
            });
        }
        for f in findings.enhanced_findings() {
            let details = f.package_vulnerability_details();
            let package = details.and_then(|d| d.vulnerable_packages().first());
            top.push(Finding {
                id: details
                    .and_then(|d| d.vulnerability_id())
                    .or(f.title())
                    .unwrap_or("unnamed")
                    .to_owned(),
                severity: f.severity().unwrap_or("UNDEFINED").to_owned(),
                package: package.and_then(|p| p.name()).map(str::to_owned),
                version: package.and_then(|p| p.version()).map(str::to_owned),
            });
        }
    }
    // Findings present but uncounted (some answers omit the counts): count them.
    if counts.is_empty() {
        for f in &top {
            *counts.entry(f.severity.clone()).or_insert(0) += 1;
        }
    }
    let rank = |s: &str| {
        SEVERITIES
            .iter()
            .position(|x| *x == s)
            .unwrap_or(SEVERITIES.len())
    };
    top.sort_by(|a, b| {
        rank(&a.severity)
            .cmp(&rank(&b.severity))
            .then(a.id.cmp(&b.id))
    });
    top.dedup_by(|a, b| a.id == b.id && a.package == b.package);
    top.truncate(TOP_FINDINGS);
    ScanSummary {
        repository: repository.to_owned(),
        digest: digest.to_owned(),
        counts,
        top,
    }
}

fn severity_name(severity: Option<&FindingSeverity>) -> String {
    severity.map_or("UNDEFINED", |s| s.as_str()).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_ecr::operation::describe_image_scan_findings::{
        DescribeImageScanFindingsError, DescribeImageScanFindingsOutput,
    };
    use aws_sdk_ecr::operation::start_image_scan::StartImageScanOutput;
    use aws_sdk_ecr::types::error::ScanNotFoundException;
    use aws_sdk_ecr::types::{
        Attribute, EnhancedImageScanFinding, ImageScanFinding, ImageScanFindings, ImageScanStatus,
        PackageVulnerabilityDetails, VulnerablePackage,
    };
    use aws_smithy_mocks::{RuleMode, mock, mock_client};

    use crate::events::NoReporter;

    const WAIT: ScanWait = ScanWait {
        timeout: Duration::from_secs(5),
        poll: Duration::from_millis(10),
    };

    fn status(s: ScanStatus) -> ImageScanStatus {
        ImageScanStatus::builder().status(s).build()
    }

    fn complete(findings: ImageScanFindings) -> DescribeImageScanFindingsOutput {
        DescribeImageScanFindingsOutput::builder()
            .image_scan_status(status(ScanStatus::Complete))
            .image_scan_findings(findings)
            .build()
    }

    fn basic(id: &str, severity: FindingSeverity, package: &str) -> ImageScanFinding {
        ImageScanFinding::builder()
            .name(id)
            .severity(severity)
            .attributes(
                Attribute::builder()
                    .key("package_name")
                    .value(package)
                    .build()
                    .expect("key set"),
            )
            .attributes(
                Attribute::builder()
                    .key("package_version")
                    .value("1.0")
                    .build()
                    .expect("key set"),
            )
            .build()
    }

    #[tokio::test]
    async fn critical_findings_block_and_are_summarized() {
        let rule = mock!(aws_sdk_ecr::Client::describe_image_scan_findings).then_output(|| {
            complete(
                ImageScanFindings::builder()
                    .finding_severity_counts(FindingSeverity::Critical, 1)
                    .finding_severity_counts(FindingSeverity::High, 2)
                    .findings(basic("CVE-2024-0002", FindingSeverity::High, "zlib"))
                    .findings(basic("CVE-2024-0001", FindingSeverity::Critical, "openssl"))
                    .build(),
            )
        });
        let ecr = mock_client!(aws_sdk_ecr, RuleMode::MatchAny, [&rule]);
        let err = check(
            &ecr,
            "r",
            "sha256:ab",
            ScanGate::BlockCritical,
            WAIT,
            &NoReporter,
        )
        .await
        .expect_err("blocked");
        let ScanError::Blocked { summary, .. } = &err else {
            panic!("expected blocked, got {err}");
        };
        assert_eq!(summary.counts_line(), "1 CRITICAL, 2 HIGH");
        assert_eq!(summary.top[0].id, "CVE-2024-0001");
        assert_eq!(summary.top[0].package.as_deref(), Some("openssl"));
        let text = err.to_string();
        assert!(
            text.contains("CRITICAL CVE-2024-0001 in openssl 1.0"),
            "{text}"
        );
        assert!(text.contains("block-critical"), "{text}");
    }

    #[tokio::test]
    async fn report_and_lower_gates_let_images_through() {
        let rule = mock!(aws_sdk_ecr::Client::describe_image_scan_findings).then_output(|| {
            complete(
                ImageScanFindings::builder()
                    .finding_severity_counts(FindingSeverity::High, 1)
                    .build(),
            )
        });
        let ecr = mock_client!(aws_sdk_ecr, RuleMode::MatchAny, [&rule]);
        for gate in [ScanGate::Report, ScanGate::BlockCritical] {
            let summary = check(&ecr, "r", "sha256:ab", gate, WAIT, &NoReporter)
                .await
                .expect("passes");
            assert_eq!(summary.count("HIGH"), 1);
        }
        let blocked = check(
            &ecr,
            "r",
            "sha256:ab",
            ScanGate::BlockHigh,
            WAIT,
            &NoReporter,
        )
        .await;
        assert!(matches!(blocked, Err(ScanError::Blocked { .. })));
    }

    #[tokio::test]
    async fn an_unscanned_image_is_scanned_then_waited_for() {
        let describe = mock!(aws_sdk_ecr::Client::describe_image_scan_findings)
            .sequence()
            .error(|| {
                DescribeImageScanFindingsError::ScanNotFoundException(
                    ScanNotFoundException::builder().message("no scan").build(),
                )
            })
            .output(|| {
                DescribeImageScanFindingsOutput::builder()
                    .image_scan_status(status(ScanStatus::InProgress))
                    .build()
            })
            .output(|| {
                complete(
                    ImageScanFindings::builder()
                        .enhanced_findings(
                            EnhancedImageScanFinding::builder()
                                .severity("MEDIUM")
                                .package_vulnerability_details(
                                    PackageVulnerabilityDetails::builder()
                                        .vulnerability_id("GHSA-xxxx")
                                        .vulnerable_packages(
                                            VulnerablePackage::builder()
                                                .name("serde")
                                                .version("0.9")
                                                .build(),
                                        )
                                        .build(),
                                )
                                .build(),
                        )
                        .build(),
                )
            })
            .build();
        let start = mock!(aws_sdk_ecr::Client::start_image_scan)
            .then_output(|| StartImageScanOutput::builder().build());
        let ecr = mock_client!(aws_sdk_ecr, RuleMode::MatchAny, [&describe, &start]);
        let summary = check(
            &ecr,
            "r",
            "sha256:ab",
            ScanGate::BlockHigh,
            WAIT,
            &NoReporter,
        )
        .await
        .expect("medium passes block-high");
        assert_eq!(start.num_calls(), 1);
        assert_eq!(describe.num_calls(), 3);
        assert_eq!(summary.counts_line(), "1 MEDIUM");
        assert_eq!(summary.top_lines(), ["MEDIUM GHSA-xxxx in serde 0.9"]);
    }

    #[tokio::test]
    async fn a_scan_that_never_finishes_times_out() {
        let rule = mock!(aws_sdk_ecr::Client::describe_image_scan_findings).then_output(|| {
            DescribeImageScanFindingsOutput::builder()
                .image_scan_status(status(ScanStatus::InProgress))
                .build()
        });
        let ecr = mock_client!(aws_sdk_ecr, RuleMode::MatchAny, [&rule]);
        let wait = ScanWait {
            timeout: Duration::from_millis(50),
            poll: Duration::from_millis(10),
        };
        let err = check(
            &ecr,
            "r",
            "sha256:ab",
            ScanGate::BlockCritical,
            wait,
            &NoReporter,
        )
        .await
        .expect_err("times out");
        assert!(matches!(err, ScanError::Timeout { .. }), "{err}");
        assert!(rule.num_calls() >= 2);
    }

    #[tokio::test]
    async fn a_failed_scan_is_an_error() {
        let rule = mock!(aws_sdk_ecr::Client::describe_image_scan_findings).then_output(|| {
            DescribeImageScanFindingsOutput::builder()
                .image_scan_status(
                    ImageScanStatus::builder()
                        .status(ScanStatus::UnsupportedImage)
                        .description("UnsupportedImageError: windows")
                        .build(),
                )
                .build()
        });
        let ecr = mock_client!(aws_sdk_ecr, RuleMode::MatchAny, [&rule]);
        let err = check(
            &ecr,
            "r",
            "sha256:ab",
            ScanGate::BlockCritical,
            WAIT,
            &NoReporter,
        )
        .await
        .expect_err("fails");
        assert!(err.to_string().contains("UNSUPPORTED_IMAGE"), "{err}");
    }
}

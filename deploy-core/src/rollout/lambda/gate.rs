//! The gate between traffic steps: configured CloudWatch alarms not in ALARM, the new
//! version's `Errors` under `max_errors`, and the HTTP health check.

use std::time::{Duration, SystemTime};

use aws_sdk_cloudwatch::types::{Dimension, StateValue, Statistic};

use crate::aws::SdkFailure;
use crate::engine::{StepContext, StepError};
use crate::error::{Classify, ErrorClass};
use crate::rollout::LambdaRollout;
use crate::rollout::gates::health::{CheckHealth, wait_healthy};

/// The gate stopped the rollout.
#[derive(Debug, thiserror::Error)]
pub enum GateFailed {
    /// Alarms are in ALARM.
    #[error("alarm {} is in ALARM", names.join(", "))]
    Alarm {
        /// The alarms in ALARM.
        names: Vec<String>,
    },
    /// The new version had too many errors.
    #[error("version {version} of {function} had {errors} errors in the last {}s; at most {max} are allowed", window.as_secs())]
    Errors {
        /// Function.
        function: String,
        /// The new version.
        version: String,
        /// Sum of `Errors` in the window.
        errors: f64,
        /// `max_errors`.
        max: u64,
        /// The window looked at.
        window: Duration,
    },
    /// The health check failed.
    #[error(transparent)]
    Unhealthy(StepError),
}

impl Classify for GateFailed {
    fn class(&self) -> ErrorClass {
        ErrorClass::Blocked
    }
}

/// The gate could not look.
#[derive(Debug, thiserror::Error)]
pub enum GateError {
    /// Configured alarms that CloudWatch does not know.
    #[error("alarm {} does not exist in CloudWatch; check `alarms` in the rollout", names.join(", "))]
    UnknownAlarms {
        /// The missing alarms.
        names: Vec<String>,
    },
    /// A CloudWatch call failed.
    #[error("{operation} failed: {source}")]
    Aws {
        /// The operation.
        operation: &'static str,
        /// The SDK's error.
        #[source]
        source: SdkFailure,
    },
}

impl Classify for GateError {
    fn class(&self) -> ErrorClass {
        match self {
            GateError::UnknownAlarms { .. } => ErrorClass::Usage,
            GateError::Aws { .. } => ErrorClass::Failure,
        }
    }
}

/// The gate of one shift.
#[derive(Debug)]
pub(super) struct Gate<'a> {
    pub cloudwatch: &'a aws_sdk_cloudwatch::Client,
    pub function: &'a str,
    pub version: &'a str,
    /// How far back the `Errors` sum looks.
    pub window: Duration,
    pub rollout: &'a LambdaRollout,
    /// First pause between health-check attempts.
    pub poll: Duration,
}

impl Gate<'_> {
    /// Passes, or says why not.
    pub(super) async fn check(
        &self,
        cx: &StepContext<'_>,
        artifact: &str,
    ) -> Result<(), StepError> {
        let (_, firing) = describe(self.cloudwatch, &self.rollout.alarms).await?;
        if !firing.is_empty() {
            return Err(StepError::from(GateFailed::Alarm { names: firing }));
        }
        if let Some(max) = self.rollout.max_errors {
            let errors = self.errors().await?;
            if errors > max as f64 {
                return Err(StepError::from(GateFailed::Errors {
                    function: self.function.to_owned(),
                    version: self.version.to_owned(),
                    errors,
                    max,
                    window: self.window,
                }));
            }
        }
        if let Some(check) = &self.rollout.health_check {
            let check = CheckHealth {
                url: check.url.clone(),
                expect_status: check.expect_status,
                expect_body: check.expect_body.clone(),
                timeout: check.timeout,
            };
            wait_healthy(cx, artifact, &check, self.poll)
                .await
                .map_err(|err| StepError::from(GateFailed::Unhealthy(err)))?;
        }
        Ok(())
    }

    /// Sum of the new version's `Errors` over the window.
    async fn errors(&self) -> Result<f64, GateError> {
        let end = SystemTime::now();
        let window = Duration::from_secs(self.window.as_secs().div_ceil(60).max(1) * 60);
        let start = end.checked_sub(window).unwrap_or(SystemTime::UNIX_EPOCH);
        let dimension =
            |name: &str, value: String| Dimension::builder().name(name).value(value).build();
        let out = self
            .cloudwatch
            .get_metric_statistics()
            .namespace("AWS/Lambda")
            .metric_name("Errors")
            .dimensions(dimension("FunctionName", self.function.to_owned()))
            .dimensions(dimension(
                "Resource",
                format!("{}:{}", self.function, self.version),
            ))
            .start_time(start.into())
            .end_time(end.into())
            .period(i32::try_from(window.as_secs()).unwrap_or(i32::MAX))
            .statistics(Statistic::Sum)
            .send()
            .await
            .map_err(|err| GateError::Aws {
                operation: "cloudwatch:GetMetricStatistics",
                source: SdkFailure::new(err),
            })?;
        Ok(out.datapoints().iter().filter_map(|d| d.sum()).sum())
    }
}

/// Fails unless every alarm of `names` exists (checked before the lock is taken).
pub(super) async fn check_alarms_exist(
    cloudwatch: &aws_sdk_cloudwatch::Client,
    names: &[String],
) -> Result<(), GateError> {
    let (found, _) = describe(cloudwatch, names).await?;
    let missing: Vec<String> = names
        .iter()
        .filter(|n| !found.contains(n))
        .cloned()
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(GateError::UnknownAlarms { names: missing })
}

/// The alarms of `names` that exist, and those of them in ALARM (metric and composite).
async fn describe(
    cloudwatch: &aws_sdk_cloudwatch::Client,
    names: &[String],
) -> Result<(Vec<String>, Vec<String>), GateError> {
    let (mut found, mut firing) = (Vec::new(), Vec::new());
    for chunk in names.chunks(100) {
        let out = cloudwatch
            .describe_alarms()
            .set_alarm_names(Some(chunk.to_vec()))
            .max_records(100)
            .send()
            .await
            .map_err(|err| GateError::Aws {
                operation: "cloudwatch:DescribeAlarms",
                source: SdkFailure::new(err),
            })?;
        let metric = out
            .metric_alarms()
            .iter()
            .map(|a| (a.alarm_name(), a.state_value()));
        let composite = out
            .composite_alarms()
            .iter()
            .map(|a| (a.alarm_name(), a.state_value()));
        for (name, state) in metric.chain(composite) {
            let Some(name) = name else { continue };
            found.push(name.to_owned());
            if state == Some(&StateValue::Alarm) {
                firing.push(name.to_owned());
            }
        }
    }
    Ok((found, firing))
}

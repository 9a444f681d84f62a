//! The gate between traffic steps: configured CloudWatch alarms not in ALARM, the new
//! version's `Errors` under `max_errors`, and the HTTP health check.

use std::time::{Duration, SystemTime};

use aws_sdk_cloudwatch::types::{Dimension, StateValue, Statistic};

use crate::aws::SdkFailure;
use crate::engine::{StepContext, StepError};
use crate::error::{Classify, ErrorClass};
use crate::kinds::lambda::shift::LambdaRollout;
use crate::rollout::health::{CheckHealth, wait_healthy};

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
            let check = CheckHealth::of(check, &check.url);
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

#[cfg(test)]
mod tests {
    use aws_sdk_cloudwatch::operation::describe_alarms::DescribeAlarmsOutput;
    use aws_sdk_cloudwatch::operation::get_metric_statistics::GetMetricStatisticsOutput;
    use aws_sdk_cloudwatch::types::{Datapoint, MetricAlarm};
    use aws_smithy_mocks::{RuleMode, mock, mock_client};

    use super::*;
    use crate::aws::AwsClients;
    use crate::engine::TestRun;
    use crate::rollout::Strategy;

    fn rollout(alarms: &[&str], max_errors: Option<u64>) -> LambdaRollout {
        LambdaRollout {
            strategy: Strategy::LambdaCanary,
            steps: vec![10, 100],
            interval: Duration::from_secs(1),
            alarms: alarms.iter().map(|a| (*a).to_owned()).collect(),
            health_check: None,
            max_errors,
        }
    }

    fn run(cloudwatch: aws_sdk_cloudwatch::Client) -> TestRun {
        let sdk = aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("eu-west-1"))
            .build();
        TestRun::new(
            AwsClients::from_sdk_config(&crate::target::Target::for_tests("dev"), &sdk)
                .with_cloudwatch(cloudwatch),
        )
    }

    fn alarms() -> DescribeAlarmsOutput {
        let alarm = |name: &str, state: StateValue| {
            MetricAlarm::builder()
                .alarm_name(name)
                .state_value(state)
                .build()
        };
        DescribeAlarmsOutput::builder()
            .metric_alarms(alarm("ok", StateValue::Ok))
            .metric_alarms(alarm("firing", StateValue::Alarm))
            .build()
    }

    #[tokio::test]
    async fn an_alarm_in_alarm_fails_the_gate_and_missing_alarms_are_named() {
        let describe = mock!(aws_sdk_cloudwatch::Client::describe_alarms).then_output(alarms);
        let cw = mock_client!(aws_sdk_cloudwatch, RuleMode::MatchAny, [&describe]);
        let run = run(cw.clone());
        let rollout = rollout(&["ok", "firing"], None);
        let gate = Gate {
            cloudwatch: &cw,
            function: "f",
            version: "7",
            window: Duration::from_secs(60),
            rollout: &rollout,
            poll: Duration::from_millis(1),
        };
        let err = gate.check(&run.cx(), "fn").await.expect_err("alarm");
        assert!(err.inner().is::<GateFailed>(), "{err}");
        assert_eq!(err.to_string(), "alarm firing is in ALARM");
        let names = ["ok".to_owned(), "gone".to_owned()];
        let err = check_alarms_exist(&cw, &names).await.expect_err("missing");
        assert!(
            matches!(&err, GateError::UnknownAlarms { names } if names == &["gone"]),
            "{err}"
        );
        assert_eq!(err.class(), ErrorClass::Usage);
    }

    #[tokio::test]
    async fn errors_of_the_new_version_over_max_errors_fail_the_gate() {
        let stats = mock!(aws_sdk_cloudwatch::Client::get_metric_statistics)
            .match_requests(|req| {
                req.dimensions()
                    .iter()
                    .any(|d| d.name() == Some("Resource") && d.value() == Some("f:7"))
                    && req.period() == Some(120)
            })
            .then_output(|| {
                let point = |sum: f64| Datapoint::builder().sum(sum).build();
                GetMetricStatisticsOutput::builder()
                    .datapoints(point(2.0))
                    .datapoints(point(2.0))
                    .build()
            });
        let cw = mock_client!(aws_sdk_cloudwatch, RuleMode::MatchAny, [&stats]);
        let run = run(cw.clone());
        let window = Duration::from_secs(90);
        for (max, fails) in [(3, true), (4, false)] {
            let rollout = rollout(&[], Some(max));
            let gate = Gate {
                cloudwatch: &cw,
                function: "f",
                version: "7",
                window,
                rollout: &rollout,
                poll: Duration::from_millis(1),
            };
            let result = gate.check(&run.cx(), "fn").await;
            assert_eq!(result.is_err(), fails, "max_errors = {max}: {result:?}");
        }
        assert_eq!(stats.num_calls(), 2);
    }
}

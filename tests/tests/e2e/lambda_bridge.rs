//! The CloudWatch bridge: the Rust SDK (RPCv2 CBOR) against moto (JSON), both ways.

use aws_sdk_cloudwatch::types::{ComparisonOperator, Dimension, StateValue, Statistic};
use deploy_tests::cloudwatch_bridge::CloudWatchBridge;
use deploy_tests::{REGION, moto, unique};

async fn client(url: &str) -> aws_sdk_cloudwatch::Client {
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(REGION))
        .endpoint_url(url)
        .credentials_provider(aws_credential_types::Credentials::for_tests())
        .load()
        .await;
    aws_sdk_cloudwatch::Client::new(&config)
}

#[tokio::test]
async fn alarms_and_statistics_cross_the_bridge() {
    let bridge = CloudWatchBridge::start(&moto().url);
    let cw = client(&bridge.url).await;
    let name = unique("errors");
    cw.put_metric_alarm()
        .alarm_name(&name)
        .namespace("AWS/Lambda")
        .metric_name("Errors")
        .statistic(Statistic::Sum)
        .period(60)
        .evaluation_periods(1)
        .threshold(1.0)
        .comparison_operator(ComparisonOperator::GreaterThanThreshold)
        .send()
        .await
        .expect("put alarm");
    cw.set_alarm_state()
        .alarm_name(&name)
        .state_value(StateValue::Alarm)
        .state_reason("test")
        .send()
        .await
        .expect("set alarm state");
    let out = cw
        .describe_alarms()
        .alarm_names(&name)
        .alarm_names(unique("missing"))
        .send()
        .await
        .expect("describe alarms");
    let alarms = out.metric_alarms();
    assert_eq!(alarms.len(), 1);
    assert_eq!(alarms[0].alarm_name(), Some(name.as_str()));
    assert_eq!(alarms[0].state_value(), Some(&StateValue::Alarm));
    assert!(
        alarms[0].state_updated_timestamp().is_some(),
        "timestamps decode"
    );
    let now = std::time::SystemTime::now();
    let stats = cw
        .get_metric_statistics()
        .namespace("AWS/Lambda")
        .metric_name("Errors")
        .dimensions(Dimension::builder().name("FunctionName").value("f").build())
        .start_time((now - std::time::Duration::from_secs(600)).into())
        .end_time(now.into())
        .period(60)
        .statistics(Statistic::Sum)
        .send()
        .await
        .expect("get metric statistics");
    assert!(stats.datapoints().is_empty());
    assert_eq!(
        bridge.operations(),
        [
            "PutMetricAlarm",
            "SetAlarmState",
            "DescribeAlarms",
            "GetMetricStatistics"
        ]
    );
}

//! Broker config resources (KIP-226) against a real two-node cluster over TCP: DescribeConfigs of
//! a broker and of the cluster default with Kafka's sources, synonyms, read-only flags and
//! secrets; dynamic broker configs set with AlterConfigs and IncrementalAlterConfigs, stored in
//! the metadata log, applied to the partitions of both brokers, kept across a restart; and bad
//! input answered with Kafka's codes on a connection that stays open.
#![cfg(not(madsim))]
#![allow(clippy::unwrap_used)]

mod node_support;

use broker::node::config::{LogSettings, TopicDefaults};
use node_support::{outcomes, ready_cluster, Connection, TestCluster};
use std::time::Duration;

use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::describe_configs_response::DescribeConfigsResult;
use kafka_protocol::messages::{
    alter_configs_request, describe_configs_request, incremental_alter_configs_request,
    AlterConfigsRequest, AlterConfigsResponse, ApiKey, DescribeConfigsRequest,
    DescribeConfigsResponse, IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
    TopicName,
};
use kafka_protocol::protocol::{Decodable, StrBytes};
use wire::TopicPartition;

const BROKER: i8 = 4;
const INVALID_REQUEST: i16 = 42;
const INVALID_CONFIG: i16 = 40;
const DYNAMIC_BROKER: i8 = 2;
const DYNAMIC_DEFAULT: i8 = 3;
const STATIC: i8 = 4;
const DEFAULT: i8 = 5;

fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_string())
}

async fn describe(c: &mut Connection, name: &str, synonyms: bool) -> DescribeConfigsResult {
    let request = DescribeConfigsRequest::default()
        .with_resources(vec![
            describe_configs_request::DescribeConfigsResource::default()
                .with_resource_type(BROKER)
                .with_resource_name(s(name))
                .with_configuration_keys(None),
        ])
        .with_include_synonyms(synonyms);
    let mut body = c.call(ApiKey::DescribeConfigs, 4, &request).await;
    let mut response = DescribeConfigsResponse::decode(&mut body, 4).unwrap();
    response.results.remove(0)
}

/// (value, source, read_only, sensitive) of `key` in a described resource.
fn entry(result: &DescribeConfigsResult, key: &str) -> Option<(Option<String>, i8, bool, bool)> {
    let e = result.configs.iter().find(|e| e.name.as_str() == key)?;
    Some((
        e.value.as_ref().map(|v| v.to_string()),
        e.config_source,
        e.read_only,
        e.is_sensitive,
    ))
}

async fn incremental(
    c: &mut Connection,
    name: &str,
    ops: &[(&str, i8, Option<&str>)],
    validate_only: bool,
) -> (i16, String) {
    use incremental_alter_configs_request::{AlterConfigsResource, AlterableConfig};
    let configs = ops
        .iter()
        .map(|(key, op, value)| {
            AlterableConfig::default()
                .with_name(s(key))
                .with_config_operation(*op)
                .with_value(value.map(s))
        })
        .collect();
    let request = IncrementalAlterConfigsRequest::default()
        .with_resources(vec![AlterConfigsResource::default()
            .with_resource_type(BROKER)
            .with_resource_name(s(name))
            .with_configs(configs)])
        .with_validate_only(validate_only);
    let mut body = c.call(ApiKey::IncrementalAlterConfigs, 1, &request).await;
    let response = IncrementalAlterConfigsResponse::decode(&mut body, 1).unwrap();
    let r = &response.responses[0];
    (
        r.error_code,
        r.error_message
            .as_ref()
            .map(|m| m.to_string())
            .unwrap_or_default(),
    )
}

async fn alter(c: &mut Connection, name: &str, configs: &[(&str, &str)]) -> (i16, String) {
    use alter_configs_request::{AlterConfigsResource, AlterableConfig};
    let configs = configs
        .iter()
        .map(|(key, value)| {
            AlterableConfig::default()
                .with_name(s(key))
                .with_value(Some(s(value)))
        })
        .collect();
    let request =
        AlterConfigsRequest::default().with_resources(vec![AlterConfigsResource::default()
            .with_resource_type(BROKER)
            .with_resource_name(s(name))
            .with_configs(configs)]);
    let mut body = c.call(ApiKey::AlterConfigs, 2, &request).await;
    let response = AlterConfigsResponse::decode(&mut body, 2).unwrap();
    let r = &response.responses[0];
    (
        r.error_code,
        r.error_message
            .as_ref()
            .map(|m| m.to_string())
            .unwrap_or_default(),
    )
}

/// Waits until node `i`'s replica of `tp` runs with `check` true of its live log config.
async fn until_applied(
    cluster: &TestCluster,
    i: usize,
    tp: &TopicPartition,
    check: impl Fn(&log_core::LogConfig) -> bool,
) {
    for _ in 0..400 {
        let config = cluster.partition_on(i, tp).and_then(|p| p.log_config());
        if config.as_ref().is_some_and(&check) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!(
        "node {}: {tp}: the broker configs never reached the partition",
        i + 1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamic_broker_configs_are_described_altered_applied_and_kept() {
    let topics = TopicDefaults {
        replication_factor: 2,
        ..TopicDefaults::default()
    };
    let mut cluster =
        TestCluster::start_configured(2, topics, LogSettings::default(), 40, |_, config| {
            config.security.connections_max_reauth_ms = 60_000
        })
        .await;
    let addresses = cluster.bootstrap();
    let mut c1 = Connection::open(&addresses[0]).await;
    ready_cluster(&mut c1, 2).await;
    let mut c2 = Connection::open(&addresses[1]).await;
    let topic = CreatableTopic::default()
        .with_name(TopicName(s("t")))
        .with_num_partitions(1)
        .with_replication_factor(2);
    let created = c1.create(vec![topic], false).await;
    assert_eq!(outcomes(&created)[0].0, 0, "{:?}", outcomes(&created));
    let tp = TopicPartition::new("t", 0);

    // Before any dynamic config: the file's and built-in values, Kafka's names and flags.
    let before = describe(&mut c1, "1", true).await;
    assert_eq!(before.error_code, 0);
    assert_eq!(
        entry(&before, "connections.max.reauth.ms"),
        Some((Some("60000".into()), STATIC, true, false))
    );
    assert_eq!(
        entry(&before, "log.retention.ms"),
        Some((Some("604800000".into()), DEFAULT, false, false))
    );
    assert_eq!(
        entry(&before, "sasl.kerberos.min.time.before.relogin"),
        Some((Some("60000".into()), DEFAULT, false, false))
    );
    assert_eq!(
        entry(&before, "rill.cluster.secret"),
        Some((None, STATIC, true, true)),
        "the cluster secret is described without its value"
    );
    assert_eq!(
        entry(&before, "node.id"),
        Some((Some("1".into()), STATIC, true, false))
    );
    assert!(describe(&mut c1, "", false).await.configs.is_empty());

    // validate_only changes nothing.
    let checked = incremental(
        &mut c1,
        "",
        &[("log.retention.ms", 0, Some("3600000"))],
        true,
    )
    .await;
    assert_eq!(checked, (0, String::new()));
    assert!(describe(&mut c1, "", false).await.configs.is_empty());

    // The cluster default reaches both brokers' partitions and both describe it.
    let set = incremental(
        &mut c1,
        "",
        &[
            ("log.retention.ms", 0, Some("3600000")),
            ("message.max.bytes", 0, Some("2000")),
            ("log.cleanup.policy", 2, Some("compact")),
        ],
        false,
    )
    .await;
    assert_eq!(set, (0, String::new()));
    for i in 0..2 {
        until_applied(&cluster, i, &tp, |log| {
            log.retention_ms == Some(3_600_000) && log.batch_bytes_max == 2000 && log.compacted
        })
        .await;
    }
    let default = describe(&mut c2, "", true).await;
    let names: Vec<&str> = default.configs.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(
        names,
        vec![
            "log.cleanup.policy",
            "log.retention.ms",
            "message.max.bytes"
        ]
    );
    assert_eq!(
        entry(&default, "log.cleanup.policy"),
        Some((Some("delete,compact".into()), DYNAMIC_DEFAULT, false, false))
    );
    let two = describe(&mut c2, "2", true).await;
    assert_eq!(
        entry(&two, "log.retention.ms"),
        Some((Some("3600000".into()), DYNAMIC_DEFAULT, false, false))
    );
    let synonyms: Vec<(String, i8)> = two
        .configs
        .iter()
        .find(|e| e.name.as_str() == "log.retention.ms")
        .unwrap()
        .synonyms
        .iter()
        .map(|s| (s.value.as_ref().unwrap().to_string(), s.source))
        .collect();
    assert_eq!(
        synonyms,
        vec![
            ("3600000".to_string(), DYNAMIC_DEFAULT),
            ("604800000".to_string(), DEFAULT)
        ]
    );
    // SUBTRACT takes the policy back; DELETE returns to the file's value.
    let back = incremental(
        &mut c1,
        "",
        &[
            ("log.cleanup.policy", 3, Some("compact")),
            ("message.max.bytes", 1, None),
        ],
        false,
    )
    .await;
    assert_eq!(back, (0, String::new()));
    until_applied(&cluster, 1, &tp, |log| {
        !log.compacted && log.batch_bytes_max == LogSettings::default().message_max_bytes
    })
    .await;

    // A per-broker config, set on its own broker with AlterConfigs (librdkafka's 0081).
    let own = alter(
        &mut c2,
        "2",
        &[
            ("sasl.kerberos.min.time.before.relogin", "58000"),
            ("log.retention.ms", "1000"),
        ],
    )
    .await;
    assert_eq!(own, (0, String::new()));
    until_applied(&cluster, 1, &tp, |log| log.retention_ms == Some(1000)).await;
    until_applied(&cluster, 0, &tp, |log| log.retention_ms == Some(3_600_000)).await;
    let two = describe(&mut c2, "2", false).await;
    assert_eq!(
        entry(&two, "sasl.kerberos.min.time.before.relogin"),
        Some((Some("58000".into()), DYNAMIC_BROKER, false, false))
    );
    assert_eq!(
        entry(&two, "log.retention.ms"),
        Some((Some("1000".into()), DYNAMIC_BROKER, false, false))
    );

    // Bad input: Kafka's codes, and the connection stays open. Each incremental refusal is
    // (resource, config, operation, value, expected code); two AlterConfigs name other brokers.
    let incremental_refusals: [(&str, &str, i8, &str, i16); 6] = [
        ("1", "no.such.config", 0, "1", INVALID_CONFIG),
        ("1", "log.retention.ms", 0, "soon", INVALID_REQUEST),
        ("1", "num.partitions", 0, "3", INVALID_REQUEST),
        ("1", "connections.max.reauth.ms", 0, "1000", INVALID_REQUEST),
        (
            "",
            "sasl.kerberos.min.time.before.relogin",
            0,
            "1",
            INVALID_REQUEST,
        ),
        ("1", "log.retention.ms", 2, "1", INVALID_CONFIG),
    ];
    let mut refusals = Vec::new();
    for (resource, config, operation, value, expected) in incremental_refusals {
        let ops = [(config, operation, Some(value))];
        let answer = incremental(&mut c1, resource, &ops, false).await;
        refusals.push((answer, expected));
    }
    for resource in ["2", "x"] {
        let answer = alter(&mut c1, resource, &[("log.retention.ms", "1")]).await;
        refusals.push((answer, INVALID_REQUEST));
    }
    for (i, ((code, message), expected)) in refusals.iter().enumerate() {
        assert_eq!(code, expected, "refusal {i}: {message}");
        assert!(!message.is_empty(), "refusal {i} explains itself");
    }
    assert_eq!(
        refusals[2].0 .1,
        "Cannot update these configs dynamically: Set(num.partitions)"
    );
    assert_eq!(
        refusals[6].0 .1,
        "Unexpected broker id, expected 1, but received 2"
    );
    for name in ["2", "x", "-1"] {
        let other = describe(&mut c1, name, false).await;
        assert_eq!(other.error_code, INVALID_REQUEST, "{name}");
        assert!(other.configs.is_empty());
    }
    assert!(!c1.metadata().await.brokers.is_empty(), "still open");

    // A restart keeps both levels: they are in the metadata log.
    cluster.stop(1);
    cluster.boot(1).await;
    let mut c2 = Connection::open(&addresses[1]).await;
    ready_cluster(&mut c2, 2).await;
    let mut after = describe(&mut c2, "2", false).await;
    for _ in 0..100 {
        if entry(&after, "log.retention.ms").is_some_and(|e| e.1 == DYNAMIC_BROKER) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        after = describe(&mut c2, "2", false).await;
    }
    assert_eq!(
        entry(&after, "sasl.kerberos.min.time.before.relogin"),
        Some((Some("58000".into()), DYNAMIC_BROKER, false, false))
    );
    assert_eq!(
        entry(&after, "log.retention.ms"),
        Some((Some("1000".into()), DYNAMIC_BROKER, false, false))
    );
    let default = describe(&mut c2, "", false).await;
    assert_eq!(
        entry(&default, "log.retention.ms"),
        Some((Some("3600000".into()), DYNAMIC_DEFAULT, false, false))
    );
    until_applied(&cluster, 1, &tp, |log| log.retention_ms == Some(1000)).await;
    for i in 0..2 {
        cluster.stop(i);
    }
}

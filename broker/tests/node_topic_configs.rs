//! Topic configs and CreatePartitions against a real single node over TCP (issue 13 item 3):
//! CreateTopics with configs validated with Kafka's rules, DescribeConfigs' values, sources and
//! read-only flags, AlterConfigs and IncrementalAlterConfigs applied to the live partition,
//! keyless records refused by a compacted topic, a broker's static settings read-only, and
//! CreatePartitions.
#![cfg(not(madsim))]
#![allow(clippy::unwrap_used)]

mod node_support;

use broker::node;
use broker::node::config::TopicDefaults;
use node_support::{outcomes, ready, Connection};
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::{
    alter_configs_request, create_partitions_request, describe_configs_request,
    incremental_alter_configs_request, produce_request, AlterConfigsRequest, AlterConfigsResponse,
    ApiKey, BrokerId as KBroker, CreatePartitionsRequest, CreatePartitionsResponse,
    DescribeConfigsRequest, DescribeConfigsResponse, IncrementalAlterConfigsRequest,
    IncrementalAlterConfigsResponse, MetadataResponse, ProduceRequest, ProduceResponse, TopicName,
};
use kafka_protocol::protocol::{Decodable, StrBytes};
use wire::TopicPartition;

/// One combined node, default topics of 1 partition, replication factor 1 and min ISR 2.
async fn start_node() -> (node::NodeHandle, String) {
    node_support::start_node(TopicDefaults {
        min_insync_replicas: 2,
        ..TopicDefaults::default()
    })
    .await
}

impl Connection {
    async fn describe(
        &mut self,
        resource_type: i8,
        name: &str,
        synonyms: bool,
    ) -> DescribeConfigsResponse {
        let request = DescribeConfigsRequest::default()
            .with_resources(vec![
                describe_configs_request::DescribeConfigsResource::default()
                    .with_resource_type(resource_type)
                    .with_resource_name(StrBytes::from_string(name.to_string()))
                    .with_configuration_keys(None),
            ])
            .with_include_synonyms(synonyms);
        let mut body = self.call(ApiKey::DescribeConfigs, 4, &request).await;
        DescribeConfigsResponse::decode(&mut body, 4).unwrap()
    }

    async fn incremental(
        &mut self,
        resource_type: i8,
        name: &str,
        ops: &[(&str, i8, Option<&str>)],
        validate_only: bool,
    ) -> IncrementalAlterConfigsResponse {
        use incremental_alter_configs_request::{AlterConfigsResource, AlterableConfig};
        let configs = ops
            .iter()
            .map(|(key, op, value)| {
                AlterableConfig::default()
                    .with_name(StrBytes::from_string(key.to_string()))
                    .with_config_operation(*op)
                    .with_value(value.map(|v| StrBytes::from_string(v.to_string())))
            })
            .collect();
        let request = IncrementalAlterConfigsRequest::default()
            .with_resources(vec![AlterConfigsResource::default()
                .with_resource_type(resource_type)
                .with_resource_name(StrBytes::from_string(name.to_string()))
                .with_configs(configs)])
            .with_validate_only(validate_only);
        let mut body = self
            .call(ApiKey::IncrementalAlterConfigs, 1, &request)
            .await;
        IncrementalAlterConfigsResponse::decode(&mut body, 1).unwrap()
    }

    async fn alter(
        &mut self,
        name: &str,
        configs: &[(&str, &str)],
        validate_only: bool,
    ) -> AlterConfigsResponse {
        use alter_configs_request::{AlterConfigsResource, AlterableConfig};
        let configs = configs
            .iter()
            .map(|(key, value)| {
                AlterableConfig::default()
                    .with_name(StrBytes::from_string(key.to_string()))
                    .with_value(Some(StrBytes::from_string(value.to_string())))
            })
            .collect();
        let request = AlterConfigsRequest::default()
            .with_resources(vec![AlterConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(StrBytes::from_string(name.to_string()))
                .with_configs(configs)])
            .with_validate_only(validate_only);
        let mut body = self.call(ApiKey::AlterConfigs, 2, &request).await;
        AlterConfigsResponse::decode(&mut body, 2).unwrap()
    }

    async fn grow(
        &mut self,
        name: &str,
        count: i32,
        assignments: Option<Vec<Vec<i32>>>,
        validate_only: bool,
    ) -> CreatePartitionsResponse {
        use create_partitions_request::{CreatePartitionsAssignment, CreatePartitionsTopic};
        let assignments = assignments.map(|lists| {
            lists
                .into_iter()
                .map(|brokers| {
                    CreatePartitionsAssignment::default()
                        .with_broker_ids(brokers.into_iter().map(KBroker).collect())
                })
                .collect()
        });
        let request = CreatePartitionsRequest::default()
            .with_topics(vec![CreatePartitionsTopic::default()
                .with_name(name_of(name))
                .with_count(count)
                .with_assignments(assignments)])
            .with_timeout_ms(10_000)
            .with_validate_only(validate_only);
        let mut body = self.call(ApiKey::CreatePartitions, 3, &request).await;
        CreatePartitionsResponse::decode(&mut body, 3).unwrap()
    }

    async fn produce(&mut self, topic: &str, key: Option<&[u8]>) -> (i16, String) {
        let mut builder = log_core::BatchBuilder::new();
        builder.push(key, Some(b"value"), 1_000, &[]);
        let records = Bytes::from(builder.build());
        let request = ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(10_000)
            .with_topic_data(vec![produce_request::TopicProduceData::default()
                .with_name(name_of(topic))
                .with_partition_data(vec![
                    produce_request::PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(records)),
                ])]);
        let mut body = self.call(ApiKey::Produce, 9, &request).await;
        let response = ProduceResponse::decode(&mut body, 9).unwrap();
        let partition = &response.responses[0].partition_responses[0];
        let message = partition.error_message.as_ref().map(|m| m.to_string());
        (partition.error_code, message.unwrap_or_default())
    }
}

fn name_of(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_string()))
}

fn topic(topic: &str, partitions: i32, replication_factor: i16) -> CreatableTopic {
    CreatableTopic::default()
        .with_name(name_of(topic))
        .with_num_partitions(partitions)
        .with_replication_factor(replication_factor)
}

fn config(key: &str, value: &str) -> CreatableTopicConfig {
    CreatableTopicConfig::default()
        .with_name(StrBytes::from_string(key.to_string()))
        .with_value(Some(StrBytes::from_string(value.to_string())))
}

/// (name, value, read_only, source) of every entry of a DescribeConfigs answer's one resource.
fn entries(response: &DescribeConfigsResponse) -> Vec<(String, String, bool, i8)> {
    assert_eq!(response.results.len(), 1);
    let result = &response.results[0];
    assert_eq!(result.error_code, 0, "{result:?}");
    result
        .configs
        .iter()
        .map(|c| {
            let value = c.value.as_ref().map(|v| v.to_string()).unwrap_or_default();
            (c.name.to_string(), value, c.read_only, c.config_source)
        })
        .collect()
}

fn entry(name: &str, value: &str, read_only: bool, source: i8) -> (String, String, bool, i8) {
    (name.to_string(), value.to_string(), read_only, source)
}

const DYNAMIC: i8 = 1;
const STATIC: i8 = 4;
const DEFAULT: i8 = 5;

/// The resource answers of an alteration: (error code, message).
fn altered(codes: impl IntoIterator<Item = (i16, Option<StrBytes>)>) -> Vec<(i16, String)> {
    codes
        .into_iter()
        .map(|(code, message)| (code, message.map(|m| m.to_string()).unwrap_or_default()))
        .collect()
}

/// Waits until the hosted partition runs with `check` true of its live log config.
async fn until_applied(
    node: &node::NodeHandle,
    tp: &TopicPartition,
    check: impl Fn(&log_core::LogConfig, usize) -> bool,
) {
    let shared = node.broker.as_ref().unwrap();
    for _ in 0..200 {
        if let Some(partition) = shared.partition(tp) {
            if let Some(config) = partition.log_config() {
                if check(&config, partition.min_insync_replicas()) {
                    return;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{tp}: the configs never reached the partition");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_configs_are_validated_described_altered_and_applied() {
    let (node, address) = start_node().await;
    let mut c = Connection::open(&address).await;
    ready(&mut c).await;

    // CreateTopics: Kafka's validation, with messages.
    let response = c
        .create(
            vec![
                topic("unknown", 1, 1).with_configs(vec![config("dummy.doesntexist", "1")]),
                topic("badvalue", 1, 1).with_configs(vec![config("retention.ms", "-7")]),
                topic("twice", 1, 1).with_configs(vec![
                    config("retention.ms", "1"),
                    config("retention.ms", "2"),
                ]),
                topic("compacted", 1, 1).with_configs(vec![
                    config("cleanup.policy", "compact"),
                    config("min.insync.replicas", "1"),
                    config("segment.bytes", "4096"),
                ]),
            ],
            false,
        )
        .await;
    assert_eq!(
        outcomes(&response),
        vec![
            (
                40,
                "Unknown topic config name: dummy.doesntexist".to_string()
            ),
            (
                40,
                "Invalid value -7 for configuration retention.ms: Value must be at least -1"
                    .to_string()
            ),
            (
                42,
                "Error due to duplicate config keys: retention.ms".to_string()
            ),
            (0, String::new()),
        ]
    );
    let tp = TopicPartition::new("compacted", 0);
    until_applied(&node, &tp, |log, min_isr| {
        log.compacted && log.segment_bytes_max == 4096 && min_isr == 1
    })
    .await;

    // Kafka's rule for compacted topics: a record without a key is INVALID_RECORD.
    assert_eq!(
        c.produce("compacted", None).await,
        (
            87,
            "One or more records have been rejected due to 1 record errors in total".to_string()
        )
    );
    assert_eq!(c.produce("compacted", Some(b"k")).await, (0, String::new()));

    // DescribeConfigs: every config, alterable, with the topic's own values marked dynamic.
    let described = entries(&c.describe(2, "compacted", false).await);
    assert_eq!(
        described,
        vec![
            entry("cleanup.policy", "compact", false, DYNAMIC),
            entry("compression.type", "producer", false, DEFAULT),
            entry("delete.retention.ms", "86400000", false, DEFAULT),
            entry("flush.messages", "9223372036854775807", false, DEFAULT),
            entry("flush.ms", "9223372036854775807", false, DEFAULT),
            entry("max.message.bytes", "1049600", false, DEFAULT),
            entry("message.format.version", "3.0-IV1", false, DEFAULT),
            entry("message.timestamp.type", "CreateTime", false, DEFAULT),
            entry("min.insync.replicas", "1", false, DYNAMIC),
            entry("retention.bytes", "-1", false, DEFAULT),
            entry("retention.ms", "604800000", false, DEFAULT),
            entry("segment.bytes", "4096", false, DYNAMIC),
            entry("segment.ms", "604800000", false, DEFAULT),
            entry("unclean.leader.election.enable", "false", false, DEFAULT),
        ]
    );
    // Synonyms: the topic's value, then the broker's.
    let with_synonyms = c.describe(2, "compacted", true).await;
    let min_isr = with_synonyms.results[0]
        .configs
        .iter()
        .find(|e| e.name.as_str() == "min.insync.replicas")
        .unwrap();
    let synonyms: Vec<(String, String, i8)> = min_isr
        .synonyms
        .iter()
        .map(|s| {
            (
                s.name.to_string(),
                s.value.as_ref().unwrap().to_string(),
                s.source,
            )
        })
        .collect();
    assert_eq!(
        synonyms,
        vec![
            ("min.insync.replicas".to_string(), "1".to_string(), DYNAMIC),
            ("min.insync.replicas".to_string(), "2".to_string(), STATIC),
        ]
    );

    // IncrementalAlterConfigs: validate_only changes nothing; then APPEND, SET and DELETE apply
    // to the live partition.
    let ops: &[(&str, i8, Option<&str>)] = &[
        ("cleanup.policy", 2, Some("delete")),
        ("retention.ms", 0, Some("3600000")),
        ("min.insync.replicas", 1, None),
        ("message.timestamp.type", 0, Some("LogAppendTime")),
    ];
    let dry = c.incremental(2, "compacted", ops, true).await;
    assert_eq!(
        altered(
            dry.responses
                .iter()
                .map(|r| (r.error_code, r.error_message.clone()))
        ),
        vec![(0, String::new())]
    );
    assert_eq!(
        entries(&c.describe(2, "compacted", false).await),
        described,
        "validate_only"
    );
    let done = c.incremental(2, "compacted", ops, false).await;
    assert_eq!(
        altered(
            done.responses
                .iter()
                .map(|r| (r.error_code, r.error_message.clone()))
        ),
        vec![(0, String::new())]
    );
    until_applied(&node, &tp, |log, min_isr| {
        log.compacted && log.retention_ms == Some(3_600_000) && log.log_append_time && min_isr == 2
    })
    .await;
    let now = entries(&c.describe(2, "compacted", false).await);
    let named = |name: &str| now.iter().find(|e| e.0 == name).cloned();
    assert_eq!(
        named("cleanup.policy"),
        Some(entry("cleanup.policy", "compact,delete", false, DYNAMIC))
    );
    assert_eq!(
        named("message.timestamp.type"),
        Some(entry(
            "message.timestamp.type",
            "LogAppendTime",
            false,
            DYNAMIC
        ))
    );
    assert_eq!(
        named("min.insync.replicas"),
        Some(entry("min.insync.replicas", "2", false, STATIC))
    );
    assert_eq!(
        named("retention.ms"),
        Some(entry("retention.ms", "3600000", false, DYNAMIC))
    );

    // Refusals: APPEND to a scalar, an unknown op, an unknown topic, a broker's static config.
    let refused = c
        .incremental(2, "compacted", &[("retention.ms", 2, Some("5"))], false)
        .await;
    assert_eq!(
        altered(
            refused
                .responses
                .iter()
                .map(|r| (r.error_code, r.error_message.clone()))
        ),
        vec![(
            42,
            "Config value append is not allowed for config key: retention.ms".to_string()
        )]
    );
    let refused = c
        .incremental(2, "compacted", &[("retention.ms", 9, Some("5"))], false)
        .await;
    assert_eq!(refused.responses[0].error_code, 42);
    let refused = c
        .incremental(2, "nope", &[("retention.ms", 0, Some("5"))], false)
        .await;
    assert_eq!(refused.responses[0].error_code, 3);
    let refused = c
        .incremental(4, "1", &[("num.partitions", 0, Some("5"))], false)
        .await;
    assert_eq!(refused.responses[0].error_code, 42);

    // AlterConfigs replaces the whole set: what it does not name returns to the default.
    let replaced = c
        .alter("compacted", &[("retention.bytes", "1048576")], false)
        .await;
    assert_eq!(
        altered(
            replaced
                .responses
                .iter()
                .map(|r| (r.error_code, r.error_message.clone()))
        ),
        vec![(0, String::new())]
    );
    until_applied(&node, &tp, |log, _| {
        !log.compacted && log.retention_bytes == Some(1 << 20) && !log.log_append_time
    })
    .await;
    let dynamic: Vec<_> = entries(&c.describe(2, "compacted", false).await)
        .into_iter()
        .filter(|e| e.3 == DYNAMIC)
        .collect();
    assert_eq!(
        dynamic,
        vec![entry("retention.bytes", "1048576", false, DYNAMIC)]
    );
    assert_eq!(
        c.produce("compacted", None).await.0,
        0,
        "no longer compacted"
    );
    let invalid = c
        .alter("compacted", &[("cleanup.policy", "sometimes")], false)
        .await;
    assert_eq!(invalid.responses[0].error_code, 40);

    // A broker's settings from its file are read-only; the dynamic broker configs rill accepts
    // are not (broker/tests/node_broker_configs.rs).
    let broker = entries(&c.describe(4, "1", false).await);
    assert!(
        broker.contains(&entry("min.insync.replicas", "2", true, STATIC)),
        "{broker:?}"
    );
    assert!(
        broker.contains(&entry("log.retention.ms", "604800000", false, DEFAULT)),
        "{broker:?}"
    );
    node.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_partitions_grows_topics_and_refuses_a_decrease() {
    let (node, address) = start_node().await;
    let mut c = Connection::open(&address).await;
    ready(&mut c).await;
    assert_eq!(
        outcomes(&c.create(vec![topic("grow", 1, 1)], false).await),
        vec![(0, String::new())]
    );

    let outcome = |r: &CreatePartitionsResponse| {
        altered(
            r.results
                .iter()
                .map(|t| (t.error_code, t.error_message.clone())),
        )
    };
    assert_eq!(
        outcome(&c.grow("grow", 3, None, true).await),
        vec![(0, String::new())]
    );
    let partitions = |m: &MetadataResponse| {
        m.topics
            .iter()
            .find(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == "grow"))
            .map_or(0, |t| t.partitions.len())
    };
    assert_eq!(partitions(&c.metadata().await), 1, "validate_only");
    assert_eq!(
        outcome(&c.grow("grow", 3, None, false).await),
        vec![(0, String::new())]
    );
    assert_eq!(partitions(&c.metadata().await), 3);
    assert_eq!(
        outcome(&c.grow("grow", 4, Some(vec![vec![1]]), false).await),
        vec![(0, String::new())]
    );
    assert_eq!(partitions(&c.metadata().await), 4);
    // The new partition takes records.
    let tp = TopicPartition::new("grow", 3);
    until_applied(&node, &tp, |_, _| true).await;
    assert_eq!(
        outcome(&c.grow("grow", 2, None, false).await),
        vec![(
            37,
            "The topic grow currently has 4 partition(s); 2 would not be an increase.".to_string()
        )]
    );
    assert_eq!(
        outcome(&c.grow("grow", 4, None, false).await),
        vec![(37, "Topic already has 4 partition(s).".to_string())]
    );
    assert_eq!(
        outcome(&c.grow("grow", 6, Some(vec![vec![1]]), false).await)[0].0,
        39,
        "INVALID_REPLICA_ASSIGNMENT"
    );
    assert_eq!(
        outcome(&c.grow("nope", 2, None, false).await),
        vec![(3, "The topic 'nope' does not exist.".to_string())]
    );
    assert_eq!(partitions(&c.metadata().await), 4);
    node.shutdown();
}

//! The version table: the plan fits kafka-protocol, and only implemented APIs are advertised.
#![allow(clippy::unwrap_used)]

use broker::protocol::legacy;
use broker::protocol::versions::{
    ApiVersionRange, VersionTable, ERROR_CODE_UNSUPPORTED_VERSION, IMPLEMENTED_API_KEYS,
    PLANNED_API_VERSIONS,
};
use kafka_protocol::messages::ApiKey;

#[test]
fn plan_lists_every_api_of_issue_4_within_kafka_protocol_ranges() {
    let table = VersionTable::planned();
    // Issue 4's 19, issue 15's SASL pair, issue 13's AlterConfigs, CreatePartitions,
    // IncrementalAlterConfigs, DeleteRecords, DescribeCluster, DeleteGroups, OffsetDelete,
    // DescribeLogDirs, ElectLeaders and DescribeProducers, issue 15's CreateAcls, DescribeAcls,
    // DeleteAcls, Describe/AlterUserScramCredentials.
    assert_eq!(table.entries().len(), 36);
    for entry in PLANNED_API_VERSIONS {
        let encodable = entry.api_key.valid_versions();
        // Below kafka-protocol's range only where the legacy module translates.
        let translated = (entry.version_min..encodable.min)
            .all(|v| legacy::handled_as(entry.api_key, v).is_some());
        assert!(translated, "{entry:?}");
        assert!(entry.version_max <= encodable.max, "{entry:?}");
    }
    let expect = |api_key, version_min, version_max| {
        assert_eq!(
            table.range(api_key),
            Some(ApiVersionRange {
                api_key,
                version_min,
                version_max
            })
        );
    };
    expect(ApiKey::ApiVersions, 0, 3);
    expect(ApiKey::Produce, 3, 9);
    expect(ApiKey::Fetch, 4, 12);
    expect(ApiKey::Metadata, 0, 12);
    // Kafka 3.x's old versions for old clients (issue 13 item 6), some translated.
    expect(ApiKey::ListOffsets, 0, 7);
    expect(ApiKey::OffsetCommit, 0, 8);
    expect(ApiKey::OffsetFetch, 0, 7);
    expect(ApiKey::DescribeConfigs, 0, 4);
    expect(ApiKey::DeleteRecords, 0, 2);
    expect(ApiKey::DescribeCluster, 0, 1);
    expect(ApiKey::DescribeLogDirs, 1, 4);
    expect(ApiKey::ElectLeaders, 0, 2);
    expect(ApiKey::DescribeProducers, 0, 0);
    // SASL for clients and rill's inter-node handshake; v0 advertised for librdkafka's sake.
    expect(ApiKey::SaslHandshake, 0, 1);
    expect(ApiKey::SaslAuthenticate, 0, 2);
    expect(ApiKey::CreateAcls, 1, 3);
    expect(ApiKey::DescribeUserScramCredentials, 0, 0);
}

#[test]
fn implemented_table_advertises_every_planned_api() {
    // Every planned API has a handler now: the advertised table is the plan.
    let table = VersionTable::implemented();
    assert_eq!(table.entries(), VersionTable::planned().entries());
    assert_eq!(IMPLEMENTED_API_KEYS.len(), PLANNED_API_VERSIONS.len());
    assert!(table.supports(ApiKey::ApiVersions, 3));
    assert!(!table.supports(ApiKey::ApiVersions, 4));
    assert!(table.supports(ApiKey::Metadata, 1));
    assert!(table.supports(ApiKey::SaslHandshake, 0));
    let response = table.api_versions_response(ERROR_CODE_UNSUPPORTED_VERSION);
    assert_eq!(response.api_keys.len(), PLANNED_API_VERSIONS.len());
}

#[test]
fn table_is_sorted_by_api_key() {
    let table = VersionTable::planned();
    let keys: Vec<i16> = table
        .entries()
        .iter()
        .map(|entry| entry.api_key as i16)
        .collect();
    let mut sorted = keys.clone();
    sorted.sort_unstable();
    assert_eq!(keys, sorted);
}

#[test]
#[should_panic(expected = "outside kafka-protocol")]
fn table_refuses_a_range_kafka_protocol_cannot_encode() {
    VersionTable::new(&[ApiVersionRange {
        api_key: ApiKey::Produce,
        version_min: 0,
        version_max: 9,
    }]);
}

#[test]
#[should_panic(expected = "listed twice")]
fn table_refuses_duplicates() {
    let entry = ApiVersionRange {
        api_key: ApiKey::Metadata,
        version_min: 1,
        version_max: 2,
    };
    VersionTable::new(&[entry, entry]);
}

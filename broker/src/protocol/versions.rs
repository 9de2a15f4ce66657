//! The APIs rill serves and at which versions. The table is the contract with clients: the
//! ApiVersions response advertises exactly the table a connection was given, and the connection
//! accepts exactly those versions, so what is advertised and what is served cannot drift apart.
//!
//! [`PLANNED_API_VERSIONS`] is the full list issue 4 asks for; handlers other than ApiVersions arrive
//! later, so it is a plan, not a claim that they work. [`VersionTable::implemented`] holds only the
//! entries whose handlers exist today ([`IMPLEMENTED_API_KEYS`]): ApiVersions itself.

use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiKey, ApiVersionsResponse};

/// UNSUPPORTED_VERSION, Kafka error code 35.
pub const ERROR_CODE_UNSUPPORTED_VERSION: i16 = 35;

/// Most entries a table may hold; Kafka defines under 100 APIs.
pub const API_VERSION_ENTRIES_MAX: usize = 128;

/// One API and the inclusive range of versions served for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiVersionRange {
    /// The API.
    pub api_key: ApiKey,
    /// Lowest version served (inclusive).
    pub version_min: i16,
    /// Highest version served (inclusive).
    pub version_max: i16,
}

const fn range(api_key: ApiKey, version_min: i16, version_max: i16) -> ApiVersionRange {
    ApiVersionRange {
        api_key,
        version_min,
        version_max,
    }
}

/// Every API rill will serve, with the versions it will serve. Ranges sit inside what
/// `kafka-protocol` 0.18 encodes, or reach below it where [`super::legacy`] translates the
/// old versions Kafka 3.x still serves (ListOffsets v0, OffsetCommit v0–1, OffsetFetch v0,
/// DescribeConfigs v0), and stop before versions whose semantics rill does not plan
/// (topic ids in Fetch 13+, KIP-848 consumer groups, KIP-890 transactions), while covering what
/// librdkafka 2.x and the Java client negotiate.
pub const PLANNED_API_VERSIONS: &[ApiVersionRange] = &[
    range(ApiKey::Produce, 3, 9),
    range(ApiKey::Fetch, 4, 12),
    range(ApiKey::ListOffsets, 0, 7),
    range(ApiKey::Metadata, 0, 12),
    range(ApiKey::OffsetCommit, 0, 8),
    range(ApiKey::OffsetFetch, 0, 7),
    range(ApiKey::FindCoordinator, 0, 4),
    range(ApiKey::JoinGroup, 0, 7),
    range(ApiKey::Heartbeat, 0, 4),
    range(ApiKey::LeaveGroup, 0, 4),
    range(ApiKey::SyncGroup, 0, 5),
    range(ApiKey::DescribeGroups, 0, 5),
    range(ApiKey::ListGroups, 0, 5),
    range(ApiKey::ApiVersions, 0, 3),
    range(ApiKey::CreateTopics, 2, 7),
    range(ApiKey::DeleteTopics, 1, 5),
    range(ApiKey::InitProducerId, 0, 4),
    range(ApiKey::OffsetForLeaderEpoch, 2, 4),
    range(ApiKey::DescribeConfigs, 0, 4),
    range(ApiKey::AlterConfigs, 0, 2),
    range(ApiKey::CreatePartitions, 0, 3),
    range(ApiKey::IncrementalAlterConfigs, 0, 1),
    range(ApiKey::DeleteRecords, 0, 2),
    range(ApiKey::DescribeCluster, 0, 1),
    range(ApiKey::DeleteGroups, 0, 2),
    range(ApiKey::OffsetDelete, 0, 0),
    range(ApiKey::DescribeLogDirs, 1, 4),
    range(ApiKey::ElectLeaders, 0, 2),
    range(ApiKey::DescribeProducers, 0, 0),
    // Clients' PLAIN and SCRAM, and rill's inter-node handshake (crate::security::sasl).
    // SaslHandshake v0 is advertised because librdkafka requires it for its SASL feature, but
    // its raw-token mode (Kafka 0.10.0 clients) is refused: a v0 handshake answers
    // UNSUPPORTED_SASL_MECHANISM; clients that know v1 use v1.
    range(ApiKey::SaslHandshake, 0, 1),
    range(ApiKey::SaslAuthenticate, 0, 2),
    range(ApiKey::CreateAcls, 1, 3),
    range(ApiKey::DescribeAcls, 1, 3),
    range(ApiKey::DeleteAcls, 1, 3),
    range(ApiKey::DescribeUserScramCredentials, 0, 0),
    range(ApiKey::AlterUserScramCredentials, 0, 0),
];

/// APIs whose handlers exist today. Only these are advertised by [`VersionTable::implemented`].
pub const IMPLEMENTED_API_KEYS: &[ApiKey] = &[
    ApiKey::ApiVersions,
    ApiKey::Metadata,
    ApiKey::Produce,
    ApiKey::Fetch,
    ApiKey::ListOffsets,
    ApiKey::OffsetForLeaderEpoch,
    ApiKey::CreateTopics,
    ApiKey::DeleteTopics,
    ApiKey::DescribeConfigs,
    ApiKey::AlterConfigs,
    ApiKey::CreatePartitions,
    ApiKey::IncrementalAlterConfigs,
    ApiKey::DeleteRecords,
    ApiKey::DescribeCluster,
    ApiKey::DeleteGroups,
    ApiKey::OffsetDelete,
    ApiKey::DescribeLogDirs,
    ApiKey::ElectLeaders,
    ApiKey::DescribeProducers,
    ApiKey::InitProducerId,
    ApiKey::FindCoordinator,
    ApiKey::JoinGroup,
    ApiKey::SyncGroup,
    ApiKey::Heartbeat,
    ApiKey::LeaveGroup,
    ApiKey::OffsetCommit,
    ApiKey::OffsetFetch,
    ApiKey::DescribeGroups,
    ApiKey::ListGroups,
    ApiKey::SaslHandshake,
    ApiKey::SaslAuthenticate,
    ApiKey::CreateAcls,
    ApiKey::DescribeAcls,
    ApiKey::DeleteAcls,
    ApiKey::DescribeUserScramCredentials,
    ApiKey::AlterUserScramCredentials,
];

/// A validated set of served API versions, at most one entry per API, ordered by API key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionTable {
    /// Entries sorted by API key, each within `kafka-protocol`'s encodable range.
    entries: Vec<ApiVersionRange>,
}

impl VersionTable {
    /// Builds a table, checking each range is non-empty, unique per API and encodable by
    /// `kafka-protocol` (a range it cannot encode would be a promise we cannot keep).
    pub fn new(entries: &[ApiVersionRange]) -> Self {
        assert!(
            entries.len() <= API_VERSION_ENTRIES_MAX,
            "version table too long"
        );
        let mut sorted = entries.to_vec();
        sorted.sort_by_key(|entry| entry.api_key as i16);
        for pair in sorted.windows(2) {
            assert_ne!(
                pair[0].api_key, pair[1].api_key,
                "API listed twice in the version table"
            );
        }
        for entry in &sorted {
            let encodable = entry.api_key.valid_versions();
            // Versions below kafka-protocol's are served only where `legacy` translates them.
            let lowest = super::legacy::version_min(entry.api_key);
            assert!(
                entry.version_min <= entry.version_max,
                "empty range for {:?}",
                entry.api_key
            );
            assert!(
                lowest <= entry.version_min && entry.version_max <= encodable.max,
                "{:?} {}..={} outside kafka-protocol's {}",
                entry.api_key,
                entry.version_min,
                entry.version_max,
                encodable
            );
        }
        Self { entries: sorted }
    }

    /// The planned entries restricted to [`IMPLEMENTED_API_KEYS`]: what a broker advertises today.
    pub fn implemented() -> Self {
        let entries: Vec<ApiVersionRange> = PLANNED_API_VERSIONS
            .iter()
            .filter(|entry| IMPLEMENTED_API_KEYS.contains(&entry.api_key))
            .copied()
            .collect();
        assert_eq!(
            entries.len(),
            IMPLEMENTED_API_KEYS.len(),
            "implemented API missing from the plan"
        );
        Self::new(&entries)
    }

    /// Every planned entry. For tests and for the day all handlers exist, not for advertising now.
    pub fn planned() -> Self {
        Self::new(PLANNED_API_VERSIONS)
    }

    /// The entries, ordered by API key.
    pub fn entries(&self) -> &[ApiVersionRange] {
        &self.entries
    }

    /// The served range of `api_key`, if it is served at all.
    pub fn range(&self, api_key: ApiKey) -> Option<ApiVersionRange> {
        self.entries
            .iter()
            .find(|entry| entry.api_key == api_key)
            .copied()
    }

    /// Whether `api_key` at `api_version` is served.
    pub fn supports(&self, api_key: ApiKey, api_version: i16) -> bool {
        self.range(api_key).is_some_and(|entry| {
            entry.version_min <= api_version && api_version <= entry.version_max
        })
    }

    /// The ApiVersions response body advertising this table, with `error_code` (0, or
    /// [`ERROR_CODE_UNSUPPORTED_VERSION`] for the KIP-511 fallback answer).
    pub fn api_versions_response(&self, error_code: i16) -> ApiVersionsResponse {
        let api_keys: Vec<ApiVersion> = self
            .entries
            .iter()
            .map(|entry| {
                ApiVersion::default()
                    .with_api_key(entry.api_key as i16)
                    .with_min_version(entry.version_min)
                    .with_max_version(entry.version_max)
            })
            .collect();
        assert_eq!(api_keys.len(), self.entries.len());
        ApiVersionsResponse::default()
            .with_error_code(error_code)
            .with_api_keys(api_keys)
    }
}

//! The API versions this client implements, and negotiation against a broker's ApiVersions
//! answer: the highest version both sides support.

use std::collections::BTreeMap;

use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::VersionRange;

/// One API and the inclusive versions this client can encode and interpret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientApiVersions {
    /// The API.
    pub api_key: ApiKey,
    /// Lowest version whose field layout the client handles.
    pub version_min: i16,
    /// Highest version whose field layout the client handles.
    pub version_max: i16,
}

const fn entry(api_key: ApiKey, version_min: i16, version_max: i16) -> ClientApiVersions {
    ClientApiVersions {
        api_key,
        version_min,
        version_max,
    }
}

/// Versions the client implements. Every range lies inside what kafka-protocol 0.18 encodes; caps
/// stop before layouts the client does not write (FindCoordinator 4 batches keys, OffsetFetch 8
/// batches groups, Fetch 13 and DeleteTopics 6 name topics by id).
pub const CLIENT_API_VERSIONS: &[ClientApiVersions] = &[
    entry(ApiKey::Produce, 3, 9),
    entry(ApiKey::Fetch, 4, 12),
    entry(ApiKey::ListOffsets, 1, 7),
    entry(ApiKey::Metadata, 1, 12),
    entry(ApiKey::OffsetCommit, 2, 8),
    entry(ApiKey::OffsetFetch, 1, 7),
    entry(ApiKey::FindCoordinator, 0, 3),
    entry(ApiKey::JoinGroup, 0, 7),
    entry(ApiKey::Heartbeat, 0, 4),
    entry(ApiKey::LeaveGroup, 0, 4),
    entry(ApiKey::SyncGroup, 0, 5),
    entry(ApiKey::ApiVersions, 0, 3),
    entry(ApiKey::CreateTopics, 2, 7),
    entry(ApiKey::DeleteTopics, 1, 5),
    entry(ApiKey::InitProducerId, 0, 4),
    // v1: tokens framed in SaslAuthenticate (v0 sent them raw); v1+ of SaslAuthenticate answers
    // the session lifetime (KIP-368).
    entry(ApiKey::SaslHandshake, 1, 1),
    entry(ApiKey::SaslAuthenticate, 0, 2),
    // Built by callers of `Connection::call` (tests granting ACLs over mutual TLS); the client
    // itself never sends it.
    entry(ApiKey::CreateAcls, 1, 3),
];

/// The version of ApiVersions sent first (KIP-511); a broker that does not serve it answers
/// UNSUPPORTED_VERSION with a v0 body listing what it does serve.
pub const API_VERSIONS_FIRST: i16 = 3;

/// A broker's advertised ranges, keyed by raw API key.
pub type BrokerVersions = BTreeMap<i16, VersionRange>;

/// Negotiated version per raw API key: only APIs both sides support appear.
pub fn negotiate(broker: &BrokerVersions) -> BTreeMap<i16, i16> {
    let mut chosen = BTreeMap::new();
    for ours in CLIENT_API_VERSIONS {
        assert!(
            ours.version_min <= ours.version_max,
            "client table range empty"
        );
        let Some(theirs) = broker.get(&(ours.api_key as i16)) else {
            continue;
        };
        let both = theirs.intersect(&VersionRange {
            min: ours.version_min,
            max: ours.version_max,
        });
        if !both.is_empty() {
            assert!(
                both.max <= ours.version_max,
                "never above what the client implements"
            );
            chosen.insert(ours.api_key as i16, both.max);
        }
    }
    chosen
}

/// A stable name for the APIs the client uses, for error messages.
pub fn api_name(api_key: ApiKey) -> &'static str {
    match api_key {
        ApiKey::Produce => "Produce",
        ApiKey::Fetch => "Fetch",
        ApiKey::ListOffsets => "ListOffsets",
        ApiKey::Metadata => "Metadata",
        ApiKey::OffsetCommit => "OffsetCommit",
        ApiKey::OffsetFetch => "OffsetFetch",
        ApiKey::FindCoordinator => "FindCoordinator",
        ApiKey::JoinGroup => "JoinGroup",
        ApiKey::Heartbeat => "Heartbeat",
        ApiKey::LeaveGroup => "LeaveGroup",
        ApiKey::SyncGroup => "SyncGroup",
        ApiKey::ApiVersions => "ApiVersions",
        ApiKey::CreateTopics => "CreateTopics",
        ApiKey::DeleteTopics => "DeleteTopics",
        ApiKey::InitProducerId => "InitProducerId",
        ApiKey::SaslHandshake => "SaslHandshake",
        ApiKey::SaslAuthenticate => "SaslAuthenticate",
        ApiKey::CreateAcls => "CreateAcls",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_table_within_kafka_protocol() {
        for ours in CLIENT_API_VERSIONS {
            let valid = ours.api_key.valid_versions();
            assert!(ours.version_min >= valid.min, "{:?}", ours.api_key);
            assert!(ours.version_max <= valid.max, "{:?}", ours.api_key);
        }
    }

    #[test]
    fn negotiate_picks_highest_common_and_skips_disjoint() {
        let mut broker = BrokerVersions::new();
        broker.insert(ApiKey::Produce as i16, VersionRange { min: 0, max: 11 });
        broker.insert(ApiKey::Fetch as i16, VersionRange { min: 4, max: 6 });
        broker.insert(
            ApiKey::FindCoordinator as i16,
            VersionRange { min: 4, max: 6 },
        );
        let chosen = negotiate(&broker);
        assert_eq!(chosen.get(&(ApiKey::Produce as i16)), Some(&9));
        assert_eq!(chosen.get(&(ApiKey::Fetch as i16)), Some(&6));
        assert_eq!(chosen.get(&(ApiKey::FindCoordinator as i16)), None);
        assert_eq!(chosen.get(&(ApiKey::Metadata as i16)), None);
    }
}

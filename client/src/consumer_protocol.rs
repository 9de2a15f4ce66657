//! The embedded consumer protocol carried in JoinGroup metadata and SyncGroup assignments:
//! an `i16` version, then ConsumerProtocolSubscription / ConsumerProtocolAssignment at that
//! version. We write version 0 (understood by every client: librdkafka, kafka-python, Java) and
//! read any version, decoding newer ones with our newest schema (fields are only appended).

use std::collections::BTreeMap;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition as AssignedTopic;
use kafka_protocol::messages::{ConsumerProtocolAssignment, ConsumerProtocolSubscription};
use kafka_protocol::protocol::{Decodable, Encodable, Message, StrBytes};

use crate::error::{ClientError, Result};

/// Version written into subscriptions and assignments.
pub const CONSUMER_PROTOCOL_VERSION: i16 = 0;

/// Encodes a member's subscription to `topics`.
pub fn encode_subscription(topics: &[String]) -> Result<Bytes> {
    let subscription = ConsumerProtocolSubscription::default().with_topics(
        topics
            .iter()
            .map(|t| StrBytes::from_string(t.clone()))
            .collect(),
    );
    encode_versioned(&subscription)
}

/// Decodes a member's subscription into its topic list.
pub fn decode_subscription(bytes: &Bytes) -> Result<Vec<String>> {
    let (version, mut body) = split_version(bytes)?;
    let version = version.min(ConsumerProtocolSubscription::VERSIONS.max);
    let subscription = ConsumerProtocolSubscription::decode(&mut body, version)
        .map_err(|error| ClientError::Protocol(format!("subscription: {error}")))?;
    Ok(subscription
        .topics
        .iter()
        .map(|t| t.as_str().to_string())
        .collect())
}

/// Encodes an assignment (topic → partitions).
pub fn encode_assignment(assigned: &BTreeMap<String, Vec<i32>>) -> Result<Bytes> {
    let topics = assigned
        .iter()
        .map(|(topic, partitions)| {
            AssignedTopic::default()
                .with_topic(StrBytes::from_string(topic.clone()).into())
                .with_partitions(partitions.clone())
        })
        .collect();
    let assignment = ConsumerProtocolAssignment::default().with_assigned_partitions(topics);
    encode_versioned(&assignment)
}

/// Decodes an assignment; an empty byte string (a member given nothing) is an empty assignment.
pub fn decode_assignment(bytes: &Bytes) -> Result<BTreeMap<String, Vec<i32>>> {
    if bytes.is_empty() {
        return Ok(BTreeMap::new());
    }
    let (version, mut body) = split_version(bytes)?;
    let version = version.min(ConsumerProtocolAssignment::VERSIONS.max);
    let assignment = ConsumerProtocolAssignment::decode(&mut body, version)
        .map_err(|error| ClientError::Protocol(format!("assignment: {error}")))?;
    let mut assigned: BTreeMap<String, Vec<i32>> = BTreeMap::new();
    for topic in assignment.assigned_partitions {
        assigned
            .entry(topic.topic.as_str().to_string())
            .or_default()
            .extend(topic.partitions);
    }
    Ok(assigned)
}

fn encode_versioned<M: Encodable>(message: &M) -> Result<Bytes> {
    let mut buf = BytesMut::new();
    buf.put_i16(CONSUMER_PROTOCOL_VERSION);
    message
        .encode(&mut buf, CONSUMER_PROTOCOL_VERSION)
        .map_err(|error| ClientError::Encode(format!("consumer protocol: {error}")))?;
    assert!(buf.len() >= 2, "version prefix written");
    Ok(buf.freeze())
}

fn split_version(bytes: &Bytes) -> Result<(i16, Bytes)> {
    if bytes.len() < 2 {
        return Err(ClientError::Protocol(
            "consumer protocol bytes too short".into(),
        ));
    }
    let mut body = bytes.clone();
    let version = body.get_i16();
    if version < 0 {
        return Err(ClientError::Protocol(format!(
            "consumer protocol version {version}"
        )));
    }
    Ok((version, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscription_round_trips_and_matches_the_standard_bytes() {
        let topics = vec!["ab".to_string()];
        let bytes = encode_subscription(&topics).expect("encodes");
        // version 0 | topics: [i32 count=1][i16 len=2]"ab" | user_data: null bytes (-1).
        let expected: &[u8] = &[0, 0, 0, 0, 0, 1, 0, 2, b'a', b'b', 0xff, 0xff, 0xff, 0xff];
        assert_eq!(&bytes[..], expected);
        assert_eq!(decode_subscription(&bytes).expect("decodes"), topics);
    }

    #[test]
    fn assignment_round_trips_and_matches_the_standard_bytes() {
        let assigned = BTreeMap::from([("t".to_string(), vec![0, 2])]);
        let bytes = encode_assignment(&assigned).expect("encodes");
        let expected: &[u8] = &[
            0, 0, // version
            0, 0, 0, 1, 0, 1, b't', // one topic "t"
            0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 2, // partitions [0, 2]
            0xff, 0xff, 0xff, 0xff, // user_data null
        ];
        assert_eq!(&bytes[..], expected);
        assert_eq!(decode_assignment(&bytes).expect("decodes"), assigned);
        assert!(decode_assignment(&Bytes::new()).expect("empty").is_empty());
    }

    #[test]
    fn newer_versions_decode_with_our_newest_schema() {
        let subscription = ConsumerProtocolSubscription::default()
            .with_topics(vec![StrBytes::from_static_str("x")])
            .with_generation_id(4);
        let mut buf = BytesMut::new();
        buf.put_i16(3);
        subscription.encode(&mut buf, 3).expect("encodes");
        assert_eq!(
            decode_subscription(&buf.freeze()).expect("decodes"),
            vec!["x".to_string()]
        );
        assert!(decode_subscription(&Bytes::from_static(&[0])).is_err());
    }
}

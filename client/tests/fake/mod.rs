//! A scripted fake Kafka broker: a TcpListener on 127.0.0.1:0 that decodes requests with
//! kafka-protocol and answers whatever the test's script says.
#![allow(dead_code, clippy::unwrap_used)]

use std::sync::{Arc, Mutex};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsResponse, BrokerId, MetadataResponse, RequestHeader, RequestKind,
    ResponseHeader, ResponseKind,
};
use kafka_protocol::protocol::{decode_request_header_from_buffer, Encodable, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the fake does with one request.
pub enum Reply {
    /// Answer at the request's version.
    Respond(ResponseKind),
    /// Answer with a body encoded at another version (ApiVersions fallback).
    RespondAt(i16, ResponseKind),
    /// Answer with a wrong correlation id.
    WrongCorrelation(ResponseKind),
    /// Answer at the request's version after holding it this long (a long-polled Fetch).
    Held(std::time::Duration, ResponseKind),
    /// Never answer (a partitioned link).
    Silent,
}

/// A request the fake received.
#[derive(Debug, Clone)]
pub struct Seen {
    pub api_key: ApiKey,
    pub version: i16,
    pub header: RequestHeader,
    pub body: RequestKind,
}

pub type Script = Arc<dyn Fn(&Seen) -> Reply + Send + Sync>;

pub struct FakeServer {
    pub addr: String,
    pub port: i32,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    listener: Option<TcpListener>,
}

impl FakeServer {
    pub async fn bind() -> FakeServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let local = listener.local_addr().unwrap();
        FakeServer {
            addr: local.to_string(),
            port: i32::from(local.port()),
            seen: Arc::new(Mutex::new(Vec::new())),
            listener: Some(listener),
        }
    }

    pub fn start(&mut self, script: Script) {
        let listener = self.listener.take().expect("started once");
        let seen = self.seen.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(serve(stream, script.clone(), seen.clone()));
            }
        });
    }

    pub fn seen(&self, api_key: ApiKey) -> Vec<Seen> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.api_key == api_key)
            .cloned()
            .collect()
    }
}

async fn serve(mut stream: TcpStream, script: Script, seen: Arc<Mutex<Vec<Seen>>>) {
    loop {
        let Ok(length) = stream.read_i32().await else {
            return;
        };
        let mut payload = vec![0u8; length as usize];
        if stream.read_exact(&mut payload).await.is_err() {
            return;
        }
        let mut payload = Bytes::from(payload);
        let header = decode_request_header_from_buffer(&mut payload).unwrap();
        let api_key = ApiKey::try_from(header.request_api_key).unwrap();
        let version = header.request_api_version;
        let body = RequestKind::decode(api_key, &mut payload, version).unwrap();
        let request = Seen {
            api_key,
            version,
            header: header.clone(),
            body,
        };
        seen.lock().unwrap().push(request.clone());
        let (body_version, correlation_id, response) = match script(&request) {
            Reply::Respond(r) => (version, header.correlation_id, r),
            Reply::Held(hold, r) => {
                tokio::time::sleep(hold).await;
                (version, header.correlation_id, r)
            }
            Reply::RespondAt(v, r) => (v, header.correlation_id, r),
            Reply::WrongCorrelation(r) => (version, header.correlation_id + 1000, r),
            Reply::Silent => continue,
        };
        let mut frame = BytesMut::new();
        frame.put_i32(0);
        ResponseHeader::default()
            .with_correlation_id(correlation_id)
            .encode(&mut frame, api_key.response_header_version(version))
            .unwrap();
        response.encode(&mut frame, body_version).unwrap();
        let length = (frame.len() - 4) as i32;
        frame[..4].copy_from_slice(&length.to_be_bytes());
        if stream.write_all(&frame).await.is_err() || stream.flush().await.is_err() {
            return;
        }
    }
}

/// Rill's planned broker table: what a real rill broker will advertise.
pub fn broker_versions() -> Vec<(ApiKey, i16, i16)> {
    vec![
        (ApiKey::Produce, 3, 9),
        (ApiKey::Fetch, 4, 12),
        (ApiKey::ListOffsets, 1, 7),
        (ApiKey::Metadata, 1, 12),
        (ApiKey::OffsetCommit, 2, 8),
        (ApiKey::OffsetFetch, 1, 7),
        (ApiKey::FindCoordinator, 0, 4),
        (ApiKey::JoinGroup, 0, 7),
        (ApiKey::Heartbeat, 0, 4),
        (ApiKey::LeaveGroup, 0, 4),
        (ApiKey::SyncGroup, 0, 5),
        (ApiKey::ApiVersions, 0, 3),
        (ApiKey::CreateTopics, 2, 7),
        (ApiKey::DeleteTopics, 1, 4),
        (ApiKey::InitProducerId, 0, 4),
    ]
}

pub fn api_versions_response(table: &[(ApiKey, i16, i16)]) -> ResponseKind {
    let api_keys = table
        .iter()
        .map(|(key, min, max)| {
            ApiVersion::default()
                .with_api_key(*key as i16)
                .with_min_version(*min)
                .with_max_version(*max)
        })
        .collect();
    ResponseKind::ApiVersions(ApiVersionsResponse::default().with_api_keys(api_keys))
}

/// Metadata naming `brokers` (id, port) and one topic whose partitions are led by `leaders`.
pub fn metadata_response(brokers: &[(i32, i32)], topic: &str, leaders: &[i32]) -> ResponseKind {
    let brokers = brokers
        .iter()
        .map(|(id, port)| {
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(*id))
                .with_host(StrBytes::from_static_str("127.0.0.1"))
                .with_port(*port)
        })
        .collect();
    let partitions = leaders
        .iter()
        .enumerate()
        .map(|(index, leader)| {
            MetadataResponsePartition::default()
                .with_partition_index(index as i32)
                .with_leader_id(BrokerId(*leader))
                .with_leader_epoch(1)
                .with_replica_nodes(vec![BrokerId(*leader)])
                .with_isr_nodes(vec![BrokerId(*leader)])
        })
        .collect();
    let topic = MetadataResponseTopic::default()
        .with_name(Some(StrBytes::from_string(topic.to_string()).into()))
        .with_partitions(partitions);
    ResponseKind::Metadata(
        MetadataResponse::default()
            .with_brokers(brokers)
            .with_controller_id(BrokerId(-1))
            .with_topics(vec![topic]),
    )
}

/// The base sequence, producer id and record count of a Produce request's only batch.
pub fn produce_batch_info(body: &RequestKind) -> (i64, i32, i32, i16) {
    let RequestKind::Produce(request) = body else {
        panic!("not a produce")
    };
    let data = &request.topic_data[0].partition_data[0];
    let mut records = data.records.clone().unwrap();
    let infos =
        kafka_protocol::records::RecordBatchDecoder::decode_batch_info(&mut records).unwrap();
    assert_eq!(infos.len(), 1, "one batch per produce");
    (
        infos[0].producer_id,
        infos[0].base_sequence,
        infos[0].record_count,
        request.acks,
    )
}

/// The producer epoch of a Produce request's single batch.
pub fn produce_batch_epoch(body: &RequestKind) -> i16 {
    let RequestKind::Produce(request) = body else {
        panic!("not a produce")
    };
    let mut records = request.topic_data[0].partition_data[0]
        .records
        .clone()
        .unwrap();
    let infos =
        kafka_protocol::records::RecordBatchDecoder::decode_batch_info(&mut records).unwrap();
    infos[0].producer_epoch
}

pub fn peek_i16(bytes: &[u8]) -> i16 {
    (&bytes[..2]).get_i16()
}

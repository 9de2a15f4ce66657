//! Request versions Kafka 3.x still serves but `kafka-protocol` 0.18 (Kafka 4's schemas, after
//! KIP-896 removed them) no longer encodes: old clients (sarama up to 1.44, kafka-python with
//! an old `api_version`) send them. Each is translated once, here: the request is decoded into
//! the struct of the lowest version kafka-protocol knows (the handler sees that version), and
//! the handler's answer is written back in the old layout. The layouts are Kafka's message
//! schemas (`clients/src/main/resources/common/message/*.json` of Kafka 3.x).
//!
//! | API | wire version | handled as | difference |
//! |---|---|---|---|
//! | ListOffsets | 0 | 1 | `max_num_offsets` in the request; the answer is a list of offsets, no timestamp |
//! | OffsetCommit | 0, 1 | 2 | no generation and member (v0), a commit timestamp per partition (v1), no retention time; same answer |
//! | OffsetFetch | 0 | 1 | identical layout (v0 read ZooKeeper's offsets; rill has one store) |
//! | DescribeConfigs | 0 | 1 | no `include_synonyms`; entries carry `is_default` instead of a source and no synonyms |

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::{
    ApiKey, BrokerId, DescribeConfigsRequest, GroupId, ListOffsetsRequest, OffsetCommitRequest,
    RequestKind, ResponseKind, TopicName,
};
use kafka_protocol::protocol::StrBytes;

/// Elements one array of a legacy request may hold; the frame limit bounds them anyway.
const ARRAY_ELEMENTS_MAX: usize = 1 << 20;

/// Kafka's DEFAULT_CONFIG config source (DescribeConfigs v1+), `is_default` in v0.
const CONFIG_SOURCE_DEFAULT: i8 = 5;

/// Every (API, wire version) served by translation, with the version its handler sees.
pub const LEGACY_VERSIONS: &[(ApiKey, i16, i16)] = &[
    (ApiKey::ListOffsets, 0, 1),
    (ApiKey::OffsetCommit, 0, 2),
    (ApiKey::OffsetCommit, 1, 2),
    (ApiKey::OffsetFetch, 0, 1),
    (ApiKey::DescribeConfigs, 0, 1),
];

/// The version the handler of `api_key` at wire version `version` sees, if it is translated.
pub fn handled_as(api_key: ApiKey, version: i16) -> Option<i16> {
    LEGACY_VERSIONS
        .iter()
        .find(|(key, wire, _)| *key == api_key && *wire == version)
        .map(|(_, _, handled)| *handled)
}

/// The lowest version of `api_key` served, translations included.
pub fn version_min(api_key: ApiKey) -> i16 {
    LEGACY_VERSIONS
        .iter()
        .filter(|(key, _, _)| *key == api_key)
        .map(|(_, wire, _)| *wire)
        .fold(api_key.valid_versions().min, i16::min)
}

/// Checked reads of Kafka's primitive types: a short or hostile body is an error, never a panic.
struct Reader<'a> {
    buf: &'a mut Bytes,
}

impl Reader<'_> {
    fn need(&self, bytes: usize) -> Result<(), String> {
        if self.buf.remaining() < bytes {
            return Err(format!(
                "{bytes} bytes needed, {} left",
                self.buf.remaining()
            ));
        }
        Ok(())
    }

    fn i8(&mut self) -> Result<i8, String> {
        self.need(1)?;
        Ok(self.buf.get_i8())
    }

    fn i16(&mut self) -> Result<i16, String> {
        self.need(2)?;
        Ok(self.buf.get_i16())
    }

    fn i32(&mut self) -> Result<i32, String> {
        self.need(4)?;
        Ok(self.buf.get_i32())
    }

    fn i64(&mut self) -> Result<i64, String> {
        self.need(8)?;
        Ok(self.buf.get_i64())
    }

    fn nullable_string(&mut self) -> Result<Option<StrBytes>, String> {
        let length = self.i16()?;
        if length < 0 {
            return Ok(None);
        }
        let length = usize::try_from(length).expect("non-negative");
        self.need(length)?;
        let bytes = self.buf.split_to(length);
        StrBytes::from_utf8(bytes)
            .map(Some)
            .map_err(|error| format!("string: {error}"))
    }

    fn string(&mut self) -> Result<StrBytes, String> {
        self.nullable_string()?
            .ok_or_else(|| "null where a string is required".to_string())
    }

    /// An array's element count (-1: null), checked against what the body can still hold.
    fn array_length(&mut self, element_bytes_min: usize) -> Result<Option<usize>, String> {
        let count = self.i32()?;
        if count < 0 {
            return Ok(None);
        }
        let count = usize::try_from(count).expect("non-negative");
        if count > ARRAY_ELEMENTS_MAX || count * element_bytes_min > self.buf.remaining() {
            return Err(format!("array of {count} elements in a short body"));
        }
        Ok(Some(count))
    }

    fn array<T>(
        &mut self,
        element_bytes_min: usize,
        mut element: impl FnMut(&mut Self) -> Result<T, String>,
    ) -> Result<Vec<T>, String> {
        let count = self
            .array_length(element_bytes_min)?
            .ok_or_else(|| "null where an array is required".to_string())?;
        (0..count).map(|_| element(self)).collect()
    }
}

fn put_string(out: &mut BytesMut, value: Option<&str>) -> Result<(), String> {
    match value {
        None => out.put_i16(-1),
        Some(value) => {
            let length = i16::try_from(value.len()).map_err(|_| "string too long".to_string())?;
            out.put_i16(length);
            out.put_slice(value.as_bytes());
        }
    }
    Ok(())
}

fn put_array_length(out: &mut BytesMut, length: usize) -> Result<(), String> {
    out.put_i32(i32::try_from(length).map_err(|_| "array too long".to_string())?);
    Ok(())
}

/// Decodes the body of `api_key` at legacy wire `version` into the struct its handler takes.
pub fn decode_body(api_key: ApiKey, version: i16, body: &mut Bytes) -> Result<RequestKind, String> {
    let handled = handled_as(api_key, version).expect("only legacy versions are translated");
    let mut reader = Reader { buf: body };
    let decoded = match api_key {
        ApiKey::ListOffsets => RequestKind::ListOffsets(list_offsets_v0(&mut reader)?),
        ApiKey::OffsetCommit => {
            RequestKind::OffsetCommit(offset_commit_v0_v1(&mut reader, version)?)
        }
        ApiKey::DescribeConfigs => RequestKind::DescribeConfigs(describe_configs_v0(&mut reader)?),
        // Same layout as the version handled.
        ApiKey::OffsetFetch => {
            return RequestKind::decode(api_key, body, handled).map_err(|e| format!("{e:#}"))
        }
        _ => unreachable!("LEGACY_VERSIONS lists no other API"),
    };
    Ok(decoded)
}

fn list_offsets_v0(r: &mut Reader<'_>) -> Result<ListOffsetsRequest, String> {
    let replica_id = r.i32()?;
    let topics = r.array(6, |r| {
        let name = r.string()?;
        let partitions = r.array(16, |r| {
            let partition_index = r.i32()?;
            let timestamp = r.i64()?;
            let _max_num_offsets = r.i32()?;
            Ok(ListOffsetsPartition::default()
                .with_partition_index(partition_index)
                .with_timestamp(timestamp))
        })?;
        Ok(ListOffsetsTopic::default()
            .with_name(TopicName(name))
            .with_partitions(partitions))
    })?;
    Ok(ListOffsetsRequest::default()
        .with_replica_id(BrokerId(replica_id))
        .with_topics(topics))
}

fn offset_commit_v0_v1(r: &mut Reader<'_>, version: i16) -> Result<OffsetCommitRequest, String> {
    let group_id = r.string()?;
    let mut request = OffsetCommitRequest::default().with_group_id(GroupId(group_id));
    if version >= 1 {
        request.generation_id_or_member_epoch = r.i32()?;
        request.member_id = r.string()?;
    }
    let partition_bytes_min = if version >= 1 { 22 } else { 14 };
    request.topics = r.array(6, |r| {
        let name = r.string()?;
        let partitions = r.array(partition_bytes_min, |r| {
            let partition_index = r.i32()?;
            let committed_offset = r.i64()?;
            if version == 1 {
                // Kafka 0.9's per-partition commit timestamp: offsets expire by the broker's
                // retention in rill, as in Kafka 2.1 and later.
                let _commit_timestamp = r.i64()?;
            }
            let committed_metadata = r.nullable_string()?;
            Ok(OffsetCommitRequestPartition::default()
                .with_partition_index(partition_index)
                .with_committed_offset(committed_offset)
                .with_committed_metadata(committed_metadata))
        })?;
        Ok(OffsetCommitRequestTopic::default()
            .with_name(TopicName(name))
            .with_partitions(partitions))
    })?;
    Ok(request)
}

fn describe_configs_v0(r: &mut Reader<'_>) -> Result<DescribeConfigsRequest, String> {
    let resources = r.array(7, |r| {
        let resource_type = r.i8()?;
        let resource_name = r.string()?;
        let configuration_keys = match r.array_length(2)? {
            None => None,
            Some(count) => Some((0..count).map(|_| r.string()).collect::<Result<_, _>>()?),
        };
        Ok(DescribeConfigsResource::default()
            .with_resource_type(resource_type)
            .with_resource_name(resource_name)
            .with_configuration_keys(configuration_keys))
    })?;
    Ok(DescribeConfigsRequest::default()
        .with_resources(resources)
        .with_include_synonyms(false)
        .with_include_documentation(false))
}

/// Encodes the handler's answer (at the handled version) in the layout of legacy wire `version`.
pub fn encode_body(
    api_key: ApiKey,
    version: i16,
    body: &ResponseKind,
    out: &mut BytesMut,
) -> Result<(), String> {
    let handled = handled_as(api_key, version).expect("only legacy versions are translated");
    match body {
        ResponseKind::ListOffsets(response) => {
            put_array_length(out, response.topics.len())?;
            for topic in &response.topics {
                put_string(out, Some(&topic.name.0))?;
                put_array_length(out, topic.partitions.len())?;
                for p in &topic.partitions {
                    out.put_i32(p.partition_index);
                    out.put_i16(p.error_code);
                    // v0's list of offsets: the one found, or none.
                    let found = p.error_code == 0 && p.offset >= 0;
                    put_array_length(out, usize::from(found))?;
                    if found {
                        out.put_i64(p.offset);
                    }
                }
            }
            Ok(())
        }
        ResponseKind::DescribeConfigs(response) => {
            out.put_i32(response.throttle_time_ms);
            put_array_length(out, response.results.len())?;
            for result in &response.results {
                out.put_i16(result.error_code);
                put_string(out, result.error_message.as_deref())?;
                out.put_i8(result.resource_type);
                put_string(out, Some(&result.resource_name))?;
                put_array_length(out, result.configs.len())?;
                for config in &result.configs {
                    put_string(out, Some(&config.name))?;
                    put_string(out, config.value.as_deref())?;
                    out.put_u8(u8::from(config.read_only));
                    out.put_u8(u8::from(config.config_source == CONFIG_SOURCE_DEFAULT));
                    out.put_u8(u8::from(config.is_sensitive));
                }
            }
            Ok(())
        }
        // Same layout as the version handled.
        ResponseKind::OffsetCommit(_) | ResponseKind::OffsetFetch(_) => {
            body.encode(out, handled).map_err(|e| format!("{e:#}"))
        }
        _ => Err(format!(
            "{api_key:?} v{version} is not a translated version"
        )),
    }
}

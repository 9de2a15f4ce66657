//! `LogConfig`: the per-partition knobs (Kafka's topic configs, renamed with qualifiers last).

/// Settings of one partition log. Every size and age has a limit; `validate` checks them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogConfig {
    /// Roll to a new segment once the active one would grow past this (`segment.bytes`).
    pub segment_bytes_max: u64,
    /// Roll to a new segment once the active one is this old (`segment.ms`), by `now_ms` inputs.
    pub segment_age_ms_max: i64,
    /// Bytes of log between two offset index entries (`index.interval.bytes`).
    pub index_interval_bytes: u64,
    /// Delete whole segments whose newest record is older than this (`retention.ms`); `None`
    /// keeps them forever. Applies to compacted logs too (Kafka's `compact,delete`): set `None`
    /// (and `retention_bytes: None`) for a purely compacted topic.
    pub retention_ms: Option<i64>,
    /// Delete the oldest segments while the log is larger than this (`retention.bytes`).
    pub retention_bytes: Option<u64>,
    /// A compacted topic (`cleanup.policy=compact`): `compact` keeps the latest record per key.
    pub compacted: bool,
    /// How long a tombstone (null value) survives compaction (`delete.retention.ms`).
    pub delete_retention_ms: i64,
    /// The largest batch an append accepts (`max.message.bytes`).
    pub batch_bytes_max: u64,
    /// Write the recovery point checkpoint once this many bytes were flushed since the last one
    /// (0: at every flush). Recovery re-validates at most this much flushed data.
    pub checkpoint_interval_bytes: u64,
    /// Distinct keys one compaction pass tracks; a pass cleans only the segments that fit.
    pub compaction_keys_max: usize,
    /// `compression.type`: the codec produced batches are stored with; `None` is Kafka's
    /// `producer` (each batch as the producer compressed it).
    pub codec_target: Option<crate::compression::Codec>,
    /// `message.timestamp.type=LogAppendTime`: a leader's append stamps each batch with its
    /// clock; `false` is `CreateTime` (the producer's timestamps are kept).
    pub log_append_time: bool,
    /// Most bytes of the batches appended last a log keeps in memory for its followers' fetches
    /// and its journaled flushes (`log_core::tail`; always at least the last batch).
    pub tail_bytes_max: usize,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes_max: 1 << 30,
            segment_age_ms_max: 7 * 24 * 3600 * 1000,
            index_interval_bytes: 4096,
            retention_ms: Some(7 * 24 * 3600 * 1000),
            retention_bytes: None,
            compacted: false,
            delete_retention_ms: 24 * 3600 * 1000,
            batch_bytes_max: (1 << 20) + 1024,
            checkpoint_interval_bytes: 1 << 20,
            compaction_keys_max: 1 << 20,
            codec_target: None,
            log_append_time: false,
            tail_bytes_max: crate::tail::TAIL_BYTES_MAX,
        }
    }
}

impl LogConfig {
    /// Panics on settings no caller may pass: limits that would overflow the formats.
    pub fn validate(&self) {
        assert!(
            self.segment_bytes_max >= 1024,
            "segment_bytes_max too small"
        );
        assert!(
            self.segment_bytes_max <= i32::MAX as u64,
            "segment positions are u32"
        );
        assert!(
            self.segment_age_ms_max > 0,
            "segment_age_ms_max must be positive"
        );
        assert!(
            self.index_interval_bytes > 0,
            "index_interval_bytes must be positive"
        );
        assert!(
            self.batch_bytes_max as usize <= crate::batch::BATCH_BYTES_LIMIT,
            "batch limit"
        );
        assert!(
            self.batch_bytes_max >= crate::batch::HEADER_BYTES as u64,
            "batch limit too small"
        );
        assert!(
            self.delete_retention_ms >= 0,
            "delete_retention_ms is a duration"
        );
        assert!(
            self.compaction_keys_max > 0,
            "compaction needs room for a key"
        );
    }
}

//! What users do to a cluster besides producing and consuming (issue 14): housekeeping on the
//! run's topic — small segments (and keys padding records so a run fills many), retention by size and by time, run often in simulated time —
//! and the shapes real clients give their batches. Each is drawn per seed from a stream of its
//! own, so a seed's timings, faults and codecs stay what they were before these existed.
//!
//! With retention on, a follower killed, wiped or cut off across a retention pass comes back
//! below the leader's log start and must truncate fully and start there; consumers are reset to
//! the earliest offset. The checker is told the highest log start consumers saw per partition
//! (`QueueOptions::log_starts`): an acknowledged record below it may be gone without having been
//! lost, everything at or above it must still be read.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Housekeeping on the run's topic, as topic configs set at creation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Operations {
    /// The topic's `segment.bytes`: a few KiB, so segments roll many times a run.
    pub segment_bytes: u64,
    /// The topic's `retention.bytes`, if retention by size is on.
    pub retention_bytes: Option<u64>,
    /// The topic's `retention.ms`, if retention by time is on (otherwise the built-in week).
    pub retention_ms: Option<u64>,
    /// The nodes' `log.retention.check.interval.ms`: how often housekeeping runs.
    pub check_interval_ms: u64,
    /// Bytes of key every produced record carries (the value stays the bare integer the
    /// checker reads): a run's few hundred records then fill many segments.
    pub record_padding_bytes: usize,
}

impl Operations {
    /// The draw of `seed`: on in about 40% of the seeds, retention by size, by time or both.
    pub fn draw(seed: u64) -> Option<Operations> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x0e7a_7100_0000_001b);
        if !rng.gen_bool(0.4) {
            return None;
        }
        let segment_bytes = [1_024, 4_096, 16_384][rng.gen_range(0..3)];
        // Kafka deletes whole segments only: a limit of a few segments keeps most of a run's
        // records out of the log by its end.
        let (by_size, by_time) = [(true, false), (false, true), (true, true)][rng.gen_range(0..3)];
        let retention_bytes = by_size.then(|| segment_bytes * rng.gen_range(2..=8));
        let retention_ms = by_time.then(|| [2_000, 5_000, 15_000][rng.gen_range(0..3)]);
        let check_interval_ms = [100, 500, 2_000][rng.gen_range(0..3)];
        let record_padding_bytes = [100, 500][rng.gen_range(0..2)];
        let operations = Operations {
            segment_bytes,
            retention_bytes,
            retention_ms,
            check_interval_ms,
            record_padding_bytes,
        };
        assert!(operations.retention_bytes.is_some() || operations.retention_ms.is_some());
        assert!(operations.segment_bytes >= 1024, "rill's smallest segment");
        Some(operations)
    }

    /// The topic configs that set it up.
    pub fn topic_configs(&self) -> Vec<(String, String)> {
        let mut configs = vec![("segment.bytes".to_string(), self.segment_bytes.to_string())];
        if let Some(bytes) = self.retention_bytes {
            configs.push(("retention.bytes".to_string(), bytes.to_string()));
        }
        if let Some(ms) = self.retention_ms {
            configs.push(("retention.ms".to_string(), ms.to_string()));
        }
        configs
    }

    /// In words, for `describe`.
    pub fn describe(&self) -> String {
        let mut parts = vec![format!("topic segments {} B", self.segment_bytes)];
        if let Some(bytes) = self.retention_bytes {
            parts.push(format!("retention.bytes {bytes}"));
        }
        if let Some(ms) = self.retention_ms {
            parts.push(format!("retention.ms {ms}"));
        }
        parts.push(format!("housekeeping every {} ms", self.check_interval_ms));
        parts.push(format!("{} B keys", self.record_padding_bytes));
        parts.join(", ")
    }
}

/// Batch shapes of real clients, beyond the header max timestamp -1 the producers already draw.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ClientShapes {
    /// The topic's `message.timestamp.type` is `LogAppendTime`: the leader stamps every batch.
    pub log_append_time: bool,
    /// Producers send records whose timestamps are -1 (no create time), as old clients do.
    pub record_timestamps_unset: bool,
    /// A process sends Produce requests carrying one batch for every partition the receiving
    /// broker leads, their header max timestamps disagreeing with their records (as
    /// librdkafka's C++ API and old sarama send them), one request per round.
    pub multi_partition_requests: bool,
    /// The workload's clients authenticate with SASL on a listener of their own that requires
    /// it (the brokers replicate over the plaintext one, with the cluster secret).
    pub sasl: Option<SimSasl>,
    /// Fetch from followers (KIP-392): broker n is in rack `rack-n` with the rack-aware replica
    /// selector, and the consumer in the rack of this broker (1..=3), so it reads from that
    /// broker whenever it follows in the ISR.
    pub consumer_rack_broker: Option<u8>,
    /// A consumer group of this many members (2 or 3) subscribes, commits and churns during
    /// the faults (`super::groups`).
    pub group_members: Option<u8>,
}

/// The rack of broker `node` in a seed whose consumers fetch from followers.
pub fn rack_of(node: u8) -> String {
    format!("rack-{node}")
}

/// How a seed's clients authenticate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SimSasl {
    /// PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER.
    pub mechanism: client::SaslMechanism,
    /// SASL_SSL rather than SASL_PLAINTEXT: the listener and client configured for TLS, whose
    /// handshake is a plain stream under madsim (`broker/src/tls.rs`, `client/src/tls.rs`).
    pub tls: bool,
}

impl SimSasl {
    /// The clients' user: a super user of the seed's brokers.
    pub const USER: &'static str = "sim-client";
    /// Its password.
    pub const PASSWORD: &'static str = "sim-client-password";
    /// OAUTHBEARER: the clients' unsecured tokens live this long from the client's clock (ms),
    /// longer than a run and than any node's clock offset: a node's session lifetime is the
    /// token's remaining time on the node's (skewed) clock.
    pub const TOKEN_LIFETIME_MS: u64 = 12 * 3_600_000;
    /// OAUTHBEARER: the brokers' allowed clock skew (`unsecured_allowable_clock_skew_ms`): a
    /// node's clock may be hours off the client's, and `iat` must not be ahead of it.
    pub const TOKEN_CLOCK_SKEW_MS: u64 = 6 * 3_600_000;

    /// The security protocol of the clients' listener.
    pub fn protocol(&self) -> client::SecurityProtocol {
        if self.tls {
            client::SecurityProtocol::SaslSsl
        } else {
            client::SecurityProtocol::SaslPlaintext
        }
    }

    /// The clients' settings.
    pub fn client_security(&self) -> client::security::SecurityConfig {
        let mut security = client::security::SecurityConfig {
            protocol: self.protocol(),
            ..Default::default()
        };
        security.sasl.mechanism = self.mechanism;
        security.sasl.username = Self::USER.to_string();
        security.sasl.password = client::security::Password(Self::PASSWORD.to_string());
        // OAUTHBEARER: a fresh unsecured token per connection, `iat` and `exp` from the
        // client's (simulated) clock.
        security.sasl.oauthbearer.unsecured_jwt = true;
        security.sasl.oauthbearer.principal = Self::USER.to_string();
        security.sasl.oauthbearer.lifetime_ms = Self::TOKEN_LIFETIME_MS;
        // Never read under madsim; there so the settings validate as a real client's would.
        security.tls.ca_file = self.tls.then(|| "/rill/tls/ca.pem".into());
        security
    }
}

impl ClientShapes {
    /// The draw of `seed`: each shape on in about a third of the seeds.
    pub fn draw(seed: u64) -> ClientShapes {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xc11e_5a9e_0000_001d);
        ClientShapes {
            log_append_time: rng.gen_bool(0.3),
            record_timestamps_unset: rng.gen_bool(0.3),
            multi_partition_requests: rng.gen_bool(0.3),
            // Drawn last: the shapes above stay what they were before it existed.
            sasl: rng.gen_bool(0.3).then(|| {
                let mut sasl = SimSasl {
                    mechanism: client::SaslMechanism::WITH_PASSWORD
                        [rng.gen_range(0..client::SaslMechanism::WITH_PASSWORD.len())],
                    tls: rng.gen_bool(0.5),
                };
                // Drawn last on this stream, so every draw above stays as it was: a quarter of
                // the SASL seeds authenticate with OAUTHBEARER (unsecured tokens) instead.
                if rng.gen_bool(0.25) {
                    sasl.mechanism = client::SaslMechanism::OAuthBearer;
                }
                sasl
            }),
            // Drawn after SASL, from a stream of its own: the shapes above stay as they were.
            consumer_rack_broker: {
                let mut racks = ChaCha8Rng::seed_from_u64(seed ^ 0x7ac4_0000_0000_0392);
                racks.gen_bool(0.3).then(|| racks.gen_range(1..=3))
            },
            // A stream of its own too: every draw above stays as it was.
            group_members: {
                let mut groups = ChaCha8Rng::seed_from_u64(seed ^ 0x6a00_0000_0000_0e14);
                groups.gen_bool(0.3).then(|| groups.gen_range(2..=3))
            },
        }
    }

    /// The topic configs it needs.
    pub fn topic_configs(&self) -> Vec<(String, String)> {
        if self.log_append_time {
            vec![(
                "message.timestamp.type".to_string(),
                "LogAppendTime".to_string(),
            )]
        } else {
            Vec::new()
        }
    }

    /// In words, for `describe` (`None` when every shape is off).
    pub fn describe(&self) -> Option<String> {
        let mut parts = Vec::new();
        if self.log_append_time {
            parts.push("LogAppendTime topic".to_string());
        }
        if self.record_timestamps_unset {
            parts.push("record timestamps -1".to_string());
        }
        if self.multi_partition_requests {
            parts.push("multi-partition produce requests with wrong max timestamps".into());
        }
        if let Some(sasl) = self.sasl {
            parts.push(format!(
                "clients on {} with {}",
                sasl.protocol().name(),
                sasl.mechanism.name()
            ));
        }
        if let Some(broker) = self.consumer_rack_broker {
            parts.push(format!(
                "brokers in racks, the consumer in {} (fetches from followers)",
                rack_of(broker)
            ));
        }
        if let Some(members) = self.group_members {
            parts.push(format!(
                "a consumer group of {members} members churning under faults"
            ));
        }
        (!parts.is_empty()).then(|| parts.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_are_stable_and_both_kinds_occur() {
        let drawn: Vec<Option<Operations>> = (0..200).map(Operations::draw).collect();
        assert_eq!(drawn, (0..200).map(Operations::draw).collect::<Vec<_>>());
        let on = drawn.iter().flatten().count();
        assert!((40..=120).contains(&on), "about 40% of seeds: {on}");
        assert!(drawn
            .iter()
            .flatten()
            .any(|o| o.retention_bytes.is_some() && o.retention_ms.is_none()));
        assert!(drawn
            .iter()
            .flatten()
            .any(|o| o.retention_ms.is_some() && o.retention_bytes.is_none()));
        let shapes: Vec<ClientShapes> = (0..200).map(ClientShapes::draw).collect();
        assert!(shapes.iter().any(|s| s.log_append_time));
        assert!(shapes.iter().any(|s| s.record_timestamps_unset));
        assert!(shapes.iter().any(|s| s.multi_partition_requests));
        let racked = shapes
            .iter()
            .filter(|s| s.consumer_rack_broker.is_some())
            .count();
        assert!((30..=90).contains(&racked), "about 30% of seeds: {racked}");
        assert!((1..=3).all(|b| shapes.iter().any(|s| s.consumer_rack_broker == Some(b))));
        let grouped = shapes.iter().filter(|s| s.group_members.is_some()).count();
        assert!(
            (30..=90).contains(&grouped),
            "about 30% of seeds: {grouped}"
        );
        assert!((2..=3).all(|m| shapes.iter().any(|s| s.group_members == Some(m))));
        assert!(shapes.iter().any(|s| s.describe().is_none()));
        let oauth = shapes
            .iter()
            .filter_map(|s| s.sasl)
            .filter(|s| s.mechanism == client::SaslMechanism::OAuthBearer)
            .count();
        assert!(
            (3..=30).contains(&oauth),
            "a quarter of the SASL seeds: {oauth}"
        );
    }

    #[test]
    fn topic_configs_name_what_was_drawn() {
        let operations = Operations {
            segment_bytes: 4_096,
            retention_bytes: Some(8_192),
            retention_ms: None,
            check_interval_ms: 100,
            record_padding_bytes: 100,
        };
        assert_eq!(
            operations.topic_configs(),
            vec![
                ("segment.bytes".to_string(), "4096".to_string()),
                ("retention.bytes".to_string(), "8192".to_string()),
            ]
        );
        let shapes = ClientShapes {
            log_append_time: true,
            ..ClientShapes::default()
        };
        assert_eq!(shapes.topic_configs().len(), 1);
        assert_eq!(ClientShapes::default().topic_configs(), vec![]);
    }
}

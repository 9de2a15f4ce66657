//! Kafka's default partitioner: murmur2 of the key for keyed records (so rill places keys where
//! the Java client and librdkafka's `murmur2_random` do), round-robin for unkeyed ones.

use std::sync::atomic::{AtomicU32, Ordering};

/// Kafka's `Utils.murmur2`: 32-bit MurmurHash2 with seed 0x9747b28c, little-endian words.
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let length = u32::try_from(data.len()).expect("keys are shorter than 4 GiB");
    let mut h: u32 = SEED ^ length;
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = chunks.remainder();
    assert!(tail.len() < 4, "chunks_exact leaves fewer than 4 bytes");
    if tail.len() >= 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if !tail.is_empty() {
        h ^= u32::from(tail[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// Kafka's `toPositive(murmur2(key)) % partitions`.
pub fn partition_for_key(key: &[u8], partitions: i32) -> i32 {
    assert!(partitions > 0, "a topic has at least one partition");
    let positive = murmur2(key) & 0x7fff_ffff;
    let partition = positive % partitions;
    assert!((0..partitions).contains(&partition));
    partition
}

/// Chooses partitions: explicit, keyed (murmur2) or round-robin from a counter (deterministic:
/// no random starting point, unlike the Java client's sticky partitioner).
#[derive(Debug, Default)]
pub struct Partitioner {
    /// Next round-robin slot, shared by all topics.
    round_robin_next: AtomicU32,
}

impl Partitioner {
    /// A partitioner starting its round-robin at partition 0.
    pub fn new() -> Self {
        Partitioner::default()
    }

    /// The partition for a record.
    pub fn choose(&self, partition: Option<i32>, key: Option<&[u8]>, partitions: i32) -> i32 {
        assert!(partitions > 0, "a topic has at least one partition");
        if let Some(partition) = partition {
            return partition;
        }
        if let Some(key) = key {
            return partition_for_key(key, partitions);
        }
        let slot = self.round_robin_next.fetch_add(1, Ordering::Relaxed);
        let partitions_u32 = u32::try_from(partitions).expect("positive");
        i32::try_from(slot % partitions_u32).expect("below partitions")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Kafka's `UtilsTest.testMurmur2`.
    #[test]
    fn murmur2_matches_kafka_vectors() {
        let cases: [(&[u8], i32); 6] = [
            (b"21", -973_932_308),
            (b"foobar", -790_332_482),
            (b"a-little-bit-long-string", -985_981_536),
            (b"a-little-bit-longer-string", -1_486_304_829),
            (
                b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            (b"abc", 479_470_107),
        ];
        for (key, hash) in cases {
            assert_eq!(murmur2(key), hash, "{}", String::from_utf8_lossy(key));
        }
    }

    #[test]
    fn keyed_partition_is_positive_modulo() {
        // (-790332482 & 0x7fffffff) = 1357151166; % 50 = 16.
        assert_eq!(partition_for_key(b"foobar", 50), 16);
        for partitions in 1..20 {
            let p = partition_for_key(b"21", partitions);
            assert!((0..partitions).contains(&p));
        }
    }

    #[test]
    fn unkeyed_round_robins_and_explicit_wins() {
        let partitioner = Partitioner::new();
        let chosen: Vec<i32> = (0..6).map(|_| partitioner.choose(None, None, 3)).collect();
        assert_eq!(chosen, vec![0, 1, 2, 0, 1, 2]);
        assert_eq!(partitioner.choose(Some(2), Some(b"foobar"), 3), 2);
        assert_eq!(partitioner.choose(None, Some(b"foobar"), 50), 16);
    }
}

//! Replica placement: Kafka's rack-unaware assignment, made deterministic. Kafka picks the start
//! broker and the replica shift at random; here both come from the topic id, so every controller
//! computes the same placement and tests can predict it.

use wire::BrokerId;

/// Assigns `partitions` partitions of `replication_factor` replicas over `brokers` (sorted,
/// distinct, unfenced). Partition `p`'s first replica is broker `(start + p) mod n`; followers
/// follow at a shift that changes every `n` partitions, so leadership and followership both
/// spread evenly.
pub fn assign_replicas(
    brokers: &[BrokerId],
    partitions: usize,
    replication_factor: usize,
    topic_id: u64,
) -> Vec<Vec<BrokerId>> {
    let n = brokers.len();
    assert!(
        replication_factor >= 1 && replication_factor <= n,
        "rf {replication_factor} of {n}"
    );
    assert!(
        brokers.windows(2).all(|w| w[0] < w[1]),
        "brokers sorted and distinct"
    );
    let start = usize::try_from(topic_id % n as u64).expect("below n, which is a usize");
    let shift_start = if n > 1 { start % (n - 1) } else { 0 };
    let assignments: Vec<Vec<BrokerId>> = (0..partitions)
        .map(|p| {
            let first = (start + p) % n;
            let shift = if n > 1 {
                (shift_start + p / n) % (n - 1)
            } else {
                0
            };
            let mut replicas = vec![brokers[first]];
            for j in 1..replication_factor {
                // 1 + ((shift + j - 1) mod (n - 1)) is in [1, n): never the first replica, and
                // distinct for distinct j because j - 1 < n - 1.
                let offset = 1 + (shift + j - 1) % (n - 1);
                replicas.push(brokers[(first + offset) % n]);
            }
            replicas
        })
        .collect();
    debug_assert!(assignments.iter().all(|r| {
        let mut sorted = r.clone();
        sorted.sort();
        sorted.dedup();
        sorted.len() == replication_factor
    }));
    assignments
}

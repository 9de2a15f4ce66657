//! Consumer groups under faults (issue 14, item 1): in the seeds that draw it
//! ([`super::operations::ClientShapes::group_members`], about 30 %), two or three members of
//! group [`GROUP_ID`] subscribe to the topic, poll, commit their positions and are replaced on a
//! schedule of their own while the nemesis strikes: each member lives 2–8 s, then leaves the
//! group (LeaveGroup) or is abandoned (its session expires), and a new member takes its slot.
//! A member whose coordinator or leaders are on a killed or cut-off node sees the errors and
//! carries on, as an application would.
//!
//! Sometimes a member that joined a newer generation sends its last commit of the previous one
//! again (a stale commit: a delayed or asynchronous commit of an application thread), which the
//! coordinator must refuse.
//!
//! Every join (member, generation, assignment and, for the leader, the whole assignment it
//! computed) and every commit (member, generation, offsets, answer) goes into a
//! [`GroupHistory`]. The checks, as Kafka promises them:
//! - (a) within one generation no partition is assigned to two members: the leader's
//!   assignment is disjoint, and every member of the generation got the leader's entry for it;
//! - (b) a commit answered OK came from a member of the current generation: a member's commit
//!   with generation g acknowledged after that member had already joined generation g' > g is a
//!   violation (member ids are never reused, so this needs no knowledge of the coordinator's
//!   generations, which restart after a coordinator move because rill does not persist group
//!   metadata);
//! - (c) a committed offset never exceeds what a member could have read (one past the highest
//!   offset a member read, or the highest log start a leader reported);
//! - (d) after healing, fresh members converge: one generation, every partition assigned to
//!   exactly one of them, the same for several polls (liveness);
//! - (e) the offsets read back (OffsetFetch) after healing are, per partition, an acknowledged
//!   commit no later acknowledged commit superseded (or a commit whose answer was lost or
//!   ambiguous, which may have landed): an acknowledged commit was appended with acks=all to
//!   `__consumer_offsets` and must survive a coordinator failover.

use super::record::{lock, Shared};
use super::workload::{client_config, WorkloadConfig, PARTITIONS, TOPIC};
use client::consumer::{Consumer, ConsumerConfig};
use client::error::code;
use client::group::{GroupMember, Offsets};
use client::metadata::MetadataCache;
use client::pool::ConnectionPool;
use client::ClientError;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// The group every member joins.
pub const GROUP_ID: &str = "sim-group";
/// How long one poll of a member waits for records.
const POLL_MS: u64 = 200;
/// A member commits its positions every this many polls.
const COMMIT_EVERY_POLLS: u64 = 3;
/// A member lives this long (drawn), ms.
const LIFE_MS: std::ops::RangeInclusive<u64> = 2_000..=8_000;
/// Pause before a new member takes a slot, ms (drawn up to this).
const REPLACE_PAUSE_MS_MAX: u64 = 1_000;
/// How often a member that joined a newer generation sends its previous generation's commit.
const STALE_COMMIT_PROBABILITY: f64 = 0.5;
/// Checks in a row that must see the same converged group after healing.
const STABLE_CHECKS: u32 = 3;
/// How long the group may take to converge after healing, and the read-back after it.
pub const CONVERGE_MS: u64 = 40_000;

/// One member's completed join, as it saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Join {
    /// Simulated ms when the member saw it.
    pub at_ms: u64,
    /// The member's label (`g<slot>.<incarnation>`).
    pub label: String,
    /// Its member id.
    pub member_id: String,
    /// The generation joined.
    pub generation: i32,
    /// Partitions of the topic assigned to it.
    pub assignment: Vec<i32>,
    /// As the generation's leader: member id -> partitions of the topic it assigned.
    pub led: Option<BTreeMap<String, Vec<i32>>>,
}

/// How the coordinator answered a commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommitAnswer {
    /// Acknowledged.
    Ok,
    /// Refused before anything was written (a group error: generation, member, rebalance).
    Refused(String),
    /// Failed in a way that may have written it (timeouts, lost connections, a failed append).
    Unknown(String),
}

/// One commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    /// Simulated ms when it was sent.
    pub invoked_ms: u64,
    /// Simulated ms when it was answered.
    pub done_ms: u64,
    /// The member's label.
    pub label: String,
    /// The member id it carried.
    pub member_id: String,
    /// The generation it carried.
    pub generation: i32,
    /// Partition -> committed offset (the next offset to read).
    pub offsets: BTreeMap<i32, i64>,
    /// Sent again after the member joined a newer generation.
    pub stale: bool,
    /// Per partition, what the members could have read when it was sent (check (c)).
    pub readable: BTreeMap<i32, i64>,
    /// The answer.
    pub answer: CommitAnswer,
}

/// What the group did in a run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupHistory {
    /// Joins, in the order they were seen.
    pub joins: Vec<Join>,
    /// Commits, in the order they were answered.
    pub commits: Vec<Commit>,
    /// Per partition: one past the highest offset a member read, or the highest log start a
    /// leader reported to one, whichever is higher.
    pub readable: BTreeMap<i32, i64>,
}

impl GroupHistory {
    fn note_readable(&mut self, partition: i32, offset: i64) {
        let bound = self.readable.entry(partition).or_insert(0);
        *bound = (*bound).max(offset);
    }
}

/// The group history shared by the members.
pub type SharedGroup = Arc<Mutex<GroupHistory>>;

fn lock_group(group: &SharedGroup) -> std::sync::MutexGuard<'_, GroupHistory> {
    group
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn member_config(config: &WorkloadConfig) -> ConsumerConfig {
    ConsumerConfig {
        session_timeout_ms: 6_000,
        rebalance_timeout_ms: 6_000,
        heartbeat_interval_ms: 500,
        client_rack: config.client_rack.clone(),
        ..ConsumerConfig::new(Some(GROUP_ID.to_string()))
    }
}

fn answer_of(error: &ClientError) -> CommitAnswer {
    // Refusals the coordinator gives before it appends anything.
    let refused = matches!(
        error.kafka_code(),
        Some(
            code::ILLEGAL_GENERATION
                | code::UNKNOWN_MEMBER_ID
                | code::REBALANCE_IN_PROGRESS
                | code::COORDINATOR_LOAD_IN_PROGRESS
        )
    ) || matches!(
        error,
        ClientError::NotSent { .. } | ClientError::Connect { .. }
    );
    if refused {
        CommitAnswer::Refused(error.to_string())
    } else {
        CommitAnswer::Unknown(error.to_string())
    }
}

/// The group's members until `stop_at`: `members` slots, each replaced on its own schedule.
pub async fn run(
    config: WorkloadConfig,
    shared: Shared,
    group: SharedGroup,
    members: u8,
    stop_at: Instant,
) {
    lock(&shared).event(&format!("group {GROUP_ID}: {members} members subscribe"));
    let mut slots = Vec::new();
    for slot in 0..u64::from(members) {
        let (config, shared, group) = (config.clone(), shared.clone(), group.clone());
        slots.push(tokio::spawn(async move {
            let mut rng = ChaCha8Rng::seed_from_u64(config.seed ^ 0x6709_0000_0000_0000 ^ slot);
            let mut incarnation = 0u64;
            while Instant::now() < stop_at {
                let label = format!("g{slot}.{incarnation}");
                let until =
                    (Instant::now() + Duration::from_millis(rng.gen_range(LIFE_MS))).min(stop_at);
                member(&config, &shared, &group, &label, until, &mut rng).await;
                incarnation += 1;
                let pause = rng.gen_range(0..=REPLACE_PAUSE_MS_MAX);
                tokio::time::sleep(Duration::from_millis(pause)).await;
            }
        }));
    }
    for slot in slots {
        slot.await.expect("group members do not panic");
    }
}

/// The member's join, if it is joined and this one was not recorded yet.
fn note_join(
    consumer: &Consumer,
    shared: &Shared,
    group: &SharedGroup,
    label: &str,
    last: &mut Option<(String, i32)>,
) -> Option<i32> {
    let member = consumer.group()?;
    if !member.joined {
        return None;
    }
    let seen = (member.member_id.clone(), member.generation_id);
    if last.as_ref() == Some(&seen) {
        return None;
    }
    let previous = last.replace(seen.clone());
    let assignment: Vec<i32> = consumer
        .assignment()
        .into_iter()
        .filter(|(topic, _)| topic == TOPIC)
        .map(|(_, partition)| partition)
        .collect();
    let led = member.led_assignment.as_ref().map(|all| {
        all.iter()
            .map(|(id, topics)| (id.clone(), topics.get(TOPIC).cloned().unwrap_or_default()))
            .collect::<BTreeMap<String, Vec<i32>>>()
    });
    let at_ms = lock(shared).elapsed_ms();
    let leader = if led.is_some() { " (leader)" } else { "" };
    lock(shared).event(&format!(
        "group {label} {} joined generation {}{leader}: {assignment:?}",
        seen.0, seen.1
    ));
    lock_group(group).joins.push(Join {
        at_ms,
        label: label.to_string(),
        member_id: seen.0.clone(),
        generation: seen.1,
        assignment,
        led,
    });
    // The generation the member left behind, if it is the same member.
    previous
        .filter(|(id, generation)| *id == seen.0 && *generation < seen.1)
        .map(|(_, generation)| generation)
}

/// One member: joins, polls, commits every few polls until `until`, then leaves or is
/// abandoned.
async fn member(
    config: &WorkloadConfig,
    shared: &Shared,
    group: &SharedGroup,
    label: &str,
    until: Instant,
    rng: &mut ChaCha8Rng,
) {
    let Ok(mut consumer) = Consumer::new(client_config(config), member_config(config)) else {
        return;
    };
    consumer
        .subscribe(vec![TOPIC.to_string()])
        .expect("the consumer has a group");
    let mut last_join: Option<(String, i32)> = None;
    // The member's last commit: (generation, offsets).
    let mut last_commit: Option<(i32, BTreeMap<i32, i64>)> = None;
    let mut polls = 0u64;
    while Instant::now() < until {
        let outcome = consumer.poll(POLL_MS).await;
        {
            let mut history = lock_group(group);
            for partition in 0..PARTITIONS {
                if let Some(start) = consumer.log_start_seen(TOPIC, partition) {
                    history.note_readable(partition, start);
                }
            }
            if let Ok(records) = &outcome {
                for record in records {
                    history.note_readable(record.partition, record.offset + 1);
                }
            }
        }
        let left_behind = note_join(&consumer, shared, group, label, &mut last_join);
        if let Err(error) = &outcome {
            lock(shared).event(&format!("group {label} poll: {error}"));
            tokio::time::sleep(Duration::from_millis(POLL_MS)).await;
        }
        if let (Some(old), Some((generation, offsets))) = (left_behind, &last_commit) {
            if *generation == old && rng.gen_bool(STALE_COMMIT_PROBABILITY) {
                let member_id = last_join.as_ref().map(|(id, _)| id.clone());
                let member_id = member_id.expect("a join was just recorded");
                let offsets = offsets.clone();
                stale_commit(config, shared, group, label, &member_id, old, offsets).await;
            }
        }
        polls += 1;
        if polls.is_multiple_of(COMMIT_EVERY_POLLS) {
            if let Some(made) = commit(&mut consumer, shared, group, label).await {
                last_commit = Some(made);
            }
        }
    }
    if rng.gen_bool(0.5) {
        let outcome = consumer.close().await;
        lock(shared).event(&format!("group {label} leaves: {outcome:?}"));
    } else {
        lock(shared).event(&format!("group {label} abandoned (its session expires)"));
    }
}

/// Commits the member's positions (if joined), recording it; the commit made, if sent.
async fn commit(
    consumer: &mut Consumer,
    shared: &Shared,
    group: &SharedGroup,
    label: &str,
) -> Option<(i32, BTreeMap<i32, i64>)> {
    let member = consumer.group()?;
    if !member.joined {
        return None;
    }
    let (member_id, generation) = (member.member_id.clone(), member.generation_id);
    let offsets: BTreeMap<i32, i64> = consumer
        .assignment()
        .into_iter()
        .filter_map(|(topic, partition)| {
            let position = consumer.position(&topic, partition)?;
            (topic == TOPIC).then_some((partition, position))
        })
        .collect();
    if offsets.is_empty() {
        return None;
    }
    let sent = Commit::sent(
        shared,
        group,
        label,
        member_id,
        generation,
        offsets.clone(),
        false,
    );
    let outcome = consumer.commit_sync().await;
    record_commit(shared, group, sent, &outcome);
    Some((generation, offsets))
}

/// Sends `offsets` again as member `member_id` of generation `generation`, which it has left.
async fn stale_commit(
    config: &WorkloadConfig,
    shared: &Shared,
    group: &SharedGroup,
    label: &str,
    member_id: &str,
    generation: i32,
    offsets: BTreeMap<i32, i64>,
) {
    let mut stale = GroupMember::new(GROUP_ID.to_string());
    stale.member_id = member_id.to_string();
    stale.generation_id = generation;
    stale.joined = true;
    let pool = ConnectionPool::new(client_config(config));
    let metadata = MetadataCache::new();
    let request: Offsets = BTreeMap::from([(TOPIC.to_string(), offsets.clone())]);
    let sent = Commit::sent(
        shared,
        group,
        label,
        member_id.to_string(),
        generation,
        offsets,
        true,
    );
    let outcome = stale.commit(&pool, &metadata, &request).await;
    pool.close_all();
    record_commit(shared, group, sent, &outcome);
}

impl Commit {
    /// A commit about to be sent now, with what could be read at this moment; answered later by
    /// [`record_commit`].
    fn sent(
        shared: &Shared,
        group: &SharedGroup,
        label: &str,
        member_id: String,
        generation: i32,
        offsets: BTreeMap<i32, i64>,
        stale: bool,
    ) -> Commit {
        Commit {
            invoked_ms: lock(shared).elapsed_ms(),
            done_ms: 0,
            label: label.to_string(),
            member_id,
            generation,
            offsets,
            stale,
            readable: lock_group(group).readable.clone(),
            answer: CommitAnswer::Ok,
        }
    }
}

/// Records `commit`'s answer (from `outcome`) and when it came.
fn record_commit(
    shared: &Shared,
    group: &SharedGroup,
    mut commit: Commit,
    outcome: &Result<(), ClientError>,
) {
    commit.answer = match outcome {
        Ok(()) => CommitAnswer::Ok,
        Err(error) => answer_of(error),
    };
    let mut recorder = lock(shared);
    commit.done_ms = recorder.elapsed_ms();
    let stale = if commit.stale { "stale " } else { "" };
    recorder.event(&format!(
        "group {} {stale}commit generation {} {:?}: {:?}",
        commit.label, commit.generation, commit.offsets, commit.answer
    ));
    drop(recorder);
    lock_group(group).commits.push(commit);
}

/// The safety checks (a), (b) and (c) over the history; `Err` names the first violation.
pub fn check(history: &GroupHistory) -> Result<(), String> {
    // (a) The leader's assignment is disjoint, and every member of its generation got its entry.
    for join in &history.joins {
        let Some(led) = &join.led else { continue };
        let mut owner: BTreeMap<i32, &str> = BTreeMap::new();
        for (member_id, partitions) in led {
            for partition in partitions {
                if let Some(other) = owner.insert(*partition, member_id) {
                    return Err(format!(
                        "groups: generation {} assigns t-{partition} to {other} and {member_id} \
                         (leader {})",
                        join.generation, join.member_id
                    ));
                }
            }
        }
        for other in &history.joins {
            if other.generation != join.generation {
                continue;
            }
            if let Some(entry) = led.get(&other.member_id) {
                if *entry != other.assignment {
                    return Err(format!(
                        "groups: in generation {} member {} ({}) owns {:?}, but the leader {} \
                         assigned it {entry:?}",
                        join.generation,
                        other.member_id,
                        other.label,
                        other.assignment,
                        join.member_id
                    ));
                }
            }
        }
    }
    for commit in &history.commits {
        if commit.answer != CommitAnswer::Ok {
            continue;
        }
        // (b) No acknowledged commit from a generation its member had already left.
        let newer = history.joins.iter().find(|j| {
            j.member_id == commit.member_id
                && j.generation > commit.generation
                && j.at_ms <= commit.invoked_ms
        });
        if let Some(newer) = newer {
            return Err(format!(
                "groups: a commit of {} ({}) with generation {} was acknowledged at {} ms, \
                 after the member had joined generation {} at {} ms (a fenced generation)",
                commit.member_id,
                commit.label,
                commit.generation,
                commit.done_ms,
                newer.generation,
                newer.at_ms
            ));
        }
        // (c) Nothing committed beyond what could have been read.
        for (partition, offset) in &commit.offsets {
            let readable = commit.readable.get(partition).copied().unwrap_or(0);
            if *offset > readable {
                return Err(format!(
                    "groups: {} committed offset {offset} for t-{partition} at {} ms, but the \
                     members could have read up to {readable}",
                    commit.label, commit.invoked_ms
                ));
            }
        }
    }
    Ok(())
}

/// The offsets a read-back of `partition` may show (check (e)): every acknowledged commit no
/// later acknowledged commit superseded (sent after it was answered), and every commit with an
/// unknown outcome that no acknowledged commit superseded. `None` in the set: nothing committed.
pub fn allowed_read_back(history: &GroupHistory, partition: i32) -> BTreeSet<Option<i64>> {
    let relevant: Vec<&Commit> = history
        .commits
        .iter()
        .filter(|c| c.offsets.contains_key(&partition))
        .filter(|c| !matches!(c.answer, CommitAnswer::Refused(_)))
        .collect();
    let superseded = |c: &Commit| {
        relevant
            .iter()
            .any(|later| later.answer == CommitAnswer::Ok && later.invoked_ms > c.done_ms)
    };
    let mut allowed: BTreeSet<Option<i64>> = relevant
        .iter()
        .filter(|c| !superseded(c))
        .map(|c| Some(c.offsets[&partition]))
        .collect();
    if !relevant.iter().any(|c| c.answer == CommitAnswer::Ok) {
        allowed.insert(None);
    }
    allowed
}

/// Per member slot of the convergence check: (member id, generation, assignment) once joined.
type Members = BTreeMap<usize, (String, i32, Vec<i32>)>;
/// [`Members`] shared with the members' tasks.
type Seen = Arc<Mutex<Members>>;

/// After healing: `members` fresh members must converge (check (d)), then the committed
/// offsets are read back and compared with the acknowledged commits (check (e)).
pub async fn converge_and_read_back(
    config: WorkloadConfig,
    shared: Shared,
    group: SharedGroup,
    members: u8,
    deadline: Instant,
) -> Result<(), String> {
    let seen: Seen = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut tasks = Vec::new();
    for slot in 0..usize::from(members) {
        let (config, seen, stop) = (config.clone(), seen.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let Ok(mut consumer) = Consumer::new(client_config(&config), member_config(&config))
            else {
                return;
            };
            consumer
                .subscribe(vec![TOPIC.to_string()])
                .expect("the consumer has a group");
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && Instant::now() < deadline {
                let polled = consumer.poll(POLL_MS).await;
                let joined = consumer.group().filter(|m| m.joined && polled.is_ok());
                let mut seen = seen.lock().unwrap_or_else(|p| p.into_inner());
                match joined {
                    Some(member) => {
                        let assignment: Vec<i32> = consumer
                            .assignment()
                            .into_iter()
                            .filter(|(topic, _)| topic == TOPIC)
                            .map(|(_, partition)| partition)
                            .collect();
                        let entry = (member.member_id.clone(), member.generation_id, assignment);
                        seen.insert(slot, entry);
                    }
                    None => {
                        seen.remove(&slot);
                    }
                }
            }
            consumer.close().await.ok();
        }));
    }
    let mut stable = 0;
    let mut last: Option<Members> = None;
    let mut converged = None;
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(POLL_MS * 2)).await;
        let now = seen.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let generations: BTreeSet<i32> = now.values().map(|(_, g, _)| *g).collect();
        let mut owned: Vec<i32> = now.values().flat_map(|(_, _, a)| a.clone()).collect();
        owned.sort_unstable();
        let whole = now.len() == usize::from(members)
            && generations.len() == 1
            && owned == (0..PARTITIONS).collect::<Vec<i32>>();
        if whole && last.as_ref() == Some(&now) {
            stable += 1;
        } else {
            stable = 0;
        }
        last = Some(now);
        if stable >= STABLE_CHECKS {
            converged = last.clone();
            break;
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for task in tasks {
        task.await.ok();
    }
    let Some(converged) = converged else {
        return Err(format!(
            "liveness: the consumer group did not converge after healing (last seen {last:?})"
        ));
    };
    lock(&shared).event(&format!("group converged after healing: {converged:?}"));
    // (e) Read the committed offsets back.
    let mut reader =
        Consumer::new(client_config(&config), member_config(&config)).map_err(|e| e.to_string())?;
    let history = lock_group(&group).clone();
    for partition in 0..PARTITIONS {
        let read = loop {
            match reader.committed(TOPIC, partition).await {
                Ok(offset) => break offset,
                Err(error) if Instant::now() < deadline => {
                    lock(&shared).event(&format!("group read-back t-{partition}: {error}"));
                    tokio::time::sleep(Duration::from_millis(POLL_MS)).await;
                }
                Err(error) => {
                    return Err(format!(
                        "liveness: committed offsets unreadable after healing: {error}"
                    ))
                }
            }
        };
        let allowed = allowed_read_back(&history, partition);
        lock(&shared).event(&format!(
            "group read-back t-{partition}: {read:?} (allowed {allowed:?})"
        ));
        if !allowed.contains(&read) {
            return Err(format!(
                "groups: the committed offset of t-{partition} reads back as {read:?} after \
                 healing, but the acknowledged commits allow only {allowed:?}"
            ));
        }
    }
    reader.close().await.ok();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn commit(invoked_ms: u64, done_ms: u64, offset: i64, answer: CommitAnswer) -> Commit {
        Commit {
            invoked_ms,
            done_ms,
            label: "g0.0".into(),
            member_id: "m-1".into(),
            generation: 1,
            offsets: BTreeMap::from([(0, offset)]),
            stale: false,
            readable: BTreeMap::from([(0, 100)]),
            answer,
        }
    }

    fn join(at_ms: u64, member_id: &str, generation: i32, assignment: Vec<i32>) -> Join {
        Join {
            at_ms,
            label: "g0.0".into(),
            member_id: member_id.into(),
            generation,
            assignment,
            led: None,
        }
    }

    #[test]
    fn an_acknowledged_commit_of_a_left_generation_is_a_violation() {
        let mut history = GroupHistory::default();
        history.joins.push(join(0, "m-1", 1, vec![0]));
        history.joins.push(join(50, "m-1", 2, vec![0]));
        history.commits.push(commit(10, 20, 5, CommitAnswer::Ok));
        assert_eq!(check(&history), Ok(()));
        let mut stale = commit(
            60,
            70,
            5,
            CommitAnswer::Refused("ILLEGAL_GENERATION".into()),
        );
        stale.stale = true;
        history.commits.push(stale.clone());
        assert_eq!(check(&history), Ok(()));
        stale.answer = CommitAnswer::Ok;
        history.commits.push(stale);
        assert!(check(&history).is_err_and(|why| why.contains("fenced generation")));
    }

    #[test]
    fn a_commit_past_what_was_readable_is_a_violation() {
        let mut history = GroupHistory::default();
        history.commits.push(commit(10, 20, 101, CommitAnswer::Ok));
        assert!(check(&history).is_err_and(|why| why.contains("could have read")));
    }

    #[test]
    fn overlapping_or_mismatched_assignments_are_violations() {
        let mut history = GroupHistory::default();
        let mut leader = join(0, "m-1", 3, vec![0, 1]);
        leader.led = Some(BTreeMap::from([
            ("m-1".to_string(), vec![0, 1]),
            ("m-2".to_string(), vec![2]),
        ]));
        history.joins.push(leader.clone());
        history.joins.push(join(1, "m-2", 3, vec![2]));
        // Another era's generation 3 (other member ids) is not compared.
        history.joins.push(join(9, "m-7", 3, vec![0, 1, 2]));
        assert_eq!(check(&history), Ok(()));
        history.joins.push(join(2, "m-2", 3, vec![1, 2]));
        assert!(check(&history).is_err_and(|why| why.contains("assigned it")));
        history.joins.pop();
        leader.led = Some(BTreeMap::from([
            ("m-1".to_string(), vec![0, 1]),
            ("m-2".to_string(), vec![1]),
        ]));
        history.joins[0] = leader;
        assert!(check(&history).is_err_and(|why| why.contains("assigns t-1")));
    }

    #[test]
    fn read_back_allows_the_last_acknowledged_commit_or_a_later_unknown_one() {
        let mut history = GroupHistory::default();
        assert_eq!(allowed_read_back(&history, 0), BTreeSet::from([None]));
        history.commits.push(commit(0, 10, 3, CommitAnswer::Ok));
        history.commits.push(commit(20, 30, 7, CommitAnswer::Ok));
        history
            .commits
            .push(commit(40, 50, 9, CommitAnswer::Unknown("timeout".into())));
        history.commits.push(commit(
            60,
            70,
            11,
            CommitAnswer::Refused("ILLEGAL_GENERATION".into()),
        ));
        assert_eq!(
            allowed_read_back(&history, 0),
            BTreeSet::from([Some(7), Some(9)])
        );
        // Two acknowledged commits that overlapped in time: either may be last.
        history.commits.push(commit(45, 80, 8, CommitAnswer::Ok));
        assert_eq!(
            allowed_read_back(&history, 0),
            BTreeSet::from([Some(8), Some(9)])
        );
    }
}

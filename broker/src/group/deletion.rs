//! DeleteGroups and OffsetDelete, as Kafka's classic `GroupCoordinator.handleDeleteGroups` and
//! `handleDeleteOffsets`: a plan of tombstones for the offsets topic (the caller appends them
//! with acks=all), then the coordinator applies them once they are durable.

use super::coordinator::GroupCoordinator;
use super::error_code;
use super::offsets::{OffsetKey, OffsetRecord};
use super::state::GroupState;

/// GROUP_ID_NOT_FOUND: no such group (or it is Dead).
pub const GROUP_ID_NOT_FOUND: i16 = 69;
/// NON_EMPTY_GROUP: the group still has members.
pub const NON_EMPTY_GROUP: i16 = 68;
/// GROUP_SUBSCRIBED_TO_TOPIC: a member of the group consumes the topic (OffsetDelete).
pub const GROUP_SUBSCRIBED_TO_TOPIC: i16 = 86;

/// Most topics one member's subscription may name when read for OffsetDelete.
const SUBSCRIPTION_TOPICS_MAX: usize = 1 << 16;

/// Tombstones to write for one group, in its offsets partition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeletionPlan {
    /// The `__consumer_offsets` partition the tombstones go to.
    pub offsets_partition: i32,
    /// One tombstone (value `None`) per offset to delete; may be empty.
    pub tombstones: Vec<OffsetRecord>,
}

impl GroupCoordinator {
    /// The group-level check both APIs share: the id, coordination, existence.
    fn deletion_check(&self, group_id: &str) -> i16 {
        if group_id.is_empty() {
            return error_code::INVALID_GROUP_ID;
        }
        let coordinator = self.is_coordinator_for(group_id);
        if coordinator != error_code::NONE {
            return coordinator;
        }
        match self.groups.get(group_id) {
            None => GROUP_ID_NOT_FOUND,
            Some(group) if group.state == GroupState::Dead => GROUP_ID_NOT_FOUND,
            Some(_) => error_code::NONE,
        }
    }

    /// DeleteGroups for one group: every committed offset goes; refused while it has members.
    pub fn plan_group_deletion(&self, group_id: &str) -> Result<DeletionPlan, i16> {
        let code = self.deletion_check(group_id);
        if code != error_code::NONE {
            return Err(code);
        }
        let group = self.groups.get(group_id).expect("checked above");
        if group.state != GroupState::Empty || !group.members.is_empty() {
            return Err(NON_EMPTY_GROUP);
        }
        let tombstones: Vec<OffsetRecord> = group
            .offsets
            .keys()
            .map(|(topic, partition)| tombstone(group_id, topic, *partition))
            .collect();
        assert_eq!(tombstones.len(), group.offsets.len());
        Ok(DeletionPlan {
            offsets_partition: self.partition_for(group_id),
            tombstones,
        })
    }

    /// The tombstones of a group deletion are durable: apply them, and forget the group if it
    /// is still Empty (a member may have joined meanwhile; its group stays, without offsets).
    pub fn group_deleted(&mut self, base_offset: i64, plan: DeletionPlan, group_id: &str) {
        self.offsets_committed(base_offset, plan.tombstones);
        let forget = self
            .groups
            .get(group_id)
            .is_some_and(|g| g.state == GroupState::Empty && g.members.is_empty());
        if forget {
            self.groups.remove(group_id);
            tracing::info!(group = group_id, "group deleted");
        }
        assert!(!forget || !self.groups.contains_key(group_id));
    }

    /// OffsetDelete: the group-level code (NONE, or a refusal for the whole request), and per
    /// requested (topic, partition) its code; the plan holds tombstones for those answered NONE.
    /// A group with members keeps the offsets of topics its members subscribe to
    /// (GROUP_SUBSCRIBED_TO_TOPIC); one whose protocol is not "consumer" cannot be read and is
    /// refused whole with NON_EMPTY_GROUP, as in Kafka.
    pub fn plan_offset_deletion(
        &self,
        group_id: &str,
        requested: &[(String, i32)],
    ) -> Result<(DeletionPlan, Vec<i16>), i16> {
        let code = self.deletion_check(group_id);
        if code != error_code::NONE {
            return Err(code);
        }
        let group = self.groups.get(group_id).expect("checked above");
        let empty = group.state == GroupState::Empty && group.members.is_empty();
        let subscribed: Option<Vec<String>> = if empty {
            Some(Vec::new())
        } else if group.protocol_type.as_deref() != Some("consumer") {
            return Err(NON_EMPTY_GROUP);
        } else {
            subscribed_topics(group)
        };
        let mut tombstones = Vec::new();
        let codes: Vec<i16> = requested
            .iter()
            .map(|(topic, partition)| {
                // Unreadable subscriptions count as subscribed to everything (Kafka's rule).
                let in_use = subscribed.as_ref().is_none_or(|s| s.contains(topic));
                if in_use {
                    GROUP_SUBSCRIBED_TO_TOPIC
                } else {
                    tombstones.push(tombstone(group_id, topic, *partition));
                    error_code::NONE
                }
            })
            .collect();
        assert_eq!(codes.len(), requested.len());
        let plan = DeletionPlan {
            offsets_partition: self.partition_for(group_id),
            tombstones,
        };
        Ok((plan, codes))
    }
}

fn tombstone(group_id: &str, topic: &str, partition: i32) -> OffsetRecord {
    OffsetRecord {
        key: OffsetKey {
            group: group_id.to_string(),
            topic: topic.to_string(),
            partition,
        },
        value: None,
    }
}

/// The topics the members subscribe to in the group's chosen protocol, read from Kafka's
/// ConsumerProtocol subscription (`int16 version, [string topics], ...`); `None` when a
/// member's subscription cannot be read.
fn subscribed_topics(group: &super::state::Group) -> Option<Vec<String>> {
    let protocol = group.protocol_name.as_deref()?;
    let mut topics = Vec::new();
    for member in group.members.values() {
        let (_, metadata) = member.protocols.iter().find(|(name, _)| name == protocol)?;
        topics.extend(subscription_topics(metadata)?);
    }
    topics.sort();
    topics.dedup();
    Some(topics)
}

fn subscription_topics(metadata: &[u8]) -> Option<Vec<String>> {
    let mut rest = metadata;
    let take = |rest: &mut &[u8], n: usize| -> Option<Vec<u8>> {
        if rest.len() < n {
            return None;
        }
        let (head, tail) = rest.split_at(n);
        *rest = tail;
        Some(head.to_vec())
    };
    let _version = take(&mut rest, 2)?;
    let count = i32::from_be_bytes(take(&mut rest, 4)?.try_into().ok()?);
    let count = usize::try_from(count).ok()?.min(SUBSCRIPTION_TOPICS_MAX);
    let mut topics = Vec::with_capacity(count.min(rest.len() / 2));
    for _ in 0..count {
        let length = i16::from_be_bytes(take(&mut rest, 2)?.try_into().ok()?);
        let bytes = take(&mut rest, usize::try_from(length).ok()?)?;
        topics.push(String::from_utf8(bytes).ok()?);
    }
    Some(topics)
}

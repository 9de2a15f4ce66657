//! ACL enforcement before dispatch, with Kafka's error codes (`KafkaApis`' checks): a request's
//! resources the principal may not touch are taken out of the request and answered with
//! TOPIC_AUTHORIZATION_FAILED, GROUP_AUTHORIZATION_FAILED or CLUSTER_AUTHORIZATION_FAILED;
//! the rest is served as usual. With the authorizer off, everything passes untouched.
//!
//! | request | needs |
//! |---|---|
//! | Produce | WRITE on the topic |
//! | Fetch (consumer), ListOffsets, OffsetForLeaderEpoch (consumer) | READ / DESCRIBE on the topic |
//! | Metadata | DESCRIBE on the topic (`metadata.rs`: unlisted, or the error when named) |
//! | CreateTopics | CREATE on the cluster or the topic |
//! | DeleteTopics, DeleteRecords | DELETE on the topic |
//! | CreatePartitions | ALTER on the topic |
//! | DescribeConfigs / AlterConfigs, IncrementalAlterConfigs | DESCRIBE_CONFIGS / ALTER_CONFIGS on the topic or the cluster |
//! | InitProducerId (idempotent) | IDEMPOTENT_WRITE on the cluster, or WRITE on some topic (KIP-679) |
//! | FindCoordinator (group), DescribeGroups | DESCRIBE on the group |
//! | JoinGroup, SyncGroup, Heartbeat, LeaveGroup, OffsetCommit | READ on the group (OffsetCommit: READ on each topic too) |
//! | OffsetFetch | DESCRIBE on the group; DESCRIBE on each topic (left out of an every-topic answer) |
//! | DeleteGroups, OffsetDelete | DELETE on the group |
//! | ListGroups | DESCRIBE on the cluster, else only groups it may DESCRIBE |
//! | DescribeCluster, DescribeAcls, DescribeUserScramCredentials | DESCRIBE on the cluster |
//! | CreateAcls, DeleteAcls, AlterUserScramCredentials, ElectLeaders | ALTER on the cluster |
//! | DescribeLogDirs | DESCRIBE on the cluster |
//! | DescribeProducers | READ on the topic |

use kafka_protocol::error::ResponseError as E;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use crate::security::acl::{op, resource, Access};

/// Adds the refused resources' answers to the response of what was served.
pub type Patch = Box<dyn FnOnce(&mut ResponseKind) + Send>;

/// What to do with a request.
pub enum Gate {
    /// Serve this (possibly reduced) request, then apply the patch to its response.
    Serve(Box<RequestKind>, Option<Patch>),
    /// Answer this without serving anything.
    Answer(Box<ResponseKind>),
}

const TOPIC_DENIED: i16 = E::TopicAuthorizationFailed.code();
const GROUP_DENIED: i16 = E::GroupAuthorizationFailed.code();
const CLUSTER_DENIED: i16 = E::ClusterAuthorizationFailed.code();

fn serve(body: RequestKind) -> Gate {
    Gate::Serve(Box::new(body), None)
}

fn answer(body: ResponseKind) -> Gate {
    Gate::Answer(Box::new(body))
}

fn patched(body: RequestKind, patch: impl FnOnce(&mut ResponseKind) + Send + 'static) -> Gate {
    Gate::Serve(Box::new(body), Some(Box::new(patch)))
}

/// Splits `items` into (allowed, refused) by `allowed`.
fn split<T>(items: Vec<T>, allowed: impl Fn(&T) -> bool) -> (Vec<T>, Vec<T>) {
    items.into_iter().partition(|item| allowed(item))
}

/// The three config APIs differ only in their types: resources the principal may not touch
/// are taken out and answered with the resource type's authorization error.
macro_rules! config_gate {
    ($access:expr, $r:ident, $kind:ident, $op:expr, $field:ident, $result:path) => {{
        let (ok, denied) = split(std::mem::take(&mut $r.resources), |c| {
            may_config($access, c.resource_type, &c.resource_name, $op)
        });
        $r.resources = ok;
        patched(RequestKind::$kind($r), move |response| {
            if let ResponseKind::$kind(response) = response {
                for c in denied {
                    response.$field.push(
                        <$result>::default()
                            .with_error_code(config_denied(c.resource_type))
                            .with_resource_type(c.resource_type)
                            .with_resource_name(c.resource_name),
                    );
                }
            }
        })
    }};
}

/// Checks `body` against the ACLs.
pub fn gate(access: &Access, body: RequestKind, version: i16) -> Gate {
    if !access.enabled || access.requester.is_super {
        return serve(body);
    }
    match body {
        RequestKind::Produce(mut r) => {
            let (ok, denied) = split(std::mem::take(&mut r.topic_data), |t| {
                access.may_topic(&t.name.0, op::WRITE)
            });
            r.topic_data = ok;
            if denied.is_empty() {
                return serve(RequestKind::Produce(r));
            }
            patched(RequestKind::Produce(r), move |response| {
                if let ResponseKind::Produce(response) = response {
                    use kafka_protocol::messages::produce_response::*;
                    for topic in denied {
                        let partitions = topic
                            .partition_data
                            .iter()
                            .map(|p| {
                                PartitionProduceResponse::default()
                                    .with_index(p.index)
                                    .with_error_code(TOPIC_DENIED)
                                    .with_base_offset(-1)
                                    .with_log_append_time_ms(-1)
                                    .with_log_start_offset(-1)
                            })
                            .collect();
                        response.responses.push(
                            TopicProduceResponse::default()
                                .with_name(topic.name)
                                .with_partition_responses(partitions),
                        );
                    }
                }
            })
        }
        RequestKind::Fetch(mut r) if r.replica_id.0 < 0 && r.replica_state.replica_id.0 < 0 => {
            let (ok, denied) = split(std::mem::take(&mut r.topics), |t| {
                access.may_topic(&t.topic.0, op::READ)
            });
            r.topics = ok;
            if denied.is_empty() {
                return serve(RequestKind::Fetch(r));
            }
            let refused =
                super::data::fetch_unauthorized(&FetchRequest::default().with_topics(denied));
            patched(RequestKind::Fetch(r), move |response| {
                if let ResponseKind::Fetch(response) = response {
                    response.responses.extend(refused.responses);
                }
            })
        }
        RequestKind::ListOffsets(mut r) => {
            let (ok, denied) = split(std::mem::take(&mut r.topics), |t| {
                access.may_topic(&t.name.0, op::DESCRIBE)
            });
            r.topics = ok;
            patched(RequestKind::ListOffsets(r), move |response| {
                if let ResponseKind::ListOffsets(response) = response {
                    use kafka_protocol::messages::list_offsets_response::*;
                    for topic in denied {
                        let partitions = topic
                            .partitions
                            .iter()
                            .map(|p| {
                                ListOffsetsPartitionResponse::default()
                                    .with_partition_index(p.partition_index)
                                    .with_error_code(TOPIC_DENIED)
                                    .with_timestamp(-1)
                                    .with_offset(-1)
                            })
                            .collect();
                        response.topics.push(
                            ListOffsetsTopicResponse::default()
                                .with_name(topic.name)
                                .with_partitions(partitions),
                        );
                    }
                }
            })
        }
        RequestKind::OffsetForLeaderEpoch(mut r) if version < 3 || r.replica_id.0 < 0 => {
            let (ok, denied) = split(std::mem::take(&mut r.topics), |t| {
                access.may_topic(&t.topic.0, op::DESCRIBE)
            });
            r.topics = ok;
            let mut refused = super::data::offsets_for_leader_epoch_unauthorized(
                &OffsetForLeaderEpochRequest::default().with_topics(denied),
            );
            for topic in &mut refused.topics {
                for partition in &mut topic.partitions {
                    partition.error_code = TOPIC_DENIED;
                }
            }
            patched(RequestKind::OffsetForLeaderEpoch(r), move |response| {
                if let ResponseKind::OffsetForLeaderEpoch(response) = response {
                    response.topics.extend(refused.topics);
                }
            })
        }
        RequestKind::CreateTopics(mut r) => {
            let cluster = access.may_cluster(op::CREATE);
            let (ok, denied) = split(std::mem::take(&mut r.topics), |t| {
                cluster || access.may_topic(&t.name.0, op::CREATE)
            });
            r.topics = ok;
            patched(RequestKind::CreateTopics(r), move |response| {
                if let ResponseKind::CreateTopics(response) = response {
                    use kafka_protocol::messages::create_topics_response::*;
                    for topic in denied {
                        response.topics.push(
                            CreatableTopicResult::default()
                                .with_name(topic.name)
                                .with_error_code(TOPIC_DENIED)
                                .with_num_partitions(-1)
                                .with_replication_factor(-1),
                        );
                    }
                }
            })
        }
        RequestKind::DeleteTopics(mut r) => {
            let may = |name: &str| access.may_topic(name, op::DELETE);
            let (names, denied_names) = split(std::mem::take(&mut r.topic_names), |n| may(&n.0));
            r.topic_names = names;
            let (states, denied_states) = split(std::mem::take(&mut r.topics), |t| {
                t.name.as_ref().is_some_and(|n| may(&n.0))
            });
            r.topics = states;
            patched(RequestKind::DeleteTopics(r), move |response| {
                if let ResponseKind::DeleteTopics(response) = response {
                    use kafka_protocol::messages::delete_topics_response::*;
                    let refused = denied_names
                        .into_iter()
                        .map(|n| (Some(n), Default::default()))
                        .chain(denied_states.into_iter().map(|t| (t.name, t.topic_id)));
                    for (name, topic_id) in refused {
                        response.responses.push(
                            DeletableTopicResult::default()
                                .with_name(name)
                                .with_topic_id(topic_id)
                                .with_error_code(TOPIC_DENIED),
                        );
                    }
                }
            })
        }
        RequestKind::CreatePartitions(mut r) => {
            let (ok, denied) = split(std::mem::take(&mut r.topics), |t| {
                access.may_topic(&t.name.0, op::ALTER)
            });
            r.topics = ok;
            patched(RequestKind::CreatePartitions(r), move |response| {
                if let ResponseKind::CreatePartitions(response) = response {
                    use kafka_protocol::messages::create_partitions_response::*;
                    for topic in denied {
                        response.results.push(
                            CreatePartitionsTopicResult::default()
                                .with_name(topic.name)
                                .with_error_code(TOPIC_DENIED),
                        );
                    }
                }
            })
        }
        RequestKind::DeleteRecords(mut r) => {
            let (ok, denied) = split(std::mem::take(&mut r.topics), |t| {
                access.may_topic(&t.name.0, op::DELETE)
            });
            r.topics = ok;
            patched(RequestKind::DeleteRecords(r), move |response| {
                if let ResponseKind::DeleteRecords(response) = response {
                    use kafka_protocol::messages::delete_records_response::*;
                    for topic in denied {
                        let partitions = topic
                            .partitions
                            .iter()
                            .map(|p| {
                                DeleteRecordsPartitionResult::default()
                                    .with_partition_index(p.partition_index)
                                    .with_low_watermark(-1)
                                    .with_error_code(TOPIC_DENIED)
                            })
                            .collect();
                        response.topics.push(
                            DeleteRecordsTopicResult::default()
                                .with_name(topic.name)
                                .with_partitions(partitions),
                        );
                    }
                }
            })
        }
        RequestKind::DescribeConfigs(mut r) => config_gate!(
            access,
            r,
            DescribeConfigs,
            op::DESCRIBE_CONFIGS,
            results,
            describe_configs_response::DescribeConfigsResult
        ),
        RequestKind::AlterConfigs(mut r) => config_gate!(
            access,
            r,
            AlterConfigs,
            op::ALTER_CONFIGS,
            responses,
            alter_configs_response::AlterConfigsResourceResponse
        ),
        RequestKind::IncrementalAlterConfigs(mut r) => config_gate!(
            access,
            r,
            IncrementalAlterConfigs,
            op::ALTER_CONFIGS,
            responses,
            incremental_alter_configs_response::AlterConfigsResourceResponse
        ),
        RequestKind::InitProducerId(r) => {
            let may = r.transactional_id.is_some()
                || access.may_cluster(op::IDEMPOTENT_WRITE)
                || may_write_some_topic(access);
            if may {
                serve(RequestKind::InitProducerId(r))
            } else {
                answer(ResponseKind::InitProducerId(
                    InitProducerIdResponse::default()
                        .with_error_code(CLUSTER_DENIED)
                        .with_producer_id(ProducerId(-1))
                        .with_producer_epoch(-1),
                ))
            }
        }
        RequestKind::FindCoordinator(r) => find_coordinator(access, r, version),
        RequestKind::JoinGroup(r) => {
            if access.may_group(&r.group_id.0, op::READ) {
                return serve(RequestKind::JoinGroup(r));
            }
            answer(ResponseKind::JoinGroup(
                JoinGroupResponse::default()
                    .with_error_code(GROUP_DENIED)
                    .with_generation_id(-1)
                    .with_member_id(r.member_id),
            ))
        }
        RequestKind::SyncGroup(r) => {
            if access.may_group(&r.group_id.0, op::READ) {
                return serve(RequestKind::SyncGroup(r));
            }
            answer(ResponseKind::SyncGroup(
                SyncGroupResponse::default().with_error_code(GROUP_DENIED),
            ))
        }
        RequestKind::Heartbeat(r) => {
            if access.may_group(&r.group_id.0, op::READ) {
                return serve(RequestKind::Heartbeat(r));
            }
            answer(ResponseKind::Heartbeat(
                HeartbeatResponse::default().with_error_code(GROUP_DENIED),
            ))
        }
        RequestKind::LeaveGroup(r) => {
            if access.may_group(&r.group_id.0, op::READ) {
                return serve(RequestKind::LeaveGroup(r));
            }
            answer(ResponseKind::LeaveGroup(
                LeaveGroupResponse::default().with_error_code(GROUP_DENIED),
            ))
        }
        RequestKind::OffsetCommit(mut r) => {
            let group_ok = access.may_group(&r.group_id.0, op::READ);
            let (ok, denied) = split(std::mem::take(&mut r.topics), |t| {
                group_ok && access.may_topic(&t.name.0, op::READ)
            });
            r.topics = ok;
            let code = if group_ok { TOPIC_DENIED } else { GROUP_DENIED };
            let refused: Vec<_> = denied
                .into_iter()
                .map(|topic| {
                    use kafka_protocol::messages::offset_commit_response::*;
                    let partitions = topic
                        .partitions
                        .iter()
                        .map(|p| {
                            OffsetCommitResponsePartition::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(code)
                        })
                        .collect();
                    OffsetCommitResponseTopic::default()
                        .with_name(topic.name)
                        .with_topic_id(topic.topic_id)
                        .with_partitions(partitions)
                })
                .collect();
            if !group_ok {
                return answer(ResponseKind::OffsetCommit(
                    OffsetCommitResponse::default().with_topics(refused),
                ));
            }
            patched(RequestKind::OffsetCommit(r), move |response| {
                if let ResponseKind::OffsetCommit(response) = response {
                    response.topics.extend(refused);
                }
            })
        }
        RequestKind::OffsetFetch(r) => offset_fetch(access, r, version),
        RequestKind::DescribeGroups(mut r) => {
            let (ok, denied) = split(std::mem::take(&mut r.groups), |g| {
                access.may_group(&g.0, op::DESCRIBE)
            });
            r.groups = ok;
            patched(RequestKind::DescribeGroups(r), move |response| {
                if let ResponseKind::DescribeGroups(response) = response {
                    use kafka_protocol::messages::describe_groups_response::*;
                    for group in denied {
                        response.groups.push(
                            DescribedGroup::default()
                                .with_group_id(group)
                                .with_error_code(GROUP_DENIED)
                                .with_authorized_operations(i32::MIN),
                        );
                    }
                }
            })
        }
        RequestKind::DeleteGroups(mut r) => {
            let (ok, denied) = split(std::mem::take(&mut r.groups_names), |g| {
                access.may_group(&g.0, op::DELETE)
            });
            r.groups_names = ok;
            patched(RequestKind::DeleteGroups(r), move |response| {
                if let ResponseKind::DeleteGroups(response) = response {
                    use kafka_protocol::messages::delete_groups_response::*;
                    for group in denied {
                        response.results.push(
                            DeletableGroupResult::default()
                                .with_group_id(group)
                                .with_error_code(GROUP_DENIED),
                        );
                    }
                }
            })
        }
        RequestKind::OffsetDelete(r) => {
            if access.may_group(&r.group_id.0, op::DELETE) {
                return serve(RequestKind::OffsetDelete(r));
            }
            answer(ResponseKind::OffsetDelete(
                OffsetDeleteResponse::default().with_error_code(GROUP_DENIED),
            ))
        }
        RequestKind::ListGroups(r) => {
            if access.may_cluster(op::DESCRIBE) {
                return serve(RequestKind::ListGroups(r));
            }
            let access = access.clone();
            patched(RequestKind::ListGroups(r), move |response| {
                if let ResponseKind::ListGroups(response) = response {
                    response
                        .groups
                        .retain(|g| access.may_group(&g.group_id.0, op::DESCRIBE));
                }
            })
        }
        RequestKind::DescribeCluster(r) => {
            if access.may_cluster(op::DESCRIBE) {
                return serve(RequestKind::DescribeCluster(r));
            }
            answer(ResponseKind::DescribeCluster(
                DescribeClusterResponse::default()
                    .with_error_code(CLUSTER_DENIED)
                    .with_controller_id(BrokerId(-1)),
            ))
        }
        RequestKind::ElectLeaders(r) => {
            if access.may_cluster(op::ALTER) {
                return serve(RequestKind::ElectLeaders(r));
            }
            answer(ResponseKind::ElectLeaders(
                ElectLeadersResponse::default().with_error_code(CLUSTER_DENIED),
            ))
        }
        RequestKind::DescribeLogDirs(r) => {
            if access.may_cluster(op::DESCRIBE) {
                return serve(RequestKind::DescribeLogDirs(r));
            }
            // Kafka answers an unauthorised DescribeLogDirs with no directories (and the code
            // from v3 on, where the field exists).
            answer(ResponseKind::DescribeLogDirs(
                DescribeLogDirsResponse::default().with_error_code(if version >= 3 {
                    CLUSTER_DENIED
                } else {
                    0
                }),
            ))
        }
        RequestKind::DescribeProducers(mut r) => {
            let (ok, denied) = split(std::mem::take(&mut r.topics), |t| {
                access.may_topic(&t.name.0, op::READ)
            });
            r.topics = ok;
            patched(RequestKind::DescribeProducers(r), move |response| {
                if let ResponseKind::DescribeProducers(response) = response {
                    use kafka_protocol::messages::describe_producers_response::*;
                    for topic in denied {
                        let partitions = topic
                            .partition_indexes
                            .iter()
                            .map(|p| {
                                PartitionResponse::default()
                                    .with_partition_index(*p)
                                    .with_error_code(TOPIC_DENIED)
                            })
                            .collect();
                        response.topics.push(
                            TopicResponse::default()
                                .with_name(topic.name)
                                .with_partitions(partitions),
                        );
                    }
                }
            })
        }
        other => serve(other),
    }
}

fn may_config(access: &Access, resource_type: i8, name: &StrBytes, operation: i8) -> bool {
    match resource_type {
        // Kafka's config resource types: 2 topic, 4 broker, 8 broker logger.
        2 => access.may_topic(name, operation),
        _ => access.may_cluster(operation),
    }
}

fn config_denied(resource_type: i8) -> i16 {
    if resource_type == 2 {
        TOPIC_DENIED
    } else {
        CLUSTER_DENIED
    }
}

/// KIP-679: WRITE on any topic implies IDEMPOTENT_WRITE. An ALLOW of WRITE (or ALL) on a topic
/// pattern for this principal counts, unless a DENY of WRITE on every topic (`*`) stands.
fn may_write_some_topic(access: &Access) -> bool {
    use controller::security::{PATTERN_LITERAL, PERMISSION_ALLOW, PERMISSION_DENY};
    let requester = &access.requester;
    let applies = |b: &controller::AclBinding| {
        b.resource_type == resource::TOPIC
            && (b.principal == requester.principal || b.principal == "User:*")
            && (b.host == requester.host || b.host == "*")
            && (b.operation == op::WRITE || b.operation == op::ALL)
    };
    let acls = access.acls.acls();
    let denied_everywhere = acls.iter().any(|b| {
        applies(b)
            && b.permission_type == PERMISSION_DENY
            && b.pattern_type == PATTERN_LITERAL
            && b.resource_name == "*"
    });
    !denied_everywhere
        && acls
            .iter()
            .any(|b| applies(b) && b.permission_type == PERMISSION_ALLOW)
}

/// FindCoordinator: DESCRIBE on each group asked for; a v4+ batch is served for the groups
/// allowed and answers GROUP_AUTHORIZATION_FAILED for the others.
fn find_coordinator(access: &Access, mut r: FindCoordinatorRequest, version: i16) -> Gate {
    use kafka_protocol::messages::find_coordinator_response::Coordinator;
    if r.key_type != 0 {
        return serve(RequestKind::FindCoordinator(r));
    }
    let refused = |key: StrBytes| {
        Coordinator::default()
            .with_key(key)
            .with_node_id(BrokerId(-1))
            .with_port(-1)
            .with_error_code(GROUP_DENIED)
    };
    if version >= 4 {
        let (ok, denied) = split(std::mem::take(&mut r.coordinator_keys), |k| {
            access.may_group(k, op::DESCRIBE)
        });
        if denied.is_empty() {
            r.coordinator_keys = ok;
            return serve(RequestKind::FindCoordinator(r));
        }
        if ok.is_empty() {
            let response = FindCoordinatorResponse::default()
                .with_coordinators(denied.into_iter().map(refused).collect());
            return answer(ResponseKind::FindCoordinator(response));
        }
        r.coordinator_keys = ok;
        return patched(RequestKind::FindCoordinator(r), move |response| {
            if let ResponseKind::FindCoordinator(response) = response {
                response
                    .coordinators
                    .extend(denied.into_iter().map(refused));
            }
        });
    }
    if access.may_group(&r.key, op::DESCRIBE) {
        return serve(RequestKind::FindCoordinator(r));
    }
    let response = FindCoordinatorResponse::default()
        .with_error_code(GROUP_DENIED)
        .with_node_id(BrokerId(-1))
        .with_port(-1);
    answer(ResponseKind::FindCoordinator(response))
}

/// OffsetFetch (v0–7, the versions served): DESCRIBE on the group, else GROUP_AUTHORIZATION_FAILED;
/// then, as Kafka's `handleOffsetFetchRequest`, a topic named without DESCRIBE on it answers
/// TOPIC_AUTHORIZATION_FAILED on each partition asked for, and an every-topic fetch leaves out
/// the topics the principal may not DESCRIBE.
fn offset_fetch(access: &Access, mut r: OffsetFetchRequest, version: i16) -> Gate {
    use kafka_protocol::messages::offset_fetch_response::*;
    if version >= 8 {
        // Not served (the version table stops at 7): refused whole, should that change.
        let groups = r
            .groups
            .into_iter()
            .map(|g| {
                OffsetFetchResponseGroup::default()
                    .with_group_id(g.group_id)
                    .with_error_code(GROUP_DENIED)
            })
            .collect();
        let response = OffsetFetchResponse::default().with_groups(groups);
        return answer(ResponseKind::OffsetFetch(response));
    }
    if !access.may_group(&r.group_id.0, op::DESCRIBE) {
        let response = OffsetFetchResponse::default().with_error_code(GROUP_DENIED);
        return answer(ResponseKind::OffsetFetch(response));
    }
    match r.topics.as_mut() {
        Some(topics) => {
            let (ok, denied) = split(std::mem::take(topics), |t| {
                access.may_topic(&t.name.0, op::DESCRIBE)
            });
            *topics = ok;
            if denied.is_empty() {
                return serve(RequestKind::OffsetFetch(r));
            }
            patched(RequestKind::OffsetFetch(r), move |response| {
                if let ResponseKind::OffsetFetch(response) = response {
                    for topic in denied {
                        let partitions = topic
                            .partition_indexes
                            .iter()
                            .map(|&index| {
                                OffsetFetchResponsePartition::default()
                                    .with_partition_index(index)
                                    .with_committed_offset(-1)
                                    .with_error_code(TOPIC_DENIED)
                            })
                            .collect();
                        response.topics.push(
                            OffsetFetchResponseTopic::default()
                                .with_name(topic.name)
                                .with_partitions(partitions),
                        );
                    }
                }
            })
        }
        None => {
            let access = access.clone();
            patched(RequestKind::OffsetFetch(r), move |response| {
                if let ResponseKind::OffsetFetch(response) = response {
                    response
                        .topics
                        .retain(|t| access.may_topic(&t.name.0, op::DESCRIBE));
                }
            })
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use controller::security::{PATTERN_LITERAL, PERMISSION_ALLOW};
    use controller::{AclBinding, MetadataImage, MetadataRecord, SecurityChange};

    /// bob may DESCRIBE group `mine` and topic `seen`, nothing else.
    fn bob() -> Access {
        let mut image = MetadataImage::new();
        for (resource_type, name) in [(resource::GROUP, "mine"), (resource::TOPIC, "seen")] {
            let binding = AclBinding {
                resource_type,
                resource_name: name.into(),
                pattern_type: PATTERN_LITERAL,
                principal: "User:bob".into(),
                host: "*".into(),
                operation: op::DESCRIBE,
                permission_type: PERMISSION_ALLOW,
            };
            image
                .apply(&MetadataRecord::Security(SecurityChange::CreateAcl(
                    binding,
                )))
                .unwrap();
        }
        let mut access = Access::unrestricted("SASL_PLAINTEXT");
        access.enabled = true;
        access.allow_if_no_acl = false;
        access.requester.principal = "User:bob".into();
        access.requester.is_super = false;
        access.acls = std::sync::Arc::new(image);
        access
    }

    fn served(gate: Gate, mut response: ResponseKind) -> (RequestKind, ResponseKind) {
        match gate {
            Gate::Serve(request, patch) => {
                if let Some(patch) = patch {
                    patch(&mut response);
                }
                (*request, response)
            }
            Gate::Answer(_) => panic!("expected the request to be served"),
        }
    }

    #[test]
    fn a_find_coordinator_batch_is_served_for_the_groups_allowed() {
        let request = FindCoordinatorRequest::default()
            .with_coordinator_keys(vec!["mine".into(), "theirs".into()]);
        let gate = find_coordinator(&bob(), request, 4);
        let (request, response) = served(
            gate,
            ResponseKind::FindCoordinator(FindCoordinatorResponse::default()),
        );
        let RequestKind::FindCoordinator(request) = request else {
            unreachable!()
        };
        assert_eq!(request.coordinator_keys, vec![StrBytes::from("mine")]);
        let ResponseKind::FindCoordinator(response) = response else {
            unreachable!()
        };
        assert_eq!(response.coordinators.len(), 1);
        assert_eq!(response.coordinators[0].key, StrBytes::from("theirs"));
        assert_eq!(response.coordinators[0].error_code, GROUP_DENIED);
    }

    #[test]
    fn offset_fetch_refuses_or_leaves_out_topics_without_describe() {
        use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
        use kafka_protocol::messages::offset_fetch_response::OffsetFetchResponseTopic;
        let topic = |name: &'static str| {
            OffsetFetchRequestTopic::default()
                .with_name(TopicName(name.into()))
                .with_partition_indexes(vec![0, 1])
        };
        // Named topics: `hidden` answers TOPIC_AUTHORIZATION_FAILED without being served.
        let request = OffsetFetchRequest::default()
            .with_group_id(GroupId("mine".into()))
            .with_topics(Some(vec![topic("seen"), topic("hidden")]));
        let (request, response) = served(
            offset_fetch(&bob(), request, 7),
            ResponseKind::OffsetFetch(OffsetFetchResponse::default()),
        );
        let RequestKind::OffsetFetch(request) = request else {
            unreachable!()
        };
        assert_eq!(request.topics.unwrap().len(), 1, "only `seen` is served");
        let ResponseKind::OffsetFetch(response) = response else {
            unreachable!()
        };
        assert_eq!(response.topics[0].name.0, StrBytes::from("hidden"));
        assert!(response.topics[0]
            .partitions
            .iter()
            .all(|p| p.error_code == TOPIC_DENIED && p.committed_offset == -1));
        // Every topic: `hidden` is left out of the answer.
        let request = OffsetFetchRequest::default()
            .with_group_id(GroupId("mine".into()))
            .with_topics(None);
        let answer_topic = |name: &'static str| {
            OffsetFetchResponseTopic::default().with_name(TopicName(name.into()))
        };
        let full = OffsetFetchResponse::default()
            .with_topics(vec![answer_topic("seen"), answer_topic("hidden")]);
        let (_, response) = served(
            offset_fetch(&bob(), request, 7),
            ResponseKind::OffsetFetch(full),
        );
        let ResponseKind::OffsetFetch(response) = response else {
            unreachable!()
        };
        let names: Vec<_> = response
            .topics
            .iter()
            .map(|t| t.name.0.to_string())
            .collect();
        assert_eq!(names, ["seen"]);
        // Another group: refused whole.
        let request = OffsetFetchRequest::default().with_group_id(GroupId("theirs".into()));
        assert!(matches!(offset_fetch(&bob(), request, 7), Gate::Answer(_)));
    }
}

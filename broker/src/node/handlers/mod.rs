//! The Kafka request handlers of a broker, one file per family, behind one dispatcher.

pub mod admin;
pub mod authorize;
pub mod configs;
pub mod data;
pub mod groups;
pub mod metadata;
pub mod security_admin;

use std::sync::Arc;

use kafka_protocol::error::ResponseError as E;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{
    BrokerId as KBroker, FindCoordinatorRequest, FindCoordinatorResponse, InitProducerIdRequest,
    InitProducerIdResponse, ProducerId, RequestKind, ResponseKind,
};
use kafka_protocol::protocol::StrBytes;

use super::shared::Shared;
use crate::protocol::connection::{Refusal, RequestHandler};
use crate::protocol::request::Request;
use crate::security::acl::{Access, Requester};
use crate::security::{sasl, Identity, ListenerInfo};

/// The broker's [`RequestHandler`]: decodes nothing itself, answers everything it serves.
#[derive(Clone)]
pub struct KafkaHandler {
    /// The node's shared state.
    pub shared: Arc<Shared>,
    /// The group coordinator service.
    pub groups: Arc<groups::GroupService>,
    /// The client's address, set per connection: group members' `client_host`.
    pub peer: Option<std::net::SocketAddr>,
    /// The connection's SASL state, fresh per connection: whether it proved to be a broker of
    /// this cluster (and which) or a user.
    pub auth: sasl::ConnectionAuth,
    /// The listener the connection came in on.
    pub listener: Arc<ListenerInfo>,
}

impl RequestHandler for KafkaHandler {
    fn closes_after_answer(&self) -> bool {
        self.auth.failed()
    }

    /// Produce and Fetch, the hot paths, are awaited in place; every other request's future is
    /// boxed, so this future stays the size of the hot paths' instead of the largest admin
    /// request's (3.8 KB before), and each request moves less memory as it is set up.
    async fn handle(&self, request: Request) -> Result<ResponseKind, Refusal> {
        let started = tokio::time::Instant::now();
        let api = request.api_key;
        self.check_authenticated(api)?;
        let version = request.api_version();
        let shared = &self.shared;
        let client_id = request
            .header
            .client_id
            .as_ref()
            .map(|c| c.to_string())
            .unwrap_or_default();
        let access = self.access();
        let (body, patch) = match authorize::gate(&access, request.body, version) {
            authorize::Gate::Serve(body, patch) => (*body, patch),
            authorize::Gate::Answer(response) => return Ok(*response),
        };
        let mut response = match body {
            RequestKind::Metadata(r) => ResponseKind::Metadata(
                Box::pin(metadata::metadata(shared, r, version, &access)).await,
            ),
            RequestKind::Produce(r) => {
                let mut response = data::produce(shared, r, request.append_turn).await;
                // Per-record errors and the message exist from v8 on (KIP-467); kafka-protocol
                // refuses to encode them below.
                if version < 8 {
                    let partitions = response
                        .responses
                        .iter_mut()
                        .flat_map(|t| &mut t.partition_responses);
                    for partition in partitions {
                        partition.record_errors.clear();
                        partition.error_message = None;
                    }
                }
                ResponseKind::Produce(response)
            }
            RequestKind::Fetch(r) => {
                let replica_id = r.replica_id.0;
                if replica_id >= 0 && !sasl::may_act_as_replica(shared, &self.auth, replica_id) {
                    tracing::warn!(peer = ?self.peer, replica_id, "follower fetch from an unauthenticated connection refused");
                    ResponseKind::Fetch(data::fetch_unauthorized(&r))
                } else {
                    ResponseKind::Fetch(data::fetch(shared, r, version, &self.listener.name).await)
                }
            }
            RequestKind::SaslHandshake(r) => ResponseKind::SaslHandshake(sasl::sasl_handshake(
                shared,
                &self.listener,
                &self.auth,
                &r,
                version,
            )),
            RequestKind::SaslAuthenticate(r) => ResponseKind::SaslAuthenticate(
                sasl::sasl_authenticate(shared, &self.auth, &r, version),
            ),
            RequestKind::ListOffsets(r) => {
                let mut response = data::list_offsets(shared, r);
                // leader_epoch exists from v4 on; kafka-protocol refuses to encode it below
                // (librdkafka 2.0.2, e.g. kcat, sends v2).
                if version < 4 {
                    let partitions = response.topics.iter_mut().flat_map(|t| &mut t.partitions);
                    partitions.for_each(|p| p.leader_epoch = -1);
                }
                ResponseKind::ListOffsets(response)
            }
            RequestKind::DescribeCluster(r) => ResponseKind::DescribeCluster(
                metadata::describe_cluster(shared, &r, version, &access),
            ),
            RequestKind::DeleteRecords(r) => {
                ResponseKind::DeleteRecords(Box::pin(data::delete_records(shared, r)).await)
            }
            RequestKind::OffsetForLeaderEpoch(r) => {
                let replica_id = if version >= 3 { r.replica_id.0 } else { -2 };
                if replica_id >= 0 && !sasl::may_act_as_replica(shared, &self.auth, replica_id) {
                    tracing::warn!(peer = ?self.peer, replica_id, "follower OffsetForLeaderEpoch from an unauthenticated connection refused");
                    ResponseKind::OffsetForLeaderEpoch(data::offsets_for_leader_epoch_unauthorized(
                        &r,
                    ))
                } else {
                    ResponseKind::OffsetForLeaderEpoch(data::offsets_for_leader_epoch(
                        shared, r, version,
                    ))
                }
            }
            RequestKind::CreateTopics(r) => {
                ResponseKind::CreateTopics(Box::pin(metadata::create_topics(shared, r)).await)
            }
            RequestKind::DeleteTopics(r) => ResponseKind::DeleteTopics(
                Box::pin(metadata::delete_topics(shared, r, version)).await,
            ),
            RequestKind::DescribeConfigs(r) => {
                ResponseKind::DescribeConfigs(configs::describe_configs(shared, r, version))
            }
            RequestKind::AlterConfigs(r) => {
                ResponseKind::AlterConfigs(Box::pin(configs::alter_configs(shared, r)).await)
            }
            RequestKind::IncrementalAlterConfigs(r) => ResponseKind::IncrementalAlterConfigs(
                Box::pin(configs::incremental_alter_configs(shared, r)).await,
            ),
            RequestKind::CreatePartitions(r) => ResponseKind::CreatePartitions(
                Box::pin(metadata::create_partitions(shared, r)).await,
            ),
            RequestKind::DescribeUserScramCredentials(r) => {
                ResponseKind::DescribeUserScramCredentials(
                    security_admin::describe_user_scram_credentials(shared, &access, &r),
                )
            }
            RequestKind::AlterUserScramCredentials(r) => ResponseKind::AlterUserScramCredentials(
                Box::pin(security_admin::alter_user_scram_credentials(
                    shared, &access, r,
                ))
                .await,
            ),
            RequestKind::CreateAcls(r) => ResponseKind::CreateAcls(
                Box::pin(security_admin::create_acls(shared, &access, r)).await,
            ),
            RequestKind::DescribeAcls(r) => {
                ResponseKind::DescribeAcls(security_admin::describe_acls(shared, &access, &r))
            }
            RequestKind::DeleteAcls(r) => ResponseKind::DeleteAcls(
                Box::pin(security_admin::delete_acls(shared, &access, r)).await,
            ),
            RequestKind::ElectLeaders(r) => {
                ResponseKind::ElectLeaders(Box::pin(admin::elect_leaders(shared, r, version)).await)
            }
            RequestKind::DescribeLogDirs(r) => {
                ResponseKind::DescribeLogDirs(admin::describe_log_dirs(shared, &r))
            }
            RequestKind::DescribeProducers(r) => ResponseKind::DescribeProducers(
                Box::pin(admin::describe_producers(shared, r)).await,
            ),
            RequestKind::InitProducerId(r) => {
                ResponseKind::InitProducerId(self.init_producer_id(r))
            }
            RequestKind::FindCoordinator(r) => ResponseKind::FindCoordinator(
                Box::pin(self.find_coordinator(r, version, &access)).await,
            ),
            RequestKind::DescribeGroups(r) if version >= 3 && r.include_authorized_operations => {
                // KIP-430: each described group carries the operations the principal may
                // perform on it.
                let body = RequestKind::DescribeGroups(r);
                let mut response =
                    Box::pin(
                        self.groups
                            .handle(body, version, &client_id, &self.client_host()),
                    )
                    .await?;
                if let ResponseKind::DescribeGroups(described) = &mut response {
                    for group in described.groups.iter_mut().filter(|g| g.error_code == 0) {
                        group.authorized_operations = access.authorized_operations(
                            crate::security::acl::resource::GROUP,
                            &group.group_id.0,
                        );
                    }
                }
                response
            }
            body => {
                Box::pin(
                    self.groups
                        .handle(body, version, &client_id, &self.client_host()),
                )
                .await?
            }
        };
        if let Some(patch) = patch {
            patch(&mut response);
        }
        shared
            .metrics
            .observe_latency(&format!("{api:?}"), started.elapsed());
        shared
            .metrics
            .count(&format!("rill_requests_total{{api=\"{api:?}\"}}"), 1);
        Ok(response)
    }
}

impl KafkaHandler {
    /// The client's host as Kafka reports it in groups: Java's `InetAddress.toString`,
    /// "/127.0.0.1".
    fn client_host(&self) -> String {
        self.peer
            .map(|peer| format!("/{}", peer.ip()))
            .unwrap_or_default()
    }

    /// On a SASL listener only SaslHandshake and SaslAuthenticate (and ApiVersions, answered by
    /// the connection) are served before the client authenticated, and none after its session
    /// expired (KIP-368): Kafka closes such a connection, and so does the refusal.
    fn check_authenticated(&self, api: kafka_protocol::messages::ApiKey) -> Result<(), Refusal> {
        use kafka_protocol::messages::ApiKey;
        if matches!(api, ApiKey::SaslHandshake | ApiKey::SaslAuthenticate) {
            return Ok(());
        }
        let refuse = |why: &str| {
            tracing::warn!(peer = ?self.peer, ?api, listener = %self.listener.name, "{why}");
            Err(Refusal::Invalid {
                reason: format!("{api:?} {why}"),
            })
        };
        if self.auth.failed() {
            return refuse("after a failed authentication");
        }
        if self.listener.protocol.uses_sasl() && self.auth.identity().is_none() {
            return refuse("before SASL authentication");
        }
        if self.auth.expired(tokio::time::Instant::now()) {
            return refuse("after the SASL session expired (connections.max.reauth.ms)");
        }
        Ok(())
    }

    /// Who this connection is, for the authorizer.
    pub fn identity(&self) -> Identity {
        self.auth.identity().unwrap_or(Identity::Anonymous)
    }

    /// This request's security view: listener, principal, authorizer.
    pub fn access(&self) -> Access {
        let security = &self.shared.config.security;
        let identity = self.identity();
        let principal = identity.principal();
        let is_super =
            matches!(identity, Identity::Broker(_)) || security.super_users.contains(&principal);
        Access {
            listener: self.listener.name.clone(),
            requester: Requester {
                principal,
                host: self.peer.map(|p| p.ip().to_string()).unwrap_or_default(),
                is_super,
            },
            enabled: security.authorizer_enabled(&self.shared.config.listeners),
            acls: self.shared.image(),
            allow_if_no_acl: security.allow_everyone_if_no_acl_found,
        }
    }

    /// InitProducerId for idempotent producers (no transactions: a transactional id is refused).
    fn init_producer_id(&self, request: InitProducerIdRequest) -> InitProducerIdResponse {
        let base = InitProducerIdResponse::default()
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1);
        if request.transactional_id.is_some() {
            return base.with_error_code(E::TransactionalIdAuthorizationFailed.code());
        }
        match self.groups.allocate_producer_id() {
            Some((id, epoch)) => base
                .with_producer_id(ProducerId(id))
                .with_producer_epoch(epoch),
            None => base.with_error_code(E::CoordinatorNotAvailable.code()),
        }
    }

    /// FindCoordinator: a group's coordinator is the leader of its `__consumer_offsets` partition.
    async fn find_coordinator(
        &self,
        request: FindCoordinatorRequest,
        version: i16,
        access: &Access,
    ) -> FindCoordinatorResponse {
        let keys: Vec<StrBytes> = if version >= 4 {
            request.coordinator_keys.clone()
        } else {
            vec![request.key.clone()]
        };
        let mut coordinators = Vec::new();
        for key in keys {
            let found = match request.key_type {
                0 => self.groups.coordinator_of(&key, &access.listener).await,
                // No transaction coordinator yet: a non-retriable error, so a transactional
                // producer fails at once instead of retrying a retriable one for ever.
                1 => Err(E::TransactionalIdAuthorizationFailed.code()),
                _ => Err(E::InvalidRequest.code()),
            };
            let message = match request.key_type {
                0 => None,
                1 => Some("rill has no transactions yet: no transaction coordinator"),
                _ => Some("unknown coordinator key type"),
            };
            let coordinator = match found {
                Ok((broker, host, port)) => Coordinator::default()
                    .with_key(key)
                    .with_node_id(KBroker(broker))
                    .with_host(StrBytes::from_string(host))
                    .with_port(port),
                Err(code) => Coordinator::default()
                    .with_key(key)
                    .with_node_id(KBroker(-1))
                    .with_host(StrBytes::from_static_str(""))
                    .with_port(-1)
                    .with_error_code(code)
                    .with_error_message(message.map(StrBytes::from_static_str)),
            };
            coordinators.push(coordinator);
        }
        if version >= 4 {
            return FindCoordinatorResponse::default().with_coordinators(coordinators);
        }
        let one = coordinators.pop().expect("one key before v4");
        FindCoordinatorResponse::default()
            .with_error_code(one.error_code)
            .with_error_message(one.error_message)
            .with_node_id(one.node_id)
            .with_host(one.host)
            .with_port(one.port)
    }
}

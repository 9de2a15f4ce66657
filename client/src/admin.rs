//! Topic administration: create, delete, describe.

use std::sync::Arc;

use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::{ApiKey, CreateTopicsRequest, DeleteTopicsRequest, RequestKind};
use kafka_protocol::protocol::StrBytes;

use crate::config::ClientConfig;
use crate::error::{code, ClientError, Result};
use crate::expect_response;
use crate::metadata::{ClusterMetadata, MetadataCache};
use crate::pool::ConnectionPool;

/// NOT_CONTROLLER: CreateTopics/DeleteTopics reached a broker that is not the controller.
const NOT_CONTROLLER: i16 = 41;

/// Most attempts of one admin operation (controller moves, connection failures).
pub const ADMIN_ATTEMPTS_MAX: u32 = 5;

/// An admin client.
#[derive(Debug, Clone)]
pub struct Admin {
    /// Connections (shared by clones).
    pool: Arc<ConnectionPool>,
    /// Cluster map, to find the controller.
    metadata: Arc<MetadataCache>,
}

impl Admin {
    /// An admin client; connects lazily.
    pub fn new(config: ClientConfig) -> Result<Admin> {
        config.validate()?;
        Ok(Admin {
            pool: Arc::new(ConnectionPool::new(config)),
            metadata: Arc::new(MetadataCache::new()),
        })
    }

    /// Creates `name`. An existing topic is [`ClientError::TopicAlreadyExists`].
    pub async fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        replication_factor: i16,
        configs: &[(String, String)],
    ) -> Result<()> {
        assert!(!name.is_empty(), "topic names are not empty");
        if partitions <= 0 || replication_factor <= 0 {
            return Err(ClientError::Config(
                "partitions and replication factor must be > 0".into(),
            ));
        }
        let timeout_ms = self.pool.config().request_timeout_ms;
        let topic = CreatableTopic::default()
            .with_name(StrBytes::from_string(name.to_string()).into())
            .with_num_partitions(partitions)
            .with_replication_factor(replication_factor)
            .with_configs(
                configs
                    .iter()
                    .map(|(k, v)| {
                        CreatableTopicConfig::default()
                            .with_name(StrBytes::from_string(k.clone()))
                            .with_value(Some(StrBytes::from_string(v.clone())))
                    })
                    .collect(),
            );
        let build = |_version: i16| {
            let request = CreateTopicsRequest::default()
                .with_topics(vec![topic.clone()])
                .with_timeout_ms(i32::try_from(timeout_ms).unwrap_or(i32::MAX));
            Ok(RequestKind::CreateTopics(request))
        };
        let (response, uncertain) = self.call_controller(ApiKey::CreateTopics, build).await?;
        let response = expect_response!(response, CreateTopics)?;
        let result = response
            .topics
            .iter()
            .find(|t| t.name.as_str() == name)
            .ok_or_else(|| ClientError::Protocol(format!("CreateTopics answer lacks {name}")))?;
        match result.error_code {
            0 => Ok(()),
            // After an attempt that may have created it, "already exists" proves nothing.
            code::TOPIC_ALREADY_EXISTS => Err(mark(
                ClientError::TopicAlreadyExists {
                    topic: name.to_string(),
                },
                uncertain,
            )),
            other => Err(mark(ClientError::kafka("CreateTopics", other), uncertain)),
        }
    }

    /// Deletes `name`.
    pub async fn delete_topic(&self, name: &str) -> Result<()> {
        assert!(!name.is_empty(), "topic names are not empty");
        let timeout_ms = self.pool.config().request_timeout_ms;
        let build = |_version: i16| {
            let request = DeleteTopicsRequest::default()
                .with_topic_names(vec![StrBytes::from_string(name.to_string()).into()])
                .with_timeout_ms(i32::try_from(timeout_ms).unwrap_or(i32::MAX));
            Ok(RequestKind::DeleteTopics(request))
        };
        let (response, uncertain) = self.call_controller(ApiKey::DeleteTopics, build).await?;
        let response = expect_response!(response, DeleteTopics)?;
        let result = response
            .responses
            .iter()
            .find(|t| t.name.as_ref().is_some_and(|n| n.as_str() == name))
            .ok_or_else(|| ClientError::Protocol(format!("DeleteTopics answer lacks {name}")))?;
        match result.error_code {
            0 => Ok(()),
            code::UNKNOWN_TOPIC_OR_PARTITION => Err(mark(
                ClientError::UnknownTopic {
                    topic: name.to_string(),
                },
                uncertain,
            )),
            other => Err(mark(ClientError::kafka("DeleteTopics", other), uncertain)),
        }
    }

    /// Fresh metadata for `topics` (`None` = all topics).
    pub async fn metadata(&self, topics: Option<&[String]>) -> Result<ClusterMetadata> {
        self.metadata.refresh(&self.pool, topics).await
    }

    /// Sends to the controller (any broker if unknown), retrying when the controller moved or
    /// could not be reached. Retries only happen after definite failures, and a retry after
    /// an indeterminate one reports an indeterminate outcome.
    async fn call_controller(
        &self,
        api_key: ApiKey,
        build: impl Fn(i16) -> Result<RequestKind>,
    ) -> Result<(kafka_protocol::messages::ResponseKind, bool)> {
        let timeout_ms = self.pool.config().request_timeout_ms;
        let mut uncertain = false;
        let mut last_error = ClientError::Closed;
        for attempt in 0..ADMIN_ATTEMPTS_MAX {
            if attempt > 0 {
                backoff(self.pool.config().retry_backoff_ms).await;
            }
            let metadata = match self.metadata.refresh(&self.pool, None).await {
                Ok(metadata) => metadata,
                Err(error) => {
                    last_error = error;
                    continue;
                }
            };
            let addr = controller_addr(&metadata)
                .unwrap_or_else(|| self.pool.config().bootstrap[0].clone());
            let outcome = self.pool.call(&addr, api_key, timeout_ms, &build).await;
            match outcome {
                Ok(response) if !answers_not_controller(&response) => {
                    return Ok((response, uncertain));
                }
                Ok(_) => {
                    last_error =
                        ClientError::kafka(crate::versions::api_name(api_key), NOT_CONTROLLER)
                }
                Err(error) => {
                    uncertain |= error.is_indeterminate();
                    if !error.is_retriable() {
                        return Err(mark(error, uncertain));
                    }
                    last_error = error;
                }
            }
        }
        Err(mark(last_error, uncertain))
    }
}

/// Classifies an admin failure: indeterminate if any attempt of the operation's own request
/// was; otherwise an indeterminate error came from a preparatory step and nothing was sent.
fn mark(error: ClientError, uncertain: bool) -> ClientError {
    if uncertain {
        error.after_indeterminate_attempt()
    } else {
        error.not_sent()
    }
}

fn controller_addr(metadata: &ClusterMetadata) -> Option<String> {
    let controller = metadata.controller?;
    metadata.brokers.get(&controller).cloned()
}

fn answers_not_controller(response: &kafka_protocol::messages::ResponseKind) -> bool {
    use kafka_protocol::messages::ResponseKind;
    match response {
        ResponseKind::CreateTopics(r) => r.topics.iter().any(|t| t.error_code == NOT_CONTROLLER),
        ResponseKind::DeleteTopics(r) => r.responses.iter().any(|t| t.error_code == NOT_CONTROLLER),
        _ => false,
    }
}

/// Sleeps for the retry backoff (virtual time under madsim).
pub(crate) async fn backoff(ms: u64) {
    tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
}

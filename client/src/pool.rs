//! Connections shared by one client role, one per broker address. A request holds its
//! connection for its whole round trip (one in flight per connection); requests to different
//! brokers proceed concurrently.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use kafka_protocol::messages::{ApiKey, RequestKind, ResponseKind};

use crate::config::ClientConfig;
use crate::connection::Connection;
use crate::error::Result;

/// Most distinct broker addresses one pool connects to; a cluster is small.
pub const POOL_CONNECTIONS_MAX: usize = 256;

type Slot = Arc<tokio::sync::Mutex<Option<Connection>>>;

/// Lazily dialled connections keyed by "host:port".
#[derive(Debug)]
pub struct ConnectionPool {
    /// Client id and timeouts for new connections.
    config: ClientConfig,
    /// One slot per address; `None` or a closed connection is redialled on next use.
    slots: Mutex<BTreeMap<String, Slot>>,
}

impl ConnectionPool {
    /// An empty pool.
    pub fn new(config: ClientConfig) -> Self {
        assert!(config.request_timeout_ms > 0, "requests need a timeout");
        ConnectionPool {
            config,
            slots: Mutex::new(BTreeMap::new()),
        }
    }

    /// The configuration connections are made with.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    fn slot(&self, addr: &str) -> Slot {
        let mut slots = self
            .slots
            .lock()
            .expect("pool lock is never poisoned: no panics inside");
        if !slots.contains_key(addr) && slots.len() >= POOL_CONNECTIONS_MAX {
            // Forget idle addresses of departed brokers rather than grow without bound.
            slots.retain(|_, slot| Arc::strong_count(slot) > 1);
        }
        let slot = slots.entry(addr.to_string()).or_default().clone();
        assert!(slots.len() <= POOL_CONNECTIONS_MAX + 1, "pool bounded");
        slot
    }

    /// Builds the request for the negotiated version, sends it to `addr` and waits for the reply.
    pub async fn call(
        &self,
        addr: &str,
        api_key: ApiKey,
        timeout_ms: u64,
        build: impl FnOnce(i16) -> Result<RequestKind>,
    ) -> Result<ResponseKind> {
        let slot = self.slot(addr);
        let mut guard = slot.lock().await;
        let connection = self.ensure_connected(addr, &mut guard).await?;
        connection.call(api_key, timeout_ms, build).await
    }

    /// Sends a request that gets no reply (Produce with acks=0).
    pub async fn send_only(
        &self,
        addr: &str,
        api_key: ApiKey,
        build: impl FnOnce(i16) -> Result<RequestKind>,
    ) -> Result<()> {
        let slot = self.slot(addr);
        let mut guard = slot.lock().await;
        let connection = self.ensure_connected(addr, &mut guard).await?;
        connection.send_only(api_key, build).await
    }

    async fn ensure_connected<'a>(
        &self,
        addr: &str,
        slot: &'a mut Option<Connection>,
    ) -> Result<&'a mut Connection> {
        let usable = slot.as_ref().is_some_and(Connection::is_usable);
        if !usable {
            *slot = None;
            let connection = Connection::open(addr, &self.config).await?;
            *slot = Some(connection);
        }
        let connection = slot.as_mut().expect("just connected");
        assert!(!connection.is_closed(), "handing out an open connection");
        Ok(connection)
    }

    /// Drops every connection (close of a producer or consumer).
    pub fn close_all(&self) {
        let mut slots = self
            .slots
            .lock()
            .expect("pool lock is never poisoned: no panics inside");
        slots.clear();
    }
}

/// Unwraps the expected response variant; another variant is a protocol error.
#[macro_export]
macro_rules! expect_response {
    ($response:expr, $variant:ident) => {
        match $response {
            kafka_protocol::messages::ResponseKind::$variant(inner) => Ok(inner),
            _ => Err($crate::error::ClientError::Protocol(format!(
                "expected a {} response",
                stringify!($variant)
            ))),
        }
    };
}

//! The broker's side of the controller: register, heartbeat, follow the metadata.
//!
//! Two tasks, each with its own [`ControllerClient`] clone so a parked metadata long poll never
//! delays a heartbeat:
//! - the *session* task registers (retrying until `Registered`, one random incarnation per
//!   process), then heartbeats every interval; a controller that no longer knows this
//!   incarnation (`UnknownBroker`, `StaleBrokerIncarnation`) gets a fresh registration;
//! - the *metadata* task long-polls `FetchMetadata` after its image's applied index and
//!   publishes each new image on a `watch` channel.

use super::client::ControllerClient;
use super::ControlError;
use crate::runtime;
use crate::watch;
use controller::{ControllerError, Listener, MetadataImage, Reply, Request};
use std::sync::Arc;
use std::time::Duration;
use wire::BrokerId;

/// Timing of the broker's conversation with the controller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LifecycleConfig {
    /// Between heartbeats (`broker.heartbeat.interval.ms`); well below the session timeout.
    pub heartbeat_interval_ms: u64,
    /// How long a metadata fetch may park on the controller waiting for news.
    pub metadata_wait_ms: u64,
    /// Without a successful heartbeat for this long the broker counts itself fenced
    /// (`broker.session.timeout.ms`, the controller's `broker_session_timeout_ms`).
    pub session_timeout_ms: u64,
    /// Pause after a failed registration or fetch before the next try.
    pub retry_backoff_ms: u64,
    /// `broker.rack`, registered with the controller (KIP-392); `None`: no rack.
    pub rack: Option<String>,
}

impl Default for LifecycleConfig {
    fn default() -> Self {
        LifecycleConfig {
            heartbeat_interval_ms: 2_000,
            metadata_wait_ms: 5_000,
            session_timeout_ms: 9_000,
            retry_backoff_ms: 200,
            rack: None,
        }
    }
}

/// The session as the broker sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionState {
    /// The controller committed our registration (this incarnation).
    pub registered: bool,
    /// Not allowed to lead or join ISRs: before the first unfenced heartbeat answer, or after
    /// a session timeout without a successful heartbeat.
    pub fenced: bool,
    /// Heartbeats the controller accepted.
    pub heartbeats_accepted: u64,
    /// Registrations committed (more than one: the controller forgot us and we re-registered).
    pub registrations: u64,
}

/// A running broker lifecycle.
#[derive(Debug)]
pub struct BrokerLifecycle {
    /// This broker.
    broker_id: BrokerId,
    /// Random per process start.
    incarnation: u64,
    /// The latest metadata image.
    image: watch::Receiver<Arc<MetadataImage>>,
    /// The latest session state.
    session: watch::Receiver<SessionState>,
    /// Set to true to stop both tasks.
    shutdown: watch::Sender<bool>,
}

impl BrokerLifecycle {
    /// Starts the session and metadata tasks (inside a runtime).
    pub fn start(
        client: ControllerClient,
        broker_id: BrokerId,
        listeners: Vec<Listener>,
        clean_shutdown: bool,
        config: LifecycleConfig,
    ) -> BrokerLifecycle {
        assert!(config.heartbeat_interval_ms > 0, "heartbeats need a period");
        assert!(
            config.heartbeat_interval_ms < config.session_timeout_ms,
            "several heartbeats per session"
        );
        let incarnation = runtime::random_u64();
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let (image_tx, image_rx) = watch::channel(Arc::new(MetadataImage::new()));
        let initial = SessionState {
            registered: false,
            fenced: true,
            heartbeats_accepted: 0,
            registrations: 0,
        };
        let (session_tx, session_rx) = watch::channel(initial);
        let session = Session {
            client: client.clone(),
            broker_id,
            incarnation,
            listeners,
            clean_shutdown,
            config: config.clone(),
            state: session_tx,
            shutdown: shutdown_rx.clone(),
        };
        tokio::spawn(session.run());
        tokio::spawn(follow_metadata(client, config, image_tx, shutdown_rx));
        BrokerLifecycle {
            broker_id,
            incarnation,
            image: image_rx,
            session: session_rx,
            shutdown: shutdown_tx,
        }
    }

    /// This broker's id.
    pub fn broker_id(&self) -> BrokerId {
        self.broker_id
    }

    /// This process's incarnation id.
    pub fn incarnation(&self) -> u64 {
        self.incarnation
    }

    /// The metadata image, updated as the controller commits (watch for changes).
    pub fn image(&self) -> watch::Receiver<Arc<MetadataImage>> {
        self.image.clone()
    }

    /// Whether the broker may not lead or join ISRs right now.
    pub fn fenced(&self) -> bool {
        self.session.borrow().fenced
    }

    /// The session state (watch for changes).
    pub fn session(&self) -> watch::Receiver<SessionState> {
        self.session.clone()
    }

    /// Stops heartbeating and fetching. The controller fences the broker after its session
    /// timeout.
    pub fn shutdown(&self) {
        let _already = self.shutdown.send_replace(true);
    }
}

impl Drop for BrokerLifecycle {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Sleeps `ms`; false if shutdown came first.
async fn pause(ms: u64, shutdown: &mut watch::Receiver<bool>) -> bool {
    if *shutdown.borrow() {
        return false;
    }
    tokio::select! {
        // Deterministic branch order: tokio otherwise draws it from a process-wide RNG, which
        // makes a simulated seed run differently the second time in one process.
        biased;
        _ = shutdown.changed() => false,
        () = tokio::time::sleep(Duration::from_millis(ms)) => true,
    }
}

/// The registration and heartbeat task.
struct Session {
    /// Its own client (heartbeats never wait behind a long poll).
    client: ControllerClient,
    /// This broker.
    broker_id: BrokerId,
    /// This process's incarnation.
    incarnation: u64,
    /// Registered endpoints.
    listeners: Vec<Listener>,
    /// Whether the previous incarnation stopped cleanly.
    clean_shutdown: bool,
    /// Timing.
    config: LifecycleConfig,
    /// Where the session state is published.
    state: watch::Sender<SessionState>,
    /// Stop signal.
    shutdown: watch::Receiver<bool>,
}

impl Session {
    async fn run(mut self) {
        let mut last_ok_ms = runtime::monotonic_ms();
        loop {
            let registered = self.state.borrow().registered;
            let delay_ms = if registered {
                self.heartbeat(&mut last_ok_ms).await;
                self.config.heartbeat_interval_ms
            } else if self.register().await {
                0 // Heartbeat at once: it unfences us.
            } else {
                self.config.retry_backoff_ms
            };
            if !pause(delay_ms, &mut self.shutdown).await {
                return;
            }
        }
    }

    async fn register(&mut self) -> bool {
        let request = Request::RegisterBroker {
            broker: self.broker_id,
            incarnation: self.incarnation,
            listeners: self.listeners.clone(),
            rack: self.config.rack.clone(),
            clean_shutdown: self.clean_shutdown,
        };
        match self.client.request(request).await {
            Ok(Reply::Registered) => {
                self.state.send_modify(|state| {
                    state.registered = true;
                    state.registrations += 1;
                });
                tracing::info!(broker = %self.broker_id, "registered with the controller");
                true
            }
            Ok(other) => {
                tracing::warn!(?other, "unexpected answer to a registration");
                false
            }
            Err(error) => {
                tracing::debug!(broker = %self.broker_id, %error, "registration failed");
                false
            }
        }
    }

    async fn heartbeat(&mut self, last_ok_ms: &mut u64) {
        if runtime::buggify("broker.heartbeat.skip") {
            // BUGGIFY: a heartbeat is lost (the session may expire and fence this broker).
            return;
        }
        if runtime::buggify("broker.heartbeat.delay") {
            // BUGGIFY: a delayed heartbeat (a stalled broker process).
            let delay = runtime::jitter_ms(1, 1_500);
            tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
        }
        let request = Request::BrokerHeartbeat {
            broker: self.broker_id,
            incarnation: self.incarnation,
        };
        let outcome = self.client.request(request).await;
        let now_ms = runtime::monotonic_ms();
        match outcome {
            Ok(Reply::Heartbeat { fenced }) => {
                *last_ok_ms = now_ms;
                self.state.send_modify(|state| {
                    state.fenced = fenced;
                    state.heartbeats_accepted += 1;
                });
            }
            Err(ControlError::Refused(
                ControllerError::UnknownBroker(_) | ControllerError::StaleBrokerIncarnation(_),
            )) => {
                tracing::warn!(broker = %self.broker_id, "controller forgot us: re-registering");
                self.state.send_modify(|state| {
                    state.registered = false;
                    state.fenced = true;
                });
            }
            other => {
                tracing::debug!(broker = %self.broker_id, ?other, "heartbeat failed");
                if now_ms.saturating_sub(*last_ok_ms) > self.config.session_timeout_ms {
                    self.state
                        .send_if_modified(|state| !std::mem::replace(&mut state.fenced, true));
                }
            }
        }
    }
}

/// The metadata task: long-polls the controller and publishes each newer image.
async fn follow_metadata(
    client: ControllerClient,
    config: LifecycleConfig,
    image_tx: watch::Sender<Arc<MetadataImage>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut image = MetadataImage::new();
    loop {
        let request = Request::FetchMetadata {
            after_index: image.applied_index(),
        };
        let fetch = tokio::select! {
            // Deterministic branch order: tokio otherwise draws it from a process-wide RNG, which
            // makes a simulated seed run differently the second time in one process.
            biased;
            _ = shutdown.changed() => return,
            fetch = client.request_waiting(request, config.metadata_wait_ms) => fetch,
        };
        let before = image.applied_index();
        let delay_ms = match fetch {
            // BUGGIFY: this broker applies metadata late (a slow metadata listener).
            Ok(Reply::Metadata(_)) if runtime::buggify("broker.metadata.late") => {
                runtime::jitter_ms(1, 500)
            }
            Ok(Reply::Metadata(fetch)) => {
                fetch.apply_to(&mut image);
                0
            }
            Ok(other) => {
                tracing::warn!(?other, "unexpected answer to a metadata fetch");
                config.retry_backoff_ms
            }
            Err(error) => {
                tracing::debug!(%error, "metadata fetch failed");
                config.retry_backoff_ms
            }
        };
        assert!(
            image.applied_index() >= before,
            "images never move backwards"
        );
        if image.applied_index() > before {
            image_tx.send_replace(Arc::new(image.clone()));
        }
        if !pause(delay_ms, &mut shutdown).await {
            return;
        }
    }
}

//! A single-voter controller driven synchronously: persists complete at once, time is explicit.
//! Handler tests use it to assert the new state and the effects of one request at a time.
#![allow(dead_code, clippy::unwrap_used)]

use controller::{
    Controller, ControllerConfig, ControllerError, Effect, Listener, Reply, Request, TopicConfig,
};
use std::collections::BTreeMap;
use wire::{BrokerId, TopicPartition};

/// Tick interval of the solo driver.
pub const TICK_MS: u64 = 100;

/// One controller node with its durable state and the effects it emitted.
pub struct Solo {
    /// The core.
    pub ctl: Controller,
    /// What the driver made durable.
    pub durable: controller::RaftStore,
    /// Virtual time.
    pub now_ms: u64,
    /// Every effect seen, in order (sends, persists, replies...).
    pub log: Vec<Effect>,
    /// Replies by request id.
    pub replies: BTreeMap<u64, Result<Reply, ControllerError>>,
    /// The next request id.
    request_id_next: u64,
}

impl Solo {
    /// A single-voter quorum that has elected itself and become active.
    pub fn new(adjust: impl FnOnce(&mut ControllerConfig)) -> Solo {
        let mut config = ControllerConfig::new(1, vec![1]);
        adjust(&mut config);
        let durable = controller::RaftStore::bootstrap(&[1]);
        let ctl = Controller::new(config, durable.clone(), 0);
        let mut solo = Solo {
            ctl,
            durable,
            now_ms: 0,
            log: Vec::new(),
            replies: BTreeMap::new(),
            request_id_next: 1,
        };
        for _ in 0..100 {
            if solo.ctl.is_active() {
                break;
            }
            solo.tick();
        }
        assert!(solo.ctl.is_active(), "a single voter elects itself");
        solo.log.clear();
        solo
    }

    /// Restarts the node from its durable state (volatile state is lost).
    pub fn restart(&mut self, config: ControllerConfig) {
        self.ctl = Controller::new(config, self.durable.clone(), self.now_ms);
        self.run();
        for _ in 0..100 {
            if self.ctl.is_active() {
                break;
            }
            self.tick();
        }
        assert!(self.ctl.is_active());
    }

    /// Carries out effects until none are left, completing persists at once.
    pub fn run(&mut self) {
        loop {
            let effects = self.ctl.take_effects();
            if effects.is_empty() {
                break;
            }
            for effect in effects {
                match &effect {
                    Effect::Persist(batch) => {
                        self.durable.apply_persist(batch);
                        self.ctl.persist_complete(batch.id);
                    }
                    Effect::SaveSnapshot(snapshot) => self.durable.compact_to(snapshot.clone()),
                    Effect::Rejoined => self.durable.set_rejoining(false),
                    Effect::Reply { request_id, reply } => {
                        assert!(self.replies.insert(*request_id, reply.clone()).is_none());
                    }
                    Effect::Send(_) | Effect::MetadataChanged { .. } => {}
                }
                self.log.push(effect);
            }
        }
        self.ctl.check_invariants().unwrap();
    }

    /// One tick.
    pub fn tick(&mut self) {
        self.now_ms += TICK_MS;
        self.ctl.tick(self.now_ms);
        self.run();
    }

    /// Advances time by `ms` in ticks.
    pub fn advance(&mut self, ms: u64) {
        for _ in 0..ms / TICK_MS {
            self.tick();
        }
    }

    /// Sends a request and returns its reply (every proposal commits at once on one voter).
    pub fn request(&mut self, request: Request) -> Result<Reply, ControllerError> {
        let id = self.request_id_next;
        self.request_id_next += 1;
        self.ctl.request(id, request, self.now_ms);
        self.run();
        self.replies
            .remove(&id)
            .expect("a single voter answers at once")
    }

    /// Registers `broker` with incarnation `incarnation` and heartbeats it unfenced.
    pub fn add_broker(&mut self, broker: i32, incarnation: u64) {
        let reply = self.request(register(broker, incarnation));
        assert_eq!(reply, Ok(Reply::Registered));
        let hb = Request::BrokerHeartbeat {
            broker: BrokerId(broker),
            incarnation,
        };
        assert_eq!(
            self.request(hb.clone()),
            Ok(Reply::Heartbeat { fenced: true })
        );
        assert_eq!(self.request(hb), Ok(Reply::Heartbeat { fenced: false }));
    }

    /// Heartbeats every listed broker (keeps their sessions alive).
    pub fn heartbeat(&mut self, brokers: &[(i32, u64)]) {
        for (broker, incarnation) in brokers {
            let hb = Request::BrokerHeartbeat {
                broker: BrokerId(*broker),
                incarnation: *incarnation,
            };
            assert!(self.request(hb).is_ok());
        }
    }

    /// Creates a topic and returns its assignments.
    pub fn create_topic(
        &mut self,
        name: &str,
        partitions: i32,
        rf: i32,
        config: TopicConfig,
    ) -> Vec<Vec<BrokerId>> {
        let request = Request::CreateTopic {
            name: name.into(),
            partitions,
            replication_factor: rf,
            config,
            assignments: Vec::new(),
            validate_only: false,
        };
        match self.request(request) {
            Ok(Reply::TopicCreated { assignments, .. }) => assignments,
            other => panic!("create {name}: {other:?}"),
        }
    }
}

/// Brokers 1..=3 registered and unfenced, topic `t` with one partition of three replicas (clean
/// elections, `min_isr`): the usual stage of a partition handler test.
pub fn three_replicas(min_isr: i32) -> (Solo, TopicPartition) {
    let mut solo = Solo::new(|_| {});
    for b in 1..=3 {
        solo.add_broker(b, b as u64);
    }
    solo.create_topic(
        "t",
        1,
        3,
        TopicConfig {
            unclean_leader_election: false,
            min_insync_replicas: min_isr,
            overrides: Default::default(),
        },
    );
    (solo, TopicPartition::new("t", 0))
}

/// A registration request with one listener.
pub fn register(broker: i32, incarnation: u64) -> Request {
    Request::RegisterBroker {
        broker: BrokerId(broker),
        incarnation,
        listeners: vec![Listener {
            name: "PLAINTEXT".into(),
            host: format!("b{broker}"),
            port: 9092,
        }],
        rack: None,
        clean_shutdown: true,
    }
}

/// Broker ids as `BrokerId`s.
pub fn ids(brokers: &[i32]) -> Vec<BrokerId> {
    brokers.iter().map(|b| BrokerId(*b)).collect()
}

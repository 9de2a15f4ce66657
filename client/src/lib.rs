//! client: rill's Rust Kafka client (producer, consumer, admin) over the madsim-swappable tokio
//! API, driven by the simulator's workloads and the real-cluster tests.
//!
//! The client arrives with the broker issue; today the crate holds no behaviour.

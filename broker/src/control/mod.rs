//! The controller quorum driver and the broker lifecycle (registration, heartbeats, metadata).

//! The client's only wall-clock read, isolated so the simulator (madsim virtualises
//! `SystemTime`) and reviewers can find it. Durations use `tokio::time`, never this.

/// Milliseconds since the Unix epoch, used only as the `timestamp` of produced records.
///
/// A clock before 1970 yields 0 rather than a panic: a record timestamp is informational.
pub fn wall_clock_ms() -> i64 {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let ms = i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX);
    assert!(ms >= 0, "a duration is never negative");
    ms
}

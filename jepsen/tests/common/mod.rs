//! Helpers shared by the integration tests: compact hand-made histories.

#![allow(dead_code)]

use jepsen::history::History;

/// Builds a history from `(type, process, f, value-json)` events; index and time are the
/// event's position.
pub fn hist(events: &[(&str, u64, &str, &str)]) -> History {
    History::parse_str(&jsonl(events)).expect("hand-made history is well formed")
}

/// The JSON Lines text of `(type, process, f, value-json)` events.
pub fn jsonl(events: &[(&str, u64, &str, &str)]) -> String {
    events
        .iter()
        .enumerate()
        .map(|(i, (t, p, f, v))| {
            format!(
                "{{\"index\":{i},\"type\":\"{t}\",\"process\":{p},\"time\":{},\"f\":\"{f}\",\"value\":{v}}}\n",
                i * 10
            )
        })
        .collect()
}

/// `["send", key, value]` invoke micro-op list for one send.
pub fn send(key: &str, value: i64) -> String {
    format!("[[\"send\",\"{key}\",{value}]]")
}

/// Ok form of one send.
pub fn sent(key: &str, offset: u64, value: i64) -> String {
    format!("[[\"send\",\"{key}\",[{offset},{value}]]]")
}

/// `[["poll"]]`.
pub const POLL: &str = "[[\"poll\"]]";

/// Ok poll of one key: pairs `(offset, value)`.
pub fn polled(key: &str, pairs: &[(u64, i64)]) -> String {
    let pairs: Vec<String> = pairs.iter().map(|(o, v)| format!("[{o},{v}]")).collect();
    format!("[[\"poll\",{{\"{key}\":[{}]}}]]", pairs.join(","))
}

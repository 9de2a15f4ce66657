//! The crate's error type: one `thiserror` enum, as the house style asks.

/// Why a history could not be read or recorded. Each variant names the line (1-based, as an editor
/// shows it) so that a user can jump straight to the bad event.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum HistoryError {
    /// The line is not a JSON object at all.
    #[error("line {line}: malformed JSON: {reason}")]
    MalformedJson {
        /// 1-based line number in the input.
        line: u64,
        /// serde_json's description of what is wrong.
        reason: String,
    },
    /// The line is JSON but an event field is missing, has the wrong type or an unknown value.
    #[error("line {line}: {reason}")]
    BadEvent {
        /// 1-based line number in the input (0 for events recorded in memory).
        line: u64,
        /// What is wrong, in words.
        reason: String,
    },
    /// The events contradict each other (a completion without its invoke, two outstanding invokes
    /// for one process, indexes going backwards...).
    #[error("line {line}: {reason}")]
    Inconsistent {
        /// 1-based line number of the event that breaks the rule.
        line: u64,
        /// Which rule, and which earlier event it conflicts with.
        reason: String,
    },
    /// Too many events: the limit keeps memory bounded.
    #[error("line {line}: history exceeds the limit of {limit} events")]
    TooLong {
        /// The first line past the limit.
        line: u64,
        /// The limit.
        limit: u64,
    },
}

impl HistoryError {
    /// The 1-based line the error is about.
    pub fn line(&self) -> u64 {
        match self {
            HistoryError::MalformedJson { line, .. }
            | HistoryError::BadEvent { line, .. }
            | HistoryError::Inconsistent { line, .. }
            | HistoryError::TooLong { line, .. } => *line,
        }
    }
}

/// Errors of the crate as a whole.
#[derive(Debug, thiserror::Error)]
pub enum JepsenError {
    /// The history itself is unusable.
    #[error(transparent)]
    History(#[from] HistoryError),
    /// Reading the history file failed.
    #[error("cannot read {path}: {reason}")]
    Io {
        /// The file we tried to read.
        path: String,
        /// The operating system's explanation.
        reason: String,
    },
}

//! Idempotent producers: per-partition producer id, epoch and sequence bookkeeping.

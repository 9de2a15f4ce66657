//! The group coordinator: membership, generations, committed offsets.

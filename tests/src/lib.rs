//! End-to-end test helpers (in progress)

//! The live debugger (SPEC §8): a per-source tail of accepted events with their routing
//! decisions, as server-sent events. (Being built.)

/// Fan-out of debugger messages to subscribers.
#[derive(Default)]
pub struct Hub {}

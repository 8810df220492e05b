//! Sluice: a self-hosted, consent-enforcing customer-event router, wire-compatible with Segment.
pub mod api;
pub mod clock;
pub mod consent;
pub mod log;
pub mod store;

//! Sluice: a self-hosted, consent-enforcing customer-event router, wire-compatible with Segment.
pub mod admin;
pub mod api;
pub mod app;
pub mod bench;
pub mod cli;
pub mod clock;
pub mod config;
pub mod consent;
pub mod delivery;
pub mod destinations;
pub mod error;
pub mod log;
pub mod profiles;
pub mod regulations;
pub mod router;
pub mod server;
pub mod store;

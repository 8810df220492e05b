//! Consent on the person (SPEC §5, §6): identity resolution, profiles with per-category consent
//! state and its provenance, per-device latest-wins, merge conflicts, and the consent ledger.
//!
//! * `rules` — the pure rules, with data-driven tests.
//! * `store` — `profiles.db`.
//! * `consumer` — the log consumer that applies the rules to every accepted event, releases or
//!   holds back consent-update events, and emits generated ones.
//!
//! Architecture Invariant: profile state is derived only from the durable log, by one consumer
//! in log order; the ingest path never writes it.

pub mod consumer;
pub mod rules;
pub mod store;

pub use store::{ProfileError, ProfileStore};

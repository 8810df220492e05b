//! The consent engine: pure policy, no I/O, cannot fail.
//!
//! This module decides, for one event and every destination at once, whether the event may be
//! delivered (SPEC §3–§5). It is deliberately small so that it can be audited line by line and
//! property-tested:
//!
//! * [`signal`] reads the two inputs that matter from an event — the `integrations` object and
//!   `context.consent` — into [`EventFacts`], and validates consent-update events.
//! * [`policy`] holds the workspace configuration compiled into bitmasks ([`Policy`]) and the
//!   decision procedure ([`Policy::decide`]).
//!
//! Architecture Invariant: nothing outside this module interprets `categoryPreferences`,
//! the `integrations` object, `enforceConsent` or category enablement. Destinations never look
//! at consent fields; they deliver what the router hands them.
//!
//! The decision order is the one of SPEC §4 and is encoded once, in [`Policy::decide`]:
//! destination disabled → integrations object → destination filters → `enforceConsent=false` →
//! consent-update exemption → missing-consent policy → mapped enabled categories under the
//! `all`/`any` rule.

pub mod policy;
pub mod signal;

#[cfg(test)]
mod tests;

pub use policy::{
    CategoryInput, CategoryMask, DestinationPolicy, FilterReason, MAX_CATEGORIES,
    MissingConsentPolicy, MultiCategoryRule, Outcome, Policy,
};
pub use signal::{
    ConsentSignal, ConsentUpdateError, EventFacts, Integrations, is_consent_update_event,
    validate_consent_update,
};

//! The router: the consent decision for every destination, made once per event when the event
//! is accepted, against an immutable snapshot of the configuration.
//!
//! Deciding at acceptance is what makes "changes take effect for the next event accepted after
//! the change commits" (SPEC §1) exact: an event's destinations are fixed when the 200 is sent
//! and stored with it in the log. Delivery workers only deliver.
//!
//! Destination filters (`crate::filters`) are compiled into the snapshot; their drop/keep
//! decisions are step 3 of the consent decision.
//!
//! Architecture Invariant: the hot path takes no lock. The snapshot is swapped atomically
//! (`arc-swap`) after every configuration change and read with one atomic load per request.

mod snapshot;

pub use snapshot::{Snapshot, SourceEntry};

use crate::consent::{EventFacts, FilterReason, Outcome};
use crate::log::DestKey;

/// Where one event goes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Route {
    pub deliver_to: Vec<DestKey>,
    pub filtered: Vec<(DestKey, FilterReason)>,
}

impl Snapshot {
    /// Decide one event for every destination.
    ///
    /// `payload` is the normalised event; it is parsed only when some destination has filters.
    pub fn route(
        &self,
        source: &SourceEntry,
        facts: &EventFacts<'_>,
        payload: &[u8],
        scratch: &mut Vec<Outcome>,
    ) -> Route {
        let mut parsed: Option<serde_json::Value> = None;
        let filters = &self.filters;
        self.policy.decide(
            facts,
            source.missing_consent_policy,
            |i| match filters.get(i).and_then(Option::as_ref) {
                None => false,
                Some(program) => {
                    let event = parsed
                        .get_or_insert_with(|| serde_json::from_slice(payload).unwrap_or_default());
                    program.verdict(event) == crate::filters::Verdict::Drop
                }
            },
            scratch,
        );
        let mut route = Route {
            deliver_to: Vec::with_capacity(scratch.len()),
            filtered: Vec::new(),
        };
        for (outcome, &key) in scratch.iter().zip(&self.dest_keys) {
            match outcome {
                Outcome::Deliver => route.deliver_to.push(key),
                Outcome::Filtered(reason) => route.filtered.push((key, *reason)),
            }
        }
        route
    }
}

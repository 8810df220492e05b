//! The compiled consent policy and the routing decision of SPEC §4.
//!
//! Categories are numbered when the configuration is compiled: each category id gets one bit of
//! a [`CategoryMask`]. A destination's mapping becomes a mask, an event's granted preferences
//! become a mask, and the decision for one destination is a couple of AND operations. The
//! configuration is rebuilt and swapped atomically on every change; this type is immutable.
//!
//! Architecture Invariant: deciding cannot fail and does no I/O. Every input has an answer.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::signal::{ConsentSignal, EventFacts};

/// One bit per category. 128 categories per workspace is far beyond what CMPs use (OneTrust
/// workspaces typically have five); creating more is refused with a clear error.
pub type CategoryMask = u128;

/// The most categories a workspace may have (one bit each in a [`CategoryMask`]).
pub const MAX_CATEGORIES: usize = CategoryMask::BITS as usize;

/// What to do with events that carry no consent signal (SPEC §1, §4 step 6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum MissingConsentPolicy {
    /// Deliver as if no destination required consent (Segment's behaviour).
    #[default]
    Allow,
    /// Treat every category as not granted (strict GDPR default-reject).
    Deny,
}

/// How several categories mapped to one destination combine (SPEC §4 step 8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum MultiCategoryRule {
    /// Every mapped, enabled category must be granted (Segment's behaviour).
    #[default]
    All,
    /// At least one mapped, enabled category must be granted.
    Any,
}

/// Why an event was not delivered to a destination. The `as_str` names are Segment's delivery
/// overview reasons, plus `DESTINATION_DISABLED` for step 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FilterReason {
    DestinationDisabled,
    IntegrationsObject,
    Rules,
    EndUserConsent,
    /// A consent-update event that repeats the device's current preferences (or is older than
    /// them): recorded in the consent ledger, not delivered again (SPEC §5).
    UnchangedConsent,
}

impl FilterReason {
    pub const ALL: [FilterReason; 5] = [
        FilterReason::DestinationDisabled,
        FilterReason::IntegrationsObject,
        FilterReason::Rules,
        FilterReason::EndUserConsent,
        FilterReason::UnchangedConsent,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FilterReason::DestinationDisabled => "DESTINATION_DISABLED",
            FilterReason::IntegrationsObject => "FILTERED_BY_INTEGRATIONS_OBJECT",
            FilterReason::Rules => "FILTERED_BY_RULES",
            FilterReason::EndUserConsent => "FILTERED_BY_END_USER_CONSENT",
            FilterReason::UnchangedConsent => "FILTERED_UNCHANGED_CONSENT",
        }
    }

    pub fn parse(s: &str) -> Option<FilterReason> {
        FilterReason::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// The decision for one destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Deliver,
    Filtered(FilterReason),
}

/// A destination as the consent engine sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DestinationPolicy {
    /// The key clients use in the `integrations` object; exact case.
    pub integration: String,
    pub enabled: bool,
    pub enforce_consent: bool,
    /// Categories mapped to this destination, enabled or not.
    pub mapped: CategoryMask,
}

/// The workspace's consent configuration, compiled.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    pub rule: MultiCategoryRule,
    /// Category id → bit number, for every category (enabled or disabled).
    bits: HashMap<String, u32>,
    /// Bits of the enabled categories.
    enabled: CategoryMask,
    /// In the order the caller gave them; decisions come back in the same order.
    destinations: Vec<DestinationPolicy>,
}

/// A category as given to [`Policy::compile`].
#[derive(Debug, Clone)]
pub struct CategoryInput<'a> {
    pub id: &'a str,
    pub enabled: bool,
    /// Indexes into the destination list given to `compile`.
    pub destinations: Vec<usize>,
}

impl Policy {
    /// Compile categories and destinations. Categories beyond [`MAX_CATEGORIES`] are ignored;
    /// the admin API refuses to create them, so this only guards against a hand-edited store.
    pub fn compile(
        rule: MultiCategoryRule,
        categories: &[CategoryInput<'_>],
        mut destinations: Vec<DestinationPolicy>,
    ) -> Policy {
        let mut bits = HashMap::with_capacity(categories.len());
        let mut enabled: CategoryMask = 0;
        for dest in &mut destinations {
            dest.mapped = 0;
        }
        for (bit, category) in categories.iter().take(MAX_CATEGORIES).enumerate() {
            let bit = bit as u32;
            let mask: CategoryMask = 1 << bit;
            bits.insert(category.id.to_owned(), bit);
            if category.enabled {
                enabled |= mask;
            }
            for &index in &category.destinations {
                if let Some(dest) = destinations.get_mut(index) {
                    dest.mapped |= mask;
                }
            }
        }
        Policy {
            rule,
            bits,
            enabled,
            destinations,
        }
    }

    pub fn destinations(&self) -> &[DestinationPolicy] {
        &self.destinations
    }

    /// The mask of categories granted by a consent signal. Unknown ids are ignored.
    pub fn granted(&self, signal: &ConsentSignal<'_>) -> CategoryMask {
        match signal {
            ConsentSignal::Absent => 0,
            ConsentSignal::Granted(ids) => ids
                .iter()
                .filter_map(|id| self.bits.get(id.as_ref()))
                .fold(0, |mask, bit| mask | (1 << bit)),
        }
    }

    /// Decide one event for every destination, writing one [`Outcome`] per destination (in the
    /// order of [`Policy::destinations`]) into `out`.
    ///
    /// `rules_drop(i)` says whether destination `i`'s filters drop the event (step 3); the
    /// filters themselves live outside this module because they read arbitrary event fields.
    pub fn decide(
        &self,
        facts: &EventFacts<'_>,
        missing: MissingConsentPolicy,
        mut rules_drop: impl FnMut(usize) -> bool,
        out: &mut Vec<Outcome>,
    ) {
        out.clear();
        // The granted mask is computed once per event, not once per destination. `None` means
        // "no consent signal and the policy allows": consent is not enforced for this event.
        let granted: Option<CategoryMask> = match (&facts.consent, missing) {
            (ConsentSignal::Absent, MissingConsentPolicy::Allow) => None,
            (ConsentSignal::Absent, MissingConsentPolicy::Deny) => Some(0),
            (signal, _) => Some(self.granted(signal)),
        };
        for (index, dest) in self.destinations.iter().enumerate() {
            out.push(self.decide_one(dest, facts, granted, || rules_drop(index)));
        }
    }

    fn decide_one(
        &self,
        dest: &DestinationPolicy,
        facts: &EventFacts<'_>,
        granted: Option<CategoryMask>,
        rules_drop: impl FnOnce() -> bool,
    ) -> Outcome {
        // 1. A disabled destination receives nothing.
        if !dest.enabled {
            return Outcome::Filtered(FilterReason::DestinationDisabled);
        }
        // 2. The integrations object can only turn a destination off; consent never turns it
        //    back on.
        if !facts.integrations.allows(&dest.integration) {
            return Outcome::Filtered(FilterReason::IntegrationsObject);
        }
        // 3. Destination filters.
        if rules_drop() {
            return Outcome::Filtered(FilterReason::Rules);
        }
        // 4. Archival destinations (object storage) do not enforce consent.
        // 5. Consent-update events carry only consent and go everywhere.
        if !dest.enforce_consent || facts.is_consent_update {
            return Outcome::Deliver;
        }
        // 6. No consent signal under the `allow` policy.
        let Some(granted) = granted else {
            return Outcome::Deliver;
        };
        // 7. Disabled categories are no longer enforced; an unmapped destination gets everything.
        let required = dest.mapped & self.enabled;
        if required == 0 {
            return Outcome::Deliver;
        }
        // 8. The multi-category rule.
        let consented = match self.rule {
            MultiCategoryRule::All => required & granted == required,
            MultiCategoryRule::Any => required & granted != 0,
        };
        if consented {
            Outcome::Deliver
        } else {
            Outcome::Filtered(FilterReason::EndUserConsent)
        }
    }
}

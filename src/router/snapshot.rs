//! The configuration as the hot path reads it: compiled once per change, then immutable.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Arc;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use crate::consent::{CategoryInput, DestinationPolicy, MissingConsentPolicy, Policy};
use crate::log::DestKey;
use crate::store::{ConfigData, Destination, Source, Workspace};

/// A source with what ingest needs precomputed.
pub struct SourceEntry {
    pub source: Source,
    /// The workspace policy unless the source overrides it.
    pub missing_consent_policy: MissingConsentPolicy,
    /// Requests per second, when the source has a limit.
    pub limiter: Option<Arc<DefaultDirectRateLimiter>>,
}

pub struct Snapshot {
    pub workspace: Workspace,
    /// Sources by write key.
    sources: HashMap<String, Arc<SourceEntry>>,
    pub policy: Policy,
    /// Destination keys, in the order of `policy.destinations()`.
    pub dest_keys: Vec<DestKey>,
    /// Compiled destination filters, in the same order (`None`: no rules).
    pub filters: Vec<Option<Arc<crate::filters::Program>>>,
    pub destinations: Vec<Destination>,
    pub categories: Vec<crate::store::Category>,
    /// Users (and their linked anonymous ids) whose events are dropped at the API (SPEC §7).
    pub suppressed: crate::store::Suppressed,
}

impl Snapshot {
    /// An empty snapshot, used before the first load.
    pub fn empty() -> Snapshot {
        Snapshot {
            workspace: Workspace {
                missing_consent_policy: MissingConsentPolicy::Allow,
                multi_category_rule: Default::default(),
                dedup_window_hours: 24,
            },
            sources: HashMap::new(),
            policy: Policy::default(),
            dest_keys: Vec::new(),
            filters: Vec::new(),
            destinations: Vec::new(),
            categories: Vec::new(),
            suppressed: Default::default(),
        }
    }

    /// Compile configuration. Rate limiters of sources whose limit did not change are carried
    /// over from `previous`, so a configuration change does not reset them.
    pub fn build(data: ConfigData, previous: &Snapshot) -> Snapshot {
        let index: HashMap<&str, usize> = data
            .destinations
            .iter()
            .enumerate()
            .map(|(i, d)| (d.id.as_str(), i))
            .collect();
        let categories: Vec<CategoryInput<'_>> = data
            .categories
            .iter()
            .map(|c| CategoryInput {
                id: &c.id,
                enabled: c.enabled,
                destinations: c
                    .destinations
                    .iter()
                    .filter_map(|id| index.get(id.as_str()).copied())
                    .collect(),
            })
            .collect();
        let policies = data
            .destinations
            .iter()
            .map(|d| DestinationPolicy {
                integration: d.integration.clone(),
                enabled: d.enabled,
                enforce_consent: d.enforce_consent,
                mapped: 0,
            })
            .collect();
        let policy = Policy::compile(data.workspace.multi_category_rule, &categories, policies);
        let sources = data
            .sources
            .into_iter()
            .map(|source| {
                let limiter = source
                    .rate_limit_per_second
                    .and_then(NonZeroU32::new)
                    .map(|rate| match previous.sources.get(&source.write_key) {
                        Some(old)
                            if old.source.rate_limit_per_second == source.rate_limit_per_second =>
                        {
                            old.limiter.clone().unwrap_or_else(|| {
                                Arc::new(RateLimiter::direct(Quota::per_second(rate)))
                            })
                        }
                        _ => Arc::new(RateLimiter::direct(Quota::per_second(rate))),
                    });
                let entry = SourceEntry {
                    missing_consent_policy: source
                        .missing_consent_policy
                        .unwrap_or(data.workspace.missing_consent_policy),
                    limiter,
                    source,
                };
                (entry.source.write_key.clone(), Arc::new(entry))
            })
            .collect();
        Snapshot {
            dest_keys: data.destinations.iter().map(|d| d.key).collect(),
            // Rules were validated when saved; a rule that no longer compiles filters nothing.
            filters: data
                .destinations
                .iter()
                .map(|d| {
                    crate::filters::Program::compile(&d.filters)
                        .ok()
                        .filter(|p| !p.is_empty())
                        .map(Arc::new)
                })
                .collect(),
            workspace: data.workspace,
            sources,
            policy,
            destinations: data.destinations,
            categories: data.categories,
            suppressed: data.suppressed,
        }
    }

    pub fn source_by_write_key(&self, write_key: &str) -> Option<&Arc<SourceEntry>> {
        self.sources.get(write_key)
    }

    /// Whether an event with these ids belongs to a suppressed user.
    pub fn is_suppressed(&self, user_id: Option<&str>, anonymous_id: Option<&str>) -> bool {
        user_id.is_some_and(|u| self.suppressed.user_ids.contains(u))
            || anonymous_id.is_some_and(|a| self.suppressed.anonymous_ids.contains(a))
    }

    pub fn source_by_key(&self, key: crate::log::SourceKey) -> Option<&Arc<SourceEntry>> {
        self.sources.values().find(|s| s.source.key == key)
    }

    pub fn source_by_id(&self, id: &str) -> Option<&Arc<SourceEntry>> {
        self.sources.values().find(|s| s.source.id == id)
    }

    pub fn destination_by_id(&self, id: &str) -> Option<&Destination> {
        self.destinations.iter().find(|d| d.id == id)
    }
}

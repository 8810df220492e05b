//! The rules of consent on the person (SPEC §5, §6), as pure functions.
//!
//! * **Per device, the latest preferences win, by event timestamp.** An event older than the
//!   device's current state changes nothing.
//! * **What an event says.** No consent object, an empty one, or `consent` without
//!   `categoryPreferences`: nothing (the profile is unchanged). An empty `categoryPreferences`:
//!   every known category false. A non-empty one: its `true` keys true, every other known
//!   category false.
//! * **Profile state per category** is `true`, `false` or `conflict`, with the time and the
//!   message that set it. A newer statement overwrites an older one; an older one never
//!   overwrites a newer one.
//! * **Merging two profiles** that disagree on a category makes it `conflict` until a newer
//!   consent-update event resolves it; ordinary events do not resolve a conflict.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// A category's state on a profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Value {
    True,
    False,
    Conflict,
}

impl Value {
    pub fn from_bool(granted: bool) -> Value {
        if granted { Value::True } else { Value::False }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Value::True => "true",
            Value::False => "false",
            Value::Conflict => "conflict",
        }
    }

    pub fn parse(s: &str) -> Option<Value> {
        match s {
            "true" => Some(Value::True),
            "false" => Some(Value::False),
            "conflict" => Some(Value::Conflict),
            _ => None,
        }
    }
}

/// A category's state with its provenance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stamped {
    pub value: Value,
    /// Event timestamp (Unix ms) of the statement that set it.
    pub at: i64,
    pub message_id: String,
}

/// Per category.
pub type ProfileConsent = BTreeMap<String, Stamped>;

/// The preferences an event states, per category id: the `true` keys of `categoryPreferences`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Preferences {
    pub granted: BTreeSet<String>,
    /// Keys present in the object (granted or not), for the ledger.
    pub stated: BTreeSet<String>,
}

impl Preferences {
    /// The full answer for a set of known categories: missing keys are false.
    pub fn resolve(&self, known: &BTreeSet<String>) -> BTreeMap<String, bool> {
        known
            .iter()
            .chain(self.stated.iter())
            .map(|c| (c.clone(), self.granted.contains(c)))
            .collect()
    }
}

/// A device's last known preferences.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceState {
    pub preferences: Preferences,
    pub at: i64,
}

/// What an event does to its device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceOutcome {
    /// The first preferences seen for the device.
    First,
    /// Different preferences from the device's, at a newer (or equal) time.
    Changed,
    /// Same preferences as the device's current state (newer or equal time).
    Unchanged,
    /// Older than the device's current state: ignored.
    Stale,
}

/// Apply an event's preferences to its device (latest wins by event timestamp).
pub fn apply_to_device(
    device: &mut Option<DeviceState>,
    preferences: &Preferences,
    at: i64,
) -> DeviceOutcome {
    match device {
        Some(current) if at < current.at => DeviceOutcome::Stale,
        Some(current) if current.preferences.granted == preferences.granted => {
            current.at = at;
            DeviceOutcome::Unchanged
        }
        Some(_) => {
            *device = Some(DeviceState {
                preferences: preferences.clone(),
                at,
            });
            DeviceOutcome::Changed
        }
        None => {
            *device = Some(DeviceState {
                preferences: preferences.clone(),
                at,
            });
            DeviceOutcome::First
        }
    }
}

/// Apply a statement (an event's resolved preferences) to a profile.
pub fn apply_to_profile(
    profile: &mut ProfileConsent,
    resolved: &BTreeMap<String, bool>,
    at: i64,
    message_id: &str,
    is_consent_update: bool,
) {
    for (category, granted) in resolved {
        let next = Stamped {
            value: Value::from_bool(*granted),
            at,
            message_id: message_id.to_owned(),
        };
        match profile.get(category) {
            None => {
                profile.insert(category.clone(), next);
            }
            Some(current) if current.value == Value::Conflict => {
                // Only a newer consent-update event resolves a conflict.
                if is_consent_update && at >= current.at {
                    profile.insert(category.clone(), next);
                }
            }
            Some(current) if at >= current.at => {
                profile.insert(category.clone(), next);
            }
            Some(_) => {}
        }
    }
}

/// Merge `other` into `into` (two profiles linked into one).
pub fn merge(into: &mut ProfileConsent, other: &ProfileConsent) {
    for (category, theirs) in other {
        match into.get(category) {
            None => {
                into.insert(category.clone(), theirs.clone());
            }
            Some(ours) if ours.value != theirs.value => {
                let latest = if theirs.at > ours.at { theirs } else { ours };
                into.insert(
                    category.clone(),
                    Stamped {
                        value: Value::Conflict,
                        at: ours.at.max(theirs.at),
                        message_id: latest.message_id.clone(),
                    },
                );
            }
            Some(ours) if theirs.at > ours.at => {
                into.insert(category.clone(), theirs.clone());
            }
            Some(_) => {}
        }
    }
}

#[cfg(test)]
#[path = "rules_tests.rs"]
mod tests;

//! Reading the consent-relevant parts of an event: `context.consent` and `integrations`.
//!
//! Both readers work on borrowed raw JSON and allocate only for keys that contain escapes.
//! They never fail: malformed shapes degrade to the documented defaults (SPEC §3):
//!
//! * `context.consent` absent, not an object, or an object without `categoryPreferences`
//!   (nor its singular alias `categoryPreference`) → [`ConsentSignal::Absent`].
//! * `categoryPreferences: null` is read as absent, because JSON `null` is how most SDKs spell
//!   "not set".
//! * `categoryPreferences` present but not an object (a string, an array) grants nothing: the
//!   event carried a consent signal, just not a usable one, so we fail closed.
//! * Inside the object only JSON `true` grants; every other value means not granted.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde_json::value::RawValue;

/// Names of the consent-update event (SPEC §5). The second is the pre-2024 spelling that some
/// mobile SDKs still send.
pub const CONSENT_UPDATE_EVENT: &str = "Segment Consent Preference Updated";
pub const CONSENT_UPDATE_EVENT_LEGACY: &str = "Segment Consent Preference";

/// The consent signal an event carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsentSignal<'a> {
    /// No `categoryPreferences` at all: the missing-consent policy decides.
    Absent,
    /// `categoryPreferences` was present; these are the ids whose value was JSON `true`.
    Granted(Vec<Cow<'a, str>>),
}

/// The `integrations` object of an event, reduced to what routing needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Integrations<'a> {
    /// Value of the `All` key; `true` when absent.
    pub all: bool,
    /// Explicit per-integration switches, by exact (case-sensitive) integration name.
    /// `true` for `true` or an object value, `false` for `false`. Other values are ignored.
    pub explicit: Vec<(Cow<'a, str>, bool)>,
}

impl Default for Integrations<'_> {
    fn default() -> Self {
        Integrations {
            all: true,
            explicit: Vec::new(),
        }
    }
}

impl Integrations<'_> {
    /// Whether the integrations object lets the event through to `integration`.
    pub fn allows(&self, integration: &str) -> bool {
        // The last occurrence of a key wins, as in JSON parsers generally.
        self.explicit
            .iter()
            .rev()
            .find(|(name, _)| name == integration)
            .map_or(self.all, |(_, enabled)| *enabled)
    }
}

/// Everything the consent engine needs to know about one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventFacts<'a> {
    pub integrations: Integrations<'a>,
    pub consent: ConsentSignal<'a>,
    /// A `track` named [`CONSENT_UPDATE_EVENT`] (or the legacy name): exempt from enforcement.
    pub is_consent_update: bool,
}

impl EventFacts<'_> {
    /// An event with no integrations object and no consent signal.
    pub fn plain() -> Self {
        EventFacts {
            integrations: Integrations::default(),
            consent: ConsentSignal::Absent,
            is_consent_update: false,
        }
    }
}

/// Whether a `track` event with this name is a consent-update event.
pub fn is_consent_update_event(event_name: &str) -> bool {
    event_name == CONSENT_UPDATE_EVENT || event_name == CONSENT_UPDATE_EVENT_LEGACY
}

/// One JSON object, keys and raw values, borrowed from the input.
type RawMap<'a> = BTreeMap<Cow<'a, str>, &'a RawValue>;

fn as_object(raw: &RawValue) -> Option<RawMap<'_>> {
    if !raw.get().starts_with('{') {
        return None;
    }
    serde_json::from_str::<RawMap<'_>>(raw.get()).ok()
}

fn is_null(raw: &RawValue) -> bool {
    raw.get() == "null"
}

/// The `categoryPreferences` value inside a parsed `context.consent` object, honouring the
/// singular alias. The plural wins when both are present.
fn preferences_of<'a>(consent: &RawMap<'a>) -> Option<&'a RawValue> {
    let plural = consent.get("categoryPreferences").copied();
    let value = plural.or_else(|| consent.get("categoryPreference").copied())?;
    if is_null(value) { None } else { Some(value) }
}

impl<'a> ConsentSignal<'a> {
    /// Read the signal from the raw `context.consent` value (if the event has one).
    pub fn read(consent: Option<&'a RawValue>) -> ConsentSignal<'a> {
        let Some(consent) = consent.and_then(as_object) else {
            return ConsentSignal::Absent;
        };
        let Some(preferences) = preferences_of(&consent) else {
            return ConsentSignal::Absent;
        };
        let granted = match as_object(preferences) {
            Some(map) => map
                .into_iter()
                .filter(|(_, value)| value.get() == "true")
                .map(|(key, _)| key)
                .collect(),
            None => Vec::new(),
        };
        ConsentSignal::Granted(granted)
    }
}

impl<'a> Integrations<'a> {
    /// Read the raw `integrations` value. Anything but an object means "no integrations object".
    pub fn read(integrations: Option<&'a RawValue>) -> Integrations<'a> {
        match integrations.and_then(as_object) {
            Some(map) => Integrations::from_entries(map),
            None => Integrations::default(),
        }
    }

    /// Build from the object's `(name, raw value)` pairs. `true` and object values enable,
    /// `false` disables, anything else is not a switch (the `All` default applies).
    pub fn from_entries(entries: impl IntoIterator<Item = (Cow<'a, str>, &'a RawValue)>) -> Self {
        let mut out = Integrations::default();
        for (name, value) in entries {
            let enabled = match value.get() {
                "false" => false,
                "true" => true,
                v if v.starts_with('{') => true,
                _ => continue,
            };
            if name == "All" {
                out.all = enabled;
            } else {
                out.explicit.push((name, enabled));
            }
        }
        out
    }
}

/// Why a consent-update event was rejected at ingest (SPEC §5). The codes are Segment's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsentUpdateError {
    Missing,
    NotObject,
    NotBool,
}

impl ConsentUpdateError {
    pub fn code(self) -> &'static str {
        match self {
            ConsentUpdateError::Missing => "consent_categorypreferences_should_exist",
            ConsentUpdateError::NotObject => "consent_categorypreferences_fields_should_be_object",
            ConsentUpdateError::NotBool => "consent_categorypreferences_fields_should_be_bool",
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            ConsentUpdateError::Missing => {
                "a consent-update event must carry context.consent.categoryPreferences"
            }
            ConsentUpdateError::NotObject => {
                "context.consent.categoryPreferences must be an object of category id to boolean"
            }
            ConsentUpdateError::NotBool => {
                "every value in context.consent.categoryPreferences must be true or false"
            }
        }
    }
}

/// Validate the consent object of a consent-update event.
pub fn validate_consent_update(consent: Option<&RawValue>) -> Result<(), ConsentUpdateError> {
    let consent = consent
        .and_then(as_object)
        .ok_or(ConsentUpdateError::Missing)?;
    let preferences = preferences_of(&consent).ok_or(ConsentUpdateError::Missing)?;
    let map = as_object(preferences).ok_or(ConsentUpdateError::NotObject)?;
    if map
        .values()
        .all(|value| matches!(value.get(), "true" | "false"))
    {
        Ok(())
    } else {
        Err(ConsentUpdateError::NotBool)
    }
}

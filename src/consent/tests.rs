//! Data-driven tests for the consent engine: every row of the SPEC §4 table and every rule of
//! SPEC §1 and §3, each one line of setup, event and expected routing; then property tests.

// Parallel arrays indexed by destination read more clearly than zipped iterators here.
#![allow(clippy::needless_range_loop)]

use proptest::prelude::*;
use serde_json::value::RawValue;

use super::policy::CategoryInput;
use super::*;

/// A workspace described in a few lines:
///
/// ```text
/// dest Facebook [disabled] [no-enforce] [rules-drop]
/// category ad [disabled]: Facebook, Google Ads
/// rule any
/// missing deny
/// ```
struct Setup {
    policy: Policy,
    names: Vec<String>,
    missing: MissingConsentPolicy,
    rules_drop: Vec<bool>,
}

fn setup(text: &str) -> Setup {
    let mut dests = Vec::new();
    let mut names = Vec::new();
    let mut rules_drop = Vec::new();
    let mut categories: Vec<(String, bool, Vec<String>)> = Vec::new();
    let mut rule = MultiCategoryRule::All;
    let mut missing = MissingConsentPolicy::Allow;
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if let Some(rest) = line.strip_prefix("dest ") {
            let mut name = rest.to_owned();
            let mut flag = |f: &str| {
                let found = name.contains(f);
                name = name.replace(f, "");
                found
            };
            let disabled = flag(" disabled");
            let no_enforce = flag(" no-enforce");
            let drop = flag(" rules-drop");
            dests.push(DestinationPolicy {
                integration: name.trim().to_owned(),
                enabled: !disabled,
                enforce_consent: !no_enforce,
                mapped: 0,
            });
            names.push(name.trim().to_owned());
            rules_drop.push(drop);
        } else if let Some(rest) = line.strip_prefix("category ") {
            let (head, list) = rest.split_once(':').expect("category line needs ':'");
            let disabled = head.contains(" disabled");
            let id = head.replace(" disabled", "").trim().to_owned();
            let mapped = list
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect();
            categories.push((id, !disabled, mapped));
        } else if line == "rule any" {
            rule = MultiCategoryRule::Any;
        } else if line == "missing deny" {
            missing = MissingConsentPolicy::Deny;
        } else {
            panic!("bad setup line: {line}");
        }
    }
    let inputs: Vec<CategoryInput<'_>> = categories
        .iter()
        .map(|(id, enabled, mapped)| CategoryInput {
            id,
            enabled: *enabled,
            destinations: mapped
                .iter()
                .map(|m| names.iter().position(|n| n == m).expect("unknown dest"))
                .collect(),
        })
        .collect();
    Setup {
        policy: Policy::compile(rule, &inputs, dests),
        names,
        missing,
        rules_drop,
    }
}

/// The event's parts that matter, read by the real readers.
fn facts_of(event: &str) -> (Option<Box<RawValue>>, Option<Box<RawValue>>, bool) {
    let value: serde_json::Value = serde_json::from_str(event).expect("test event is JSON");
    let raw = |v: Option<&serde_json::Value>| {
        v.map(|v| RawValue::from_string(v.to_string()).expect("valid JSON"))
    };
    let consent = raw(value.pointer("/context/consent"));
    let integrations = raw(value.get("integrations"));
    let update = value
        .get("event")
        .and_then(|e| e.as_str())
        .is_some_and(is_consent_update_event);
    (consent, integrations, update)
}

/// Render the decision as `deliver: A, B | consent: C | integrations: D | …`, grouped by
/// outcome in order of first appearance.
fn decide(setup: &Setup, event: &str) -> String {
    let (consent, integrations, is_consent_update) = facts_of(event);
    let facts = EventFacts {
        integrations: Integrations::read(integrations.as_deref()),
        consent: ConsentSignal::read(consent.as_deref()),
        is_consent_update,
    };
    let mut out = Vec::new();
    setup
        .policy
        .decide(&facts, setup.missing, |i| setup.rules_drop[i], &mut out);
    let mut groups: Vec<(&str, Vec<&str>)> = Vec::new();
    for (outcome, name) in out.iter().zip(&setup.names) {
        let label = match outcome {
            Outcome::Deliver => "deliver",
            Outcome::Filtered(FilterReason::DestinationDisabled) => "disabled",
            Outcome::Filtered(FilterReason::IntegrationsObject) => "integrations",
            Outcome::Filtered(FilterReason::Rules) => "rules",
            Outcome::Filtered(FilterReason::EndUserConsent) => "consent",
            Outcome::Filtered(FilterReason::UnchangedConsent) => "unchanged",
        };
        match groups.iter_mut().find(|(l, _)| *l == label) {
            Some((_, names)) => names.push(name),
            None => groups.push((label, vec![name])),
        }
    }
    groups
        .iter()
        .map(|(label, names)| format!("{label}: {}", names.join(", ")))
        .collect::<Vec<_>>()
        .join(" | ")
}

#[track_caller]
fn check(setup_text: &str, event: &str, expected: &str) {
    let s = setup(setup_text);
    assert_eq!(decide(&s, event), expected, "event: {event}");
}

/// The workspace of the SPEC §4 worked examples, plus an unmapped webhook.
const SPEC_TABLE: &str = "
    dest Facebook
    dest Google Ads
    dest Amplitude
    dest Webhooks
    category ad: Facebook, Google Ads
    category analytics: Amplitude
";

/// The same, with Facebook also mapped to `analytics`.
const FACEBOOK_IN_BOTH: &str = "
    dest Facebook
    dest Google Ads
    dest Amplitude
    dest Webhooks
    category ad: Facebook, Google Ads
    category analytics: Amplitude, Facebook
";

#[test]
fn spec_table_rows() {
    // Row 1: absent, {} or "consent": {} → all.
    check(
        SPEC_TABLE,
        r#"{}"#,
        "deliver: Facebook, Google Ads, Amplitude, Webhooks",
    );
    check(
        SPEC_TABLE,
        r#"{"context":{}}"#,
        "deliver: Facebook, Google Ads, Amplitude, Webhooks",
    );
    check(
        SPEC_TABLE,
        r#"{"context":{"consent":{}}}"#,
        "deliver: Facebook, Google Ads, Amplitude, Webhooks",
    );
    // Row 2: categoryPreferences: {} → unmapped only.
    check(
        SPEC_TABLE,
        r#"{"context":{"consent":{"categoryPreferences":{}}}}"#,
        "consent: Facebook, Google Ads, Amplitude | deliver: Webhooks",
    );
    // Row 3: absent consent, integrations {Facebook: true, Amplitude: false}.
    check(
        SPEC_TABLE,
        r#"{"integrations":{"Facebook":true,"Amplitude":false}}"#,
        "deliver: Facebook, Google Ads, Webhooks | integrations: Amplitude",
    );
    // Row 4: {ad: true, analytics: false}, no integrations.
    check(
        SPEC_TABLE,
        r#"{"context":{"consent":{"categoryPreferences":{"ad":true,"analytics":false}}}}"#,
        "deliver: Facebook, Google Ads, Webhooks | consent: Amplitude",
    );
    // Row 5: same consent, {Facebook: false, Amplitude: false}.
    check(
        SPEC_TABLE,
        r#"{"context":{"consent":{"categoryPreferences":{"ad":true,"analytics":false}}},
            "integrations":{"Facebook":false,"Amplitude":false}}"#,
        "integrations: Facebook, Amplitude | deliver: Google Ads, Webhooks",
    );
    // Row 6: Facebook also in analytics, {Facebook: true, Amplitude: false}.
    check(
        FACEBOOK_IN_BOTH,
        r#"{"context":{"consent":{"categoryPreferences":{"ad":true,"analytics":false}}},
            "integrations":{"Facebook":true,"Amplitude":false}}"#,
        "consent: Facebook | deliver: Google Ads, Webhooks | integrations: Amplitude",
    );
    // Row 7: {ad: false, analytics: true}, Facebook in both.
    check(
        FACEBOOK_IN_BOTH,
        r#"{"context":{"consent":{"categoryPreferences":{"ad":false,"analytics":true}}},
            "integrations":{"Facebook":true,"Amplitude":false}}"#,
        "consent: Facebook, Google Ads | integrations: Amplitude | deliver: Webhooks",
    );
}

#[test]
fn consent_values_and_keys() {
    let consent =
        |prefs: &str| format!(r#"{{"context":{{"consent":{{"categoryPreferences":{prefs}}}}}}}"#);
    // Only JSON true grants: strings, numbers, null and nested values do not.
    for not_true in [r#""true""#, "1", "null", r#"{"x":true}"#, "[true]", "false"] {
        check(
            SPEC_TABLE,
            &consent(&format!(r#"{{"ad":{not_true},"analytics":true}}"#)),
            "consent: Facebook, Google Ads | deliver: Amplitude, Webhooks",
        );
    }
    // A missing key means not granted.
    check(
        SPEC_TABLE,
        &consent(r#"{"analytics":true}"#),
        "consent: Facebook, Google Ads | deliver: Amplitude, Webhooks",
    );
    // Keys are case-sensitive and unknown keys are ignored.
    check(
        SPEC_TABLE,
        &consent(r#"{"AD":true,"Ad":true,"analytics":true,"marketing":true}"#),
        "consent: Facebook, Google Ads | deliver: Amplitude, Webhooks",
    );
    // categoryPreferences that is not an object is a signal that grants nothing.
    check(
        SPEC_TABLE,
        &consent(r#""ad""#),
        "consent: Facebook, Google Ads, Amplitude | deliver: Webhooks",
    );
    check(
        SPEC_TABLE,
        &consent(r#"["ad","analytics"]"#),
        "consent: Facebook, Google Ads, Amplitude | deliver: Webhooks",
    );
    // categoryPreferences: null is no signal at all.
    check(
        SPEC_TABLE,
        &consent("null"),
        "deliver: Facebook, Google Ads, Amplitude, Webhooks",
    );
    // context.consent that is not an object is no signal.
    check(
        SPEC_TABLE,
        r#"{"context":{"consent":"yes"}}"#,
        "deliver: Facebook, Google Ads, Amplitude, Webhooks",
    );
    // Other keys of context.consent do not matter.
    check(
        SPEC_TABLE,
        r#"{"context":{"consent":{"version":2,"destinationPreferences":{"Amplitude":true}}}}"#,
        "deliver: Facebook, Google Ads, Amplitude, Webhooks",
    );
    // Duplicate keys: the last one wins, as in every JSON parser we interoperate with.
    check(
        SPEC_TABLE,
        &consent(r#"{"ad":false,"ad":true,"analytics":true}"#),
        "deliver: Facebook, Google Ads, Amplitude, Webhooks",
    );
}

#[test]
fn singular_alias() {
    check(
        SPEC_TABLE,
        r#"{"context":{"consent":{"categoryPreference":{"ad":true}}}}"#,
        "deliver: Facebook, Google Ads, Webhooks | consent: Amplitude",
    );
    // The plural wins when both are present.
    check(
        SPEC_TABLE,
        r#"{"context":{"consent":{"categoryPreference":{"ad":true},"categoryPreferences":{"analytics":true}}}}"#,
        "consent: Facebook, Google Ads | deliver: Amplitude, Webhooks",
    );
}

#[test]
fn disabled_category_is_not_enforced() {
    let setup = "
        dest Facebook
        dest Google Ads
        dest Amplitude
        category ad disabled: Facebook, Google Ads
        category analytics: Amplitude, Facebook
    ";
    // Facebook now only needs analytics; Google Ads needs nothing (behaves as unmapped).
    check(
        setup,
        r#"{"context":{"consent":{"categoryPreferences":{"analytics":true}}}}"#,
        "deliver: Facebook, Google Ads, Amplitude",
    );
    check(
        setup,
        r#"{"context":{"consent":{"categoryPreferences":{}}}}"#,
        "consent: Facebook, Amplitude | deliver: Google Ads",
    );
}

#[test]
fn any_rule() {
    let setup = "
        rule any
        dest Facebook
        dest Amplitude
        category ad: Facebook
        category analytics: Amplitude, Facebook
    ";
    check(
        setup,
        r#"{"context":{"consent":{"categoryPreferences":{"analytics":true}}}}"#,
        "deliver: Facebook, Amplitude",
    );
    check(
        setup,
        r#"{"context":{"consent":{"categoryPreferences":{"ad":true}}}}"#,
        "deliver: Facebook | consent: Amplitude",
    );
    check(
        setup,
        r#"{"context":{"consent":{"categoryPreferences":{"ad":false,"analytics":false}}}}"#,
        "consent: Facebook, Amplitude",
    );
}

#[test]
fn deny_policy() {
    let setup = "
        missing deny
        dest Facebook
        dest Webhooks
        category ad: Facebook
    ";
    // No signal under deny: every category false, unmapped still delivered.
    check(setup, r#"{}"#, "consent: Facebook | deliver: Webhooks");
    check(
        setup,
        r#"{"context":{"consent":{}}}"#,
        "consent: Facebook | deliver: Webhooks",
    );
    // A signal is used as usual.
    check(
        setup,
        r#"{"context":{"consent":{"categoryPreferences":{"ad":true}}}}"#,
        "deliver: Facebook, Webhooks",
    );
    // Consent-update events are still exempt.
    check(
        setup,
        r#"{"event":"Segment Consent Preference Updated","context":{"consent":{"categoryPreferences":{"ad":false}}}}"#,
        "deliver: Facebook, Webhooks",
    );
}

#[test]
fn enforce_consent_false() {
    check(
        "
        dest S3 no-enforce
        dest Facebook
        category ad: S3, Facebook
        ",
        r#"{"context":{"consent":{"categoryPreferences":{"ad":false}}}}"#,
        "deliver: S3 | consent: Facebook",
    );
    // The integrations object still applies to non-enforcing destinations.
    check(
        "
        dest S3 no-enforce
        ",
        r#"{"integrations":{"S3":false}}"#,
        "integrations: S3",
    );
}

#[test]
fn destination_disabled() {
    check(
        "
        dest Facebook disabled
        dest Webhooks disabled
        category ad: Facebook
        ",
        r#"{"event":"Segment Consent Preference Updated","context":{"consent":{"categoryPreferences":{"ad":true}}}}"#,
        "disabled: Facebook, Webhooks",
    );
}

#[test]
fn consent_update_exemption() {
    for name in [
        "Segment Consent Preference Updated",
        "Segment Consent Preference",
    ] {
        check(
            SPEC_TABLE,
            &format!(
                r#"{{"event":"{name}","context":{{"consent":{{"categoryPreferences":{{}}}}}}}}"#
            ),
            "deliver: Facebook, Google Ads, Amplitude, Webhooks",
        );
    }
    // The exemption is from consent only, not from the integrations object.
    check(
        SPEC_TABLE,
        r#"{"event":"Segment Consent Preference Updated","integrations":{"Facebook":false},
            "context":{"consent":{"categoryPreferences":{}}}}"#,
        "integrations: Facebook | deliver: Google Ads, Amplitude, Webhooks",
    );
    // A similar name is not the consent-update event.
    check(
        SPEC_TABLE,
        r#"{"event":"segment consent preference updated","context":{"consent":{"categoryPreferences":{}}}}"#,
        "consent: Facebook, Google Ads, Amplitude | deliver: Webhooks",
    );
}

#[test]
fn integrations_object() {
    // All: false turns everything off unless named; object values count as enabled.
    check(
        SPEC_TABLE,
        r#"{"integrations":{"All":false,"Amplitude":{"session_id":1},"Webhooks":true}}"#,
        "integrations: Facebook, Google Ads | deliver: Amplitude, Webhooks",
    );
    // Names are case-sensitive.
    check(
        SPEC_TABLE,
        r#"{"integrations":{"facebook":false}}"#,
        "deliver: Facebook, Google Ads, Amplitude, Webhooks",
    );
    // Non-boolean, non-object values are not switches.
    check(
        SPEC_TABLE,
        r#"{"integrations":{"Facebook":null,"Amplitude":"false","All":1}}"#,
        "deliver: Facebook, Google Ads, Amplitude, Webhooks",
    );
    // An integrations value that is not an object is ignored.
    check(
        SPEC_TABLE,
        r#"{"integrations":[]}"#,
        "deliver: Facebook, Google Ads, Amplitude, Webhooks",
    );
    // Consent never turns on a destination the integrations object turned off.
    check(
        SPEC_TABLE,
        r#"{"integrations":{"Facebook":false},"context":{"consent":{"categoryPreferences":{"ad":true,"analytics":true}}}}"#,
        "integrations: Facebook | deliver: Google Ads, Amplitude, Webhooks",
    );
}

#[test]
fn rules_come_after_integrations_and_before_consent() {
    check(
        "
        dest Facebook rules-drop
        dest S3 no-enforce rules-drop
        category ad: Facebook
        ",
        r#"{"integrations":{"Facebook":false}}"#,
        "integrations: Facebook | rules: S3",
    );
}

#[test]
fn unmapped_and_unknown_categories() {
    // A category mapped to nothing does not affect anyone.
    check(
        "
        dest Webhooks
        category ad:
        ",
        r#"{"context":{"consent":{"categoryPreferences":{"ad":false}}}}"#,
        "deliver: Webhooks",
    );
}

#[test]
fn consent_update_validation() {
    let check_update = |consent: &str, expected: Result<(), ConsentUpdateError>| {
        let raw = RawValue::from_string(consent.to_owned()).expect("JSON");
        assert_eq!(validate_consent_update(Some(&raw)), expected, "{consent}");
    };
    check_update(r#"{"categoryPreferences":{"a":true,"b":false}}"#, Ok(()));
    check_update(r#"{"categoryPreferences":{}}"#, Ok(()));
    check_update(r#"{"categoryPreference":{"a":true}}"#, Ok(()));
    check_update(r#"{}"#, Err(ConsentUpdateError::Missing));
    check_update(r#""x""#, Err(ConsentUpdateError::Missing));
    check_update(
        r#"{"categoryPreferences":null}"#,
        Err(ConsentUpdateError::Missing),
    );
    check_update(
        r#"{"categoryPreferences":[true]}"#,
        Err(ConsentUpdateError::NotObject),
    );
    check_update(
        r#"{"categoryPreferences":"a"}"#,
        Err(ConsentUpdateError::NotObject),
    );
    check_update(
        r#"{"categoryPreferences":{"a":"true"}}"#,
        Err(ConsentUpdateError::NotBool),
    );
    check_update(
        r#"{"categoryPreferences":{"a":1}}"#,
        Err(ConsentUpdateError::NotBool),
    );
    check_update(
        r#"{"categoryPreferences":{"a":null}}"#,
        Err(ConsentUpdateError::NotBool),
    );
    assert_eq!(
        validate_consent_update(None),
        Err(ConsentUpdateError::Missing)
    );
}

// ---- Property tests -----------------------------------------------------------------------

const CATS: usize = 6;
const DESTS: usize = 6;

#[derive(Debug, Clone)]
struct World {
    rule: MultiCategoryRule,
    missing: MissingConsentPolicy,
    category_enabled: [bool; CATS],
    /// mapping[c][d]: category c mapped to destination d.
    mapping: [[bool; DESTS]; CATS],
    dest_enabled: [bool; DESTS],
    dest_enforce: [bool; DESTS],
    /// Integrations switch per destination: None = not named.
    integrations: [Option<bool>; DESTS],
    all: bool,
    rules_drop: [bool; DESTS],
    consent_update: bool,
}

fn world() -> impl Strategy<Value = World> {
    (
        any::<bool>(),
        any::<bool>(),
        any::<[bool; CATS]>(),
        any::<[[bool; DESTS]; CATS]>(),
        any::<[bool; DESTS]>(),
        any::<[bool; DESTS]>(),
        any::<[Option<bool>; DESTS]>(),
        any::<bool>(),
        any::<[bool; DESTS]>(),
        any::<bool>(),
    )
        .prop_map(
            |(
                any_rule,
                deny,
                category_enabled,
                mapping,
                dest_enabled,
                dest_enforce,
                integrations,
                all,
                rules_drop,
                consent_update,
            )| World {
                rule: if any_rule {
                    MultiCategoryRule::Any
                } else {
                    MultiCategoryRule::All
                },
                missing: if deny {
                    MissingConsentPolicy::Deny
                } else {
                    MissingConsentPolicy::Allow
                },
                category_enabled,
                mapping,
                dest_enabled,
                dest_enforce,
                integrations,
                all,
                rules_drop,
                consent_update,
            },
        )
}

const CAT_IDS: [&str; CATS] = ["C0001", "C0002", "C0003", "C0004", "ad", "analytics"];
const DEST_NAMES: [&str; DESTS] = ["A", "B", "C", "D", "E", "F"];

impl World {
    fn policy(&self) -> Policy {
        let categories: Vec<CategoryInput<'_>> = (0..CATS)
            .map(|c| CategoryInput {
                id: CAT_IDS[c],
                enabled: self.category_enabled[c],
                destinations: (0..DESTS).filter(|&d| self.mapping[c][d]).collect(),
            })
            .collect();
        let dests = (0..DESTS)
            .map(|d| DestinationPolicy {
                integration: DEST_NAMES[d].to_owned(),
                enabled: self.dest_enabled[d],
                enforce_consent: self.dest_enforce[d],
                mapped: 0,
            })
            .collect();
        Policy::compile(self.rule, &categories, dests)
    }

    /// Decide with `granted = None` meaning no consent signal.
    fn decide(&self, granted: Option<[bool; CATS]>) -> Vec<Outcome> {
        let policy = self.policy();
        let facts = EventFacts {
            integrations: Integrations {
                all: self.all,
                explicit: (0..DESTS)
                    .filter_map(|d| self.integrations[d].map(|on| (DEST_NAMES[d].into(), on)))
                    .collect(),
            },
            consent: match granted {
                None => ConsentSignal::Absent,
                Some(g) => ConsentSignal::Granted(
                    (0..CATS)
                        .filter(|&c| g[c])
                        .map(|c| CAT_IDS[c].into())
                        .collect(),
                ),
            },
            is_consent_update: self.consent_update,
        };
        let mut out = Vec::new();
        policy.decide(&facts, self.missing, |d| self.rules_drop[d], &mut out);
        out
    }
}

fn delivered(outcomes: &[Outcome]) -> Vec<bool> {
    outcomes.iter().map(|o| *o == Outcome::Deliver).collect()
}

proptest! {
    /// Granting more categories never removes a destination, under either rule.
    #[test]
    fn granting_more_never_removes(w in world(), base in any::<[bool; CATS]>(), extra in any::<[bool; CATS]>()) {
        let more: [bool; CATS] = std::array::from_fn(|c| base[c] || extra[c]);
        let before = delivered(&w.decide(Some(base)));
        let after = delivered(&w.decide(Some(more)));
        for d in 0..DESTS {
            prop_assert!(!before[d] || after[d], "destination {d} lost by granting more");
        }
    }

    /// Consent never turns on a destination that is disabled, switched off by the integrations
    /// object, or dropped by its rules.
    #[test]
    fn consent_never_overrides_earlier_steps(w in world(), granted in proptest::option::of(any::<[bool; CATS]>())) {
        let out = w.decide(granted);
        for d in 0..DESTS {
            let switched_off = !w.integrations[d].unwrap_or(w.all);
            if !w.dest_enabled[d] {
                prop_assert_eq!(out[d], Outcome::Filtered(FilterReason::DestinationDisabled));
            } else if switched_off {
                prop_assert_eq!(out[d], Outcome::Filtered(FilterReason::IntegrationsObject));
            } else if w.rules_drop[d] {
                prop_assert_eq!(out[d], Outcome::Filtered(FilterReason::Rules));
            }
        }
    }

    /// Whatever the consent, an enabled, allowed destination with no enabled mapped category
    /// receives the event; so does every allowed destination for a consent-update event.
    #[test]
    fn unmapped_and_consent_updates_always_flow(w in world(), granted in proptest::option::of(any::<[bool; CATS]>())) {
        let out = w.decide(granted);
        for d in 0..DESTS {
            let allowed = w.dest_enabled[d] && w.integrations[d].unwrap_or(w.all) && !w.rules_drop[d];
            let required = (0..CATS).any(|c| w.mapping[c][d] && w.category_enabled[c]);
            if allowed && (!required || w.consent_update || !w.dest_enforce[d]) {
                prop_assert_eq!(out[d], Outcome::Deliver);
            }
        }
    }

    /// The `any` rule delivers to a superset of what `all` delivers.
    #[test]
    fn any_is_a_superset_of_all(w in world(), granted in proptest::option::of(any::<[bool; CATS]>())) {
        let all = delivered(&World { rule: MultiCategoryRule::All, ..w.clone() }.decide(granted));
        let any = delivered(&World { rule: MultiCategoryRule::Any, ..w.clone() }.decide(granted));
        for d in 0..DESTS {
            prop_assert!(!all[d] || any[d]);
        }
    }

    /// Under `all`, disabling a category never removes a destination.
    #[test]
    fn disabling_a_category_never_removes_under_all(w in world(), c in 0..CATS, granted in proptest::option::of(any::<[bool; CATS]>())) {
        let w = World { rule: MultiCategoryRule::All, ..w };
        let mut disabled = w.clone();
        disabled.category_enabled[c] = false;
        let before = delivered(&w.decide(granted));
        let after = delivered(&disabled.decide(granted));
        for d in 0..DESTS {
            prop_assert!(!before[d] || after[d]);
        }
    }

    /// Under `allow`, no signal delivers to every allowed destination; under `deny`, no signal
    /// is the same as an empty `categoryPreferences`.
    #[test]
    fn missing_consent_policy(w in world()) {
        let absent = w.decide(None);
        match w.missing {
            MissingConsentPolicy::Allow => {
                for d in 0..DESTS {
                    if w.dest_enabled[d] && w.integrations[d].unwrap_or(w.all) && !w.rules_drop[d] {
                        prop_assert_eq!(absent[d], Outcome::Deliver);
                    }
                }
            }
            MissingConsentPolicy::Deny => prop_assert_eq!(absent, w.decide(Some([false; CATS]))),
        }
    }
}

//! Data-driven tests of the profile consent rules. Each case is a script of events and merges
//! and the expected profile state, one line each.
//!
//! ```text
//! a @10 C1 C2=false      event from device a at t=10: C1 granted, C2 stated false
//! a @10 {}               empty categoryPreferences
//! a @10 -                no consent object
//! a! @10 C1              a consent-update event
//! merge a b              b's profile merged into a's
//! ```

use std::collections::{BTreeMap, BTreeSet};

use super::*;

const KNOWN: [&str; 3] = ["C1", "C2", "C3"];

struct World {
    devices: BTreeMap<String, Option<DeviceState>>,
    /// Profile per device (devices merged share one).
    owner: BTreeMap<String, String>,
    profiles: BTreeMap<String, ProfileConsent>,
    outcomes: Vec<String>,
}

fn run(script: &str) -> World {
    let known: BTreeSet<String> = KNOWN.iter().map(|s| s.to_string()).collect();
    let mut w = World {
        devices: BTreeMap::new(),
        owner: BTreeMap::new(),
        profiles: BTreeMap::new(),
        outcomes: Vec::new(),
    };
    for (n, line) in script
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .enumerate()
    {
        let parts: Vec<&str> = line.split_whitespace().collect();
        if parts[0] == "merge" {
            let (a, b) = (w.owner[parts[1]].clone(), w.owner[parts[2]].clone());
            let theirs = w.profiles.remove(&b).unwrap_or_default();
            merge(w.profiles.entry(a.clone()).or_default(), &theirs);
            for owner in w.owner.values_mut() {
                if *owner == b {
                    *owner = a.clone();
                }
            }
            continue;
        }
        let update = parts[0].ends_with('!');
        let device = parts[0].trim_end_matches('!').to_owned();
        let at: i64 = parts[1].trim_start_matches('@').parse().unwrap();
        w.owner
            .entry(device.clone())
            .or_insert_with(|| device.clone());
        if parts.get(2) == Some(&"-") {
            w.outcomes.push("none".into());
            continue;
        }
        let mut prefs = Preferences::default();
        for p in &parts[2..] {
            if *p == "{}" {
                continue;
            }
            let (cat, granted) = match p.split_once('=') {
                Some((c, v)) => (c, v == "true"),
                None => (*p, true),
            };
            prefs.stated.insert(cat.to_owned());
            if granted {
                prefs.granted.insert(cat.to_owned());
            }
        }
        let state = w.devices.entry(device.clone()).or_default();
        let outcome = apply_to_device(state, &prefs, at);
        w.outcomes.push(format!("{outcome:?}").to_lowercase());
        if outcome != DeviceOutcome::Stale {
            let profile = w.profiles.entry(w.owner[&device].clone()).or_default();
            apply_to_profile(
                profile,
                &prefs.resolve(&known),
                at,
                &format!("m{n}"),
                update,
            );
        }
    }
    w
}

fn render(w: &World) -> String {
    w.profiles
        .iter()
        .map(|(id, consent)| {
            let cats: Vec<String> = consent
                .iter()
                .map(|(c, s)| format!("{c}={}@{}", s.value.as_str(), s.at))
                .collect();
            format!("{id}: {}", cats.join(" "))
        })
        .collect::<Vec<_>>()
        .join(" | ")
}

#[track_caller]
fn check(script: &str, expected: &str) {
    assert_eq!(render(&run(script)), expected, "script:\n{script}");
}

#[track_caller]
fn check_outcomes(script: &str, expected: &str) {
    assert_eq!(
        run(script).outcomes.join(" "),
        expected,
        "script:\n{script}"
    );
}

#[test]
fn missing_keys_are_false_and_known_categories_are_filled() {
    check("a @10 C1", "a: C1=true@10 C2=false@10 C3=false@10");
    // Unknown stated keys are kept too.
    check(
        "a @10 C1 X9",
        "a: C1=true@10 C2=false@10 C3=false@10 X9=true@10",
    );
}

#[test]
fn empty_preferences_set_everything_false() {
    check(
        "a @10 C1 C2\na @20 {}",
        "a: C1=false@20 C2=false@20 C3=false@20",
    );
}

#[test]
fn no_consent_object_changes_nothing() {
    check("a @10 C1\na @20 -", "a: C1=true@10 C2=false@10 C3=false@10");
    check_outcomes("a @10 C1\na @20 -", "first none");
}

#[test]
fn device_latest_wins_and_out_of_order_events_are_ignored() {
    check(
        "a @20 C1\na @10 C2",
        "a: C1=true@20 C2=false@20 C3=false@20",
    );
    check_outcomes(
        "a @20 C1\na @10 C2\na @30 C1\na @40 C2",
        "first stale unchanged changed",
    );
    check(
        "a @20 C1\na @10 C2\na @40 C2",
        "a: C1=false@40 C2=true@40 C3=false@40",
    );
}

#[test]
fn merge_of_disagreeing_profiles_is_a_conflict() {
    check(
        "a @10 C1 C2\nb @20 C1=false C2\nmerge a b",
        "a: C1=conflict@20 C2=true@20 C3=false@20",
    );
}

#[test]
fn only_a_newer_consent_update_resolves_a_conflict() {
    let base = "a @10 C1\nb @20 C1=false\nmerge a b";
    // An ordinary event does not resolve it.
    check(
        &format!("{base}\na @30 C1"),
        "a: C1=conflict@20 C2=false@30 C3=false@30",
    );
    // An older consent update does not either.
    check(
        &format!("{base}\nc! @15 C1\nmerge a c"),
        "a: C1=conflict@20 C2=false@20 C3=false@20",
    );
    // A newer consent-update event does.
    check(
        &format!("{base}\na! @30 C1"),
        "a: C1=true@30 C2=false@30 C3=false@30",
    );
}

#[test]
fn merge_keeps_the_newer_agreeing_statement() {
    check(
        "a @10 C1\nb @20 C1\nmerge a b",
        "a: C1=true@20 C2=false@20 C3=false@20",
    );
    check(
        "a @30 C1\nb @20 C1\nmerge b a",
        "b: C1=true@30 C2=false@30 C3=false@30",
    );
}

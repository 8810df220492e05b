//! Consent for warehouse records (SPEC §10): what a row says about each consent category, and
//! whether a record may go to a destination.
//!
//! * A model with no consent mapping is not enforced: records carry no consent signal and the
//!   decision is made as for an event without `categoryPreferences` under the `allow` policy.
//! * Once any column is mapped, the record's preferences are exactly the mapped categories,
//!   each granted only by a true value. A category mapped to a destination but to no column is
//!   missing from the preferences, and a missing category is not granted — so it blocks.
//! * True is SQL `TRUE`: JSON `true`; in MySQL/MariaDB and SQLite, which store booleans as
//!   integers, also the integer `1`. NULL, `false`, `0`, strings and every other value are
//!   false.
//! * The rest — disabled categories, `enforceConsent: false`, the `all` / `any` rule, disabled
//!   destinations — is the consent engine's (`consent::Policy::decide`), unchanged: RETL only
//!   builds the signal.
//!
//! The same preferences are stamped on the records' events as
//! `context.consent.categoryPreferences`, so the connections path (the event pipeline) decides
//! with the same inputs.

use std::collections::BTreeMap;

use serde_json::Value as Json;

use super::warehouse::{Column, Kind};
use crate::consent::{ConsentSignal, EventFacts, Integrations};

/// Whether a consent column's value grants its category.
pub fn grants(kind: Kind, value: &Json) -> bool {
    match value {
        Json::Bool(b) => *b,
        Json::Number(n) if kind != Kind::Postgres => n.as_i64() == Some(1),
        _ => false,
    }
}

/// Where each consent column is in a row: `(column index or None when the query lacks it,
/// category id)`, computed once per sync.
#[derive(Debug, Clone, Default)]
pub struct ConsentColumns {
    columns: Vec<(Option<usize>, String)>,
}

impl ConsentColumns {
    /// `mapping` is column → category; columns the query does not return are reported so the
    /// run can warn (their categories count as not granted).
    pub fn new(mapping: &BTreeMap<String, String>, columns: &[Column]) -> (Self, Vec<String>) {
        let mut missing = Vec::new();
        let columns = mapping
            .iter()
            .map(|(column, category)| {
                let at = columns.iter().position(|c| &c.name == column);
                if at.is_none() {
                    missing.push(column.clone());
                }
                (at, category.clone())
            })
            .collect();
        (ConsentColumns { columns }, missing)
    }

    /// Whether consent is enforced for this model at all.
    pub fn is_mapped(&self) -> bool {
        !self.columns.is_empty()
    }

    /// Whether `index` is a consent column (kept out of traits and properties).
    pub fn contains(&self, index: usize) -> bool {
        self.columns.iter().any(|(at, _)| *at == Some(index))
    }

    /// The row's preferences: `None` when the model has no consent mapping.
    pub fn preferences(&self, kind: Kind, row: &[Json]) -> Option<BTreeMap<String, bool>> {
        if !self.is_mapped() {
            return None;
        }
        Some(
            self.columns
                .iter()
                .map(|(at, category)| {
                    let granted = at.and_then(|i| row.get(i)).is_some_and(|v| grants(kind, v));
                    (category.clone(), granted)
                })
                .collect(),
        )
    }

    /// Preferences of a deleted record from the categories it granted when last synced.
    pub fn preferences_from(&self, granted: Option<&[String]>) -> Option<BTreeMap<String, bool>> {
        if !self.is_mapped() {
            return None;
        }
        Some(
            self.columns
                .iter()
                .map(|(_, category)| {
                    let g = granted.is_some_and(|g| g.iter().any(|c| c == category));
                    (category.clone(), g)
                })
                .collect(),
        )
    }
}

/// The granted categories, for the checkpoint.
pub fn granted_list(preferences: Option<&BTreeMap<String, bool>>) -> Option<Vec<String>> {
    preferences.map(|p| {
        p.iter()
            .filter(|(_, g)| **g)
            .map(|(c, _)| c.clone())
            .collect()
    })
}

/// The consent engine's view of a record (no `integrations` object; never a consent-update
/// event).
pub fn facts(preferences: Option<&BTreeMap<String, bool>>) -> EventFacts<'_> {
    EventFacts {
        integrations: Integrations::default(),
        consent: match preferences {
            None => ConsentSignal::Absent,
            Some(p) => ConsentSignal::Granted(
                p.iter()
                    .filter(|(_, g)| **g)
                    .map(|(c, _)| c.as_str().into())
                    .collect(),
            ),
        },
        is_consent_update: false,
    }
}

#[cfg(test)]
mod tests {
    //! Data-driven: a workspace in a few lines, a model's consent mapping, a row, and the
    //! destinations the record may go to.

    use super::*;
    use crate::consent::{
        CategoryInput, DestinationPolicy, MissingConsentPolicy, MultiCategoryRule, Outcome, Policy,
    };

    /// `dest NAME [disabled] [no-enforce]`, `category ID [disabled]: DEST, DEST`, `rule any`.
    fn policy(text: &str) -> (Policy, Vec<String>) {
        let mut dests = Vec::new();
        let mut names = Vec::new();
        let mut categories: Vec<(String, bool, Vec<String>)> = Vec::new();
        let mut rule = MultiCategoryRule::All;
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            if let Some(rest) = line.strip_prefix("dest ") {
                let disabled = rest.contains(" disabled");
                let no_enforce = rest.contains(" no-enforce");
                let name = rest
                    .replace(" disabled", "")
                    .replace(" no-enforce", "")
                    .trim()
                    .to_owned();
                dests.push(DestinationPolicy {
                    integration: name.clone(),
                    enabled: !disabled,
                    enforce_consent: !no_enforce,
                    mapped: 0,
                });
                names.push(name);
            } else if let Some(rest) = line.strip_prefix("category ") {
                let (head, list) = rest.split_once(':').unwrap();
                let enabled = !head.contains(" disabled");
                let id = head.replace(" disabled", "").trim().to_owned();
                let mapped = list
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect();
                categories.push((id, enabled, mapped));
            } else if line == "rule any" {
                rule = MultiCategoryRule::Any;
            } else {
                panic!("bad line {line}");
            }
        }
        let inputs: Vec<CategoryInput<'_>> = categories
            .iter()
            .map(|(id, enabled, mapped)| CategoryInput {
                id,
                enabled: *enabled,
                destinations: mapped
                    .iter()
                    .map(|m| names.iter().position(|n| n == m).unwrap())
                    .collect(),
            })
            .collect();
        (Policy::compile(rule, &inputs, dests), names)
    }

    /// The destinations a record goes to.
    fn check(
        workspace: &str,
        kind: Kind,
        mapping: &[(&str, &str)],
        row: &[(&str, Json)],
        expected: &[&str],
    ) {
        let (policy, names) = policy(workspace);
        let mapping: BTreeMap<String, String> = mapping
            .iter()
            .map(|(c, k)| ((*c).to_owned(), (*k).to_owned()))
            .collect();
        let columns: Vec<Column> = row
            .iter()
            .map(|(n, _)| Column {
                name: (*n).to_owned(),
                type_name: String::new(),
            })
            .collect();
        let values: Vec<Json> = row.iter().map(|(_, v)| v.clone()).collect();
        let (consent, _) = ConsentColumns::new(&mapping, &columns);
        let preferences = consent.preferences(kind, &values);
        let mut out = Vec::new();
        // The missing-consent policy never matters: RETL records without a mapping are
        // decided as under `allow`, whatever the workspace says.
        policy.decide(
            &facts(preferences.as_ref()),
            MissingConsentPolicy::Allow,
            |_| false,
            &mut out,
        );
        let got: Vec<&str> = names
            .iter()
            .zip(&out)
            .filter(|(_, o)| **o == Outcome::Deliver)
            .map(|(n, _)| n.as_str())
            .collect();
        assert_eq!(
            got, expected,
            "\nworkspace: {workspace}\nmapping: {mapping:?}\nrow: {row:?}"
        );
    }

    const WS: &str = "
        dest Ads
        dest Analytics
        dest Archive
        dest Both
        category ads: Ads, Both
        category analytics: Analytics, Both
    ";

    /// `column=category …`, `column=JSON …` → pairs.
    fn words(text: &str) -> Vec<(&str, &str)> {
        text.split_whitespace()
            .map(|w| w.split_once('=').expect("column=value"))
            .collect()
    }

    /// One line per case: warehouse, consent mapping, row, the destinations it reaches.
    #[test]
    fn decision_table() {
        use Kind::{Mysql, Postgres, Sqlite};
        const ALL: &str = "Ads Analytics Archive Both";
        let cases: &[(Kind, &str, &str, &str)] = &[
            // No mapping: no enforcement, every destination.
            (Postgres, "", "id=1 ads_ok=false", ALL),
            // Any mapping: categories without a column are false.
            (Postgres, "ads_ok=ads", "ads_ok=true", "Ads Archive"),
            (Postgres, "ads_ok=ads", "ads_ok=false", "Archive"),
            // NULL and non-true values are false.
            (Postgres, "ads_ok=ads", "ads_ok=null", "Archive"),
            (Postgres, "ads_ok=ads", r#"ads_ok="true""#, "Archive"),
            (Postgres, "ads_ok=ads", "ads_ok=1", "Archive"),
            // MySQL and SQLite booleans are integers: 1 is true, nothing else.
            (Mysql, "ads_ok=ads", "ads_ok=1", "Ads Archive"),
            (Sqlite, "ads_ok=ads", "ads_ok=1", "Ads Archive"),
            (Sqlite, "ads_ok=ads", "ads_ok=2", "Archive"),
            (Sqlite, "ads_ok=ads", "ads_ok=0", "Archive"),
            (Mysql, "ads_ok=ads", "ads_ok=1.5", "Archive"),
            (Mysql, "ads_ok=ads", "ads_ok=true", "Ads Archive"),
            // Both categories mapped: rule `all` needs both for "Both".
            (Postgres, "a=ads b=analytics", "a=true b=true", ALL),
            (
                Postgres,
                "a=ads b=analytics",
                "a=true b=false",
                "Ads Archive",
            ),
            // A mapped column the query does not return counts as false.
            (Postgres, "a=ads gone=analytics", "a=true", "Ads Archive"),
            // A category the workspace does not have grants nothing (and blocks nothing).
            (Postgres, "x=unknown", "x=true", "Archive"),
        ];
        for (kind, mapping, row, expected) in cases {
            case_in(WS, *kind, mapping, row, expected);
        }
    }

    /// A case in words, on PostgreSQL.
    fn case(workspace: &str, mapping: &str, row: &str, expected: &str) {
        case_in(workspace, Kind::Postgres, mapping, row, expected);
    }

    fn case_in(workspace: &str, kind: Kind, mapping: &str, row: &str, expected: &str) {
        let row: Vec<(&str, Json)> = words(row)
            .into_iter()
            .map(|(c, v)| (c, serde_json::from_str(v).unwrap()))
            .collect();
        let expected: Vec<&str> = expected.split_whitespace().collect();
        check(workspace, kind, &words(mapping), &row, &expected);
    }

    #[test]
    fn rule_any_disabled_categories_and_destinations() {
        let any = "
            dest Ads
            dest Analytics
            dest Both
            rule any
            category ads: Ads, Both
            category analytics: Analytics, Both
        ";
        case(any, "a=ads b=analytics", "a=true b=false", "Ads Both");
        case(any, "a=ads", "a=false", "");
        // A disabled category is not enforced: its destinations behave as unmapped.
        let disabled = "
            dest Ads
            dest Analytics
            category ads disabled: Ads
            category analytics: Analytics
        ";
        case(disabled, "b=analytics", "b=false", "Ads");
        // Destinations that do not enforce consent get everything; disabled ones nothing.
        let dests = "
            dest Ads no-enforce
            dest Off disabled
            dest Analytics
            category ads: Ads, Off, Analytics
        ";
        case(dests, "a=ads", "a=false", "Ads");
        case(dests, "a=ads", "a=true", "Ads Analytics");
        case(dests, "", "a=false", "Ads Analytics");
    }

    #[test]
    fn deleted_records_use_the_granted_list() {
        let mapping: BTreeMap<String, String> = [("a", "ads"), ("b", "analytics")]
            .into_iter()
            .map(|(c, k)| (c.to_owned(), k.to_owned()))
            .collect();
        let columns = vec![
            Column {
                name: "a".into(),
                type_name: String::new(),
            },
            Column {
                name: "b".into(),
                type_name: String::new(),
            },
        ];
        let (consent, missing) = ConsentColumns::new(&mapping, &columns);
        assert!(missing.is_empty());
        let prefs = consent.preferences(Kind::Postgres, &[Json::Bool(true), Json::Null]);
        let granted = granted_list(prefs.as_ref());
        assert_eq!(granted, Some(vec!["ads".to_owned()]));
        assert_eq!(consent.preferences_from(granted.as_deref()), prefs);
        assert_eq!(
            consent.preferences_from(None),
            Some([("ads".to_owned(), false), ("analytics".to_owned(), false)].into())
        );
        let (none, _) = ConsentColumns::new(&BTreeMap::new(), &columns);
        assert_eq!(none.preferences_from(Some(&["ads".to_owned()])), None);
        assert!(consent.contains(0) && consent.contains(1) && !none.contains(0));
    }
}

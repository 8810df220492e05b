//! The workspace file of `sluice export` and `sluice apply`: a workspace's configuration as
//! YAML, for review and version control.
//!
//! ```yaml
//! workspace:
//!   missingConsentPolicy: allow
//!   multiCategoryRule: all
//!   dedupWindowHours: 24
//! sources:
//!   - name: Web
//!     enabled: true
//!     rateLimitPerSecond: 500
//! destinations:
//!   - name: Ads archive
//!     integration: Google Ads
//!     type: webhook
//!     enabled: true
//!     enforceConsent: true
//!     settings:
//!       url: https://hooks.example.com/ads
//!       secret: ${ADS_WEBHOOK_SECRET}
//! consentCategories:
//!   - id: C0004
//!     name: Advertising
//!     enabled: true
//!     destinations: [Ads archive]
//! ```
//!
//! Sources and destinations are named, not identified: ids and write keys belong to a server,
//! the file describes what should exist. Categories keep their ids, which are the keys end
//! users' consent objects use. Field names are the admin API's (camelCase).
//!
//! Every struct denies unknown fields, so a misspelt field is an error with its line number
//! rather than a silently ignored setting. After parsing, `${NAME}` in any string value is
//! replaced by the environment variable `NAME` (a missing one is an error naming it and its
//! line), so secrets need not be written into the file; `$${NAME}` stands for a literal
//! `${NAME}`. Destination settings are free-form here; the destination type checks them.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::consent::{MissingConsentPolicy, MultiCategoryRule};

/// A whole workspace file.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct WorkspaceFile {
    /// Workspace-wide consent settings. When absent, `apply` leaves them as they are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace: Option<WorkspaceSettings>,
    /// Sources, matched to the server's by name.
    #[serde(default)]
    pub sources: Vec<SourceSpec>,
    /// Destinations, matched to the server's by name.
    #[serde(default)]
    pub destinations: Vec<DestinationSpec>,
    /// Consent categories, matched to the server's by id.
    #[serde(default)]
    pub consent_categories: Vec<CategorySpec>,
}

/// Workspace settings; each one that is absent is left as the server has it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct WorkspaceSettings {
    /// `allow` (deliver events without a consent object, Segment's behaviour) or `deny`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missing_consent_policy: Option<MissingConsentPolicy>,
    /// `all` (every mapped category must be granted) or `any`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multi_category_rule: Option<MultiCategoryRule>,
    /// How long a messageId is remembered for deduplication, in hours.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dedup_window_hours: Option<u32>,
}

/// A source. Absent fields take their defaults (enabled, no rate limit, workspace policy).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SourceSpec {
    /// The source's name; unique in the file.
    pub name: String,
    /// Whether the source accepts events (default `true`).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Requests per second before answering 429; absent means no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit_per_second: Option<u32>,
    /// Overrides the workspace's `missingConsentPolicy` for this source; absent means the
    /// workspace's applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missing_consent_policy: Option<MissingConsentPolicy>,
}

/// A destination.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DestinationSpec {
    /// The destination's name; unique in the file, and how categories refer to it.
    pub name: String,
    /// The key clients use in the `integrations` object (e.g. `Google Ads`); case-sensitive.
    pub integration: String,
    /// The destination type (`webhook`, `file`, …). It cannot change once created.
    #[serde(rename = "type")]
    pub kind: String,
    /// Whether events are delivered (default `true`).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Whether consent is enforced; absent means the type's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enforce_consent: Option<bool>,
    /// The type's settings. A secret given as `********` keeps the value stored on the server.
    #[serde(default = "empty_object")]
    pub settings: Value,
}

/// A consent category.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CategorySpec {
    /// The key in end users' `categoryPreferences` (e.g. `C0004`); case-sensitive.
    pub id: String,
    /// The category's name, unique ignoring case.
    pub name: String,
    /// Whether the category is enforced (default `true`).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// The names of the destinations that need this consent.
    #[serde(default)]
    pub destinations: Vec<String>,
}

fn yes() -> bool {
    true
}

fn empty_object() -> Value {
    Value::Object(serde_json::Map::new())
}

/// A workspace file that cannot be used, with where and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileError {
    #[error(
        "{file}, line {line}, column {column}: {message}\nhint: `sluice apply --help` describes the file format"
    )]
    Syntax {
        file: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{file}: {message}\nhint: `sluice apply --help` describes the file format")]
    Invalid { file: String, message: String },
    #[error("{file}{}: environment variable {name} is not set (used in {field})\nhint: export {name}, or write the value instead of ${{{name}}}", line.map(|l| format!(", line {l}")).unwrap_or_default())]
    MissingVariable {
        file: String,
        line: Option<usize>,
        name: String,
        field: String,
    },
    #[error("{file}{}: {field}: {message}", line.map(|l| format!(", line {l}")).unwrap_or_default())]
    BadSubstitution {
        file: String,
        line: Option<usize>,
        field: String,
        message: String,
    },
}

impl WorkspaceFile {
    /// Parse `text` (named `file` in errors), substitute environment variables through `env`,
    /// and check names are unique.
    pub fn parse(
        text: &str,
        file: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<WorkspaceFile, FileError> {
        let mut parsed: WorkspaceFile = if text.trim().is_empty() {
            WorkspaceFile::default()
        } else {
            serde_norway::from_str(text).map_err(|e| syntax_error(&e, file))?
        };
        parsed.substitute(text, file, env)?;
        parsed.check_unique(file)?;
        Ok(parsed)
    }

    /// The file as YAML, with a comment saying what it is.
    pub fn to_yaml(&self, origin: &str) -> Result<String, String> {
        let body = serde_norway::to_string(self)
            .map_err(|e| format!("cannot write the workspace as YAML: {e}"))?;
        Ok(format!(
            "# Sluice workspace exported from {origin}.\n\
             # Apply it with `sluice apply -f <file>`; `sluice apply --help` describes the format.\n\
             # Secrets show as \"********\", which apply reads as \"keep the stored secret\";\n\
             # write ${{ENV_VAR}} to take a value from the environment instead.\n{body}"
        ))
    }

    fn check_unique(&self, file: &str) -> Result<(), FileError> {
        let invalid = |message: String| FileError::Invalid {
            file: file.to_owned(),
            message,
        };
        let mut seen = HashSet::new();
        for (i, s) in self.sources.iter().enumerate() {
            if s.name.trim().is_empty() {
                return Err(invalid(format!("sources[{i}]: name must not be empty")));
            }
            if !seen.insert(s.name.as_str()) {
                return Err(invalid(format!(
                    "sources[{i}]: there is already a source named {:?}; names identify sources, so each must be unique",
                    s.name
                )));
            }
        }
        let mut seen = HashSet::new();
        for (i, d) in self.destinations.iter().enumerate() {
            if d.name.trim().is_empty() {
                return Err(invalid(format!(
                    "destinations[{i}]: name must not be empty"
                )));
            }
            if !seen.insert(d.name.as_str()) {
                return Err(invalid(format!(
                    "destinations[{i}]: there is already a destination named {:?}; names identify destinations, so each must be unique",
                    d.name
                )));
            }
        }
        let mut seen = HashSet::new();
        for (i, c) in self.consent_categories.iter().enumerate() {
            if !seen.insert(c.id.as_str()) {
                return Err(invalid(format!(
                    "consentCategories[{i}]: there is already a category with id {:?}",
                    c.id
                )));
            }
            let mut mapped = HashSet::new();
            for d in &c.destinations {
                if !mapped.insert(d.as_str()) {
                    return Err(invalid(format!(
                        "consentCategories[{i}] ({}): destination {d:?} is listed twice",
                        c.id
                    )));
                }
            }
        }
        Ok(())
    }

    /// Replace `${NAME}` in every string value.
    fn substitute(
        &mut self,
        text: &str,
        file: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<(), FileError> {
        let sub = |s: &mut String, field: String| -> Result<(), FileError> {
            *s = substitute_str(s, env).map_err(|e| e.into_file_error(text, file, field))?;
            Ok(())
        };
        for (i, s) in self.sources.iter_mut().enumerate() {
            sub(&mut s.name, format!("sources[{i}].name"))?;
        }
        for (i, d) in self.destinations.iter_mut().enumerate() {
            sub(&mut d.name, format!("destinations[{i}].name"))?;
            sub(&mut d.integration, format!("destinations[{i}].integration"))?;
            sub(&mut d.kind, format!("destinations[{i}].type"))?;
            substitute_value(
                &mut d.settings,
                &format!("destinations[{i}].settings"),
                &sub,
            )?;
        }
        for (i, c) in self.consent_categories.iter_mut().enumerate() {
            sub(&mut c.id, format!("consentCategories[{i}].id"))?;
            sub(&mut c.name, format!("consentCategories[{i}].name"))?;
            for (j, d) in c.destinations.iter_mut().enumerate() {
                sub(d, format!("consentCategories[{i}].destinations[{j}]"))?;
            }
        }
        Ok(())
    }
}

/// Turn a YAML error into one with the line, column and the path of the field.
fn syntax_error(e: &serde_norway::Error, file: &str) -> FileError {
    let text = e.to_string();
    match e.location() {
        Some(loc) => {
            let suffix = format!(" at line {} column {}", loc.line(), loc.column());
            FileError::Syntax {
                file: file.to_owned(),
                line: loc.line(),
                column: loc.column(),
                message: text.strip_suffix(&suffix).unwrap_or(&text).to_owned(),
            }
        }
        None => FileError::Invalid {
            file: file.to_owned(),
            message: text,
        },
    }
}

fn substitute_value(
    value: &mut Value,
    path: &str,
    sub: &dyn Fn(&mut String, String) -> Result<(), FileError>,
) -> Result<(), FileError> {
    match value {
        Value::String(s) => sub(s, path.to_owned()),
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                substitute_value(item, &format!("{path}[{i}]"), sub)?;
            }
            Ok(())
        }
        Value::Object(map) => {
            for (key, item) in map.iter_mut() {
                substitute_value(item, &format!("{path}.{key}"), sub)?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Why `${…}` could not be substituted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubstError {
    Missing(String),
    Malformed(String),
}

impl SubstError {
    fn into_file_error(self, text: &str, file: &str, field: String) -> FileError {
        match self {
            SubstError::Missing(name) => FileError::MissingVariable {
                file: file.to_owned(),
                line: line_of(text, &format!("${{{name}}}")),
                name,
                field,
            },
            SubstError::Malformed(message) => FileError::BadSubstitution {
                file: file.to_owned(),
                line: None,
                field,
                message,
            },
        }
    }
}

/// The first line of `text` containing `needle`, counting from 1.
fn line_of(text: &str, needle: &str) -> Option<usize> {
    text.lines().position(|l| l.contains(needle)).map(|i| i + 1)
}

/// Replace each `${NAME}` in `s` with `env(NAME)`; `$${` is a literal `${`. Other `$` signs are
/// left alone.
pub fn substitute_str(s: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, SubstError> {
    if !s.contains("${") {
        return Ok(s.to_owned());
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find("${") {
        if rest[..at].ends_with('$') {
            // `$${` — an escaped, literal `${`.
            out.push_str(&rest[..at - 1]);
            out.push_str("${");
            rest = &rest[at + 2..];
            continue;
        }
        out.push_str(&rest[..at]);
        let after = &rest[at + 2..];
        let Some(end) = after.find('}') else {
            return Err(SubstError::Malformed(format!(
                "`${{` without a closing `}}` in {s:?}; write `$${{` for a literal `${{`"
            )));
        };
        let name = &after[..end];
        let valid = name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(SubstError::Malformed(format!(
                "`${{{name}}}` is not a variable name (letters, digits and _, not starting with a digit)"
            )));
        }
        match env(name) {
            Some(value) => out.push_str(&value),
            None => return Err(SubstError::Missing(name.to_owned())),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn env(name: &str) -> Option<String> {
        match name {
            "SECRET" => Some("s3cr3t".into()),
            "HOST" => Some("hooks.example.com".into()),
            _ => None,
        }
    }

    fn parse(text: &str) -> Result<WorkspaceFile, FileError> {
        WorkspaceFile::parse(text, "workspace.yaml", &env)
    }

    #[test]
    fn substitution_cases() {
        let cases: &[(&str, Result<&str, SubstError>)] = &[
            ("plain", Ok("plain")),
            ("${SECRET}", Ok("s3cr3t")),
            (
                "https://${HOST}/x?k=${SECRET}",
                Ok("https://hooks.example.com/x?k=s3cr3t"),
            ),
            ("$${SECRET}", Ok("${SECRET}")),
            ("pa$$word $5", Ok("pa$$word $5")),
            ("${NOPE}", Err(SubstError::Missing("NOPE".into()))),
            (
                "${SECRET",
                Err(SubstError::Malformed(
                    "`${` without a closing `}` in \"${SECRET\"; write `$${` for a literal `${`"
                        .into(),
                )),
            ),
        ];
        for (input, expected) in cases {
            let got = substitute_str(input, &env);
            assert_eq!(
                got.as_deref().map_err(Clone::clone),
                expected.clone(),
                "{input}"
            );
        }
        assert!(matches!(
            substitute_str("${1A}", &env),
            Err(SubstError::Malformed(_))
        ));
    }

    #[test]
    fn parses_a_full_file_with_defaults() {
        let file = parse(
            "sources:\n  - name: Web\n    rateLimitPerSecond: 5\n\
             destinations:\n  - name: Hooks\n    integration: Webhooks\n    type: webhook\n    settings:\n      url: https://${HOST}/in\n      secret: ${SECRET}\n      batchSize: 10\n\
             consentCategories:\n  - id: C0004\n    name: Advertising\n    destinations: [Hooks]\n",
        )
        .unwrap();
        assert_eq!(file.workspace, None);
        assert_eq!(
            file.sources,
            vec![SourceSpec {
                name: "Web".into(),
                enabled: true,
                rate_limit_per_second: Some(5),
                missing_consent_policy: None
            }]
        );
        let d = &file.destinations[0];
        assert!(d.enabled);
        assert_eq!(d.enforce_consent, None);
        assert_eq!(
            d.settings,
            json!({"url": "https://hooks.example.com/in", "secret": "s3cr3t", "batchSize": 10})
        );
        assert!(file.consent_categories[0].enabled);
        assert_eq!(file.consent_categories[0].destinations, vec!["Hooks"]);
    }

    #[test]
    fn unknown_fields_name_the_field_and_line() {
        let err = parse("sources:\n  - name: a\n  - name: b\n    rateLimitPerSecnd: 4\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `rateLimitPerSecnd`"), "{err}");
        assert!(err.contains("line 4"), "{err}");
        assert!(err.contains("sources[1]"), "{err}");

        let err = parse("consentCategories:\n  - id: C1\n    name: A\n    enable: false\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("unknown field `enable`") && err.contains("line 4"),
            "{err}"
        );

        let err = parse("destination: []\n").unwrap_err().to_string();
        assert!(
            err.contains("unknown field `destination`") && err.contains("line 1"),
            "{err}"
        );
    }

    #[test]
    fn bad_values_name_the_line() {
        let err = parse("workspace:\n  missingConsentPolicy: maybe\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 2") && err.contains("maybe"), "{err}");
    }

    #[test]
    fn missing_variables_name_the_variable_and_line() {
        let err = parse(
            "destinations:\n  - name: Hooks\n    integration: W\n    type: webhook\n    settings:\n      url: http://x\n      secret: ${WEBHOOK_SECRET}\n",
        )
        .unwrap_err();
        assert_eq!(
            err,
            FileError::MissingVariable {
                file: "workspace.yaml".into(),
                line: Some(7),
                name: "WEBHOOK_SECRET".into(),
                field: "destinations[0].settings.secret".into(),
            }
        );
        assert!(err.to_string().contains("export WEBHOOK_SECRET"));
    }

    #[test]
    fn duplicate_names_are_refused() {
        let err = parse("sources:\n  - name: a\n  - name: a\n").unwrap_err();
        assert!(
            err.to_string().contains("already a source named \"a\""),
            "{err}"
        );
        let err =
            parse("consentCategories:\n  - {id: C1, name: A, destinations: [x, x]}\n").unwrap_err();
        assert!(err.to_string().contains("listed twice"), "{err}");
    }

    #[test]
    fn empty_file_is_an_empty_workspace() {
        assert_eq!(parse("").unwrap(), WorkspaceFile::default());
        assert_eq!(parse("# nothing\n").unwrap(), WorkspaceFile::default());
    }

    #[test]
    fn yaml_round_trip() {
        let file = WorkspaceFile {
            workspace: Some(WorkspaceSettings {
                missing_consent_policy: Some(MissingConsentPolicy::Deny),
                multi_category_rule: Some(MultiCategoryRule::Any),
                dedup_window_hours: Some(24),
            }),
            sources: vec![SourceSpec {
                name: "Web: main".into(),
                enabled: false,
                rate_limit_per_second: None,
                missing_consent_policy: Some(MissingConsentPolicy::Allow),
            }],
            destinations: vec![DestinationSpec {
                name: "Hooks".into(),
                integration: "Webhooks".into(),
                kind: "webhook".into(),
                enabled: true,
                enforce_consent: Some(false),
                settings: json!({"url": "http://x", "secret": "********", "headers": {"A": "********"}, "batchSize": 1}),
            }],
            consent_categories: vec![CategorySpec {
                id: "C0004".into(),
                name: "Advertising".into(),
                enabled: true,
                destinations: vec!["Hooks".into()],
            }],
        };
        let yaml = file.to_yaml("http://127.0.0.1:8080").unwrap();
        assert!(yaml.starts_with("# Sluice workspace exported from http://127.0.0.1:8080."));
        assert_eq!(parse(&yaml).unwrap(), file);
    }
}

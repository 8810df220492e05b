//! Destination filters (SPEC §9, Segment's "destination filters"): per destination, ordered
//! rules of a condition in a documented FQL subset (`fql`) and an action.
//!
//! | action | effect on an event the condition matches |
//! |---|---|
//! | `drop` | not delivered (`FILTERED_BY_RULES`) |
//! | `keep` | only matching events are delivered: a non-matching one is dropped |
//! | `dropProperties` | the listed fields are removed |
//! | `keepProperties` | under `properties` and `traits`, only the listed fields are kept |
//!
//! Rules are parsed and validated when saved (errors name the rule and the column), compiled
//! once into the routing snapshot, and evaluated when an event is accepted: `drop`/`keep` decide
//! routing (step 3 of SPEC §4, after the integrations object and before consent); the property
//! actions rewrite the payload when the event is delivered. Rules apply in order; a dropped
//! event stops there.

pub mod fql;

#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A rule as configured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Rule {
    /// The condition, e.g. `event = "Order Completed" and properties.total > 100`.
    #[serde(rename = "if")]
    pub condition: String,
    pub action: ActionKind,
    /// Field paths for `dropProperties` / `keepProperties`, e.g. `properties.email`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum ActionKind {
    Drop,
    Keep,
    DropProperties,
    KeepProperties,
}

/// Most rules per destination.
pub const MAX_RULES: usize = 100;

/// A validation error, naming the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("rule {index}: {message}")]
pub struct RuleError {
    /// 0-based index of the rule.
    pub index: usize,
    /// Column of a syntax error in the condition (1-based).
    pub column: Option<usize>,
    pub message: String,
}

#[derive(Debug, Clone)]
struct Compiled {
    condition: fql::Expr,
    action: ActionKind,
    fields: Vec<Vec<String>>,
}

/// A destination's rules, compiled.
#[derive(Debug, Clone, Default)]
pub struct Program {
    rules: Vec<Compiled>,
}

/// What the rules do to one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Drop,
    /// Delivered; `true` when a property action applies (the payload must be rewritten).
    Deliver {
        transform: bool,
    },
}

impl Program {
    /// Validate and compile rules.
    pub fn compile(rules: &[Rule]) -> Result<Program, RuleError> {
        if rules.len() > MAX_RULES {
            return Err(RuleError {
                index: MAX_RULES,
                column: None,
                message: format!("at most {MAX_RULES} rules per destination"),
            });
        }
        let mut compiled = Vec::with_capacity(rules.len());
        for (index, rule) in rules.iter().enumerate() {
            let condition = fql::parse(&rule.condition).map_err(|e| RuleError {
                index,
                column: Some(e.column),
                message: format!(
                    "invalid condition {:?} at column {}: {}",
                    rule.condition, e.column, e.message
                ),
            })?;
            let needs_fields = matches!(
                rule.action,
                ActionKind::DropProperties | ActionKind::KeepProperties
            );
            if needs_fields && rule.fields.is_empty() {
                return Err(RuleError {
                    index,
                    column: None,
                    message: "this action needs `fields`, e.g. [\"properties.email\"]".into(),
                });
            }
            if !needs_fields && !rule.fields.is_empty() {
                return Err(RuleError {
                    index,
                    column: None,
                    message: "`fields` is only for dropProperties and keepProperties".into(),
                });
            }
            let mut fields = Vec::with_capacity(rule.fields.len());
            for field in &rule.fields {
                let path: Vec<String> = field.split('.').map(str::to_owned).collect();
                if path.iter().any(String::is_empty) {
                    return Err(RuleError {
                        index,
                        column: None,
                        message: format!("{field:?} is not a field path"),
                    });
                }
                if rule.action == ActionKind::KeepProperties
                    && !matches!(path[0].as_str(), "properties" | "traits")
                {
                    return Err(RuleError {
                        index,
                        column: None,
                        message: format!(
                            "keepProperties fields must be under properties or traits (got {field:?})"
                        ),
                    });
                }
                fields.push(path);
            }
            compiled.push(Compiled {
                condition,
                action: rule.action,
                fields,
            });
        }
        Ok(Program { rules: compiled })
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Whether any rule rewrites payloads.
    pub fn transforms(&self) -> bool {
        self.rules.iter().any(|r| {
            matches!(
                r.action,
                ActionKind::DropProperties | ActionKind::KeepProperties
            )
        })
    }

    /// Decide an event.
    pub fn verdict(&self, event: &Value) -> Verdict {
        let mut transform = false;
        for rule in &self.rules {
            let matched = rule.condition.eval(event);
            match rule.action {
                ActionKind::Drop if matched => return Verdict::Drop,
                ActionKind::Keep if !matched => return Verdict::Drop,
                ActionKind::DropProperties | ActionKind::KeepProperties if matched => {
                    transform = true
                }
                _ => {}
            }
        }
        Verdict::Deliver { transform }
    }

    /// Apply the property actions of matching rules to an event (for delivery).
    pub fn apply(&self, event: &mut Value) {
        self.apply_traced(event, |_, _| {});
    }

    /// Whether each rule matches, as the router and delivery see it: `drop` and `keep` on the
    /// event as received, property rules in order on the event as earlier ones left it.
    pub fn trace(&self, event: &Value) -> Vec<bool> {
        let mut matched: Vec<bool> = self.rules.iter().map(|r| r.condition.eval(event)).collect();
        if self.verdict(event) != Verdict::Drop {
            let mut rewritten = event.clone();
            self.apply_traced(&mut rewritten, |index, m| matched[index] = m);
        }
        matched
    }

    /// [`Program::apply`], telling `seen` whether each property rule matched.
    fn apply_traced(&self, event: &mut Value, mut seen: impl FnMut(usize, bool)) {
        for (index, rule) in self.rules.iter().enumerate() {
            if !matches!(
                rule.action,
                ActionKind::DropProperties | ActionKind::KeepProperties
            ) {
                continue;
            }
            let matched = rule.condition.eval(event);
            seen(index, matched);
            if !matched {
                continue;
            }
            match rule.action {
                ActionKind::DropProperties => {
                    for path in &rule.fields {
                        remove(event, path);
                    }
                }
                ActionKind::KeepProperties => {
                    for section in ["properties", "traits"] {
                        let keep: Vec<&str> = rule
                            .fields
                            .iter()
                            .filter(|p| p[0] == section && p.len() > 1)
                            .map(|p| p[1].as_str())
                            .collect();
                        // A rule naming only `properties.*` leaves `traits` alone, and back.
                        if keep.is_empty() {
                            continue;
                        }
                        if let Some(Value::Object(map)) = event.get_mut(section) {
                            map.retain(|k, _| keep.contains(&k.as_str()));
                        }
                    }
                }
                _ => {}
            }
        }
    }
}

fn remove(event: &mut Value, path: &[String]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut current = event;
    for key in parents {
        match current.get_mut(key.as_str()) {
            Some(next) => current = next,
            None => return,
        }
    }
    if let Value::Object(map) = current {
        map.remove(last);
    }
}

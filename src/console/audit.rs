//! Audit trail page: every configuration change, newest first, with readable action names,
//! before/after shown as a field-by-field diff, filters in a GET form (so a filtered view is a
//! shareable URL), paging, and a JSON-lines export of the filtered entries.
//!
//! Reads go through the handlers behind `GET /api/v1/audit` and `GET /api/v1/audit/export`.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::auth::ConsoleUser;
use super::body;
use super::page::{Shell, render};
use crate::admin::audit::{self as api, EntryView};
use crate::app::App;
use crate::clock;

pub fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/audit", get(page))
        .route("/audit/export", get(export))
}

const AUDIT: &str = "/api/v1/audit";
const EXPORT: &str = "/api/v1/audit/export";
/// Entries per page.
const PAGE: usize = 50;

/// Every action Sluice records, with the words shown for it.
pub const ACTIONS: &[(&str, &str)] = &[
    ("category.created", "Consent category created"),
    ("category.modified", "Consent category changed"),
    ("category.disabled", "Consent category turned off"),
    ("category.enabled", "Consent category turned on"),
    ("category.deleted", "Consent category deleted"),
    (
        "mapping.created",
        "Destination mapped to a consent category",
    ),
    (
        "mapping.removed",
        "Destination unmapped from a consent category",
    ),
    ("workspace.updated", "Consent settings changed"),
    ("source.created", "Source created"),
    ("source.updated", "Source changed"),
    ("source.deleted", "Source deleted"),
    ("destination.created", "Destination created"),
    ("destination.updated", "Destination changed"),
    ("destination.deleted", "Destination deleted"),
    ("destination.filters.updated", "Destination filters changed"),
    (
        "dead_letters.replayed",
        "Failed events sent again (dead letters replayed)",
    ),
    ("user.created", "User added"),
    ("user.updated", "User changed"),
    ("user.password_changed", "User password changed"),
    ("user.deleted", "User removed"),
    ("token.created", "API token created"),
    ("token.revoked", "API token revoked"),
    (
        "regulation.created",
        "Deletion or suppression request filed",
    ),
    ("retl.connection.created", "Warehouse connection created"),
    ("retl.connection.updated", "Warehouse connection changed"),
    ("retl.connection.deleted", "Warehouse connection deleted"),
    ("retl.model.created", "Reverse ETL model created"),
    ("retl.model.updated", "Reverse ETL model changed"),
    ("retl.model.deleted", "Reverse ETL model deleted"),
    (
        "retl.consent_mapping.changed",
        "Reverse ETL consent columns changed",
    ),
    (
        "retl.mapping.created",
        "Reverse ETL model connected to a destination",
    ),
    (
        "retl.mapping.deleted",
        "Reverse ETL model disconnected from a destination",
    ),
    ("retl.sync.started", "Reverse ETL sync started"),
];

/// What a change was made to.
pub const RESOURCE_TYPES: &[(&str, &str)] = &[
    ("category", "Consent category"),
    ("workspace", "Workspace"),
    ("source", "Source"),
    ("destination", "Destination"),
    ("user", "User"),
    ("token", "API token"),
    ("regulation", "Regulation"),
    ("retl_connection", "Warehouse connection"),
    ("retl_model", "Reverse ETL model"),
    ("retl_mapping", "Reverse ETL mapping"),
];

/// The readable name of an action; unknown ones are spelled out from their parts.
pub fn action_label(action: &str) -> String {
    match ACTIONS.iter().find(|(a, _)| *a == action) {
        Some((_, label)) => (*label).to_owned(),
        None => {
            let words = action.replace(['.', '_'], " ");
            let mut chars = words.chars();
            chars
                .next()
                .map_or_else(String::new, |c| c.to_uppercase().chain(chars).collect())
        }
    }
}

fn resource_label(kind: &str) -> String {
    RESOURCE_TYPES
        .iter()
        .find(|(k, _)| *k == kind)
        .map_or_else(|| kind.to_owned(), |(_, l)| (*l).to_owned())
}

#[derive(Deserialize, Default, Clone)]
pub struct Filters {
    #[serde(default)]
    action: String,
    #[serde(default)]
    resource_type: String,
    #[serde(default)]
    resource_id: String,
    #[serde(default)]
    actor: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    cursor: Option<i64>,
}

impl Filters {
    /// The filters as a query string (without the cursor), for paging and export links.
    fn query(&self) -> String {
        let mut q = form_urlencoded::Serializer::new(String::new());
        for (k, v) in [
            ("action", &self.action),
            ("resource_type", &self.resource_type),
            ("resource_id", &self.resource_id),
            ("actor", &self.actor),
            ("from", &self.from),
            ("to", &self.to),
        ] {
            if !v.trim().is_empty() {
                q.append_pair(k, v.trim());
            }
        }
        q.finish()
    }

    fn any(&self) -> bool {
        !self.query().is_empty()
    }

    /// The admin API's query, or errors for the time fields.
    fn params(&self, limit: Option<usize>) -> Result<Value, FieldErrors> {
        let mut errors = FieldErrors::default();
        let time = |value: &str, error: &mut Option<String>| -> Option<String> {
            let value = value.trim();
            if value.is_empty() {
                return None;
            }
            match super::overview::parse_input(value) {
                Some(ms) => Some(clock::format_ms(ms)),
                None => {
                    *error = Some("Enter a date and time, for example 2026-11-25T10:00.".into());
                    None
                }
            }
        };
        let from = time(&self.from, &mut errors.from);
        let to = time(&self.to, &mut errors.to);
        if errors.from.is_some() || errors.to.is_some() {
            return Err(errors);
        }
        let mut params = Map::new();
        for (k, v) in [
            ("action", self.action.trim()),
            ("resourceType", self.resource_type.trim()),
            ("resourceId", self.resource_id.trim()),
            ("actor", self.actor.trim()),
        ] {
            if !v.is_empty() {
                params.insert(k.into(), json!(v));
            }
        }
        if let Some(from) = from {
            params.insert("from".into(), json!(from));
        }
        if let Some(to) = to {
            params.insert("to".into(), json!(to));
        }
        if let Some(cursor) = self.cursor {
            params.insert("cursor".into(), json!(cursor));
        }
        if let Some(limit) = limit {
            params.insert("limit".into(), json!(limit));
        }
        Ok(Value::Object(params))
    }
}

#[derive(Default)]
struct FieldErrors {
    from: Option<String>,
    to: Option<String>,
    form: Option<String>,
}

/// One changed field: `(path, before, after)`; `None` where the field did not exist.
type Change = (String, Option<String>, Option<String>);

struct Row {
    e: EntryView,
    label: String,
    resource: String,
    changes: Vec<Change>,
}

#[derive(askama::Template)]
#[template(path = "console/audit.html")]
struct Page {
    shell: Shell,
    may_read: Result<(), &'static str>,
    may_export: Result<(), &'static str>,
    filters: Filters,
    errors: FieldErrors,
    actions: Vec<(String, String)>,
    resource_types: Vec<(String, String)>,
    rows: Vec<Row>,
    /// Link to the next (older) page.
    older: Option<String>,
    /// Link to the first page, when not on it.
    newest: Option<String>,
    export_href: String,
    filtered: bool,
}

/// Flatten JSON to `path → compact value` (objects recursively; arrays as a whole).
fn flatten(prefix: &str, value: &Value, out: &mut BTreeMap<String, String>) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&path, v, out);
            }
        }
        Value::String(s) => {
            out.insert(prefix.to_owned(), s.clone());
        }
        other => {
            out.insert(prefix.to_owned(), other.to_string());
        }
    }
}

/// The fields that differ between before and after. Operational entries store
/// `{"before", "after"}` inside `after`; those are unwrapped.
fn diff(before: Option<&Value>, after: Option<&Value>) -> Vec<Change> {
    let (before, after) = match (before, after) {
        (None, Some(Value::Object(m)))
            if m.len() == 2 && m.contains_key("before") && m.contains_key("after") =>
        {
            (m.get("before"), m.get("after"))
        }
        other => other,
    };
    let (mut b, mut a) = (BTreeMap::new(), BTreeMap::new());
    if let Some(v) = before {
        flatten("", v, &mut b);
    }
    if let Some(v) = after {
        flatten("", v, &mut a);
    }
    let mut keys: Vec<&String> = b.keys().chain(a.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| b.get(*k) != a.get(*k))
        .map(|k| {
            (
                if k.is_empty() {
                    "value".to_owned()
                } else {
                    k.clone()
                },
                b.get(k).cloned(),
                a.get(k).cloned(),
            )
        })
        .collect()
}

/// Known names plus the one filtered on, so an unknown action can still be selected.
fn options(
    known: &[(&str, &str)],
    current: &str,
    label: fn(&str) -> String,
) -> Vec<(String, String)> {
    let mut all: Vec<(String, String)> = known
        .iter()
        .map(|(k, l)| ((*k).to_owned(), (*l).to_owned()))
        .collect();
    let current = current.trim();
    if !current.is_empty() && !all.iter().any(|(k, _)| k == current) {
        all.push((current.to_owned(), label(current)));
    }
    all
}

async fn page(
    State(app): State<Arc<App>>,
    user: ConsoleUser,
    Query(filters): Query<Filters>,
) -> Response {
    let may_read = user.may(Method::GET, AUDIT);
    let query = filters.query();
    let mut page = Page {
        shell: Shell::new(&user, "audit", "Audit trail"),
        may_export: user.may(Method::GET, EXPORT),
        errors: FieldErrors::default(),
        actions: options(ACTIONS, &filters.action, action_label),
        resource_types: options(RESOURCE_TYPES, &filters.resource_type, resource_label),
        rows: Vec::new(),
        older: None,
        newest: filters.cursor.is_some().then(|| {
            if query.is_empty() {
                "/audit".to_owned()
            } else {
                format!("/audit?{query}")
            }
        }),
        export_href: if query.is_empty() {
            "/audit/export".to_owned()
        } else {
            format!("/audit/export?{query}")
        },
        filtered: filters.any(),
        filters,
        may_read,
    };
    if page.may_read.is_err() {
        return render(&page);
    }
    let params = match page.filters.params(Some(PAGE)) {
        Ok(p) => p,
        Err(errors) => {
            page.errors = errors;
            let mut response = render(&page);
            *response.status_mut() = StatusCode::BAD_REQUEST;
            return response;
        }
    };
    let result = match body::<api::Params>(params) {
        Ok(params) => api::list(State(app), Query(params)).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(Json(list)) => {
            page.older = list.next_cursor.map(|c| {
                let sep = if query.is_empty() { "" } else { "&" };
                format!("/audit?{query}{sep}cursor={c}")
            });
            page.rows = list
                .entries
                .into_iter()
                .map(|e| Row {
                    label: action_label(&e.action),
                    resource: resource_label(&e.resource_type),
                    changes: diff(e.before.as_ref(), e.after.as_ref()),
                    e,
                })
                .collect();
            render(&page)
        }
        Err(e) => {
            let status = e.status;
            page.errors.form = Some(e.message);
            let mut response = render(&page);
            *response.status_mut() = status;
            response
        }
    }
}

/// The filtered entries as a JSON-lines download.
async fn export(
    State(app): State<Arc<App>>,
    user: ConsoleUser,
    Query(filters): Query<Filters>,
) -> Response {
    if let Err(reason) = user.may(Method::GET, EXPORT) {
        return user.refuse(reason);
    }
    let params = match filters.params(None) {
        Ok(p) => p,
        Err(_) => {
            return crate::error::ApiError::bad_request(
                "invalid",
                "from and to must be dates and times such as 2026-11-25T10:00",
            )
            .into_response();
        }
    };
    let result = match body::<api::Params>(params) {
        Ok(params) => api::export(State(app), Query(params)).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(download) => download.into_response(),
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_read_as_words() {
        assert_eq!(action_label("category.created"), "Consent category created");
        assert_eq!(action_label("widget.frobbed_twice"), "Widget frobbed twice");
    }

    #[test]
    fn diffs_show_changed_fields_only() {
        let before = json!({"name": "Ads", "enabled": true, "settings": {"url": "a"}});
        let after = json!({"name": "Ads", "enabled": false, "settings": {"url": "b"}});
        assert_eq!(
            diff(Some(&before), Some(&after)),
            vec![
                ("enabled".into(), Some("true".into()), Some("false".into())),
                ("settings.url".into(), Some("a".into()), Some("b".into())),
            ]
        );
        assert_eq!(
            diff(None, Some(&json!({"id": "x"}))),
            vec![("id".into(), None, Some("x".into()))]
        );
        let wrapped = json!({"before": {"q": 1}, "after": {"q": 2}});
        assert_eq!(
            diff(None, Some(&wrapped)),
            vec![("q".into(), Some("1".into()), Some("2".into()))]
        );
    }
}

//! `sluice apply`: the difference between a workspace file and a server, and carrying it out
//! through the admin API (so every change is in the audit trail, made by the token's user).
//!
//! **Matching.** Sources and destinations are matched by name, categories by id. What the file
//! has and the server lacks is created; what both have is compared field by field and updated
//! when it differs; what only the server has is left alone unless `--prune` is given, then
//! deleted. Nothing is compared that the file does not manage (write keys, ids, the workspace
//! settings it leaves out).
//!
//! **Idempotence.** The server fills in defaults when it stores destination settings and
//! shows secrets as `********`. To compare like with like, the file's settings go through the
//! same destination type's validation (which fills in the same defaults) and redaction before
//! they are compared with what the server shows. So applying a file twice changes nothing the
//! second time, and `export` followed by `apply` reports no change.
//!
//! **Secrets** are write-only. In the file, `********` keeps the stored secret (refused when
//! nothing is stored to keep). A secret written out (usually through `${ENV_VAR}`) is sent
//! whenever the destination's settings are updated, but it cannot be compared with the stored
//! one; `--update-secrets` sends it even when nothing else changed (to rotate a secret).
//!
//! **Order.** Workspace, sources, destinations, then categories (which refer to destinations by
//! name and are mapped with the ids the server gave), then with `--prune` deletions in the
//! reverse order. Disabling a category sends its name as `confirmName`: the file is the
//! confirmation. A failed call stops the run; applying again continues from where it stopped.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt::{self, Write as _};
use std::path::PathBuf;

use serde_json::{Value, json};

use super::client::{Client, ClientError, Destination, encode};
use super::output::compact;
use super::state::ServerState;
use super::workspace_file::{DestinationSpec, WorkspaceFile};
use crate::destinations::{self, BuildContext, DestinationType, REDACTED};

/// What `apply` may do besides creating and updating.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ApplyOptions {
    /// Delete sources, destinations and categories the file does not list.
    pub prune: bool,
    /// Send secrets written in the file even when nothing else in the settings changed.
    pub update_secrets: bool,
}

/// What a step is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resource {
    Workspace,
    Source(String),
    Destination(String),
    Category { id: String, name: String },
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Resource::Workspace => write!(f, "workspace"),
            Resource::Source(name) => write!(f, "source {name:?}"),
            Resource::Destination(name) => write!(f, "destination {name:?}"),
            Resource::Category { id, name } => write!(f, "category {id} {name:?}"),
        }
    }
}

/// One field that differs: its path and both values as shown to a person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldChange {
    pub field: String,
    pub from: String,
    pub to: String,
}

impl FieldChange {
    fn new(field: impl Into<String>, from: impl Into<String>, to: impl Into<String>) -> Self {
        FieldChange {
            field: field.into(),
            from: from.into(),
            to: to.into(),
        }
    }
}

/// What will happen to a resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Created; the string summarises it.
    Create(String),
    /// Updated; the fields that change.
    Update(Vec<FieldChange>),
    /// Deleted (`--prune`).
    Delete,
    /// Already as the file says.
    Unchanged,
}

/// The admin API calls of one step.
#[derive(Debug, Clone, PartialEq)]
enum Op {
    None,
    PatchWorkspace(Value),
    CreateSource {
        body: Value,
        disable: bool,
    },
    PatchSource {
        id: String,
        body: Value,
    },
    DeleteSource {
        id: String,
    },
    CreateDestination {
        name: String,
        body: Value,
    },
    PatchDestination {
        id: String,
        body: Value,
    },
    DeleteDestination {
        id: String,
    },
    /// `destinations` are names, resolved to ids when the step runs.
    CreateCategory {
        id: String,
        name: String,
        destinations: Vec<String>,
        enabled: bool,
    },
    UpdateCategory {
        id: String,
        name: Option<String>,
        destinations: Option<Vec<String>>,
        enabled: Option<bool>,
        /// The category's name after the update, for `confirmName`.
        final_name: String,
    },
    DeleteCategory {
        id: String,
    },
}

/// One resource: what happens to it and how.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub resource: Resource,
    pub change: Change,
    op: Op,
}

/// Everything `apply` would do, in order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Plan {
    pub steps: Vec<Step>,
}

/// How many steps create, update, delete, and leave alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    pub create: usize,
    pub update: usize,
    pub delete: usize,
    pub unchanged: usize,
}

impl Plan {
    pub fn counts(&self) -> Counts {
        let mut c = Counts::default();
        for step in &self.steps {
            match step.change {
                Change::Create(_) => c.create += 1,
                Change::Update(_) => c.update += 1,
                Change::Delete => c.delete += 1,
                Change::Unchanged => c.unchanged += 1,
            }
        }
        c
    }

    /// Whether anything would change.
    pub fn has_changes(&self) -> bool {
        self.steps.iter().any(|s| s.change != Change::Unchanged)
    }

    /// The plan for a person: one line per resource (`+` create, `~` update, `-` delete,
    /// `=` no change), changed fields indented below, and a count.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for step in &self.steps {
            // Writing to a String cannot fail.
            let _ = match &step.change {
                Change::Create(summary) => writeln!(out, "  + create {} {summary}", step.resource),
                Change::Update(fields) => {
                    let _ = writeln!(out, "  ~ update {}", step.resource);
                    for f in fields {
                        let _ = writeln!(out, "      {}: {} -> {}", f.field, f.from, f.to);
                    }
                    Ok(())
                }
                Change::Delete => writeln!(out, "  - delete {}", step.resource),
                Change::Unchanged => writeln!(out, "  = {} (no change)", step.resource),
            };
        }
        let c = self.counts();
        let _ = writeln!(
            out,
            "Plan: {} to create, {} to update, {} to delete, {} unchanged.",
            c.create, c.update, c.delete, c.unchanged
        );
        out
    }
}

/// Why a file cannot be applied to this server; every problem found, not just the first.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the file cannot be applied, nothing was changed:\n{}", .0.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
pub struct PlanError(pub Vec<String>);

/// A call that failed while applying.
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot {action} {resource}: {source}\nnote: {done} of {total} changes were made before this one; fix the problem and run apply again, it continues from there"
)]
pub struct ApplyError {
    action: &'static str,
    resource: Resource,
    source: ClientError,
    done: usize,
    total: usize,
}

/// Validation context for comparing settings: file paths are only checked for `..`, since
/// which absolute directories a server allows is the server's business.
fn lenient_build_context() -> BuildContext {
    BuildContext {
        files_dir: PathBuf::from("/"),
        allowed_file_dirs: Vec::new(),
    }
}

/// Compute the plan. Pure: everything it needs from the server is in `server`.
pub fn plan(
    file: &WorkspaceFile,
    server: &ServerState,
    options: ApplyOptions,
) -> Result<Plan, PlanError> {
    let mut problems = Vec::new();
    let mut steps = Vec::new();

    if let Some(ws) = &file.workspace {
        steps.push(plan_workspace(ws, server));
    }

    // Sources by name.
    let server_sources = by_name(server.sources.iter().map(|s| (s.name.as_str(), s)));
    for spec in &file.sources {
        let resource = Resource::Source(spec.name.clone());
        let current = match server_sources.get(spec.name.as_str()).map(Vec::as_slice) {
            None | Some([]) => None,
            Some([one]) => Some(*one),
            Some(many) => {
                problems.push(ambiguous("sources", &spec.name, many.iter().map(|s| &s.id)));
                continue;
            }
        };
        let Some(current) = current else {
            let mut body = json!({"name": spec.name});
            if let Some(limit) = spec.rate_limit_per_second {
                body["rateLimitPerSecond"] = json!(limit);
            }
            if let Some(policy) = spec.missing_consent_policy {
                body["missingConsentPolicy"] = json!(policy);
            }
            let mut summary = Vec::new();
            if !spec.enabled {
                summary.push("disabled".to_owned());
            }
            if let Some(limit) = spec.rate_limit_per_second {
                summary.push(format!("rate limit {limit}/s"));
            }
            steps.push(Step {
                resource,
                change: Change::Create(parenthesised(&summary)),
                op: Op::CreateSource {
                    body,
                    disable: !spec.enabled,
                },
            });
            continue;
        };
        let mut fields = Vec::new();
        let mut body = serde_json::Map::new();
        if current.enabled != spec.enabled {
            fields.push(FieldChange::new(
                "enabled",
                current.enabled.to_string(),
                spec.enabled.to_string(),
            ));
            body.insert("enabled".into(), json!(spec.enabled));
        }
        if current.rate_limit_per_second != spec.rate_limit_per_second {
            let show = |v: Option<u32>| v.map_or_else(|| "none".to_owned(), |v| v.to_string());
            fields.push(FieldChange::new(
                "rateLimitPerSecond",
                show(current.rate_limit_per_second),
                show(spec.rate_limit_per_second),
            ));
            body.insert(
                "rateLimitPerSecond".into(),
                json!(spec.rate_limit_per_second),
            );
        }
        if current.missing_consent_policy != spec.missing_consent_policy {
            let show = |v: Option<crate::consent::MissingConsentPolicy>| {
                v.map_or_else(|| "(workspace policy)".to_owned(), |v| compact(&json!(v)))
            };
            fields.push(FieldChange::new(
                "missingConsentPolicy",
                show(current.missing_consent_policy),
                show(spec.missing_consent_policy),
            ));
            body.insert(
                "missingConsentPolicy".into(),
                json!(spec.missing_consent_policy),
            );
        }
        steps.push(update_or_unchanged(
            resource,
            fields,
            Op::PatchSource {
                id: current.id.clone(),
                body: Value::Object(body),
            },
        ));
    }

    // Destinations by name.
    let server_destinations = by_name(server.destinations.iter().map(|d| (d.name.as_str(), d)));
    for spec in &file.destinations {
        let current = match server_destinations
            .get(spec.name.as_str())
            .map(Vec::as_slice)
        {
            None | Some([]) => None,
            Some([one]) => Some(*one),
            Some(many) => {
                problems.push(ambiguous(
                    "destinations",
                    &spec.name,
                    many.iter().map(|d| &d.id),
                ));
                continue;
            }
        };
        match plan_destination(spec, current, options) {
            Ok(step) => steps.push(step),
            Err(problem) => problems.push(problem),
        }
    }

    // Categories by id; their destinations by name.
    let file_destinations: HashSet<&str> =
        file.destinations.iter().map(|d| d.name.as_str()).collect();
    let server_names = server.destination_names();
    let server_categories: HashMap<&str, _> = server
        .categories
        .iter()
        .map(|c| (c.id.as_str(), c))
        .collect();
    for spec in &file.consent_categories {
        for name in &spec.destinations {
            let on_server = server_destinations.contains_key(name.as_str());
            if file_destinations.contains(name.as_str()) || (on_server && !options.prune) {
                continue;
            }
            problems.push(if on_server {
                format!(
                    "category {}: destination {name:?} is not in the file, so --prune would delete it; add it to destinations",
                    spec.id
                )
            } else {
                format!(
                    "category {}: destination {name:?} is neither in the file nor on the server; check the name (names are case-sensitive)",
                    spec.id
                )
            });
        }
        let resource = Resource::Category {
            id: spec.id.clone(),
            name: spec.name.clone(),
        };
        let wanted: BTreeSet<&str> = spec.destinations.iter().map(String::as_str).collect();
        let Some(current) = server_categories.get(spec.id.as_str()) else {
            let mut summary = Vec::new();
            if !wanted.is_empty() {
                summary.push(format!("destinations: {}", list(&wanted)));
            }
            if !spec.enabled {
                summary.push("disabled".to_owned());
            }
            steps.push(Step {
                resource,
                change: Change::Create(parenthesised(&summary)),
                op: Op::CreateCategory {
                    id: spec.id.clone(),
                    name: spec.name.clone(),
                    destinations: spec.destinations.clone(),
                    enabled: spec.enabled,
                },
            });
            continue;
        };
        let mut fields = Vec::new();
        let name = (current.name != spec.name).then(|| {
            fields.push(FieldChange::new(
                "name",
                format!("{:?}", current.name),
                format!("{:?}", spec.name),
            ));
            spec.name.clone()
        });
        let have: BTreeSet<&str> = current
            .destinations
            .iter()
            .map(|id| {
                server_names
                    .get(id.as_str())
                    .copied()
                    .unwrap_or(id.as_str())
            })
            .collect();
        let destinations = (have != wanted).then(|| {
            fields.push(FieldChange::new("destinations", list(&have), list(&wanted)));
            spec.destinations.clone()
        });
        let enabled = (current.enabled != spec.enabled).then(|| {
            fields.push(FieldChange::new(
                "enabled",
                current.enabled.to_string(),
                spec.enabled.to_string(),
            ));
            spec.enabled
        });
        steps.push(update_or_unchanged(
            resource,
            fields,
            Op::UpdateCategory {
                id: spec.id.clone(),
                name,
                destinations,
                enabled,
                final_name: spec.name.clone(),
            },
        ));
    }

    if options.prune {
        let keep: HashSet<&str> = file
            .consent_categories
            .iter()
            .map(|c| c.id.as_str())
            .collect();
        for c in server
            .categories
            .iter()
            .filter(|c| !keep.contains(c.id.as_str()))
        {
            steps.push(Step {
                resource: Resource::Category {
                    id: c.id.clone(),
                    name: c.name.clone(),
                },
                change: Change::Delete,
                op: Op::DeleteCategory { id: c.id.clone() },
            });
        }
        for d in server
            .destinations
            .iter()
            .filter(|d| !file_destinations.contains(d.name.as_str()))
        {
            steps.push(Step {
                resource: Resource::Destination(d.name.clone()),
                change: Change::Delete,
                op: Op::DeleteDestination { id: d.id.clone() },
            });
        }
        let keep: HashSet<&str> = file.sources.iter().map(|s| s.name.as_str()).collect();
        for s in server
            .sources
            .iter()
            .filter(|s| !keep.contains(s.name.as_str()))
        {
            steps.push(Step {
                resource: Resource::Source(s.name.clone()),
                change: Change::Delete,
                op: Op::DeleteSource { id: s.id.clone() },
            });
        }
    }

    if problems.is_empty() {
        Ok(Plan { steps })
    } else {
        Err(PlanError(problems))
    }
}

fn plan_workspace(ws: &super::workspace_file::WorkspaceSettings, server: &ServerState) -> Step {
    let current = &server.workspace;
    let mut fields = Vec::new();
    let mut body = serde_json::Map::new();
    if let Some(p) = ws.missing_consent_policy
        && p != current.missing_consent_policy
    {
        fields.push(FieldChange::new(
            "missingConsentPolicy",
            compact(&json!(current.missing_consent_policy)),
            compact(&json!(p)),
        ));
        body.insert("missingConsentPolicy".into(), json!(p));
    }
    if let Some(r) = ws.multi_category_rule
        && r != current.multi_category_rule
    {
        fields.push(FieldChange::new(
            "multiCategoryRule",
            compact(&json!(current.multi_category_rule)),
            compact(&json!(r)),
        ));
        body.insert("multiCategoryRule".into(), json!(r));
    }
    if let Some(h) = ws.dedup_window_hours
        && h != current.dedup_window_hours
    {
        fields.push(FieldChange::new(
            "dedupWindowHours",
            current.dedup_window_hours.to_string(),
            h.to_string(),
        ));
        body.insert("dedupWindowHours".into(), json!(h));
    }
    update_or_unchanged(
        Resource::Workspace,
        fields,
        Op::PatchWorkspace(Value::Object(body)),
    )
}

fn plan_destination(
    spec: &DestinationSpec,
    current: Option<&Destination>,
    options: ApplyOptions,
) -> Result<Step, String> {
    let resource = Resource::Destination(spec.name.clone());
    let kind = destinations::find(&spec.kind);
    // What the server would store and then show for the file's settings.
    let shown = match kind {
        Some(k) => {
            let normalized = k
                .validate(&spec.settings, &lenient_build_context())
                .map_err(|e| format!("destination {:?}: {e}", spec.name))?;
            destinations::redact(k, &normalized)
        }
        None if current.is_none() => {
            return Err(format!(
                "destination {:?}: unknown type {:?}; known types: {}",
                spec.name,
                spec.kind,
                destinations::type_names().join(", ")
            ));
        }
        // A type this CLI does not know but the server has: compare the settings as written.
        None => spec.settings.clone(),
    };
    let placeholders: Vec<String> = kind
        .map(|k| secret_pointers(k, &spec.settings))
        .unwrap_or_default()
        .into_iter()
        .filter(|p| spec.settings.pointer(p).and_then(Value::as_str) == Some(REDACTED))
        .collect();
    let enforce_consent = spec
        .enforce_consent
        .unwrap_or_else(|| kind.is_none_or(|k| k.enforce_consent_default()));

    let Some(current) = current else {
        if let Some(p) = placeholders.first() {
            return Err(format!(
                "destination {:?}: settings{} is {REDACTED:?}, which means \"keep the stored secret\", \
                 but the destination does not exist yet; write the secret instead, e.g. ${{MY_SECRET}} from the environment",
                spec.name,
                dotted(p)
            ));
        }
        let body = json!({
            "name": spec.name,
            "integration": spec.integration,
            "type": spec.kind,
            "settings": spec.settings,
            "enabled": spec.enabled,
            "enforceConsent": enforce_consent,
        });
        return Ok(Step {
            resource,
            change: Change::Create(format!(
                "({}, integration {:?}{})",
                spec.kind,
                spec.integration,
                if spec.enabled { "" } else { ", disabled" }
            )),
            op: Op::CreateDestination {
                name: spec.name.clone(),
                body,
            },
        });
    };

    if current.kind != spec.kind {
        return Err(format!(
            "destination {:?}: its type is {:?} on the server and {:?} in the file, and a type cannot change; \
             give the new destination another name (and --prune or delete the old one)",
            spec.name, current.kind, spec.kind
        ));
    }
    let mut fields = Vec::new();
    let mut body = serde_json::Map::new();
    if current.integration != spec.integration {
        fields.push(FieldChange::new(
            "integration",
            format!("{:?}", current.integration),
            format!("{:?}", spec.integration),
        ));
        body.insert("integration".into(), json!(spec.integration));
    }
    if current.enabled != spec.enabled {
        fields.push(FieldChange::new(
            "enabled",
            current.enabled.to_string(),
            spec.enabled.to_string(),
        ));
        body.insert("enabled".into(), json!(spec.enabled));
    }
    if current.enforce_consent != enforce_consent {
        fields.push(FieldChange::new(
            "enforceConsent",
            current.enforce_consent.to_string(),
            enforce_consent.to_string(),
        ));
        body.insert("enforceConsent".into(), json!(enforce_consent));
    }
    let mut settings_changes = Vec::new();
    diff_values("settings", &current.settings, &shown, &mut settings_changes);
    let written_secrets = kind
        .map(|k| secret_pointers(k, &spec.settings))
        .unwrap_or_default()
        .into_iter()
        .any(|p| {
            spec.settings
                .pointer(&p)
                .is_some_and(|v| !v.is_null() && v.as_str() != Some(REDACTED))
        });
    if !settings_changes.is_empty() {
        for p in &placeholders {
            if current.settings.pointer(p).is_none_or(Value::is_null) {
                return Err(format!(
                    "destination {:?}: settings{} is {REDACTED:?}, which means \"keep the stored secret\", \
                     but the server stores none there; write the secret instead, e.g. ${{MY_SECRET}} from the environment",
                    spec.name,
                    dotted(p)
                ));
            }
        }
        fields.extend(settings_changes);
        body.insert("settings".into(), spec.settings.clone());
    } else if options.update_secrets && written_secrets {
        fields.push(FieldChange::new(
            "settings (secrets)",
            REDACTED,
            "sent again (--update-secrets)",
        ));
        body.insert("settings".into(), spec.settings.clone());
    }
    Ok(update_or_unchanged(
        resource,
        fields,
        Op::PatchDestination {
            id: current.id.clone(),
            body: Value::Object(body),
        },
    ))
}

fn update_or_unchanged(resource: Resource, fields: Vec<FieldChange>, op: Op) -> Step {
    if fields.is_empty() {
        Step {
            resource,
            change: Change::Unchanged,
            op: Op::None,
        }
    } else {
        Step {
            resource,
            change: Change::Update(fields),
            op,
        }
    }
}

/// Group items by name, keeping the server's order within a name.
fn by_name<'a, T>(items: impl Iterator<Item = (&'a str, &'a T)>) -> HashMap<&'a str, Vec<&'a T>> {
    let mut map: HashMap<&str, Vec<&T>> = HashMap::new();
    for (name, item) in items {
        map.entry(name).or_default().push(item);
    }
    map
}

fn ambiguous<'a>(what: &str, name: &str, ids: impl Iterator<Item = &'a String>) -> String {
    let ids: Vec<&str> = ids.map(String::as_str).collect();
    format!(
        "the server has {} {what} named {name:?} ({}); names identify {what} in the file, so rename or delete all but one",
        ids.len(),
        ids.join(", ")
    )
}

fn parenthesised(parts: &[String]) -> String {
    if parts.is_empty() {
        String::new()
    } else {
        format!("({})", parts.join(", "))
    }
}

fn list(names: &BTreeSet<&str>) -> String {
    format!("[{}]", names.iter().copied().collect::<Vec<_>>().join(", "))
}

/// `/headers/Authorization` as `.headers.Authorization`.
fn dotted(pointer: &str) -> String {
    pointer
        .split('/')
        .skip(1)
        .map(|part| format!(".{}", part.replace("~1", "/").replace("~0", "~")))
        .collect()
}

/// The JSON pointers of the secret settings present in `settings`.
fn secret_pointers(kind: &dyn DestinationType, settings: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for path in kind.secret_paths() {
        match path.strip_suffix("/*") {
            None => out.push((*path).to_owned()),
            Some(parent) => {
                if let Some(Value::Object(map)) = settings.pointer(parent) {
                    out.extend(
                        map.keys().map(|k| {
                            format!("{parent}/{}", k.replace('~', "~0").replace('/', "~1"))
                        }),
                    );
                }
            }
        }
    }
    out
}

/// The leaves that differ between `from` and `to`, as `path.to.leaf` changes.
fn diff_values(path: &str, from: &Value, to: &Value, out: &mut Vec<FieldChange>) {
    match (from, to) {
        (Value::Object(a), Value::Object(b)) => {
            let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for key in keys {
                let child = format!("{path}.{key}");
                match (a.get(key), b.get(key)) {
                    (Some(x), Some(y)) => diff_values(&child, x, y, out),
                    (Some(x), None) => out.push(FieldChange::new(child, x.to_string(), "(none)")),
                    (None, Some(y)) => out.push(FieldChange::new(child, "(none)", y.to_string())),
                    (None, None) => {}
                }
            }
        }
        (a, b) if a != b => out.push(FieldChange::new(path, a.to_string(), b.to_string())),
        _ => {}
    }
}

/// Carry out the plan, calling `progress` with a line for each change made. Returns how many
/// changes were made.
pub async fn execute(
    plan: &Plan,
    server: &ServerState,
    client: &Client,
    progress: &mut dyn FnMut(String),
) -> Result<usize, ApplyError> {
    let total = plan.steps.iter().filter(|s| s.op != Op::None).count();
    let mut done = 0;
    let mut destination_ids: HashMap<String, String> = server
        .destinations
        .iter()
        .map(|d| (d.name.clone(), d.id.clone()))
        .collect();
    for step in &plan.steps {
        let fail = |action: &'static str, source: ClientError| ApplyError {
            action,
            resource: step.resource.clone(),
            source,
            done,
            total,
        };
        match &step.op {
            Op::None => continue,
            Op::PatchWorkspace(body) => {
                client
                    .patch("/api/v1/workspace", body)
                    .await
                    .map_err(|e| fail("update", e))?;
                progress(format!("updated {}", step.resource));
            }
            Op::CreateSource { body, disable } => {
                let created = client
                    .post("/api/v1/sources", body)
                    .await
                    .map_err(|e| fail("create", e))?;
                let id = created["id"].as_str().unwrap_or_default().to_owned();
                if *disable {
                    client
                        .patch(
                            &format!("/api/v1/sources/{}", encode(&id)),
                            &json!({"enabled": false}),
                        )
                        .await
                        .map_err(|e| fail("disable", e))?;
                }
                progress(format!(
                    "created {} (id {id}, write key {})",
                    step.resource,
                    compact(&created["writeKey"])
                ));
            }
            Op::PatchSource { id, body } => {
                client
                    .patch(&format!("/api/v1/sources/{}", encode(id)), body)
                    .await
                    .map_err(|e| fail("update", e))?;
                progress(format!("updated {}", step.resource));
            }
            Op::DeleteSource { id } => {
                client
                    .delete(&format!("/api/v1/sources/{}", encode(id)))
                    .await
                    .map_err(|e| fail("delete", e))?;
                progress(format!("deleted {} (id {id})", step.resource));
            }
            Op::CreateDestination { name, body } => {
                let created = client
                    .post("/api/v1/destinations", body)
                    .await
                    .map_err(|e| fail("create", e))?;
                let id = created["id"].as_str().unwrap_or_default().to_owned();
                progress(format!("created {} (id {id})", step.resource));
                destination_ids.insert(name.clone(), id);
            }
            Op::PatchDestination { id, body } => {
                client
                    .patch(&format!("/api/v1/destinations/{}", encode(id)), body)
                    .await
                    .map_err(|e| fail("update", e))?;
                progress(format!("updated {}", step.resource));
            }
            Op::DeleteDestination { id } => {
                client
                    .delete(&format!("/api/v1/destinations/{}", encode(id)))
                    .await
                    .map_err(|e| fail("delete", e))?;
                progress(format!("deleted {} (id {id})", step.resource));
            }
            Op::CreateCategory {
                id,
                name,
                destinations,
                enabled,
            } => {
                let ids = resolve(destinations, &destination_ids);
                client
                    .post(
                        "/api/v1/consent/categories",
                        &json!({"id": id, "name": name, "destinations": ids}),
                    )
                    .await
                    .map_err(|e| fail("create", e))?;
                if !enabled {
                    client
                        .post(
                            &format!("/api/v1/consent/categories/{}/disable", encode(id)),
                            &json!({"confirmName": name}),
                        )
                        .await
                        .map_err(|e| fail("disable", e))?;
                }
                progress(format!("created {}", step.resource));
            }
            Op::UpdateCategory {
                id,
                name,
                destinations,
                enabled,
                final_name,
            } => {
                let path = format!("/api/v1/consent/categories/{}", encode(id));
                let mut body = serde_json::Map::new();
                if let Some(name) = name {
                    body.insert("name".into(), json!(name));
                }
                if let Some(destinations) = destinations {
                    body.insert(
                        "destinations".into(),
                        json!(resolve(destinations, &destination_ids)),
                    );
                }
                if !body.is_empty() {
                    client
                        .patch(&path, &Value::Object(body))
                        .await
                        .map_err(|e| fail("update", e))?;
                }
                match enabled {
                    Some(false) => {
                        client
                            .post(
                                &format!("{path}/disable"),
                                &json!({"confirmName": final_name}),
                            )
                            .await
                            .map_err(|e| fail("disable", e))?;
                    }
                    Some(true) => {
                        client
                            .post(&format!("{path}/enable"), &json!({}))
                            .await
                            .map_err(|e| fail("enable", e))?;
                    }
                    None => {}
                }
                progress(format!("updated {}", step.resource));
            }
            Op::DeleteCategory { id } => {
                client
                    .delete(&format!("/api/v1/consent/categories/{}", encode(id)))
                    .await
                    .map_err(|e| fail("delete", e))?;
                progress(format!("deleted {}", step.resource));
            }
        }
        done += 1;
    }
    Ok(done)
}

/// Destination names to ids. The plan checked every name exists; an unknown one is sent as
/// is, so the server's error names it.
fn resolve(names: &[String], ids: &HashMap<String, String>) -> Vec<String> {
    names
        .iter()
        .map(|n| ids.get(n).cloned().unwrap_or_else(|| n.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::client::{Category, Source, Workspace};
    use crate::cli::workspace_file::WorkspaceFile;
    use crate::consent::{MissingConsentPolicy, MultiCategoryRule};

    fn server() -> ServerState {
        ServerState {
            workspace: Workspace {
                missing_consent_policy: MissingConsentPolicy::Allow,
                multi_category_rule: MultiCategoryRule::All,
                dedup_window_hours: 24,
            },
            sources: vec![Source {
                id: "src_1".into(),
                name: "Default source".into(),
                write_key: "wk".into(),
                enabled: true,
                rate_limit_per_second: None,
                missing_consent_policy: None,
                created_at: String::new(),
            }],
            destinations: vec![Destination {
                id: "dst_1".into(),
                name: "Hooks".into(),
                integration: "Webhooks".into(),
                kind: "webhook".into(),
                settings: json!({"url": "http://hooks.test/in", "headers": {"Authorization": "********"},
                                  "batchSize": 1, "timeoutMs": 10000, "secret": "********"}),
                enabled: true,
                enforce_consent: true,
                created_at: String::new(),
                status: None,
            }],
            categories: vec![Category {
                id: "C0004".into(),
                name: "Advertising".into(),
                enabled: true,
                destinations: vec!["dst_1".into()],
                created_at: String::new(),
            }],
        }
    }

    fn file(yaml: &str) -> WorkspaceFile {
        WorkspaceFile::parse(yaml, "test.yaml", &|name| {
            (name == "HOOK_SECRET").then(|| "rotated".to_owned())
        })
        .unwrap()
    }

    /// The plan as lines: `<symbol> <resource>` plus `  field: from -> to`.
    fn lines(plan: &Plan) -> Vec<String> {
        plan.render()
            .lines()
            .filter(|l| !l.starts_with("Plan:"))
            .map(|l| l.trim().to_owned())
            .collect()
    }

    fn check(yaml: &str, options: ApplyOptions, expected: &[&str]) {
        let plan = plan(&file(yaml), &server(), options).unwrap();
        assert_eq!(lines(&plan), expected, "{yaml}");
    }

    const SAME: &str = "\
sources:
  - name: Default source
destinations:
  - name: Hooks
    integration: Webhooks
    type: webhook
    settings:
      url: http://hooks.test/in
      headers: {Authorization: '********'}
      secret: '********'
consentCategories:
  - id: C0004
    name: Advertising
    destinations: [Hooks]
";

    #[test]
    fn export_then_plan_is_empty() {
        let state = server();
        let exported = state.to_file().unwrap();
        let yaml = exported.to_yaml("test").unwrap();
        let plan = plan(&file(&yaml), &state, ApplyOptions::default()).unwrap();
        assert!(!plan.has_changes(), "{}", plan.render());
        assert_eq!(plan.counts().unchanged, 4);
    }

    #[test]
    fn defaults_and_placeholders_compare_equal() {
        check(
            SAME,
            ApplyOptions::default(),
            &[
                "= source \"Default source\" (no change)",
                "= destination \"Hooks\" (no change)",
                "= category C0004 \"Advertising\" (no change)",
            ],
        );
    }

    #[test]
    fn diffs() {
        // (what to change in SAME, options, expected plan lines)
        let cases: &[(&str, &str, ApplyOptions, &[&str])] = &[
            (
                "  - name: Default source\n",
                "  - name: Default source\n    rateLimitPerSecond: 50\n    enabled: false\n",
                ApplyOptions::default(),
                &[
                    "~ update source \"Default source\"",
                    "enabled: true -> false",
                    "rateLimitPerSecond: none -> 50",
                ],
            ),
            (
                "      url: http://hooks.test/in\n",
                "      url: http://hooks.test/v2\n      batchSize: 10\n",
                ApplyOptions::default(),
                &[
                    "~ update destination \"Hooks\"",
                    "settings.batchSize: 1 -> 10",
                    "settings.url: \"http://hooks.test/in\" -> \"http://hooks.test/v2\"",
                ],
            ),
            (
                // A secret written out is not compared (it cannot be read back)…
                "      secret: '********'\n",
                "      secret: ${HOOK_SECRET}\n",
                ApplyOptions::default(),
                &["= destination \"Hooks\" (no change)"],
            ),
            (
                // … unless asked to send it.
                "      secret: '********'\n",
                "      secret: ${HOOK_SECRET}\n",
                ApplyOptions {
                    update_secrets: true,
                    ..ApplyOptions::default()
                },
                &[
                    "~ update destination \"Hooks\"",
                    "settings (secrets): ******** -> sent again (--update-secrets)",
                ],
            ),
            (
                "      secret: '********'\n",
                "",
                ApplyOptions::default(),
                &[
                    "~ update destination \"Hooks\"",
                    "settings.secret: \"********\" -> (none)",
                ],
            ),
            (
                "    type: webhook\n",
                "    type: webhook\n    enforceConsent: false\n    enabled: false\n",
                ApplyOptions::default(),
                &[
                    "~ update destination \"Hooks\"",
                    "enabled: true -> false",
                    "enforceConsent: true -> false",
                ],
            ),
            (
                "    name: Advertising\n    destinations: [Hooks]\n",
                "    name: Ads\n    enabled: false\n",
                ApplyOptions::default(),
                &[
                    "~ update category C0004 \"Ads\"",
                    "name: \"Advertising\" -> \"Ads\"",
                    "destinations: [Hooks] -> []",
                    "enabled: true -> false",
                ],
            ),
        ];
        for (from, to, options, expected) in cases {
            assert!(SAME.contains(from), "{from}");
            let yaml = SAME.replace(from, to);
            let plan = plan(&file(&yaml), &server(), *options).unwrap();
            let got = lines(&plan);
            let changed: Vec<&str> = got
                .iter()
                .map(String::as_str)
                .filter(|l| !l.ends_with("(no change)") || expected.contains(l))
                .collect();
            assert_eq!(changed, *expected, "{to}");
        }
    }

    #[test]
    fn creates_in_dependency_order_and_prunes_in_reverse() {
        let yaml = "\
sources:
  - name: Web
    enabled: false
destinations:
  - name: Archive
    integration: Archive
    type: file
    settings: {path: archive.jsonl}
consentCategories:
  - id: C0002
    name: Analytics
    destinations: [Archive]
";
        check(
            yaml,
            ApplyOptions {
                prune: true,
                ..ApplyOptions::default()
            },
            &[
                "+ create source \"Web\" (disabled)",
                "+ create destination \"Archive\" (file, integration \"Archive\")",
                "+ create category C0002 \"Analytics\" (destinations: [Archive])",
                "- delete category C0004 \"Advertising\"",
                "- delete destination \"Hooks\"",
                "- delete source \"Default source\"",
            ],
        );
        // Without --prune nothing is deleted.
        let plan = plan(&file(yaml), &server(), ApplyOptions::default()).unwrap();
        assert_eq!(plan.counts().delete, 0);
        assert_eq!(plan.counts().create, 3);
    }

    #[test]
    fn problems_are_all_reported() {
        let yaml = "\
destinations:
  - name: New hooks
    integration: W
    type: webhook
    settings: {url: 'http://x', secret: '********'}
  - name: Hooks
    integration: Webhooks
    type: file
    settings: {path: x}
  - name: Bad
    integration: B
    type: webhook
    settings: {url: 'http://x', batchSiz: 3}
consentCategories:
  - id: C0009
    name: Nine
    destinations: [Missing]
";
        let err = plan(&file(yaml), &server(), ApplyOptions::default()).unwrap_err();
        assert_eq!(err.0.len(), 4, "{err}");
        let text = err.to_string();
        assert!(
            text.contains("\"New hooks\": settings.secret is \"********\""),
            "{text}"
        );
        assert!(text.contains("a type cannot change"), "{text}");
        assert!(text.contains("unknown field `batchSiz`"), "{text}");
        assert!(
            text.contains("\"Missing\" is neither in the file nor on the server"),
            "{text}"
        );
    }

    #[test]
    fn placeholder_without_a_stored_secret_is_refused() {
        let mut state = server();
        state.destinations[0]
            .settings
            .as_object_mut()
            .unwrap()
            .remove("secret");
        let yaml = SAME.replace("http://hooks.test/in", "http://hooks.test/v2");
        let err = plan(&file(&yaml), &state, ApplyOptions::default()).unwrap_err();
        assert!(
            err.to_string().contains("the server stores none there"),
            "{err}"
        );
    }

    #[test]
    fn duplicate_names_on_the_server_are_ambiguous() {
        let mut state = server();
        let mut twin = state.sources[0].clone();
        twin.id = "src_2".into();
        state.sources.push(twin);
        let err = plan(&file(SAME), &state, ApplyOptions::default()).unwrap_err();
        assert!(
            err.to_string()
                .contains("2 sources named \"Default source\" (src_1, src_2)"),
            "{err}"
        );
        assert!(state.to_file().is_err());
    }

    #[test]
    fn workspace_fields_left_out_are_not_managed() {
        check(
            "workspace:\n  multiCategoryRule: any\n",
            ApplyOptions::default(),
            &["~ update workspace", "multiCategoryRule: all -> any"],
        );
        check(
            "workspace: {}\n",
            ApplyOptions::default(),
            &["= workspace (no change)"],
        );
    }

    #[test]
    fn pointers_are_shown_dotted() {
        assert_eq!(dotted("/headers/X~1Y"), ".headers.X/Y");
        assert_eq!(dotted("/secret"), ".secret");
    }
}

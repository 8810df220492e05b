//! The audit trail: an append-only record of every configuration change (SPEC §1).
//!
//! Entries are written by the store in the same transaction as the change they describe, so
//! there is no change without its entry and no entry without its change. Nothing updates or
//! deletes entries except retention pruning of entries older than the retention period.

use rusqlite::{Connection, Transaction, params};
use serde::Serialize;
use serde_json::Value;

use super::StoreResult;
use crate::clock;

/// Who made a change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Actor {
    /// User id, or `system` for changes Sluice makes itself.
    pub id: String,
    /// Human-readable: the user's email.
    pub label: String,
}

impl Actor {
    pub fn system() -> Actor {
        Actor {
            id: "system".into(),
            label: "system".into(),
        }
    }
}

/// One entry as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEntry {
    pub id: i64,
    /// Unix ms.
    pub at: i64,
    pub actor: Actor,
    pub action: String,
    pub resource_type: String,
    pub resource_id: String,
    pub before: Option<Value>,
    pub after: Option<Value>,
}

/// Filters for listing.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
    pub actor: Option<String>,
    pub resource_type: Option<String>,
    pub resource_id: Option<String>,
    pub action: Option<String>,
    /// Entries with ids below this (pages go newest first).
    pub before_id: Option<i64>,
    pub limit: usize,
}

pub(super) fn record(
    tx: &Transaction<'_>,
    actor: &Actor,
    action: &str,
    resource_type: &str,
    resource_id: &str,
    before: Option<Value>,
    after: Option<Value>,
) -> StoreResult<()> {
    tx.prepare_cached(
        "INSERT INTO audit(at, actor_id, actor_label, action, resource_type, resource_id, before, after)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        clock::now_ms(),
        actor.id,
        actor.label,
        action,
        resource_type,
        resource_id,
        before.map(|v| v.to_string()),
        after.map(|v| v.to_string())
    ])?;
    Ok(())
}

pub(super) fn query(conn: &Connection, q: &AuditQuery) -> StoreResult<Vec<AuditEntry>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, at, actor_id, actor_label, action, resource_type, resource_id, before, after FROM audit
         WHERE (?1 IS NULL OR at >= ?1) AND (?2 IS NULL OR at < ?2)
           AND (?3 IS NULL OR actor_id = ?3 OR actor_label = ?3)
           AND (?4 IS NULL OR resource_type = ?4) AND (?5 IS NULL OR resource_id = ?5)
           AND (?6 IS NULL OR action = ?6) AND (?7 IS NULL OR id < ?7)
         ORDER BY id DESC LIMIT ?8",
    )?;
    let rows = stmt.query_map(
        params![
            q.from_ms,
            q.to_ms,
            q.actor,
            q.resource_type,
            q.resource_id,
            q.action,
            q.before_id,
            q.limit as i64
        ],
        |r| {
            let json = |s: Option<String>| s.and_then(|s| serde_json::from_str(&s).ok());
            Ok(AuditEntry {
                id: r.get(0)?,
                at: r.get(1)?,
                actor: Actor {
                    id: r.get(2)?,
                    label: r.get(3)?,
                },
                action: r.get(4)?,
                resource_type: r.get(5)?,
                resource_id: r.get(6)?,
                before: json(r.get(7)?),
                after: json(r.get(8)?),
            })
        },
    )?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub(super) fn prune(conn: &Connection, older_than_ms: i64) -> StoreResult<usize> {
    Ok(conn.execute("DELETE FROM audit WHERE at < ?1", [older_than_ms])?)
}

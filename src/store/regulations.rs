//! Regulations (GDPR / CCPA requests) and the suppression list (SPEC §7).

use std::collections::HashSet;
use std::str::FromStr;

use rusqlite::{Connection, OptionalExtension, Row, params};
use serde::{Deserialize, Serialize};

use super::{Actor, ControlStore, StoreError, StoreResult, audit, new_id};
use crate::clock;

/// Segment's regulation types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RegulationType {
    SuppressOnly,
    Unsuppress,
    DeleteInternal,
    SuppressWithDeleteInternal,
    DeleteOnly,
    SuppressWithDelete,
}

impl RegulationType {
    pub fn as_str(self) -> &'static str {
        match self {
            RegulationType::SuppressOnly => "SUPPRESS_ONLY",
            RegulationType::Unsuppress => "UNSUPPRESS",
            RegulationType::DeleteInternal => "DELETE_INTERNAL",
            RegulationType::SuppressWithDeleteInternal => "SUPPRESS_WITH_DELETE_INTERNAL",
            RegulationType::DeleteOnly => "DELETE_ONLY",
            RegulationType::SuppressWithDelete => "SUPPRESS_WITH_DELETE",
        }
    }

    pub fn suppresses(self) -> bool {
        matches!(
            self,
            Self::SuppressOnly | Self::SuppressWithDeleteInternal | Self::SuppressWithDelete
        )
    }

    pub fn deletes_internally(self) -> bool {
        matches!(
            self,
            Self::DeleteInternal
                | Self::SuppressWithDeleteInternal
                | Self::DeleteOnly
                | Self::SuppressWithDelete
        )
    }

    /// Also from destinations whose type supports deletion.
    pub fn deletes_from_destinations(self) -> bool {
        matches!(self, Self::DeleteOnly | Self::SuppressWithDelete)
    }
}

impl FromStr for RegulationType {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        serde_json::from_value(serde_json::Value::String(s.to_owned())).map_err(|_| ())
    }
}

/// A regulation as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Regulation {
    pub id: String,
    pub regulation_type: RegulationType,
    pub subject_type: String,
    pub subject_ids: Vec<String>,
    /// `INITIALIZED`, `RUNNING`, `FINISHED`, `FAILED` or `PARTIAL_SUCCESS`.
    pub status: String,
    /// What processing did (counts, per-destination results); no personal data beyond the ids.
    pub details: serde_json::Value,
    pub created_by: String,
    pub created_at: i64,
    pub finished_at: Option<i64>,
}

/// The suppression list, as the ingest path checks it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Suppressed {
    pub user_ids: HashSet<String>,
    pub anonymous_ids: HashSet<String>,
}

const COLUMNS: &str = "id, regulation_type, subject_type, subject_ids, status, details, created_by, created_at, finished_at";

fn from_row(r: &Row<'_>) -> rusqlite::Result<Regulation> {
    Ok(Regulation {
        id: r.get(0)?,
        regulation_type: r
            .get::<_, String>(1)?
            .parse()
            .unwrap_or(RegulationType::SuppressOnly),
        subject_type: r.get(2)?,
        subject_ids: serde_json::from_str(&r.get::<_, String>(3)?).unwrap_or_default(),
        status: r.get(4)?,
        details: serde_json::from_str(&r.get::<_, String>(5)?).unwrap_or(serde_json::Value::Null),
        created_by: r.get(6)?,
        created_at: r.get(7)?,
        finished_at: r.get(8)?,
    })
}

pub(super) fn suppressed(conn: &Connection) -> StoreResult<Suppressed> {
    let users = conn
        .prepare("SELECT user_id FROM suppressions")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let anons = conn
        .prepare("SELECT anonymous_id FROM suppressed_anonymous_ids")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    Ok(Suppressed {
        user_ids: users,
        anonymous_ids: anons,
    })
}

/// Most subject ids in one regulation (Segment's limit).
pub const MAX_SUBJECTS: usize = 5_000;

impl ControlStore {
    /// Record a new regulation (status `INITIALIZED`) and its audit entry.
    pub async fn create_regulation(
        &self,
        regulation_type: RegulationType,
        subject_type: &str,
        subject_ids: Vec<String>,
        actor: &Actor,
    ) -> StoreResult<Regulation> {
        if subject_type != "USER_ID" {
            return Err(StoreError::Invalid(format!(
                "subjectType {subject_type:?} is not supported; use \"USER_ID\""
            )));
        }
        if subject_ids.is_empty() || subject_ids.len() > MAX_SUBJECTS {
            return Err(StoreError::Invalid(format!(
                "subjectIds must hold 1 to {MAX_SUBJECTS} user ids (got {}); split larger requests",
                subject_ids.len()
            )));
        }
        if let Some(bad) = subject_ids
            .iter()
            .find(|id| id.is_empty() || id.len() > 200)
        {
            return Err(StoreError::Invalid(format!(
                "subject id {bad:?} must be 1 to 200 characters"
            )));
        }
        let actor = actor.clone();
        let subject_type = subject_type.to_owned();
        self.call(move |conn| {
            let tx = conn.transaction()?;
            let id = new_id("reg", 12);
            tx.execute(
                "INSERT INTO regulations(id, regulation_type, subject_type, subject_ids, status, details, created_by, created_at)
                 VALUES (?1, ?2, ?3, ?4, 'INITIALIZED', '{}', ?5, ?6)",
                params![
                    id,
                    regulation_type.as_str(),
                    subject_type,
                    serde_json::to_string(&subject_ids).unwrap_or_default(),
                    actor.label,
                    clock::now_ms()
                ],
            )?;
            let created = tx.query_row(&format!("SELECT {COLUMNS} FROM regulations WHERE id = ?1"), [&id], from_row)?;
            audit::record(
                &tx,
                &actor,
                "regulation.created",
                "regulation",
                &id,
                None,
                Some(serde_json::json!({
                    "regulationType": regulation_type.as_str(),
                    "subjectType": created.subject_type,
                    "subjects": created.subject_ids.len(),
                })),
            )?;
            tx.commit()?;
            Ok(created)
        })
        .await
    }

    pub async fn set_regulation_status(
        &self,
        id: &str,
        status: &'static str,
        details: serde_json::Value,
    ) -> StoreResult<()> {
        let id = id.to_owned();
        self.call(move |conn| {
            let finished =
                matches!(status, "FINISHED" | "FAILED" | "PARTIAL_SUCCESS").then(clock::now_ms);
            conn.execute(
                "UPDATE regulations SET status = ?2, details = ?3, finished_at = ?4 WHERE id = ?1",
                params![id, status, details.to_string(), finished],
            )?;
            Ok(())
        })
        .await
    }

    pub async fn regulation(&self, id: &str) -> StoreResult<Regulation> {
        let id = id.to_owned();
        self.call(move |conn| {
            conn.query_row(
                &format!("SELECT {COLUMNS} FROM regulations WHERE id = ?1"),
                [&id],
                from_row,
            )
            .optional()?
            .ok_or_else(|| StoreError::NotFound(format!("no regulation with id {id}")))
        })
        .await
    }

    pub async fn regulations(&self) -> StoreResult<Vec<Regulation>> {
        self.call(|conn| {
            let mut stmt = conn.prepare(&format!(
                "SELECT {COLUMNS} FROM regulations ORDER BY created_at DESC, id"
            ))?;
            let rows = stmt.query_map([], from_row)?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    /// Suppress these users and the anonymous ids linked to them.
    pub async fn suppress(
        &self,
        regulation_id: &str,
        user_ids: Vec<String>,
        anonymous_ids: Vec<(String, String)>,
    ) -> StoreResult<()> {
        let regulation_id = regulation_id.to_owned();
        self.call(move |conn| {
            let tx = conn.transaction()?;
            let now = clock::now_ms();
            for user in &user_ids {
                tx.execute(
                    "INSERT OR IGNORE INTO suppressions(user_id, regulation_id, created_at) VALUES (?1, ?2, ?3)",
                    params![user, regulation_id, now],
                )?;
            }
            for (anon, user) in &anonymous_ids {
                tx.execute(
                    "INSERT OR IGNORE INTO suppressed_anonymous_ids(anonymous_id, user_id) VALUES (?1, ?2)",
                    params![anon, user],
                )?;
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    /// Lift the suppression of these users (and of their linked anonymous ids).
    pub async fn unsuppress(&self, user_ids: Vec<String>) -> StoreResult<usize> {
        self.call(move |conn| {
            let tx = conn.transaction()?;
            let mut n = 0;
            for user in &user_ids {
                tx.execute(
                    "DELETE FROM suppressed_anonymous_ids WHERE user_id = ?1",
                    [user],
                )?;
                n += tx.execute("DELETE FROM suppressions WHERE user_id = ?1", [user])?;
            }
            tx.commit()?;
            Ok(n)
        })
        .await
    }

    /// The suppression list: `(userId, regulationId, createdAt)`.
    pub async fn suppressions(&self) -> StoreResult<Vec<(String, String, i64)>> {
        self.call(|conn| {
            let mut stmt = conn.prepare("SELECT user_id, regulation_id, created_at FROM suppressions ORDER BY created_at, user_id")?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }
}

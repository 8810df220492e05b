//! Sources and their write keys.

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::model::{parse_policy, policy_str, validate_name};
use super::{
    Actor, ControlStore, Source, StoreError, StoreResult, audit, conflict_on_unique, new_id,
    new_secret,
};
use crate::clock;
use crate::consent::MissingConsentPolicy;

#[derive(Debug, Clone)]
pub struct NewSource {
    pub name: String,
    pub rate_limit_per_second: Option<u32>,
    pub missing_consent_policy: Option<MissingConsentPolicy>,
    /// Use this write key instead of generating one (bootstrap and config-as-code).
    pub write_key: Option<String>,
}

/// A partial update. For the nullable fields, `Some(None)` clears the value.
#[derive(Debug, Clone, Default)]
pub struct SourcePatch {
    pub name: Option<String>,
    pub enabled: Option<bool>,
    pub rate_limit_per_second: Option<Option<u32>>,
    pub missing_consent_policy: Option<Option<MissingConsentPolicy>>,
}

const COLUMNS: &str =
    "key, id, name, write_key, enabled, rate_limit_per_second, missing_consent_policy, created_at";

fn from_row(r: &Row<'_>) -> rusqlite::Result<Source> {
    Ok(Source {
        key: r.get(0)?,
        id: r.get(1)?,
        name: r.get(2)?,
        write_key: r.get(3)?,
        enabled: r.get(4)?,
        rate_limit_per_second: r.get(5)?,
        missing_consent_policy: r.get::<_, Option<String>>(6)?.as_deref().map(parse_policy),
        created_at: r.get(7)?,
    })
}

pub(super) fn list(conn: &Connection) -> StoreResult<Vec<Source>> {
    let mut stmt = conn.prepare(&format!("SELECT {COLUMNS} FROM sources ORDER BY key"))?;
    let rows = stmt.query_map([], from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

fn get(conn: &Connection, id: &str) -> StoreResult<Source> {
    conn.query_row(
        &format!("SELECT {COLUMNS} FROM sources WHERE id = ?1"),
        [id],
        from_row,
    )
    .optional()?
    .ok_or_else(|| StoreError::NotFound(format!("no source with id {id}")))
}

/// Write keys are 32 alphanumerics: about 190 bits, over SPEC §1's 128.
const WRITE_KEY_LEN: usize = 32;

fn validate_rate(rate: Option<u32>) -> StoreResult<()> {
    match rate {
        Some(0) => Err(StoreError::Invalid(
            "rateLimitPerSecond must be at least 1 (or null for no limit)".into(),
        )),
        Some(r) if r > 1_000_000 => Err(StoreError::Invalid(
            "rateLimitPerSecond must be at most 1000000".into(),
        )),
        _ => Ok(()),
    }
}

impl ControlStore {
    pub async fn sources(&self) -> StoreResult<Vec<Source>> {
        self.call(|conn| list(conn)).await
    }

    pub async fn source(&self, id: &str) -> StoreResult<Source> {
        let id = id.to_owned();
        self.call(move |conn| get(conn, &id)).await
    }

    pub async fn create_source(&self, new: NewSource, actor: &Actor) -> StoreResult<Source> {
        validate_name("source", &new.name)?;
        validate_rate(new.rate_limit_per_second)?;
        if let Some(key) = &new.write_key
            && (key.len() < 16 || key.len() > 128 || !key.chars().all(|c| c.is_ascii_graphic()))
        {
            return Err(StoreError::Invalid(
                "a write key must be 16 to 128 printable ASCII characters".into(),
            ));
        }
        let actor = actor.clone();
        self.call(move |conn| {
            let tx = conn.transaction()?;
            let id = new_id("src", 12);
            let write_key = new.write_key.unwrap_or_else(|| new_secret(WRITE_KEY_LEN));
            tx.execute(
                "INSERT INTO sources(id, name, write_key, enabled, rate_limit_per_second, missing_consent_policy, created_at)
                 VALUES (?1, ?2, ?3, 1, ?4, ?5, ?6)",
                params![
                    id,
                    new.name,
                    write_key,
                    new.rate_limit_per_second,
                    new.missing_consent_policy.map(policy_str),
                    clock::now_ms()
                ],
            )
            .map_err(|e| conflict_on_unique(e, |_| "a source with this write key already exists".into()))?;
            let created = get(&tx, &id)?;
            audit::record(&tx, &actor, "source.created", "source", &id, None, Some(created.audit_json()))?;
            tx.commit()?;
            Ok(created)
        })
        .await
    }

    /// Apply the patch; returns the source before and after.
    pub async fn update_source(
        &self,
        id: &str,
        patch: SourcePatch,
        actor: &Actor,
    ) -> StoreResult<(Source, Source)> {
        if let Some(name) = &patch.name {
            validate_name("source", name)?;
        }
        if let Some(rate) = patch.rate_limit_per_second {
            validate_rate(rate)?;
        }
        let id = id.to_owned();
        let actor = actor.clone();
        self.call(move |conn| {
            let tx = conn.transaction()?;
            let before = get(&tx, &id)?;
            let after = Source {
                name: patch.name.unwrap_or_else(|| before.name.clone()),
                enabled: patch.enabled.unwrap_or(before.enabled),
                rate_limit_per_second: patch.rate_limit_per_second.unwrap_or(before.rate_limit_per_second),
                missing_consent_policy: patch.missing_consent_policy.unwrap_or(before.missing_consent_policy),
                ..before.clone()
            };
            tx.execute(
                "UPDATE sources SET name = ?2, enabled = ?3, rate_limit_per_second = ?4, missing_consent_policy = ?5 WHERE id = ?1",
                params![
                    id,
                    after.name,
                    after.enabled,
                    after.rate_limit_per_second,
                    after.missing_consent_policy.map(policy_str)
                ],
            )?;
            if before != after {
                audit::record(&tx, &actor, "source.updated", "source", &id,
                    Some(before.audit_json()), Some(after.audit_json()))?;
            }
            tx.commit()?;
            Ok((before, after))
        })
        .await
    }

    pub async fn delete_source(&self, id: &str, actor: &Actor) -> StoreResult<Source> {
        let id = id.to_owned();
        let actor = actor.clone();
        self.call(move |conn| {
            let tx = conn.transaction()?;
            let before = get(&tx, &id)?;
            tx.execute("DELETE FROM sources WHERE id = ?1", [&id])?;
            audit::record(
                &tx,
                &actor,
                "source.deleted",
                "source",
                &id,
                Some(before.audit_json()),
                None,
            )?;
            tx.commit()?;
            Ok(before)
        })
        .await
    }
}

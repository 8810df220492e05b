//! Destinations. Type settings are validated by the destination registry before they get here.

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::model::validate_name;
use super::{Actor, ControlStore, Destination, StoreError, StoreResult, audit, new_id};
use crate::clock;

#[derive(Debug, Clone)]
pub struct NewDestination {
    pub name: String,
    pub integration: String,
    pub kind: String,
    pub settings: serde_json::Value,
    pub enabled: bool,
    pub enforce_consent: bool,
}

#[derive(Debug, Clone, Default)]
pub struct DestinationPatch {
    pub name: Option<String>,
    pub integration: Option<String>,
    pub settings: Option<serde_json::Value>,
    pub enabled: Option<bool>,
    pub enforce_consent: Option<bool>,
}

const COLUMNS: &str =
    "key, id, name, integration, type, settings, enabled, enforce_consent, created_at, filters";

fn from_row(r: &Row<'_>) -> rusqlite::Result<Destination> {
    let settings: String = r.get(5)?;
    Ok(Destination {
        key: r.get(0)?,
        id: r.get(1)?,
        name: r.get(2)?,
        integration: r.get(3)?,
        kind: r.get(4)?,
        settings: serde_json::from_str(&settings).unwrap_or(serde_json::Value::Null),
        enabled: r.get(6)?,
        enforce_consent: r.get(7)?,
        created_at: r.get(8)?,
        filters: serde_json::from_str(&r.get::<_, String>(9)?).unwrap_or_default(),
    })
}

pub(super) fn list(conn: &Connection) -> StoreResult<Vec<Destination>> {
    let mut stmt = conn.prepare(&format!("SELECT {COLUMNS} FROM destinations ORDER BY key"))?;
    let rows = stmt.query_map([], from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub(super) fn get(conn: &Connection, id: &str) -> StoreResult<Destination> {
    conn.query_row(
        &format!("SELECT {COLUMNS} FROM destinations WHERE id = ?1"),
        [id],
        from_row,
    )
    .optional()?
    .ok_or_else(|| StoreError::NotFound(format!("no destination with id {id}")))
}

/// Integration names are the keys of the `integrations` object: 1–100 characters, no control
/// characters, and not `All` (which is the object's default switch).
fn validate_integration(name: &str) -> StoreResult<()> {
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(StoreError::Invalid(
            "integration must be 1 to 100 characters without control characters, e.g. \"Webhooks\""
                .into(),
        ));
    }
    if name == "All" {
        return Err(StoreError::Invalid(
            "integration cannot be \"All\": that key switches every destination in the integrations object".into(),
        ));
    }
    Ok(())
}

impl ControlStore {
    pub async fn destinations(&self) -> StoreResult<Vec<Destination>> {
        self.call(|conn| list(conn)).await
    }

    pub async fn destination(&self, id: &str) -> StoreResult<Destination> {
        let id = id.to_owned();
        self.call(move |conn| get(conn, &id)).await
    }

    pub async fn create_destination(
        &self,
        new: NewDestination,
        actor: &Actor,
    ) -> StoreResult<Destination> {
        validate_name("destination", &new.name)?;
        validate_integration(&new.integration)?;
        let actor = actor.clone();
        self.call(move |conn| {
            let tx = conn.transaction()?;
            let id = new_id("dst", 12);
            tx.execute(
                "INSERT INTO destinations(id, name, integration, type, settings, enabled, enforce_consent, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    id,
                    new.name,
                    new.integration,
                    new.kind,
                    new.settings.to_string(),
                    new.enabled,
                    new.enforce_consent,
                    clock::now_ms()
                ],
            )?;
            let created = get(&tx, &id)?;
            audit::record(&tx, &actor, "destination.created", "destination", &id, None, Some(created.audit_json()))?;
            tx.commit()?;
            Ok(created)
        })
        .await
    }

    pub async fn update_destination(
        &self,
        id: &str,
        patch: DestinationPatch,
        actor: &Actor,
    ) -> StoreResult<(Destination, Destination)> {
        if let Some(name) = &patch.name {
            validate_name("destination", name)?;
        }
        if let Some(integration) = &patch.integration {
            validate_integration(integration)?;
        }
        let id = id.to_owned();
        let actor = actor.clone();
        self.call(move |conn| {
            let tx = conn.transaction()?;
            let before = get(&tx, &id)?;
            let after = Destination {
                name: patch.name.unwrap_or_else(|| before.name.clone()),
                integration: patch.integration.unwrap_or_else(|| before.integration.clone()),
                settings: patch.settings.unwrap_or_else(|| before.settings.clone()),
                enabled: patch.enabled.unwrap_or(before.enabled),
                enforce_consent: patch.enforce_consent.unwrap_or(before.enforce_consent),
                ..before.clone()
            };
            tx.execute(
                "UPDATE destinations SET name = ?2, integration = ?3, settings = ?4, enabled = ?5, enforce_consent = ?6 WHERE id = ?1",
                params![id, after.name, after.integration, after.settings.to_string(), after.enabled, after.enforce_consent],
            )?;
            if before != after {
                audit::record(&tx, &actor, "destination.updated", "destination", &id,
                    Some(before.audit_json()), Some(after.audit_json()))?;
            }
            tx.commit()?;
            Ok((before, after))
        })
        .await
    }

    /// Replace a destination's filter rules (validated by the caller); returns before and after.
    pub async fn set_destination_filters(
        &self,
        id: &str,
        rules: Vec<crate::filters::Rule>,
        actor: &Actor,
    ) -> StoreResult<(Destination, Destination)> {
        let id = id.to_owned();
        let actor = actor.clone();
        self.call(move |conn| {
            let tx = conn.transaction()?;
            let before = get(&tx, &id)?;
            tx.execute(
                "UPDATE destinations SET filters = ?2 WHERE id = ?1",
                params![
                    id,
                    serde_json::to_string(&rules).unwrap_or_else(|_| "[]".into())
                ],
            )?;
            let after = get(&tx, &id)?;
            if before.filters != after.filters {
                audit::record(
                    &tx,
                    &actor,
                    "destination.filters.updated",
                    "destination",
                    &id,
                    Some(serde_json::json!({"rules": before.filters})),
                    Some(serde_json::json!({"rules": after.filters})),
                )?;
            }
            tx.commit()?;
            Ok((before, after))
        })
        .await
    }

    /// Delete a destination and its category mappings.
    pub async fn delete_destination(&self, id: &str, actor: &Actor) -> StoreResult<Destination> {
        let id = id.to_owned();
        let actor = actor.clone();
        self.call(move |conn| {
            let tx = conn.transaction()?;
            let before = get(&tx, &id)?;
            // Mappings go with the destination; each removal is its own audit entry.
            let mapped: Vec<String> = tx
                .prepare(
                    "SELECT c.id FROM category_destinations cd JOIN categories c ON c.key = cd.category_key
                     WHERE cd.destination_key = ?1 ORDER BY c.id",
                )?
                .query_map([before.key], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            for category in &mapped {
                audit::record(&tx, &actor, "mapping.removed", "category", category, 
                    Some(serde_json::json!({"category": category, "destination": id})), None)?;
            }
            tx.execute("DELETE FROM destinations WHERE id = ?1", [&id])?;
            audit::record(&tx, &actor, "destination.deleted", "destination", &id, Some(before.audit_json()), None)?;
            tx.commit()?;
            Ok(before)
        })
        .await
    }
}

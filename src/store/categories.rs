//! Consent categories and their destination mappings.

use rusqlite::{Connection, OptionalExtension, Transaction, params};

use super::model::{validate_category_id, validate_category_name};
use super::{Actor, Category, ControlStore, StoreError, StoreResult, audit, conflict_on_unique};
use crate::clock;
use crate::consent::MAX_CATEGORIES;

#[derive(Debug, Clone)]
pub struct NewCategory {
    pub id: String,
    pub name: String,
    /// Destination public ids.
    pub destinations: Vec<String>,
}

#[derive(Debug, Clone, Default)]
pub struct CategoryPatch {
    pub id: Option<String>,
    pub name: Option<String>,
    pub destinations: Option<Vec<String>>,
}

pub(super) fn list(conn: &Connection) -> StoreResult<Vec<Category>> {
    let mut stmt =
        conn.prepare("SELECT key, id, name, enabled, created_at FROM categories ORDER BY key")?;
    let rows: Vec<(i64, Category)> = stmt
        .query_map([], |r| {
            Ok((
                r.get(0)?,
                Category {
                    id: r.get(1)?,
                    name: r.get(2)?,
                    enabled: r.get(3)?,
                    destinations: Vec::new(),
                    created_at: r.get(4)?,
                },
            ))
        })?
        .collect::<Result<_, _>>()?;
    let mut mapped = conn.prepare(
        "SELECT d.id FROM category_destinations cd JOIN destinations d ON d.key = cd.destination_key
         WHERE cd.category_key = ?1 ORDER BY d.id",
    )?;
    let mut out = Vec::with_capacity(rows.len());
    for (key, mut category) in rows {
        category.destinations = mapped
            .query_map([key], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        out.push(category);
    }
    Ok(out)
}

fn key_of(conn: &Connection, id: &str) -> StoreResult<i64> {
    conn.query_row("SELECT key FROM categories WHERE id = ?1", [id], |r| {
        r.get(0)
    })
    .optional()?
    .ok_or_else(|| StoreError::NotFound(format!("no consent category with id {id}")))
}

fn get(conn: &Connection, id: &str) -> StoreResult<Category> {
    key_of(conn, id)?;
    list(conn)?
        .into_iter()
        .find(|c| c.id == id)
        .ok_or_else(|| StoreError::NotFound(format!("no consent category with id {id}")))
}

/// Replace a category's mappings with the given destination ids (all must exist).
fn set_mappings(
    tx: &Transaction<'_>,
    category_key: i64,
    destinations: &[String],
) -> StoreResult<()> {
    let mut keys = Vec::with_capacity(destinations.len());
    let mut unknown = Vec::new();
    for id in destinations {
        match tx
            .query_row("SELECT key FROM destinations WHERE id = ?1", [id], |r| {
                r.get::<_, i64>(0)
            })
            .optional()?
        {
            Some(key) => keys.push(key),
            None => unknown.push(id.as_str()),
        }
    }
    if !unknown.is_empty() {
        return Err(StoreError::Invalid(format!(
            "unknown destination id(s): {}; list destinations with GET /api/v1/destinations",
            unknown.join(", ")
        )));
    }
    tx.execute(
        "DELETE FROM category_destinations WHERE category_key = ?1",
        [category_key],
    )?;
    let mut insert = tx.prepare(
        "INSERT OR IGNORE INTO category_destinations(category_key, destination_key) VALUES (?1, ?2)",
    )?;
    for key in keys {
        insert.execute([category_key, key])?;
    }
    Ok(())
}

/// One audit entry per mapping created or removed between two states of a category.
fn record_mapping_changes(
    tx: &Transaction<'_>,
    actor: &Actor,
    category: &str,
    before: &[String],
    after: &[String],
) -> StoreResult<()> {
    for dest in after.iter().filter(|d| !before.contains(d)) {
        audit::record(
            tx,
            actor,
            "mapping.created",
            "category",
            category,
            None,
            Some(serde_json::json!({"category": category, "destination": dest})),
        )?;
    }
    for dest in before.iter().filter(|d| !after.contains(d)) {
        audit::record(
            tx,
            actor,
            "mapping.removed",
            "category",
            category,
            Some(serde_json::json!({"category": category, "destination": dest})),
            None,
        )?;
    }
    Ok(())
}

fn unique_violation(detail: &str) -> String {
    if detail.contains("name_folded") {
        "a consent category with this name already exists (names are compared ignoring case)".into()
    } else {
        "a consent category with this id already exists".into()
    }
}

impl ControlStore {
    pub async fn categories(&self) -> StoreResult<Vec<Category>> {
        self.call(|conn| list(conn)).await
    }

    pub async fn category(&self, id: &str) -> StoreResult<Category> {
        let id = id.to_owned();
        self.call(move |conn| get(conn, &id)).await
    }

    pub async fn create_category(&self, new: NewCategory, actor: &Actor) -> StoreResult<Category> {
        validate_category_id(&new.id)?;
        validate_category_name(&new.name)?;
        let actor = actor.clone();
        self.call(move |conn| {
            let tx = conn.transaction()?;
            let count: i64 = tx.query_row("SELECT COUNT(*) FROM categories", [], |r| r.get(0))?;
            if count as usize >= MAX_CATEGORIES {
                return Err(StoreError::Invalid(format!(
                    "a workspace can have at most {MAX_CATEGORIES} consent categories"
                )));
            }
            tx.execute(
                "INSERT INTO categories(id, name, name_folded, enabled, created_at) VALUES (?1, ?2, ?3, 1, ?4)",
                params![new.id, new.name, new.name.to_lowercase(), clock::now_ms()],
            )
            .map_err(|e| conflict_on_unique(e, unique_violation))?;
            let key = tx.last_insert_rowid();
            set_mappings(&tx, key, &new.destinations)?;
            let created = get(&tx, &new.id)?;
            audit::record(&tx, &actor, "category.created", "category", &created.id, None, Some(created.audit_json()))?;
            record_mapping_changes(&tx, &actor, &created.id, &[], &created.destinations)?;
            tx.commit()?;
            Ok(created)
        })
        .await
    }

    /// Apply the patch; returns the category before and after.
    pub async fn update_category(
        &self,
        id: &str,
        patch: CategoryPatch,
        actor: &Actor,
    ) -> StoreResult<(Category, Category)> {
        if let Some(new_id) = &patch.id {
            validate_category_id(new_id)?;
        }
        if let Some(name) = &patch.name {
            validate_category_name(name)?;
        }
        let id = id.to_owned();
        let actor = actor.clone();
        self.call(move |conn| {
            let tx = conn.transaction()?;
            let before = get(&tx, &id)?;
            let key = key_of(&tx, &id)?;
            let new_id = patch.id.unwrap_or_else(|| before.id.clone());
            let name = patch.name.unwrap_or_else(|| before.name.clone());
            tx.execute(
                "UPDATE categories SET id = ?2, name = ?3, name_folded = ?4 WHERE key = ?1",
                params![key, new_id, name, name.to_lowercase()],
            )
            .map_err(|e| conflict_on_unique(e, unique_violation))?;
            if let Some(destinations) = &patch.destinations {
                set_mappings(&tx, key, destinations)?;
            }
            let after = get(&tx, &new_id)?;
            if before.id != after.id || before.name != after.name {
                audit::record(
                    &tx,
                    &actor,
                    "category.modified",
                    "category",
                    &after.id,
                    Some(before.audit_json()),
                    Some(after.audit_json()),
                )?;
            }
            record_mapping_changes(
                &tx,
                &actor,
                &after.id,
                &before.destinations,
                &after.destinations,
            )?;
            tx.commit()?;
            Ok((before, after))
        })
        .await
    }

    /// Enable or disable. Disabling needs the category's exact name as confirmation.
    pub async fn set_category_enabled(
        &self,
        id: &str,
        enabled: bool,
        confirm_name: Option<String>,
        actor: &Actor,
    ) -> StoreResult<(Category, Category)> {
        let id = id.to_owned();
        let actor = actor.clone();
        self.call(move |conn| {
            let tx = conn.transaction()?;
            let before = get(&tx, &id)?;
            if !enabled && confirm_name.as_deref() != Some(before.name.as_str()) {
                return Err(StoreError::Invalid(format!(
                    "to disable this category, send confirmName equal to its name ({:?})",
                    before.name
                )));
            }
            tx.execute(
                "UPDATE categories SET enabled = ?2 WHERE id = ?1",
                params![id, enabled],
            )?;
            let after = get(&tx, &id)?;
            if before.enabled != after.enabled {
                let action = if enabled {
                    "category.enabled"
                } else {
                    "category.disabled"
                };
                audit::record(
                    &tx,
                    &actor,
                    action,
                    "category",
                    &id,
                    Some(before.audit_json()),
                    Some(after.audit_json()),
                )?;
            }
            tx.commit()?;
            Ok((before, after))
        })
        .await
    }

    pub async fn delete_category(&self, id: &str, actor: &Actor) -> StoreResult<Category> {
        let id = id.to_owned();
        let actor = actor.clone();
        self.call(move |conn| {
            let tx = conn.transaction()?;
            let before = get(&tx, &id)?;
            record_mapping_changes(&tx, &actor, &id, &before.destinations, &[])?;
            tx.execute("DELETE FROM categories WHERE id = ?1", [&id])?;
            audit::record(
                &tx,
                &actor,
                "category.deleted",
                "category",
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

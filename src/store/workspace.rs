//! Workspace settings.

use rusqlite::{Transaction, params};

use super::model::{parse_policy, policy_str, rule_str};
use super::{Actor, ControlStore, StoreError, StoreResult, Workspace, audit};
use crate::consent::{MissingConsentPolicy, MultiCategoryRule};

/// A partial update; absent fields are unchanged.
#[derive(Debug, Clone, Default)]
pub struct WorkspacePatch {
    pub missing_consent_policy: Option<MissingConsentPolicy>,
    pub multi_category_rule: Option<MultiCategoryRule>,
    pub dedup_window_hours: Option<u32>,
}

/// Longest `messageId` deduplication window: 30 days.
pub const MAX_DEDUP_WINDOW_HOURS: u32 = 720;

pub(super) fn read(tx: &Transaction<'_>) -> StoreResult<Workspace> {
    Ok(tx.query_row(
        "SELECT missing_consent_policy, multi_category_rule, dedup_window_hours FROM workspace WHERE id = 1",
        [],
        |r| {
            Ok(Workspace {
                missing_consent_policy: parse_policy(&r.get::<_, String>(0)?),
                multi_category_rule: if r.get::<_, String>(1)? == "any" {
                    MultiCategoryRule::Any
                } else {
                    MultiCategoryRule::All
                },
                dedup_window_hours: r.get(2)?,
            })
        },
    )?)
}

impl ControlStore {
    pub async fn workspace(&self) -> StoreResult<Workspace> {
        self.call(|conn| {
            let tx = conn.transaction()?;
            read(&tx)
        })
        .await
    }

    /// Apply the patch; returns the settings before and after.
    pub async fn update_workspace(
        &self,
        patch: WorkspacePatch,
        actor: &Actor,
    ) -> StoreResult<(Workspace, Workspace)> {
        if let Some(hours) = patch.dedup_window_hours
            && !(1..=MAX_DEDUP_WINDOW_HOURS).contains(&hours)
        {
            return Err(StoreError::Invalid(format!(
                "dedupWindowHours must be between 1 and {MAX_DEDUP_WINDOW_HOURS}"
            )));
        }
        let actor = actor.clone();
        self.call(move |conn| {
            let tx = conn.transaction()?;
            let before = read(&tx)?;
            let after = Workspace {
                missing_consent_policy: patch.missing_consent_policy.unwrap_or(before.missing_consent_policy),
                multi_category_rule: patch.multi_category_rule.unwrap_or(before.multi_category_rule),
                dedup_window_hours: patch.dedup_window_hours.unwrap_or(before.dedup_window_hours),
            };
            tx.execute(
                "UPDATE workspace SET missing_consent_policy = ?1, multi_category_rule = ?2, dedup_window_hours = ?3 WHERE id = 1",
                params![
                    policy_str(after.missing_consent_policy),
                    rule_str(after.multi_category_rule),
                    after.dedup_window_hours
                ],
            )?;
            if before != after {
                audit::record(&tx, &actor, "workspace.updated", "workspace", "workspace",
                    Some(before.audit_json()), Some(after.audit_json()))?;
            }
            tx.commit()?;
            Ok((before, after))
        })
        .await
    }
}

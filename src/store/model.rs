//! Configuration types and their validation rules (SPEC §1).

use serde::{Deserialize, Serialize};

use super::{StoreError, StoreResult};
use crate::consent::{MissingConsentPolicy, MultiCategoryRule};
use crate::log::{DestKey, SourceKey};

/// Workspace-wide settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workspace {
    pub missing_consent_policy: MissingConsentPolicy,
    pub multi_category_rule: MultiCategoryRule,
    pub dedup_window_hours: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub key: SourceKey,
    pub id: String,
    pub name: String,
    pub write_key: String,
    pub enabled: bool,
    pub rate_limit_per_second: Option<u32>,
    pub missing_consent_policy: Option<MissingConsentPolicy>,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Destination {
    pub key: DestKey,
    pub id: String,
    pub name: String,
    pub integration: String,
    pub kind: String,
    /// Type settings, validated by the destination type; secrets in clear (never returned).
    pub settings: serde_json::Value,
    pub enabled: bool,
    pub enforce_consent: bool,
    pub created_at: i64,
    /// Destination filters, in order (SPEC §9).
    pub filters: Vec<crate::filters::Rule>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Category {
    pub id: String,
    pub name: String,
    pub enabled: bool,
    /// Mapped destinations, by public id, sorted.
    pub destinations: Vec<String>,
    pub created_at: i64,
}

/// Roles (SPEC §1). Ordered: each role can do everything the ones before it can.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Viewer,
    Member,
    Owner,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Member => "member",
            Role::Owner => "owner",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "viewer" => Some(Role::Viewer),
            "member" => Some(Role::Member),
            "owner" => Some(Role::Owner),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: String,
    pub email: String,
    pub name: String,
    pub role: Role,
    pub has_password: bool,
    pub created_at: i64,
}

/// An API token, without its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub id: String,
    pub user_id: String,
    pub name: String,
    /// The first characters of the secret, for recognising it in a list.
    pub prefix: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

/// Everything the routing snapshot is built from.
#[derive(Debug, Clone)]
pub struct ConfigData {
    pub workspace: Workspace,
    pub sources: Vec<Source>,
    pub destinations: Vec<Destination>,
    pub categories: Vec<Category>,
    /// Suppressed users and the anonymous ids linked to them.
    pub suppressed: super::Suppressed,
}

impl Workspace {
    pub fn audit_json(&self) -> serde_json::Value {
        serde_json::json!({
            "missingConsentPolicy": policy_str(self.missing_consent_policy),
            "multiCategoryRule": rule_str(self.multi_category_rule),
            "dedupWindowHours": self.dedup_window_hours,
        })
    }
}

impl Source {
    /// The write key as non-owners and the audit trail see it.
    pub fn masked_write_key(&self) -> String {
        let head: String = self.write_key.chars().take(4).collect();
        format!("{head}…")
    }

    pub fn audit_json(&self) -> serde_json::Value {
        serde_json::json!({
            "id": self.id,
            "name": self.name,
            "writeKey": self.masked_write_key(),
            "enabled": self.enabled,
            "rateLimitPerSecond": self.rate_limit_per_second,
            "missingConsentPolicy": self.missing_consent_policy.map(policy_str),
        })
    }
}

impl Destination {
    pub fn audit_json(&self) -> serde_json::Value {
        serde_json::json!({
            "id": self.id,
            "name": self.name,
            "integration": self.integration,
            "type": self.kind,
            "settings": crate::destinations::redact_settings(&self.kind, &self.settings),
            "enabled": self.enabled,
            "enforceConsent": self.enforce_consent,
        })
    }
}

impl Category {
    pub fn audit_json(&self) -> serde_json::Value {
        serde_json::json!({
            "id": self.id,
            "name": self.name,
            "enabled": self.enabled,
            "destinations": self.destinations,
        })
    }
}

impl User {
    pub fn audit_json(&self) -> serde_json::Value {
        serde_json::json!({
            "id": self.id,
            "email": self.email,
            "name": self.name,
            "role": self.role.as_str(),
            "hasPassword": self.has_password,
        })
    }
}

impl Token {
    pub fn audit_json(&self) -> serde_json::Value {
        serde_json::json!({
            "id": self.id,
            "userId": self.user_id,
            "name": self.name,
            "prefix": self.prefix,
            "revoked": self.revoked_at.is_some(),
        })
    }
}

/// Category ids are the keys of `categoryPreferences`: 1–34 characters, case-sensitive, not
/// starting with a digit, no whitespace or control characters (SPEC §1).
pub fn validate_category_id(id: &str) -> StoreResult<()> {
    let chars = id.chars().count();
    if chars == 0 || chars > 34 {
        return Err(StoreError::Invalid(format!(
            "category id must be 1 to 34 characters long (got {chars})"
        )));
    }
    if id.starts_with(|c: char| c.is_ascii_digit()) {
        return Err(StoreError::Invalid(
            "category id must not start with a digit (for example use C0001, not 0001)".into(),
        ));
    }
    if let Some(bad) = id.chars().find(|c| c.is_whitespace() || c.is_control()) {
        return Err(StoreError::Invalid(format!(
            "category id must not contain whitespace or control characters (found {bad:?})"
        )));
    }
    Ok(())
}

/// Category names: 1–50 characters, unique ignoring case (checked by the store).
pub fn validate_category_name(name: &str) -> StoreResult<()> {
    let chars = name.trim().chars().count();
    if chars == 0 || name.chars().count() > 50 {
        return Err(StoreError::Invalid(format!(
            "category name must be 1 to 50 characters long (got {})",
            name.chars().count()
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(StoreError::Invalid(
            "category name must not contain control characters".into(),
        ));
    }
    Ok(())
}

/// Names of sources, destinations and users: 1–100 characters.
pub(crate) fn validate_name(what: &str, name: &str) -> StoreResult<()> {
    let chars = name.trim().chars().count();
    if chars == 0 || name.chars().count() > 100 {
        return Err(StoreError::Invalid(format!(
            "{what} name must be 1 to 100 characters long"
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(StoreError::Invalid(format!(
            "{what} name must not contain control characters"
        )));
    }
    Ok(())
}

pub(crate) fn policy_str(p: MissingConsentPolicy) -> &'static str {
    match p {
        MissingConsentPolicy::Allow => "allow",
        MissingConsentPolicy::Deny => "deny",
    }
}

pub(crate) fn parse_policy(s: &str) -> MissingConsentPolicy {
    if s == "deny" {
        MissingConsentPolicy::Deny
    } else {
        MissingConsentPolicy::Allow
    }
}

pub(crate) fn rule_str(r: MultiCategoryRule) -> &'static str {
    match r {
        MultiCategoryRule::All => "all",
        MultiCategoryRule::Any => "any",
    }
}

//! `profiles.db`: identities, profiles, device consent, profile consent, the consent ledger, and
//! deletion tombstones.
//!
//! ```text
//! profiles(id PRIMARY KEY, traits JSON, created_at, updated_at)
//! identities(id PRIMARY KEY, profile_id)            id = "u:<userId>" or "a:<anonymousId>"
//! devices(device PRIMARY KEY, state JSON)           device = an identity id (see `device_of`)
//! profile_consent(profile_id, category, value, at, message_id)
//! ledger(id, profile_id, anonymous_id, user_id, preferences JSON, at, received_at, source_id,
//!        message_id, generated, kind, library, user_agent, ip)   UNIQUE(message_id, kind)
//! tombstones(id, deleted_at, regulation_id, actor, identities, ledger_entries)   no personal data
//! ```
//!
//! The ledger is append-only: rows are inserted, never updated, except that a profile merge
//! re-points rows to the surviving profile, and a deletion request removes a person's rows and
//! leaves a tombstone.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde::Serialize;
use serde_json::Value as Json;

use super::rules::{DeviceState, ProfileConsent, Stamped, Value};

#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("profile storage error: {0}")]
    Storage(#[from] rusqlite::Error),
    #[error("profile task failed: {0}")]
    Task(String),
}

/// Handle to `profiles.db`. Cheap to clone.
#[derive(Clone)]
pub struct ProfileStore {
    conn: Arc<Mutex<Connection>>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS profiles(id TEXT PRIMARY KEY, traits TEXT NOT NULL, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS identities(id TEXT PRIMARY KEY, profile_id TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS identities_profile ON identities(profile_id);
CREATE TABLE IF NOT EXISTS devices(device TEXT PRIMARY KEY, state TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS profile_consent(profile_id TEXT NOT NULL, category TEXT NOT NULL, value TEXT NOT NULL,
    at INTEGER NOT NULL, message_id TEXT NOT NULL, PRIMARY KEY(profile_id, category)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS ledger(id INTEGER PRIMARY KEY AUTOINCREMENT, profile_id TEXT NOT NULL,
    anonymous_id TEXT, user_id TEXT, preferences TEXT NOT NULL, at INTEGER NOT NULL, received_at INTEGER NOT NULL,
    source_id TEXT, message_id TEXT NOT NULL, generated INTEGER NOT NULL, kind TEXT NOT NULL,
    library TEXT, user_agent TEXT, ip TEXT, UNIQUE(message_id, kind));
CREATE INDEX IF NOT EXISTS ledger_profile ON ledger(profile_id, at);
CREATE TABLE IF NOT EXISTS tombstones(id INTEGER PRIMARY KEY AUTOINCREMENT, deleted_at INTEGER NOT NULL,
    regulation_id TEXT NOT NULL, actor TEXT NOT NULL, identities INTEGER NOT NULL, ledger_entries INTEGER NOT NULL);
";

/// The identity id of a user id or an anonymous id.
pub fn user_key(user_id: &str) -> String {
    format!("u:{user_id}")
}

pub fn anon_key(anonymous_id: &str) -> String {
    format!("a:{anonymous_id}")
}

/// The device an event comes from: its anonymousId, else its userId (server-side SDKs).
pub fn device_of(user_id: Option<&str>, anonymous_id: Option<&str>) -> Option<String> {
    anonymous_id.map(anon_key).or_else(|| user_id.map(user_key))
}

/// A profile as the API shows it.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ProfileView {
    pub id: String,
    pub user_ids: Vec<String>,
    pub anonymous_ids: Vec<String>,
    pub traits: Json,
    pub consent: BTreeMap<String, ConsentView>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ConsentView {
    /// `true`, `false` or `"conflict"`.
    pub value: Json,
    pub at: String,
    pub message_id: String,
}

/// One consent-ledger entry.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct LedgerEntry {
    /// Event time.
    pub at: String,
    pub received_at: String,
    pub anonymous_id: Option<String>,
    pub user_id: Option<String>,
    pub preferences: Json,
    pub source_id: Option<String>,
    pub message_id: String,
    /// Emitted by Sluice because an event carried new preferences without a consent-update event.
    pub generated: bool,
    /// `update` (a consent-update event) or `change` (new preferences seen on another event).
    pub kind: String,
    pub library: Option<String>,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
}

/// What a deletion removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Deleted {
    pub profiles: usize,
    pub identities: usize,
    pub ledger_entries: usize,
    pub user_ids: Vec<String>,
    pub anonymous_ids: Vec<String>,
}

impl ProfileStore {
    pub fn open(path: &Path) -> Result<ProfileStore, ProfileError> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.busy_timeout(Duration::from_secs(30))?;
        conn.execute_batch(SCHEMA)?;
        Ok(ProfileStore {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Run `f` on the connection in a blocking task.
    pub async fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, ProfileError> + Send + 'static,
    ) -> Result<T, ProfileError> {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || {
            let mut guard = conn.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut guard)
        })
        .await
        .map_err(|e| ProfileError::Task(e.to_string()))?
    }

    /// Run `f` on the connection from a thread that may block (the consumer's own task).
    pub fn with_blocking<T>(&self, f: impl FnOnce(&mut Connection) -> T) -> T {
        let mut guard = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut guard)
    }

    /// The profile a userId or anonymousId belongs to.
    pub async fn lookup(&self, id: &str) -> Result<Option<ProfileView>, ProfileError> {
        let id = id.to_owned();
        self.call(move |conn| {
            let Some(profile) = find_profile(conn, &id)? else {
                return Ok(None);
            };
            Ok(Some(view(conn, &profile)?))
        })
        .await
    }

    /// The consent ledger of the person a userId or anonymousId belongs to, oldest first.
    pub async fn history(&self, id: &str) -> Result<Option<Vec<LedgerEntry>>, ProfileError> {
        let id = id.to_owned();
        self.call(move |conn| {
            let Some(profile) = find_profile(conn, &id)? else { return Ok(None) };
            let mut stmt = conn.prepare(
                "SELECT at, received_at, anonymous_id, user_id, preferences, source_id, message_id, generated, kind,
                        library, user_agent, ip
                 FROM ledger WHERE profile_id = ?1 ORDER BY at, id",
            )?;
            let rows = stmt.query_map([&profile], |r| {
                Ok(LedgerEntry {
                    at: crate::clock::format_ms(r.get(0)?),
                    received_at: crate::clock::format_ms(r.get(1)?),
                    anonymous_id: r.get(2)?,
                    user_id: r.get(3)?,
                    preferences: serde_json::from_str(&r.get::<_, String>(4)?).unwrap_or(Json::Null),
                    source_id: r.get(5)?,
                    message_id: r.get(6)?,
                    generated: r.get(7)?,
                    kind: r.get(8)?,
                    library: r.get(9)?,
                    user_agent: r.get(10)?,
                    ip: r.get(11)?,
                })
            })?;
            Ok(Some(rows.collect::<Result<_, _>>()?))
        })
        .await
    }

    /// Every id linked to these user ids (through identify, events with both ids, alias).
    pub async fn linked_ids(
        &self,
        user_ids: Vec<String>,
    ) -> Result<(Vec<String>, Vec<String>), ProfileError> {
        self.call(move |conn| {
            let mut users = BTreeSet::new();
            let mut anons = BTreeSet::new();
            for user in &user_ids {
                users.insert(user.clone());
                let Some(profile) = find_profile_by_key(conn, &user_key(user))? else {
                    continue;
                };
                for id in identities_of(conn, &profile)? {
                    if let Some(u) = id.strip_prefix("u:") {
                        users.insert(u.to_owned());
                    } else if let Some(a) = id.strip_prefix("a:") {
                        anons.insert(a.to_owned());
                    }
                }
            }
            Ok((users.into_iter().collect(), anons.into_iter().collect()))
        })
        .await
    }

    /// Delete everything about the people with these user ids, leaving one tombstone per
    /// person (no personal data: when, by whom, which regulation, how much).
    pub async fn delete_people(
        &self,
        user_ids: Vec<String>,
        regulation_id: String,
        actor: String,
    ) -> Result<Deleted, ProfileError> {
        self.call(move |conn| {
            let tx = conn.transaction()?;
            let mut total = Deleted::default();
            let now = crate::clock::now_ms();
            for user in &user_ids {
                let key = user_key(user);
                let Some(profile) = find_profile_by_key(&tx, &key)? else {
                    total.user_ids.push(user.clone());
                    continue;
                };
                let identities = identities_of(&tx, &profile)?;
                for id in &identities {
                    if let Some(u) = id.strip_prefix("u:") {
                        total.user_ids.push(u.to_owned());
                    } else if let Some(a) = id.strip_prefix("a:") {
                        total.anonymous_ids.push(a.to_owned());
                    }
                    tx.execute("DELETE FROM devices WHERE device = ?1", [id])?;
                }
                let ledger = tx.execute("DELETE FROM ledger WHERE profile_id = ?1", [&profile])?;
                tx.execute("DELETE FROM profile_consent WHERE profile_id = ?1", [&profile])?;
                tx.execute("DELETE FROM identities WHERE profile_id = ?1", [&profile])?;
                tx.execute("DELETE FROM profiles WHERE id = ?1", [&profile])?;
                tx.execute(
                    "INSERT INTO tombstones(deleted_at, regulation_id, actor, identities, ledger_entries) VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![now, regulation_id, actor, identities.len() as i64, ledger as i64],
                )?;
                total.profiles += 1;
                total.identities += identities.len();
                total.ledger_entries += ledger;
            }
            tx.commit()?;
            total.user_ids.sort();
            total.user_ids.dedup();
            total.anonymous_ids.sort();
            total.anonymous_ids.dedup();
            Ok(total)
        })
        .await
    }

    /// Tombstones of a regulation: `(deleted_at, identities, ledger_entries)`.
    pub async fn tombstones(
        &self,
        regulation_id: &str,
    ) -> Result<Vec<(i64, i64, i64)>, ProfileError> {
        let regulation_id = regulation_id.to_owned();
        self.call(move |conn| {
            let mut stmt = conn.prepare("SELECT deleted_at, identities, ledger_entries FROM tombstones WHERE regulation_id = ?1")?;
            let rows = stmt.query_map([&regulation_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }
}

fn find_profile_by_key(conn: &Connection, key: &str) -> rusqlite::Result<Option<String>> {
    conn.prepare_cached("SELECT profile_id FROM identities WHERE id = ?1")?
        .query_row([key], |r| r.get(0))
        .optional()
}

/// By userId first, then anonymousId.
fn find_profile(conn: &Connection, id: &str) -> rusqlite::Result<Option<String>> {
    match find_profile_by_key(conn, &user_key(id))? {
        Some(p) => Ok(Some(p)),
        None => find_profile_by_key(conn, &anon_key(id)),
    }
}

fn identities_of(conn: &Connection, profile: &str) -> rusqlite::Result<Vec<String>> {
    let mut stmt =
        conn.prepare_cached("SELECT id FROM identities WHERE profile_id = ?1 ORDER BY id")?;
    let rows = stmt.query_map([profile], |r| r.get(0))?;
    rows.collect()
}

fn view(conn: &Connection, profile: &str) -> rusqlite::Result<ProfileView> {
    let identities = identities_of(conn, profile)?;
    let traits: String = conn.query_row(
        "SELECT traits FROM profiles WHERE id = ?1",
        [profile],
        |r| r.get(0),
    )?;
    let consent = load_consent(conn, profile)?
        .into_iter()
        .map(|(category, s)| {
            let value = match s.value {
                Value::True => Json::Bool(true),
                Value::False => Json::Bool(false),
                Value::Conflict => Json::String("conflict".into()),
            };
            (
                category,
                ConsentView {
                    value,
                    at: crate::clock::format_ms(s.at),
                    message_id: s.message_id,
                },
            )
        })
        .collect();
    Ok(ProfileView {
        id: profile.to_owned(),
        user_ids: identities
            .iter()
            .filter_map(|i| i.strip_prefix("u:").map(str::to_owned))
            .collect(),
        anonymous_ids: identities
            .iter()
            .filter_map(|i| i.strip_prefix("a:").map(str::to_owned))
            .collect(),
        traits: serde_json::from_str(&traits).unwrap_or(Json::Null),
        consent,
    })
}

pub(super) fn load_consent(conn: &Connection, profile: &str) -> rusqlite::Result<ProfileConsent> {
    let mut stmt = conn.prepare_cached(
        "SELECT category, value, at, message_id FROM profile_consent WHERE profile_id = ?1",
    )?;
    let rows = stmt.query_map([profile], |r| {
        Ok((
            r.get::<_, String>(0)?,
            Stamped {
                value: Value::parse(&r.get::<_, String>(1)?).unwrap_or(Value::False),
                at: r.get(2)?,
                message_id: r.get(3)?,
            },
        ))
    })?;
    rows.collect()
}

pub(super) fn save_consent(
    tx: &Transaction<'_>,
    profile: &str,
    consent: &ProfileConsent,
) -> rusqlite::Result<()> {
    tx.prepare_cached("DELETE FROM profile_consent WHERE profile_id = ?1")?
        .execute([profile])?;
    let mut insert = tx.prepare_cached(
        "INSERT INTO profile_consent(profile_id, category, value, at, message_id) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for (category, s) in consent {
        insert.execute(params![
            profile,
            category,
            s.value.as_str(),
            s.at,
            s.message_id
        ])?;
    }
    Ok(())
}

pub(super) fn load_device(
    tx: &Transaction<'_>,
    device: &str,
) -> rusqlite::Result<Option<DeviceState>> {
    let state: Option<String> = tx
        .prepare_cached("SELECT state FROM devices WHERE device = ?1")?
        .query_row([device], |r| r.get(0))
        .optional()?;
    Ok(state.and_then(|s| serde_json::from_str(&s).ok()))
}

pub(super) fn save_device(
    tx: &Transaction<'_>,
    device: &str,
    state: &DeviceState,
) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO devices(device, state) VALUES (?1, ?2) ON CONFLICT(device) DO UPDATE SET state = excluded.state",
    )?
    .execute(params![device, serde_json::to_string(state).unwrap_or_default()])?;
    Ok(())
}

/// Link these identities into one profile, creating or merging profiles as needed. Returns the
/// profile id.
pub(super) fn link(tx: &Transaction<'_>, keys: &[String], now: i64) -> rusqlite::Result<String> {
    let mut profiles: Vec<(String, i64)> = Vec::new();
    for key in keys {
        if let Some(p) = find_profile_by_key(tx, key)?
            && !profiles.iter().any(|(q, _)| *q == p)
        {
            let created: i64 =
                tx.query_row("SELECT created_at FROM profiles WHERE id = ?1", [&p], |r| {
                    r.get(0)
                })?;
            profiles.push((p, created));
        }
    }
    // The oldest profile survives a merge.
    profiles.sort_by_key(|(id, created)| (*created, id.clone()));
    let survivor = match profiles.first() {
        Some((id, _)) => id.clone(),
        None => {
            let id = uuid::Uuid::now_v7().to_string();
            tx.execute(
                "INSERT INTO profiles(id, traits, created_at, updated_at) VALUES (?1, '{}', ?2, ?2)",
                params![id, now],
            )?;
            id
        }
    };
    for (other, _) in profiles.iter().skip(1) {
        merge_profiles(tx, &survivor, other)?;
    }
    let mut insert =
        tx.prepare_cached("INSERT OR IGNORE INTO identities(id, profile_id) VALUES (?1, ?2)")?;
    for key in keys {
        insert.execute(params![key, survivor])?;
    }
    Ok(survivor)
}

fn merge_profiles(tx: &Transaction<'_>, survivor: &str, other: &str) -> rusqlite::Result<()> {
    let mut ours = load_consent(tx, survivor)?;
    let theirs = load_consent(tx, other)?;
    super::rules::merge(&mut ours, &theirs);
    save_consent(tx, survivor, &ours)?;
    tx.execute("DELETE FROM profile_consent WHERE profile_id = ?1", [other])?;
    // Traits: the survivor's win where both have a key.
    let a: String = tx.query_row(
        "SELECT traits FROM profiles WHERE id = ?1",
        [survivor],
        |r| r.get(0),
    )?;
    let b: String = tx.query_row("SELECT traits FROM profiles WHERE id = ?1", [other], |r| {
        r.get(0)
    })?;
    let mut merged: serde_json::Map<String, Json> = serde_json::from_str(&b).unwrap_or_default();
    merged.extend(serde_json::from_str::<serde_json::Map<String, Json>>(&a).unwrap_or_default());
    tx.execute(
        "UPDATE profiles SET traits = ?2 WHERE id = ?1",
        params![survivor, Json::Object(merged).to_string()],
    )?;
    tx.execute(
        "UPDATE identities SET profile_id = ?1 WHERE profile_id = ?2",
        [survivor, other],
    )?;
    tx.execute(
        "UPDATE ledger SET profile_id = ?1 WHERE profile_id = ?2",
        [survivor, other],
    )?;
    tx.execute("DELETE FROM profiles WHERE id = ?1", [other])?;
    Ok(())
}

/// Merge `traits` into the profile's (newer values win).
pub(super) fn merge_traits(
    tx: &Transaction<'_>,
    profile: &str,
    traits: &serde_json::Map<String, Json>,
    now: i64,
) -> rusqlite::Result<()> {
    let current: String = tx.query_row(
        "SELECT traits FROM profiles WHERE id = ?1",
        [profile],
        |r| r.get(0),
    )?;
    let mut merged: serde_json::Map<String, Json> =
        serde_json::from_str(&current).unwrap_or_default();
    for (k, v) in traits {
        merged.insert(k.clone(), v.clone());
    }
    tx.execute(
        "UPDATE profiles SET traits = ?2, updated_at = ?3 WHERE id = ?1",
        params![profile, Json::Object(merged).to_string(), now],
    )?;
    Ok(())
}

/// A ledger row to insert (ignored when the same message and kind is already there, so a
/// replayed page does not write it twice).
pub(super) struct NewLedgerEntry<'a> {
    pub profile_id: &'a str,
    pub anonymous_id: Option<&'a str>,
    pub user_id: Option<&'a str>,
    pub preferences: &'a BTreeMap<String, bool>,
    pub at: i64,
    pub received_at: i64,
    pub source_id: Option<&'a str>,
    pub message_id: &'a str,
    pub generated: bool,
    pub kind: &'a str,
    pub library: Option<&'a str>,
    pub user_agent: Option<&'a str>,
    pub ip: Option<&'a str>,
}

pub(super) fn record(tx: &Transaction<'_>, e: &NewLedgerEntry<'_>) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT OR IGNORE INTO ledger(profile_id, anonymous_id, user_id, preferences, at, received_at, source_id,
             message_id, generated, kind, library, user_agent, ip)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
    )?
    .execute(params![
        e.profile_id,
        e.anonymous_id,
        e.user_id,
        serde_json::to_string(e.preferences).unwrap_or_default(),
        e.at,
        e.received_at,
        e.source_id,
        e.message_id,
        e.generated,
        e.kind,
        e.library,
        e.user_agent,
        e.ip
    ])?;
    Ok(())
}

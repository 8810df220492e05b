//! The profile consumer: reads every accepted event from the log, in order, and maintains
//! identities, profiles, device and profile consent, and the consent ledger (SPEC §5, §6).
//!
//! It also makes the two delivery decisions that need a device's history:
//!
//! * A consent-update event is stored *held*. If it changes the device's preferences, the
//!   consumer releases it to its destinations; if it repeats them (CMPs fire one on every banner
//!   close) or is older than them, it is recorded in the ledger and counted as
//!   `FILTERED_UNCHANGED_CONSENT`, not delivered again.
//! * An ordinary event whose preferences differ from the device's makes the consumer emit a
//!   consent-update event itself, marked `context.sluice.generated: true`. The first
//!   preferences seen for a device are recorded in the ledger but generate nothing: there was no
//!   earlier state for destinations to correct.
//!
//! **Exactly once, across crashes.** For each page the consumer updates `profiles.db` in one
//! transaction, appends its releases and generated events to the log (durably) *before* that
//! transaction commits, then acknowledges the page. A crash in between replays the page: the
//! appends carry deterministic dedup keys (`release:<messageId>`, `sluice-consent-<messageId>`)
//! so the log drops the second copy, and ledger rows are unique by message and kind.
//!
//! It runs off the ingest path: acknowledgements never wait for it.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use rusqlite::Transaction;
use serde_json::{Value as Json, json};
use tokio::task::JoinHandle;

use super::rules::{self, DeviceOutcome, Preferences};
use super::store::{self, NewLedgerEntry, ProfileStore, anon_key, device_of, user_key};
use crate::app::App;
use crate::clock;
use crate::consent::{self, ConsentSignal, EventFacts, FilterReason, Integrations};
use crate::log::{Ack, Append, AppendKind, Consumer, EventLog, NewEvent, Record};
use crate::router::Snapshot;

/// The consumer's name in the log.
pub const CONSUMER: Consumer = Consumer::Internal("profiles");

/// Events read per page.
const PAGE: usize = 500;

/// Start the consumer; it stops when the app shuts down.
pub fn spawn(app: Arc<App>, store: ProfileStore) -> JoinHandle<()> {
    tokio::spawn(run(app, store))
}

async fn run(app: Arc<App>, store: ProfileStore) {
    let log = Arc::clone(&app.log);
    let mut committed = log.committed();
    let cancelled = app.background_token();
    let mut cursor = loop {
        match log.cursor(&CONSUMER).await {
            Ok(c) => break c,
            Err(error) => {
                tracing::warn!(%error, "Profile consumer cannot read its cursor; retrying.");
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                    () = cancelled.cancelled() => return,
                }
            }
        }
    };
    while !cancelled.is_cancelled() {
        let page = match log.read(&CONSUMER, cursor, PAGE).await {
            Ok(page) => page,
            Err(error) => {
                tracing::warn!(%error, "Profile consumer cannot read the log; retrying.");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if page.scanned_to == cursor {
            tokio::select! {
                changed = committed.changed() => if changed.is_err() { return },
                () = cancelled.cancelled() => return,
            }
            continue;
        }
        let snapshot = app.snapshot();
        let (store, log2, records) = (store.clone(), Arc::clone(&log), page.records);
        let handle = tokio::runtime::Handle::current();
        let done = tokio::task::spawn_blocking(move || {
            process_page(&store, &log2, &snapshot, &records, &handle)
        })
        .await;
        match done {
            Ok(Ok(())) => {
                log.ack(Ack {
                    consumer: CONSUMER,
                    upto: page.scanned_to,
                    delivered: Vec::new(),
                    dead: Vec::new(),
                });
                cursor = page.scanned_to;
            }
            Ok(Err(error)) => {
                tracing::warn!(%error, "Profile consumer failed on a page; it will be retried.");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(error) => {
                tracing::error!(%error, "Profile consumer task failed; it will be retried.");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum PageError {
    #[error("profile storage: {0}")]
    Storage(#[from] rusqlite::Error),
    #[error("event log: {0}")]
    Log(#[from] crate::log::LogError),
}

fn process_page(
    store: &ProfileStore,
    log: &Arc<dyn EventLog>,
    snapshot: &Snapshot,
    records: &[Record],
    handle: &tokio::runtime::Handle,
) -> Result<(), PageError> {
    let known: BTreeSet<String> = snapshot.categories.iter().map(|c| c.id.clone()).collect();
    store.with_blocking(|conn| {
        let tx = conn.transaction()?;
        let mut appends = Vec::new();
        for record in records.iter().filter(|r| !r.system) {
            handle_record(&tx, snapshot, &known, record, &mut appends)?;
        }
        // Releases and generated events are durable before the state that decided them.
        let results = handle.block_on(join_all(appends.into_iter().map(|a| log.append(a))));
        for result in results {
            result?;
        }
        tx.commit()?;
        Ok(())
    })
}

/// What `context.consent` states, if anything (see `rules`): `None` when there is no
/// `categoryPreferences` at all.
fn preferences_of(payload: &Json) -> Option<Preferences> {
    let consent = payload.pointer("/context/consent")?.as_object()?;
    let prefs = consent
        .get("categoryPreferences")
        .or_else(|| consent.get("categoryPreference"))
        .filter(|v| !v.is_null())?;
    let mut out = Preferences::default();
    if let Some(map) = prefs.as_object() {
        for (key, value) in map {
            out.stated.insert(key.clone());
            if value == &Json::Bool(true) {
                out.granted.insert(key.clone());
            }
        }
    }
    Some(out)
}

fn str_at<'a>(payload: &'a Json, pointer: &str) -> Option<&'a str> {
    payload.pointer(pointer).and_then(Json::as_str)
}

fn handle_record(
    tx: &Transaction<'_>,
    snapshot: &Snapshot,
    known: &BTreeSet<String>,
    record: &Record,
    appends: &mut Vec<Append>,
) -> rusqlite::Result<()> {
    let Ok(payload) = serde_json::from_slice::<Json>(&record.payload) else {
        return Ok(());
    };
    let now = clock::now_ms();
    let user = record.user_id.as_deref();
    let anon = record.anonymous_id.as_deref();
    let kind = str_at(&payload, "/type").unwrap_or("");
    let event_name = str_at(&payload, "/event");
    let at = str_at(&payload, "/timestamp")
        .and_then(clock::parse_ms)
        .unwrap_or(record.received_at);

    // Identity: both ids of an event, and alias's previousId, belong to one person.
    let mut keys: Vec<String> = user
        .map(user_key)
        .into_iter()
        .chain(anon.map(anon_key))
        .collect();
    if kind == "alias"
        && let Some(previous) = str_at(&payload, "/previousId")
    {
        let as_anon = anon_key(previous);
        let linked = tx
            .prepare_cached("SELECT 1 FROM identities WHERE id = ?1")?
            .exists([&as_anon])?;
        keys.push(if linked { as_anon } else { user_key(previous) });
    }
    if keys.is_empty() {
        return Ok(());
    }
    let profile = store::link(tx, &keys, now)?;
    if kind == "identify"
        && let Some(traits) = payload.get("traits").and_then(Json::as_object)
    {
        store::merge_traits(tx, &profile, traits, now)?;
    }

    let is_update = kind == "track" && event_name.is_some_and(consent::is_consent_update_event);
    let Some(preferences) = preferences_of(&payload) else {
        if record.held {
            // A held event always carries preferences (validated at ingest); release it.
            appends.push(release(record, true));
        }
        return Ok(());
    };
    let Some(device) = device_of(user, anon) else {
        return Ok(());
    };
    let mut state = store::load_device(tx, &device)?;
    let outcome = rules::apply_to_device(&mut state, &preferences, at);
    let resolved = preferences.resolve(known);
    if outcome != DeviceOutcome::Stale {
        if let Some(state) = &state {
            store::save_device(tx, &device, state)?;
        }
        let mut profile_consent = store::load_consent(tx, &profile)?;
        // A consent-update event (the client's, or the one Sluice generates for a change) may
        // resolve a merge conflict; a repeat of the same preferences on an ordinary event does
        // not.
        let resolves = is_update || outcome == DeviceOutcome::Changed;
        rules::apply_to_profile(
            &mut profile_consent,
            &resolved,
            at,
            &record.message_id,
            resolves,
        );
        store::save_consent(tx, &profile, &profile_consent)?;
    }

    let source = snapshot.source_by_key(record.source);
    let generated_by_client =
        payload.pointer("/context/sluice/generated") == Some(&Json::Bool(true));
    let entry = |kind: &'static str, generated: bool| NewLedgerEntry {
        profile_id: &profile,
        anonymous_id: anon,
        user_id: user,
        preferences: &resolved,
        at,
        received_at: record.received_at,
        source_id: source.map(|s| s.source.id.as_str()),
        message_id: &record.message_id,
        generated,
        kind,
        library: str_at(&payload, "/context/library/name"),
        user_agent: str_at(&payload, "/context/userAgent"),
        ip: str_at(&payload, "/context/ip"),
    };
    if is_update {
        // Every consent-update event is in the ledger, changed or not.
        store::record(tx, &entry("update", generated_by_client))?;
        if record.held {
            let new = matches!(outcome, DeviceOutcome::First | DeviceOutcome::Changed);
            appends.push(release(record, new));
        }
    } else if outcome == DeviceOutcome::First {
        store::record(tx, &entry("change", false))?;
    } else if outcome == DeviceOutcome::Changed {
        store::record(tx, &entry("change", true))?;
        if let Some(source) = source {
            appends.push(generated_update(
                snapshot, source, record, &payload, &resolved, at, now,
            ));
        }
    }
    Ok(())
}

/// Release a held consent-update event to its intended destinations, or count it as filtered.
fn release(record: &Record, deliver: bool) -> Append {
    let event = if deliver {
        NewEvent {
            message_id: format!("release:{}", record.message_id),
            user_id: record.user_id.clone(),
            anonymous_id: record.anonymous_id.clone(),
            payload: record.payload.clone(),
            deliver_to: record.intended.clone(),
            filtered: Vec::new(),
            hold: false,
        }
    } else {
        NewEvent {
            message_id: format!("release:{}", record.message_id),
            user_id: None,
            anonymous_id: None,
            payload: b"{}".to_vec(),
            deliver_to: Vec::new(),
            filtered: record
                .intended
                .iter()
                .map(|d| (*d, FilterReason::UnchangedConsent))
                .collect(),
            hold: false,
        }
    };
    Append {
        source: record.source,
        received_at: record.received_at,
        events: vec![event],
        kind: AppendKind::Release,
        ..Append::default()
    }
}

/// A consent-update event for a change seen on an ordinary event.
fn generated_update(
    snapshot: &Snapshot,
    source: &crate::router::SourceEntry,
    record: &Record,
    trigger: &Json,
    resolved: &std::collections::BTreeMap<String, bool>,
    at: i64,
    now: i64,
) -> Append {
    let message_id = format!("sluice-consent-{}", record.message_id);
    let mut context = json!({
        "consent": {"categoryPreferences": resolved},
        "sluice": {"generated": true, "trigger": record.message_id},
    });
    if let Some(library) = trigger.pointer("/context/library") {
        context["library"] = library.clone();
    }
    let mut payload = json!({
        "type": "track",
        "event": consent::signal::CONSENT_UPDATE_EVENT,
        "messageId": message_id,
        "properties": {},
        "context": context,
        "timestamp": clock::format_ms(at),
        "receivedAt": clock::format_ms(now),
    });
    if let Some(user) = &record.user_id {
        payload["userId"] = json!(user);
    }
    if let Some(anon) = &record.anonymous_id {
        payload["anonymousId"] = json!(anon);
    }
    let integrations = trigger
        .get("integrations")
        .filter(|v| v.is_object())
        .cloned();
    if let Some(integrations) = &integrations {
        payload["integrations"] = integrations.clone();
    }
    // Route it like any consent-update event: exempt from consent, not from the integrations
    // object or disabled destinations.
    let integrations_raw = integrations
        .as_ref()
        .and_then(|v| serde_json::value::to_raw_value(v).ok());
    let facts = EventFacts {
        integrations: Integrations::read(integrations_raw.as_deref()),
        consent: ConsentSignal::Granted(
            resolved
                .iter()
                .filter(|(_, g)| **g)
                .map(|(c, _)| c.as_str().into())
                .collect(),
        ),
        is_consent_update: true,
    };
    let mut scratch = Vec::new();
    let payload = payload.to_string().into_bytes();
    let route = snapshot.route(source, &facts, &payload, &mut scratch);
    Append {
        source: record.source,
        received_at: now,
        events: vec![NewEvent {
            message_id,
            user_id: record.user_id.clone(),
            anonymous_id: record.anonymous_id.clone(),
            payload,
            deliver_to: route.deliver_to,
            filtered: route.filtered,
            hold: false,
        }],
        kind: AppendKind::Generated,
        ..Append::default()
    }
}

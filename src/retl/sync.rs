//! One sync run: stream the model's rows, diff them against the checkpoint, queue each changed
//! record for the model's mappings, advance the checkpoint, then find the deleted records.
//!
//! # Chunks, durability, resumption
//!
//! Rows are processed in chunks of [`CHUNK_ROWS`]. For each chunk:
//!
//! 1. every row is classified against its checkpoint entry (added, updated, unchanged;
//!    NULL and duplicate ids are reported per row);
//! 2. each changed record becomes one event per mapping that wants the change, consent is
//!    decided, and the events are appended to the event log — `EventLog::append` returns once
//!    they are durable;
//! 3. only then are the chunk's checkpoint entries (fingerprint, version) and the run's
//!    counters committed to `retl.db`, in one transaction.
//!
//! A crash between 2 and 3 leaves the chunk's events in the log and its checkpoint behind: the
//! next run sends the same changes again with the same `messageId`s (derived from record,
//! version and fingerprint), which the log drops as duplicates within its dedup window, and
//! delivers again (at least once) after it. A crash before 2 loses nothing: the checkpoint
//! never moves ahead of the log. Deletions are computed only after the whole result was read
//! (a failed or interrupted read never deletes anything), then processed in chunks the same way.
//!
//! # Where events go
//!
//! * A destination mapping appends the event addressed to that one destination
//!   (`deliver_to`), after the consent decision made here with the consent engine
//!   (`consent::Policy`) on the preferences the row's consent columns give. These appends use
//!   source key 0 (no Tracking API source) and `AppendKind::Release`: the delivery overview
//!   counts them per destination (routed, delivered, and — through one stored placeholder
//!   event per chunk that carries only counts — `FILTERED_BY_END_USER_CONSENT`), never as
//!   received events, and the profile consumer ignores them.
//! * A connections mapping sends an identify or track event of a source through the same
//!   normalisation and routing as the Tracking API (`AppendKind::Received`): the router
//!   decides consent from the stamped `context.consent.categoryPreferences`, the overview
//!   counts it as received on that source, and profiles and the consent ledger see it.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use serde_json::Value as Json;
use serde_json::value::RawValue;
use tokio_util::sync::CancellationToken;

use super::consent::{self, ConsentColumns};
use super::record::{self, EventParts};
use super::store::{
    Change, Checkpoint, CheckpointWrite, Counters, MAX_SAMPLED_ERRORS, Mapping, MappingTarget,
    Model, RecordError, Run, WarehouseConnection,
};
use super::warehouse::{self, Column, Row, Target};
use crate::api::normalize::{self, EventType, RequestContext};
use crate::api::wire::RawObject;
use crate::app::App;
use crate::clock;
use crate::consent::FilterReason;
use crate::log::{Append, AppendKind, DestKey, NewEvent, SourceKey};
use crate::router::{Snapshot, SourceEntry};

/// Rows per chunk: the unit of progress, of log appends and of checkpoint commits.
pub const CHUNK_ROWS: usize = 1_000;

/// The source key of direct-to-destination appends: no Tracking API source (real keys start
/// at 1).
pub const RETL_SOURCE: SourceKey = 0;

/// How a run ended.
#[derive(Debug)]
pub enum Outcome {
    /// Read to the end and everything handled; `partial` when some rows failed.
    Finished,
    /// Stopped by shutdown at a chunk boundary; resumes from the checkpoint.
    Interrupted,
    Failed(String),
}

/// Everything a run works with.
pub struct RunContext {
    pub app: Arc<App>,
    pub model: Model,
    pub connection: WarehouseConnection,
    pub mappings: Vec<Mapping>,
    pub run: Run,
    pub cancel: CancellationToken,
}

/// Execute the run and record its end. Never panics on bad data: every problem is a record
/// error or the run's error.
pub async fn execute(ctx: RunContext) {
    let mut state = RunState::new(&ctx);
    let outcome = match run(&ctx, &mut state).await {
        Ok(outcome) => outcome,
        Err(message) => Outcome::Failed(message),
    };
    let (status, error) = match outcome {
        Outcome::Finished if state.counters.failed > 0 => ("partial", None),
        Outcome::Finished => ("succeeded", None),
        Outcome::Interrupted => (
            "interrupted",
            Some("the server was shutting down; the next sync resumes from the checkpoint".into()),
        ),
        Outcome::Failed(message) => ("failed", Some(message)),
    };
    match &error {
        Some(error) => {
            tracing::warn!(model = %ctx.model.id, run = %ctx.run.id, status, %error, "Reverse ETL sync ended.")
        }
        None => tracing::info!(model = %ctx.model.id, run = %ctx.run.id, status,
            extracted = state.counters.extracted, queued = state.counters.queued,
            filtered_by_consent = state.counters.filtered_by_consent, "Reverse ETL sync finished."),
    }
    if let Err(e) = ctx
        .app
        .retl
        .store
        .finish_run(
            ctx.run.key,
            status,
            state.counters,
            state.errors,
            state.warnings,
            error,
        )
        .await
    {
        tracing::error!(run = %ctx.run.id, error = %e, "Cannot record the end of a reverse ETL run.");
    }
}

/// What a run accumulates.
struct RunState {
    counters: Counters,
    errors: Vec<RecordError>,
    warnings: Vec<String>,
    /// Records queued so far (towards the row limit).
    queued_records: u64,
    chunk_no: u64,
}

impl RunState {
    fn new(ctx: &RunContext) -> RunState {
        let mut counters = Counters::default();
        for m in &ctx.mappings {
            counters.mappings.insert(m.id.clone(), Default::default());
        }
        RunState {
            counters,
            errors: Vec::new(),
            warnings: Vec::new(),
            queued_records: 0,
            chunk_no: 0,
        }
    }

    fn record_error(
        &mut self,
        row: Option<u64>,
        record_id: Option<&str>,
        code: &str,
        message: String,
    ) {
        self.counters.failed += 1;
        if self.errors.len() < MAX_SAMPLED_ERRORS {
            self.errors.push(RecordError {
                row,
                record_id: record_id.map(str::to_owned),
                code: code.to_owned(),
                message,
            });
        }
    }

    fn limit_reached(&self, model: &Model) -> bool {
        model.row_limit.is_some_and(|l| self.queued_records >= l)
    }
}

/// A mapping resolved against the current configuration snapshot.
enum Resolved {
    Direct { dest: DestKey },
    Connections { source: Arc<SourceEntry> },
}

/// The pseudo-source direct appends are routed as: consent not enforced without a signal
/// (SPEC §10: a model without consent mapping is not enforced).
fn retl_source() -> SourceEntry {
    SourceEntry {
        source: crate::store::Source {
            key: RETL_SOURCE,
            id: "retl".into(),
            name: "Reverse ETL".into(),
            write_key: String::new(),
            enabled: true,
            rate_limit_per_second: None,
            missing_consent_policy: None,
            created_at: 0,
        },
        missing_consent_policy: crate::consent::MissingConsentPolicy::Allow,
        limiter: None,
    }
}

fn resolve(snapshot: &Snapshot, mappings: &[Mapping]) -> Result<Vec<Resolved>, String> {
    mappings
        .iter()
        .map(|m| match &m.target {
            MappingTarget::Destination(id) => snapshot
                .destination_by_id(id)
                .map(|d| Resolved::Direct { dest: d.key })
                .ok_or_else(|| {
                    format!(
                        "mapping {} sends to destination {id}, which no longer exists; delete the mapping",
                        m.id
                    )
                }),
            MappingTarget::Connections(id) => match snapshot.source_by_id(id) {
                Some(s) if s.source.enabled => Ok(Resolved::Connections {
                    source: Arc::clone(s),
                }),
                Some(_) => Err(format!(
                    "mapping {} sends events as source {id}, which is disabled; enable it or delete the mapping",
                    m.id
                )),
                None => Err(format!(
                    "mapping {} sends events as source {id}, which no longer exists; delete the mapping",
                    m.id
                )),
            },
        })
        .collect()
}

async fn run(ctx: &RunContext, state: &mut RunState) -> Result<Outcome, String> {
    let target = Target::of(
        ctx.connection.kind,
        &ctx.connection.url,
        std::time::Duration::from_secs(u64::from(ctx.connection.statement_timeout_secs)),
        &ctx.app.sqlite_roots(),
    )
    .map_err(|e| e.message)?;
    let mut extraction = tokio::select! {
        e = warehouse::extract(&target, &ctx.model.query, CHUNK_ROWS) => e.map_err(|e| e.message)?,
        () = ctx.cancel.cancelled() => return Ok(Outcome::Interrupted),
    };
    let columns = extraction.columns.clone();
    let Some(id_index) = columns
        .iter()
        .position(|c| c.name == ctx.model.unique_id_column)
    else {
        return Err(format!(
            "the query no longer returns the unique id column {:?} (it returns {}); fix the query or the model's uniqueIdColumn",
            ctx.model.unique_id_column,
            names(&columns)
        ));
    };
    let user_index = columns
        .iter()
        .position(|c| c.name == ctx.model.user_id_column());
    if user_index.is_none() {
        state.warnings.push(format!(
            "the query does not return the user id column {:?}; events have no userId and fail",
            ctx.model.user_id_column()
        ));
    }
    let (consent, missing) = ConsentColumns::new(&ctx.model.consent, &columns);
    for column in missing {
        state.warnings.push(format!(
            "the consent column {column:?} is not in the query's result; its category counts as not granted"
        ));
    }
    let shape = Shape {
        columns,
        id_index,
        user_index,
        separate_user_id: ctx.model.user_id_column() != ctx.model.unique_id_column,
        consent,
    };
    {
        let snapshot = ctx.app.snapshot();
        for category in ctx.model.consent.values() {
            if !snapshot.categories.iter().any(|c| &c.id == category) {
                state.warnings.push(format!(
                    "the consent mapping names category {category:?}, which does not exist; its column grants nothing"
                ));
            }
        }
    }

    let mut extracted: u64 = 0;
    loop {
        let chunk = tokio::select! {
            chunk = extraction.next_chunk() => chunk,
            () = ctx.cancel.cancelled() => return Ok(Outcome::Interrupted),
        };
        let Some(chunk) = chunk else { break };
        let rows = chunk.map_err(|e| e.message)?;
        let first_row = extracted + 1;
        extracted += rows.len() as u64;
        state.counters.extracted = extracted;
        process_rows(ctx, state, &shape, rows, first_row).await?;
        if ctx.cancel.is_cancelled() {
            return Ok(Outcome::Interrupted);
        }
    }
    drop(extraction);

    // The whole result was read: what the checkpoint holds and this run did not see is gone.
    let mut after: Option<String> = None;
    loop {
        if ctx.cancel.is_cancelled() {
            return Ok(Outcome::Interrupted);
        }
        let gone = ctx
            .app
            .retl
            .store
            .unseen(ctx.model.key, ctx.run.key, after.clone(), CHUNK_ROWS)
            .await
            .map_err(|e| e.to_string())?;
        let Some((last, _)) = gone.last() else { break };
        after = Some(last.clone());
        process_deletions(ctx, state, &shape, gone).await?;
    }
    Ok(Outcome::Finished)
}

fn names(columns: &[Column]) -> String {
    columns
        .iter()
        .map(|c| c.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The result's layout.
struct Shape {
    columns: Vec<Column>,
    id_index: usize,
    user_index: Option<usize>,
    /// The user id comes from another column than the unique id (then it is checkpointed, for
    /// deletions).
    separate_user_id: bool,
    consent: ConsentColumns,
}

/// One changed record, ready to be turned into events.
struct Pending {
    row: Option<u64>,
    record_id: String,
    change: Change,
    fp: Option<[u8; 16]>,
    version: i64,
    user_id: Option<String>,
    preferences: Option<BTreeMap<String, bool>>,
    fields: Option<serde_json::Map<String, Json>>,
}

/// A chunk's appends and checkpoint writes, built before anything is written.
struct Batch {
    /// Per source key: direct appends under [`RETL_SOURCE`], connections under their source.
    appends: BTreeMap<SourceKey, Append>,
    /// Direct records withheld, per destination and reason (counted through a placeholder).
    withheld: BTreeMap<(DestKey, FilterReason), usize>,
    writes: Vec<CheckpointWrite>,
    received_at: i64,
}

impl Batch {
    fn new() -> Batch {
        Batch {
            appends: BTreeMap::new(),
            withheld: BTreeMap::new(),
            writes: Vec::new(),
            received_at: clock::now_ms(),
        }
    }

    fn append_for(&mut self, source: SourceKey, kind: AppendKind) -> &mut Append {
        let received_at = self.received_at;
        self.appends.entry(source).or_insert_with(|| Append {
            source,
            received_at,
            kind,
            ..Append::default()
        })
    }
}

async fn process_rows(
    ctx: &RunContext,
    state: &mut RunState,
    shape: &Shape,
    rows: Vec<Row>,
    first_row: u64,
) -> Result<(), String> {
    let store = &ctx.app.retl.store;
    // Ids first, to read their checkpoint entries in one call.
    let ids: Vec<Result<String, (&'static str, String)>> = rows
        .iter()
        .map(|row| record::record_id(&row[shape.id_index]))
        .collect();
    let lookup: Vec<String> = ids
        .iter()
        .filter_map(|r| r.as_ref().ok().cloned())
        .collect();
    let mut previous = store
        .checkpoints(ctx.model.key, lookup)
        .await
        .map_err(|e| e.to_string())?
        .into_iter();

    let mut batch = Batch::new();
    let mut in_chunk: HashSet<String> = HashSet::with_capacity(rows.len());
    let mut pending = Vec::new();
    for (offset, (row, id)) in rows.into_iter().zip(ids).enumerate() {
        let position = first_row + offset as u64;
        let id = match id {
            Ok(id) => id,
            Err((code, message)) => {
                state.record_error(Some(position), None, code, message);
                continue;
            }
        };
        let cp: Option<Checkpoint> = previous.next().flatten();
        if !in_chunk.insert(id.clone()) || cp.as_ref().is_some_and(|c| c.seen_run == ctx.run.key) {
            state.record_error(
                Some(position),
                Some(&id),
                "duplicate_id",
                format!(
                    "another row of this sync has the unique id {id:?}; this row was not synced (ids must be unique)"
                ),
            );
            continue;
        }
        let fp = record::fingerprint(&shape.columns, &row);
        let Some(change) = record::diff(cp.as_ref(), &fp) else {
            state.counters.unchanged += 1;
            batch.writes.push(CheckpointWrite::Seen { record_id: id });
            continue;
        };
        let user_id = match shape.user_index {
            Some(i) => record::user_id(row.get(i)),
            None => None,
        };
        pending.push(Pending {
            row: Some(position),
            record_id: id,
            change,
            fp: Some(fp),
            version: cp.as_ref().map_or(0, |c| c.version) + 1,
            user_id,
            preferences: shape.consent.preferences(ctx.connection.kind, &row),
            fields: Some(record::fields(&shape.columns, &row, |i| {
                shape.consent.contains(i)
            })),
        });
    }
    route_pending(ctx, state, shape, &mut batch, pending)?;
    commit(ctx, state, batch, "extracting").await
}

async fn process_deletions(
    ctx: &RunContext,
    state: &mut RunState,
    shape: &Shape,
    gone: Vec<(String, Checkpoint)>,
) -> Result<(), String> {
    let mut batch = Batch::new();
    let pending = gone
        .into_iter()
        .map(|(record_id, cp)| Pending {
            row: None,
            user_id: cp.user_id.clone().or_else(|| Some(record_id.clone())),
            preferences: shape.consent.preferences_from(cp.granted.as_deref()),
            record_id,
            change: Change::Deleted,
            fp: None,
            version: cp.version + 1,
            fields: None,
        })
        .collect();
    route_pending(ctx, state, shape, &mut batch, pending)?;
    commit(ctx, state, batch, "deleting").await
}

/// Build, decide and collect the events of changed records; count them.
fn route_pending(
    ctx: &RunContext,
    state: &mut RunState,
    shape: &Shape,
    batch: &mut Batch,
    pending: Vec<Pending>,
) -> Result<(), String> {
    if pending.is_empty() {
        return Ok(());
    }
    // The configuration as of this chunk: changes apply from the next chunk on.
    let snapshot = ctx.app.snapshot();
    let resolved = resolve(&snapshot, &ctx.mappings)?;
    let direct_source = retl_source();
    let mut scratch = Vec::with_capacity(snapshot.dest_keys.len());
    for p in pending {
        let granted = consent::granted_list(p.preferences.as_ref());
        let synced = CheckpointWrite::Synced {
            record_id: p.record_id.clone(),
            fp: p.fp,
            version: p.version,
            granted,
            user_id: if shape.separate_user_id {
                p.user_id.clone()
            } else {
                None
            },
        };
        if snapshot.is_suppressed(p.user_id.as_deref(), None) {
            // A suppressed user's record is handled by not sending it (SPEC §7).
            count_change(state, p.change);
            state.counters.suppressed += 1;
            for (mapping, target) in ctx.mappings.iter().zip(&resolved) {
                if mapping.wants(p.change)
                    && let Resolved::Connections { source } = target
                {
                    batch
                        .append_for(source.source.key, AppendKind::Received)
                        .filtered_at_source += 1;
                }
            }
            batch.writes.push(synced);
            continue;
        }

        // One event per mapping that wants this change.
        let mut events: Vec<(usize, SourceKey, AppendKind, NewEvent)> = Vec::new();
        let mut queued_any = false;
        let mut consent_filtered = false;
        let mut withheld: Vec<(usize, DestKey, FilterReason)> = Vec::new();
        let mut rejected: Option<(SourceKey, &'static str, String)> = None;
        for (index, (mapping, target)) in ctx.mappings.iter().zip(&resolved).enumerate() {
            if !mapping.wants(p.change) {
                continue;
            }
            let message_id =
                record::message_id(&mapping.id, &p.record_id, p.version, p.fp.as_ref());
            let event = record::event(EventParts {
                model_id: &ctx.model.id,
                mapping,
                change: p.change,
                record_id: &p.record_id,
                user_id: p.user_id.as_deref(),
                fields: p.fields.clone(),
                preferences: p.preferences.as_ref(),
                message_id,
            });
            let source = match target {
                Resolved::Direct { .. } => &direct_source,
                Resolved::Connections { source } => source.as_ref(),
            };
            let routed = normalize_and_route(
                &snapshot,
                source,
                mapping,
                &event,
                batch.received_at,
                &mut scratch,
            );
            let (normalized, route) = match routed {
                Ok(r) => r,
                Err((code, message)) => {
                    rejected = Some((source.source.key, code, message));
                    break;
                }
            };
            match target {
                Resolved::Direct { dest } => {
                    if route.deliver_to.contains(dest) {
                        queued_any = true;
                        events.push((
                            index,
                            RETL_SOURCE,
                            AppendKind::Release,
                            NewEvent {
                                deliver_to: vec![*dest],
                                filtered: Vec::new(),
                                hold: false,
                                ..normalized
                            },
                        ));
                    } else {
                        let reason = route
                            .filtered
                            .iter()
                            .find(|(d, _)| d == dest)
                            .map_or(FilterReason::Rules, |(_, r)| *r);
                        consent_filtered |= reason == FilterReason::EndUserConsent;
                        withheld.push((index, *dest, reason));
                    }
                }
                Resolved::Connections { source } => {
                    let by_consent = route.deliver_to.is_empty()
                        && route
                            .filtered
                            .iter()
                            .any(|(_, r)| *r == FilterReason::EndUserConsent);
                    if by_consent {
                        consent_filtered = true;
                    } else {
                        queued_any = true;
                    }
                    let hold = normalized.hold;
                    events.push((
                        index,
                        source.source.key,
                        AppendKind::Received,
                        NewEvent {
                            deliver_to: route.deliver_to,
                            filtered: route.filtered,
                            hold,
                            ..normalized
                        },
                    ));
                    if by_consent {
                        // Counted as filtered for this mapping, though stored like any event.
                        withheld.push((index, 0, FilterReason::EndUserConsent));
                    }
                }
            }
        }

        if let Some((source, code, message)) = rejected {
            // The record fails for every mapping; it is retried by the next sync.
            if source != RETL_SOURCE {
                batch
                    .append_for(source, AppendKind::Received)
                    .rejected
                    .push(code);
            }
            state.record_error(
                p.row,
                Some(&p.record_id),
                "invalid_event",
                format!("{code}: {message}"),
            );
            batch.writes.push(CheckpointWrite::Seen {
                record_id: p.record_id,
            });
            continue;
        }
        if queued_any && state.limit_reached(&ctx.model) {
            // Left for the next run; consent-filtered records never reach this point.
            state.counters.deferred += 1;
            batch.writes.push(CheckpointWrite::Seen {
                record_id: p.record_id,
            });
            continue;
        }

        count_change(state, p.change);
        if queued_any {
            state.queued_records += 1;
            state.counters.queued += 1;
        } else if consent_filtered {
            state.counters.filtered_by_consent += 1;
        }
        for (index, dest, reason) in withheld {
            let counters = state
                .counters
                .mappings
                .entry(ctx.mappings[index].id.clone())
                .or_default();
            if reason == FilterReason::EndUserConsent {
                counters.filtered_by_consent += 1;
            } else {
                counters.filtered += 1;
            }
            if dest != 0 {
                *batch.withheld.entry((dest, reason)).or_insert(0) += 1;
            }
        }
        for (index, source, kind, event) in events {
            let by_consent_connections = kind == AppendKind::Received
                && event.deliver_to.is_empty()
                && event
                    .filtered
                    .iter()
                    .any(|(_, r)| *r == FilterReason::EndUserConsent);
            if !by_consent_connections {
                state
                    .counters
                    .mappings
                    .entry(ctx.mappings[index].id.clone())
                    .or_default()
                    .queued += 1;
            }
            batch.append_for(source, kind).events.push(event);
        }
        batch.writes.push(synced);
    }
    Ok(())
}

fn count_change(state: &mut RunState, change: Change) {
    match change {
        Change::Added => state.counters.added += 1,
        Change::Updated => state.counters.updated += 1,
        Change::Deleted => state.counters.deleted += 1,
    }
}

/// A normalised event, and whether it must be held (a consent-update event, released by the
/// profile consumer as for the Tracking API).
struct Normalized {
    message_id: String,
    user_id: Option<String>,
    anonymous_id: Option<String>,
    payload: Vec<u8>,
    hold: bool,
}

impl From<Normalized> for NewEvent {
    fn from(n: Normalized) -> NewEvent {
        NewEvent {
            message_id: n.message_id,
            user_id: n.user_id,
            anonymous_id: n.anonymous_id,
            payload: n.payload,
            deliver_to: Vec::new(),
            filtered: Vec::new(),
            hold: n.hold,
        }
    }
}

/// The Tracking API's normalisation and routing, for one built event.
fn normalize_and_route(
    snapshot: &Snapshot,
    source: &SourceEntry,
    mapping: &Mapping,
    event: &Json,
    received_at: i64,
    scratch: &mut Vec<crate::consent::Outcome>,
) -> Result<(NewEvent, crate::router::Route), (&'static str, String)> {
    let text = event.to_string();
    let raw: &RawValue = serde_json::from_str(&text)
        .map_err(|e| ("invalid_event", format!("cannot build the event: {e}")))?;
    let object = RawObject::parse(raw)
        .ok_or_else(|| ("invalid_event", "the event is not an object".to_owned()))?;
    let kind = match mapping.operation {
        super::store::Operation::Identify => EventType::Identify,
        super::store::Operation::Track => EventType::Track,
    };
    let request = RequestContext {
        received_at,
        ip: None,
        batch_context: None,
        batch_integrations: None,
        batch_sent_at: None,
    };
    let n = normalize::normalize(&object, Some(kind), &request)
        .map_err(|r| (r.code, r.message.into_owned()))?;
    let route = snapshot.route(source, &n.facts, &n.payload, scratch);
    let hold = n.facts.is_consent_update;
    let event: NewEvent = Normalized {
        message_id: n.message_id,
        user_id: n.user_id,
        anonymous_id: n.anonymous_id,
        payload: n.payload,
        hold,
    }
    .into();
    Ok((event, route))
}

/// Append the chunk's events (durable when `append` returns), then commit its checkpoint.
async fn commit(
    ctx: &RunContext,
    state: &mut RunState,
    mut batch: Batch,
    phase: &'static str,
) -> Result<(), String> {
    state.chunk_no += 1;
    if !batch.withheld.is_empty() {
        // Direct records withheld are not stored; one placeholder event without data carries
        // their per-destination counts into the delivery overview.
        let filtered: Vec<(DestKey, FilterReason)> = batch
            .withheld
            .iter()
            .flat_map(|(&(dest, reason), &n)| std::iter::repeat_n((dest, reason), n))
            .collect();
        let placeholder = NewEvent {
            message_id: format!("retl-filtered-{}-{}", ctx.run.id, state.chunk_no),
            user_id: None,
            anonymous_id: None,
            payload: b"{}".to_vec(),
            deliver_to: Vec::new(),
            filtered,
            hold: false,
        };
        batch
            .append_for(RETL_SOURCE, AppendKind::Release)
            .events
            .push(placeholder);
    }
    for (source, append) in std::mem::take(&mut batch.appends) {
        // Connections-path events show in the source's live debugger like any event.
        let watched = (append.kind == AppendKind::Received && ctx.app.debugger.watching(source))
            .then(|| append.events.clone());
        let appended =
            ctx.app.log.append(append).await.map_err(|e| {
                format!("cannot queue the records: {e}; the next sync retries them")
            })?;
        if let Some(events) = watched {
            let snapshot = ctx.app.snapshot();
            ctx.app.debugger.publish(
                source,
                debug_events(&snapshot, events, &appended.duplicates, batch.received_at),
            );
        }
    }
    ctx.app
        .retl
        .store
        .commit_chunk(
            ctx.model.key,
            ctx.run.key,
            batch.writes,
            state.counters.clone(),
            state.errors.clone(),
            phase,
        )
        .await
        .map_err(|e| format!("cannot save the checkpoint: {e}"))
}

/// The debugger's view of connections-path events (as the Tracking API shows its own).
fn debug_events(
    snapshot: &Snapshot,
    events: Vec<NewEvent>,
    duplicates: &[usize],
    received_at: i64,
) -> Vec<crate::debugger::DebugEvent> {
    use crate::debugger::{DebugEvent, Decision};
    let destination = |key: DestKey| {
        snapshot
            .destinations
            .iter()
            .find(|d| d.key == key)
            .map_or_else(Default::default, |d| (d.id.clone(), d.name.clone()))
    };
    events
        .into_iter()
        .enumerate()
        .map(|(index, e)| {
            let duplicate = duplicates.contains(&index);
            let event: Json = serde_json::from_slice(&e.payload).unwrap_or_default();
            let mut decisions = Vec::new();
            if !duplicate {
                for key in &e.deliver_to {
                    let (destination_id, name) = destination(*key);
                    decisions.push(Decision {
                        destination_id,
                        name,
                        decision: if e.hold { "held" } else { "delivered" },
                        reason: None,
                    });
                }
                for (key, reason) in &e.filtered {
                    let (destination_id, name) = destination(*key);
                    decisions.push(Decision {
                        destination_id,
                        name,
                        decision: "filtered",
                        reason: Some(reason.as_str()),
                    });
                }
            }
            DebugEvent {
                received_at: clock::format_ms(received_at),
                message_id: Some(e.message_id),
                status: if duplicate { "duplicate" } else { "accepted" },
                rejection: None,
                consent: event
                    .pointer("/context/consent")
                    .cloned()
                    .unwrap_or_default(),
                event,
                decisions,
            }
        })
        .collect()
}

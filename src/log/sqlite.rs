//! The embedded event log: one SQLite database in WAL mode, written by one thread.
//!
//! # Design
//!
//! * **One writer, group commit.** Every change (appends from request handlers, acks from
//!   delivery workers, dead-letter replays) is a message to a single writer thread. The thread
//!   takes whatever has queued up, applies all of it in one transaction and commits once
//!   (`synchronous=FULL`: the commit is on disk when it returns), then answers every waiting
//!   request. Under load many requests share one fsync; at low load a request waits for one
//!   fsync of its own.
//! * **One row per append.** The events of one request are encoded into one *chunk* row
//!   (`chunk.rs`); each event keeps its own sequence number. Per event, the writer does a copy
//!   and a dedup-index insert; truncation deletes whole chunks.
//! * **Readers never block the writer.** WAL mode lets consumers read committed chunks from
//!   their own connections while the writer appends.
//! * **Checkpoints off the hot path.** The writer never checkpoints (`wal_autocheckpoint=0`); a
//!   checkpointer thread copies the WAL into the database file in the background (`PASSIVE`,
//!   so it never waits for, or blocks, the writer).
//! * **Sequences are ours.** `seq` is assigned by the writer from a counter persisted in `meta`,
//!   so it never goes backwards when truncation empties the table.
//! * **Deduplication by messageId in three generations**, written in the same transaction
//!   as the events (see `dedup.rs`).
//! * **Truncation.** Several times a second, chunks wholly at or below the lowest consumer
//!   cursor are deleted, a bounded number at a time. Disk use is bounded by the slowest
//!   consumer's backlog.
//!
//! # On-disk schema (`log.db`)
//!
//! ```text
//! meta(key PRIMARY KEY, value)   head, dedup generation and rotation time
//! dedup_0 / dedup_1 / dedup_2(id PRIMARY KEY) WITHOUT ROWID   messageIds
//! chunks(first_seq PRIMARY KEY, last_seq, data BLOB)   events first_seq..=last_seq
//! cursors(consumer PRIMARY KEY, seq)
//! dead_letters(id PRIMARY KEY, dest, source, seq, message_id, user_id, anonymous_id,
//!              received_at, failed_at, attempts, error, payload)
//! stats(bucket, source, dest, metric, reason, n)  -- see `stats.rs`
//! ```
//!
//! # Recovery
//!
//! SQLite's WAL recovery is the recovery: a transaction is either wholly in the database after
//! a crash or not at all, and nothing was acknowledged before its commit returned.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use rusqlite::{Connection, OpenFlags, OptionalExtension, Transaction, params};
use tokio::sync::{mpsc, oneshot, watch};

use super::chunk::{self, EventRef};
use super::dedup::{self, Dedup};
use super::stats::{self, Metric, NO_DEST, StatsDelta};
use super::{
    Ack, Append, AppendKind, Appended, Consumer, DeletedEvents, DestKey, EventLog, LogError,
    Overview, OverviewQuery, Page, Record, Seq, SourceKey, StoredDeadLetter,
};
use crate::clock;

/// Most events applied in one transaction; keeps a commit's latency bounded under a flood.
const MAX_GROUP_EVENTS: usize = 20_000;
/// Chunks deleted per tick (a chunk is one request's events).
const TRUNCATE_CHUNKS: i64 = 200;
/// Chunks deleted along with each commit.
const TRUNCATE_PER_COMMIT: i64 = 64;
/// Dedup entries forgotten per tick, and at least per commit.
const FORGET_PER_TICK: usize = 5_000;
const FORGET_PER_COMMIT: usize = 500;
/// How often the writer truncates and the checkpointer checkpoints.
const MAINTENANCE_EVERY: Duration = Duration::from_millis(250);

enum Msg {
    Append {
        append: Append,
        reply: Option<oneshot::Sender<Result<Appended, LogError>>>,
    },
    Ack(Ack),
    Cursor {
        consumer: String,
        reply: oneshot::Sender<Result<Seq, LogError>>,
    },
    RemoveConsumer {
        consumer: String,
        dest: Option<DestKey>,
        reply: oneshot::Sender<Result<(), LogError>>,
    },
    Replay {
        dest: DestKey,
        ids: Option<Vec<i64>>,
        reply: oneshot::Sender<Result<usize, LogError>>,
    },
    DeletePeople {
        user_ids: Vec<String>,
        anonymous_ids: Vec<String>,
        reply: oneshot::Sender<Result<DeletedEvents, LogError>>,
    },
    DedupWindow(i64),
    Tick,
    Close(oneshot::Sender<()>),
    /// Test hook: stop at once, dropping everything queued, as a killed process would.
    #[cfg(test)]
    Crash,
}

impl Msg {
    fn weight(&self) -> usize {
        match self {
            Msg::Append { append, .. } => append.events.len().max(1),
            Msg::Ack(ack) => ack.dead.len().max(1),
            _ => 1,
        }
    }
}

/// The embedded log. Cheap to share behind an `Arc`.
pub struct SqliteLog {
    tx: mpsc::UnboundedSender<Msg>,
    committed: watch::Receiver<Seq>,
    readers: Arc<ReaderPool>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl SqliteLog {
    /// Open (creating if needed) the log at `path`, with the given dedup window.
    pub fn open(path: &Path, dedup_window_ms: i64) -> Result<SqliteLog, LogError> {
        let mut conn = Connection::open(path)?;
        configure(&conn)?;
        create_schema(&mut conn)?;
        // `head` in meta is written by maintenance; chunks written since then are newer.
        let max_chunk: Option<Seq> =
            // Chunks are appended in order: the newest holds the highest sequence number.
            conn.query_row(
                "SELECT last_seq FROM chunks ORDER BY first_seq DESC LIMIT 1",
                [],
                |r| r.get(0),
            )
            .optional()?;
        let head: Seq = meta_get(&conn, "head")?
            .unwrap_or(0)
            .max(max_chunk.unwrap_or(0));
        let dedup = Dedup::open(&conn, dedup_window_ms)?;
        let (committed_tx, committed) = watch::channel(head);
        let (tx, rx) = mpsc::unbounded_channel();
        let stop_checkpointer = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let checkpointer_path = path.to_owned();
        let stop = Arc::clone(&stop_checkpointer);
        std::thread::Builder::new()
            .name("sluice-log-checkpointer".into())
            .spawn(move || run_checkpointer(checkpointer_path, stop))
            .map_err(|e| LogError::Storage(format!("cannot start the log checkpointer: {e}")))?;
        let writer = Writer {
            conn,
            head,
            committed: committed_tx,
            last_maintenance: Instant::now(),
            stop_checkpointer,
            dedup,
        };
        let handle = std::thread::Builder::new()
            .name("sluice-log-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| LogError::Storage(format!("cannot start the log writer: {e}")))?;
        // A ticker drives truncation and dedup rotation; it stops when the writer is gone.
        let ticker = tx.clone();
        std::thread::Builder::new()
            .name("sluice-log-ticker".into())
            .spawn(move || {
                while ticker.send(Msg::Tick).is_ok() {
                    std::thread::sleep(MAINTENANCE_EVERY);
                }
            })
            .map_err(|e| LogError::Storage(format!("cannot start the log ticker: {e}")))?;
        Ok(SqliteLog {
            tx,
            committed,
            readers: Arc::new(ReaderPool {
                path: path.to_owned(),
                idle: Mutex::new(Vec::new()),
            }),
            writer: Mutex::new(Some(handle)),
        })
    }

    fn send(&self, msg: Msg) -> Result<(), LogError> {
        self.tx.send(msg).map_err(|_| LogError::Closed)
    }

    async fn request<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, LogError>>) -> Msg,
    ) -> Result<T, LogError> {
        let (reply, answer) = oneshot::channel();
        self.send(make(reply))?;
        answer.await.map_err(|_| LogError::Closed)?
    }

    /// Test hook: simulate a crash (the writer stops without applying what is queued).
    #[cfg(test)]
    pub fn crash(&self) {
        let _ = self.tx.send(Msg::Crash);
        if let Some(handle) = self.writer.lock().expect("writer lock").take() {
            let _ = handle.join();
        }
    }
}

fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "cache_size", -32_000)?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    // The checkpointer thread checkpoints; the writer never does.
    conn.pragma_update(None, "wal_autocheckpoint", 0)?;
    conn.pragma_update(None, "journal_size_limit", 256 * 1024 * 1024)?;
    conn.busy_timeout(Duration::from_secs(30))?;
    Ok(())
}

fn create_schema(conn: &mut Connection) -> rusqlite::Result<()> {
    conn.execute_batch(dedup::SCHEMA)?;
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL);
         CREATE TABLE IF NOT EXISTS chunks(
             first_seq INTEGER PRIMARY KEY,
             last_seq INTEGER NOT NULL,
             data BLOB NOT NULL);
         CREATE TABLE IF NOT EXISTS cursors(consumer TEXT PRIMARY KEY, seq INTEGER NOT NULL);
         CREATE TABLE IF NOT EXISTS dead_letters(
             id INTEGER PRIMARY KEY AUTOINCREMENT,
             dest INTEGER NOT NULL,
             source INTEGER NOT NULL,
             seq INTEGER NOT NULL,
             message_id TEXT NOT NULL,
             user_id TEXT,
             anonymous_id TEXT,
             received_at INTEGER NOT NULL,
             failed_at INTEGER NOT NULL,
             attempts INTEGER NOT NULL,
             error TEXT NOT NULL,
             payload BLOB NOT NULL);
         CREATE INDEX IF NOT EXISTS dead_letters_dest ON dead_letters(dest, id);
         CREATE TABLE IF NOT EXISTS stats(
             bucket INTEGER NOT NULL,
             source INTEGER NOT NULL,
             dest INTEGER NOT NULL,
             metric INTEGER NOT NULL,
             reason TEXT NOT NULL,
             n INTEGER NOT NULL,
             PRIMARY KEY(bucket, source, dest, metric, reason)) WITHOUT ROWID;",
    )
}

fn meta_get(conn: &Connection, key: &str) -> rusqlite::Result<Option<i64>> {
    conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
        .optional()
}

fn meta_set(tx: &Transaction<'_>, key: &str, value: i64) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO meta(key, value) VALUES (?1, ?2)
         ON CONFLICT(key) DO UPDATE SET value = excluded.value",
    )?
    .execute(params![key, value])?;
    Ok(())
}

/// What the writer owes callers once the transaction commits.
enum Reply {
    Append(oneshot::Sender<Result<Appended, LogError>>, Appended),
    Cursor(oneshot::Sender<Result<Seq, LogError>>, Seq),
    Removed(oneshot::Sender<Result<(), LogError>>),
    Replay(oneshot::Sender<Result<usize, LogError>>, usize),
    Deleted(
        oneshot::Sender<Result<DeletedEvents, LogError>>,
        DeletedEvents,
    ),
}

impl Reply {
    fn fail(self, error: &LogError) {
        let error = || LogError::Storage(error.to_string());
        match self {
            Reply::Append(tx, _) => drop(tx.send(Err(error()))),
            Reply::Cursor(tx, _) => drop(tx.send(Err(error()))),
            Reply::Removed(tx) => drop(tx.send(Err(error()))),
            Reply::Replay(tx, _) => drop(tx.send(Err(error()))),
            Reply::Deleted(tx, _) => drop(tx.send(Err(error()))),
        }
    }

    fn succeed(self) {
        match self {
            Reply::Append(tx, v) => drop(tx.send(Ok(v))),
            Reply::Cursor(tx, v) => drop(tx.send(Ok(v))),
            Reply::Removed(tx) => drop(tx.send(Ok(()))),
            Reply::Replay(tx, v) => drop(tx.send(Ok(v))),
            Reply::Deleted(tx, v) => drop(tx.send(Ok(v))),
        }
    }
}

struct Writer {
    conn: Connection,
    head: Seq,
    committed: watch::Sender<Seq>,
    last_maintenance: Instant,
    stop_checkpointer: Arc<std::sync::atomic::AtomicBool>,
    dedup: Dedup,
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.stop_checkpointer
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Writer {
    fn run(mut self, mut rx: mpsc::UnboundedReceiver<Msg>) {
        let mut closing: Option<oneshot::Sender<()>> = None;
        while let Some(first) = rx.blocking_recv() {
            let mut batch = Vec::with_capacity(64);
            let mut weight = first.weight();
            batch.push(first);
            while weight < MAX_GROUP_EVENTS {
                match rx.try_recv() {
                    Ok(msg) => {
                        weight += msg.weight();
                        batch.push(msg);
                    }
                    Err(_) => break,
                }
            }
            let mut tick = false;
            let mut work = Vec::with_capacity(batch.len());
            for msg in batch {
                match msg {
                    Msg::Tick => tick = true,
                    Msg::DedupWindow(ms) => self.dedup.set_window(ms),
                    Msg::Close(done) => closing = Some(done),
                    #[cfg(test)]
                    Msg::Crash => return,
                    other => work.push(other),
                }
            }
            if !work.is_empty() {
                self.apply(work);
            }
            if closing.is_some() {
                break;
            }
            // Housekeeping rides along with commits; ticks cover the idle case.
            if tick && self.last_maintenance.elapsed() >= MAINTENANCE_EVERY {
                self.last_maintenance = Instant::now();
                if let Err(error) = self.maintain() {
                    tracing::warn!(%error, "Event log maintenance failed; it will be retried.");
                }
            }
        }
        // Apply whatever is still queued, then checkpoint so the next start reads one file.
        rx.close();
        let mut rest = Vec::new();
        while let Ok(msg) = rx.try_recv() {
            match msg {
                Msg::Tick | Msg::DedupWindow(_) => {}
                Msg::Close(done) => drop(done.send(())),
                #[cfg(test)]
                Msg::Crash => return,
                other => rest.push(other),
            }
        }
        if !rest.is_empty() {
            self.apply(rest);
        }
        let _ = self.conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);");
        if let Some(done) = closing {
            let _ = done.send(());
        }
    }

    /// Apply a group of messages in one transaction and answer them after the commit.
    fn apply(&mut self, work: Vec<Msg>) {
        let started = Instant::now();
        let events: usize = work
            .iter()
            .map(|m| match m {
                Msg::Append { append, .. } => append.events.len(),
                _ => 0,
            })
            .sum();
        metrics::histogram!("sluice_log_group_messages").record(work.len() as f64);
        let head_before = self.head;
        let mut replies = Vec::with_capacity(work.len());
        let result = (|| -> Result<(), LogError> {
            let tx = self.conn.transaction()?;
            let mut stats = StatsDelta::default();
            let mut head = self.head;
            let now = clock::now_ms();
            for msg in work {
                match msg {
                    Msg::Append { append, reply } => {
                        let appended =
                            append_events(&tx, &mut head, &self.dedup, &append, &mut stats)?;
                        if let Some(reply) = reply {
                            replies.push(Reply::Append(reply, appended));
                        }
                    }
                    Msg::Ack(ack) => apply_ack(&tx, &ack, now, &mut stats)?,
                    Msg::Cursor { consumer, reply } => {
                        let seq = register(&tx, &consumer, head)?;
                        replies.push(Reply::Cursor(reply, seq));
                    }
                    Msg::RemoveConsumer {
                        consumer,
                        dest,
                        reply,
                    } => {
                        tx.execute("DELETE FROM cursors WHERE consumer = ?1", [&consumer])?;
                        if let Some(dest) = dest {
                            tx.execute("DELETE FROM dead_letters WHERE dest = ?1", [dest])?;
                        }
                        replies.push(Reply::Removed(reply));
                    }
                    Msg::DeletePeople {
                        user_ids,
                        anonymous_ids,
                        reply,
                    } => {
                        let deleted = delete_people(&tx, &user_ids, &anonymous_ids, &mut stats)?;
                        replies.push(Reply::Deleted(reply, deleted));
                    }
                    Msg::Replay { dest, ids, reply } => {
                        let n = replay(&tx, &mut head, dest, ids.as_deref(), &mut stats)?;
                        replies.push(Reply::Replay(reply, n));
                    }
                    _ => {}
                }
            }
            stats.write(&tx)?;
            // Forget at least as many dedup entries as this group remembered, so forgetting
            // keeps pace with ingest.
            let rotation = housekeeping(
                &tx,
                &mut self.dedup,
                head,
                TRUNCATE_PER_COMMIT,
                FORGET_PER_COMMIT.max(2 * events),
            )?;
            tx.commit()?;
            self.head = head;
            if let Some(rotation) = rotation {
                self.dedup.rotated(rotation);
            }
            Ok(())
        })();

        let took = started.elapsed();
        metrics::histogram!("sluice_log_commit_seconds").record(took.as_secs_f64());
        if took > Duration::from_millis(500) {
            tracing::warn!(
                took_ms = took.as_millis() as u64,
                messages = replies.len(),
                events,
                "Slow event log commit."
            );
        }
        match result {
            Ok(()) => {
                for reply in replies {
                    reply.succeed();
                }
                if self.head != head_before {
                    self.committed.send_replace(self.head);
                }
            }
            Err(error) => {
                tracing::error!(%error, "Event log commit failed; the requests in this group get an error.");
                for reply in replies {
                    reply.fail(&error);
                }
            }
        }
    }

    /// On a tick: record the head and do a housekeeping step in a transaction of its own.
    fn maintain(&mut self) -> Result<(), LogError> {
        let started = Instant::now();
        let tx = self.conn.transaction()?;
        meta_set(&tx, "head", self.head)?;
        let rotation = housekeeping(
            &tx,
            &mut self.dedup,
            self.head,
            TRUNCATE_CHUNKS,
            FORGET_PER_TICK,
        )?;
        tx.commit()?;
        self.last_maintenance = Instant::now();
        if started.elapsed() > Duration::from_millis(500) {
            tracing::warn!(
                took_ms = started.elapsed().as_millis() as u64,
                "Slow event log maintenance."
            );
        }
        if let Some(rotation) = rotation {
            self.dedup.rotated(rotation);
        }
        Ok(())
    }
}

/// Truncate consumed chunks and forget old dedup entries, a bounded amount, inside `tx`.
///
/// The chunk holding `head` is always kept, so after a restart `MAX(last_seq)` still gives the
/// head and sequences never go backwards.
fn housekeeping(
    tx: &Transaction<'_>,
    dedup: &mut Dedup,
    head: Seq,
    chunks: i64,
    forget: usize,
) -> Result<Option<dedup::Rotation>, LogError> {
    let floor: Option<Seq> = tx
        .prepare_cached("SELECT MIN(seq) FROM cursors")?
        .query_row([], |r| r.get(0))?;
    let floor = floor.unwrap_or(head).min(head - 1);
    tx.prepare_cached(
        "DELETE FROM chunks WHERE first_seq IN
           (SELECT first_seq FROM chunks WHERE last_seq <= ?1 ORDER BY first_seq LIMIT ?2)",
    )?
    .execute(params![floor, chunks])?;
    Ok(dedup.housekeeping(tx, forget)?)
}

fn append_events(
    tx: &Transaction<'_>,
    head: &mut Seq,
    dedup: &Dedup,
    append: &Append,
    stats: &mut StatsDelta,
) -> Result<Appended, LogError> {
    let source = append.source;
    let at = append.received_at;
    let mut appended = Appended::default();
    let capacity = append.events.iter().map(|e| e.payload.len() + 96).sum();
    let mut data = Vec::with_capacity(capacity);
    let first_seq = *head + 1;
    for (index, event) in append.events.iter().enumerate() {
        if !dedup.first_sighting(tx, &event.message_id)? {
            appended.duplicates.push(index);
            continue;
        }
        *head += 1;
        chunk::encode_into(
            &mut data,
            &EventRef {
                source,
                received_at: at,
                dests: &event.deliver_to,
                message_id: &event.message_id,
                user_id: event.user_id.as_deref(),
                anonymous_id: event.anonymous_id.as_deref(),
                payload: &event.payload,
                held: event.hold,
                system: append.kind != AppendKind::Received,
            },
        );
        // A held event is routed when it is released, not now.
        if !event.hold {
            for &dest in &event.deliver_to {
                stats.add(at, source, dest, Metric::Routed, "", 1);
            }
        }
        for &(dest, reason) in &event.filtered {
            stats.add(at, source, dest, Metric::Filtered, reason.as_str(), 1);
        }
    }
    if *head >= first_seq {
        tx.prepare_cached("INSERT INTO chunks(first_seq, last_seq, data) VALUES (?1, ?2, ?3)")?
            .execute(params![first_seq, *head, data])?;
    }
    let stored = (append.events.len() - appended.duplicates.len()) as i64;
    match append.kind {
        AppendKind::Received => {
            let received =
                append.events.len() + append.rejected.len() + append.filtered_at_source as usize;
            stats.add(at, source, NO_DEST, Metric::Received, "", received as i64);
            stats.add(at, source, NO_DEST, Metric::Accepted, "", stored);
            stats.add(
                at,
                source,
                NO_DEST,
                Metric::Duplicate,
                "",
                appended.duplicates.len() as i64,
            );
            stats.add(
                at,
                source,
                NO_DEST,
                Metric::FilteredAtSource,
                "",
                i64::from(append.filtered_at_source),
            );
            for code in &append.rejected {
                stats.add(at, source, NO_DEST, Metric::FailedOnIngest, code, 1);
            }
        }
        AppendKind::Generated => {
            stats.add(at, source, NO_DEST, Metric::Generated, "", stored);
            stats.add(at, source, NO_DEST, Metric::Accepted, "", stored);
        }
        // Released events were counted as received when they arrived.
        AppendKind::Release => {}
    }
    appended.last_seq = *head;
    Ok(appended)
}

fn apply_ack(
    tx: &Transaction<'_>,
    ack: &Ack,
    now: i64,
    stats: &mut StatsDelta,
) -> Result<(), LogError> {
    let name = ack.consumer.name();
    let exists = tx
        .prepare_cached("UPDATE cursors SET seq = MAX(seq, ?2) WHERE consumer = ?1")?
        .execute(params![name, ack.upto])?
        > 0;
    // A removed consumer's late ack must not resurrect counters or dead letters.
    if !exists {
        return Ok(());
    }
    let Consumer::Destination(dest) = ack.consumer else {
        return Ok(());
    };
    for &(source, received_at) in &ack.delivered {
        stats.add(received_at, source, dest, Metric::Delivered, "", 1);
    }
    let mut insert = tx.prepare_cached(
        "INSERT INTO dead_letters(dest, source, seq, message_id, user_id, anonymous_id,
                                  received_at, failed_at, attempts, error, payload)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?;
    for dead in &ack.dead {
        let r = &dead.record;
        insert.execute(params![
            dest,
            r.source,
            r.seq,
            r.message_id,
            r.user_id,
            r.anonymous_id,
            r.received_at,
            now,
            dead.attempts,
            dead.error,
            r.payload
        ])?;
        stats.add(r.received_at, r.source, dest, Metric::Dead, "", 1);
    }
    Ok(())
}

fn register(tx: &Transaction<'_>, consumer: &str, head: Seq) -> Result<Seq, LogError> {
    tx.execute(
        "INSERT OR IGNORE INTO cursors(consumer, seq) VALUES (?1, ?2)",
        params![consumer, head],
    )?;
    Ok(tx.query_row(
        "SELECT seq FROM cursors WHERE consumer = ?1",
        [consumer],
        |r| r.get(0),
    )?)
}

fn replay(
    tx: &Transaction<'_>,
    head: &mut Seq,
    dest: DestKey,
    ids: Option<&[i64]>,
    stats: &mut StatsDelta,
) -> Result<usize, LogError> {
    type Row = (
        i64,
        u32,
        i64,
        String,
        Option<String>,
        Option<String>,
        Vec<u8>,
    );
    let read = |row: &rusqlite::Row<'_>| -> rusqlite::Result<Row> {
        Ok((
            row.get(0)?,
            row.get(1)?,
            row.get(2)?,
            row.get(3)?,
            row.get(4)?,
            row.get(5)?,
            row.get(6)?,
        ))
    };
    let columns = "id, source, received_at, message_id, user_id, anonymous_id, payload";
    let rows: Vec<Row> = match ids {
        None => tx
            .prepare(&format!(
                "SELECT {columns} FROM dead_letters WHERE dest = ?1 ORDER BY id"
            ))?
            .query_map([dest], read)?
            .collect::<Result<_, _>>()?,
        Some(ids) => {
            let mut stmt = tx.prepare(&format!(
                "SELECT {columns} FROM dead_letters WHERE dest = ?1 AND id = ?2"
            ))?;
            let mut rows = Vec::new();
            for id in ids {
                if let Some(row) = stmt.query_row(params![dest, id], read).optional()? {
                    rows.push(row);
                }
            }
            rows.sort_by_key(|r| r.0);
            rows
        }
    };
    let mut delete = tx.prepare_cached("DELETE FROM dead_letters WHERE id = ?1")?;
    let mut data = Vec::new();
    let first_seq = *head + 1;
    for (id, source, received_at, message_id, user_id, anonymous_id, payload) in &rows {
        *head += 1;
        chunk::encode_into(
            &mut data,
            &EventRef {
                source: *source,
                received_at: *received_at,
                dests: &[dest],
                message_id,
                user_id: user_id.as_deref(),
                anonymous_id: anonymous_id.as_deref(),
                payload,
                held: false,
                system: false,
            },
        );
        delete.execute([id])?;
        // Back from dead to in flight: routed stays, dead goes down.
        stats.add(*received_at, *source, dest, Metric::Dead, "", -1);
    }
    if !rows.is_empty() {
        tx.prepare_cached("INSERT INTO chunks(first_seq, last_seq, data) VALUES (?1, ?2, ?3)")?
            .execute(params![first_seq, *head, data])?;
    }
    Ok(rows.len())
}

/// Blank the events of these people in every chunk, and drop their dead letters. Events a
/// destination had not delivered yet count as `deleted` for it in the overview.
fn delete_people(
    tx: &Transaction<'_>,
    user_ids: &[String],
    anonymous_ids: &[String],
    stats: &mut StatsDelta,
) -> Result<DeletedEvents, LogError> {
    let users: std::collections::HashSet<&str> = user_ids.iter().map(String::as_str).collect();
    let anons: std::collections::HashSet<&str> = anonymous_ids.iter().map(String::as_str).collect();
    let matches = |user: Option<&str>, anon: Option<&str>| {
        user.is_some_and(|u| users.contains(u)) || anon.is_some_and(|a| anons.contains(a))
    };
    let cursors: std::collections::HashMap<DestKey, Seq> = tx
        .prepare("SELECT consumer, seq FROM cursors WHERE consumer LIKE 'dest:%'")?
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, Seq>(1)?)))?
        .filter_map(|row| row.ok())
        .filter_map(|(name, seq)| name.strip_prefix("dest:")?.parse().ok().map(|d| (d, seq)))
        .collect();
    let mut out = DeletedEvents::default();
    let mut rewritten: Vec<(Seq, Vec<u8>)> = Vec::new();
    {
        let mut stmt = tx.prepare("SELECT first_seq, data FROM chunks ORDER BY first_seq")?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let first: Seq = row.get(0)?;
            let data = row.get_ref(1)?.as_blob().map_err(rusqlite::Error::from)?;
            if !chunk::decode(data).any(|e| !e.deleted && matches(e.user_id, e.anonymous_id)) {
                continue;
            }
            let mut new = Vec::with_capacity(data.len());
            for (i, event) in chunk::decode(data).enumerate() {
                let seq = first + i as Seq;
                if event.deleted {
                    chunk::encode_deleted(&mut new, event.source, event.received_at);
                    continue;
                }
                if !matches(event.user_id, event.anonymous_id) {
                    chunk::encode_event(&mut new, &event);
                    continue;
                }
                out.events += 1;
                if !event.held {
                    for dest in event.dests() {
                        if cursors.get(&dest).is_some_and(|cursor| seq > *cursor) {
                            stats.add(
                                event.received_at,
                                event.source,
                                dest,
                                Metric::Deleted,
                                "",
                                1,
                            );
                        }
                    }
                }
                chunk::encode_deleted(&mut new, event.source, event.received_at);
            }
            rewritten.push((first, new));
        }
    }
    let mut update = tx.prepare("UPDATE chunks SET data = ?2 WHERE first_seq = ?1")?;
    for (first, data) in rewritten {
        update.execute(params![first, data])?;
    }
    let mut dead = tx
        .prepare("SELECT id, dest, source, received_at, user_id, anonymous_id FROM dead_letters")?;
    let doomed: Vec<(i64, DestKey, SourceKey, i64)> = dead
        .query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get::<_, Option<String>>(4)?,
                r.get::<_, Option<String>>(5)?,
            ))
        })?
        .filter_map(|row| row.ok())
        .filter(|(_, _, _, _, u, a)| matches(u.as_deref(), a.as_deref()))
        .map(|(id, d, s, at, _, _)| (id, d, s, at))
        .collect();
    for (id, dest, source, at) in doomed {
        tx.execute("DELETE FROM dead_letters WHERE id = ?1", [id])?;
        stats.add(at, source, dest, Metric::Dead, "", -1);
        stats.add(at, source, dest, Metric::Deleted, "", 1);
        out.dead_letters += 1;
    }
    Ok(out)
}

/// Read-only connections for consumers, reused across reads.
struct ReaderPool {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl ReaderPool {
    async fn with<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&Connection) -> Result<T, LogError> + Send + 'static,
    ) -> Result<T, LogError> {
        let pool = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let conn = match pool.idle.lock().expect("reader pool lock").pop() {
                Some(conn) => conn,
                None => {
                    let conn = Connection::open_with_flags(
                        &pool.path,
                        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                    )?;
                    conn.busy_timeout(Duration::from_secs(30))?;
                    conn
                }
            };
            let result = f(&conn);
            pool.idle.lock().expect("reader pool lock").push(conn);
            result
        })
        .await
        .map_err(|e| LogError::Storage(format!("reader task failed: {e}")))?
    }
}

/// The chunks from the one holding `after + 1` on. It seeks there through the primary key:
/// `last_seq > ?1` alone would walk every chunk from the oldest, a page read per chunk, on
/// every read, so reading would slow down as the backlog grows.
const READ_PAGE: &str = "SELECT first_seq, data FROM chunks
     WHERE first_seq >= COALESCE((SELECT MAX(first_seq) FROM chunks WHERE first_seq <= ?1), 0)
       AND last_seq > ?1
     ORDER BY first_seq LIMIT 64";

fn read_page(
    conn: &Connection,
    consumer: &Consumer,
    after: Seq,
    limit: usize,
) -> Result<Page, LogError> {
    let mut stmt = conn.prepare_cached(READ_PAGE)?;
    // Examine a bounded number of events per page, so a destination that receives few events
    // still moves quickly through a log full of other destinations' events.
    let scan_budget = (limit * 8).max(2_048);
    let mut scanned = 0;
    let mut rows = stmt.query([after])?;
    let mut page = Page {
        records: Vec::new(),
        scanned_to: after,
    };
    'chunks: while let Some(row) = rows.next()? {
        let first_seq: Seq = row.get(0)?;
        let data = row.get_ref(1)?.as_blob().map_err(rusqlite::Error::from)?;
        for (index, event) in chunk::decode(data).enumerate() {
            let seq = first_seq + index as Seq;
            if seq <= after {
                continue;
            }
            let wanted = !event.deleted
                && match consumer {
                    Consumer::Destination(dest) => !event.held && event.addressed_to(*dest),
                    Consumer::Internal(_) => true,
                };
            if wanted {
                page.records.push(Record {
                    seq,
                    source: event.source,
                    received_at: event.received_at,
                    message_id: event.message_id.to_owned(),
                    user_id: event.user_id.map(str::to_owned),
                    anonymous_id: event.anonymous_id.map(str::to_owned),
                    payload: event.payload.to_vec(),
                    held: event.held,
                    intended: if event.held {
                        event.dests().collect()
                    } else {
                        Vec::new()
                    },
                    system: event.system,
                });
            }
            page.scanned_to = seq;
            scanned += 1;
            if page.records.len() >= limit || scanned >= scan_budget {
                break 'chunks;
            }
        }
    }
    Ok(page)
}

/// Copies the WAL into the database file in the background, so the writer never does.
fn run_checkpointer(path: PathBuf, stop: std::sync::Arc<std::sync::atomic::AtomicBool>) {
    let Ok(conn) = Connection::open(&path) else {
        return;
    };
    let _ = conn.busy_timeout(Duration::from_millis(50));
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        std::thread::sleep(MAINTENANCE_EVERY);
        // PASSIVE: copy what can be copied now, waiting for nobody.
        if let Err(error) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::debug!(%error, "Background checkpoint skipped.");
        }
    }
}

#[async_trait]
impl EventLog for SqliteLog {
    async fn append(&self, append: Append) -> Result<Appended, LogError> {
        self.request(|reply| Msg::Append {
            append,
            reply: Some(reply),
        })
        .await
    }

    fn count_only(&self, append: Append) {
        let _ = self.send(Msg::Append {
            append,
            reply: None,
        });
    }

    async fn read(&self, consumer: &Consumer, after: Seq, limit: usize) -> Result<Page, LogError> {
        let consumer = consumer.clone();
        self.readers
            .with(move |conn| read_page(conn, &consumer, after, limit))
            .await
    }

    fn ack(&self, ack: Ack) {
        let _ = self.send(Msg::Ack(ack));
    }

    async fn cursor(&self, consumer: &Consumer) -> Result<Seq, LogError> {
        let consumer = consumer.name();
        self.request(|reply| Msg::Cursor { consumer, reply }).await
    }

    async fn remove_consumer(&self, consumer: &Consumer) -> Result<(), LogError> {
        let dest = match consumer {
            Consumer::Destination(key) => Some(*key),
            Consumer::Internal(_) => None,
        };
        let consumer = consumer.name();
        self.request(|reply| Msg::RemoveConsumer {
            consumer,
            dest,
            reply,
        })
        .await
    }

    fn committed(&self) -> watch::Receiver<Seq> {
        self.committed.clone()
    }

    fn set_dedup_window(&self, window_ms: i64) {
        let _ = self.send(Msg::DedupWindow(window_ms));
    }

    async fn dead_letters(
        &self,
        dest: DestKey,
        after_id: i64,
        limit: usize,
    ) -> Result<Vec<StoredDeadLetter>, LogError> {
        self.readers
            .with(move |conn| {
                let mut stmt = conn.prepare_cached(
                    "SELECT id, source, message_id, received_at, failed_at, attempts, error, payload
                     FROM dead_letters WHERE dest = ?1 AND id > ?2 ORDER BY id LIMIT ?3",
                )?;
                let rows = stmt.query_map(params![dest, after_id, limit as i64], |row| {
                    Ok(StoredDeadLetter {
                        id: row.get(0)?,
                        source: row.get(1)?,
                        message_id: row.get(2)?,
                        received_at: row.get(3)?,
                        failed_at: row.get(4)?,
                        attempts: row.get(5)?,
                        error: row.get(6)?,
                        payload: row.get(7)?,
                    })
                })?;
                Ok(rows.collect::<Result<Vec<_>, _>>()?)
            })
            .await
    }

    async fn replay_dead_letters(
        &self,
        dest: DestKey,
        ids: Option<Vec<i64>>,
    ) -> Result<usize, LogError> {
        self.request(|reply| Msg::Replay { dest, ids, reply }).await
    }

    async fn delete_people(
        &self,
        user_ids: Vec<String>,
        anonymous_ids: Vec<String>,
    ) -> Result<DeletedEvents, LogError> {
        self.request(|reply| Msg::DeletePeople {
            user_ids,
            anonymous_ids,
            reply,
        })
        .await
    }

    async fn overview(&self, query: OverviewQuery) -> Result<Overview, LogError> {
        self.readers
            .with(move |conn| stats::query(conn, &query).map_err(LogError::from))
            .await
    }

    async fn close(&self) {
        let (done, wait) = oneshot::channel();
        if self.send(Msg::Close(done)).is_ok() {
            let _ = wait.await;
        }
        let handle = self.writer.lock().expect("writer lock").take();
        if let Some(handle) = handle {
            let _ = tokio::task::spawn_blocking(move || handle.join()).await;
        }
    }
}

impl Drop for SqliteLog {
    fn drop(&mut self) {
        // Without an explicit close, the writer still drains and stops on its own thread (and
        // the ticker stops when the writer is gone).
        let (done, _) = oneshot::channel();
        let _ = self.tx.send(Msg::Close(done));
    }
}

#[cfg(test)]
mod query_plans {
    use super::*;

    /// Reads must not get slower as the log grows: every step of the plan is a search.
    #[test]
    fn reading_a_page_seeks_instead_of_scanning() {
        let mut conn = Connection::open_in_memory().unwrap();
        create_schema(&mut conn).unwrap();
        let plan: Vec<String> = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {READ_PAGE}"))
            .unwrap()
            .query_map([5], |r| r.get::<_, String>(3))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert!(
            plan.iter().any(|step| step.starts_with("SEARCH chunks")),
            "{plan:?}"
        );
        assert!(
            !plan.iter().any(|step| step.starts_with("SCAN chunks")),
            "{plan:?}"
        );
    }
}

//! `messageId` deduplication.
//!
//! * Ids are stored as they are. The browser and Node SDKs start their ids with the time
//!   (`ajs-next-<ms>-<uuid>`), so new ids land next to each other in the index and a commit
//!   touches few index pages; hashing them would scatter every insert.
//! * The index is written in the same transaction as the events, so an acknowledged event's
//!   id is never forgotten by a crash, and a failed transaction forgets it again.
//! * **Windows are generations.** There are three tables. Ids go into the current one; a lookup
//!   checks the current and the previous one. When the current generation is older than the
//!   window, the generations rotate, and the oldest is emptied in small steps (between commits)
//!   before it becomes current again. An id is remembered for at least one window and at most
//!   two, and forgetting never needs one long delete.

use rusqlite::{Connection, OptionalExtension, Transaction, params};

use crate::clock;

const LOOKUP: [&str; 3] = [
    "SELECT 1 FROM dedup_2 WHERE id = ?1",
    "SELECT 1 FROM dedup_0 WHERE id = ?1",
    "SELECT 1 FROM dedup_1 WHERE id = ?1",
];
const INSERT: [&str; 3] = [
    "INSERT OR IGNORE INTO dedup_0(id) VALUES (?1)",
    "INSERT OR IGNORE INTO dedup_1(id) VALUES (?1)",
    "INSERT OR IGNORE INTO dedup_2(id) VALUES (?1)",
];

pub const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS dedup_0(id TEXT PRIMARY KEY) WITHOUT ROWID;
     CREATE TABLE IF NOT EXISTS dedup_1(id TEXT PRIMARY KEY) WITHOUT ROWID;
     CREATE TABLE IF NOT EXISTS dedup_2(id TEXT PRIMARY KEY) WITHOUT ROWID;";

/// The writer thread's view of the generations.
pub struct Dedup {
    /// The generation new ids go into (0, 1 or 2).
    current: usize,
    window_ms: i64,
    rotated_at: i64,
    /// Whether the oldest generation may still hold entries to forget.
    forgetting: bool,
}

fn meta(conn: &Connection, key: &str) -> rusqlite::Result<Option<i64>> {
    conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
        .optional()
}

fn set_meta(tx: &Transaction<'_>, key: &str, value: i64) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO meta(key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
    )?
    .execute(params![key, value])?;
    Ok(())
}

/// A rotation made inside a transaction, to be adopted once it commits.
#[derive(Debug, Clone, Copy)]
pub struct Rotation {
    current: usize,
    at: i64,
}

impl Dedup {
    pub fn open(conn: &Connection, window_ms: i64) -> rusqlite::Result<Dedup> {
        Ok(Dedup {
            current: meta(conn, "dedup_current")?.unwrap_or(0).rem_euclid(3) as usize,
            window_ms,
            rotated_at: meta(conn, "dedup_rotated_at")?.unwrap_or_else(clock::now_ms),
            forgetting: true,
        })
    }

    pub fn set_window(&mut self, window_ms: i64) {
        self.window_ms = window_ms;
    }

    /// Record `id` as seen; `false` when it was already seen within the window.
    pub fn first_sighting(&self, tx: &Transaction<'_>, id: &str) -> rusqlite::Result<bool> {
        // The insert into the current generation finds duplicates in it for free; only the
        // previous generation needs a separate lookup.
        if tx.prepare_cached(LOOKUP[self.current])?.exists([id])? {
            return Ok(false);
        }
        Ok(tx.prepare_cached(INSERT[self.current])?.execute([id])? == 1)
    }

    /// Inside the caller's transaction: rotate when the window has passed, else forget up to
    /// `budget` entries of the oldest generation. Adopt a returned rotation with
    /// [`Dedup::rotated`] after the commit.
    pub fn housekeeping(
        &mut self,
        tx: &Transaction<'_>,
        budget: usize,
    ) -> rusqlite::Result<Option<Rotation>> {
        let now = clock::now_ms();
        let oldest = (self.current + 1) % 3;
        if now - self.rotated_at >= self.window_ms {
            tx.execute(&format!("DELETE FROM dedup_{oldest}"), [])?;
            set_meta(tx, "dedup_current", oldest as i64)?;
            set_meta(tx, "dedup_rotated_at", now)?;
            return Ok(Some(Rotation {
                current: oldest,
                at: now,
            }));
        }
        if self.forgetting && budget > 0 {
            let n = tx.execute(
                &format!("DELETE FROM dedup_{oldest} WHERE id IN (SELECT id FROM dedup_{oldest} LIMIT {budget})"),
                [],
            )?;
            self.forgetting = n == budget;
        }
        Ok(None)
    }

    pub fn rotated(&mut self, rotation: Rotation) {
        self.current = rotation.current;
        self.rotated_at = rotation.at;
        self.forgetting = true;
    }
}

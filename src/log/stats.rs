//! Delivery-overview counters (SPEC §8), kept next to the events they count.
//!
//! Counters are keyed by the minute the event was *received*, not the minute something
//! happened to it. Every step of an event's life (routed, filtered, delivered, dead) lands in
//! its receive bucket, so for any time range the funnel adds up:
//!
//! ```text
//! received + generated = failedOnIngest + filteredAtSource + duplicates + accepted
//! accepted   = routed(d) + filtered(d)                      for every destination d that
//!                                                           existed when the events arrived
//! routed(d)  = delivered(d) + dead(d) + deleted(d) + in flight (pending or retrying)
//! ```

use std::collections::{BTreeMap, HashMap};

use rusqlite::{Transaction, params};

use super::{DestKey, SourceKey};

/// One counter bucket: a minute.
pub const BUCKET_MS: i64 = 60_000;

pub fn bucket_of(received_at_ms: i64) -> i64 {
    received_at_ms.div_euclid(BUCKET_MS)
}

/// What a counter counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Metric {
    Received = 0,
    FailedOnIngest = 1,
    FilteredAtSource = 2,
    Duplicate = 3,
    Accepted = 4,
    Generated = 5,
    Routed = 10,
    Filtered = 11,
    Delivered = 12,
    Dead = 13,
    Deleted = 14,
}

impl Metric {
    fn from_code(code: i64) -> Option<Metric> {
        Some(match code {
            0 => Metric::Received,
            1 => Metric::FailedOnIngest,
            2 => Metric::FilteredAtSource,
            3 => Metric::Duplicate,
            4 => Metric::Accepted,
            5 => Metric::Generated,
            10 => Metric::Routed,
            11 => Metric::Filtered,
            12 => Metric::Delivered,
            13 => Metric::Dead,
            14 => Metric::Deleted,
            _ => return None,
        })
    }
}

/// Source-level metrics use destination key 0 (real keys start at 1).
pub const NO_DEST: DestKey = 0;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    bucket: i64,
    source: SourceKey,
    dest: DestKey,
    metric: Metric,
    reason: &'static str,
}

/// Counter increments gathered during one transaction, written with one upsert per key.
#[derive(Debug, Default)]
pub struct StatsDelta {
    counts: HashMap<Key, i64>,
}

impl StatsDelta {
    pub fn add(
        &mut self,
        received_at: i64,
        source: SourceKey,
        dest: DestKey,
        metric: Metric,
        reason: &'static str,
        n: i64,
    ) {
        if n == 0 {
            return;
        }
        let key = Key {
            bucket: bucket_of(received_at),
            source,
            dest,
            metric,
            reason,
        };
        *self.counts.entry(key).or_insert(0) += n;
    }

    pub fn write(&mut self, tx: &Transaction<'_>) -> rusqlite::Result<()> {
        if self.counts.is_empty() {
            return Ok(());
        }
        let mut stmt = tx.prepare_cached(
            "INSERT INTO stats(bucket, source, dest, metric, reason, n) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT(bucket, source, dest, metric, reason) DO UPDATE SET n = n + excluded.n",
        )?;
        for (key, n) in self.counts.drain() {
            stmt.execute(params![
                key.bucket,
                key.source,
                key.dest,
                key.metric as u8,
                key.reason,
                n
            ])?;
        }
        Ok(())
    }
}

/// Filter for [`Overview`].
#[derive(Debug, Clone, Default)]
pub struct OverviewQuery {
    pub source: Option<SourceKey>,
    pub dest: Option<DestKey>,
    /// Receive-time range, Unix ms, `from` inclusive, `to` exclusive (rounded to minutes).
    pub from_ms: i64,
    pub to_ms: i64,
}

/// Counters of one destination.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DestinationCounts {
    pub routed: i64,
    pub filtered: BTreeMap<String, i64>,
    pub delivered: i64,
    pub dead: i64,
    pub deleted: i64,
}

impl DestinationCounts {
    /// Routed and neither delivered, dead nor deleted: in the backlog or being retried.
    pub fn in_flight(&self) -> i64 {
        (self.routed - self.delivered - self.dead - self.deleted).max(0)
    }
}

/// The delivery overview's numbers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overview {
    pub received: i64,
    pub failed_on_ingest: BTreeMap<String, i64>,
    pub filtered_at_source: i64,
    pub duplicates: i64,
    pub accepted: i64,
    /// Consent-update events Sluice emitted itself (included in `accepted`).
    pub generated: i64,
    pub destinations: BTreeMap<DestKey, DestinationCounts>,
}

/// Read the overview from the stats table.
pub fn query(conn: &rusqlite::Connection, q: &OverviewQuery) -> rusqlite::Result<Overview> {
    let mut stmt = conn.prepare_cached(
        "SELECT dest, metric, reason, SUM(n) FROM stats
         WHERE bucket >= ?1 AND bucket < ?2
           AND (?3 IS NULL OR source = ?3)
           AND (?4 IS NULL OR dest = ?4 OR dest = 0)
         GROUP BY dest, metric, reason",
    )?;
    let from = bucket_of(q.from_ms);
    // A partial last minute is included: `to` is exclusive at minute granularity, rounded up.
    let to = bucket_of(q.to_ms + BUCKET_MS - 1);
    let rows = stmt.query_map(params![from, to, q.source, q.dest], |row| {
        Ok((
            row.get::<_, u32>(0)?,
            row.get::<_, i64>(1)?,
            row.get::<_, String>(2)?,
            row.get::<_, i64>(3)?,
        ))
    })?;
    let mut out = Overview::default();
    for row in rows {
        let (dest, metric, reason, n) = row?;
        let Some(metric) = Metric::from_code(metric) else {
            continue;
        };
        match metric {
            Metric::Received => out.received += n,
            Metric::FailedOnIngest => *out.failed_on_ingest.entry(reason).or_insert(0) += n,
            Metric::FilteredAtSource => out.filtered_at_source += n,
            Metric::Duplicate => out.duplicates += n,
            Metric::Accepted => out.accepted += n,
            Metric::Generated => out.generated += n,
            _ => {
                let d = out.destinations.entry(dest).or_default();
                match metric {
                    Metric::Routed => d.routed += n,
                    Metric::Filtered => *d.filtered.entry(reason).or_insert(0) += n,
                    Metric::Delivered => d.delivered += n,
                    Metric::Dead => d.dead += n,
                    Metric::Deleted => d.deleted += n,
                    _ => {}
                }
            }
        }
    }
    Ok(out)
}

//! Tests for the embedded log: a model-based property test of durability (random appends,
//! reads, acks, crashes and reopens checked against a simple in-memory model), and unit tests
//! of dead letters, replay and the overview counters.

use std::collections::HashSet;

use proptest::prelude::*;

use super::sqlite::SqliteLog;
use super::*;
use crate::consent::FilterReason;

const DEST: DestKey = 7;
const OTHER: DestKey = 8;
const WINDOW: i64 = 24 * 3_600_000;

fn event(id: &str, dests: &[DestKey]) -> NewEvent {
    NewEvent {
        message_id: id.to_owned(),
        user_id: Some("u".into()),
        anonymous_id: None,
        payload: format!(r#"{{"messageId":"{id}"}}"#).into_bytes(),
        deliver_to: dests.to_vec(),
        filtered: Vec::new(),
        hold: false,
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

#[derive(Debug, Clone)]
enum Op {
    /// Append events; each id is `n` from a small space so duplicates happen.
    Append(Vec<(u8, bool)>),
    /// Read a page for the destination consumer and ack it.
    Consume(u8),
    /// Read without acking (a delivery that is still in progress when the process dies).
    Peek,
    Crash,
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => proptest::collection::vec((0u8..40, any::<bool>()), 1..6).prop_map(Op::Append),
        3 => (1u8..8).prop_map(Op::Consume),
        1 => Just(Op::Peek),
        1 => Just(Op::Crash),
        1 => Just(Op::Reopen),
    ]
}

/// What the model knows.
#[derive(Default)]
struct Model {
    /// Stored events addressed to DEST, in order: (seq, id).
    for_dest: Vec<(Seq, String)>,
    seen: HashSet<String>,
    /// The consumer's cursor as the consumer believes it.
    cursor: Seq,
    /// Lowest cursor the store may come back with after a crash (acks known committed).
    durable_cursor: Seq,
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn nothing_acknowledged_is_lost(ops in proptest::collection::vec(op(), 1..40)) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.db");
        let rt = runtime();
        rt.block_on(async {
            let consumer = Consumer::Destination(DEST);
            let mut log = SqliteLog::open(&path, WINDOW).unwrap();
            let mut model = Model { cursor: log.cursor(&consumer).await.unwrap(), ..Model::default() };
            for op in ops {
                match op {
                    Op::Append(items) => {
                        let events: Vec<NewEvent> = items
                            .iter()
                            .map(|(n, for_dest)| event(&format!("m{n}"), if *for_dest { &[DEST] } else { &[OTHER] }))
                            .collect();
                        let appended = log
                            .append(Append { source: 1, received_at: 0, events: events.clone(), ..Append::default() })
                            .await
                            .unwrap();
                        // The reply implies every earlier ack is committed too.
                        model.durable_cursor = model.cursor;
                        let mut seq = appended.last_seq - (events.len() - appended.duplicates.len()) as Seq;
                        for (index, e) in events.iter().enumerate() {
                            let expect_dup = model.seen.contains(&e.message_id);
                            prop_assert_eq!(appended.duplicates.contains(&index), expect_dup, "dedup of {}", e.message_id);
                            if expect_dup {
                                continue;
                            }
                            seq += 1;
                            model.seen.insert(e.message_id.clone());
                            if e.deliver_to.contains(&DEST) {
                                model.for_dest.push((seq, e.message_id.clone()));
                            }
                        }
                    }
                    Op::Consume(limit) => {
                        let page = log.read(&consumer, model.cursor, limit as usize).await.unwrap();
                        let expected: Vec<&(Seq, String)> = model
                            .for_dest
                            .iter()
                            .filter(|(seq, _)| *seq > model.cursor && *seq <= page.scanned_to)
                            .collect();
                        let got: Vec<(Seq, String)> = page.records.iter().map(|r| (r.seq, r.message_id.clone())).collect();
                        prop_assert_eq!(got.iter().collect::<Vec<_>>(), expected);
                        log.ack(Ack { consumer: consumer.clone(), upto: page.scanned_to, delivered: vec![], dead: vec![] });
                        model.cursor = page.scanned_to;
                    }
                    Op::Peek => {
                        let page = log.read(&consumer, model.cursor, 3).await.unwrap();
                        let first = model.for_dest.iter().find(|(seq, _)| *seq > model.cursor);
                        prop_assert_eq!(page.records.first().map(|r| r.seq), first.filter(|(s, _)| *s <= page.scanned_to).map(|(s, _)| *s));
                    }
                    Op::Crash | Op::Reopen => {
                        if matches!(op, Op::Crash) { log.crash() } else { log.close().await }
                        drop(log);
                        log = SqliteLog::open(&path, WINDOW).unwrap();
                        let cursor = log.cursor(&consumer).await.unwrap();
                        prop_assert!(cursor >= model.durable_cursor && cursor <= model.cursor,
                            "cursor {} outside [{}, {}]", cursor, model.durable_cursor, model.cursor);
                        if matches!(op, Op::Reopen) {
                            prop_assert_eq!(cursor, model.cursor, "a clean close keeps every ack");
                        }
                        model.cursor = cursor;
                        model.durable_cursor = cursor;
                    }
                }
            }
            // Finally, everything after the cursor is still there, in order.
            let mut got = Vec::new();
            let mut cursor = model.cursor;
            loop {
                let page = log.read(&consumer, cursor, 100).await.unwrap();
                if page.scanned_to == cursor { break; }
                got.extend(page.records.iter().map(|r| (r.seq, r.message_id.clone())));
                cursor = page.scanned_to;
            }
            let expected: Vec<(Seq, String)> = model.for_dest.iter().filter(|(s, _)| *s > model.cursor).cloned().collect();
            prop_assert_eq!(got, expected);
            log.close().await;
            Ok(())
        })?;
    }
}

#[test]
fn dead_letters_replay_and_overview_add_up() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    rt.block_on(async {
        let log = SqliteLog::open(&dir.path().join("log.db"), WINDOW).unwrap();
        let consumer = Consumer::Destination(DEST);
        let cursor = log.cursor(&consumer).await.unwrap();
        let now = crate::clock::now_ms();
        let mut filtered = event("f", &[]);
        filtered.filtered = vec![(DEST, FilterReason::EndUserConsent)];
        let appended = log
            .append(Append {
                source: 3,
                received_at: now,
                events: vec![
                    event("a", &[DEST]),
                    event("b", &[DEST]),
                    filtered,
                    event("a", &[DEST]),
                ],
                rejected: vec!["no_user_anon_id"],
                filtered_at_source: 2,
                kind: AppendKind::Received,
            })
            .await
            .unwrap();
        assert_eq!(appended.duplicates, vec![3]);
        let page = log.read(&consumer, cursor, 10).await.unwrap();
        assert_eq!(page.records.len(), 2);
        // "a" delivered, "b" dead.
        log.ack(Ack {
            consumer: consumer.clone(),
            upto: page.scanned_to,
            delivered: vec![(3, now)],
            dead: vec![DeadLetter {
                record: page.records[1].clone(),
                attempts: 4,
                error: "HTTP 400".into(),
            }],
        });
        // A no-op append forces a commit, so the ack is applied before we look.
        log.append(Append {
            source: 3,
            received_at: now,
            ..Append::default()
        })
        .await
        .unwrap();

        let query = OverviewQuery {
            source: Some(3),
            dest: None,
            from_ms: now - 60_000,
            to_ms: now + 1,
        };
        let o = log.overview(query.clone()).await.unwrap();
        assert_eq!(o.received, 4 + 1 + 2);
        assert_eq!(o.accepted, 3);
        assert_eq!(o.duplicates, 1);
        assert_eq!(o.filtered_at_source, 2);
        assert_eq!(o.failed_on_ingest.get("no_user_anon_id"), Some(&1));
        let d = &o.destinations[&DEST];
        assert_eq!((d.routed, d.delivered, d.dead, d.in_flight()), (2, 1, 1, 0));
        assert_eq!(d.filtered.get("FILTERED_BY_END_USER_CONSENT"), Some(&1));
        assert_eq!(
            o.received,
            o.accepted + o.duplicates + o.filtered_at_source + 1
        );
        assert_eq!(o.accepted, d.routed + d.filtered.values().sum::<i64>());

        let dead = log.dead_letters(DEST, 0, 10).await.unwrap();
        assert_eq!(dead.len(), 1);
        assert_eq!(dead[0].message_id, "b");
        assert_eq!(dead[0].error, "HTTP 400");

        // Replay puts it back in flight and in front of the consumer again.
        assert_eq!(log.replay_dead_letters(DEST, None).await.unwrap(), 1);
        assert!(log.dead_letters(DEST, 0, 10).await.unwrap().is_empty());
        let again = log.read(&consumer, page.scanned_to, 10).await.unwrap();
        assert_eq!(
            again
                .records
                .iter()
                .map(|r| r.message_id.as_str())
                .collect::<Vec<_>>(),
            vec!["b"]
        );
        let d = log.overview(query).await.unwrap().destinations[&DEST].clone();
        assert_eq!((d.routed, d.delivered, d.dead, d.in_flight()), (2, 1, 0, 1));
        log.close().await;
    });
}

#[test]
fn duplicates_survive_restart_and_window_rotation_forgets() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.db");
    let rt = runtime();
    rt.block_on(async {
        let log = SqliteLog::open(&path, WINDOW).unwrap();
        let one = |id: &str| Append {
            source: 1,
            received_at: 0,
            events: vec![event(id, &[])],
            ..Append::default()
        };
        assert!(log.append(one("x")).await.unwrap().duplicates.is_empty());
        log.close().await;
        drop(log);
        // A tiny window: after two rotations the id is forgotten.
        let log = SqliteLog::open(&path, 1).unwrap();
        assert_eq!(log.append(one("x")).await.unwrap().duplicates, vec![0]);
        tokio::time::sleep(std::time::Duration::from_millis(2300)).await;
        assert!(
            log.append(one("x")).await.unwrap().duplicates.is_empty(),
            "forgotten after the window"
        );
        log.close().await;
    });
}

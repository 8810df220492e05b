//! The binary encoding of a chunk: the events of one append, stored as one row.
//!
//! Storing a request's events as one row (instead of one row each) makes the writer's work per
//! event a `memcpy`, and truncation a delete of a few large rows. Events keep their own
//! sequence numbers: event `i` of a chunk has `first_seq + i`.
//!
//! Layout, little-endian, per event, back to back:
//!
//! ```text
//! u32 source | i64 received_at | u8 flags (bit 0: deleted, bit 1: held, bit 2: system)
//! u16 n_dests | n_dests × u32 dest
//! u16 len | message_id
//! u16 len | user_id         (len 0xFFFF: absent)
//! u16 len | anonymous_id    (len 0xFFFF: absent)
//! u32 len | payload
//! ```
//!
//! A deleted event (GDPR deletion) keeps its slot, so later sequence numbers do not move, but
//! loses its ids, destinations and payload.

use super::{DestKey, SourceKey};

const ABSENT: u16 = u16::MAX;
const DELETED: u8 = 1;
const HELD: u8 = 2;
const SYSTEM: u8 = 4;

/// One event inside a chunk, borrowed from the encoded bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkEvent<'a> {
    pub source: SourceKey,
    pub received_at: i64,
    pub deleted: bool,
    /// Waiting for release by the profile consumer; not for destinations.
    pub held: bool,
    /// Appended by Sluice itself (a release or a generated event), not received.
    pub system: bool,
    dests: &'a [u8],
    pub message_id: &'a str,
    pub user_id: Option<&'a str>,
    pub anonymous_id: Option<&'a str>,
    pub payload: &'a [u8],
}

impl ChunkEvent<'_> {
    pub fn addressed_to(&self, dest: DestKey) -> bool {
        let needle = dest.to_le_bytes();
        self.dests.chunks_exact(4).any(|d| d == needle)
    }

    pub fn dests(&self) -> impl Iterator<Item = DestKey> + '_ {
        self.dests
            .chunks_exact(4)
            .map(|d| u32::from_le_bytes([d[0], d[1], d[2], d[3]]))
    }
}

/// What to encode for one event.
pub struct EventRef<'a> {
    pub source: SourceKey,
    pub received_at: i64,
    pub dests: &'a [DestKey],
    pub message_id: &'a str,
    pub user_id: Option<&'a str>,
    pub anonymous_id: Option<&'a str>,
    pub payload: &'a [u8],
    pub held: bool,
    pub system: bool,
}

/// Truncate an id to what a u16 length can hold (ids are validated far below this).
fn short(s: &str) -> &[u8] {
    let b = s.as_bytes();
    &b[..b.len().min(usize::from(ABSENT) - 1)]
}

pub fn encode_into(out: &mut Vec<u8>, e: &EventRef<'_>) {
    out.extend_from_slice(&e.source.to_le_bytes());
    out.extend_from_slice(&e.received_at.to_le_bytes());
    out.push(if e.held { HELD } else { 0 } | if e.system { SYSTEM } else { 0 });
    let n = e.dests.len().min(usize::from(u16::MAX));
    out.extend_from_slice(&(n as u16).to_le_bytes());
    for d in &e.dests[..n] {
        out.extend_from_slice(&d.to_le_bytes());
    }
    let mid = short(e.message_id);
    out.extend_from_slice(&(mid.len() as u16).to_le_bytes());
    out.extend_from_slice(mid);
    for id in [e.user_id, e.anonymous_id] {
        match id {
            Some(id) => {
                let id = short(id);
                out.extend_from_slice(&(id.len() as u16).to_le_bytes());
                out.extend_from_slice(id);
            }
            None => out.extend_from_slice(&ABSENT.to_le_bytes()),
        }
    }
    out.extend_from_slice(&(e.payload.len() as u32).to_le_bytes());
    out.extend_from_slice(e.payload);
}

/// Encode a decoded live event again, unchanged (a deleted one is re-encoded with
/// [`encode_deleted`]).
pub fn encode_event(out: &mut Vec<u8>, e: &ChunkEvent<'_>) {
    let dests: Vec<DestKey> = e.dests().collect();
    encode_into(
        out,
        &EventRef {
            source: e.source,
            received_at: e.received_at,
            dests: &dests,
            message_id: e.message_id,
            user_id: e.user_id,
            anonymous_id: e.anonymous_id,
            payload: e.payload,
            held: e.held,
            system: e.system,
        },
    );
}

/// Encode a deleted slot.
pub fn encode_deleted(out: &mut Vec<u8>, source: SourceKey, received_at: i64) {
    out.extend_from_slice(&source.to_le_bytes());
    out.extend_from_slice(&received_at.to_le_bytes());
    out.push(DELETED);
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&ABSENT.to_le_bytes());
    out.extend_from_slice(&ABSENT.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
}

/// Iterate the events of an encoded chunk. Stops (yielding nothing more) at corrupt data,
/// which the writer never produces.
pub fn decode(data: &[u8]) -> Decoder<'_> {
    Decoder { data, pos: 0 }
}

pub struct Decoder<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Decoder<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let slice = self.data.get(self.pos..end)?;
        self.pos = end;
        Some(slice)
    }

    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn str_opt(&mut self) -> Option<Option<&'a str>> {
        let len = self.u16()?;
        if len == ABSENT {
            return Some(None);
        }
        std::str::from_utf8(self.take(usize::from(len))?)
            .ok()
            .map(Some)
    }

    fn next_event(&mut self) -> Option<ChunkEvent<'a>> {
        let source = self.u32()?;
        let received_at = i64::from_le_bytes(self.take(8)?.try_into().ok()?);
        let flags = self.take(1)?[0];
        let n = usize::from(self.u16()?);
        let dests = self.take(n * 4)?;
        let message_id = self.str_opt()?.unwrap_or("");
        let user_id = self.str_opt()?;
        let anonymous_id = self.str_opt()?;
        let len = self.u32()? as usize;
        let payload = self.take(len)?;
        Some(ChunkEvent {
            source,
            received_at,
            deleted: flags & DELETED != 0,
            held: flags & HELD != 0,
            system: flags & SYSTEM != 0,
            dests,
            message_id,
            user_id,
            anonymous_id,
            payload,
        })
    }
}

impl<'a> Iterator for Decoder<'a> {
    type Item = ChunkEvent<'a>;

    fn next(&mut self) -> Option<ChunkEvent<'a>> {
        if self.pos >= self.data.len() {
            return None;
        }
        let event = self.next_event();
        if event.is_none() {
            // Never produced by the writer; stop rather than misread what follows.
            self.pos = self.data.len();
        }
        event
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let mut data = Vec::new();
        encode_into(
            &mut data,
            &EventRef {
                source: 3,
                received_at: 1_700_000_000_123,
                dests: &[1, 70_000],
                message_id: "m-1",
                user_id: Some("u"),
                anonymous_id: None,
                payload: br#"{"a":1}"#,
                held: false,
                system: false,
            },
        );
        encode_deleted(&mut data, 4, 5);
        encode_into(
            &mut data,
            &EventRef {
                source: 9,
                received_at: -1,
                dests: &[],
                message_id: "é",
                user_id: None,
                anonymous_id: Some(""),
                payload: b"",
                held: true,
                system: true,
            },
        );
        let events: Vec<ChunkEvent<'_>> = decode(&data).collect();
        assert_eq!(events.len(), 3);
        assert_eq!(events[0].dests().collect::<Vec<_>>(), vec![1, 70_000]);
        assert!(events[0].addressed_to(70_000) && !events[0].addressed_to(2));
        assert_eq!(
            (
                events[0].message_id,
                events[0].user_id,
                events[0].anonymous_id
            ),
            ("m-1", Some("u"), None)
        );
        assert_eq!(events[0].payload, br#"{"a":1}"#);
        assert!(events[1].deleted && events[1].payload.is_empty() && events[1].source == 4);
        assert_eq!(
            (
                events[2].message_id,
                events[2].anonymous_id,
                events[2].received_at
            ),
            ("é", Some(""), -1)
        );
        // Truncated data yields what is whole and stops.
        assert_eq!(decode(&data[..data.len() - 1]).count(), 2);
    }
}

//! Benchmark payloads: realistic ~600-byte track events with consent, unique messageIds.

use std::fmt::Write;

/// Consent categories the end-to-end phase maps destinations to.
pub const CATEGORIES: [&str; 4] = ["C0001", "C0002", "C0003", "C0004"];

/// One event, about 600 bytes. `seed` varies the consent preferences (mixed consent).
pub fn event(message_id: &str, seed: u64, with_type: bool) -> String {
    let prefs: Vec<String> = CATEGORIES
        .iter()
        .enumerate()
        // Each category is granted for about three events in four, differently per category.
        .map(|(i, c)| format!("\"{c}\":{}", (seed >> (i * 2)) & 3 != 0))
        .collect();
    let mut out = String::with_capacity(700);
    out.push('{');
    if with_type {
        out.push_str("\"type\":\"track\",");
    }
    let _ = write!(
        out,
        "\"messageId\":\"{message_id}\",\"userId\":\"user-{user}\",\"anonymousId\":\"anon-{user}-7f3c9a\",\
\"event\":\"Order Completed\",\"timestamp\":\"2026-11-25T12:00:00.000Z\",\
\"properties\":{{\"orderId\":\"ord-{seed}\",\"revenue\":{rev}.95,\"currency\":\"EUR\",\"products\":[{{\"sku\":\"sku-{sku}\",\"price\":19.95,\"quantity\":2}}]}},\
\"context\":{{\"consent\":{{\"categoryPreferences\":{{{prefs}}}}},\
\"library\":{{\"name\":\"analytics.js\",\"version\":\"npm:next-1.84.3\"}},\
\"page\":{{\"path\":\"/checkout/complete\",\"url\":\"https://shop.example.com/checkout/complete\",\"title\":\"Thank you\"}},\
\"userAgent\":\"Mozilla/5.0 (X11; Linux x86_64) Chrome/156.0 Safari/537.36\",\
\"locale\":\"en-GB\",\"timezone\":\"Europe/Berlin\"}}}}",
        user = seed % 10_000,
        rev = seed % 500,
        sku = seed % 97,
        prefs = prefs.join(","),
    );
    out
}

/// A `/v1/batch` body of `n` events, ids `<prefix>-<i>`.
pub fn batch(prefix: &str, n: usize, seed: u64) -> Vec<u8> {
    let mut out = String::with_capacity(n * 650 + 64);
    out.push_str("{\"batch\":[");
    for i in 0..n {
        if i > 0 {
            out.push(',');
        }
        let id = format!("{prefix}-{i}");
        debug_assert!(id.len() <= 100);
        out.push_str(&event(
            &id,
            seed.wrapping_mul(31).wrapping_add(i as u64),
            true,
        ));
    }
    out.push_str("],\"sentAt\":\"2026-11-25T12:00:01.000Z\"}");
    out.into_bytes()
}

/// Width of the per-request part of batch messageIds: `<13-digit ms>-<16 hex digits>`.
const SLOT: usize = 30;

/// A batch body whose messageIds are patched per request: copying a template and writing
/// a counter into each id is far cheaper than formatting 60 KB, so the load generator leaves
/// more CPU to the server it measures.
pub struct BatchTemplate {
    body: Vec<u8>,
    slots: Vec<usize>,
}

impl BatchTemplate {
    /// Ids look like analytics-next's, `ajs-next-<ms>-<unique>-<run>-<i>`: time first.
    pub fn new(run: &str, n: usize, seed: u64) -> BatchTemplate {
        let placeholder = "#".repeat(SLOT);
        let body = batch(&format!("ajs-next-{placeholder}-{run}"), n, seed);
        let needle = placeholder.as_bytes();
        let slots = body
            .windows(SLOT)
            .enumerate()
            .filter(|(_, w)| *w == needle)
            .map(|(i, _)| i)
            .collect();
        BatchTemplate { body, slots }
    }

    /// The body with every messageId made unique for `request`.
    pub fn render(&self, request: u64) -> Vec<u8> {
        let mut body = self.body.clone();
        let stamp = format!("{:013}-{request:016x}", crate::clock::now_ms());
        for &at in &self.slots {
            body[at..at + SLOT].copy_from_slice(stamp.as_bytes());
        }
        body
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn events_are_about_600_bytes_and_valid_json() {
        let e = super::event("m-1", 12345, true);
        assert!((550..=700).contains(&e.len()), "{} bytes", e.len());
        let v: serde_json::Value = serde_json::from_str(&e).unwrap();
        assert_eq!(
            v["context"]["consent"]["categoryPreferences"]
                .as_object()
                .unwrap()
                .len(),
            4
        );
        let b: serde_json::Value = serde_json::from_slice(&super::batch("x", 100, 1)).unwrap();
        assert_eq!(b["batch"].as_array().unwrap().len(), 100);
        let t = super::BatchTemplate::new("r", 100, 1);
        let (a, b) = (t.render(1), t.render(2));
        let ids = |body: &[u8]| -> Vec<String> {
            let v: serde_json::Value = serde_json::from_slice(body).unwrap();
            v["batch"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["messageId"].as_str().unwrap().to_owned())
                .collect()
        };
        let (ia, ib) = (ids(&a), ids(&b));
        assert_eq!(
            ia.iter().collect::<std::collections::HashSet<_>>().len(),
            100
        );
        assert!(ia.iter().all(|id| !ib.contains(id)));
    }
}

//! Zero-copy views of JSON objects, and a writer for the JSON we emit.
//!
//! The tracking API parses only what routing needs (SPEC §14 "parse only what routing needs"):
//! an event's top-level object is read as `(key, raw value)` pairs borrowed from the request
//! body, specific fields are parsed from their raw text, and everything else (`properties`,
//! `traits`, most of `context`) is copied to the output byte for byte.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

/// A JSON object as borrowed `(key, raw value)` pairs, in document order. A key that appears
/// twice keeps its first position and its last value, as JSON parsers generally do.
#[derive(Debug, Default, Clone)]
pub struct RawObject<'a> {
    entries: Vec<(Cow<'a, str>, &'a RawValue)>,
}

impl<'a> RawObject<'a> {
    /// Parse `raw` as an object. `None` when it is not a JSON object.
    pub fn parse(raw: &'a RawValue) -> Option<RawObject<'a>> {
        if !raw.get().starts_with('{') {
            return None;
        }
        serde_json::from_str(raw.get()).ok()
    }

    pub fn get(&self, key: &str) -> Option<&'a RawValue> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| *v)
    }

    /// The value, unless it is absent or JSON `null`.
    pub fn get_non_null(&self, key: &str) -> Option<&'a RawValue> {
        self.get(key).filter(|v| v.get() != "null")
    }

    /// Insert or replace (keeping the original position).
    pub fn set(&mut self, key: Cow<'a, str>, value: &'a RawValue) {
        match self.entries.iter_mut().find(|(k, _)| *k == key) {
            Some(entry) => entry.1 = value,
            None => self.entries.push((key, value)),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &'a RawValue)> + '_ {
        self.entries.iter().map(|(k, v)| (k.as_ref(), *v))
    }

    /// The pairs with their (possibly borrowed) keys, for readers that keep them.
    pub fn entries(&self) -> impl Iterator<Item = (Cow<'a, str>, &'a RawValue)> + '_ {
        self.entries.iter().map(|(k, v)| (k.clone(), *v))
    }

    /// Shallow merge: entries of `defaults` that `self` lacks are added (batch-level `context`
    /// and `integrations` under each item's own, SPEC §2).
    pub fn merge_defaults(&mut self, defaults: &RawObject<'a>) {
        for (key, value) in &defaults.entries {
            if self.get(key).is_none() {
                self.entries.push((key.clone(), *value));
            }
        }
    }
}

/// A key that stays borrowed when it has no escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string key")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

impl<'de> Deserialize<'de> for RawObject<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor;
        impl<'de> Visitor<'de> for ObjectVisitor {
            type Value = RawObject<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawObject<'de>, A::Error> {
                let mut object = RawObject {
                    entries: Vec::with_capacity(map.size_hint().unwrap_or(12)),
                };
                while let Some(Key(key)) = map.next_key()? {
                    let value: &'de RawValue = map.next_value()?;
                    object.set(key, value);
                }
                Ok(object)
            }
        }
        deserializer.deserialize_map(ObjectVisitor)
    }
}

/// A batch request's top level: its fields, with the `batch` array split into items in the
/// same pass (so the body is scanned once here, and each item once more when parsed).
#[derive(Debug, Default)]
pub struct Envelope<'a> {
    /// Every top-level field except `batch`.
    pub fields: RawObject<'a>,
    /// `None`: no `batch` key (or null). `Some(Err)`: `batch` is not an array.
    pub batch: Option<Result<Vec<&'a RawValue>, ()>>,
}

/// The value of `batch`: an array's items, or a note that it was something else.
struct BatchField<'a>(Option<Result<Vec<&'a RawValue>, ()>>);

impl<'de> Deserialize<'de> for BatchField<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct BatchVisitor;
        impl<'de> Visitor<'de> for BatchVisitor {
            type Value = BatchField<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array of events")
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(100).min(2_501));
                while let Some(item) = seq.next_element::<&'de RawValue>()? {
                    items.push(item);
                }
                Ok(BatchField(Some(Ok(items))))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map
                    .next_entry::<de::IgnoredAny, de::IgnoredAny>()?
                    .is_some()
                {}
                Ok(BatchField(Some(Err(()))))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(BatchField(None))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(BatchField(Some(Err(()))))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
                Ok(BatchField(Some(Err(()))))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
                Ok(BatchField(Some(Err(()))))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Ok(BatchField(Some(Err(()))))
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
                Ok(BatchField(Some(Err(()))))
            }
        }
        deserializer.deserialize_any(BatchVisitor)
    }
}

impl<'de> Deserialize<'de> for Envelope<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EnvelopeVisitor;
        impl<'de> Visitor<'de> for EnvelopeVisitor {
            type Value = Envelope<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Envelope<'de>, A::Error> {
                let mut envelope = Envelope::default();
                while let Some(Key(key)) = map.next_key()? {
                    if key == "batch" {
                        envelope.batch = map.next_value::<BatchField<'de>>()?.0;
                    } else {
                        let value: &'de RawValue = map.next_value()?;
                        envelope.fields.set(key, value);
                    }
                }
                Ok(envelope)
            }
        }
        deserializer.deserialize_map(EnvelopeVisitor)
    }
}

/// A JSON value that should have been a string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotAString;

/// Read a raw value as a string: `Ok(None)` for absent or null, `Err` for a non-string.
pub fn raw_str(raw: Option<&RawValue>) -> Result<Option<Cow<'_, str>>, NotAString> {
    let Some(raw) = raw else { return Ok(None) };
    let text = raw.get();
    if text == "null" {
        return Ok(None);
    }
    if !text.starts_with('"') {
        return Err(NotAString);
    }
    // Fast path: no escapes, borrow the inside of the quotes.
    let inner = &text[1..text.len() - 1];
    if !inner.contains('\\') {
        return Ok(Some(Cow::Borrowed(inner)));
    }
    serde_json::from_str::<String>(text)
        .map(|s| Some(Cow::Owned(s)))
        .map_err(|_| NotAString)
}

/// Whether a raw value is a JSON object.
pub fn is_object(raw: &RawValue) -> bool {
    raw.get().starts_with('{')
}

/// Writes one JSON object into a byte buffer, field by field.
pub struct ObjectWriter<'w> {
    out: &'w mut Vec<u8>,
    first: bool,
}

impl<'w> ObjectWriter<'w> {
    pub fn new(out: &'w mut Vec<u8>) -> Self {
        out.push(b'{');
        ObjectWriter { out, first: true }
    }

    fn key(&mut self, key: &str) {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        write_json_str(self.out, key);
        self.out.push(b':');
    }

    /// A field whose value is already JSON text.
    pub fn raw(&mut self, key: &str, raw_json: &str) {
        self.key(key);
        self.out.extend_from_slice(raw_json.as_bytes());
    }

    /// A field whose value is a string to be escaped.
    pub fn string(&mut self, key: &str, value: &str) {
        self.key(key);
        write_json_str(self.out, value);
    }

    /// A nested object, written by `f`.
    pub fn object(&mut self, key: &str, f: impl FnOnce(&mut ObjectWriter<'_>)) {
        self.key(key);
        let mut inner = ObjectWriter::new(self.out);
        f(&mut inner);
        inner.finish();
    }

    pub fn finish(self) {
        self.out.push(b'}');
    }
}

/// Append `s` as a JSON string literal.
pub fn write_json_str(out: &mut Vec<u8>, s: &str) {
    let needs_escape = s.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\');
    if needs_escape {
        // serde_json's escaping is correct for every input; writing to a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, s);
    } else {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_object_keeps_order_and_last_duplicate() {
        let raw: &RawValue =
            serde_json::from_str(r#"{"b":1,"a\u0041":[1, 2],"b":{"x":2}}"#).unwrap();
        let obj = RawObject::parse(raw).unwrap();
        let pairs: Vec<(String, String)> = obj
            .iter()
            .map(|(k, v)| (k.to_owned(), v.get().to_owned()))
            .collect();
        assert_eq!(
            pairs,
            vec![
                ("b".to_owned(), r#"{"x":2}"#.to_owned()),
                ("aA".to_owned(), "[1, 2]".to_owned())
            ]
        );
        let not_object: &RawValue = serde_json::from_str("[1]").unwrap();
        assert!(RawObject::parse(not_object).is_none());
    }

    #[test]
    fn envelope_splits_the_batch_in_one_pass() {
        let body = r#"{"writeKey":"k","batch":[{"type":"track"}, 7, "x"],"sentAt":null}"#;
        let e: Envelope<'_> = serde_json::from_str(body).unwrap();
        let items = e.batch.unwrap().unwrap();
        assert_eq!(
            items.iter().map(|i| i.get()).collect::<Vec<_>>(),
            vec![r#"{"type":"track"}"#, "7", r#""x""#]
        );
        assert_eq!(e.fields.get("writeKey").unwrap().get(), r#""k""#);
        for (body, expected) in [
            (r#"{"batch":{}}"#, Some(Err(()))),
            (r#"{"batch":null}"#, None),
            (r#"{}"#, None),
            (r#"{"batch":1}"#, Some(Err(()))),
        ] {
            let e: Envelope<'_> = serde_json::from_str(body).unwrap();
            assert_eq!(
                e.batch.map(|b| b.map(|v| v.len())),
                expected.map(|r: Result<usize, ()>| r),
                "{body}"
            );
        }
        assert!(serde_json::from_str::<Envelope<'_>>("[1]").is_err());
    }

    #[test]
    fn strings() {
        let parse = |s: &str| {
            let raw: Box<RawValue> = serde_json::from_str(s).unwrap();
            raw_str(Some(&raw)).map(|o| o.map(|c| c.into_owned()))
        };
        assert_eq!(parse(r#""abc""#), Ok(Some("abc".to_owned())));
        assert_eq!(parse(r#""a\"b\n""#), Ok(Some("a\"b\n".to_owned())));
        assert_eq!(parse("null"), Ok(None));
        assert_eq!(parse("12"), Err(NotAString));
        assert_eq!(parse("{}"), Err(NotAString));
    }

    #[test]
    fn writer_escapes() {
        let mut out = Vec::new();
        let mut w = ObjectWriter::new(&mut out);
        w.string("a\"", "line\nbreak");
        w.raw("n", "1");
        w.object("o", |o| o.string("k", "v"));
        w.finish();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text, r#"{"a\"":"line\nbreak","n":1,"o":{"k":"v"}}"#);
        let back: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back["a\""], "line\nbreak");
    }
}

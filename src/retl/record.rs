//! Records: ids, fingerprints, the diff against the checkpoint, deterministic event ids, and
//! the events a record becomes.

use std::collections::BTreeMap;

use serde_json::{Map, Value as Json, json};
use sha2::{Digest, Sha256};

use super::store::{Change, Checkpoint, Mapping, Operation};
use super::warehouse::Column;

/// Longest record id accepted (ids are stored in the checkpoint).
pub const MAX_RECORD_ID_CHARS: usize = 512;

/// A record id as text: strings as they are, numbers and booleans in their JSON spelling.
/// `Err` with an error code and message for NULL and over-long ids.
pub fn record_id(value: &Json) -> Result<String, (&'static str, String)> {
    let id = match value {
        Json::Null => {
            return Err((
                "null_id",
                "the unique id column is NULL; every row needs an id".into(),
            ));
        }
        Json::String(s) => s.clone(),
        other => other.to_string(),
    };
    if id.chars().count() > MAX_RECORD_ID_CHARS {
        return Err((
            "id_too_long",
            format!("the unique id is longer than {MAX_RECORD_ID_CHARS} characters"),
        ));
    }
    Ok(id)
}

/// A user id from a column value: strings as they are, numbers in their JSON spelling, NULL and
/// empty strings as none.
pub fn user_id(value: Option<&Json>) -> Option<String> {
    match value? {
        Json::Null => None,
        Json::String(s) if s.is_empty() => None,
        Json::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// A 16-byte fingerprint of a row: SHA-256 over the column names and the values' JSON.
pub fn fingerprint(columns: &[Column], row: &[Json]) -> [u8; 16] {
    let mut hasher = Sha256::new();
    for (column, value) in columns.iter().zip(row) {
        hasher.update(column.name.as_bytes());
        hasher.update([0]);
        // Objects are BTreeMaps (sorted keys), so equal values write equal text.
        hasher.update(value.to_string().as_bytes());
        hasher.update([1]);
    }
    let digest = hasher.finalize();
    let mut out = [0u8; 16];
    out.copy_from_slice(&digest[..16]);
    out
}

/// What happened to a record since its checkpoint entry; `None` when unchanged.
pub fn diff(previous: Option<&Checkpoint>, fp: &[u8; 16]) -> Option<Change> {
    match previous {
        None => Some(Change::Added),
        Some(Checkpoint { fp: None, .. }) => Some(Change::Added),
        Some(Checkpoint { fp: Some(old), .. }) if old != fp => Some(Change::Updated),
        Some(_) => None,
    }
}

/// The `messageId` of the event a mapping sends for version `version` of a record. The same
/// change always gets the same id (a resumed sync's repeat is dropped by the log's dedup), and
/// different changes of a record never share one: the version grows with every change, and
/// the fingerprint tells apart two different contents sent as the same version by an
/// interrupted run and its resumption.
pub fn message_id(mapping: &str, record_id: &str, version: i64, fp: Option<&[u8; 16]>) -> String {
    let digest = Sha256::digest(record_id.as_bytes());
    let state = fp.map_or_else(|| "del".to_owned(), |f| hex::encode(&f[..4]));
    format!(
        "retl-{mapping}-{}-{version}-{state}",
        hex::encode(&digest[..16])
    )
}

/// The traits (identify) or properties (track) of a row: every column but the consent
/// columns, which travel as `context.consent`.
pub fn fields(columns: &[Column], row: &[Json], skip: impl Fn(usize) -> bool) -> Map<String, Json> {
    columns
        .iter()
        .zip(row)
        .enumerate()
        .filter(|(i, _)| !skip(*i))
        .map(|(_, (c, v))| (c.name.clone(), v.clone()))
        .collect()
}

/// What an event is built from.
pub struct EventParts<'a> {
    pub model_id: &'a str,
    pub mapping: &'a Mapping,
    pub change: Change,
    pub record_id: &'a str,
    pub user_id: Option<&'a str>,
    /// Traits or properties; `None` for a deleted record (its row is gone).
    pub fields: Option<Map<String, Json>>,
    pub preferences: Option<&'a BTreeMap<String, bool>>,
    pub message_id: String,
}

/// The Segment event (before normalisation) a record becomes.
pub fn event(parts: EventParts<'_>) -> Json {
    let mut context = json!({
        "library": {"name": "sluice-retl", "version": env!("CARGO_PKG_VERSION")},
        "sluice": {"retl": {
            "modelId": parts.model_id,
            "mappingId": parts.mapping.id,
            "operation": parts.change.as_str(),
            "recordId": parts.record_id,
        }},
    });
    if let Some(preferences) = parts.preferences {
        context["consent"] = json!({"categoryPreferences": preferences});
    }
    let fields = Json::Object(parts.fields.unwrap_or_default());
    let mut event = json!({
        "type": parts.mapping.operation.as_str(),
        "messageId": parts.message_id,
        "context": context,
    });
    if let Some(user) = parts.user_id {
        event["userId"] = Json::String(user.to_owned());
    }
    match parts.mapping.operation {
        Operation::Identify => event["traits"] = fields,
        Operation::Track => {
            event["event"] = Json::String(parts.mapping.event.clone().unwrap_or_default());
            event["properties"] = fields;
        }
    }
    event
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::retl::store::MappingTarget;

    fn cols(names: &[&str]) -> Vec<Column> {
        names
            .iter()
            .map(|n| Column {
                name: (*n).to_owned(),
                type_name: String::new(),
            })
            .collect()
    }

    #[test]
    fn ids() {
        assert_eq!(record_id(&json!("u-1")).unwrap(), "u-1");
        assert_eq!(record_id(&json!(42)).unwrap(), "42");
        assert_eq!(record_id(&json!(true)).unwrap(), "true");
        assert_eq!(record_id(&json!("")).unwrap(), "");
        assert_eq!(record_id(&Json::Null).unwrap_err().0, "null_id");
        assert_eq!(
            record_id(&json!("x".repeat(600))).unwrap_err().0,
            "id_too_long"
        );
        assert_eq!(user_id(Some(&json!(7))), Some("7".into()));
        assert_eq!(user_id(Some(&json!(""))), None);
        assert_eq!(user_id(Some(&Json::Null)), None);
        assert_eq!(user_id(None), None);
    }

    #[test]
    fn fingerprints_follow_content() {
        let c = cols(&["id", "email", "ads"]);
        let a = fingerprint(&c, &[json!(1), json!("a@x"), json!(true)]);
        assert_eq!(a, fingerprint(&c, &[json!(1), json!("a@x"), json!(true)]));
        assert_ne!(a, fingerprint(&c, &[json!(1), json!("a@x"), json!(false)]));
        assert_ne!(a, fingerprint(&c, &[json!(1), json!("a@x"), Json::Null]));
        // Values cannot leak into the next column.
        assert_ne!(
            fingerprint(&cols(&["a", "b"]), &[json!("x"), json!("")]),
            fingerprint(&cols(&["a", "b"]), &[json!(""), json!("x")])
        );
        // A renamed column is a change.
        assert_ne!(
            a,
            fingerprint(
                &cols(&["id", "mail", "ads"]),
                &[json!(1), json!("a@x"), json!(true)]
            )
        );
        // Object key order does not matter.
        assert_eq!(
            fingerprint(
                &cols(&["j"]),
                &[serde_json::from_str(r#"{"a":1,"b":2}"#).unwrap()]
            ),
            fingerprint(
                &cols(&["j"]),
                &[serde_json::from_str(r#"{"b":2,"a":1}"#).unwrap()]
            )
        );
    }

    #[test]
    fn diff_table() {
        let fp = [7u8; 16];
        let cp = |f: Option<[u8; 16]>| Checkpoint {
            fp: f,
            version: 3,
            seen_run: 1,
            granted: None,
            user_id: None,
        };
        let cases = [
            (None, Some(Change::Added)),
            (Some(cp(None)), Some(Change::Added)),
            (Some(cp(Some([8u8; 16]))), Some(Change::Updated)),
            (Some(cp(Some(fp))), None),
        ];
        for (previous, expected) in cases {
            assert_eq!(diff(previous.as_ref(), &fp), expected, "{previous:?}");
        }
    }

    #[test]
    fn message_ids_are_stable_and_distinct() {
        let fp = [0xab; 16];
        let a = message_id("map_x", "u1", 1, Some(&fp));
        assert_eq!(a, message_id("map_x", "u1", 1, Some(&fp)));
        assert!(
            a.starts_with("retl-map_x-") && a.ends_with("-1-abababab"),
            "{a}"
        );
        let others = [
            message_id("map_y", "u1", 1, Some(&fp)),
            message_id("map_x", "u2", 1, Some(&fp)),
            message_id("map_x", "u1", 2, Some(&fp)),
            message_id("map_x", "u1", 1, Some(&[0xcd; 16])),
            message_id("map_x", "u1", 1, None),
        ];
        for other in &others {
            assert_ne!(&a, other);
        }
        let long = message_id("map_abcdefghijkl", &"x".repeat(512), i64::MAX, None);
        assert!(
            long.len() <= crate::api::normalize::MAX_MESSAGE_ID_CHARS,
            "{long}"
        );
    }

    #[test]
    fn events() {
        let mapping = Mapping {
            id: "map_1".into(),
            model_id: "model_1".into(),
            target: MappingTarget::Destination("dst_1".into()),
            operation: Operation::Track,
            event: Some("Account Synced".into()),
            on_added: true,
            on_updated: true,
            on_deleted: false,
            created_at: 0,
        };
        let c = cols(&["id", "plan", "ads"]);
        let row = [json!(5), json!("pro"), json!(true)];
        let prefs: BTreeMap<String, bool> = [("C0004".to_owned(), true)].into();
        let e = event(EventParts {
            model_id: "model_1",
            mapping: &mapping,
            change: Change::Updated,
            record_id: "5",
            user_id: Some("5"),
            fields: Some(fields(&c, &row, |i| i == 2)),
            preferences: Some(&prefs),
            message_id: "m".into(),
        });
        assert_eq!(
            e,
            json!({
                "type": "track", "event": "Account Synced", "userId": "5", "messageId": "m",
                "properties": {"id": 5, "plan": "pro"},
                "context": {
                    "library": {"name": "sluice-retl", "version": env!("CARGO_PKG_VERSION")},
                    "sluice": {"retl": {"modelId": "model_1", "mappingId": "map_1", "operation": "updated", "recordId": "5"}},
                    "consent": {"categoryPreferences": {"C0004": true}},
                },
            })
        );
        let identify = Mapping {
            operation: Operation::Identify,
            event: None,
            ..mapping
        };
        let e = event(EventParts {
            model_id: "model_1",
            mapping: &identify,
            change: Change::Deleted,
            record_id: "5",
            user_id: Some("5"),
            fields: None,
            preferences: None,
            message_id: "m".into(),
        });
        assert_eq!(e["traits"], json!({}));
        assert!(e["context"].get("consent").is_none());
        assert_eq!(e["context"]["sluice"]["retl"]["operation"], "deleted");
    }
}

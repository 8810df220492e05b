//! Data-driven tests for normalisation: one line of input, one line of expected output.

use serde_json::{Value, json};

use super::*;

const RECEIVED_AT: &str = "2026-11-25T12:00:10.000Z";

/// Normalise `item` (with optional batch-level `{context, integrations, sentAt}`) and return
/// either the output event (with a generated messageId replaced by `<uuid>`) or the error code.
fn run(item: &str, endpoint: Option<EventType>, batch: &str) -> Result<Value, String> {
    let item_raw: Box<RawValue> = serde_json::from_str(item).expect("item JSON");
    let batch_raw: Box<RawValue> = serde_json::from_str(batch).expect("batch JSON");
    let batch_obj = RawObject::parse(&batch_raw).expect("batch object");
    let item_obj = RawObject::parse(&item_raw).ok_or("not an object")?;
    let request = RequestContext {
        received_at: clock::parse_ms(RECEIVED_AT).unwrap(),
        ip: Some("203.0.113.7".parse().unwrap()),
        batch_context: batch_obj.get("context").and_then(RawObject::parse),
        batch_integrations: batch_obj.get("integrations").and_then(RawObject::parse),
        batch_sent_at: batch_obj.get("sentAt"),
    };
    match normalize(&item_obj, endpoint, &request) {
        Ok(n) => {
            let mut v: Value = serde_json::from_slice(&n.payload).expect("payload is JSON");
            if let Some(id) = v.get("messageId").and_then(Value::as_str)
                && uuid::Uuid::parse_str(id).is_ok()
                && !item.contains(id)
            {
                v["messageId"] = json!("<uuid>");
            }
            assert!(!n.message_id.is_empty());
            Ok(v)
        }
        Err(r) => Err(r.code.to_owned()),
    }
}

#[track_caller]
fn check(item: &str, expected: Value) {
    assert_eq!(run(item, None, "{}"), Ok(expected), "item: {item}");
}

#[track_caller]
fn check_err(item: &str, endpoint: Option<EventType>, code: &str) {
    assert_eq!(
        run(item, endpoint, "{}"),
        Err(code.to_owned()),
        "item: {item}"
    );
}

#[test]
fn track_with_skew_correction() {
    // The device clock is 5 s behind: sentAt − timestamp = 5 s, so timestamp = receivedAt − 5 s.
    check(
        r#"{"type":"track","event":"Order Completed","userId":"u1","messageId":"m1",
            "timestamp":"2026-11-25T11:59:00.000Z","sentAt":"2026-11-25T11:59:05.000Z",
            "properties":{"revenue":9.5},"writeKey":"secret"}"#,
        json!({"event":"Order Completed","userId":"u1","properties":{"revenue":9.5},
               "type":"track","messageId":"m1","context":{"ip":"203.0.113.7"},
               "originalTimestamp":"2026-11-25T11:59:00.000Z","timestamp":"2026-11-25T12:00:05.000Z",
               "sentAt":"2026-11-25T11:59:05.000Z","receivedAt":RECEIVED_AT}),
    );
}

#[test]
fn defaults_when_client_sends_little() {
    // No timestamp: timestamp = receivedAt; no messageId: a UUID; null ids are absent.
    check(
        r#"{"type":"identify","anonymousId":"a1","userId":null,"traits":{"email":"a@example.com"}}"#,
        json!({"anonymousId":"a1","userId":null,"traits":{"email":"a@example.com"},"type":"identify",
               "messageId":"<uuid>","context":{"ip":"203.0.113.7"},
               "timestamp":RECEIVED_AT,"receivedAt":RECEIVED_AT}),
    );
    // A timestamp without sentAt is kept as is.
    check(
        r#"{"type":"page","userId":"u1","name":"Home","timestamp":"2026-11-25T11:00:00+01:00","messageId":"m"}"#,
        json!({"userId":"u1","name":"Home","type":"page","messageId":"m","context":{"ip":"203.0.113.7"},
               "originalTimestamp":"2026-11-25T11:00:00+01:00","timestamp":"2026-11-25T10:00:00.000Z",
               "receivedAt":RECEIVED_AT}),
    );
    // An unparseable timestamp is dropped rather than forwarded as a date it is not.
    check(
        r#"{"type":"track","event":"E","userId":"u1","timestamp":"yesterday","messageId":"m"}"#,
        json!({"event":"E","userId":"u1","type":"track","messageId":"m","context":{"ip":"203.0.113.7"},
               "timestamp":RECEIVED_AT,"receivedAt":RECEIVED_AT}),
    );
}

#[test]
fn client_ip_is_kept() {
    check(
        r#"{"type":"track","event":"E","userId":"u1","messageId":"m","context":{"ip":"10.0.0.1","locale":"en"}}"#,
        json!({"event":"E","userId":"u1","type":"track","messageId":"m",
               "context":{"ip":"10.0.0.1","locale":"en"},
               "timestamp":RECEIVED_AT,"receivedAt":RECEIVED_AT}),
    );
}

#[test]
fn batch_level_context_and_integrations_merge() {
    let out = run(
        r#"{"type":"track","event":"E","userId":"u1","messageId":"m",
            "context":{"locale":"fr","consent":{"categoryPreferences":{"ad":true}}},
            "integrations":{"Amplitude":false}}"#,
        None,
        r#"{"context":{"locale":"en","library":{"name":"x"}},"integrations":{"All":false,"Amplitude":true},
            "sentAt":"2026-11-25T12:00:00.000Z"}"#,
    )
    .unwrap();
    assert_eq!(
        out["context"],
        json!({"locale":"fr","consent":{"categoryPreferences":{"ad":true}},"library":{"name":"x"},"ip":"203.0.113.7"})
    );
    assert_eq!(out["integrations"], json!({"Amplitude":false,"All":false}));
    assert_eq!(out["sentAt"], json!("2026-11-25T12:00:00.000Z"));
}

#[test]
fn endpoint_type_wins() {
    let out = run(
        r#"{"type":"identify","event":"E","userId":"u"}"#,
        Some(EventType::Track),
        "{}",
    )
    .unwrap();
    assert_eq!(out["type"], "track");
}

#[test]
fn rejections() {
    use EventType::{Alias, Group, Identify, Page, Screen, Track};
    let cases: &[(&str, Option<EventType>, &str)] = &[
        (r#"{"event":"E","userId":"u"}"#, None, "invalid_type"),
        (r#"{"type":"click","userId":"u"}"#, None, "invalid_type"),
        (r#"{"type":7,"userId":"u"}"#, None, "invalid_type"),
        (r#"{"type":"track","event":"E"}"#, None, "no_user_anon_id"),
        (
            r#"{"event":"E","userId":null,"anonymousId":""}"#,
            Some(Track),
            "no_user_anon_id",
        ),
        (r#"{"event":"E","userId":42}"#, Some(Track), "id_not_string"),
        (
            r#"{"event":"E","anonymousId":{"a":1}}"#,
            Some(Track),
            "id_not_string",
        ),
        (r#"{"userId":"u"}"#, Some(Track), "event_not_defined"),
        (
            r#"{"userId":"u","event":""}"#,
            Some(Track),
            "event_not_defined",
        ),
        (
            r#"{"userId":"u","event":5}"#,
            Some(Track),
            "event_not_string",
        ),
        (
            r#"{"userId":"u","event":"E","properties":[1]}"#,
            Some(Track),
            "properties_not_object",
        ),
        (
            r#"{"userId":"u","properties":"x"}"#,
            Some(Page),
            "properties_not_object",
        ),
        (
            r#"{"userId":"u","name":3}"#,
            Some(Screen),
            "name_not_string",
        ),
        (
            r#"{"userId":"u","category":true}"#,
            Some(Page),
            "category_not_string",
        ),
        (
            r#"{"userId":"u","traits":"vip"}"#,
            Some(Identify),
            "traits_not_object",
        ),
        (
            r#"{"userId":"u","traits":[]}"#,
            Some(Group),
            "traits_not_object",
        ),
        (r#"{"userId":"u"}"#, Some(Group), "id_required"),
        (
            r#"{"userId":"u","groupId":9}"#,
            Some(Group),
            "id_not_string",
        ),
        (r#"{"userId":"u"}"#, Some(Alias), "id_required"),
        (
            r#"{"anonymousId":"a","previousId":"p"}"#,
            Some(Alias),
            "id_required",
        ),
        (
            r#"{"userId":"u","event":"E","messageId":7}"#,
            Some(Track),
            "message_id_not_string",
        ),
        (
            r#"{"userId":"u","event":"E","context":"web"}"#,
            Some(Track),
            "context_not_object",
        ),
        (
            r#"{"userId":"u","event":"E","integrations":[]}"#,
            Some(Track),
            "integrations_not_object",
        ),
        (
            r#"{"userId":"u","event":"Segment Consent Preference Updated"}"#,
            Some(Track),
            "consent_categorypreferences_should_exist",
        ),
        (
            r#"{"userId":"u","event":"Segment Consent Preference","context":{"consent":{"categoryPreferences":[]}}}"#,
            Some(Track),
            "consent_categorypreferences_fields_should_be_object",
        ),
        (
            r#"{"userId":"u","event":"Segment Consent Preference Updated","context":{"consent":{"categoryPreferences":{"a":"yes"}}}}"#,
            Some(Track),
            "consent_categorypreferences_fields_should_be_bool",
        ),
    ];
    for (item, endpoint, code) in cases {
        check_err(item, *endpoint, code);
    }
    let long = format!(
        r#"{{"userId":"u","event":"E","messageId":"{}"}}"#,
        "x".repeat(101)
    );
    check_err(&long, Some(Track), "message_id_too_long");
    let ok = format!(
        r#"{{"userId":"u","event":"E","messageId":"{}"}}"#,
        "é".repeat(100)
    );
    assert!(run(&ok, Some(Track), "{}").is_ok());
}

#[test]
fn facts_for_routing() {
    let item: Box<RawValue> = serde_json::from_str(
        r#"{"type":"track","event":"Segment Consent Preference Updated","userId":"u",
            "context":{"consent":{"categoryPreferences":{"ad":true,"x":false}}},"integrations":{"All":false}}"#,
    )
    .unwrap();
    let obj = RawObject::parse(&item).unwrap();
    let request = RequestContext {
        received_at: 0,
        ip: None,
        batch_context: None,
        batch_integrations: None,
        batch_sent_at: None,
    };
    let n = normalize(&obj, None, &request).unwrap();
    assert!(n.facts.is_consent_update);
    assert!(!n.facts.integrations.all);
    assert_eq!(n.facts.consent, ConsentSignal::Granted(vec!["ad".into()]));
    assert_eq!(n.user_id.as_deref(), Some("u"));
    assert_eq!(
        n.event_name.as_deref(),
        Some("Segment Consent Preference Updated")
    );
}

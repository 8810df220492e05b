//! NATS: subject templates, stream subject coverage, settings. Publishing to a real server is
//! tested in `tests/it/destinations_catalog.rs`.

use serde_json::json;

use super::*;
use crate::destinations::{REDACTED, redact, restore_secrets};

fn ctx() -> BuildContext {
    BuildContext {
        files_dir: "/tmp".into(),
        allowed_file_dirs: vec![],
    }
}

#[test]
fn subject_templates() {
    let cases = [
        ("events.{type}", "events.track", "events.*"),
        (
            "events.{type}.{event}",
            "events.track.order_completed",
            "events.*.*",
        ),
        ("sluice.{event}", "sluice.order_completed", "sluice.*"),
        ("x.t-{type}.y", "x.t-track.y", "x.*.y"),
        ("plain.subject", "plain.subject", "plain.subject"),
    ];
    for (template, rendered, filter) in cases {
        let t = SubjectTemplate::parse(template).unwrap();
        assert_eq!(t.render("track", "order_completed"), rendered, "{template}");
        assert_eq!(t.filter(), filter, "{template}");
    }
    for bad in [
        "",
        "events.{kind}",
        "events.{type",
        "events.type}",
        "events.*",
        "events.>",
        "events..{type}",
        ".events",
        "events.",
        "with space.{type}",
    ] {
        assert!(SubjectTemplate::parse(bad).is_err(), "{bad:?}");
    }
    assert!(check_subject("a.b.c").is_ok());
}

#[test]
fn subjects_of_events() {
    let t = SubjectTemplate::parse("e.{type}.{event}").unwrap();
    let cases = [
        (
            r#"{"type":"track","event":"Order Completed"}"#,
            "e.track.order_completed",
        ),
        (
            r#"{"type":"track","event":"a.b*c>d e"}"#,
            "e.track.a_b_c_d_e",
        ),
        (r#"{"type":"track","event":"!!!"}"#, "e.track._"),
        (r#"{"type":"identify","userId":"u"}"#, "e.identify.identify"),
        (r#"{"type":"page","name":"Home"}"#, "e.page.page"),
        (r#"not json"#, "e.unknown.unknown"),
    ];
    for (payload, subject) in cases {
        let got = subject_for(&t, payload.as_bytes());
        assert_eq!(got, subject, "{payload}");
        assert!(check_subject(&got).is_ok(), "{got}");
    }
}

#[test]
fn stream_subjects_cover_ours() {
    let cases = [
        ("events.*", "events.*", true),
        ("events.>", "events.*", true),
        ("events.>", "events.*.*", true),
        (">", "events.*", true),
        ("*.*", "events.*", true),
        ("events.track", "events.*", false),
        ("events.*", "events.*.*", false),
        ("events.*.*", "events.*", false),
        ("other.>", "events.*", false),
        ("events.>", "events", false),
        ("plain.subject", "plain.subject", true),
    ];
    for (filter, ours, expected) in cases {
        assert_eq!(covers(filter, ours), expected, "{filter} covers {ours}");
    }
}

#[test]
fn settings_validation_and_redaction() {
    let bad = [
        json!({"url": "http://127.0.0.1:4222"}),
        json!({"url": "nats://"}),
        json!({"url": "nats://s3cr3t-token@127.0.0.1:4222"}),
        json!({"subject": "events.{nope}"}),
        json!({"stream": "has.dot"}),
        json!({"stream": ""}),
        json!({"token": ""}),
        json!({"batchSize": 0}),
        json!({"timeoutMs": 10}),
        json!({"subjects": "typo"}),
    ];
    for settings in bad {
        assert!(NatsType.validate(&settings, &ctx()).is_err(), "{settings}");
    }
    let ok = NatsType.validate(&json!({}), &ctx()).unwrap();
    assert_eq!(
        ok,
        json!({"url": "nats://127.0.0.1:4222", "subject": "events.{type}", "batchSize": 100, "timeoutMs": 10000})
    );
    let stored = NatsType
        .validate(
            &json!({"url": "nats://app:pw@127.0.0.1:4222", "token": "t0k", "stream": "EVENTS"}),
            &ctx(),
        )
        .unwrap();
    let shown = redact(&NatsType, &stored);
    assert_eq!(
        shown["url"],
        format!("nats://app:{REDACTED}@127.0.0.1:4222")
    );
    assert_eq!(shown["token"], REDACTED);
    let mut back = shown.clone();
    restore_secrets(&NatsType, &mut back, &stored);
    assert_eq!(back, stored);
}

#[tokio::test]
async fn unreachable_server_is_retryable_and_hides_the_password() {
    let dest = NatsType
        .build(
            &json!({"url": "nats://app:secret-pw@127.0.0.1:1", "timeoutMs": 500}),
            &ctx(),
        )
        .unwrap();
    let record = Record {
        seq: 1,
        source: 1,
        received_at: 0,
        message_id: "m1".into(),
        user_id: None,
        anonymous_id: Some("a".into()),
        payload: br#"{"type":"track","event":"E","messageId":"m1"}"#.to_vec(),
        held: false,
        intended: Vec::new(),
        system: false,
    };
    match dest.deliver(&[record]).await {
        Err(DeliveryError::Retryable { message, .. }) => {
            assert!(!message.contains("secret-pw"), "{message}");
            assert!(message.contains("127.0.0.1:1"), "{message}");
        }
        other => panic!("expected a retryable error, got {other:?}"),
    }
}

//! Data-driven tests of the filter language and actions.

use serde_json::{Value, json};

use super::fql::{glob, parse};
use super::*;

fn sample() -> Value {
    json!({
        "type": "track",
        "event": "Order Completed",
        "userId": "u1",
        "properties": {"total": 120.5, "count": 3, "coupon": "WINTER", "email": "a@example.com",
                        "tags": ["vip", "eu"], "paid": true, "note": null, "nested": {"level": 2}},
        "context": {"consent": {"categoryPreferences": {"C0004": true}}}
    })
}

#[track_caller]
fn check(condition: &str, expected: bool) {
    let expr = parse(condition).unwrap_or_else(|e| panic!("{condition}: {e}"));
    assert_eq!(expr.eval(&sample()), expected, "{condition}");
}

#[test]
fn operators() {
    let cases = [
        (r#"event = "Order Completed""#, true),
        (r#"event == "Order Completed""#, true),
        (r#"event != "Order Completed""#, false),
        (r#"type = 'track'"#, true),
        ("properties.total > 100", true),
        ("properties.total < 100", false),
        ("properties.total >= 120.5", true),
        ("properties.total <= 120.4", false),
        ("properties.count = 3", true),
        ("properties.count = 3.0", true),
        ("properties.paid = true", true),
        ("properties.note = null", true),
        ("properties.nested.level = 2", true),
        ("properties.tags.0 = \"vip\"", true),
        (r#"contains(event, "Order")"#, true),
        (r#"contains(properties.tags, "eu")"#, true),
        (r#"contains(properties.tags, "us")"#, false),
        (r#"match(event, "Order *")"#, true),
        (r#"match(event, "*Completed")"#, true),
        (r#"match(event, "Order ?ompleted")"#, true),
        (r#"match(event, "Refund*")"#, false),
        ("exists(properties.coupon)", true),
        ("exists(properties.note)", false),
        ("context.consent.categoryPreferences.C0004 = true", true),
        (
            r#"event = "Order Completed" and properties.total > 100"#,
            true,
        ),
        (r#"event = "Nope" or properties.count = 3"#, true),
        (r#"!(event = "Nope")"#, true),
        (r#"! event = "Order Completed""#, false),
        (
            r#"event = "Nope" or event = "Order Completed" and properties.count = 3"#,
            true,
        ),
        (
            r#"(event = "Nope" or event = "Order Completed") and properties.count = 4"#,
            false,
        ),
        ("-1 < properties.count", true),
    ];
    for (condition, expected) in cases {
        check(condition, expected);
    }
}

#[test]
fn missing_fields_and_type_mismatches_never_fail() {
    let cases = [
        ("properties.missing = null", true),
        ("properties.missing != null", false),
        (r#"properties.missing = "x""#, false),
        (r#"properties.missing != "x""#, true),
        ("properties.missing > 1", false),
        ("properties.missing < 1", false),
        (r#"properties.coupon > 5"#, false),
        (r#"properties.total = "120.5""#, false),
        (r#"contains(properties.total, "1")"#, false),
        (r#"match(properties.count, "3")"#, false),
        ("properties.total.deeper = 1", false),
        (r#"properties.coupon > "A""#, true),
    ];
    for (condition, expected) in cases {
        check(condition, expected);
    }
}

#[test]
fn parse_errors_point_at_the_problem() {
    let cases = [
        ("", 1, "empty"),
        ("event =", 8, "expected a field or a value"),
        (r#"event = "unterminated"#, 9, "not closed"),
        ("event ~ 1", 7, "unexpected character"),
        ("(event = 1", 11, "expected `)`"),
        ("event = 1 xor 2", 11, "expected `and`, `or`"),
        ("contains(event)", 15, "expected `,`"),
        ("contains(event, 3)", 17, "a string"),
        ("event", 6, "expected a comparison"),
        ("and = 1", 1, "expected a field or a value"),
    ];
    for (condition, column, needle) in cases {
        let error = parse(condition).expect_err(condition);
        assert_eq!(error.column, column, "{condition}: {error}");
        assert!(error.message.contains(needle), "{condition}: {error}");
    }
    let deep = format!("{}event = 1{}", "(".repeat(200), ")".repeat(200));
    assert!(
        parse(&deep)
            .unwrap_err()
            .message
            .contains("nested too deeply")
    );
}

#[test]
fn globs() {
    for (pattern, text, expected) in [
        ("*", "", true),
        ("a*c", "abbbc", true),
        ("a*c", "abbbd", false),
        ("a?c", "abc", true),
        ("*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaac", false),
        ("é*", "été", true),
    ] {
        assert_eq!(glob(pattern, text), expected, "{pattern} {text}");
    }
}

fn rule(condition: &str, action: ActionKind, fields: &[&str]) -> Rule {
    Rule {
        condition: condition.into(),
        action,
        fields: fields.iter().map(|s| s.to_string()).collect(),
    }
}

#[test]
fn actions_in_order() {
    let program = Program::compile(&[
        rule(
            r#"event = "Order Completed""#,
            ActionKind::DropProperties,
            &["properties.email", "userId"],
        ),
        rule("properties.total > 1000", ActionKind::Drop, &[]),
    ])
    .unwrap();
    assert_eq!(
        program.verdict(&sample()),
        Verdict::Deliver { transform: true }
    );
    let mut event = sample();
    program.apply(&mut event);
    assert!(event["properties"].get("email").is_none());
    assert!(event.get("userId").is_none());
    assert_eq!(event["properties"]["coupon"], "WINTER");

    let keep_only_orders =
        Program::compile(&[rule(r#"match(event, "Order*")"#, ActionKind::Keep, &[])]).unwrap();
    assert_eq!(
        keep_only_orders.verdict(&sample()),
        Verdict::Deliver { transform: false }
    );
    assert_eq!(
        keep_only_orders.verdict(&json!({"event": "Signed Up"})),
        Verdict::Drop
    );

    let allow_list = Program::compile(&[rule(
        "type = \"track\"",
        ActionKind::KeepProperties,
        &["properties.total", "properties.count"],
    )])
    .unwrap();
    let mut event = sample();
    allow_list.apply(&mut event);
    assert_eq!(event["properties"], json!({"total": 120.5, "count": 3}));

    // Naming only `properties.*` leaves `traits` alone.
    let mut with_traits =
        json!({"type": "track", "properties": {"total": 1, "x": 2}, "traits": {"plan": "pro"}});
    allow_list.apply(&mut with_traits);
    assert_eq!(with_traits["traits"], json!({"plan": "pro"}));
    assert_eq!(with_traits["properties"], json!({"total": 1}));
}

#[test]
fn the_trace_matches_what_delivery_does() {
    // Rule 2 looks for the email that rule 1 has already removed: it does not match, and
    // `total` stays, both in the trace and in the delivered event.
    let program = Program::compile(&[
        rule(
            "exists(properties.email)",
            ActionKind::DropProperties,
            &["properties.email"],
        ),
        rule(
            "exists(properties.email)",
            ActionKind::DropProperties,
            &["properties.total"],
        ),
        rule(
            "!exists(properties.email)",
            ActionKind::DropProperties,
            &["properties.count"],
        ),
    ])
    .unwrap();
    let event = json!({"type": "track", "properties": {"email": "a@b.c", "total": 1, "count": 2}});
    assert_eq!(program.trace(&event), vec![true, false, true]);
    let mut delivered = event.clone();
    program.apply(&mut delivered);
    assert_eq!(delivered["properties"], json!({"total": 1}));
}

#[test]
fn rule_validation() {
    let err = Program::compile(&[
        rule("event = 1", ActionKind::Drop, &[]),
        rule("event =", ActionKind::Drop, &[]),
    ])
    .unwrap_err();
    assert_eq!((err.index, err.column), (1, Some(8)));
    assert!(Program::compile(&[rule("event = 1", ActionKind::DropProperties, &[])]).is_err());
    assert!(Program::compile(&[rule("event = 1", ActionKind::Drop, &["properties.x"])]).is_err());
    assert!(
        Program::compile(&[rule(
            "event = 1",
            ActionKind::KeepProperties,
            &["context.ip"]
        )])
        .is_err()
    );
    assert!(
        Program::compile(&[rule(
            "event = 1",
            ActionKind::DropProperties,
            &["properties..x"]
        )])
        .is_err()
    );
    let parsed: Rule = serde_json::from_value(
        json!({"if": "event = 1", "action": "dropProperties", "fields": ["properties.a"]}),
    )
    .unwrap();
    assert_eq!(parsed.action, ActionKind::DropProperties);
    assert!(
        serde_json::from_value::<Rule>(json!({"if": "event = 1", "action": "explode"})).is_err()
    );
}

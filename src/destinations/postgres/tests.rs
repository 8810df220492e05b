//! The warehouse mapping (names, flattening, types, placement) and the settings. Writing to a
//! real PostgreSQL is tested in `tests/it/destinations_catalog.rs`.

use serde_json::json;

use super::rows::*;
use super::*;
use crate::destinations::{REDACTED, redact, restore_secrets};

fn ctx() -> BuildContext {
    BuildContext {
        files_dir: "/tmp".into(),
        allowed_file_dirs: vec![],
    }
}

#[test]
fn names() {
    let cases = [
        ("Order Completed", "order_completed"),
        ("orderId", "order_id"),
        ("order_id", "order_id"),
        ("orderID", "order_id"),
        ("HTTPStatus", "http_status"),
        ("item2Name", "item2_name"),
        ("$revenue", "revenue"),
        ("  Signed   up!! ", "signed_up"),
        ("product.name", "product_name"),
        ("Größe", "größe"),
        ("_private", "private"),
        ("!!!", ""),
    ];
    for (input, expected) in cases {
        assert_eq!(snake_case(input), expected, "{input:?}");
    }
    assert_eq!(event_table("Order Completed"), "order_completed");
    assert_eq!(event_table("2FA Enabled"), "_2fa_enabled");
    assert_eq!(event_table("Pages"), "_pages");
    assert_eq!(event_table("???"), "unnamed_event");
    let long = event_table(&"very long event name ".repeat(10));
    assert_eq!(long.len(), MAX_IDENT);
    assert_eq!(text_column("price"), "price_text");
    assert_eq!(text_column(&"x".repeat(63)).len(), MAX_IDENT);
    assert!(text_column(&"x".repeat(63)).ends_with("_text"));
    // Cutting never splits a character.
    let wide = identifier(&"é".repeat(40)).unwrap();
    assert!(wide.len() <= MAX_IDENT && wide.chars().all(|c| c == 'é'));
    assert_eq!(quote("a\"b"), "\"a\"\"b\"");
}

fn columns_of(row: &Row) -> Vec<(&str, &Value)> {
    row.values.iter().map(|(k, v)| (k.as_str(), v)).collect()
}

#[test]
fn a_track_makes_a_tracks_row_and_an_event_row() {
    let event = json!({
        "type": "track", "event": "Order Completed", "userId": "u1", "anonymousId": "a1",
        "messageId": "ignored-the-record-id-wins",
        "timestamp": "2026-11-25T14:00:00.000Z", "receivedAt": "2026-11-25T14:00:01.000Z",
        "sentAt": "2026-11-25T14:00:00.500Z", "originalTimestamp": "2026-11-25T13:59:59Z",
        "properties": {"orderId": "o-1", "revenue": 19.95, "product": {"name": "Shoe", "tags": ["a", "b"]},
                       "paid": true, "note": null, "id": "prop-id", "event": "x"},
        "context": {"ip": "10.0.0.1", "library": {"name": "analytics.js", "version": "1.0"},
                    "consent": {"categoryPreferences": {"C0001": true}}},
        "integrations": {"All": true}
    });
    let rows = rows_for("m1", &event);
    assert_eq!(rows.len(), 2);
    assert_eq!(
        (rows[0].table.as_str(), rows[0].kind),
        ("tracks", TableKind::Tracks)
    );
    assert_eq!(
        (rows[1].table.as_str(), rows[1].kind),
        ("order_completed", TableKind::Event)
    );
    let standard = [
        ("anonymous_id", json!("a1")),
        ("context_consent_category_preferences_c0001", json!(true)),
        ("context_ip", json!("10.0.0.1")),
        ("context_library_name", json!("analytics.js")),
        ("context_library_version", json!("1.0")),
        ("event", json!("order_completed")),
        ("event_text", json!("Order Completed")),
        ("id", json!("m1")),
        ("original_timestamp", json!("2026-11-25T13:59:59Z")),
        ("received_at", json!("2026-11-25T14:00:01.000Z")),
        ("sent_at", json!("2026-11-25T14:00:00.500Z")),
        ("timestamp", json!("2026-11-25T14:00:00.000Z")),
        ("user_id", json!("u1")),
    ];
    let expected: Vec<(&str, &Value)> = standard.iter().map(|(k, v)| (*k, v)).collect();
    assert_eq!(columns_of(&rows[0]), expected, "tracks has no properties");
    let mut with_properties = standard.to_vec();
    with_properties.extend([
        ("order_id", json!("o-1")),
        ("paid", json!(true)),
        ("product_name", json!("Shoe")),
        ("product_tags", json!("[\"a\",\"b\"]")),
        ("property_event", json!("x")),
        ("property_id", json!("prop-id")),
        ("revenue", json!(19.95)),
    ]);
    with_properties.sort_by(|a, b| a.0.cmp(b.0));
    let expected: Vec<(&str, &Value)> = with_properties.iter().map(|(k, v)| (*k, v)).collect();
    assert_eq!(columns_of(&rows[1]), expected);
}

#[test]
fn other_types_make_one_row() {
    let check = |event: Value, table: &str, expect: &[(&str, Value)]| {
        let rows = rows_for("m", &event);
        assert_eq!(rows.len(), 1, "{event}");
        assert_eq!(rows[0].table, table);
        for (column, value) in expect {
            assert_eq!(rows[0].values.get(*column), Some(value), "{table}.{column}");
        }
    };
    check(
        json!({"type": "identify", "userId": "u", "traits": {"email": "a@b.c", "firstName": "Ada", "id": 5,
                "address": {"city": "Paris"}}}),
        "identifies",
        &[
            ("email", json!("a@b.c")),
            ("first_name", json!("Ada")),
            ("trait_id", json!(5)),
            ("address_city", json!("Paris")),
        ],
    );
    check(
        json!({"type": "page", "userId": "u", "name": "Home", "category": "Docs",
                "properties": {"path": "/", "name": "Home"}}),
        "pages",
        &[
            ("name", json!("Home")),
            ("category", json!("Docs")),
            ("path", json!("/")),
            ("property_name", json!("Home")),
        ],
    );
    check(
        json!({"type": "screen", "userId": "u", "name": "Cart"}),
        "screens",
        &[("name", json!("Cart"))],
    );
    check(
        json!({"type": "group", "userId": "u", "groupId": "g1", "traits": {"plan": "pro", "employees": 10}}),
        "groups",
        &[
            ("group_id", json!("g1")),
            ("plan", json!("pro")),
            ("employees", json!(10)),
        ],
    );
    check(
        json!({"type": "alias", "userId": "u", "previousId": "old"}),
        "aliases",
        &[("previous_id", json!("old")), ("user_id", json!("u"))],
    );
    assert!(rows_for("m", &json!({"type": "mystery"})).is_empty());
    assert!(rows_for("m", &json!({"event": "no type"})).is_empty());
}

#[test]
fn values_fit_their_column_types() {
    let text = ColumnType::Text;
    let cases: Vec<(ColumnType, Value, Option<Value>)> = vec![
        (text, json!("a"), Some(json!("a"))),
        (text, json!("a\u{0}b"), Some(json!("ab"))),
        (text, json!(5), Some(json!("5"))),
        (text, json!(true), Some(json!("true"))),
        (ColumnType::Boolean, json!(true), Some(json!(true))),
        (ColumnType::Boolean, json!("true"), None),
        (ColumnType::Boolean, json!(1), None),
        (ColumnType::Numeric, json!(1.5), Some(json!(1.5))),
        (ColumnType::Numeric, json!("1.5"), None),
        (
            ColumnType::from_data_type("integer"),
            json!(7),
            Some(json!(7)),
        ),
        (ColumnType::from_data_type("integer"), json!(7.5), None),
        (
            ColumnType::from_data_type("integer"),
            json!(5_000_000_000i64),
            None,
        ),
        (
            ColumnType::from_data_type("bigint"),
            json!(5_000_000_000i64),
            Some(json!(5_000_000_000i64)),
        ),
        (
            ColumnType::Timestamp,
            json!("2026-11-25T16:00:00+02:00"),
            Some(json!("2026-11-25T14:00:00.000Z")),
        ),
        (ColumnType::Timestamp, json!("yesterday"), None),
        (ColumnType::Timestamp, json!(1764079200), None),
        (ColumnType::Json, json!("x"), Some(json!("x"))),
        (ColumnType::Json, json!(3), Some(json!(3))),
        (ColumnType::from_data_type("uuid"), json!("x"), None),
    ];
    for (ty, value, expected) in cases {
        assert_eq!(fit(ty, &value), expected, "{ty:?} {value}");
    }
    assert_eq!(infer_type(&json!(true)), "boolean");
    assert_eq!(infer_type(&json!(1)), "numeric");
    assert_eq!(infer_type(&json!(1.5)), "numeric");
    assert_eq!(infer_type(&json!("2026-11-25T14:00:00Z")), "text");
    assert_eq!(
        ColumnType::from_data_type("character varying"),
        ColumnType::Text
    );
    assert_eq!(Column::new("character varying").sql_type, "text");
    assert_eq!(
        Column::new("timestamp with time zone").sql_type,
        "timestamp with time zone"
    );
}

fn existing(columns: &[(&str, &str)]) -> Columns {
    columns
        .iter()
        .map(|(name, ty)| ((*name).to_owned(), Column::new(ty)))
        .collect()
}

#[test]
fn placement_adds_columns_and_falls_back_to_text() {
    let row = |id: &str, values: Value| Row {
        table: "t".into(),
        kind: TableKind::Event,
        values: values
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .chain([("id".to_owned(), json!(id))])
            .collect(),
    };
    let tables: HashMap<String, Columns> = [(
        "t".to_owned(),
        existing(&[
            ("id", "text"),
            ("price", "numeric"),
            ("sent_at", "timestamp with time zone"),
            ("flag", "boolean"),
            ("flag_text", "integer"),
        ]),
    )]
    .into();
    let rows = vec![
        row(
            "1",
            json!({"price": 5, "color": "red", "sent_at": "2026-11-25T14:00:00Z"}),
        ),
        row(
            "2",
            json!({"price": "cheap", "color": 3, "sent_at": "not a time", "qty": 2}),
        ),
        row("3", json!({"qty": "two", "flag": "yes"})),
        // The same id again in one batch: written once.
        row("1", json!({"price": 6})),
    ];
    let plan = plan(&rows, &tables);
    assert_eq!(
        plan.additions["t"],
        vec![
            ("color".to_owned(), "text"),
            ("price_text".to_owned(), "text"),
            ("qty".to_owned(), "numeric"),
            ("sent_at_text".to_owned(), "text"),
            ("flag_text_text".to_owned(), "text"),
            ("qty_text".to_owned(), "text"),
        ]
    );
    let inserted = &plan.inserts["t"];
    assert_eq!(inserted.len(), 3);
    assert_eq!(
        serde_json::to_value(inserted).unwrap(),
        json!([
            {"id": "1", "price": 5, "color": "red", "sent_at": "2026-11-25T14:00:00.000Z"},
            {"id": "2", "price_text": "cheap", "color": "3", "sent_at_text": "not a time", "qty": 2},
            {"id": "3", "qty_text": "two", "flag_text_text": "yes"},
        ])
    );
    // Once the columns exist, the same rows need no more.
    let mut after = tables.clone();
    for (name, ty) in &plan.additions["t"] {
        after
            .get_mut("t")
            .unwrap()
            .insert(name.clone(), Column::new(ty));
    }
    let again = super::rows::plan(&rows, &after);
    assert!(again.additions.is_empty());
    assert_eq!(again.inserts, plan.inserts);
}

#[test]
fn a_full_table_drops_values_instead_of_failing() {
    let mut columns = existing(&[("id", "text")]);
    for n in 0..MAX_COLUMNS {
        columns.insert(format!("c{n}"), Column::new("text"));
    }
    let tables: HashMap<String, Columns> = [("t".to_owned(), columns)].into();
    let row = Row {
        table: "t".into(),
        kind: TableKind::Event,
        values: [("id".to_owned(), json!("1")), ("new".to_owned(), json!(1))].into(),
    };
    let plan = plan(&[row], &tables);
    assert!(plan.additions.is_empty());
    assert_eq!(plan.dropped, 1);
    assert_eq!(
        plan.inserts["t"],
        vec![[("id".to_owned(), json!("1"))].into()]
    );
}

#[test]
fn insert_statement_quotes_and_types() {
    let columns = existing(&[
        ("id", "text"),
        ("received_at", "timestamp with time zone"),
        ("we\"ird", "numeric"),
    ]);
    let rows = vec![
        [
            ("id".to_owned(), json!("1")),
            ("we\"ird".to_owned(), json!(2)),
        ]
        .into(),
        [
            ("id".to_owned(), json!("2")),
            ("received_at".to_owned(), json!("2026-11-25T14:00:00.000Z")),
        ]
        .into(),
    ];
    let (sql, param) = insert_statement("my schema", "t", &columns, &rows);
    assert_eq!(
        sql,
        "INSERT INTO \"my schema\".\"t\" (\"id\", \"received_at\", \"we\"\"ird\") \
         SELECT \"id\", \"received_at\", \"we\"\"ird\" FROM json_to_recordset($1::json) \
         AS r(\"id\" text, \"received_at\" timestamp with time zone, \"we\"\"ird\" numeric) \
         ON CONFLICT (id) DO NOTHING"
    );
    assert_eq!(
        serde_json::from_str::<Value>(&param).unwrap(),
        json!([{"id": "1", "we\"ird": 2}, {"id": "2", "received_at": "2026-11-25T14:00:00.000Z"}])
    );
}

#[test]
fn sqlstates() {
    for code in [
        "42501", "42P10", "22P02", "23502", "42601", "0A000", "54011",
    ] {
        assert!(permanent_sqlstate(code), "{code} is permanent");
    }
    for code in [
        "08006", "08001", "57P01", "57014", "53300", "40001", "40P01", "28P01", "3D000", "42703",
        "42P01", "23505", "XX000", "",
    ] {
        assert!(!permanent_sqlstate(code), "{code} is retryable");
    }
}

#[tokio::test]
async fn settings_validation_and_redaction() {
    let bad = [
        json!({}),
        json!({"url": "mysql://u@h/db"}),
        json!({"url": "postgres://u@h:notaport/db"}),
        json!({"url": "postgres://u@h/db", "schema": ""}),
        json!({"url": "postgres://u@h/db", "schema": "x".repeat(64)}),
        json!({"url": "postgres://u@h/db", "batchSize": 0}),
        json!({"url": "postgres://u@h/db", "batchSize": 10_001}),
        json!({"url": "postgres://u@h/db", "connectTimeoutMs": 5}),
        json!({"url": "postgres://u@h/db", "table": "x"}),
    ];
    for settings in bad {
        assert!(
            PostgresType.validate(&settings, &ctx()).is_err(),
            "{settings}"
        );
    }
    let err = PostgresType
        .validate(&json!({"url": "postgres://u:hunter2@h:x/db"}), &ctx())
        .unwrap_err();
    assert!(!err.contains("hunter2"), "{err}");
    let ok = PostgresType
        .validate(&json!({"url": "postgres://u:pw@127.0.0.1/test"}), &ctx())
        .unwrap();
    assert_eq!(
        ok,
        json!({"url": "postgres://u:pw@127.0.0.1/test", "schema": "sluice", "batchSize": 500, "connectTimeoutMs": 10000})
    );
    let shown = redact(&PostgresType, &ok);
    assert_eq!(
        shown["url"],
        format!("postgres://u:{REDACTED}@127.0.0.1/test")
    );
    let mut back = shown.clone();
    back["schema"] = json!("other");
    restore_secrets(&PostgresType, &mut back, &ok);
    assert_eq!(back["url"], "postgres://u:pw@127.0.0.1/test");
    assert_eq!(back["schema"], "other");
    // Building connects to nothing.
    let dest = PostgresType.build(&ok, &ctx()).unwrap();
    assert_eq!(dest.max_batch(), 500);
}

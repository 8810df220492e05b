//! From events to warehouse rows: table and column names, flattening, and the type rules.
//!
//! Everything here is pure: the database side (`mod.rs`) asks which rows an event makes
//! ([`rows_for`]), then, knowing the columns that exist, where each value goes ([`plan`]).

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;

use crate::clock;

/// Longest identifier PostgreSQL keeps (`NAMEDATALEN - 1` bytes); longer ones are cut here so
/// that the name we remember is the name the database has.
pub const MAX_IDENT: usize = 63;

/// At most this many columns per table (PostgreSQL's hard limit is 1,600). Values that would
/// need more are left out, with a warning.
pub const MAX_COLUMNS: usize = 1_500;

/// Tables of the event types; a track event named like one of these gets a `_` prefix.
pub const RESERVED_TABLES: &[&str] = &[
    "tracks",
    "identifies",
    "pages",
    "screens",
    "groups",
    "aliases",
    "users",
    "accounts",
];

/// `Order Completed` → `order_completed`, `orderId` → `order_id`, `HTTPStatus` → `http_status`:
/// words split at non-alphanumerics and at lower→upper case changes, lower-cased, joined by `_`.
/// Non-ASCII letters are kept (lower-cased).
pub fn snake_case(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    let mut out = String::with_capacity(name.len() + 4);
    for (i, &c) in chars.iter().enumerate() {
        if !c.is_alphanumeric() {
            if !out.is_empty() && !out.ends_with('_') {
                out.push('_');
            }
            continue;
        }
        if c.is_uppercase() {
            let prev = i.checked_sub(1).map(|j| chars[j]);
            let next = chars.get(i + 1);
            let boundary = match prev {
                Some(p) if p.is_lowercase() => true,
                // `item2Name` → `item2_name`, but `2FA` → `2fa`, `HTTPStatus` → `http_status`.
                Some(p) if p.is_uppercase() || p.is_numeric() => {
                    next.is_some_and(|n| n.is_lowercase())
                }
                _ => false,
            };
            if boundary && !out.is_empty() && !out.ends_with('_') {
                out.push('_');
            }
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
    }
    while out.ends_with('_') {
        out.pop();
    }
    out
}

/// A snake_case name made a safe identifier: `_` in front of a leading digit, cut to
/// [`MAX_IDENT`] bytes. `None` when nothing is left.
pub fn identifier(snake: &str) -> Option<String> {
    if snake.is_empty() {
        return None;
    }
    let mut name = if snake.starts_with(|c: char| c.is_ascii_digit()) {
        format!("_{snake}")
    } else {
        snake.to_owned()
    };
    truncate(&mut name, MAX_IDENT);
    Some(name)
}

fn truncate(name: &mut String, max: usize) {
    if name.len() > max {
        let mut end = max;
        while !name.is_char_boundary(end) {
            end -= 1;
        }
        name.truncate(end);
    }
}

/// The table of a track event: `order_completed`; `_pages` for an event named `Pages`;
/// `unnamed_event` for a name with no letters or digits.
pub fn event_table(event: &str) -> String {
    let name = identifier(&snake_case(event)).unwrap_or_else(|| "unnamed_event".into());
    if RESERVED_TABLES.contains(&name.as_str()) {
        format!("_{name}")
    } else {
        name
    }
}

/// The column that receives values that do not fit `column`'s type: `<column>_text`.
pub fn text_column(column: &str) -> String {
    let mut base = column.to_owned();
    truncate(&mut base, MAX_IDENT - "_text".len());
    base.push_str("_text");
    base
}

/// What a table holds, which decides its standard columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableKind {
    /// `tracks`: every track event, without its properties.
    Tracks,
    /// One table per track event name, with the properties.
    Event,
    Identifies,
    Pages,
    Screens,
    Groups,
    Aliases,
}

/// Columns every table has, created with the table.
const COMMON: &[(&str, &str)] = &[
    ("id", "text PRIMARY KEY"),
    ("received_at", "timestamptz"),
    ("sent_at", "timestamptz"),
    ("timestamp", "timestamptz"),
    ("original_timestamp", "timestamptz"),
    ("user_id", "text"),
    ("anonymous_id", "text"),
    ("uuid_ts", "timestamptz DEFAULT now()"),
];

impl TableKind {
    /// Standard columns besides [`COMMON`], with their SQL types.
    fn extra(self) -> &'static [(&'static str, &'static str)] {
        match self {
            TableKind::Tracks | TableKind::Event => &[("event", "text"), ("event_text", "text")],
            TableKind::Pages | TableKind::Screens => &[("name", "text"), ("category", "text")],
            TableKind::Groups => &[("group_id", "text")],
            TableKind::Aliases => &[("previous_id", "text")],
            TableKind::Identifies => &[],
        }
    }

    /// `(name, SQL type)` of the columns the table is created with.
    pub fn standard_columns(self) -> impl Iterator<Item = (&'static str, &'static str)> {
        COMMON.iter().chain(self.extra()).copied()
    }

    fn is_standard(self, column: &str) -> bool {
        self.standard_columns().any(|(name, _)| name == column)
    }
}

/// One row to write: the table, and values by column name (before type checks).
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub table: String,
    pub kind: TableKind,
    pub values: BTreeMap<String, Value>,
}

/// The rows an event makes: `tracks` and its event table for a track, one row otherwise.
/// An event of an unknown type makes none.
pub fn rows_for(message_id: &str, event: &Value) -> Vec<Row> {
    let Some(kind) = event.get("type").and_then(Value::as_str) else {
        return Vec::new();
    };
    let mut base = BTreeMap::new();
    base.insert("id".to_owned(), Value::String(message_id.to_owned()));
    for (field, column) in [
        ("receivedAt", "received_at"),
        ("sentAt", "sent_at"),
        ("timestamp", "timestamp"),
        ("originalTimestamp", "original_timestamp"),
        ("userId", "user_id"),
        ("anonymousId", "anonymous_id"),
    ] {
        put_scalar(&mut base, column, event.get(field));
    }
    if let Some(context) = event.get("context") {
        // Standard columns win over `context_*` ones; none start with `context_`, so they
        // cannot collide.
        flatten("context", context, &mut base);
    }
    let row = |table: &str, kind: TableKind, values: BTreeMap<String, Value>| Row {
        table: table.to_owned(),
        kind,
        values,
    };
    match kind {
        "track" => {
            let name = match event.get("event") {
                Some(Value::String(s)) => s.clone(),
                Some(other) if !other.is_null() => other.to_string(),
                _ => String::new(),
            };
            let table = event_table(&name);
            base.insert("event".into(), Value::String(table.clone()));
            base.insert("event_text".into(), Value::String(name));
            let mut with_properties = base.clone();
            add_object(
                &mut with_properties,
                TableKind::Event,
                "property",
                event.get("properties"),
            );
            vec![
                row("tracks", TableKind::Tracks, base),
                row(&table, TableKind::Event, with_properties),
            ]
        }
        "page" | "screen" => {
            let (table, kind) = if kind == "page" {
                ("pages", TableKind::Pages)
            } else {
                ("screens", TableKind::Screens)
            };
            put_scalar(&mut base, "name", event.get("name"));
            put_scalar(&mut base, "category", event.get("category"));
            add_object(&mut base, kind, "property", event.get("properties"));
            vec![row(table, kind, base)]
        }
        "identify" => {
            add_object(
                &mut base,
                TableKind::Identifies,
                "trait",
                event.get("traits"),
            );
            vec![row("identifies", TableKind::Identifies, base)]
        }
        "group" => {
            put_scalar(&mut base, "group_id", event.get("groupId"));
            add_object(&mut base, TableKind::Groups, "trait", event.get("traits"));
            vec![row("groups", TableKind::Groups, base)]
        }
        "alias" => {
            put_scalar(&mut base, "previous_id", event.get("previousId"));
            vec![row("aliases", TableKind::Aliases, base)]
        }
        _ => Vec::new(),
    }
}

/// A top-level field into a standard column: strings as they are, other scalars as their JSON
/// text, null or missing left out.
fn put_scalar(values: &mut BTreeMap<String, Value>, column: &str, value: Option<&Value>) {
    match value {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => {
            values.insert(column.to_owned(), Value::String(s.clone()));
        }
        Some(other) => {
            values.insert(column.to_owned(), Value::String(other.to_string()));
        }
    }
}

/// Properties or traits, flattened into the row. A column that would collide with a standard
/// column or a `context_*` one gets a prefix (`property_name`, `trait_id`).
fn add_object(
    values: &mut BTreeMap<String, Value>,
    kind: TableKind,
    prefix: &str,
    object: Option<&Value>,
) {
    let Some(object @ Value::Object(_)) = object else {
        return;
    };
    let mut flat = BTreeMap::new();
    flatten("", object, &mut flat);
    for (column, value) in flat {
        let column = if kind.is_standard(&column) || column.starts_with("context_") {
            let mut prefixed = format!("{prefix}_{column}");
            truncate(&mut prefixed, MAX_IDENT);
            prefixed
        } else {
            column
        };
        values.entry(column).or_insert(value);
    }
}

/// Flatten nested objects into `a_b_c` columns; arrays become their JSON text; nulls are left
/// out. When two keys give the same column name the first one (in key order) is kept.
pub fn flatten(prefix: &str, value: &Value, out: &mut BTreeMap<String, Value>) {
    match value {
        Value::Null => {}
        Value::Object(map) => {
            for (key, child) in map {
                let snake = snake_case(key);
                if snake.is_empty() {
                    continue;
                }
                let path = if prefix.is_empty() {
                    snake
                } else {
                    format!("{prefix}_{snake}")
                };
                flatten(&path, child, out);
            }
        }
        Value::Array(_) => {
            if let Some(column) = identifier(prefix) {
                out.entry(column)
                    .or_insert_with(|| Value::String(value.to_string()));
            }
        }
        scalar => {
            if let Some(column) = identifier(prefix) {
                out.entry(column).or_insert_with(|| scalar.clone());
            }
        }
    }
}

/// The types Sluice knows how to write into, from `information_schema.columns.data_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    Text,
    Boolean,
    /// `numeric`, `double precision`: any JSON number.
    Numeric,
    /// `smallint`, `integer`, `bigint`: whole numbers within range.
    Integer {
        max: i64,
    },
    /// `timestamp with(out) time zone`: RFC 3339 strings.
    Timestamp,
    /// `json`, `jsonb`: anything.
    Json,
    /// Anything else (a column someone else made): nothing is written into it.
    Other,
}

impl ColumnType {
    pub fn from_data_type(data_type: &str) -> ColumnType {
        match data_type {
            "text" | "character varying" | "character" => ColumnType::Text,
            "boolean" => ColumnType::Boolean,
            "numeric" | "double precision" => ColumnType::Numeric,
            "smallint" => ColumnType::Integer {
                max: i16::MAX.into(),
            },
            "integer" => ColumnType::Integer {
                max: i32::MAX.into(),
            },
            "bigint" => ColumnType::Integer { max: i64::MAX },
            "timestamp with time zone" | "timestamp without time zone" => ColumnType::Timestamp,
            "json" | "jsonb" => ColumnType::Json,
            _ => ColumnType::Other,
        }
    }
}

/// The SQL type of a new column for this value: `boolean`, `numeric`, or `text` for strings
/// (timestamps are not guessed) and everything else.
pub fn infer_type(value: &Value) -> &'static str {
    match value {
        Value::Bool(_) => "boolean",
        Value::Number(_) => "numeric",
        _ => "text",
    }
}

/// The value as it is written into a column of type `ty`, or `None` if it does not fit.
pub fn fit(ty: ColumnType, value: &Value) -> Option<Value> {
    match (ty, value) {
        (ColumnType::Text, Value::String(s)) => Some(Value::String(without_nul(s))),
        (ColumnType::Text, Value::Bool(_) | Value::Number(_)) => {
            Some(Value::String(value.to_string()))
        }
        (ColumnType::Boolean, Value::Bool(_)) => Some(value.clone()),
        (ColumnType::Numeric, Value::Number(_)) => Some(value.clone()),
        (ColumnType::Integer { max }, Value::Number(n)) => n
            .as_i64()
            .filter(|i| i.unsigned_abs() <= max.unsigned_abs())
            .map(Value::from),
        // Written back in one unambiguous form, so the database reads what we checked.
        (ColumnType::Timestamp, Value::String(s)) => {
            clock::parse_ms(s).map(|ms| Value::String(clock::format_ms(ms)))
        }
        (ColumnType::Json, Value::String(s)) => Some(Value::String(without_nul(s))),
        (ColumnType::Json, _) => Some(value.clone()),
        _ => None,
    }
}

/// PostgreSQL text cannot hold NUL characters.
fn without_nul(s: &str) -> String {
    if s.contains('\0') {
        s.replace('\0', "")
    } else {
        s.to_owned()
    }
}

/// A column as the database has it: its type, and the SQL type name to read it as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub ty: ColumnType,
    pub sql_type: String,
}

impl Column {
    pub fn new(data_type: &str) -> Column {
        let ty = ColumnType::from_data_type(data_type);
        let sql_type = match ty {
            // Read as text; the insert converts to the column's own character type.
            ColumnType::Text => "text".to_owned(),
            _ => data_type.to_owned(),
        };
        Column { ty, sql_type }
    }
}

/// The columns of each table, as last read from the database.
pub type Columns = HashMap<String, Column>;

/// Where a batch's values go, given the columns that exist.
#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    /// Columns to add first: table → `(column, SQL type)`.
    pub additions: BTreeMap<String, Vec<(String, &'static str)>>,
    /// Rows to insert per table, values converted for their columns; one row per id.
    pub inserts: BTreeMap<String, Vec<BTreeMap<String, Value>>>,
    /// Values left out because their table is full.
    pub dropped: usize,
}

/// Place every value of every row. A value goes into its column when it fits the column's
/// type; otherwise into `<column>_text` (as text), and so on. A column that does not exist is
/// planned as an addition with the type of the first value that needs it.
pub fn plan(rows: &[Row], tables: &HashMap<String, Columns>) -> Plan {
    let mut plan = Plan::default();
    let mut planned: HashMap<&str, Columns> = HashMap::new();
    let mut seen: HashMap<&str, std::collections::HashSet<&str>> = HashMap::new();
    let empty = Columns::new();
    for row in rows {
        let id = row.values.get("id").and_then(Value::as_str).unwrap_or("");
        if !seen.entry(&row.table).or_default().insert(id) {
            continue;
        }
        let existing = tables.get(&row.table).unwrap_or(&empty);
        let new = planned.entry(&row.table).or_default();
        let mut out = BTreeMap::new();
        for (column, value) in &row.values {
            let mut candidate = column.clone();
            // `x`, `x_text`, `x_text_text`: the chain ends at the first column that takes the
            // value or does not exist yet.
            for round in 0..3 {
                match existing.get(&candidate).or_else(|| new.get(&candidate)) {
                    Some(col) => {
                        if let Some(v) = fit(col.ty, value) {
                            out.insert(candidate, v);
                            break;
                        }
                        candidate = text_column(&candidate);
                    }
                    None => {
                        if existing.len() + new.len() >= MAX_COLUMNS {
                            plan.dropped += 1;
                            break;
                        }
                        let sql_type = if round == 0 {
                            infer_type(value)
                        } else {
                            "text"
                        };
                        let col = Column::new(sql_type);
                        let v = fit(col.ty, value).expect("a new column takes its own value");
                        new.insert(candidate.clone(), col);
                        plan.additions
                            .entry(row.table.clone())
                            .or_default()
                            .push((candidate.clone(), sql_type));
                        out.insert(candidate, v);
                        break;
                    }
                }
            }
        }
        plan.inserts.entry(row.table.clone()).or_default().push(out);
    }
    plan
}

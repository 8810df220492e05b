//! The `postgres` destination: events as warehouse tables, like Segment's warehouse schema.
//!
//! # Tables
//!
//! In the configured schema (default `sluice`, created if missing): `tracks` (every track
//! event, without properties), one table per track event name (`Order Completed` →
//! `order_completed`, with the properties), `identifies` and `groups` (with the traits),
//! `pages` and `screens` (with the properties), `aliases`. Every table has `id` (the
//! messageId, primary key), `received_at`, `sent_at`, `timestamp`, `original_timestamp`
//! (`timestamptz`), `user_id`, `anonymous_id`, `uuid_ts` (when the row was loaded), and the
//! context flattened into `context_*` columns (`context_ip`, `context_library_name`, …).
//! Naming, flattening and the type rules are in `rows.rs`.
//!
//! # Columns appear as values do
//!
//! The columns of each table are read from `information_schema` once and remembered. A batch
//! with a value for a column that does not exist adds it first (`ALTER TABLE … ADD COLUMN IF
//! NOT EXISTS`), then the columns are read again, so a concurrent writer or a column someone
//! created by hand with another type is seen as it really is. A value that does not fit its
//! column's type goes to `<column>_text` instead; no value fails a batch.
//!
//! # Idempotent batches
//!
//! A batch is written with one `INSERT … SELECT … FROM json_to_recordset($1) ON CONFLICT (id)
//! DO NOTHING` per table (the rows travel as one JSON parameter, so there is no limit on rows
//! per statement and the database converts the types). Each statement is atomic; the tables
//! of a batch are written two at a time on separate connections, not in one transaction,
//! because idempotency makes that unnecessary: a batch retried after a timeout or a failure
//! half-way, or delivered again after a crash, fills in what is missing and adds no row twice.
//!
//! # Errors
//!
//! Connection failures, timeouts, a lost connection, authentication failures, missing
//! databases, lock and resource errors are retryable: they are about the database, not the
//! batch, and the batch goes through once they are fixed. A permission denied (on the schema or
//! one table), data the database refuses, or a table without a primary key on `id` is
//! permanent: the batch goes to the dead-letter store, where it can be replayed after the fix.
//! On any error the remembered columns are forgotten and read again.

mod config;
pub mod rows;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;
use serde_json::Value;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::{AssertSqlSafe, Row as _};

pub use config::PostgresConfig;
use rows::{Column, Columns, Row, TableKind};

use super::{
    BuildContext, DeletionError, DeliveryError, Destination, DestinationType, parse_settings,
};
use crate::log::Record;

/// Tables written at the same time, each on its own connection.
const CONCURRENT_TABLES: usize = 2;

pub struct PostgresType;

impl DestinationType for PostgresType {
    fn name(&self) -> &'static str {
        "postgres"
    }

    fn description(&self) -> &'static str {
        "PostgreSQL warehouse tables per event type and track event, like Segment's warehouse schema"
    }

    fn validate(&self, settings: &Value, _ctx: &BuildContext) -> Result<Value, String> {
        let config: PostgresConfig = parse_settings(self.name(), settings)?;
        config.validate()?;
        serde_json::to_value(config).map_err(|e| e.to_string())
    }

    fn secret_paths(&self) -> &'static [&'static str] {
        &["/url#password"]
    }

    fn build(&self, settings: &Value, _ctx: &BuildContext) -> Result<Arc<dyn Destination>, String> {
        let config: PostgresConfig = parse_settings(self.name(), settings)?;
        config.validate()?;
        Ok(Arc::new(Postgres::new(&config)?))
    }
}

pub struct Postgres {
    pool: PgPool,
    schema: String,
    batch_size: usize,
    /// `host:port/database`, for messages (never the URL: it may hold a password).
    target: String,
    connect_timeout: Duration,
    state: tokio::sync::Mutex<State>,
}

#[derive(Default)]
struct State {
    schema_ready: bool,
    tables: HashMap<String, Columns>,
}

/// Quote an identifier for SQL: `"name"`, with inner quotes doubled.
pub fn quote(identifier: &str) -> String {
    format!("\"{}\"", identifier.replace('"', "\"\""))
}

impl Postgres {
    /// A destination with a lazy pool: nothing connects until the first batch.
    pub fn new(config: &PostgresConfig) -> Result<Postgres, String> {
        // The pool starts its housekeeping task at once.
        if tokio::runtime::Handle::try_current().is_err() {
            return Err("a postgres destination is built inside the Tokio runtime".into());
        }
        let options = config
            .connect_options()?
            .application_name("sluice")
            .options([("statement_timeout", "60000")]);
        let target = format!(
            "{}:{}/{}",
            options.get_host(),
            options.get_port(),
            options.get_database().unwrap_or("")
        );
        let connect_timeout = Duration::from_millis(config.connect_timeout_ms);
        let pool = PgPoolOptions::new()
            .max_connections(CONCURRENT_TABLES as u32 + 1)
            .acquire_timeout(connect_timeout)
            .idle_timeout(Duration::from_secs(60))
            .connect_lazy_with(options);
        Ok(Postgres {
            pool,
            schema: config.schema.clone(),
            batch_size: config.batch_size,
            target,
            connect_timeout,
            state: tokio::sync::Mutex::new(State::default()),
        })
    }

    fn table(&self, table: &str) -> String {
        format!("{}.{}", quote(&self.schema), quote(table))
    }

    /// A database error as a delivery error, saying what we were doing.
    fn failure(&self, doing: &str, error: sqlx::Error) -> DeliveryError {
        let target = &self.target;
        match error {
            sqlx::Error::Database(db) => {
                let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
                let message = format!(
                    "{doing} in PostgreSQL {target}: {} (SQLSTATE {code})",
                    db.message()
                );
                if permanent_sqlstate(&code) {
                    DeliveryError::permanent(message)
                } else {
                    DeliveryError::retryable(message)
                }
            }
            sqlx::Error::PoolTimedOut => DeliveryError::retryable(format!(
                "{doing}: no connection to PostgreSQL {target} within {} ms; is it running and reachable?",
                self.connect_timeout.as_millis()
            )),
            sqlx::Error::Configuration(e) => DeliveryError::permanent(format!(
                "{doing}: the PostgreSQL settings are not usable: {e}"
            )),
            other => DeliveryError::retryable(format!("{doing} in PostgreSQL {target}: {other}")),
        }
    }

    async fn ensure_schema(&self) -> Result<(), DeliveryError> {
        // `CREATE SCHEMA IF NOT EXISTS` needs the CREATE privilege even when the schema exists,
        // so look first: a user may be given an existing schema and no more.
        let exists = sqlx::query("SELECT 1 FROM pg_namespace WHERE nspname = $1")
            .bind(&self.schema)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| self.failure("looking up the schema", e))?
            .is_some();
        if !exists {
            let sql = format!("CREATE SCHEMA IF NOT EXISTS {}", quote(&self.schema));
            sqlx::query(AssertSqlSafe(sql))
                .execute(&self.pool)
                .await
                .map_err(|e| {
                    self.failure(&format!("creating schema {}", quote(&self.schema)), e)
                })?;
        }
        Ok(())
    }

    /// The columns of these tables, for those that exist.
    async fn load_columns(
        &self,
        tables: &[String],
    ) -> Result<HashMap<String, Columns>, DeliveryError> {
        let found = sqlx::query(
            "SELECT table_name::text, column_name::text, data_type::text FROM information_schema.columns \
             WHERE table_schema = $1 AND table_name = ANY($2)",
        )
        .bind(&self.schema)
        .bind(tables)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| self.failure("reading the table columns", e))?;
        let mut out: HashMap<String, Columns> = HashMap::new();
        for row in found {
            let table: String = row.get(0);
            let column: String = row.get(1);
            let data_type: String = row.get(2);
            out.entry(table)
                .or_default()
                .insert(column, Column::new(&data_type));
        }
        Ok(out)
    }

    async fn create_table(&self, table: &str, kind: TableKind) -> Result<(), DeliveryError> {
        let columns: Vec<String> = kind
            .standard_columns()
            .map(|(name, ty)| format!("{} {ty}", quote(name)))
            .collect();
        let sql = format!(
            "CREATE TABLE IF NOT EXISTS {} ({})",
            self.table(table),
            columns.join(", ")
        );
        sqlx::query(AssertSqlSafe(sql))
            .execute(&self.pool)
            .await
            .map_err(|e| self.failure(&format!("creating table {}", self.table(table)), e))?;
        Ok(())
    }

    async fn add_columns(
        &self,
        table: &str,
        columns: &[(String, &'static str)],
    ) -> Result<(), DeliveryError> {
        let clauses: Vec<String> = columns
            .iter()
            .map(|(name, ty)| format!("ADD COLUMN IF NOT EXISTS {} {ty}", quote(name)))
            .collect();
        let sql = format!("ALTER TABLE {} {}", self.table(table), clauses.join(", "));
        sqlx::query(AssertSqlSafe(sql))
            .execute(&self.pool)
            .await
            .map_err(|e| self.failure(&format!("adding columns to {}", self.table(table)), e))?;
        Ok(())
    }

    /// Make sure the schema and every table the rows need exist, and know their columns.
    async fn prepare(&self, state: &mut State, rows: &[Row]) -> Result<(), DeliveryError> {
        if !state.schema_ready {
            self.ensure_schema().await?;
            state.schema_ready = true;
        }
        let mut kinds: HashMap<&str, TableKind> = HashMap::new();
        for row in rows {
            kinds.entry(&row.table).or_insert(row.kind);
        }
        let missing: Vec<String> = kinds
            .keys()
            .filter(|t| !state.tables.contains_key(**t))
            .map(|t| (*t).to_owned())
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let mut found = self.load_columns(&missing).await?;
        let absent: Vec<String> = missing
            .into_iter()
            .filter(|t| !found.contains_key(t))
            .collect();
        for table in &absent {
            self.create_table(table, kinds[table.as_str()]).await?;
        }
        if !absent.is_empty() {
            found.extend(self.load_columns(&absent).await?);
        }
        state.tables.extend(found);
        Ok(())
    }

    async fn write(&self, state: &mut State, rows: &[Row]) -> Result<(), DeliveryError> {
        self.prepare(state, rows).await?;
        // Adding columns and reading them back settles in one round unless someone else is
        // changing the same tables at the same time.
        for _ in 0..4 {
            let plan = rows::plan(rows, &state.tables);
            if plan.additions.is_empty() {
                if plan.dropped > 0 {
                    tracing::warn!(schema = %self.schema, values = plan.dropped,
                        "Values left out: their table has reached the column limit.");
                }
                return self.insert(&state.tables, &plan.inserts).await;
            }
            let tables: Vec<String> = plan.additions.keys().cloned().collect();
            for (table, columns) in &plan.additions {
                self.add_columns(table, columns).await?;
            }
            state.tables.extend(self.load_columns(&tables).await?);
        }
        Err(DeliveryError::retryable(format!(
            "the tables in schema {} keep changing while columns are added; will try again",
            quote(&self.schema)
        )))
    }

    async fn insert(
        &self,
        tables: &HashMap<String, Columns>,
        inserts: &BTreeMap<String, Vec<BTreeMap<String, Value>>>,
    ) -> Result<(), DeliveryError> {
        // Built in a loop, not by closures, so the futures are plainly `Send`.
        let mut statements = Vec::with_capacity(inserts.len());
        for (table, rows) in inserts {
            let Some(columns) = tables.get(table) else {
                continue;
            };
            let (sql, json) = insert_statement(&self.schema, table, columns, rows);
            let statement: futures_util::future::BoxFuture<'_, Result<(), DeliveryError>> =
                Box::pin(async move {
                    sqlx::query(AssertSqlSafe(sql))
                        .bind(json)
                        .execute(&self.pool)
                        .await
                        .map(|_| ())
                        .map_err(|e| {
                            self.failure(&format!("inserting into {}", self.table(table)), e)
                        })
                });
            statements.push(statement);
        }
        let mut running =
            futures_util::stream::iter(statements).buffer_unordered(CONCURRENT_TABLES);
        while let Some(done) = running.next().await {
            done?;
        }
        Ok(())
    }
}

/// One statement inserting every row of a table, and its JSON parameter: the rows travel as a
/// JSON array that `json_to_recordset` turns into typed columns.
pub fn insert_statement(
    schema: &str,
    table: &str,
    columns: &Columns,
    rows: &[BTreeMap<String, Value>],
) -> (String, String) {
    let names: BTreeSet<&str> = rows
        .iter()
        .flat_map(|r| r.keys().map(String::as_str))
        .filter(|c| columns.contains_key(*c))
        .collect();
    let list: Vec<String> = names.iter().map(|c| quote(c)).collect();
    let list = list.join(", ");
    let definitions: Vec<String> = names
        .iter()
        .map(|c| format!("{} {}", quote(c), columns[*c].sql_type))
        .collect();
    let sql = format!(
        "INSERT INTO {}.{} ({list}) SELECT {list} FROM json_to_recordset($1::json) AS r({}) \
         ON CONFLICT (id) DO NOTHING",
        quote(schema),
        quote(table),
        definitions.join(", ")
    );
    let json = serde_json::to_string(rows).expect("JSON values always serialise");
    (sql, json)
}

/// Whether an SQLSTATE means the batch itself cannot be written (rather than the database being
/// unavailable or changing under us).
pub fn permanent_sqlstate(code: &str) -> bool {
    match code {
        // Tables or columns changed under us, or a race creating them: read them again.
        "42703" | "42P01" | "42804" | "42P07" | "42701" | "3F000" | "23505" => false,
        // Permission denied; ON CONFLICT (id) without a unique index on id.
        "42501" | "42P10" => true,
        _ => matches!(
            code.get(..2),
            // Data exceptions, integrity violations, statements the database will never
            // accept, unsupported features, program limits (e.g. too many columns).
            Some("22" | "23" | "42" | "0A" | "54")
        ),
    }
}

#[async_trait]
impl Destination for Postgres {
    async fn deliver(&self, records: &[Record]) -> Result<(), DeliveryError> {
        let mut rows = Vec::with_capacity(records.len() * 2);
        for record in records {
            match serde_json::from_slice::<Value>(&record.payload) {
                Ok(event) => rows.extend(rows::rows_for(&record.message_id, &event)),
                Err(error) => {
                    tracing::warn!(message_id = %record.message_id, %error, "Event is not JSON; skipped.");
                }
            }
        }
        if rows.is_empty() {
            return Ok(());
        }
        let mut state = self.state.lock().await;
        let result = self.write(&mut state, &rows).await;
        if result.is_err() {
            // Whatever went wrong, read the schema afresh next time.
            *state = State::default();
        }
        result
    }

    fn max_batch(&self) -> usize {
        self.batch_size
    }

    async fn delete_people(
        &self,
        user_ids: &[String],
        anonymous_ids: &[String],
    ) -> Result<u64, DeletionError> {
        let failed = |doing: &str, e: sqlx::Error| {
            DeletionError::Failed(match self.failure(doing, e) {
                DeliveryError::Retryable { message, .. } | DeliveryError::Permanent { message } => {
                    message
                }
            })
        };
        let found = sqlx::query(
            "SELECT c.table_name::text, bool_or(c.column_name = 'user_id'), bool_or(c.column_name = 'anonymous_id') \
             FROM information_schema.columns c JOIN information_schema.tables t \
               ON t.table_schema = c.table_schema AND t.table_name = c.table_name AND t.table_type = 'BASE TABLE' \
             WHERE c.table_schema = $1 AND c.column_name IN ('user_id', 'anonymous_id') \
             GROUP BY c.table_name ORDER BY c.table_name",
        )
        .bind(&self.schema)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| failed("listing the tables", e))?;
        let mut removed = 0;
        for row in found {
            let table: String = row.get(0);
            let mut conditions = Vec::new();
            if row.get::<bool, _>(1) && !user_ids.is_empty() {
                conditions.push("user_id = ANY($1)");
            }
            if row.get::<bool, _>(2) && !anonymous_ids.is_empty() {
                conditions.push("anonymous_id = ANY($2)");
            }
            if conditions.is_empty() {
                continue;
            }
            let sql = format!(
                "DELETE FROM {} WHERE {}",
                self.table(&table),
                conditions.join(" OR ")
            );
            let done = sqlx::query(AssertSqlSafe(sql))
                .bind(user_ids)
                .bind(anonymous_ids)
                .execute(&self.pool)
                .await
                .map_err(|e| failed(&format!("deleting from {}", self.table(&table)), e))?;
            removed += done.rows_affected();
        }
        Ok(removed)
    }
}

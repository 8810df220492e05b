//! Settings of the `postgres` destination.

use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sqlx::postgres::PgConnectOptions;

/// Largest `batchSize`.
pub const MAX_BATCH_SIZE: usize = 10_000;

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PostgresConfig {
    /// The database, as a `postgres://user:password@host:port/database` URL (query parameters
    /// such as `sslmode=require` are understood). The password is a secret: it is shown as
    /// `********` on read.
    pub url: String,
    /// The schema the tables are written to (default `sluice`); created if it does not exist.
    #[serde(default = "default_schema")]
    pub schema: String,
    /// Events written per batch, in one transaction (default 500).
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// How long to wait for a connection, in milliseconds (default 10 000). Past it the batch
    /// is retried later.
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
}

fn default_schema() -> String {
    "sluice".into()
}

fn default_batch_size() -> usize {
    500
}

fn default_connect_timeout_ms() -> u64 {
    10_000
}

impl PostgresConfig {
    pub fn validate(&self) -> Result<(), String> {
        self.connect_options()?;
        if self.schema.is_empty() || self.schema.len() > 63 || self.schema.contains('\0') {
            return Err("schema must be 1 to 63 bytes long".into());
        }
        if !(1..=MAX_BATCH_SIZE).contains(&self.batch_size) {
            return Err(format!("batchSize must be between 1 and {MAX_BATCH_SIZE}"));
        }
        if !(100..=300_000).contains(&self.connect_timeout_ms) {
            return Err("connectTimeoutMs must be between 100 and 300000".into());
        }
        Ok(())
    }

    /// The parsed URL. Errors never repeat the URL, which may hold a password.
    pub fn connect_options(&self) -> Result<PgConnectOptions, String> {
        if !(self.url.starts_with("postgres://") || self.url.starts_with("postgresql://")) {
            return Err("url must start with postgres:// or postgresql://".into());
        }
        PgConnectOptions::from_str(&self.url)
            .map_err(|e| format!("url is not a valid PostgreSQL URL: {e}"))
    }
}

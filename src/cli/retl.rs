//! `sluice retl …`: reverse ETL connections, models, consent and destination mappings, syncs
//! and runs, through the admin API (`/api/v1/retl`).
//!
//! `sluice retl sync MODEL --follow` polls the run and draws a progress bar (rows read out of
//! the previous run's count) with the counters as they grow, then prints the run's summary; it
//! exits non-zero when the run failed.

use std::collections::BTreeMap;
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};
use serde::Deserialize;
use serde_json::{Value, json};

use super::client::{Client, ClientError, encode};
use super::output::{Table, or_dash, print_json};
use super::{Connection, Output};

/// How often `sync --follow` polls the run.
const POLL_EVERY: Duration = Duration::from_millis(500);

/// `sluice retl …`
#[derive(Args, Debug)]
pub struct RetlArgs {
    #[command(flatten)]
    pub connection: Connection,
    #[command(flatten)]
    pub output: Output,
    #[command(subcommand)]
    pub command: RetlCommand,
}

#[derive(Subcommand, Debug)]
pub enum RetlCommand {
    /// Warehouse connections (PostgreSQL, MySQL/MariaDB, SQLite).
    #[command(subcommand)]
    Connections(ConnectionsCommand),
    /// Models: a query, its unique id column, consent and destination mappings.
    #[command(subcommand)]
    Models(ModelsCommand),
    /// Start a sync of a model; with --follow, show its progress until it ends.
    Sync {
        /// The model's id or name.
        model: String,
        /// Poll the run and draw a progress bar until it ends; exit non-zero if it failed.
        #[arg(long, short = 'f')]
        follow: bool,
    },
    /// A model's recent runs, newest first.
    Runs {
        /// The model's id or name.
        model: String,
    },
    /// One run with its counters and sampled record errors.
    Run {
        /// The run's id.
        run_id: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum ConnectionsCommand {
    /// List connections (passwords shown as ********).
    List,
    /// Create a connection.
    Create {
        /// A name, e.g. "Warehouse".
        #[arg(long)]
        name: String,
        /// postgres, mysql (MySQL or MariaDB) or sqlite.
        #[arg(long, value_enum)]
        kind: KindArg,
        /// e.g. postgres://user:password@host:5432/db, mysql://user:password@host:3306/db,
        /// sqlite:///path/to/file.db. (Named apart from `--url`, which is the Sluice server.)
        #[arg(long, value_name = "URL")]
        warehouse_url: String,
        /// Longest a model query may run, in seconds (default 300).
        #[arg(long, value_name = "SECONDS")]
        statement_timeout: Option<u32>,
    },
    /// Connect and run a read-only query; says what is wrong (host, credentials, database).
    Test {
        /// The connection's id or name.
        connection: String,
    },
    /// Delete a connection no model uses.
    Delete {
        /// The connection's id or name.
        connection: String,
    },
}

#[derive(ValueEnum, Debug, Clone, Copy)]
pub enum KindArg {
    Postgres,
    Mysql,
    Sqlite,
}

impl KindArg {
    fn as_str(self) -> &'static str {
        match self {
            KindArg::Postgres => "postgres",
            KindArg::Mysql => "mysql",
            KindArg::Sqlite => "sqlite",
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum ModelsCommand {
    /// List models with their last run.
    List,
    /// Show one model: columns, consent mapping, mappings, last run.
    Get {
        /// The model's id or name.
        model: String,
    },
    /// Create a model; the warehouse checks the query and the id column.
    Create {
        /// A name, e.g. "Users".
        #[arg(long)]
        name: String,
        /// The connection's id or name.
        #[arg(long)]
        connection: String,
        /// One SELECT statement, e.g. 'SELECT id, email, ads_consent FROM users'.
        #[arg(long)]
        query: String,
        /// A column with a unique, non-NULL value per row.
        #[arg(long, value_name = "COLUMN")]
        id_column: String,
        /// The column events take their userId from (default: the id column).
        #[arg(long, value_name = "COLUMN")]
        user_id_column: Option<String>,
        /// Sync every N seconds (default: only when asked).
        #[arg(long, value_name = "SECONDS")]
        every: Option<u32>,
        /// At most N records sent per sync (consent-filtered records do not count).
        #[arg(long, value_name = "N")]
        row_limit: Option<u64>,
    },
    /// Run the model's query and print its columns and first 10 rows.
    Preview {
        /// The model's id or name.
        model: String,
    },
    /// Set which column holds each consent category (owners), e.g. --column ads_consent=C0004.
    /// With no --column, consent is no longer enforced for the model.
    Consent {
        /// The model's id or name.
        model: String,
        /// COLUMN=CATEGORY_ID; repeat for several categories.
        #[arg(long = "column", value_name = "COLUMN=CATEGORY")]
        columns: Vec<String>,
    },
    /// Send the model's records to a destination, or with --connections into the event pipeline.
    Map {
        /// The model's id or name.
        model: String,
        /// The destination's id.
        #[arg(long, required_unless_present = "connections")]
        destination: Option<String>,
        /// Send identify/track events into the pipeline (consent decided by the router).
        #[arg(long, conflicts_with = "destination")]
        connections: bool,
        /// The source events are sent as (with --connections; default the first source).
        #[arg(long, requires = "connections")]
        source: Option<String>,
        /// identify or track.
        #[arg(long, value_enum, default_value = "identify")]
        operation: OperationArg,
        /// The event name, for track.
        #[arg(long)]
        event: Option<String>,
        /// Which changes to send (comma-separated): added, updated, deleted.
        #[arg(long, value_delimiter = ',', default_value = "added,updated")]
        on: Vec<String>,
    },
    /// Delete a model, its mappings, checkpoint and run history.
    Delete {
        /// The model's id or name.
        model: String,
    },
}

#[derive(ValueEnum, Debug, Clone, Copy)]
pub enum OperationArg {
    Identify,
    Track,
}

pub async fn run(args: RetlArgs) -> anyhow::Result<()> {
    let client = Client::new(&args.connection.url, args.connection.token.as_deref())?;
    let json = args.output.json;
    match args.command {
        RetlCommand::Connections(command) => connections(&client, command, json).await,
        RetlCommand::Models(command) => models(&client, command, json).await,
        RetlCommand::Sync { model, follow } => sync(&client, &model, follow, json).await,
        RetlCommand::Runs { model } => {
            let id = model_id(&client, &model).await?;
            let value = client
                .get_value(&format!("/api/v1/retl/models/{}/runs", encode(&id)))
                .await?;
            if json {
                print_json(&value);
                return Ok(());
            }
            let runs: Vec<RunSummary> = decode(value)?;
            let mut t = Table::new(&[
                "RUN",
                "STATUS",
                "TRIGGER",
                "STARTED",
                "EXTRACTED",
                "ADDED",
                "UPDATED",
                "DELETED",
                "FILTERED",
                "QUEUED",
                "FAILED",
            ]);
            for r in &runs {
                t.row(vec![
                    r.id.clone(),
                    r.status.clone(),
                    r.trigger.clone(),
                    r.started_at.clone(),
                    r.extracted.to_string(),
                    r.added.to_string(),
                    r.updated.to_string(),
                    r.deleted.to_string(),
                    r.filtered_by_consent.to_string(),
                    r.queued.to_string(),
                    r.failed.to_string(),
                ]);
            }
            t.print("No runs yet; start one with `sluice retl sync MODEL`.");
            Ok(())
        }
        RetlCommand::Run { run_id } => {
            let value = client
                .get_value(&format!("/api/v1/retl/runs/{}", encode(&run_id)))
                .await?;
            if json {
                print_json(&value);
            } else {
                print_run(&decode(value)?);
            }
            Ok(())
        }
    }
}

fn decode<T: serde::de::DeserializeOwned>(value: Value) -> anyhow::Result<T> {
    serde_json::from_value(value).map_err(|e| {
        anyhow::anyhow!(
            "the server's answer does not look like Sluice's reverse ETL API ({e}); is --url a Sluice server of the same version?"
        )
    })
}

/// A connection or model by id, or else by name.
async fn resolve(client: &Client, list: &str, what: &str, key: &str) -> anyhow::Result<String> {
    let items: Vec<Value> = client.get(list).await?;
    let found = items
        .iter()
        .find(|i| i["id"] == key)
        .or_else(|| items.iter().find(|i| i["name"] == key));
    match found.and_then(|i| i["id"].as_str()) {
        Some(id) => Ok(id.to_owned()),
        None => anyhow::bail!(
            "no {what} with id or name {key:?}\nhint: `sluice retl {what}s list` shows them"
        ),
    }
}

async fn model_id(client: &Client, key: &str) -> anyhow::Result<String> {
    resolve(client, "/api/v1/retl/models", "model", key).await
}

async fn connection_id(client: &Client, key: &str) -> anyhow::Result<String> {
    resolve(client, "/api/v1/retl/connections", "connection", key).await
}

async fn connections(
    client: &Client,
    command: ConnectionsCommand,
    json: bool,
) -> anyhow::Result<()> {
    let value = match command {
        ConnectionsCommand::List => client.get_value("/api/v1/retl/connections").await?,
        ConnectionsCommand::Create {
            name,
            kind,
            warehouse_url,
            statement_timeout,
        } => {
            let mut body = json!({"name": name, "kind": kind.as_str(), "url": warehouse_url});
            if let Some(secs) = statement_timeout {
                body["statementTimeoutSeconds"] = json!(secs);
            }
            let value = client.post("/api/v1/retl/connections", &body).await?;
            if !json {
                eprintln!(
                    "Check it with: sluice retl connections test {}",
                    value["id"].as_str().unwrap_or("")
                );
            }
            value
        }
        ConnectionsCommand::Test { connection } => {
            let id = connection_id(client, &connection).await?;
            let value = client
                .post(
                    &format!("/api/v1/retl/connections/{}/test", encode(&id)),
                    &json!({}),
                )
                .await?;
            if json {
                print_json(&value);
            } else if value["ok"] == true {
                println!(
                    "OK: {} ({} ms)",
                    value["message"].as_str().unwrap_or(""),
                    value["latencyMs"]
                );
            }
            if value["ok"] != true {
                anyhow::bail!(
                    "connection {id} failed ({}): {}",
                    value["code"].as_str().unwrap_or("error"),
                    value["message"].as_str().unwrap_or("")
                );
            }
            return Ok(());
        }
        ConnectionsCommand::Delete { connection } => {
            let id = connection_id(client, &connection).await?;
            client
                .delete(&format!("/api/v1/retl/connections/{}", encode(&id)))
                .await?;
            if !json {
                println!("Deleted connection {id}.");
            }
            return Ok(());
        }
    };
    if json {
        print_json(&value);
        return Ok(());
    }
    let list: Vec<Value> = if value.is_array() {
        decode(value)?
    } else {
        vec![value]
    };
    let mut t = Table::new(&["ID", "NAME", "KIND", "URL", "TIMEOUT S"]);
    for c in &list {
        t.row(vec![
            text(&c["id"]),
            text(&c["name"]),
            text(&c["kind"]),
            text(&c["url"]),
            text(&c["statementTimeoutSeconds"]),
        ]);
    }
    t.print("No connections; create one with `sluice retl connections create`.");
    Ok(())
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

async fn models(client: &Client, command: ModelsCommand, json: bool) -> anyhow::Result<()> {
    let value = match command {
        ModelsCommand::List => client.get_value("/api/v1/retl/models").await?,
        ModelsCommand::Get { model } => {
            let id = model_id(client, &model).await?;
            client
                .get_value(&format!("/api/v1/retl/models/{}", encode(&id)))
                .await?
        }
        ModelsCommand::Create {
            name,
            connection,
            query,
            id_column,
            user_id_column,
            every,
            row_limit,
        } => {
            let connection = connection_id(client, &connection).await?;
            let mut body = json!({
                "name": name, "connectionId": connection, "query": query, "uniqueIdColumn": id_column,
            });
            if let Some(c) = user_id_column {
                body["userIdColumn"] = json!(c);
            }
            if let Some(every) = every {
                body["schedule"] = json!({"everySeconds": every});
            }
            if let Some(limit) = row_limit {
                body["rowLimit"] = json!(limit);
            }
            client.post("/api/v1/retl/models", &body).await?
        }
        ModelsCommand::Preview { model } => {
            let id = model_id(client, &model).await?;
            let value = client
                .post(
                    &format!("/api/v1/retl/models/{}/preview", encode(&id)),
                    &json!({}),
                )
                .await?;
            if json {
                print_json(&value);
                return Ok(());
            }
            let columns: Vec<String> = value["columns"]
                .as_array()
                .map(|cs| cs.iter().map(|c| text(&c["name"])).collect())
                .unwrap_or_default();
            let headers: Vec<&str> = columns.iter().map(String::as_str).collect();
            let mut t = Table::new(&headers);
            for row in value["rows"].as_array().into_iter().flatten() {
                t.row(row.as_array().into_iter().flatten().map(text).collect());
            }
            t.print("The query returned no rows.");
            return Ok(());
        }
        ModelsCommand::Consent { model, columns } => {
            let id = model_id(client, &model).await?;
            let mut map = BTreeMap::new();
            for pair in &columns {
                let (column, category) = pair.split_once('=').ok_or_else(|| {
                    anyhow::anyhow!(
                        "--column {pair:?} must be COLUMN=CATEGORY_ID, e.g. ads_consent=C0004"
                    )
                })?;
                map.insert(column.to_owned(), category.to_owned());
            }
            let body = json!({"columns": map});
            client
                .call(
                    reqwest::Method::PUT,
                    &format!("/api/v1/retl/models/{}/consent-mapping", encode(&id)),
                    Some(&body),
                )
                .await?
                .unwrap_or(Value::Null)
        }
        ModelsCommand::Map {
            model,
            destination,
            connections,
            source,
            operation,
            event,
            on,
        } => {
            let id = model_id(client, &model).await?;
            let mut body = json!({
                "operation": match operation { OperationArg::Identify => "identify", OperationArg::Track => "track" },
                "on": on,
            });
            if let Some(d) = destination {
                body["destinationId"] = json!(d);
            }
            if connections {
                body["connections"] = json!(true);
            }
            if let Some(s) = source {
                body["sourceId"] = json!(s);
            }
            if let Some(e) = event {
                body["event"] = json!(e);
            }
            let value = client
                .post(
                    &format!("/api/v1/retl/models/{}/mappings", encode(&id)),
                    &body,
                )
                .await?;
            if json {
                print_json(&value);
            } else {
                println!(
                    "Created mapping {} ({} on {}).",
                    text(&value["id"]),
                    text(&value["operation"]),
                    value["on"]
                );
            }
            return Ok(());
        }
        ModelsCommand::Delete { model } => {
            let id = model_id(client, &model).await?;
            client
                .delete(&format!("/api/v1/retl/models/{}", encode(&id)))
                .await?;
            if !json {
                println!("Deleted model {id}.");
            }
            return Ok(());
        }
    };
    if json {
        print_json(&value);
        return Ok(());
    }
    let list: Vec<Value> = if value.is_array() {
        decode(value)?
    } else {
        vec![value]
    };
    let mut t = Table::new(&[
        "ID",
        "NAME",
        "CONNECTION",
        "ID COLUMN",
        "CONSENT",
        "MAPPINGS",
        "SCHEDULE",
        "LAST RUN",
    ]);
    for m in &list {
        let consent = m["consentMapping"]["columns"]
            .as_object()
            .map(|c| {
                c.iter()
                    .map(|(col, cat)| format!("{col}→{}", text(cat)))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "(not enforced)".to_owned());
        let last = &m["lastRun"];
        t.row(vec![
            text(&m["id"]),
            text(&m["name"]),
            text(&m["connectionId"]),
            text(&m["uniqueIdColumn"]),
            consent,
            m["mappings"].as_array().map_or(0, Vec::len).to_string(),
            m["schedule"]["everySeconds"]
                .as_u64()
                .map_or_else(|| "manual".to_owned(), |s| format!("every {s} s")),
            if last.is_null() {
                "-".to_owned()
            } else {
                format!("{} ({})", text(&last["status"]), text(&last["startedAt"]))
            },
        ]);
    }
    t.print("No models; create one with `sluice retl models create`.");
    Ok(())
}

/// The parts of a run the CLI shows.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RunSummary {
    id: String,
    status: String,
    #[serde(default)]
    trigger: String,
    #[serde(default)]
    phase: String,
    #[serde(default)]
    started_at: String,
    #[serde(default)]
    finished_at: Option<String>,
    #[serde(default)]
    extracted: u64,
    #[serde(default)]
    added: u64,
    #[serde(default)]
    updated: u64,
    #[serde(default)]
    deleted: u64,
    #[serde(default)]
    unchanged: u64,
    #[serde(default)]
    filtered_by_consent: u64,
    #[serde(default)]
    queued: u64,
    #[serde(default)]
    suppressed: u64,
    #[serde(default)]
    failed: u64,
    #[serde(default)]
    deferred: u64,
    #[serde(default)]
    errors: Vec<Value>,
    #[serde(default)]
    warnings: Vec<String>,
    #[serde(default)]
    error: Option<String>,
}

impl RunSummary {
    fn counters(&self) -> String {
        format!(
            "added {} · updated {} · deleted {} · filtered by consent {} · queued {} · failed {}",
            self.added,
            self.updated,
            self.deleted,
            self.filtered_by_consent,
            self.queued,
            self.failed
        )
    }
}

fn print_run(run: &RunSummary) {
    let mut t = Table::new(&["", ""]);
    for (k, v) in [
        ("run", run.id.clone()),
        ("status", run.status.clone()),
        ("trigger", run.trigger.clone()),
        ("started", run.started_at.clone()),
        ("finished", or_dash(run.finished_at.clone())),
        ("extracted", run.extracted.to_string()),
        ("added", run.added.to_string()),
        ("updated", run.updated.to_string()),
        ("deleted", run.deleted.to_string()),
        ("unchanged", run.unchanged.to_string()),
        ("filtered by consent", run.filtered_by_consent.to_string()),
        ("queued", run.queued.to_string()),
        ("suppressed", run.suppressed.to_string()),
        ("failed", run.failed.to_string()),
        ("deferred (row limit)", run.deferred.to_string()),
    ] {
        t.row(vec![k.to_owned(), v]);
    }
    // The header row is blank; print the rows only.
    for line in t.render().lines().skip(1) {
        println!("{line}");
    }
    if let Some(error) = &run.error {
        println!("error: {error}");
    }
    for w in &run.warnings {
        println!("warning: {w}");
    }
    for e in &run.errors {
        println!(
            "row {}: {} {} ({})",
            text(&e["row"]),
            text(&e["code"]),
            text(&e["message"]),
            text(&e["recordId"])
        );
    }
}

async fn sync(client: &Client, model: &str, follow: bool, json: bool) -> anyhow::Result<()> {
    let id = model_id(client, model).await?;
    // The previous run's row count sizes the bar.
    let previous: Vec<RunSummary> = client
        .get(&format!("/api/v1/retl/models/{}/runs", encode(&id)))
        .await
        .unwrap_or_default();
    let started = client
        .post(
            &format!("/api/v1/retl/models/{}/sync", encode(&id)),
            &json!({}),
        )
        .await?;
    let run_id = started["runId"].as_str().unwrap_or_default().to_owned();
    if !follow {
        if json {
            print_json(&started);
        } else {
            println!("{run_id}");
            eprintln!(
                "Started run {run_id}; follow it with `sluice retl run {run_id}` or `sluice retl sync {model} --follow`."
            );
        }
        return Ok(());
    }
    let expected = previous
        .iter()
        .find(|r| r.status == "succeeded" || r.status == "partial")
        .map(|r| r.extracted)
        .filter(|n| *n > 0);
    let bar = match expected {
        Some(n) => indicatif::ProgressBar::new(n),
        None => indicatif::ProgressBar::new_spinner(),
    };
    let template = if expected.is_some() {
        "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} rows\n{msg}"
    } else {
        "{spinner} [{elapsed_precise}] {pos} rows\n{msg}"
    };
    if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.enable_steady_tick(Duration::from_millis(120));
    let path = format!("/api/v1/retl/runs/{}", encode(&run_id));
    let mut unreachable_reported = false;
    let run: RunSummary = loop {
        match client.get_value(&path).await {
            Ok(value) => {
                unreachable_reported = false;
                let run: RunSummary = decode(value.clone())?;
                if expected.is_some_and(|n| run.extracted > n) {
                    bar.set_length(run.extracted);
                }
                bar.set_position(run.extracted);
                bar.set_message(format!("{} · {}", run.phase, run.counters()));
                if run.status != "running" {
                    bar.finish_and_clear();
                    if json {
                        print_json(&value);
                    }
                    break run;
                }
            }
            Err(e @ ClientError::Unreachable { .. }) => {
                if !unreachable_reported {
                    bar.println(format!("warning: {e}\n(still trying)"));
                    unreachable_reported = true;
                }
            }
            Err(e) => {
                bar.abandon();
                return Err(e.into());
            }
        }
        tokio::time::sleep(POLL_EVERY).await;
    };
    if !json {
        print_run(&run);
    }
    match run.status.as_str() {
        "failed" => anyhow::bail!(
            "run {} failed: {}",
            run.id,
            run.error
                .as_deref()
                .unwrap_or("see `sluice retl run` for details")
        ),
        "interrupted" => anyhow::bail!(
            "run {} was interrupted (the server stopped); the next sync resumes from its checkpoint",
            run.id
        ),
        _ => Ok(()),
    }
}

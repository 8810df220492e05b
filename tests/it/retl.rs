//! Reverse ETL against the real PostgreSQL and MariaDB on 127.0.0.1, and SQLite.
//!
//! Each test makes its own table (tests run in parallel) of users with consent columns,
//! points a model at it, syncs, changes rows, syncs again, and checks what the destinations
//! received, the run history and the delivery overview. A warehouse that is not reachable
//! fails the test with the reason; nothing is skipped.
//!
//! The crash test and the 100,000-row test run the real binary (`tokio::process`, never a
//! blocking wait: the in-process servers share the test's runtime).

use std::collections::{BTreeMap, BTreeSet};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sqlx::Connection as _;

use crate::common::{OWNER_TOKEN, Receiver, TestServer, eventually};

/// The test PostgreSQL (trust authentication) and MariaDB (root without password).
const PG_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
const MYSQL_URL: &str = "mysql://root@127.0.0.1:3306/test";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Postgres,
    Mariadb,
    Sqlite,
}

impl Kind {
    /// A boolean as the warehouse returns it: SQLite has no boolean type (TRUE is 1).
    fn boolean(self, b: bool) -> Value {
        match self {
            Kind::Sqlite => json!(i32::from(b)),
            _ => json!(b),
        }
    }

    fn api_kind(self) -> &'static str {
        match self {
            Kind::Postgres => "postgres",
            Kind::Mariadb => "mysql",
            Kind::Sqlite => "sqlite",
        }
    }
}

/// A table of users in one of the test warehouses.
struct Warehouse {
    kind: Kind,
    /// The URL Sluice connects with.
    url: String,
    table: String,
    _dir: Option<tempfile::TempDir>,
}

fn unique(case: &str) -> String {
    format!(
        "retl_{case}_{}_{}",
        std::process::id(),
        rand::random::<u32>()
    )
}

impl Warehouse {
    async fn new(kind: Kind, case: &str) -> Warehouse {
        let table = unique(case);
        let (url, dir) = match kind {
            Kind::Postgres => (PG_URL.to_owned(), None),
            Kind::Mariadb => (MYSQL_URL.to_owned(), None),
            Kind::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                let url = format!("sqlite://{}", dir.path().join("warehouse.db").display());
                (url, Some(dir))
            }
        };
        let w = Warehouse {
            kind,
            url,
            table,
            _dir: dir,
        };
        w.exec(&format!(
            "CREATE TABLE {} (id VARCHAR(64) PRIMARY KEY, email VARCHAR(200), plan VARCHAR(50),
                              ads_consent BOOLEAN, analytics_consent BOOLEAN)",
            w.table
        ))
        .await;
        w
    }

    /// Run statements (separated by `;`) on the warehouse, failing the test clearly when it
    /// cannot be reached.
    async fn exec(&self, sql: &str) {
        match self.kind {
            Kind::Postgres => {
                let mut c = sqlx::PgConnection::connect(&self.url).await.unwrap_or_else(|e| {
                    panic!(
                        "the test PostgreSQL at {} is unreachable: {e}\nthese tests need PostgreSQL on 127.0.0.1:5432 with a database `test` (trust authentication)",
                        self.url
                    )
                });
                sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
                    .execute(&mut c)
                    .await
                    .unwrap_or_else(|e| panic!("{sql}: {e}"));
            }
            Kind::Mariadb => {
                let mut c = sqlx::MySqlConnection::connect(&self.url).await.unwrap_or_else(|e| {
                    panic!(
                        "the test MariaDB at {} is unreachable: {e}\nthese tests need MariaDB on 127.0.0.1:3306, user root without password, database `test`",
                        self.url
                    )
                });
                sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
                    .execute(&mut c)
                    .await
                    .unwrap_or_else(|e| panic!("{sql}: {e}"));
            }
            Kind::Sqlite => {
                let path = self.url.trim_start_matches("sqlite://").to_owned();
                let sql = sql.to_owned();
                tokio::task::spawn_blocking(move || {
                    let c = rusqlite::Connection::open(&path).unwrap();
                    c.execute_batch(&sql)
                        .unwrap_or_else(|e| panic!("{sql}: {e}"));
                })
                .await
                .unwrap();
            }
        }
    }

    /// Insert users: `(id, ads_consent, analytics_consent)` with `None` as NULL.
    async fn insert(&self, users: &[(&str, Option<bool>, Option<bool>)]) {
        let values: Vec<String> = users
            .iter()
            .map(|(id, ads, analytics)| {
                format!(
                    "('{id}', '{id}@example.com', 'free', {}, {})",
                    sql_bool(*ads),
                    sql_bool(*analytics)
                )
            })
            .collect();
        self.exec(&format!(
            "INSERT INTO {} (id, email, plan, ads_consent, analytics_consent) VALUES {}",
            self.table,
            values.join(", ")
        ))
        .await;
    }

    async fn drop_table(&self) {
        if self.kind != Kind::Sqlite {
            self.exec(&format!("DROP TABLE IF EXISTS {}", self.table))
                .await;
        }
    }

    fn query(&self) -> String {
        format!(
            "SELECT id, email, plan, ads_consent, analytics_consent FROM {} ORDER BY id",
            self.table
        )
    }
}

fn sql_bool(b: Option<bool>) -> &'static str {
    match b {
        Some(true) => "TRUE",
        Some(false) => "FALSE",
        None => "NULL",
    }
}

/// The workspace the consent tests use: three webhook destinations on one receiver,
/// `C0004` (advertising) gating "Ads", `C0002` (analytics) gating "Analytics", and
/// "Everything" unmapped.
struct Workspace {
    server: TestServer,
    hook: Receiver,
    ads: String,
    analytics: String,
    everything: String,
}

async fn workspace() -> Workspace {
    let server = TestServer::start().await;
    let hook = Receiver::start().await;
    let batch = json!({"batchSize": 100});
    let ads = server
        .webhook(
            "Ads",
            "Google Ads",
            &format!("{}/ads", hook.url),
            batch.clone(),
        )
        .await;
    let analytics = server
        .webhook(
            "Analytics",
            "Amplitude",
            &format!("{}/analytics", hook.url),
            batch.clone(),
        )
        .await;
    let everything = server
        .webhook(
            "Everything",
            "Everything",
            &format!("{}/all", hook.url),
            batch,
        )
        .await;
    server
        .create(
            "/api/v1/consent/categories",
            json!({"id": "C0004", "name": "Advertising", "destinations": [ads]}),
        )
        .await;
    server
        .create(
            "/api/v1/consent/categories",
            json!({"id": "C0002", "name": "Analytics", "destinations": [analytics]}),
        )
        .await;
    Workspace {
        server,
        hook,
        ads,
        analytics,
        everything,
    }
}

impl Workspace {
    /// A connection and a model on the warehouse's table.
    async fn model(&self, w: &Warehouse) -> String {
        let connection = self
            .server
            .create(
                "/api/v1/retl/connections",
                json!({"name": format!("{} warehouse", w.table), "kind": w.kind.api_kind(), "url": w.url}),
            )
            .await;
        self.server
            .create(
                "/api/v1/retl/models",
                json!({"name": format!("{} users", w.table), "connectionId": connection,
                       "query": w.query(), "uniqueIdColumn": "id"}),
            )
            .await
    }

    async fn consent_mapping(&self, model: &str, columns: Value) {
        let (status, answer) = self
            .server
            .admin(
                "PUT",
                &format!("/api/v1/retl/models/{model}/consent-mapping"),
                Some(json!({"columns": columns})),
            )
            .await;
        assert_eq!(status, 200, "{answer}");
    }

    async fn mapping(&self, model: &str, body: Value) -> String {
        self.server
            .create(&format!("/api/v1/retl/models/{model}/mappings"), body)
            .await
    }

    /// The usual three mappings: identify → Ads and Everything (all changes), track → Analytics
    /// (added and updated).
    async fn three_mappings(&self, model: &str) -> (String, String, String) {
        let ads = self
            .mapping(
                model,
                json!({"destinationId": self.ads, "operation": "identify", "on": ["added", "updated", "deleted"]}),
            )
            .await;
        let analytics = self
            .mapping(
                model,
                json!({"destinationId": self.analytics, "operation": "track", "event": "User Synced", "on": ["added", "updated"]}),
            )
            .await;
        let everything = self
            .mapping(
                model,
                json!({"destinationId": self.everything, "operation": "identify", "on": ["added", "updated", "deleted"]}),
            )
            .await;
        (ads, analytics, everything)
    }

    /// Start a sync and wait for its run to end; returns the run.
    async fn sync(&self, model: &str) -> Value {
        let (status, started) = self
            .server
            .admin("POST", &format!("/api/v1/retl/models/{model}/sync"), None)
            .await;
        assert_eq!(status, 202, "{started}");
        let run_id = started["runId"].as_str().unwrap().to_owned();
        let run = wait_run(&self.server, &run_id).await;
        self.settled().await;
        run
    }

    /// Wait until every destination delivered everything routed to it.
    async fn settled(&self) {
        eventually(Duration::from_secs(30), "deliveries to settle", || async {
            let overview = self.server.overview("").await;
            let busy = overview["destinations"]
                .as_array()
                .unwrap()
                .iter()
                .any(|d| {
                    d["routed"].as_i64()
                        != Some(d["delivered"].as_i64().unwrap() + d["dead"].as_i64().unwrap())
                });
            (!busy).then_some(())
        })
        .await;
    }

    /// Events received at `path` so far, as `(userId, operation)`.
    fn received(&self, path: &str) -> Vec<(String, String)> {
        events_at(&self.hook, path)
            .iter()
            .map(|e| {
                (
                    e["userId"].as_str().unwrap_or("?").to_owned(),
                    e["context"]["sluice"]["retl"]["operation"]
                        .as_str()
                        .unwrap_or("?")
                        .to_owned(),
                )
            })
            .collect()
    }
}

fn events_at(hook: &Receiver, path: &str) -> Vec<Value> {
    hook.requests()
        .iter()
        .filter(|g| g.path == path)
        .flat_map(|g| g.events())
        .collect()
}

async fn wait_run(server: &TestServer, run_id: &str) -> Value {
    eventually(Duration::from_secs(120), "the run to end", || async {
        let (status, run) = server
            .admin("GET", &format!("/api/v1/retl/runs/{run_id}"), None)
            .await;
        assert_eq!(status, 200, "{run}");
        (run["status"] != "running").then_some(run)
    })
    .await
}

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = items
        .iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect();
    v.sort();
    v
}

fn sorted(mut v: Vec<(String, String)>) -> Vec<(String, String)> {
    v.sort();
    v
}

fn count(run: &Value, field: &str) -> u64 {
    run[field]
        .as_u64()
        .unwrap_or_else(|| panic!("run has no {field}: {run}"))
}

// ---------------------------------------------------------------------------------------------
// The main scenario, on each warehouse.

/// First sync sends only consented rows to the right destinations; the second sends exactly
/// the changes (updates, a consent flip from true to false, deletions, a new row); a third
/// sends the flip back.
async fn consented_rows_then_exactly_the_changes(kind: Kind) {
    let w = Warehouse::new(kind, "changes").await;
    w.insert(&[
        ("u1", Some(true), Some(true)),
        ("u2", Some(false), Some(true)),
        ("u3", None, Some(false)),
        ("u4", Some(true), None),
        ("u5", Some(true), Some(true)),
        ("u6", Some(false), Some(false)),
    ])
    .await;
    let ws = workspace().await;
    let model = ws.model(&w).await;
    ws.consent_mapping(
        &model,
        json!({"ads_consent": "C0004", "analytics_consent": "C0002"}),
    )
    .await;
    let (m_ads, m_analytics, m_all) = ws.three_mappings(&model).await;

    // 1. First sync: only consented rows reach the gated destinations.
    let run = ws.sync(&model).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(count(&run, "extracted"), 6);
    assert_eq!(count(&run, "added"), 6);
    assert_eq!(count(&run, "queued"), 6, "every row goes to Everything");
    assert_eq!(count(&run, "failed"), 0);
    assert_eq!(run["mappings"][&m_ads]["queued"], 3, "{run}");
    assert_eq!(run["mappings"][&m_ads]["filteredByConsent"], 3, "{run}");
    assert_eq!(run["mappings"][&m_analytics]["queued"], 3, "{run}");
    assert_eq!(run["mappings"][&m_analytics]["filteredByConsent"], 3);
    assert_eq!(run["mappings"][&m_all]["queued"], 6);
    assert_eq!(
        sorted(ws.received("/ads")),
        pairs(&[("u1", "added"), ("u4", "added"), ("u5", "added")])
    );
    assert_eq!(
        sorted(ws.received("/analytics")),
        pairs(&[("u1", "added"), ("u2", "added"), ("u5", "added")])
    );
    assert_eq!(ws.received("/all").len(), 6);

    // What a destination receives: the row without its consent columns, the consent as
    // categoryPreferences, the mapping's event.
    let ads_events = events_at(&ws.hook, "/ads");
    let u1 = ads_events.iter().find(|e| e["userId"] == "u1").unwrap();
    assert_eq!(u1["type"], "identify");
    assert_eq!(
        u1["traits"],
        json!({"id": "u1", "email": "u1@example.com", "plan": "free"})
    );
    assert_eq!(
        u1["context"]["consent"]["categoryPreferences"],
        json!({"C0004": true, "C0002": true})
    );
    assert!(u1["messageId"].as_str().unwrap().starts_with("retl-"));
    assert!(u1["receivedAt"].is_string() && u1["timestamp"].is_string());
    let track = events_at(&ws.hook, "/analytics");
    let u2 = track.iter().find(|e| e["userId"] == "u2").unwrap();
    assert_eq!(u2["type"], "track");
    assert_eq!(u2["event"], "User Synced");
    assert_eq!(u2["properties"]["email"], "u2@example.com");
    assert_eq!(
        u2["context"]["consent"]["categoryPreferences"],
        json!({"C0004": false, "C0002": true})
    );

    // The delivery overview counts the withheld records per destination.
    let overview = ws.server.overview("").await;
    let dest = |id: &str| {
        overview["destinations"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["destinationId"] == id)
            .unwrap()
            .clone()
    };
    assert_eq!(dest(&ws.ads)["delivered"], 3, "{overview}");
    assert_eq!(
        dest(&ws.ads)["filtered"]["FILTERED_BY_END_USER_CONSENT"],
        3,
        "{overview}"
    );
    assert_eq!(dest(&ws.everything)["delivered"], 6);
    assert_eq!(
        overview["received"], 0,
        "RETL records are not Tracking API events"
    );

    // 2. Nothing changed: nothing is sent.
    let run = ws.sync(&model).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(
        (
            count(&run, "added"),
            count(&run, "updated"),
            count(&run, "deleted"),
            count(&run, "unchanged")
        ),
        (0, 0, 0, 6)
    );
    assert_eq!(ws.received("/all").len(), 6);

    // 3. Changes: a content update, a consent flip true → false, a consent NULL → true, two
    //    deletions, one new row.
    let (ads_before, analytics_before, all_before) = (
        ws.received("/ads").len(),
        ws.received("/analytics").len(),
        ws.received("/all").len(),
    );
    w.exec(&format!(
        "UPDATE {t} SET plan = 'pro' WHERE id = 'u1';
         UPDATE {t} SET ads_consent = FALSE WHERE id = 'u5';
         UPDATE {t} SET analytics_consent = TRUE WHERE id = 'u4';
         DELETE FROM {t} WHERE id IN ('u2', 'u6');
         INSERT INTO {t} (id, email, plan, ads_consent, analytics_consent) VALUES ('u7', 'u7@example.com', 'free', TRUE, FALSE)",
        t = w.table
    ))
    .await;
    let run = ws.sync(&model).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(
        (
            count(&run, "extracted"),
            count(&run, "added"),
            count(&run, "updated"),
            count(&run, "deleted"),
            count(&run, "unchanged")
        ),
        (5, 1, 3, 2, 1),
        "{run}"
    );
    assert_eq!(
        sorted(ws.received("/ads")[ads_before..].to_vec()),
        // u5 withdrew advertising consent: its update is withheld. Deleted u2 and u6 had not
        // consented when last seen: their deletions are withheld too.
        pairs(&[("u1", "updated"), ("u4", "updated"), ("u7", "added")])
    );
    assert_eq!(
        sorted(ws.received("/analytics")[analytics_before..].to_vec()),
        pairs(&[("u1", "updated"), ("u4", "updated"), ("u5", "updated")])
    );
    assert_eq!(
        sorted(ws.received("/all")[all_before..].to_vec()),
        pairs(&[
            ("u1", "updated"),
            ("u2", "deleted"),
            ("u4", "updated"),
            ("u5", "updated"),
            ("u6", "deleted"),
            ("u7", "added")
        ])
    );
    let u1 = events_at(&ws.hook, "/ads")
        .into_iter()
        .rfind(|e| e["userId"] == "u1")
        .unwrap();
    assert_eq!(u1["traits"]["plan"], "pro");
    let deleted = events_at(&ws.hook, "/all")
        .into_iter()
        .find(|e| e["userId"] == "u2" && e["context"]["sluice"]["retl"]["operation"] == "deleted")
        .unwrap();
    assert_eq!(deleted["traits"], json!({}));
    assert_eq!(
        deleted["context"]["consent"]["categoryPreferences"],
        json!({"C0004": false, "C0002": true}),
        "a deletion carries the consent the row had when last synced"
    );

    // 4. The flip back false → true: u5 reaches Ads again.
    let ads_before = ws.received("/ads").len();
    w.exec(&format!(
        "UPDATE {} SET ads_consent = TRUE WHERE id = 'u5'",
        w.table
    ))
    .await;
    let run = ws.sync(&model).await;
    assert_eq!(
        (count(&run, "updated"), count(&run, "queued")),
        (1, 1),
        "{run}"
    );
    assert_eq!(
        ws.received("/ads")[ads_before..].to_vec(),
        pairs(&[("u5", "updated")])
    );

    // Run history, newest first.
    let (status, runs) = ws
        .server
        .admin("GET", &format!("/api/v1/retl/models/{model}/runs"), None)
        .await;
    assert_eq!(status, 200);
    let runs = runs.as_array().unwrap();
    assert_eq!(runs.len(), 4);
    assert!(
        runs.iter()
            .all(|r| r["status"] == "succeeded" && r["trigger"] == "manual")
    );
    assert!(runs[0]["finishedAt"].is_string(), "{}", runs[0]);
    assert_eq!(runs[0]["startedBy"], "owner@localhost");
    w.drop_table().await;
}

#[tokio::test]
async fn postgres_first_sync_sends_consented_rows_then_exactly_the_changes() {
    consented_rows_then_exactly_the_changes(Kind::Postgres).await;
}

#[tokio::test]
async fn mariadb_first_sync_sends_consented_rows_then_exactly_the_changes() {
    consented_rows_then_exactly_the_changes(Kind::Mariadb).await;
}

#[tokio::test]
async fn sqlite_first_sync_sends_consented_rows_then_exactly_the_changes() {
    consented_rows_then_exactly_the_changes(Kind::Sqlite).await;
}

// ---------------------------------------------------------------------------------------------
// No mapping; a mapped category without a column.

async fn no_consent_mapping_sends_everything(kind: Kind) {
    let w = Warehouse::new(kind, "nomap").await;
    w.insert(&[
        ("a", Some(false), Some(false)),
        ("b", None, None),
        ("c", Some(true), Some(false)),
    ])
    .await;
    let ws = workspace().await;
    let model = ws.model(&w).await;
    ws.three_mappings(&model).await;
    let run = ws.sync(&model).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(count(&run, "queued"), 3);
    assert_eq!(count(&run, "filteredByConsent"), 0);
    for path in ["/ads", "/analytics", "/all"] {
        assert_eq!(
            sorted(ws.received(path)),
            pairs(&[("a", "added"), ("b", "added"), ("c", "added")]),
            "{path}"
        );
    }
    // No consent object is made up; the consent columns are ordinary fields then.
    let a = events_at(&ws.hook, "/ads")
        .into_iter()
        .find(|e| e["userId"] == "a")
        .unwrap();
    assert!(a["context"].get("consent").is_none(), "{a}");
    assert_eq!(a["traits"]["ads_consent"], kind.boolean(false));
    w.drop_table().await;
}

#[tokio::test]
async fn postgres_model_without_consent_mapping_sends_everything() {
    no_consent_mapping_sends_everything(Kind::Postgres).await;
}

#[tokio::test]
async fn mariadb_model_without_consent_mapping_sends_everything() {
    no_consent_mapping_sends_everything(Kind::Mariadb).await;
}

#[tokio::test]
async fn sqlite_model_without_consent_mapping_sends_everything() {
    no_consent_mapping_sends_everything(Kind::Sqlite).await;
}

async fn category_without_column_blocks_its_destinations(kind: Kind) {
    let w = Warehouse::new(kind, "nocol").await;
    w.insert(&[
        ("a", Some(true), Some(true)),
        ("b", Some(false), Some(true)),
    ])
    .await;
    let ws = workspace().await;
    let model = ws.model(&w).await;
    // Only advertising has a column: analytics (mapped to "Analytics") counts as false.
    ws.consent_mapping(&model, json!({"ads_consent": "C0004"}))
        .await;
    let (_, m_analytics, _) = ws.three_mappings(&model).await;
    let run = ws.sync(&model).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(sorted(ws.received("/ads")), pairs(&[("a", "added")]));
    assert_eq!(ws.received("/analytics"), vec![]);
    assert_eq!(run["mappings"][&m_analytics]["filteredByConsent"], 2);
    assert_eq!(ws.received("/all").len(), 2);
    // The preferences name only the mapped category.
    let a = events_at(&ws.hook, "/all")
        .into_iter()
        .find(|e| e["userId"] == "a")
        .unwrap();
    assert_eq!(
        a["context"]["consent"]["categoryPreferences"],
        json!({"C0004": true})
    );
    // The unmapped consent column is an ordinary trait.
    assert_eq!(a["traits"]["analytics_consent"], kind.boolean(true));
    w.drop_table().await;
}

#[tokio::test]
async fn postgres_mapped_category_without_column_blocks_its_destinations() {
    category_without_column_blocks_its_destinations(Kind::Postgres).await;
}

#[tokio::test]
async fn mariadb_mapped_category_without_column_blocks_its_destinations() {
    category_without_column_blocks_its_destinations(Kind::Mariadb).await;
}

#[tokio::test]
async fn sqlite_mapped_category_without_column_blocks_its_destinations() {
    category_without_column_blocks_its_destinations(Kind::Sqlite).await;
}

// ---------------------------------------------------------------------------------------------
// Rules: all/any, disabled categories.

#[tokio::test]
async fn multi_category_rule_and_disabled_categories_apply_to_records() {
    let w = Warehouse::new(Kind::Postgres, "rules").await;
    w.insert(&[
        ("both", Some(true), Some(true)),
        ("ads", Some(true), Some(false)),
        ("none", Some(false), Some(false)),
    ])
    .await;
    let ws = workspace().await;
    // "Everything" now needs both categories.
    let (status, answer) = ws
        .server
        .admin(
            "PATCH",
            "/api/v1/consent/categories/C0004",
            Some(json!({"destinations": [ws.ads, ws.everything]})),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    let (status, answer) = ws
        .server
        .admin(
            "PATCH",
            "/api/v1/consent/categories/C0002",
            Some(json!({"destinations": [ws.analytics, ws.everything]})),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    let model = ws.model(&w).await;
    ws.consent_mapping(
        &model,
        json!({"ads_consent": "C0004", "analytics_consent": "C0002"}),
    )
    .await;
    ws.mapping(
        &model,
        json!({"destinationId": ws.everything, "operation": "identify"}),
    )
    .await;
    // Rule `all`: only "both".
    ws.sync(&model).await;
    assert_eq!(sorted(ws.received("/all")), pairs(&[("both", "added")]));

    // Rule `any`, and every row changed so it is sent again: "both" and "ads".
    let (status, _) = ws
        .server
        .admin(
            "PATCH",
            "/api/v1/workspace",
            Some(json!({"multiCategoryRule": "any"})),
        )
        .await;
    assert_eq!(status, 200);
    w.exec(&format!("UPDATE {} SET plan = 'v2'", w.table)).await;
    ws.sync(&model).await;
    assert_eq!(
        sorted(ws.received("/all")[1..].to_vec()),
        pairs(&[("ads", "updated"), ("both", "updated")])
    );

    // Advertising disabled: no longer enforced; under `any`, analytics alone decides, and
    // nobody granted analytics but "both".
    let (status, answer) = ws
        .server
        .admin(
            "POST",
            "/api/v1/consent/categories/C0004/disable",
            Some(json!({"confirmName": "Advertising"})),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    w.exec(&format!("UPDATE {} SET plan = 'v3'", w.table)).await;
    ws.sync(&model).await;
    assert_eq!(
        sorted(ws.received("/all")[3..].to_vec()),
        pairs(&[("both", "updated")])
    );
    w.drop_table().await;
}

// ---------------------------------------------------------------------------------------------
// The connections path: events into the pipeline.

#[tokio::test]
async fn connections_mapping_sends_events_through_the_pipeline() {
    let w = Warehouse::new(Kind::Postgres, "connections").await;
    w.insert(&[
        ("p1", Some(true), Some(false)),
        ("p2", Some(false), Some(true)),
    ])
    .await;
    let ws = workspace().await;
    let model = ws.model(&w).await;
    ws.consent_mapping(
        &model,
        json!({"ads_consent": "C0004", "analytics_consent": "C0002"}),
    )
    .await;
    ws.mapping(
        &model,
        json!({"connections": true, "operation": "identify", "on": ["added", "updated"]}),
    )
    .await;
    let run = ws.sync(&model).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(count(&run, "queued"), 2);
    // The router decided from the stamped preferences.
    assert_eq!(sorted(ws.received("/ads")), pairs(&[("p1", "added")]));
    assert_eq!(sorted(ws.received("/analytics")), pairs(&[("p2", "added")]));
    assert_eq!(ws.received("/all").len(), 2);
    // Counted as events received on the default source; filtered by consent per destination.
    let overview = ws.server.overview("").await;
    assert_eq!(overview["received"], 2, "{overview}");
    assert_eq!(overview["accepted"], 2);
    let ads = overview["destinations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["destinationId"] == ws.ads)
        .unwrap();
    assert_eq!(ads["filtered"]["FILTERED_BY_END_USER_CONSENT"], 1);
    // The profile consumer saw the consent: p1's profile says advertising granted.
    let profile = eventually(Duration::from_secs(10), "p1's profile", || async {
        let (status, p) = ws.server.admin("GET", "/api/v1/profiles/p1", None).await;
        (status == 200 && p["consent"]["C0004"]["value"] == true).then_some(p)
    })
    .await;
    assert_eq!(profile["traits"]["email"], "p1@example.com");

    // A resync of unchanged rows sends nothing; the same change twice is one event (dedup).
    let run = ws.sync(&model).await;
    assert_eq!(count(&run, "unchanged"), 2);
    assert_eq!(ws.received("/all").len(), 2);
    w.drop_table().await;
}

// ---------------------------------------------------------------------------------------------
// Bad rows, row limit, one sync at a time.

#[tokio::test]
async fn null_and_duplicate_ids_are_reported_per_row() {
    let w = Warehouse::new(Kind::Sqlite, "dups").await;
    // A view without the primary key lets ids repeat and be NULL.
    w.exec(&format!(
        "CREATE TABLE raw (id TEXT, email TEXT, plan TEXT, ads_consent BOOLEAN, analytics_consent BOOLEAN);
         INSERT INTO raw VALUES ('d1', 'a', 'free', 1, 1), ('d2', 'b', 'free', 1, 1), ('d1', 'c', 'free', 1, 1),
                                (NULL, 'd', 'free', 1, 1), ('d3', 'e', 'free', 1, 1);
         DROP TABLE {t}; CREATE VIEW {t} AS SELECT * FROM raw",
        t = w.table
    ))
    .await;
    let ws = workspace().await;
    let connection = ws
        .server
        .create(
            "/api/v1/retl/connections",
            json!({"name": "dups", "kind": "sqlite", "url": w.url}),
        )
        .await;
    let model = ws
        .server
        .create(
            "/api/v1/retl/models",
            json!({"name": "dups", "connectionId": connection, "uniqueIdColumn": "id",
                   "query": format!("SELECT * FROM {}", w.table)}),
        )
        .await;
    ws.mapping(
        &model,
        json!({"destinationId": ws.everything, "operation": "identify"}),
    )
    .await;
    let run = ws.sync(&model).await;
    assert_eq!(run["status"], "partial", "{run}");
    assert_eq!(count(&run, "extracted"), 5);
    assert_eq!(count(&run, "added"), 3);
    assert_eq!(count(&run, "failed"), 2);
    let errors: BTreeSet<(u64, String)> = run["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["row"].as_u64().unwrap(),
                e["code"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        errors,
        BTreeSet::from([(3, "duplicate_id".to_owned()), (4, "null_id".to_owned())])
    );
    // The first d1 was sent, not merged with the second.
    let d1: Vec<Value> = events_at(&ws.hook, "/all")
        .into_iter()
        .filter(|e| e["userId"] == "d1")
        .collect();
    assert_eq!(d1.len(), 1);
    assert_eq!(d1[0]["traits"]["email"], "a");
}

#[tokio::test]
async fn row_limit_ignores_consent_filtered_records_and_defers_the_rest() {
    let w = Warehouse::new(Kind::Mariadb, "limit").await;
    w.insert(&[
        ("r1", Some(false), None),
        ("r2", Some(true), None),
        ("r3", Some(false), None),
        ("r4", Some(true), None),
        ("r5", Some(true), None),
        ("r6", None, None),
    ])
    .await;
    let ws = workspace().await;
    let model = ws.model(&w).await;
    let (status, answer) = ws
        .server
        .admin(
            "PATCH",
            &format!("/api/v1/retl/models/{model}"),
            Some(json!({"rowLimit": 2})),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    ws.consent_mapping(&model, json!({"ads_consent": "C0004"}))
        .await;
    ws.mapping(
        &model,
        json!({"destinationId": ws.ads, "operation": "identify"}),
    )
    .await;
    let run = ws.sync(&model).await;
    // r2 and r4 are sent; r1, r3, r6 are filtered and do not count; r5 waits.
    assert_eq!(count(&run, "queued"), 2, "{run}");
    assert_eq!(count(&run, "filteredByConsent"), 3, "{run}");
    assert_eq!(count(&run, "deferred"), 1, "{run}");
    assert_eq!(
        sorted(ws.received("/ads")),
        pairs(&[("r2", "added"), ("r4", "added")])
    );
    let run = ws.sync(&model).await;
    assert_eq!(
        (
            count(&run, "queued"),
            count(&run, "added"),
            count(&run, "deferred")
        ),
        (1, 1, 0),
        "{run}"
    );
    assert_eq!(ws.received("/ads").len(), 3);
    w.drop_table().await;
}

// ---------------------------------------------------------------------------------------------
// Connections, models, preview, validation, roles and audit.

#[tokio::test]
async fn connection_tests_say_what_is_wrong() {
    let server = TestServer::start().await;
    let cases = [
        ("postgres", PG_URL.to_owned(), true, ""),
        (
            "postgres",
            "postgres://postgres@127.0.0.1:1/test".to_owned(),
            false,
            "unreachable",
        ),
        (
            "postgres",
            "postgres://no_such_role@127.0.0.1:5432/test".to_owned(),
            false,
            "authentication_failed",
        ),
        (
            "postgres",
            "postgres://postgres@127.0.0.1:5432/no_such_db".to_owned(),
            false,
            "database_not_found",
        ),
        (
            "postgres",
            "postgres://postgres@no-such-host.invalid:5432/test".to_owned(),
            false,
            "unreachable",
        ),
        ("mysql", MYSQL_URL.to_owned(), true, ""),
        (
            "mysql",
            "mysql://root@127.0.0.1:1/test".to_owned(),
            false,
            "unreachable",
        ),
        (
            "mysql",
            "mysql://no_such_user:wrong@127.0.0.1:3306/test".to_owned(),
            false,
            "authentication_failed",
        ),
        (
            "mysql",
            "mysql://root@127.0.0.1:3306/no_such_db".to_owned(),
            false,
            "database_not_found",
        ),
        (
            "sqlite",
            format!(
                "sqlite://{}/nonexistent/dir/w.db",
                std::env::temp_dir().display()
            ),
            false,
            "database_not_found",
        ),
    ];
    for (i, (kind, url, ok, code)) in cases.iter().enumerate() {
        let id = server
            .create(
                "/api/v1/retl/connections",
                json!({"name": format!("c{i}"), "kind": kind, "url": url}),
            )
            .await;
        let (status, answer) = server
            .admin("POST", &format!("/api/v1/retl/connections/{id}/test"), None)
            .await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["ok"], *ok, "{url}: {answer}");
        if *ok {
            assert!(answer["serverVersion"].is_string(), "{answer}");
        } else {
            assert_eq!(answer["code"], *code, "{url}: {answer}");
            assert!(answer["message"].as_str().unwrap().len() > 10);
        }
    }
}

#[tokio::test]
async fn models_are_validated_previewed_and_read_only() {
    let w = Warehouse::new(Kind::Postgres, "preview").await;
    let users: Vec<(String, Option<bool>, Option<bool>)> = (0..15)
        .map(|i| (format!("v{i:02}"), Some(i % 2 == 0), None))
        .collect();
    let refs: Vec<(&str, Option<bool>, Option<bool>)> = users
        .iter()
        .map(|(id, a, b)| (id.as_str(), *a, *b))
        .collect();
    w.insert(&refs).await;
    let ws = workspace().await;
    let server = &ws.server;
    let connection = server
        .create(
            "/api/v1/retl/connections",
            json!({"name": "pg", "kind": "postgres", "url": "postgres://postgres:s3cret@127.0.0.1:5432/test"}),
        )
        .await;
    // The password never comes back.
    let (_, c) = server
        .admin(
            "GET",
            &format!("/api/v1/retl/connections/{connection}"),
            None,
        )
        .await;
    assert_eq!(c["url"], "postgres://postgres:********@127.0.0.1:5432/test");
    let model_body = |query: &str, id: &str| json!({"name": format!("m-{}", rand::random::<u32>()), "connectionId": connection, "query": query, "uniqueIdColumn": id});
    let cases = [
        (model_body(&w.query(), "nope"), 400, "unknown_column"),
        (
            model_body(&format!("DELETE FROM {}", w.table), "id"),
            400,
            "invalid_query",
        ),
        (
            model_body(&format!("SELECT 1 AS id; DROP TABLE {}", w.table), "id"),
            400,
            "invalid_query",
        ),
        (
            model_body("SELECT id FROM no_such_table", "id"),
            400,
            "invalid_query",
        ),
        (
            model_body("SELECT 1 AS id, 2 AS id", "id"),
            400,
            "invalid_query",
        ),
        (
            model_body(
                &format!(
                    "WITH d AS (DELETE FROM {} RETURNING id) SELECT id FROM d",
                    w.table
                ),
                "id",
            ),
            400,
            "invalid_query",
        ),
    ];
    for (body, status, code) in cases {
        let (got, answer) = server
            .admin("POST", "/api/v1/retl/models", Some(body.clone()))
            .await;
        assert_eq!(
            (got, answer["code"].as_str().unwrap_or("")),
            (status, code),
            "{body}: {answer}"
        );
    }
    // Read-only even past the guard: a function that writes is refused by the transaction.
    w.exec(&format!(
        "CREATE OR REPLACE FUNCTION {t}_writer() RETURNS int AS $$ BEGIN DELETE FROM {t}; RETURN 1; END $$ LANGUAGE plpgsql",
        t = w.table
    ))
    .await;
    let writer = server
        .create(
            "/api/v1/retl/models",
            model_body(&format!("SELECT {}_writer() AS id", w.table), "id"),
        )
        .await;
    let (status, answer) = server
        .admin(
            "POST",
            &format!("/api/v1/retl/models/{writer}/preview"),
            None,
        )
        .await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (400, Some("read_only")),
        "{answer}"
    );

    let model = server
        .create("/api/v1/retl/models", model_body(&w.query(), "id"))
        .await;
    let (status, preview) = server
        .admin(
            "POST",
            &format!("/api/v1/retl/models/{model}/preview"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{preview}");
    let names: Vec<&str> = preview["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["id", "email", "plan", "ads_consent", "analytics_consent"]
    );
    assert_eq!(preview["columns"][3]["type"], "BOOL");
    assert_eq!(preview["rows"].as_array().unwrap().len(), 10);
    assert_eq!(
        preview["rows"][0],
        json!(["v00", "v00@example.com", "free", true, null])
    );
    // The table is intact.
    let (_, again) = server
        .admin(
            "POST",
            &format!("/api/v1/retl/models/{model}/preview"),
            None,
        )
        .await;
    assert_eq!(again["rows"].as_array().unwrap().len(), 10);

    // Consent mappings are checked against columns and categories.
    for (columns, code) in [
        (json!({"nope": "C0004"}), "unknown_column"),
        (json!({"ads_consent": "c0004"}), "unknown_category"),
        (
            json!({"ads_consent": "C0004", "analytics_consent": "C0004"}),
            "invalid",
        ),
    ] {
        let (status, answer) = server
            .admin(
                "PUT",
                &format!("/api/v1/retl/models/{model}/consent-mapping"),
                Some(json!({"columns": columns})),
            )
            .await;
        assert_eq!(
            (status, answer["code"].as_str().unwrap()),
            (400, code),
            "{answer}"
        );
    }
    // Mappings: track needs an event name; a destination must exist.
    for body in [
        json!({"destinationId": ws.ads, "operation": "track"}),
        json!({"destinationId": "dst_nope", "operation": "identify"}),
        json!({"operation": "identify"}),
    ] {
        let (status, answer) = server
            .admin(
                "POST",
                &format!("/api/v1/retl/models/{model}/mappings"),
                Some(body),
            )
            .await;
        assert_eq!(status, 400, "{answer}");
    }
    // A sync of a model without mappings is refused up front.
    let (status, answer) = server
        .admin("POST", &format!("/api/v1/retl/models/{model}/sync"), None)
        .await;
    assert_eq!(status, 400, "{answer}");
    // A connection in use cannot be deleted.
    let (status, _) = server
        .admin(
            "DELETE",
            &format!("/api/v1/retl/connections/{connection}"),
            None,
        )
        .await;
    assert_eq!(status, 409);
    w.exec(&format!("DROP FUNCTION {}_writer()", w.table)).await;
    w.drop_table().await;
}

#[tokio::test]
async fn members_manage_models_owners_map_consent_and_everything_is_audited() {
    let w = Warehouse::new(Kind::Sqlite, "roles").await;
    w.insert(&[("x1", Some(true), Some(true))]).await;
    let ws = workspace().await;
    let server = &ws.server;
    let mut tokens = BTreeMap::new();
    for role in ["member", "viewer"] {
        let user = server
            .create(
                "/api/v1/users",
                json!({"email": format!("{role}@example.com"), "name": role, "role": role}),
            )
            .await;
        let (_, token) = server
            .admin(
                "POST",
                &format!("/api/v1/users/{user}/tokens"),
                Some(json!({"name": "t"})),
            )
            .await;
        tokens.insert(role, token["token"].as_str().unwrap().to_owned());
    }
    let as_role = |role: &'static str, method: &'static str, path: String, body: Option<Value>| {
        let token = tokens[role].clone();
        async move { server.admin_as(&token, method, &path, body).await }
    };
    let conn_body = json!({"name": "wh", "kind": "sqlite", "url": w.url});
    let (status, _) = as_role(
        "viewer",
        "POST",
        "/api/v1/retl/connections".into(),
        Some(conn_body.clone()),
    )
    .await;
    assert_eq!(status, 403);
    let (status, connection) = as_role(
        "member",
        "POST",
        "/api/v1/retl/connections".into(),
        Some(conn_body),
    )
    .await;
    assert_eq!(status, 201, "{connection}");
    let connection = connection["id"].as_str().unwrap().to_owned();
    let (status, model) = as_role(
        "member",
        "POST",
        "/api/v1/retl/models".into(),
        Some(json!({"name": "m", "connectionId": connection, "query": w.query(), "uniqueIdColumn": "id"})),
    )
    .await;
    assert_eq!(status, 201, "{model}");
    let model = model["id"].as_str().unwrap().to_owned();
    let consent = Some(json!({"columns": {"ads_consent": "C0004"}}));
    let (status, answer) = as_role(
        "member",
        "PUT",
        format!("/api/v1/retl/models/{model}/consent-mapping"),
        consent.clone(),
    )
    .await;
    assert_eq!(status, 403, "{answer}");
    assert!(answer["message"].as_str().unwrap().contains("Only owners"));
    let (status, _) = server
        .admin(
            "PUT",
            &format!("/api/v1/retl/models/{model}/consent-mapping"),
            consent,
        )
        .await;
    assert_eq!(status, 200);
    let (status, mapping) = as_role(
        "member",
        "POST",
        format!("/api/v1/retl/models/{model}/mappings"),
        Some(json!({"destinationId": ws.ads, "operation": "identify"})),
    )
    .await;
    assert_eq!(status, 201, "{mapping}");
    let (status, _) = as_role(
        "viewer",
        "POST",
        format!("/api/v1/retl/models/{model}/sync"),
        None,
    )
    .await;
    assert_eq!(status, 403);
    let (status, started) = as_role(
        "member",
        "POST",
        format!("/api/v1/retl/models/{model}/sync"),
        None,
    )
    .await;
    assert_eq!(status, 202, "{started}");
    let run = wait_run(server, started["runId"].as_str().unwrap()).await;
    assert_eq!(run["startedBy"], "member@example.com");
    let (status, runs) = as_role(
        "viewer",
        "GET",
        format!("/api/v1/retl/models/{model}/runs"),
        None,
    )
    .await;
    assert_eq!((status, runs.as_array().unwrap().len()), (200, 1));

    let (_, audit) = server.admin("GET", "/api/v1/audit?limit=100", None).await;
    let actions: Vec<(String, String)> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"].as_str().unwrap().starts_with("retl."))
        .map(|e| {
            (
                e["action"].as_str().unwrap().to_owned(),
                e["actor"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    for expected in [
        ("retl.connection.created", "member@example.com"),
        ("retl.model.created", "member@example.com"),
        ("retl.consent_mapping.changed", "owner@localhost"),
        ("retl.mapping.created", "member@example.com"),
        ("retl.sync.started", "member@example.com"),
    ] {
        assert!(
            actions
                .iter()
                .any(|(a, who)| a == expected.0 && who == expected.1),
            "{expected:?} not in {actions:?}"
        );
    }
    let consent_entry = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "retl.consent_mapping.changed")
        .unwrap();
    assert_eq!(
        consent_entry["after"]["after"]["columns"],
        json!({"ads_consent": "C0004"})
    );
}

#[tokio::test]
async fn secrets_are_redacted_in_the_audit_trail() {
    let server = TestServer::start().await;
    let id = server
        .create(
            "/api/v1/retl/connections",
            json!({"name": "pg", "kind": "postgres", "url": "postgres://app:hunter2@db:5432/w"}),
        )
        .await;
    // Changing the host keeps the password when `********` is sent back.
    let (status, answer) = server
        .admin(
            "PATCH",
            &format!("/api/v1/retl/connections/{id}"),
            Some(json!({"url": "postgres://app:********@db2:5432/w"})),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["url"], "postgres://app:********@db2:5432/w");
    let stored = server.app.retl.store.connection(&id).await.unwrap();
    assert_eq!(stored.url, "postgres://app:hunter2@db2:5432/w");
    let (_, audit) = server.admin("GET", "/api/v1/audit?limit=100", None).await;
    let text = audit.to_string();
    assert!(text.contains("retl.connection.updated"));
    assert!(!text.contains("hunter2"), "{text}");
}

#[tokio::test]
async fn one_sync_per_model_at_a_time_and_scheduled_syncs() {
    let w = Warehouse::new(Kind::Postgres, "busy").await;
    w.exec(&format!(
        "INSERT INTO {} SELECT 'b' || g, 'b' || g || '@example.com', 'free', TRUE, TRUE FROM generate_series(1, 20000) g",
        w.table
    ))
    .await;
    let ws = workspace().await;
    let model = ws.model(&w).await;
    ws.mapping(
        &model,
        json!({"destinationId": ws.everything, "operation": "identify"}),
    )
    .await;
    let (status, first) = ws
        .server
        .admin("POST", &format!("/api/v1/retl/models/{model}/sync"), None)
        .await;
    assert_eq!(status, 202, "{first}");
    let (status, second) = ws
        .server
        .admin("POST", &format!("/api/v1/retl/models/{model}/sync"), None)
        .await;
    assert_eq!(status, 409, "{second}");
    assert!(
        second["message"]
            .as_str()
            .unwrap()
            .contains(first["runId"].as_str().unwrap()),
        "{second}"
    );
    // Progress is visible while it runs.
    let (_, m) = ws
        .server
        .admin("GET", &format!("/api/v1/retl/models/{model}"), None)
        .await;
    assert_eq!(m["runningRunId"], first["runId"]);
    let run = wait_run(&ws.server, first["runId"].as_str().unwrap()).await;
    assert_eq!(count(&run, "added"), 20_000);

    // An interval schedule starts syncs by itself.
    let (status, _) = ws
        .server
        .admin(
            "PATCH",
            &format!("/api/v1/retl/models/{model}"),
            Some(json!({"schedule": {"everySeconds": 1}})),
        )
        .await;
    assert_eq!(status, 200);
    w.exec(&format!(
        "UPDATE {} SET plan = 'pro' WHERE id = 'b7'",
        w.table
    ))
    .await;
    let run = eventually(Duration::from_secs(30), "a scheduled run", || async {
        let (_, runs) = ws
            .server
            .admin("GET", &format!("/api/v1/retl/models/{model}/runs"), None)
            .await;
        runs.as_array()
            .unwrap()
            .iter()
            .find(|r| r["trigger"] == "schedule" && r["status"] != "running")
            .cloned()
    })
    .await;
    assert_eq!(count(&run, "updated"), 1, "{run}");
    w.drop_table().await;
}

/// A graceful shutdown in the middle of a sync stops it at a chunk boundary; the next start
/// resumes it from the checkpoint and sends each record once.
#[tokio::test]
async fn a_sync_stopped_by_shutdown_resumes_after_restart() {
    let w = Warehouse::new(Kind::Postgres, "shutdown").await;
    w.exec(&format!(
        "INSERT INTO {} SELECT 's' || g, 's' || g || '@example.com', 'free', g % 3 <> 0, NULL FROM generate_series(1, 30000) g",
        w.table
    ))
    .await;
    let ws = workspace().await;
    let model = ws.model(&w).await;
    ws.consent_mapping(&model, json!({"ads_consent": "C0004"}))
        .await;
    let file = ws
        .server
        .create(
            "/api/v1/destinations",
            json!({"name": "File", "integration": "File", "type": "file", "settings": {"path": "retl.jsonl"}}),
        )
        .await;
    let (status, _) = ws
        .server
        .admin(
            "PATCH",
            "/api/v1/consent/categories/C0004",
            Some(json!({"destinations": [ws.ads, file]})),
        )
        .await;
    assert_eq!(status, 200);
    ws.mapping(
        &model,
        json!({"destinationId": file, "operation": "identify"}),
    )
    .await;
    let (_, started) = ws
        .server
        .admin("POST", &format!("/api/v1/retl/models/{model}/sync"), None)
        .await;
    let run_id = started["runId"].as_str().unwrap().to_owned();
    eventually(
        Duration::from_secs(60),
        "the sync to be under way",
        || async {
            let (_, run) = ws
                .server
                .admin("GET", &format!("/api/v1/retl/runs/{run_id}"), None)
                .await;
            (run["extracted"].as_u64().unwrap_or(0) >= 3_000).then_some(())
        },
    )
    .await;
    let config = crate::common::test_config(ws.server.dir.path());
    let dir = ws.server.stop().await;
    let server = TestServer::start_in(dir, config).await;
    let first = server.app.retl.store.run(&run_id).await.unwrap();
    assert_eq!(first.status, "interrupted");
    assert!(first.counters.extracted < 30_000, "{:?}", first.counters);
    // The resumed run was started at start-up.
    let resumed = eventually(Duration::from_secs(120), "the resumed run", || async {
        let (_, runs) = server
            .admin("GET", &format!("/api/v1/retl/models/{model}/runs"), None)
            .await;
        runs.as_array()
            .unwrap()
            .iter()
            .find(|r| r["trigger"] == "resume" && r["status"] != "running")
            .cloned()
    })
    .await;
    assert_eq!(resumed["status"], "succeeded", "{resumed}");
    assert_eq!(resumed["resumedFrom"], run_id.as_str());
    assert_eq!(
        first.counters.added + count(&resumed, "added"),
        30_000,
        "every row added exactly once over the two runs"
    );
    let lines = eventually(Duration::from_secs(60), "the file to fill", || async {
        let text = tokio::fs::read_to_string(server.dir.path().join("files/retl.jsonl"))
            .await
            .unwrap_or_default();
        let ids: Vec<String> = text
            .lines()
            .map(|l| {
                serde_json::from_str::<Value>(l).unwrap()["userId"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        (ids.iter().collect::<BTreeSet<_>>().len() >= 20_000).then_some(ids)
    })
    .await;
    let distinct: BTreeSet<&String> = lines.iter().collect();
    assert_eq!(
        distinct.len(),
        20_000,
        "the consented two thirds, each at least once"
    );
    assert!(
        distinct
            .iter()
            .all(|id| id[1..].parse::<u32>().unwrap() % 3 != 0)
    );
    w.drop_table().await;
}

// ---------------------------------------------------------------------------------------------
// The real binary: kill -9 halfway, and 100,000 rows with bounded memory.

struct Binary {
    child: tokio::process::Child,
    url: String,
    http: reqwest::Client,
}

impl Binary {
    async fn start(dir: &std::path::Path) -> Binary {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args([
                "serve",
                "--data-dir",
                dir.to_str().unwrap(),
                "--listen",
                &format!("127.0.0.1:{port}"),
            ])
            .env("SLUICE_BOOTSTRAP_OWNER_TOKEN", OWNER_TOKEN)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start the sluice binary");
        let b = Binary {
            child,
            url: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
        };
        eventually(
            Duration::from_secs(30),
            "the binary to be ready",
            || async {
                b.http
                    .get(format!("{}/readyz", b.url))
                    .send()
                    .await
                    .ok()
                    .filter(|r| r.status() == 200)
                    .map(|_| ())
            },
        )
        .await;
        b
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut r = self
            .http
            .request(
                reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
                format!("{}{path}", self.url),
            )
            .bearer_auth(OWNER_TOKEN);
        if let Some(body) = body {
            r = r.json(&body);
        }
        let response = r.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn create(&self, path: &str, body: Value) -> String {
        let (status, answer) = self.call("POST", path, Some(body)).await;
        assert_eq!(status, 201, "{path}: {answer}");
        answer["id"].as_str().unwrap().to_owned()
    }

    /// `VmHWM` (peak resident set) and `VmRSS` of the process, in KiB.
    async fn memory(&self) -> (u64, u64) {
        let pid = self.child.id().unwrap();
        let status = tokio::fs::read_to_string(format!("/proc/{pid}/status"))
            .await
            .unwrap();
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
                .unwrap_or(0)
        };
        (field("VmHWM:"), field("VmRSS:"))
    }

    async fn wait_run(&self, run_id: &str, timeout: Duration) -> Value {
        eventually(timeout, "the run to end", || async {
            let (_, run) = self
                .call("GET", &format!("/api/v1/retl/runs/{run_id}"), None)
                .await;
            (run["status"] != "running").then_some(run)
        })
        .await
    }
}

/// A file destination `retl.jsonl` gated by C0004, a model over `w` with the consent mapping,
/// an identify mapping to the file. Returns the model id.
async fn file_workspace(b: &Binary, w: &Warehouse) -> String {
    let file = b
        .create(
            "/api/v1/destinations",
            json!({"name": "File", "integration": "File", "type": "file", "settings": {"path": "retl.jsonl"}}),
        )
        .await;
    b.create(
        "/api/v1/consent/categories",
        json!({"id": "C0004", "name": "Advertising", "destinations": [file]}),
    )
    .await;
    let connection = b
        .create(
            "/api/v1/retl/connections",
            json!({"name": "pg", "kind": "postgres", "url": w.url}),
        )
        .await;
    let model = b
        .create(
            "/api/v1/retl/models",
            json!({"name": "users", "connectionId": connection, "query": w.query(), "uniqueIdColumn": "id"}),
        )
        .await;
    let (status, _) = b
        .call(
            "PUT",
            &format!("/api/v1/retl/models/{model}/consent-mapping"),
            Some(json!({"columns": {"ads_consent": "C0004"}})),
        )
        .await;
    assert_eq!(status, 200);
    b.create(
        &format!("/api/v1/retl/models/{model}/mappings"),
        json!({"destinationId": file, "operation": "identify"}),
    )
    .await;
    model
}

/// The user ids in the file destination's output.
async fn file_ids(dir: &std::path::Path) -> Vec<String> {
    let text = tokio::fs::read_to_string(dir.join("files/retl.jsonl"))
        .await
        .unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| v["userId"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn a_sync_killed_halfway_resumes_without_losing_records() {
    const ROWS: u32 = 40_000;
    let w = Warehouse::new(Kind::Postgres, "kill").await;
    w.exec(&format!(
        "INSERT INTO {} SELECT 'k' || g, 'k' || g || '@example.com', 'free', g % 2 = 0, NULL FROM generate_series(1, {ROWS}) g",
        w.table
    ))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let mut b = Binary::start(dir.path()).await;
    let model = file_workspace(&b, &w).await;
    let (status, started) = b
        .call("POST", &format!("/api/v1/retl/models/{model}/sync"), None)
        .await;
    assert_eq!(status, 202, "{started}");
    let run_id = started["runId"].as_str().unwrap().to_owned();
    eventually(
        Duration::from_secs(120),
        "the sync to be a quarter done",
        || async {
            let (_, run) = b
                .call("GET", &format!("/api/v1/retl/runs/{run_id}"), None)
                .await;
            (run["extracted"].as_u64().unwrap_or(0) >= u64::from(ROWS) / 4).then_some(())
        },
    )
    .await;
    b.child.kill().await.expect("kill -9 the server");

    // Restart: the interrupted run is marked, and a resumed run finishes the job.
    let b = Binary::start(dir.path()).await;
    let (_, first) = b
        .call("GET", &format!("/api/v1/retl/runs/{run_id}"), None)
        .await;
    assert_eq!(first["status"], "interrupted", "{first}");
    assert!(count(&first, "extracted") < u64::from(ROWS), "{first}");
    let resumed = eventually(
        Duration::from_secs(30),
        "the resumed run to start",
        || async {
            let (_, runs) = b
                .call("GET", &format!("/api/v1/retl/models/{model}/runs"), None)
                .await;
            runs.as_array()
                .unwrap()
                .iter()
                .find(|r| r["trigger"] == "resume")
                .map(|r| r["id"].as_str().unwrap().to_owned())
        },
    )
    .await;
    let resumed = b.wait_run(&resumed, Duration::from_secs(180)).await;
    assert_eq!(resumed["status"], "succeeded", "{resumed}");
    assert_eq!(resumed["resumedFrom"], run_id.as_str());
    // The checkpoint moved with the committed counters: together the two runs added each row
    // once, and consent withheld the odd half.
    assert_eq!(
        count(&first, "added") + count(&resumed, "added"),
        u64::from(ROWS)
    );
    assert_eq!(
        count(&first, "filteredByConsent") + count(&resumed, "filteredByConsent"),
        u64::from(ROWS) / 2
    );
    // Every consented record reached the file at least once; no withheld one did.
    let ids = eventually(
        Duration::from_secs(120),
        "every record in the file",
        || async {
            let ids = file_ids(dir.path()).await;
            (ids.iter().collect::<BTreeSet<_>>().len() >= ROWS as usize / 2).then_some(ids)
        },
    )
    .await;
    let distinct: BTreeSet<&String> = ids.iter().collect();
    assert_eq!(distinct.len(), ROWS as usize / 2);
    assert!(
        distinct
            .iter()
            .all(|id| id[1..].parse::<u32>().unwrap() % 2 == 0)
    );
    eprintln!(
        "kill -9 at {} of {ROWS} rows: {} lines for {} records ({} delivered twice)",
        count(&first, "extracted"),
        ids.len(),
        distinct.len(),
        ids.len() - distinct.len()
    );
    // A further sync finds nothing to do.
    let (_, started) = b
        .call("POST", &format!("/api/v1/retl/models/{model}/sync"), None)
        .await;
    let again = b
        .wait_run(started["runId"].as_str().unwrap(), Duration::from_secs(120))
        .await;
    assert_eq!(
        (
            count(&again, "added"),
            count(&again, "updated"),
            count(&again, "unchanged")
        ),
        (0, 0, u64::from(ROWS))
    );
    w.drop_table().await;
}

#[tokio::test]
async fn a_100k_row_model_syncs_with_bounded_memory() {
    const ROWS: u32 = 100_000;
    let w = Warehouse::new(Kind::Postgres, "big").await;
    w.exec(&format!(
        "INSERT INTO {} SELECT 'user-' || g, 'user-' || g || '@example.com', CASE WHEN g % 7 = 0 THEN 'pro' ELSE 'free' END,
                               g % 2 = 0, NULL FROM generate_series(1, {ROWS}) g",
        w.table
    ))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let b = Binary::start(dir.path()).await;
    let model = file_workspace(&b, &w).await;
    let (baseline_peak, _) = b.memory().await;
    let start = Instant::now();
    let (status, started) = b
        .call("POST", &format!("/api/v1/retl/models/{model}/sync"), None)
        .await;
    assert_eq!(status, 202, "{started}");
    let run = b
        .wait_run(started["runId"].as_str().unwrap(), Duration::from_secs(600))
        .await;
    let sync_time = start.elapsed();
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(count(&run, "added"), u64::from(ROWS));
    assert_eq!(count(&run, "queued"), u64::from(ROWS) / 2);
    assert_eq!(count(&run, "filteredByConsent"), u64::from(ROWS) / 2);
    let (peak, rss) = b.memory().await;
    let ids = eventually(
        Duration::from_secs(300),
        "every record in the file",
        || async {
            let ids = file_ids(dir.path()).await;
            (ids.len() >= ROWS as usize / 2).then_some(ids)
        },
    )
    .await;
    let delivered = start.elapsed();
    assert_eq!(ids.iter().collect::<BTreeSet<_>>().len(), ROWS as usize / 2);

    // A second, unchanged sync reads everything and sends nothing.
    let start2 = Instant::now();
    let (_, started) = b
        .call("POST", &format!("/api/v1/retl/models/{model}/sync"), None)
        .await;
    let again = b
        .wait_run(started["runId"].as_str().unwrap(), Duration::from_secs(600))
        .await;
    let resync_time = start2.elapsed();
    assert_eq!(count(&again, "unchanged"), u64::from(ROWS));
    let (peak2, _) = b.memory().await;
    eprintln!(
        "RETL 100k rows (debug build): sync {:.1} s, all delivered to the file after {:.1} s, unchanged resync {:.1} s; \
         peak RSS {} MiB before, {} MiB after the sync, {} MiB after the resync (RSS now {} MiB)",
        sync_time.as_secs_f64(),
        delivered.as_secs_f64(),
        resync_time.as_secs_f64(),
        baseline_peak / 1024,
        peak / 1024,
        peak2 / 1024,
        rss / 1024
    );
    // Rows stream in chunks of 1,000: memory does not grow with the model. 100,000 rows of
    // this shape are ~25 MB as JSON values; the whole process stays well under that above its
    // baseline.
    assert!(
        peak2.saturating_sub(baseline_peak) < 150 * 1024,
        "peak RSS grew by {} MiB during the syncs",
        (peak2 - baseline_peak) / 1024
    );
    w.drop_table().await;
}

// ---------------------------------------------------------------------------------------------
// The command line.

/// `sluice ARGS --url … --token …` as the real binary; `(success, stdout, stderr)`.
async fn cli(server: &TestServer, args: &[&str]) -> (bool, String, String) {
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(args)
        .args(["--url", &server.url, "--token", OWNER_TOKEN])
        .env_remove("SLUICE_URL")
        .env_remove("SLUICE_TOKEN")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the sluice binary starts");
    let output = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
        .await
        .expect("sluice finishes within 120 s")
        .expect("sluice ran");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn cli_connections_models_and_sync_follow() {
    let w = Warehouse::new(Kind::Sqlite, "cli").await;
    w.insert(&[
        ("c1", Some(true), None),
        ("c2", Some(false), None),
        ("c3", Some(true), None),
    ])
    .await;
    let ws = workspace().await;
    let s = &ws.server;
    let ok = |(success, out, err): (bool, String, String), what: &str| {
        assert!(success, "{what}\n--- stdout\n{out}--- stderr\n{err}");
        out
    };
    let out = ok(
        cli(
            s,
            &[
                "retl",
                "connections",
                "create",
                "--name",
                "wh",
                "--kind",
                "sqlite",
                "--warehouse-url",
                &w.url,
            ],
        )
        .await,
        "connections create",
    );
    assert!(out.contains("wh") && out.contains("sqlite"), "{out}");
    let out = ok(
        cli(s, &["retl", "connections", "test", "wh"]).await,
        "connections test",
    );
    assert!(out.starts_with("OK: connected to SQLite"), "{out}");
    let out = ok(
        cli(s, &["retl", "connections", "list"]).await,
        "connections list",
    );
    assert!(out.starts_with("ID "), "{out}");

    let query = w.query();
    ok(
        cli(
            s,
            &[
                "retl",
                "models",
                "create",
                "--name",
                "users",
                "--connection",
                "wh",
                "--query",
                &query,
                "--id-column",
                "id",
            ],
        )
        .await,
        "models create",
    );
    let out = ok(
        cli(s, &["retl", "models", "preview", "users"]).await,
        "preview",
    );
    let mut lines = out.lines();
    assert!(lines.next().unwrap().starts_with("id "), "{out}");
    assert_eq!(lines.count(), 3, "{out}");
    ok(
        cli(
            s,
            &[
                "retl",
                "models",
                "consent",
                "users",
                "--column",
                "ads_consent=C0004",
            ],
        )
        .await,
        "consent",
    );
    ok(
        cli(
            s,
            &[
                "retl",
                "models",
                "map",
                "users",
                "--destination",
                &ws.ads,
                "--on",
                "added,updated,deleted",
            ],
        )
        .await,
        "map",
    );
    let out = ok(cli(s, &["retl", "models", "list"]).await, "models list");
    assert!(out.contains("ads_consent→C0004"), "{out}");

    let out = ok(
        cli(s, &["retl", "sync", "users", "--follow"]).await,
        "sync --follow",
    );
    let field = |name: &str| {
        out.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().last())
            .unwrap_or_else(|| panic!("no {name} in\n{out}"))
            .to_owned()
    };
    assert_eq!(field("status"), "succeeded");
    assert_eq!(field("added"), "3");
    assert_eq!(field("filtered by consent"), "1");
    assert_eq!(field("queued"), "2");
    ws.settled().await;
    assert_eq!(
        sorted(ws.received("/ads")),
        pairs(&[("c1", "added"), ("c3", "added")])
    );

    let out = ok(cli(s, &["retl", "runs", "users"]).await, "runs");
    assert!(
        out.starts_with("RUN ") && out.contains("succeeded"),
        "{out}"
    );
    let json: Value = serde_json::from_str(&ok(
        cli(s, &["retl", "runs", "users", "--json"]).await,
        "runs --json",
    ))
    .unwrap();
    assert_eq!(json[0]["filteredByConsent"], 1);

    // Failures say why and exit non-zero.
    ok(
        cli(
            s,
            &[
                "retl",
                "connections",
                "create",
                "--name",
                "bad",
                "--kind",
                "postgres",
                "--warehouse-url",
                "postgres://postgres@127.0.0.1:1/test",
            ],
        )
        .await,
        "create bad",
    );
    let (success, _, err) = cli(s, &["retl", "connections", "test", "bad"]).await;
    assert!(!success);
    assert!(err.contains("unreachable"), "{err}");
    let (success, _, err) = cli(s, &["retl", "sync", "nope"]).await;
    assert!(!success);
    assert!(err.contains("no model with id or name \"nope\""), "{err}");
}

#[tokio::test]
async fn sqlite_connections_cannot_read_sluices_own_store() {
    let ws = workspace().await;
    let s = &ws.server;
    let control = s.dir.path().join("control.db");
    let (status, answer) = s
        .admin(
            "POST",
            "/api/v1/retl/connections",
            Some(json!({"name": "sneaky", "kind": "sqlite", "url": format!("sqlite://{}", control.display())})),
        )
        .await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["code"], "path_not_allowed", "{answer}");

    // A symlink in an allowed directory, pointing at the control store: refused on use too.
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("innocent.db");
    std::os::unix::fs::symlink(&control, &link).unwrap();
    let (status, answer) = s
        .admin(
            "POST",
            "/api/v1/retl/connections",
            Some(json!({"name": "link", "kind": "sqlite", "url": format!("sqlite://{}", link.display())})),
        )
        .await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["code"], "path_not_allowed", "{answer}");
}

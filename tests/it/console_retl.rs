//! Console page Reverse ETL over HTTP, against a real SQLite warehouse file and the real
//! PostgreSQL on 127.0.0.1:5432 (database `test`, a schema of its own per test).
//!
//! Each test signs in as real users through `/login`, uses the forms as a browser without
//! JavaScript would, and checks the result through the admin API and the audit trail: a
//! connection created and tested (good and bad URL, error inline), a model created, its
//! preview, the consent mapping saved by an owner and refused to a member, a destination
//! mapping, "Sync now" and the run's counts in the history; viewers are read-only.

use std::time::Duration;

use serde_json::{Value, json};
use sqlx::Connection as _;

use crate::common::{Receiver, TestServer, eventually};
use crate::console_client::{Console, audit_actions, element, tag};

const PG_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
/// Trust authentication ignores the password: it is there to be redacted.
const PG_URL_WITH_PASSWORD: &str = "postgres://postgres:pg-secret-4711@127.0.0.1:5432/test";
const PG_SECRET: &str = "pg-secret-4711";

/// The HTML of the element with this id up to the next `</tag>`.
fn block<'a>(html: &'a str, id: &str, tag: &str) -> &'a str {
    let at = html
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no element #{id} in:\n{html}"));
    let end = at + html[at..].find(&format!("</{tag}>")).unwrap();
    &html[at..end]
}

/// The number in a run row's `data-field` cell.
fn run_cell(html: &str, run_id: &str, field: &str) -> u64 {
    let row = block(html, &format!("run-{run_id}"), "tr");
    let at = row
        .find(&format!("data-field=\"{field}\""))
        .unwrap_or_else(|| panic!("no {field} cell in:\n{row}"));
    let start = at + row[at..].find('>').unwrap() + 1;
    let end = start + row[start..].find('<').unwrap();
    row[start..end]
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("{field} is not a number in:\n{row}"))
}

/// The id at the end of a redirect to `/prefix/{id}?ok=...`.
fn id_in(location: &str, prefix: &str) -> String {
    let rest = location
        .strip_prefix(prefix)
        .unwrap_or_else(|| panic!("{location} is not under {prefix}"));
    rest.split(['?', '#']).next().unwrap().to_owned()
}

fn unique(case: &str) -> String {
    format!(
        "console_retl_{case}_{}_{}",
        std::process::id(),
        rand::random::<u32>()
    )
}

/// A `users` table with an advertising consent column in a test warehouse.
struct Warehouse {
    /// The URL Sluice connects with.
    url: String,
    kind: &'static str,
    /// `users`, or `<schema>.users` on PostgreSQL.
    table: String,
    /// PostgreSQL: the test's own schema, dropped at the end.
    schema: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

/// u1 consented to advertising, u2 refused, u3 said nothing (NULL).
const ROWS: &str = "('u1', 'u1@example.com', TRUE), ('u2', 'u2@example.com', FALSE), ('u3', 'u3@example.com', NULL)";

impl Warehouse {
    async fn sqlite() -> Warehouse {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("warehouse.db");
        let c = rusqlite::Connection::open(&path).unwrap();
        c.execute_batch(&format!(
            "CREATE TABLE users (id TEXT PRIMARY KEY, email TEXT, ads_consent BOOLEAN);
             INSERT INTO users VALUES {ROWS};"
        ))
        .unwrap();
        Warehouse {
            url: format!("sqlite://{}", path.display()),
            kind: "sqlite",
            table: "users".into(),
            schema: None,
            _dir: Some(dir),
        }
    }

    async fn postgres(case: &str) -> Warehouse {
        let schema = unique(case);
        pg_exec(&format!(
            "CREATE SCHEMA {schema};
             CREATE TABLE {schema}.users (id TEXT PRIMARY KEY, email TEXT, ads_consent BOOLEAN);
             INSERT INTO {schema}.users VALUES {ROWS};"
        ))
        .await;
        Warehouse {
            url: PG_URL_WITH_PASSWORD.into(),
            kind: "postgres",
            table: format!("{schema}.users"),
            schema: Some(schema),
            _dir: None,
        }
    }

    fn query(&self) -> String {
        format!(
            "SELECT id, email, ads_consent FROM {} ORDER BY id",
            self.table
        )
    }

    async fn drop(&self) {
        if let Some(schema) = &self.schema {
            pg_exec(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE")).await;
        }
    }
}

async fn pg_exec(sql: &str) {
    let mut c = sqlx::PgConnection::connect(PG_URL).await.unwrap_or_else(|e| {
        panic!("the test PostgreSQL at {PG_URL} is unreachable: {e}\nthese tests need PostgreSQL on 127.0.0.1:5432 with a database `test` (trust authentication)")
    });
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(&mut c)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// A workspace with a webhook destination "Ads" gated by category `C0004` (Advertising).
async fn workspace() -> (TestServer, Receiver, String) {
    let server = TestServer::start().await;
    let hook = Receiver::start().await;
    let ads = server
        .webhook(
            "Ads",
            "Google Ads",
            &format!("{}/ads", hook.url),
            json!({"batchSize": 100}),
        )
        .await;
    server
        .create(
            "/api/v1/consent/categories",
            json!({"id": "C0004", "name": "Advertising", "destinations": [ads]}),
        )
        .await;
    (server, hook, ads)
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

/// Create a connection through the list page's form; returns its id.
async fn create_connection(
    console: &Console,
    server: &TestServer,
    name: &str,
    kind: &str,
    url: &str,
) -> String {
    let created = console
        .post(
            "/retl/connections",
            &[
                ("name", name),
                ("kind", kind),
                ("url", url),
                ("timeout", ""),
            ],
        )
        .await;
    assert_eq!(created.status, 303, "{}", created.html);
    assert!(
        created.location.starts_with("/retl?ok="),
        "{}",
        created.location
    );
    let (_, all) = server.admin("GET", "/api/v1/retl/connections", None).await;
    all.as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no connection {name}: {all}"))["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Create a model through the list page's form; returns its id.
async fn create_model(console: &Console, connection: &str, name: &str, query: &str) -> String {
    let created = console
        .post(
            "/retl/models",
            &[
                ("name", name),
                ("connection_id", connection),
                ("query", query),
                ("unique_id_column", "id"),
                ("user_id_column", ""),
                ("schedule_every", ""),
                ("schedule_unit", "hours"),
                ("row_limit", ""),
            ],
        )
        .await;
    assert_eq!(created.status, 303, "{}", created.html);
    id_in(&created.location, "/retl/models/")
}

/// The whole flow of an owner on one warehouse: connection (tested), model, preview, consent
/// mapping, destination mapping, "Sync now", the run in the history, the audit trail.
async fn owner_flow(w: Warehouse) {
    let (server, hook, ads) = workspace().await;
    let owner = Console::sign_in_at(&server, "owner", "/retl").await;

    let empty = owner.get("/retl").await;
    assert_eq!(empty.status, 200);
    assert!(empty.html.contains("No connections yet"), "{}", empty.html);

    // A connection through the form; the list shows it with its URL redacted.
    let connection = create_connection(&owner, &server, "Warehouse", w.kind, &w.url).await;
    let list = owner.get("/retl").await;
    let row = block(&list.html, &format!("connection-{connection}"), "tr");
    assert!(row.contains("Warehouse"), "{row}");
    assert!(
        !list.html.contains(PG_SECRET),
        "the password is on the page"
    );
    if w.kind == "postgres" {
        assert!(
            row.contains("postgres://postgres:********@127.0.0.1:5432/test"),
            "{row}"
        );
    }

    // "Test connection" answers inline, in the connection's row.
    let tested = owner
        .post(
            &format!("/retl/connections/{connection}/test"),
            &[("from", "list")],
        )
        .await;
    assert_eq!(tested.status, 200, "{}", tested.html);
    let result = element(&tested.html, &format!("test-result-{connection}"));
    assert!(result.starts_with("Connection works"), "{result}");
    assert!(
        tag(&tested.html, &format!("test-result-{connection}")).contains("role=\"status\""),
        "{result}"
    );

    // A model through the form, then its preview: the columns and the rows.
    let model = create_model(&owner, &connection, "Customers", &w.query()).await;
    let page = owner.get(&format!("/retl/models/{model}")).await;
    assert_eq!(page.status, 200, "{}", page.html);
    assert!(page.html.contains("id=\"consent-not-enforced\""));
    let preview = owner
        .post(&format!("/retl/models/{model}/preview"), &[])
        .await;
    assert_eq!(preview.status, 200, "{}", preview.html);
    let table = block(&preview.html, "preview", "table");
    for text in ["ads_consent", "u1@example.com", "u2", "u3", "NULL"] {
        assert!(
            table.contains(text),
            "{text} missing from the preview:\n{table}"
        );
    }
    assert_eq!(element(&preview.html, "preview-count"), "3 rows shown.");

    // The owner maps the consent column; the API has it.
    let mapping_form = block(&page.html, "consent-mapping", "table");
    assert!(!mapping_form.contains("disabled"), "{mapping_form}");
    let saved = owner
        .post(
            &format!("/retl/models/{model}/consent-mapping"),
            &[
                ("column", "id"),
                ("category", ""),
                ("column", "email"),
                ("category", ""),
                ("column", "ads_consent"),
                ("category", "C0004"),
            ],
        )
        .await;
    assert_eq!(saved.status, 303, "{}", saved.html);
    let (_, api_model) = server
        .admin("GET", &format!("/api/v1/retl/models/{model}"), None)
        .await;
    assert_eq!(
        api_model["consentMapping"]["columns"],
        json!({"ads_consent": "C0004"}),
        "{api_model}"
    );
    let page = owner.get(&format!("/retl/models/{model}")).await;
    assert!(!page.html.contains("id=\"consent-not-enforced\""));
    assert!(
        block(&page.html, "consent-mapping", "table").contains("<option value=\"C0004\" selected>"),
        "the saved category is not selected"
    );

    // A category mapped twice is refused inline, and nothing changes.
    let twice = owner
        .post(
            &format!("/retl/models/{model}/consent-mapping"),
            &[
                ("column", "email"),
                ("category", "C0004"),
                ("column", "ads_consent"),
                ("category", "C0004"),
            ],
        )
        .await;
    assert_eq!(twice.status, 400);
    assert!(
        element(&twice.html, "consent-error").contains("mapped to both"),
        "{}",
        element(&twice.html, "consent-error")
    );

    // "Sync now" is blocked until the model has a destination mapping.
    assert!(tag(&page.html, "sync-now").contains("disabled"));
    let mapped = owner
        .post(
            &format!("/retl/models/{model}/mappings"),
            &[
                ("target", &format!("destination:{ads}")),
                ("operation", "identify"),
                ("event", ""),
                ("on_added", "on"),
                ("on_updated", "on"),
            ],
        )
        .await;
    assert_eq!(mapped.status, 303, "{}", mapped.html);
    let (_, mappings) = server
        .admin(
            "GET",
            &format!("/api/v1/retl/models/{model}/mappings"),
            None,
        )
        .await;
    assert_eq!(mappings.as_array().unwrap().len(), 1, "{mappings}");
    assert_eq!(mappings[0]["destinationId"], ads.as_str());
    assert_eq!(mappings[0]["on"], json!(["added", "updated"]));

    // A track mapping without an event name is refused inline.
    let nameless = owner
        .post(
            &format!("/retl/models/{model}/mappings"),
            &[
                ("target", &format!("destination:{ads}")),
                ("operation", "track"),
                ("event", ""),
                ("on_added", "on"),
            ],
        )
        .await;
    assert_eq!(nameless.status, 400);
    assert!(element(&nameless.html, "mapping-error").contains("event name"));

    // Sync now: the run appears in the history with the right counts.
    let page = owner.get(&format!("/retl/models/{model}")).await;
    assert!(!tag(&page.html, "sync-now").contains("disabled"));
    let started = owner.post(&format!("/retl/models/{model}/sync"), &[]).await;
    assert_eq!(started.status, 303, "{}", started.html);
    let (_, runs) = server
        .admin("GET", &format!("/api/v1/retl/models/{model}/runs"), None)
        .await;
    let run_id = runs[0]["id"].as_str().unwrap().to_owned();
    let run = wait_run(&server, &run_id).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let page = owner.get(&format!("/retl/models/{model}")).await;
    for (field, expected) in [
        ("extracted", 3),
        ("added", 3),
        ("updated", 0),
        ("deleted", 0),
        ("filteredByConsent", 2),
        ("queued", 1),
        ("failed", 0),
    ] {
        assert_eq!(
            run_cell(&page.html, &run_id, field),
            expected,
            "{field} of run {run}"
        );
        assert_eq!(run[field], expected, "{field}: {run}");
    }
    assert!(block(&page.html, &format!("run-{run_id}"), "tr").contains("Succeeded"));
    // A finished run is not polled.
    assert!(!tag(&page.html, &format!("run-{run_id}")).contains("data-progress"));
    // Only the consented row reaches Ads.
    eventually(Duration::from_secs(20), "u1 at Ads", || async {
        let users: Vec<String> = hook
            .requests()
            .iter()
            .filter(|g| g.path == "/ads")
            .flat_map(|g| g.events())
            .filter_map(|e| e["userId"].as_str().map(str::to_owned))
            .collect();
        (users == ["u1"]).then_some(())
    })
    .await;

    // The progress JSON retl.js polls is the API's run.
    let progress = owner.get(&format!("/retl/runs/{run_id}/progress")).await;
    assert_eq!(progress.status, 200);
    let progress: Value = serde_json::from_str(&progress.html).unwrap();
    assert_eq!(progress, run);

    // Every step is in the audit trail, by the owner.
    let connections = audit_actions(&server, "retl_connection").await;
    assert!(connections.contains(&("retl.connection.created".into(), owner.email.clone())));
    let models = audit_actions(&server, "retl_model").await;
    for action in [
        "retl.model.created",
        "retl.consent_mapping.changed",
        "retl.sync.started",
    ] {
        assert!(
            models.contains(&(action.into(), owner.email.clone())),
            "{action} missing: {models:?}"
        );
    }
    let mappings = audit_actions(&server, "retl_mapping").await;
    assert!(mappings.contains(&("retl.mapping.created".into(), owner.email.clone())));
    let (_, entries) = server
        .admin("GET", "/api/v1/audit?resourceType=retl_connection", None)
        .await;
    assert!(!entries.to_string().contains(PG_SECRET), "{entries}");
    w.drop().await;
}

#[tokio::test]
async fn owner_connects_previews_maps_consent_and_syncs_sqlite() {
    owner_flow(Warehouse::sqlite().await).await;
}

#[tokio::test]
async fn owner_connects_previews_maps_consent_and_syncs_postgres() {
    owner_flow(Warehouse::postgres("owner").await).await;
}

/// Bad URLs, unreachable warehouses and bad models show their errors inline, next to the field,
/// without the password.
#[tokio::test]
async fn connection_and_model_errors_are_inline() {
    let (server, _hook, _ads) = workspace().await;
    let owner = Console::sign_in_at(&server, "owner", "/retl").await;

    // A URL of the wrong kind: the form comes back with the error next to the URL, redacted.
    let wrong = owner
        .post(
            "/retl/connections",
            &[
                ("name", "Wrong"),
                ("kind", "mysql"),
                ("url", "postgres://reader:top-secret-99@db.example.com/x"),
                ("timeout", ""),
            ],
        )
        .await;
    assert_eq!(wrong.status, 400, "{}", wrong.html);
    assert!(
        element(&wrong.html, "connection-url-error").contains("mysql"),
        "{}",
        element(&wrong.html, "connection-url-error")
    );
    assert!(tag(&wrong.html, "connection-url").contains("aria-invalid=\"true\""));
    assert!(
        !wrong.html.contains("top-secret-99"),
        "the password came back"
    );
    assert!(tag(&wrong.html, "connection-url").contains("reader:********@db.example.com"));
    let bad_timeout = owner
        .post(
            "/retl/connections",
            &[
                ("name", "Slow"),
                ("kind", "sqlite"),
                ("url", "sqlite:///tmp/x.db"),
                ("timeout", "forever"),
            ],
        )
        .await;
    assert_eq!(bad_timeout.status, 400);
    assert!(element(&bad_timeout.html, "connection-timeout-error").contains("seconds"));
    let (_, none) = server.admin("GET", "/api/v1/retl/connections", None).await;
    assert_eq!(none, json!([]), "an invalid form created a connection");

    // A well-formed URL nobody answers at: created, and its test fails inline.
    let nowhere = create_connection(
        &owner,
        &server,
        "Nowhere",
        "postgres",
        "postgres://reader:secret-nowhere@127.0.0.1:1/test",
    )
    .await;
    let tested = owner
        .post(
            &format!("/retl/connections/{nowhere}/test"),
            &[("from", "list")],
        )
        .await;
    assert_eq!(tested.status, 200);
    let result = element(&tested.html, &format!("test-result-{nowhere}"));
    assert!(result.starts_with("Connection failed"), "{result}");
    assert!(tag(&tested.html, &format!("test-result-{nowhere}")).contains("role=\"alert\""));
    assert!(!tested.html.contains("secret-nowhere"));
    // And from the connection's own page.
    let detail = owner
        .post(
            &format!("/retl/connections/{nowhere}/test"),
            &[("from", "detail")],
        )
        .await;
    assert_eq!(detail.status, 200);
    assert!(
        element(&detail.html, &format!("test-result-{nowhere}")).starts_with("Connection failed")
    );
    assert!(element(&detail.html, "connection-url-shown").contains("reader:********@127.0.0.1:1"));
    assert!(!detail.html.contains("secret-nowhere"));

    // A SQLite file that does not exist (in a directory the tests may read) fails its test too.
    let empty_dir = tempfile::tempdir().unwrap();
    let missing_url = format!(
        "sqlite://{}",
        empty_dir
            .path()
            .join("missing")
            .join("warehouse.db")
            .display()
    );
    let missing = create_connection(&owner, &server, "Missing file", "sqlite", &missing_url).await;
    let tested = owner
        .post(
            &format!("/retl/connections/{missing}/test"),
            &[("from", "list")],
        )
        .await;
    assert!(
        element(&tested.html, &format!("test-result-{missing}")).starts_with("Connection failed"),
        "{}",
        element(&tested.html, &format!("test-result-{missing}"))
    );

    // A model whose identifier column the query does not return: the error is next to it.
    let w = Warehouse::sqlite().await;
    let good = create_connection(&owner, &server, "Good", "sqlite", &w.url).await;
    let bad = owner
        .post(
            "/retl/models",
            &[
                ("name", "Customers"),
                ("connection_id", &good),
                ("query", &w.query()),
                ("unique_id_column", "customer_id"),
                ("user_id_column", ""),
                ("schedule_every", ""),
                ("schedule_unit", "hours"),
                ("row_limit", ""),
            ],
        )
        .await;
    assert_eq!(bad.status, 400, "{}", bad.html);
    let error = element(&bad.html, "model-unique-id-error");
    assert!(
        error.contains("customer_id") && error.contains("ads_consent"),
        "{error}"
    );
    // The typed query comes back.
    assert!(element(&bad.html, "model-query").contains("SELECT id, email, ads_consent"));
    // Not a SELECT: the error is next to the query.
    let write = owner
        .post(
            "/retl/models",
            &[
                ("name", "Sneaky"),
                ("connection_id", &good),
                ("query", "DELETE FROM users"),
                ("unique_id_column", "id"),
            ],
        )
        .await;
    assert_eq!(write.status, 400, "{}", write.html);
    assert!(
        write.html.contains("id=\"model-query-error\""),
        "{}",
        write.html
    );
    let (_, models) = server.admin("GET", "/api/v1/retl/models", None).await;
    assert_eq!(models, json!([]));

    // A schedule through the settings form, shown in its largest unit.
    let model = create_model(&owner, &good, "Customers", &w.query()).await;
    let saved = owner
        .post(
            &format!("/retl/models/{model}"),
            &[
                ("name", "Customers"),
                ("query", &w.query()),
                ("unique_id_column", "id"),
                ("user_id_column", ""),
                ("schedule_every", "2"),
                ("schedule_unit", "hours"),
                ("row_limit", "500"),
            ],
        )
        .await;
    assert_eq!(saved.status, 303, "{}", saved.html);
    let (_, api_model) = server
        .admin("GET", &format!("/api/v1/retl/models/{model}"), None)
        .await;
    assert_eq!(api_model["schedule"], json!({"everySeconds": 7200}));
    assert_eq!(api_model["rowLimit"], 500);
    let page_after = owner.get(&format!("/retl/models/{model}")).await;
    assert_eq!(
        element(&page_after.html, "model-schedule"),
        "Every 2 hours."
    );
    assert!(tag(&page_after.html, "model-schedule-every").contains("value=\"2\""));
}

/// Members manage connections, models and syncs but see the consent mapping disabled, and a
/// POST to it is refused.
#[tokio::test]
async fn members_cannot_change_consent_mappings() {
    let (server, _hook, ads) = workspace().await;
    let w = Warehouse::sqlite().await;
    let member = Console::sign_in_at(&server, "member", "/retl").await;
    let connection = create_connection(&member, &server, "Warehouse", "sqlite", &w.url).await;
    let model = create_model(&member, &connection, "Customers", &w.query()).await;

    let page = member.get(&format!("/retl/models/{model}")).await;
    assert_eq!(page.status, 200);
    assert_eq!(
        element(&page.html, "consent-reason"),
        "Only owners can change consent mappings."
    );
    let editor = block(&page.html, "consent-mapping", "table");
    assert_eq!(
        editor.matches("<select").count(),
        editor.matches(" disabled").count(),
        "every select is disabled: {editor}"
    );
    assert!(editor.matches("<select").count() == 3, "{editor}");

    // A forged POST (with the member's valid CSRF token) is refused by role.
    let refused = member
        .post(
            &format!("/retl/models/{model}/consent-mapping"),
            &[("column", "ads_consent"), ("category", "C0004")],
        )
        .await;
    assert_eq!(refused.status, 403, "{}", refused.html);
    assert!(refused.html.contains("owner"), "{}", refused.html);
    let (_, api_model) = server
        .admin("GET", &format!("/api/v1/retl/models/{model}"), None)
        .await;
    assert_eq!(api_model["consentMapping"]["columns"], json!({}));

    // Members may preview, map and sync.
    let preview = member
        .post(&format!("/retl/models/{model}/preview"), &[])
        .await;
    assert_eq!(preview.status, 200);
    let mapped = member
        .post(
            &format!("/retl/models/{model}/mappings"),
            &[
                ("target", &format!("destination:{ads}")),
                ("operation", "track"),
                ("event", "Customer Synced"),
                ("on_added", "on"),
            ],
        )
        .await;
    assert_eq!(mapped.status, 303, "{}", mapped.html);
    let started = member
        .post(&format!("/retl/models/{model}/sync"), &[])
        .await;
    assert_eq!(started.status, 303, "{}", started.html);
    let (_, runs) = server
        .admin("GET", &format!("/api/v1/retl/models/{model}/runs"), None)
        .await;
    let run = wait_run(&server, runs[0]["id"].as_str().unwrap()).await;
    // No consent mapping: consent is not enforced, every row is queued.
    assert_eq!(run["queued"], 3, "{run}");
    assert_eq!(run["filteredByConsent"], 0, "{run}");
    assert_eq!(run["startedBy"], member.email.as_str(), "{run}");

    let changed = audit_actions(&server, "retl_model").await;
    assert!(
        !changed
            .iter()
            .any(|(a, _)| a == "retl.consent_mapping.changed")
    );
}

/// Viewers see connections, models and runs, every control disabled with its reason, and
/// their POSTs are refused.
#[tokio::test]
async fn viewers_are_read_only() {
    let (server, _hook, ads) = workspace().await;
    let w = Warehouse::sqlite().await;
    let owner = Console::sign_in_at(&server, "owner", "/retl").await;
    let connection = create_connection(&owner, &server, "Warehouse", "sqlite", &w.url).await;
    let model = create_model(&owner, &connection, "Customers", &w.query()).await;
    let viewer = Console::sign_in_at(&server, "viewer", "/retl").await;

    let list = viewer.get("/retl").await;
    assert_eq!(list.status, 200);
    assert!(list.html.contains("Warehouse") && list.html.contains("Customers"));
    assert!(
        element(&list.html, "create-connection-reason").contains("Viewers cannot change"),
        "{}",
        list.html
    );
    assert!(tag(&list.html, "connection-name").contains("disabled"));
    assert!(tag(&list.html, "model-query").contains("disabled"));
    assert!(list.html.contains("aria-describedby=\"test-reason\""));

    let page = viewer.get(&format!("/retl/models/{model}")).await;
    assert_eq!(page.status, 200);
    assert!(tag(&page.html, "sync-now").contains("disabled"));
    assert!(element(&page.html, "sync-reason").contains("Viewers cannot change"));
    assert!(element(&page.html, "consent-reason").contains("Only owners"));
    assert!(tag(&page.html, "mapping-target").contains("disabled"));
    assert!(tag(&page.html, "model-name").contains("disabled"));
    let connection_page = viewer.get(&format!("/retl/connections/{connection}")).await;
    assert_eq!(connection_page.status, 200);
    assert!(tag(&connection_page.html, "connection-url").contains("disabled"));

    // Every action is refused, with a valid CSRF token or a forged one.
    let target = format!("destination:{ads}");
    let attempts: Vec<(String, Vec<(&str, &str)>)> = vec![
        (
            "/retl/connections".into(),
            vec![
                ("name", "Mine"),
                ("kind", "sqlite"),
                ("url", "sqlite:///tmp/a.db"),
            ],
        ),
        (format!("/retl/connections/{connection}/test"), vec![]),
        (
            format!("/retl/connections/{connection}"),
            vec![("name", "Renamed"), ("url", w.url.as_str())],
        ),
        (
            format!("/retl/connections/{connection}/delete"),
            vec![("confirm_name", "Warehouse")],
        ),
        (
            "/retl/models".into(),
            vec![
                ("name", "Mine"),
                ("connection_id", connection.as_str()),
                ("query", "SELECT 1 AS id"),
                ("unique_id_column", "id"),
            ],
        ),
        (format!("/retl/models/{model}/preview"), vec![]),
        (
            format!("/retl/models/{model}/consent-mapping"),
            vec![("column", "ads_consent"), ("category", "C0004")],
        ),
        (
            format!("/retl/models/{model}/mappings"),
            vec![
                ("target", target.as_str()),
                ("operation", "identify"),
                ("on_added", "on"),
            ],
        ),
        (format!("/retl/models/{model}/sync"), vec![]),
        (format!("/retl/models/{model}"), vec![("name", "Renamed")]),
        (
            format!("/retl/models/{model}/delete"),
            vec![("confirm_name", "Customers")],
        ),
    ];
    for (path, fields) in &attempts {
        let refused = viewer.post(path, fields).await;
        assert_eq!(refused.status, 403, "viewer POST {path}: {}", refused.html);
        let forged = viewer.forge(path, fields).await;
        assert_eq!(forged.status, 403, "forged POST {path}");
    }
    // An owner's forged POST is refused too.
    let forged = owner
        .forge(&format!("/retl/models/{model}/sync"), &[])
        .await;
    assert_eq!(forged.status, 403);

    let (_, connections) = server.admin("GET", "/api/v1/retl/connections", None).await;
    assert_eq!(connections.as_array().unwrap().len(), 1, "{connections}");
    assert_eq!(connections[0]["name"], "Warehouse");
    let (_, api_model) = server
        .admin("GET", &format!("/api/v1/retl/models/{model}"), None)
        .await;
    assert_eq!(api_model["name"], "Customers");
    assert_eq!(api_model["mappings"], json!([]));
    assert_eq!(api_model["consentMapping"]["columns"], json!({}));
    let (_, runs) = server
        .admin("GET", &format!("/api/v1/retl/models/{model}/runs"), None)
        .await;
    assert_eq!(runs, json!([]));

    // Viewers may follow a run's progress (the API lets them read runs).
    let unknown = viewer.get("/retl/runs/no-such-run/progress").await;
    assert_eq!(unknown.status, 404);
    // Without a session, the progress JSON is not served.
    let anonymous = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!("{}/retl/runs/x/progress", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 303);
}

/// A running sync's row carries the progress URL that `retl.js` polls; the page without
/// JavaScript shows the numbers the run has so far.
#[tokio::test]
async fn running_sync_row_shows_progress() {
    let (server, _hook, ads) = workspace().await;
    // Enough rows that the sync is still running when the page is loaded.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.db");
    let c = rusqlite::Connection::open(&path).unwrap();
    c.execute_batch(
        "CREATE TABLE users (id TEXT PRIMARY KEY, email TEXT, ads_consent BOOLEAN);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200000)
         INSERT INTO users SELECT 'u' || i, 'u' || i || '@example.com', i % 2 FROM n;",
    )
    .unwrap();
    drop(c);
    let owner = Console::sign_in_at(&server, "owner", "/retl").await;
    let url = format!("sqlite://{}", path.display());
    let connection = create_connection(&owner, &server, "Big", "sqlite", &url).await;
    let model = create_model(
        &owner,
        &connection,
        "Everyone",
        "SELECT id, email, ads_consent FROM users",
    )
    .await;
    server
        .create(
            &format!("/api/v1/retl/models/{model}/mappings"),
            // Deletions only: the first sync extracts and checkpoints every row but sends none.
            json!({"destinationId": ads, "operation": "identify", "on": ["deleted"]}),
        )
        .await;
    let started = owner.post(&format!("/retl/models/{model}/sync"), &[]).await;
    assert_eq!(started.status, 303);
    let page = owner.get(&format!("/retl/models/{model}")).await;
    let (_, runs) = server
        .admin("GET", &format!("/api/v1/retl/models/{model}/runs"), None)
        .await;
    let run_id = runs[0]["id"].as_str().unwrap().to_owned();
    let row = tag(&page.html, &format!("run-{run_id}")).to_owned();
    if page.html.contains("id=\"sync-running\"") {
        // Still running when the page was drawn: the row is polled and "Sync now" waits.
        assert!(
            row.contains(&format!("data-progress=\"/retl/runs/{run_id}/progress\"")),
            "{row}"
        );
        assert!(tag(&page.html, "sync-now").contains("disabled"));
        assert!(tag(&page.html, "sync-now").contains("data-enable-after-run"));
        assert!(element(&page.html, "sync-reason").contains("running"));
        // A second "Sync now" meanwhile is refused with the API's reason, shown as a message.
        let again = owner.post(&format!("/retl/models/{model}/sync"), &[]).await;
        if again.status == 303 && again.location.contains("error=") {
            assert!(
                again.location.contains("already%20syncing"),
                "{}",
                again.location
            );
        }
        // The progress JSON counts up while it runs.
        let progress = owner.get(&format!("/retl/runs/{run_id}/progress")).await;
        let progress: Value = serde_json::from_str(&progress.html).unwrap();
        assert!(progress["status"].is_string(), "{progress}");
    } else {
        eprintln!(
            "the sync of 200,000 rows ended before the page was drawn; the running state was not seen"
        );
    }
    let run = wait_run(&server, &run_id).await;
    assert_eq!(run["extracted"], 200_000, "{run}");
    let page = owner.get(&format!("/retl/models/{model}")).await;
    assert_eq!(run_cell(&page.html, &run_id, "extracted"), 200_000);
    assert_eq!(run_cell(&page.html, &run_id, "added"), 200_000);
    assert_eq!(run_cell(&page.html, &run_id, "queued"), 0);
    assert!(!tag(&page.html, &format!("run-{run_id}")).contains("data-progress"));
    assert!(!tag(&page.html, "sync-now").contains("disabled"));
}

/// Renaming a connection leaves its URL alone; a mapping, a model and a connection are removed
/// through their forms (deletions need the name typed), each in the audit trail.
#[tokio::test]
async fn owner_edits_and_deletes_through_the_forms() {
    let (server, _hook, ads) = workspace().await;
    let w = Warehouse::postgres("edit").await;
    let owner = Console::sign_in_at(&server, "owner", "/retl").await;
    let connection = create_connection(&owner, &server, "Warehouse", "postgres", &w.url).await;

    // The settings form shows the URL redacted; saving it unchanged with a new name leaves the
    // stored URL (and its password) alone.
    let page = owner.get(&format!("/retl/connections/{connection}")).await;
    assert!(!page.html.contains(PG_SECRET));
    let shown_url = tag(&page.html, "connection-url");
    assert!(shown_url.contains("postgres:********@"), "{shown_url}");
    let saved = owner
        .post(
            &format!("/retl/connections/{connection}"),
            &[
                ("name", "Analytics warehouse"),
                ("url", "postgres://postgres:********@127.0.0.1:5432/test"),
                ("timeout", "60"),
            ],
        )
        .await;
    assert_eq!(saved.status, 303, "{}", saved.html);
    let (_, after) = server
        .admin(
            "GET",
            &format!("/api/v1/retl/connections/{connection}"),
            None,
        )
        .await;
    assert_eq!(after["name"], "Analytics warehouse");
    assert_eq!(after["statementTimeoutSeconds"], 60);
    assert_eq!(
        after["url"],
        "postgres://postgres:********@127.0.0.1:5432/test"
    );
    let (_, entries) = server
        .admin("GET", "/api/v1/audit?resourceType=retl_connection", None)
        .await;
    let text = entries.to_string();
    assert!(text.contains("retl.connection.updated"), "{text}");
    assert!(!text.contains(PG_SECRET), "{text}");

    // A model with a mapping; the connection cannot be deleted while the model uses it.
    let model = create_model(&owner, &connection, "Customers", &w.query()).await;
    let mapping = server
        .create(
            &format!("/api/v1/retl/models/{model}/mappings"),
            json!({"destinationId": ads, "operation": "identify"}),
        )
        .await;
    let page = owner.get(&format!("/retl/connections/{connection}")).await;
    assert!(element(&page.html, "delete-reason").contains("Models use this connection"));
    let refused = owner
        .post(
            &format!("/retl/connections/{connection}/delete"),
            &[("confirm_name", "Analytics warehouse")],
        )
        .await;
    assert_eq!(refused.status, 303);
    assert!(refused.location.contains("error="), "{}", refused.location);

    // Remove the mapping.
    let removed = owner
        .post(
            &format!("/retl/models/{model}/mappings/{mapping}/delete"),
            &[],
        )
        .await;
    assert_eq!(removed.status, 303, "{}", removed.html);
    let (_, mappings) = server
        .admin(
            "GET",
            &format!("/api/v1/retl/models/{model}/mappings"),
            None,
        )
        .await;
    assert_eq!(mappings, json!([]));

    // Delete the model: the wrong name is refused, the right one deletes it.
    let wrong = owner
        .post(
            &format!("/retl/models/{model}/delete"),
            &[("confirm_name", "customers")],
        )
        .await;
    assert!(wrong.location.contains("error="), "{}", wrong.location);
    let deleted = owner
        .post(
            &format!("/retl/models/{model}/delete"),
            &[("confirm_name", "Customers")],
        )
        .await;
    assert_eq!(deleted.status, 303);
    assert!(
        deleted.location.starts_with("/retl?ok="),
        "{}",
        deleted.location
    );
    let (status, _) = server
        .admin("GET", &format!("/api/v1/retl/models/{model}"), None)
        .await;
    assert_eq!(status, 404);

    // Now the connection can go.
    let deleted = owner
        .post(
            &format!("/retl/connections/{connection}/delete"),
            &[("confirm_name", "Analytics warehouse")],
        )
        .await;
    assert!(
        deleted.location.starts_with("/retl?ok="),
        "{}",
        deleted.location
    );
    let (_, all) = server.admin("GET", "/api/v1/retl/connections", None).await;
    assert_eq!(all, json!([]));

    let models = audit_actions(&server, "retl_model").await;
    assert!(models.contains(&("retl.model.deleted".into(), owner.email.clone())));
    let mappings = audit_actions(&server, "retl_mapping").await;
    assert!(mappings.contains(&("retl.mapping.deleted".into(), owner.email.clone())));
    let connections = audit_actions(&server, "retl_connection").await;
    assert!(connections.contains(&("retl.connection.deleted".into(), owner.email.clone())));
    w.drop().await;
}

//! Console browser test: a privacy person's flows through the real web console in headless
//! Debian Chromium (`harness/js/console/drive.mjs`, playwright-core), axe-core on every page,
//! and the README's screenshots.
//!
//! Screenshots go to `target/console-screenshots/`, or to `$SLUICE_SCREENSHOT_DIR`
//! (`scripts/screenshots` sets it to `docs/screenshots`).

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::{Receiver, TestServer, consented, eventually};
use crate::harness::{drive, require_browser};

async fn user(server: &TestServer, email: &str, role: &str) -> Value {
    let password = format!("{role}-password-for-the-console");
    server
        .create(
            "/api/v1/users",
            json!({"email": email, "name": role, "role": role, "password": password}),
        )
        .await;
    json!({"email": email, "password": password})
}

#[tokio::test]
async fn console_flows_in_chromium() {
    require_browser(&["node_modules/playwright-core", "node_modules/axe-core"]);
    let server = TestServer::start().await;
    let hook = Receiver::start().await;
    let owner = user(&server, "privacy@example.com", "owner").await;
    let viewer = user(&server, "auditor@example.com", "viewer").await;
    let ads = server
        .webhook(
            "Google Ads",
            "Google Ads",
            &format!("{}/ads", hook.url),
            json!({}),
        )
        .await;
    server
        .webhook(
            "Data warehouse",
            "Webhooks",
            &format!("{}/all", hook.url),
            json!({}),
        )
        .await;
    let (_, sources) = server.admin("GET", "/api/v1/sources", None).await;
    let source_id = sources[0]["id"].as_str().unwrap().to_owned();

    // Some traffic, so the overview, profile and screenshots have something to show.
    for (i, granted) in [true, false, true].into_iter().enumerate() {
        let (status, _) = server
            .track(
                "/v1/track",
                consented(
                    "Order Completed",
                    &format!("user-{i}"),
                    json!({"C0004": granted, "C0002": true}),
                ),
            )
            .await;
        assert_eq!(status, 200);
    }
    eventually(Duration::from_secs(10), "deliveries", || async {
        (hook.events().len() >= 6).then_some(())
    })
    .await;

    // A reverse ETL connection and model over a SQLite table, for the RETL pages.
    let warehouse = tempfile::tempdir().unwrap();
    let db = warehouse.path().join("crm.db");
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute_batch(
            "CREATE TABLE customers (id TEXT PRIMARY KEY, email TEXT, plan TEXT, ads_consent BOOLEAN);
             INSERT INTO customers VALUES ('c1', 'ada@example.com', 'pro', 1),
                                          ('c2', 'alan@example.com', 'free', 0);",
        )
        .unwrap();
    let connection = server
        .create(
            "/api/v1/retl/connections",
            json!({"name": "CRM export", "kind": "sqlite", "url": format!("sqlite://{}", db.display())}),
        )
        .await;
    let model = server
        .create(
            "/api/v1/retl/models",
            json!({"name": "Customers", "connectionId": connection,
                   "query": "SELECT id, email, plan, ads_consent FROM customers", "uniqueIdColumn": "id"}),
        )
        .await;
    let (_, owner_user) = server.admin("GET", "/api/v1/users", None).await;
    let owner_id = owner_user
        .as_array()
        .and_then(|users| users.iter().find(|u| u["email"] == "privacy@example.com"))
        .and_then(|u| u["id"].as_str())
        .expect("the owner user")
        .to_owned();

    let screenshots = std::env::var("SLUICE_SCREENSHOT_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/console-screenshots")
        });
    let config = json!({
        "url": server.url,
        "owner": owner,
        "viewer": viewer,
        "destinationName": "Google Ads",
        "destinationId": ads,
        "sourceId": source_id,
        "writeKey": server.write_key,
        "token": crate::common::OWNER_TOKEN,
        "profileId": "user-0",
        "retlConnectionId": connection,
        "retlModelId": model,
        "ownerId": owner_id,
        "screenshots": screenshots,
    });
    let config = config.to_string();
    let summary = drive(
        &["console/drive.mjs", &config],
        Duration::from_secs(180),
        &["problems", "steps", "console", "axe"],
    )
    .await;

    // What the browser did is what the API sees.
    let (_, category) = server
        .admin("GET", "/api/v1/consent/categories/C0004", None)
        .await;
    assert_eq!(category["enabled"], true, "{category}");
    assert_eq!(category["destinations"], json!([ads]));
    let (_, all) = server
        .admin("GET", "/api/v1/consent/categories", None)
        .await;
    assert_eq!(
        all.as_array().unwrap().len(),
        1,
        "a forged POST created something: {all}"
    );
    let (_, audit) = server.admin("GET", "/api/v1/audit?limit=200", None).await;
    let by_owner: Vec<&str> = audit["entries"]
        .as_array()
        .expect("audit entries")
        .iter()
        .filter(|e| e["actor"] == "privacy@example.com")
        .filter_map(|e| e["action"].as_str())
        .collect();
    for action in ["category.created", "category.disabled", "category.enabled"] {
        assert!(
            by_owner.contains(&action),
            "no {action} by the owner in the audit trail: {by_owner:?}"
        );
    }

    // The overview page's numbers are the API's for the same range.
    let overview = &summary["overview"];
    let from = overview["range"]["from"]
        .as_str()
        .expect("the overview page shows its range");
    let to = overview["range"]["to"].as_str().unwrap();
    let api = server.overview(&format!("?from={from}&to={to}")).await;
    let cells = overview["cells"].as_array().unwrap();
    assert!(!cells.is_empty());
    for cell in cells {
        let (destination, step) = (
            cell["destination"].as_str().unwrap(),
            cell["step"].as_str().unwrap(),
        );
        let shown: u64 = cell["value"]
            .as_str()
            .unwrap()
            .replace(',', "")
            .parse()
            .expect("a number");
        let expected = api_number(&api, destination, step, cell["reason"].as_str());
        assert_eq!(
            Some(shown),
            expected,
            "overview page {destination}/{step} shows {shown}, the API says {expected:?}: {api:#}"
        );
    }
    println!(
        "console flows passed in {} ms; the debugger showed the event after {} ms",
        summary["ms"], summary["debuggerMs"]
    );
}

/// One number of the delivery overview API answer, by destination id and step name. A
/// destination's funnel starts with the source steps (received, failed on ingest by code, …),
/// which are the answer's top-level numbers; `filtered` is the sum over reasons, or one
/// reason's count.
fn api_number(api: &Value, destination: &str, step: &str, reason: Option<&str>) -> Option<u64> {
    let row = api["destinations"]
        .as_array()?
        .iter()
        .find(|d| d["destinationId"] == destination)?;
    let value = if row.get(step).is_some() {
        &row[step]
    } else {
        &api[step]
    };
    match (value, reason) {
        (Value::Object(by_reason), Some(reason)) => {
            Some(by_reason.get(reason).and_then(Value::as_u64).unwrap_or(0))
        }
        (Value::Object(by_reason), None) => {
            Some(by_reason.values().filter_map(Value::as_u64).sum())
        }
        (value, _) => value.as_u64(),
    }
}

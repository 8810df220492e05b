//! Consent on the person over HTTP: profiles, the consent ledger, generated consent-update
//! events, unchanged consent updates, merge conflicts (SPEC §5, §6).

use std::time::Duration;

use serde_json::{Value, json};

use crate::common::{Receiver, TestServer, eventually, is_generated};

/// Two destinations: "Ads" needs C0004, "All" is unmapped.
async fn workspace(server: &TestServer, hook: &Receiver) {
    let ads = server
        .webhook("Ads", "Google Ads", &format!("{}/ads", hook.url), json!({}))
        .await;
    server
        .webhook("All", "Webhooks", &format!("{}/all", hook.url), json!({}))
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
            json!({"id": "C0002", "name": "Analytics", "destinations": []}),
        )
        .await;
}

fn event(name: &str, anon: &str, user: Option<&str>, at: &str, prefs: Option<Value>) -> Value {
    let mut e = json!({"type": "track", "event": name, "anonymousId": anon, "timestamp": at,
                       "messageId": format!("{name}-{anon}-{at}"),
                       "context": {"library": {"name": "test-lib"}, "userAgent": "TestAgent/1"}});
    if let Some(u) = user {
        e["userId"] = json!(u);
    }
    if let Some(p) = prefs {
        e["context"]["consent"] = json!({"categoryPreferences": p});
    }
    e
}

async fn profile(server: &TestServer, id: &str) -> Value {
    let (status, p) = server
        .admin("GET", &format!("/api/v1/profiles/{id}"), None)
        .await;
    assert_eq!(status, 200, "{p}");
    p
}

/// Wait until the profile consumer has processed everything (the profile reflects `check`).
async fn wait_profile(server: &TestServer, id: &str, check: impl Fn(&Value) -> bool) -> Value {
    eventually(Duration::from_secs(10), "the profile to update", || {
        let server = &server;
        let check = &check;
        async move {
            let (status, p) = server
                .admin("GET", &format!("/api/v1/profiles/{id}"), None)
                .await;
            (status == 200 && check(&p)).then_some(p)
        }
    })
    .await
}

#[tokio::test]
async fn ledger_profile_and_generated_updates() {
    let server = TestServer::start().await;
    let hook = Receiver::start().await;
    workspace(&server, &hook).await;
    let t = |s: u32| format!("2026-11-25T10:00:{s:02}.000Z");

    // First sight of device d1: recorded, nothing generated.
    server.track("/v1/batch", json!({"batch": [event("Viewed", "d1", None, &t(1), Some(json!({"C0004": false, "C0002": true})))]})).await;
    // The same preferences again: nothing.
    server.track("/v1/batch", json!({"batch": [event("Clicked", "d1", None, &t(2), Some(json!({"C0004": false, "C0002": true})))]})).await;
    // A change without a consent-update event: Sluice generates one.
    server.track("/v1/batch", json!({"batch": [event("Bought", "d1", Some("u1"), &t(3), Some(json!({"C0004": true})))]})).await;
    // A CMP repeating the current preferences: in the ledger, not delivered.
    server
        .track("/v1/batch", json!({"batch": [event("Segment Consent Preference Updated", "d1", Some("u1"), &t(4), Some(json!({"C0004": true})))]}))
        .await;
    // A real consent change from the CMP: delivered everywhere.
    server
        .track("/v1/batch", json!({"batch": [event("Segment Consent Preference Updated", "d1", Some("u1"), &t(5), Some(json!({"C0004": false, "C0002": false})))]}))
        .await;
    // A late event, older than the device's state: changes nothing, generates nothing.
    server.track("/v1/batch", json!({"batch": [event("Late", "d1", Some("u1"), &t(0), Some(json!({"C0004": true, "C0002": true})))]})).await;

    let p = wait_profile(&server, "u1", |p| {
        p["consent"]["C0004"]["value"] == json!(false)
    })
    .await;
    assert_eq!(p["userIds"], json!(["u1"]));
    assert_eq!(p["anonymousIds"], json!(["d1"]));
    assert_eq!(
        p["consent"]["C0004"],
        json!({"value": false, "at": t(5), "messageId": format!("Segment Consent Preference Updated-d1-{}", t(5))})
    );
    assert_eq!(p["consent"]["C0002"]["value"], false);
    // Either id finds the same profile.
    assert_eq!(profile(&server, "d1").await["id"], p["id"]);

    let (status, history) = server
        .admin("GET", "/api/v1/profiles/d1/consent-history", None)
        .await;
    assert_eq!(status, 200);
    let entries = history["entries"].as_array().unwrap();
    let summary: Vec<(String, String, bool)> = entries
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().unwrap().to_owned(),
                e["at"].as_str().unwrap()[17..19].to_owned(),
                e["generated"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            ("change".into(), "01".into(), false),
            ("change".into(), "03".into(), true),
            ("update".into(), "04".into(), false),
            ("update".into(), "05".into(), false),
        ],
        "{history:#}"
    );
    let first = &entries[0];
    assert_eq!(first["preferences"], json!({"C0002": true, "C0004": false}));
    assert_eq!(first["library"], "test-lib");
    assert_eq!(first["userAgent"], "TestAgent/1");
    assert_eq!(first["ip"], "127.0.0.1");
    assert!(first["sourceId"].as_str().unwrap().starts_with("src_"));

    // Deliveries: one generated update (for t3) and one CMP update (t5), everywhere; the
    // repeated update (t4) nowhere; the late event only where consent allows.
    eventually(Duration::from_secs(10), "updates delivered", || {
        let hook = hook.clone();
        async move {
            let generated = hook.generated_at("/all").len() + hook.generated_at("/ads").len();
            let updates = hook
                .names_at("/all")
                .iter()
                .filter(|n| n.starts_with("Segment Consent"))
                .count();
            (generated == 2 && updates == 1).then_some(())
        }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let generated = hook.generated_at("/ads");
    assert_eq!(generated.len(), 1, "exactly one generated update");
    assert_eq!(
        generated[0]["context"]["consent"]["categoryPreferences"],
        json!({"C0002": false, "C0004": true})
    );
    assert_eq!(
        generated[0]["context"]["sluice"]["trigger"],
        format!("Bought-d1-{}", t(3))
    );
    assert_eq!(generated[0]["userId"], "u1");
    let all: Vec<String> = hook.names_at("/all");
    assert_eq!(
        all.iter()
            .filter(|n| n.starts_with("Segment Consent"))
            .count(),
        1,
        "{all:?}"
    );
    let overview = server.overview("").await;
    let ads = overview["destinations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "Ads")
        .unwrap()
        .clone();
    assert_eq!(ads["filtered"]["FILTERED_UNCHANGED_CONSENT"], 1, "{ads}");
    assert_eq!(overview["generated"], 1);

    // Export as JSON lines.
    let export = server
        .http
        .get(format!(
            "{}/api/v1/profiles/u1/consent-history/export",
            server.url
        ))
        .bearer_auth(crate::common::OWNER_TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(export.lines().count(), 4);
    assert!(
        export
            .lines()
            .all(|l| serde_json::from_str::<Value>(l).is_ok())
    );
    let (status, _) = server.admin("GET", "/api/v1/profiles/nobody", None).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn merging_disagreeing_devices_is_a_conflict_until_a_newer_update() {
    let server = TestServer::start().await;
    let hook = Receiver::start().await;
    workspace(&server, &hook).await;
    // Two devices, two opinions, no user yet.
    server.track("/v1/batch", json!({"batch": [
        event("A", "phone", None, "2026-11-25T10:00:01.000Z", Some(json!({"C0004": true}))),
        event("B", "laptop", None, "2026-11-25T10:00:02.000Z", Some(json!({"C0004": false}))),
    ]})).await;
    // Both turn out to be the same person.
    server.track("/v1/batch", json!({"batch": [
        {"type": "identify", "userId": "alice", "anonymousId": "phone", "timestamp": "2026-11-25T10:00:03.000Z"},
        {"type": "identify", "userId": "alice", "anonymousId": "laptop", "timestamp": "2026-11-25T10:00:04.000Z", "traits": {"plan": "pro"}},
    ]})).await;
    let p = wait_profile(&server, "alice", |p| {
        p["anonymousIds"].as_array().is_some_and(|a| a.len() == 2)
    })
    .await;
    assert_eq!(p["consent"]["C0004"]["value"], "conflict");
    assert_eq!(p["traits"], json!({"plan": "pro"}));
    // An ordinary event with the same old preferences does not resolve it.
    server.track("/v1/batch", json!({"batch": [event("C", "laptop", Some("alice"), "2026-11-25T10:00:05.000Z", Some(json!({"C0004": false})))]})).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        profile(&server, "alice").await["consent"]["C0004"]["value"],
        "conflict"
    );
    // A newer consent-update event does.
    server
        .track("/v1/batch", json!({"batch": [event("Segment Consent Preference Updated", "laptop", Some("alice"), "2026-11-25T10:00:06.000Z", Some(json!({"C0004": true})))]}))
        .await;
    let p = wait_profile(&server, "alice", |p| {
        p["consent"]["C0004"]["value"] == json!(true)
    })
    .await;
    assert_eq!(p["consent"]["C0004"]["at"], "2026-11-25T10:00:06.000Z");
}

#[tokio::test]
async fn alias_links_previous_id() {
    let server = TestServer::start().await;
    let hook = Receiver::start().await;
    workspace(&server, &hook).await;
    server
        .track(
            "/v1/identify",
            json!({"userId": "old-id", "traits": {"a": 1}}),
        )
        .await;
    server
        .track(
            "/v1/alias",
            json!({"userId": "new-id", "previousId": "old-id"}),
        )
        .await;
    let p = wait_profile(&server, "new-id", |p| {
        p["userIds"].as_array().is_some_and(|u| u.len() == 2)
    })
    .await;
    assert_eq!(p["userIds"], json!(["new-id", "old-id"]));
    assert_eq!(p["traits"]["a"], 1);
    let _ = is_generated;
}

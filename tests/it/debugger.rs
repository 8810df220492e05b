//! The live debugger over HTTP: server-sent events with decisions, bounded per viewer.

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{Value, json};

use crate::common::{OWNER_TOKEN, TestServer, consented};

/// Read server-sent events from a response until `n` events named `name` arrived.
async fn read_events(response: reqwest::Response, name: &str, n: usize) -> Vec<Value> {
    let mut stream = response.bytes_stream();
    let mut buffer = String::new();
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while out.len() < n {
        let chunk = tokio::time::timeout_at(deadline, stream.next())
            .await
            .unwrap_or_else(|_| panic!("timed out with {} of {n} `{name}` events", out.len()))
            .expect("stream ended")
            .expect("stream error");
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find("\n\n") {
            let message: String = buffer.drain(..end + 2).collect();
            let event = message
                .lines()
                .find_map(|l| {
                    l.strip_prefix("event: ")
                        .or_else(|| l.strip_prefix("event:"))
                })
                .unwrap_or("");
            let data: String = message
                .lines()
                .filter_map(|l| l.strip_prefix("data: ").or_else(|| l.strip_prefix("data:")))
                .collect();
            if event == name {
                out.push(serde_json::from_str(&data).unwrap_or(Value::String(data)));
            }
        }
    }
    out
}

async fn subscribe(server: &TestServer) -> reqwest::Response {
    let (_, sources) = server.admin("GET", "/api/v1/sources", None).await;
    let id = sources[0]["id"].as_str().unwrap().to_owned();
    let response = server
        .http
        .get(format!("{}/api/v1/sources/{id}/debugger", server.url))
        .bearer_auth(OWNER_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    response
}

#[tokio::test]
async fn debugger_shows_events_with_their_decisions() {
    let server = TestServer::start().await;
    let ads = server
        .webhook("Ads", "Google Ads", "http://127.0.0.1:9/ads", json!({}))
        .await;
    server
        .webhook("All", "Webhooks", "http://127.0.0.1:9/all", json!({}))
        .await;
    server
        .create(
            "/api/v1/consent/categories",
            json!({"id": "C0004", "name": "Advertising", "destinations": [ads]}),
        )
        .await;
    assert_eq!(server.app.debugger.subscriber_count(), 0);
    let response = subscribe(&server).await;
    crate::common::eventually(Duration::from_secs(5), "subscribed", || async {
        (server.app.debugger.subscriber_count() >= 1).then_some(())
    })
    .await;
    server
        .track(
            "/v1/track",
            consented("Refused", "u1", json!({"C0004": false})),
        )
        .await;
    server
        .track(
            "/v1/track",
            consented("Granted", "u2", json!({"C0004": true})),
        )
        .await;
    server
        .track("/v1/track", json!({"userId": "u3", "event": 7}))
        .await;
    let events = read_events(response, "event", 3).await;

    let refused = &events[0];
    assert_eq!(refused["status"], "accepted");
    assert_eq!(refused["event"]["event"], "Refused");
    assert_eq!(
        refused["consent"],
        json!({"categoryPreferences": {"C0004": false}})
    );
    let decision = |e: &Value, name: &str| {
        e["decisions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["name"] == name)
            .cloned()
            .unwrap()
    };
    assert_eq!(
        decision(refused, "Ads"),
        json!({"destinationId": ads, "name": "Ads", "decision": "filtered", "reason": "FILTERED_BY_END_USER_CONSENT"})
    );
    assert_eq!(decision(refused, "All")["decision"], "delivered");
    assert_eq!(decision(&events[1], "Ads")["decision"], "delivered");
    assert_eq!(events[2]["status"], "rejected");
    assert_eq!(events[2]["rejection"]["code"], "event_not_string");
}

#[tokio::test]
async fn a_slow_viewer_drops_messages_and_never_slows_ingestion() {
    let server = TestServer::start().await;
    server
        .webhook("All", "Webhooks", "http://127.0.0.1:9/all", json!({}))
        .await;
    let response = subscribe(&server).await;
    crate::common::eventually(Duration::from_secs(5), "subscribed", || async {
        (server.app.debugger.subscriber_count() == 1).then_some(())
    })
    .await;
    // Far more than a viewer's queue and its socket buffers hold, while the viewer reads nothing.
    let started = std::time::Instant::now();
    for chunk in 0..40 {
        let batch: Vec<Value> = (0..500)
            .map(|i| json!({"type": "track", "userId": "u", "event": format!("e{chunk}-{i}"), "properties": {"pad": "x".repeat(200)}}))
            .collect();
        assert_eq!(
            server.track("/v1/batch", json!({"batch": batch})).await.0,
            200
        );
    }
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "ingestion was not held up: {:?}",
        started.elapsed()
    );
    let dropped = read_events(response, "dropped", 1).await;
    assert!(dropped[0]["missed"].as_u64().unwrap() > 0, "{dropped:?}");
    // Disconnecting unsubscribes.
    crate::common::eventually(Duration::from_secs(5), "unsubscribed", || async {
        (server.app.debugger.subscriber_count() == 0).then_some(())
    })
    .await;
}

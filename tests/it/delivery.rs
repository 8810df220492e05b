//! Delivery over HTTP: retries, dead letters and replay, isolation of slow destinations,
//! ordering, pause/resume, restarts.

use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::post;
use serde_json::json;

use crate::common::{Receiver, TestServer, eventually};

async fn send_n(server: &TestServer, prefix: &str, n: usize) {
    for i in 0..n {
        let (status, _) = server
            .track(
                "/v1/track",
                json!({"userId": "u", "event": format!("{prefix}{i}")}),
            )
            .await;
        assert_eq!(status, 200);
    }
}

#[tokio::test]
async fn retryable_failures_are_retried_in_order() {
    let server = TestServer::start().await;
    let hook = Receiver::start().await;
    hook.answer_with(vec![503, 500, 429, 200]);
    server.webhook("Flaky", "Flaky", &hook.url, json!({})).await;
    send_n(&server, "e", 5).await;
    eventually(Duration::from_secs(10), "all five, in order", || {
        let hook = hook.clone();
        async move { (hook.names_at("/") == ["e0", "e1", "e2", "e3", "e4"]).then_some(()) }
    })
    .await;
    let overview = server.overview("").await;
    let d = &overview["destinations"][0];
    assert_eq!(
        (
            d["delivered"].as_i64(),
            d["dead"].as_i64(),
            d["pending"].as_i64()
        ),
        (Some(5), Some(0), Some(0))
    );
}

#[tokio::test]
async fn permanent_and_exhausted_failures_go_to_dead_letters_and_replay() {
    let server = TestServer::start().await;
    let hook = Receiver::start().await;
    // First event: 400 (permanent). Second: 500 four times (max_attempts = 4 in tests). Then OK.
    hook.answer_with(vec![400, 500, 500, 500, 500, 200]);
    let dest = server
        .webhook("Strict", "Strict", &hook.url, json!({}))
        .await;
    send_n(&server, "d", 3).await;
    eventually(Duration::from_secs(10), "third delivered", || {
        let hook = hook.clone();
        async move { (hook.names_at("/") == ["d2"]).then_some(()) }
    })
    .await;
    let (status, page) = server
        .admin(
            "GET",
            &format!("/api/v1/destinations/{dest}/dead-letters"),
            None,
        )
        .await;
    assert_eq!(status, 200);
    let entries = page["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0]["event"]["event"], "d0");
    assert_eq!(entries[0]["attempts"], 1, "permanent: one attempt");
    assert!(entries[0]["error"].as_str().unwrap().contains("400"));
    assert_eq!(entries[1]["event"]["event"], "d1");
    assert_eq!(entries[1]["attempts"], 4, "retryable: max_attempts");
    let overview = server.overview("").await;
    assert_eq!(overview["destinations"][0]["dead"], 2);

    // Replay one, then the rest.
    let first_id = entries[0]["id"].as_i64().unwrap();
    let (status, answer) = server
        .admin(
            "POST",
            &format!("/api/v1/destinations/{dest}/dead-letters/replay"),
            Some(json!({"ids": [first_id]})),
        )
        .await;
    assert_eq!((status, answer["replayed"].as_i64()), (200, Some(1)));
    let (_, answer) = server
        .admin(
            "POST",
            &format!("/api/v1/destinations/{dest}/dead-letters/replay"),
            None,
        )
        .await;
    assert_eq!(answer["replayed"], 1);
    eventually(Duration::from_secs(10), "replayed delivered", || {
        let hook = hook.clone();
        async move { (hook.names_at("/") == ["d2", "d0", "d1"]).then_some(()) }
    })
    .await;
    let (_, page) = server
        .admin(
            "GET",
            &format!("/api/v1/destinations/{dest}/dead-letters"),
            None,
        )
        .await;
    assert!(page["entries"].as_array().unwrap().is_empty());
    let overview = server.overview("").await;
    let d = &overview["destinations"][0];
    assert_eq!(
        (d["delivered"].as_i64(), d["dead"].as_i64()),
        (Some(3), Some(0))
    );
    // The replay is in the audit trail.
    let (_, audit) = server
        .admin("GET", "/api/v1/audit?action=dead_letters.replayed", None)
        .await;
    assert_eq!(audit["entries"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn a_slow_destination_blocks_neither_ingestion_nor_others() {
    let server = TestServer::start().await;
    // A receiver that takes 3 s per request.
    let slow = Router::new().fallback(post(|| async {
        tokio::time::sleep(Duration::from_secs(3)).await;
        "ok"
    }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let slow_url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, slow).await.unwrap() });
    let fast = Receiver::start().await;
    server
        .webhook("Slow", "Slow", &slow_url, json!({"timeoutMs": 60000}))
        .await;
    server
        .webhook("Fast", "Fast", &fast.url, json!({"batchSize": 50}))
        .await;
    let start = Instant::now();
    send_n(&server, "f", 30).await;
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "ingestion did not wait for the slow destination: {:?}",
        start.elapsed()
    );
    eventually(
        Duration::from_secs(2),
        "fast destination has everything",
        || {
            let fast = fast.clone();
            async move { (fast.events().len() == 30).then_some(()) }
        },
    )
    .await;
    let overview = server.overview("").await;
    let slow_steps = overview["destinations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "Slow")
        .unwrap()
        .clone();
    assert!(
        slow_steps["pending"].as_i64().unwrap() >= 28,
        "the slow backlog waits on disk: {slow_steps}"
    );
}

#[tokio::test]
async fn disabled_destination_keeps_its_backlog_until_enabled() {
    let server = TestServer::start_with(|c| c.delivery.max_attempts = 1000).await;
    let hook = Receiver::start().await;
    hook.answer_with(vec![503]);
    let dest = server
        .webhook("Paused", "Paused", &hook.url, json!({}))
        .await;
    send_n(&server, "p", 2).await;
    // Let it fail at least once, then pause it.
    eventually(Duration::from_secs(10), "retrying", || {
        let server = &server;
        let dest = dest.clone();
        async move {
            let (_, d) = server
                .admin("GET", &format!("/api/v1/destinations/{dest}"), None)
                .await;
            (d["status"]["state"] == "retrying").then_some(())
        }
    })
    .await;
    let (_, d) = server
        .admin(
            "PATCH",
            &format!("/api/v1/destinations/{dest}"),
            Some(json!({"enabled": false})),
        )
        .await;
    assert_eq!(d["status"]["state"], "paused");
    hook.answer_with(vec![200]);
    send_n(&server, "while-disabled", 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(hook.events().is_empty());
    server
        .admin(
            "PATCH",
            &format!("/api/v1/destinations/{dest}"),
            Some(json!({"enabled": true})),
        )
        .await;
    eventually(
        Duration::from_secs(10),
        "backlog delivered after enabling",
        || {
            let hook = hook.clone();
            async move { (hook.names_at("/") == ["p0", "p1"]).then_some(()) }
        },
    )
    .await;
}

#[tokio::test]
async fn graceful_restart_neither_loses_nor_repeats() {
    let server = TestServer::start_with(|c| c.delivery.max_attempts = 1000).await;
    let hook = Receiver::start().await;
    server.webhook("Hook", "Hook", &hook.url, json!({})).await;
    send_n(&server, "a", 5).await;
    eventually(Duration::from_secs(10), "first five", || {
        let hook = hook.clone();
        async move { (hook.events().len() == 5).then_some(()) }
    })
    .await;
    hook.answer_with(vec![503]);
    send_n(&server, "b", 3).await;
    let dir = server.stop().await;
    hook.answer_with(vec![200]);
    let config = crate::common::test_config(dir.path());
    let server = TestServer::start_in(dir, config).await;
    eventually(Duration::from_secs(10), "the rest after restart", || {
        let hook = hook.clone();
        async move {
            (hook.names_at("/") == ["a0", "a1", "a2", "a3", "a4", "b0", "b1", "b2"]).then_some(())
        }
    })
    .await;
    // The bootstrap happens once: same owner token, same write key, same destination.
    let (_, destinations) = server.admin("GET", "/api/v1/destinations", None).await;
    assert_eq!(destinations.as_array().unwrap().len(), 1);
    server.stop().await;
}

#[tokio::test]
async fn file_destination_and_signed_batched_webhook() {
    let server = TestServer::start().await;
    let hook = Receiver::start().await;
    server
        .webhook(
            "Signed",
            "Signed",
            &format!("{}/signed", hook.url),
            json!({"batchSize": 10, "secret": "s3cret", "headers": {"X-Env": "test"}}),
        )
        .await;
    let file = server
        .create("/api/v1/destinations", json!({"name": "Archive", "integration": "Archive", "type": "file", "settings": {"path": "archive/events.jsonl"}}))
        .await;
    server
        .track("/v1/batch", json!({"batch": (0..4).map(|i| json!({"type": "track", "userId": "u", "event": format!("s{i}")})).collect::<Vec<_>>()}))
        .await;
    let requests = eventually(Duration::from_secs(10), "signed batch", || {
        let hook = hook.clone();
        async move { (hook.events().len() == 4).then(|| hook.requests()) }
    })
    .await;
    for got in &requests {
        assert!(got.body["batch"].is_array());
        assert_eq!(got.headers["x-env"], "test");
        let body = serde_json::to_vec(&got.body).unwrap();
        let _ = body; // The receiver re-serialised; the signature format is checked in unit tests.
        assert!(
            got.headers["x-signature"]
                .to_str()
                .unwrap()
                .starts_with("sha256=")
        );
    }
    let path = server.dir.path().join("files/archive/events.jsonl");
    let lines = eventually(Duration::from_secs(10), "file written", || {
        let path = path.clone();
        async move {
            let text = std::fs::read_to_string(&path).ok()?;
            (text.lines().count() == 4).then_some(text)
        }
    })
    .await;
    assert!(
        lines
            .lines()
            .all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok())
    );
    // Secrets are write-only.
    let (_, views) = server.admin("GET", "/api/v1/destinations", None).await;
    let signed = views
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "Signed")
        .unwrap();
    assert_eq!(signed["settings"]["secret"], "********");
    assert_eq!(signed["settings"]["headers"]["X-Env"], "********");
    // Deleting a destination stops delivery to it.
    let (status, _) = server
        .admin("DELETE", &format!("/api/v1/destinations/{file}"), None)
        .await;
    assert_eq!(status, 204);
    server
        .track("/v1/track", json!({"userId": "u", "event": "after delete"}))
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 4);
}

//! Crash durability with the real binary: concurrent batches, `kill -9` mid-load, restart on
//! the same data directory; every messageId that got a 200 reaches every destination it is
//! allowed to.

use std::collections::HashSet;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;

use crate::common::{OWNER_TOKEN, Receiver, eventually};

fn spawn(data_dir: &std::path::Path, port: u16) -> Child {
    Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args([
            "serve",
            "--data-dir",
            data_dir.to_str().unwrap(),
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .env("SLUICE_BOOTSTRAP_OWNER_TOKEN", OWNER_TOKEN)
        .env("SLUICE_DELIVERY__BACKOFF_BASE_MS", "20")
        .env("SLUICE_DELIVERY__BACKOFF_MAX_MS", "200")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the sluice binary")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn wait_ready(http: &reqwest::Client, url: &str) {
    eventually(Duration::from_secs(20), "server ready", || async move {
        http.get(format!("{url}/readyz"))
            .send()
            .await
            .ok()
            .filter(|r| r.status() == 200)
            .map(|_| ())
    })
    .await;
}

#[tokio::test]
async fn kill_dash_nine_mid_load_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let mut child = spawn(dir.path(), port);
    wait_ready(&http, &url).await;

    // Two destinations behind consent: "ads" needs C0004, "all" is unmapped.
    let hook = Receiver::start().await;
    let mut ids = Vec::new();
    for (name, path) in [("Ads", "ads"), ("Everything", "all")] {
        let answer: serde_json::Value = http
            .post(format!("{url}/api/v1/destinations"))
            .bearer_auth(OWNER_TOKEN)
            .json(&json!({"name": name, "integration": name, "type": "webhook", "settings": {"url": format!("{}/{path}", hook.url), "batchSize": 50}}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        ids.push(
            answer["id"]
                .as_str()
                .unwrap_or_else(|| panic!("{answer}"))
                .to_owned(),
        );
    }
    let status = http
        .post(format!("{url}/api/v1/consent/categories"))
        .bearer_auth(OWNER_TOKEN)
        .json(&json!({"id": "C0004", "name": "Advertising", "destinations": [ids[0]]}))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 201);
    let sources: serde_json::Value = http
        .get(format!("{url}/api/v1/sources"))
        .bearer_auth(OWNER_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let write_key = sources[0]["writeKey"].as_str().unwrap().to_owned();

    // Eight clients send batches of 50 until the process dies.
    let acked: Arc<Mutex<Vec<(String, bool)>>> = Arc::default();
    let mut clients = Vec::new();
    for client in 0..8 {
        let (http, url, key, acked) = (
            http.clone(),
            url.clone(),
            write_key.clone(),
            Arc::clone(&acked),
        );
        clients.push(tokio::spawn(async move {
            for batch in 0.. {
                let events: Vec<(String, bool)> =
                    (0..50).map(|i| (format!("c{client}-b{batch}-e{i}"), (i + batch) % 2 == 0)).collect();
                let body = json!({"batch": events.iter().map(|(id, ad)| json!({
                    "type": "track", "userId": format!("u{client}"), "event": "Load", "messageId": id,
                    "context": {"consent": {"categoryPreferences": {"C0004": ad}}}
                })).collect::<Vec<_>>()});
                match http.post(format!("{url}/v1/batch")).basic_auth(&key, Some("")).json(&body).send().await {
                    Ok(r) if r.status() == 200 => acked.lock().unwrap().extend(events),
                    _ => break,
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    child.kill().expect("kill -9");
    child.wait().unwrap();
    for c in clients {
        let _ = c.await;
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() > 500,
        "the load ran before the kill ({} acked)",
        acked.len()
    );
    eprintln!("{} events acknowledged before kill -9", acked.len());
    let restart = std::time::Instant::now();

    // Restart on the same data directory; everything acknowledged arrives.
    let mut child = spawn(dir.path(), port);
    wait_ready(&http, &url).await;
    let want_all: HashSet<String> = acked.iter().map(|(id, _)| id.clone()).collect();
    let want_ads: HashSet<String> = acked
        .iter()
        .filter(|(_, ad)| *ad)
        .map(|(id, _)| id.clone())
        .collect();
    let ids_at = |path: &str| -> HashSet<String> {
        hook.requests()
            .iter()
            .filter(|g| g.path == path)
            .flat_map(|g| g.events())
            .map(|e| e["messageId"].as_str().unwrap().to_owned())
            .collect()
    };
    // Poll gently: building these sets is the expensive part of this loop.
    loop {
        let (all, ads) = (ids_at("/all"), ids_at("/ads"));
        if want_all.is_subset(&all) && want_ads.is_subset(&ads) {
            break;
        }
        assert!(
            restart.elapsed() < Duration::from_secs(90),
            "not everything acknowledged was delivered: {} of {} and {} of {}",
            want_all.intersection(&all).count(),
            want_all.len(),
            want_ads.intersection(&ads).count(),
            want_ads.len()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    eprintln!("all delivered {:?} after restart", restart.elapsed());
    // And consent held across the crash: no denied event reached the ads destination.
    let ads = ids_at("/ads");
    let denied: HashSet<String> = acked
        .iter()
        .filter(|(_, ad)| !*ad)
        .map(|(id, _)| id.clone())
        .collect();
    assert!(
        ads.is_disjoint(&denied),
        "a denied event reached the consent-gated destination"
    );
    child.kill().unwrap();
    child.wait().unwrap();
}

#[tokio::test]
async fn generated_consent_updates_are_exactly_once_across_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let mut child = spawn(dir.path(), port);
    wait_ready(&http, &url).await;
    let hook = Receiver::start().await;
    let status = http
        .post(format!("{url}/api/v1/destinations"))
        .bearer_auth(OWNER_TOKEN)
        .json(&json!({"name": "All", "integration": "Webhooks", "type": "webhook", "settings": {"url": hook.url, "batchSize": 100}}))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 201);
    let sources: serde_json::Value = http
        .get(format!("{url}/api/v1/sources"))
        .bearer_auth(OWNER_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let write_key = sources[0]["writeKey"].as_str().unwrap().to_owned();

    // 300 devices each change their preferences once (first statement, then a different one).
    const DEVICES: usize = 300;
    for chunk in (0..DEVICES).collect::<Vec<_>>().chunks(50) {
        let batch: Vec<serde_json::Value> = chunk
            .iter()
            .flat_map(|i| {
                [("2026-11-25T10:00:01.000Z", false), ("2026-11-25T10:00:02.000Z", true)].map(|(at, granted)| {
                    json!({"type": "track", "anonymousId": format!("device-{i}"), "event": "Page", "timestamp": at,
                           "messageId": format!("m-{i}-{granted}"),
                           "context": {"consent": {"categoryPreferences": {"C0004": granted}}}})
                })
            })
            .collect();
        let response = http
            .post(format!("{url}/v1/batch"))
            .basic_auth(&write_key, Some(""))
            .json(&json!({"batch": batch}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    // Kill while the profile consumer is (probably) still working through them.
    child.kill().unwrap();
    child.wait().unwrap();
    let mut child = spawn(dir.path(), port);
    wait_ready(&http, &url).await;

    let triggers = || -> Vec<String> {
        hook.requests()
            .iter()
            .flat_map(|g| g.events())
            .filter(crate::common::is_generated)
            .map(|e| {
                e["context"]["sluice"]["trigger"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned()
            })
            .collect()
    };
    let started = std::time::Instant::now();
    while triggers().len() < DEVICES {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "only {} of {DEVICES} generated updates arrived",
            triggers().len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let all = triggers();
    let distinct: HashSet<&String> = all.iter().collect();
    assert_eq!(distinct.len(), DEVICES, "one generated update per change");
    assert!(
        distinct.iter().all(|t| t.ends_with("-true")),
        "generated by the changing event"
    );
    // Stored exactly once per change: the log counts each generated event it accepted. (The
    // webhook may still see one twice: delivery is at least once, with the same messageId.)
    let overview: serde_json::Value = http
        .get(format!("{url}/api/v1/delivery-overview"))
        .bearer_auth(OWNER_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        overview["generated"], DEVICES as u64,
        "no change generated twice across the crash: {overview}"
    );
    let ids: HashSet<String> = hook
        .requests()
        .iter()
        .flat_map(|g| g.events())
        .filter(crate::common::is_generated)
        .map(|e| e["messageId"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(ids.len(), DEVICES, "one messageId per change");
    child.kill().unwrap();
    child.wait().unwrap();
}

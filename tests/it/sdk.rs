//! Real Segment SDKs pointed at Sluice: Python `segment-analytics-python` (sync, and async with
//! gzip and batching) and npm `@segment/analytics-node` (batched). `scripts/test` installs them;
//! these tests fail loudly, with what to run, when they are missing.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::json;

use crate::common::{Receiver, TestServer, eventually};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A workspace with `Ads` (needs C0004) and `Everything` (unmapped).
async fn setup(server: &TestServer, hook: &Receiver) {
    let ads = server
        .webhook(
            "Ads",
            "Google Ads",
            &format!("{}/ads", hook.url),
            json!({"batchSize": 20}),
        )
        .await;
    server
        .webhook(
            "Everything",
            "Webhooks",
            &format!("{}/all", hook.url),
            json!({}),
        )
        .await;
    server
        .create(
            "/api/v1/consent/categories",
            json!({"id": "C0004", "name": "Advertising", "destinations": [ads]}),
        )
        .await;
}

/// Run a script without blocking the runtime the server under test runs on.
async fn run(program: &PathBuf, args: &[&str], install_hint: &str) -> String {
    assert!(
        program.exists(),
        "{} is missing: {install_hint}",
        program.display()
    );
    let output = tokio::process::Command::new(program)
        .args(args)
        .current_dir(repo())
        .output()
        .await
        .expect("run the SDK script");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "SDK script failed: {}\nstdout: {stdout}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

async fn wait_for(
    hook: &Receiver,
    path: &'static str,
    expected: Vec<String>,
) -> Vec<serde_json::Value> {
    let mut expected = expected;
    expected.sort();
    eventually(Duration::from_secs(15), path, || {
        let (hook, expected) = (hook.clone(), expected.clone());
        async move {
            let mut got = hook.names_at(path);
            got.sort();
            (got == expected).then(|| {
                hook.requests()
                    .iter()
                    .filter(|g| g.path == path)
                    .flat_map(|g| g.events())
                    .collect()
            })
        }
    })
    .await
}

#[tokio::test]
async fn python_sdk_sync_and_gzip_batches() {
    let server = TestServer::start().await;
    let hook = Receiver::start().await;
    setup(&server, &hook).await;
    let python = repo().join(".venv-sdk/bin/python");
    let script = repo().join("harness/python/send_events.py");
    let out = run(
        &python,
        &[
            script.to_str().unwrap(),
            &server.url,
            &server.write_key,
            "r1",
        ],
        "run scripts/test to install it",
    )
    .await;
    assert!(out.contains("\"errors\": []"), "{out}");

    let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let all = wait_for(
        &hook,
        "/all",
        names(&[
            "r1 py sync granted",
            "r1 py sync denied",
            "identify",
            "page",
            "r1 py batch 0",
            "r1 py batch 1",
            "r1 py batch 2",
        ]),
    )
    .await;
    let ads = wait_for(
        &hook,
        "/ads",
        names(&[
            "r1 py sync granted",
            "identify",
            "r1 py batch 0",
            "r1 py batch 2",
        ]),
    )
    .await;
    // The consent object and SDK fields arrive unchanged.
    let granted = ads
        .iter()
        .find(|e| e["event"] == "r1 py sync granted")
        .unwrap();
    assert_eq!(
        granted["context"]["consent"]["categoryPreferences"],
        json!({"C0001": true, "C0004": true})
    );
    assert_eq!(granted["context"]["library"]["name"], "analytics-python");
    assert_eq!(granted["properties"]["revenue"], 9.5);
    assert!(all.iter().all(|e| e.get("writeKey").is_none()));
    let overview = server.overview("").await;
    let accepted = overview["accepted"].as_i64().unwrap() - overview["generated"].as_i64().unwrap();
    assert_eq!(accepted, 7);
}

#[tokio::test]
async fn node_sdk_batches() {
    let server = TestServer::start().await;
    let hook = Receiver::start().await;
    setup(&server, &hook).await;
    let node_modules = repo().join("harness/js/node_modules/@segment/analytics-node");
    assert!(
        node_modules.exists(),
        "{} is missing: run scripts/test to install it",
        node_modules.display()
    );
    let out = run(
        &PathBuf::from("/usr/bin/env"),
        &[
            "node",
            "harness/js/send-node.mjs",
            &server.url,
            &server.write_key,
            "r2",
        ],
        "install Node.js",
    )
    .await;
    assert!(out.contains("\"errors\":[]"), "{out}");
    let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    wait_for(
        &hook,
        "/all",
        names(&[
            "identify",
            "r2 node granted",
            "r2 node denied",
            "page",
            "r2 node no consent",
        ]),
    )
    .await;
    let ads = wait_for(
        &hook,
        "/ads",
        names(&["identify", "r2 node granted", "r2 node no consent"]),
    )
    .await;
    let granted = ads
        .iter()
        .find(|e| e["event"] == "r2 node granted")
        .unwrap();
    assert_eq!(
        granted["context"]["library"]["name"],
        "@segment/analytics-node"
    );
    assert!(
        granted["messageId"]
            .as_str()
            .unwrap()
            .starts_with("node-next-")
    );
}

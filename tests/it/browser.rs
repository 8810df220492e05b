//! Browser test: the real `@segment/analytics-next` wrapped by the real
//! `@segment/analytics-consent-tools` in headless Debian Chromium, driven by `playwright-core`
//! (`harness/js/browser/`), against a real Sluice.
//!
//! The page is served from its own origin (another port), so CORS is exercised for real.
//! analytics-next loads its settings from Sluice's CDN endpoint, consent-tools stamps every
//! event with the fake CMP's choices and sends "Segment Consent Preference Updated" when they
//! change, and Sluice routes by its consent rules to two webhook destinations.
//!
//! `scripts/test` installs Chromium and the npm packages; without them this test fails, saying so.

use std::path::PathBuf;
use std::time::Duration;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use base64::Engine;
use serde_json::{Value, json};

use crate::common::{Receiver, TestServer, eventually};
use crate::harness::{bundle, drive, js_dir, require_browser};

const CONSENT_UPDATED: &str = "Segment Consent Preference Updated";

/// Serve the page and its bundle from disk on their own port; returns the origin.
async fn serve_page(dir: PathBuf) -> String {
    let file = |name: &'static str, content_type: &'static str| {
        let path = dir.join(name);
        get(move || async move {
            match tokio::fs::read(&path).await {
                Ok(bytes) => ([(header::CONTENT_TYPE, content_type)], bytes).into_response(),
                Err(e) => {
                    (StatusCode::NOT_FOUND, format!("{}: {e}", path.display())).into_response()
                }
            }
        })
    };
    let app = Router::new()
        .route(
            "/index.html",
            file("index.html", "text/html; charset=utf-8"),
        )
        .route(
            "/dist/harness.js",
            file("dist/harness.js", "text/javascript; charset=utf-8"),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    origin
}

fn name(event: &Value) -> String {
    event["event"]
        .as_str()
        .or(event["type"].as_str())
        .unwrap_or("?")
        .to_owned()
}

#[tokio::test]
async fn analytics_next_with_consent_tools_in_chromium() {
    let started = std::time::Instant::now();
    let js = js_dir();
    require_browser(&[
        "node_modules/.bin/esbuild",
        "node_modules/playwright-core",
        "node_modules/@segment/analytics-next",
        "node_modules/@segment/analytics-consent-tools",
    ]);
    bundle("browser/entry.js", "browser/dist/harness.js").await;

    let server = TestServer::start().await;
    let hook = Receiver::start().await;
    let wk = server.write_key.clone();

    // "Ads" is mapped to C0004; "Everything" to no category, so the settings document says
    // hasUnmappedDestinations and consent-tools keeps sending events whatever is granted.
    let ads = server
        .webhook("Ads", "Google Ads", &format!("{}/ads", hook.url), json!({}))
        .await;
    let everything = server
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

    // What Sluice's CDN endpoint serves (the page must load the same document).
    let settings_url = format!("{}/v1/projects/{wk}/settings", server.url);
    let response = server.http.get(&settings_url).send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    assert_eq!(
        status, 200,
        "GET {settings_url} (what analytics-next fetches from cdnURL) answered {status}: {text}"
    );
    let settings: Value = serde_json::from_str(&text).expect("settings are JSON");
    let api_host = format!("{}/v1", server.url.trim_start_matches("http://"));
    assert_eq!(settings["integrations"]["Segment.io"]["apiKey"], wk);
    assert_eq!(settings["integrations"]["Segment.io"]["apiHost"], api_host);
    assert_eq!(settings["integrations"]["Segment.io"]["protocol"], "http");
    assert_eq!(
        settings["integrations"]["Google Ads"]["consentSettings"]["categories"],
        json!(["C0004"])
    );
    assert_eq!(
        settings["consentSettings"],
        json!({"allCategories": ["C0004"], "hasUnmappedDestinations": true})
    );
    assert_eq!(settings["metrics"]["sampleRate"], 0);

    // The page on its own origin; C0001 granted when it opens.
    let page_origin = serve_page(js.join("browser")).await;
    assert_ne!(page_origin, server.url);
    let page_url = format!(
        "{page_origin}/index.html?sluice={}&writeKey={wk}&granted=C0001",
        server.url
    );
    let summary = drive(
        &["browser/drive.mjs", &page_url, &server.url],
        Duration::from_secs(90),
        &["problems", "requests", "console"],
    )
    .await;
    for r in summary["requests"].as_array().into_iter().flatten() {
        let text = |v: &Value| v.as_str().unwrap_or("?").to_owned();
        eprintln!(
            "browser: {} {} -> {}",
            text(&r["method"]),
            text(&r["url"]),
            r["status"]
        );
    }

    // analytics-next loaded its settings from Sluice and sends where they point.
    let loaded = &summary["loaded"];
    assert_eq!(loaded["cdnURL"], server.url.as_str(), "{loaded:#}");
    assert_eq!(loaded["writeKey"], wk.as_str());
    assert_eq!(
        loaded["segmentio"],
        json!({"writeKey": wk, "apiHost": api_host, "protocol": "http"})
    );
    assert_eq!(
        loaded["cdnSettings"]["consentSettings"],
        settings["consentSettings"]
    );
    let requests = summary["requests"].as_array().expect("requests");
    let settings_fetches: Vec<&Value> = requests
        .iter()
        .filter(|r| r["url"] == settings_url.as_str())
        .collect();
    assert_eq!(settings_fetches.len(), 1, "{requests:#?}");
    assert_eq!(settings_fetches[0]["method"], "GET");
    assert_eq!(settings_fetches[0]["status"], 200);
    assert_eq!(
        settings_fetches[0]["headers"]["origin"],
        page_origin.as_str()
    );
    assert_eq!(settings_fetches[0]["response"], settings);

    // Nothing went anywhere but the page's origin and Sluice (no Segment CDN, no api.segment.io).
    for r in requests {
        let url = r["url"].as_str().unwrap();
        assert!(
            url.starts_with(&format!("{page_origin}/"))
                || url.starts_with(&format!("{}/", server.url)),
            "unexpected request to {url}"
        );
    }

    // One cross-origin POST per event, to Sluice's short paths, with the write key in Basic
    // auth (hence a CORS preflight), answered {"success": true}.
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{wk}:"))
    );
    let posts: Vec<&Value> = requests.iter().filter(|r| r["method"] == "POST").collect();
    let sent: Vec<(String, String)> = posts
        .iter()
        .map(|r| {
            let path = r["url"].as_str().unwrap().trim_start_matches(&server.url);
            (path.to_owned(), name(&r["body"]))
        })
        .collect();
    let pair = |p: &str, n: &str| (p.to_owned(), n.to_owned());
    assert_eq!(
        sent,
        vec![
            pair("/v1/i", "identify"),
            pair("/v1/p", "page"),
            pair("/v1/t", "Before Consent"),
            pair("/v1/t", CONSENT_UPDATED),
            pair("/v1/t", "After Consent"),
        ],
        "{posts:#?}"
    );
    for post in &posts {
        assert_eq!(post["status"], 200, "{post:#}");
        assert_eq!(post["response"], json!({"success": true}), "{post:#}");
        assert_eq!(post["headers"]["authorization"], basic.as_str(), "{post:#}");
        assert_eq!(post["headers"]["content-type"], "text/plain", "{post:#}");
        assert_eq!(post["headers"]["origin"], page_origin.as_str(), "{post:#}");
        assert_eq!(post["body"]["writeKey"], wk.as_str(), "{post:#}");
    }

    // Each of those paths was preflighted (Chromium caches the answer), and Sluice allowed the
    // page's origin and the Authorization header.
    let preflights = summary["preflights"].as_array().expect("preflights");
    let mut paths: Vec<&str> = sent.iter().map(|(path, _)| path.as_str()).collect();
    paths.dedup();
    for path in paths {
        let url = format!("{}{path}", server.url);
        let preflight = preflights
            .iter()
            .find(|p| p["url"] == url.as_str())
            .unwrap_or_else(|| panic!("no CORS preflight for {url}: {preflights:#?}"));
        assert!(
            preflight["status"]
                .as_u64()
                .is_some_and(|s| (200..300).contains(&s)),
            "{preflight:#}"
        );
        assert_eq!(
            preflight["request"]["access-control-request-method"],
            "POST"
        );
        assert_eq!(
            preflight["request"]["access-control-request-headers"], "authorization",
            "{preflight:#}"
        );
        assert_eq!(
            preflight["response"]["access-control-allow-origin"],
            page_origin.as_str(),
            "{preflight:#}"
        );
        assert!(
            preflight["response"]["access-control-allow-headers"]
                .as_str()
                .is_some_and(|h| h.to_ascii_lowercase().contains("authorization")),
            "{preflight:#}"
        );
    }

    // Sluice routes by consent: before C0004 is granted only the unmapped destination gets
    // events; the consent update goes everywhere; after the grant both get them.
    let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let all_expected = names(&[
        "identify",
        "page",
        "Before Consent",
        CONSENT_UPDATED,
        "After Consent",
    ]);
    let ads_expected = names(&[CONSENT_UPDATED, "After Consent"]);
    // The consent update is released by the profile consumer once it has seen that the
    // preferences changed, so it may arrive after events the page sent later: compare as sets.
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    eventually(
        Duration::from_secs(15),
        "deliveries to both webhooks",
        || {
            let hook = hook.clone();
            let (all, ads) = (sorted(all_expected.clone()), sorted(ads_expected.clone()));
            async move {
                (sorted(hook.names_at("/all")) == all && sorted(hook.names_at("/ads")) == ads)
                    .then_some(())
            }
        },
    )
    .await;

    let denied = json!({"C0001": true, "C0002": false, "C0003": false, "C0004": false});
    let granted = json!({"C0001": true, "C0002": false, "C0003": false, "C0004": true});
    let received = hook.requests();
    assert_eq!(received.len(), 7, "{received:#?}");
    for got in &received {
        let event = &got.body;
        let expected = match name(event).as_str() {
            CONSENT_UPDATED | "After Consent" => &granted,
            _ => &denied,
        };
        assert_eq!(
            event["context"]["consent"]["categoryPreferences"],
            *expected,
            "{} at {}: {event:#}",
            name(event),
            got.path
        );
        assert_eq!(
            event["context"]["library"]["name"], "analytics.js",
            "{event:#}"
        );
        assert!(
            event["context"]["library"]["version"]
                .as_str()
                .is_some_and(|v| v.starts_with("npm:next-")),
            "{event:#}"
        );
        assert!(
            event["messageId"]
                .as_str()
                .is_some_and(|id| id.starts_with("ajs-next-")),
            "{event:#}"
        );
        assert_eq!(event["userId"], "browser-user", "{event:#}");
        assert_eq!(
            event["context"]["page"]["url"]
                .as_str()
                .map(|u| u.starts_with(&page_origin)),
            Some(true),
            "{event:#}"
        );
        assert!(event.get("writeKey").is_none(), "{event:#}");
    }

    // The delivery overview accounts for the three events held back from "Ads".
    let overview = eventually(Duration::from_secs(10), "the overview to settle", || {
        let server = &server;
        async move {
            let overview = server.overview("").await;
            let done = overview["destinations"]
                .as_array()?
                .iter()
                .map(|d| d["delivered"].as_i64().unwrap_or(0))
                .sum::<i64>()
                == 7;
            done.then_some(overview)
        }
    })
    .await;
    assert_eq!(overview["accepted"], 5, "{overview:#}");
    let steps = |id: &str| {
        overview["destinations"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["destinationId"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("no overview for {id}: {overview:#}"))
    };
    let (ads_steps, all_steps) = (steps(&ads), steps(&everything));
    assert_eq!(ads_steps["routed"], 2, "{ads_steps:#}");
    assert_eq!(
        ads_steps["filtered"]["FILTERED_BY_END_USER_CONSENT"], 3,
        "{ads_steps:#}"
    );
    assert_eq!(all_steps["routed"], 5, "{all_steps:#}");
    assert_eq!(all_steps["delivered"], 5, "{all_steps:#}");

    eprintln!(
        "browser test: driver {} ms, whole test {} ms",
        summary["ms"],
        started.elapsed().as_millis()
    );
}

//! Sluice's own consent banner, `/consent.js` (SPEC §11), and the public document it reads,
//! `/v1/projects/{writeKey}/consent`.
//!
//! The browser test runs the served script in headless Debian Chromium (playwright-core, driver
//! in `harness/js/consent-js/`) on a page served from its own origin, with the real npm
//! `@segment/analytics-next` bundled by esbuild as the site's analytics (nothing from a CDN).
//! It checks what the page sends to Sluice before and after each choice, the
//! `tracking-preferences` cookie (as the browser keeps it and as the script wrote it, on http and
//! on a real https page), keyboard use and axe-core on the banner and the dialog, and where
//! Sluice routes the events. The page has a strict Content-Security-Policy (no inline script or
//! style), so a console error from the script breaks the test.
//!
//! `scripts/test` installs Chromium and the npm packages; without them this test fails, saying so.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;
use std::time::Duration;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use serde_json::{Value, json};

use crate::common::{Got, Receiver, TestServer, eventually, is_generated};
use crate::harness::{bundle, drive, js_dir, require_browser};

/// Run one scenario of the consent.js driver; its JSON summary.
async fn drive_scenario(scenario: &str, page_url: &str, sluice_url: &str) -> Value {
    drive(
        &["consent-js/drive.mjs", scenario, page_url, sluice_url],
        Duration::from_secs(120),
        &["problems", "steps", "requests", "console"],
    )
    .await
}

const UPDATED: &str = "Segment Consent Preference Updated";

/// A workspace with two categories mapped to one destination each, one category mapped to
/// none, and a disabled one. Returns the webhook paths' destination ids (analytics, ads).
async fn workspace(server: &TestServer, hook: &Receiver) -> (String, String) {
    let analytics = server
        .webhook(
            "Product analytics",
            "Amplitude",
            &format!("{}/analytics", hook.url),
            json!({}),
        )
        .await;
    let ads = server
        .webhook("Ads", "Google Ads", &format!("{}/ads", hook.url), json!({}))
        .await;
    for (id, name, destinations) in [
        ("C0002", "Analytics", vec![analytics.clone()]),
        ("C0004", "Advertising", vec![ads.clone()]),
        ("C0005", "Functional", vec![]),
        ("C0003", "Retired", vec![ads.clone()]),
    ] {
        server
            .create(
                "/api/v1/consent/categories",
                json!({"id": id, "name": name, "destinations": destinations}),
            )
            .await;
    }
    let (status, answer) = server
        .admin(
            "POST",
            "/api/v1/consent/categories/C0003/disable",
            Some(json!({"confirmName": "Retired"})),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    (analytics, ads)
}

#[tokio::test]
async fn consent_script_and_document_are_public_and_cacheable() {
    let server = TestServer::start().await;
    let hook = Receiver::start().await;
    workspace(&server, &hook).await;
    let origin = "https://shop.example.com";

    // The document the script reads: enabled categories in creation order, with whether a
    // destination needs each; where events go; the policy for events without a choice.
    let url = format!("{}/v1/projects/{}/consent", server.url, server.write_key);
    let response = server
        .http
        .get(&url)
        .header("origin", origin)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    assert_eq!(headers["access-control-allow-origin"], origin);
    assert_eq!(headers["cache-control"], "public, max-age=60");
    let etag = headers["etag"].to_str().unwrap().to_owned();
    let doc: Value = response.json().await.unwrap();
    let host = server.url.trim_start_matches("http://");
    assert_eq!(
        doc,
        json!({
            "categories": [
                {"id": "C0002", "name": "Analytics", "mapped": true},
                {"id": "C0004", "name": "Advertising", "mapped": true},
                {"id": "C0005", "name": "Functional", "mapped": false},
            ],
            "hasUnmappedDestinations": false,
            "missingConsentPolicy": "allow",
            "apiHost": format!("{host}/v1"),
            "protocol": "http",
        })
    );
    let again = server
        .http
        .get(&url)
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);

    // The source's own policy wins over the workspace's; a destination with no category makes
    // `hasUnmappedDestinations` true.
    let (_, sources) = server.admin("GET", "/api/v1/sources", None).await;
    let source_id = sources[0]["id"].as_str().unwrap().to_owned();
    let (status, answer) = server
        .admin(
            "PATCH",
            &format!("/api/v1/sources/{source_id}"),
            Some(json!({"missingConsentPolicy": "deny"})),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    server
        .webhook(
            "Everything",
            "Webhooks",
            &format!("{}/all", hook.url),
            json!({}),
        )
        .await;
    let doc: Value = server
        .http
        .get(&url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["missingConsentPolicy"], "deny");
    assert_eq!(doc["hasUnmappedDestinations"], true);

    // Unknown write key: 404 with Sluice's error body.
    let unknown = server
        .http
        .get(format!("{}/v1/projects/nope/consent", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);

    // The script: JavaScript, cacheable, CORS, gzip when asked, small.
    let script_url = format!("{}/consent.js", server.url);
    let plain = server
        .http
        .get(&script_url)
        .header("origin", origin)
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), 200);
    let headers = plain.headers().clone();
    assert_eq!(
        headers["content-type"],
        "application/javascript; charset=utf-8"
    );
    assert_eq!(headers["cache-control"], "public, max-age=3600");
    assert_eq!(headers["access-control-allow-origin"], origin);
    assert!(headers.get("content-encoding").is_none());
    let etag = headers["etag"].to_str().unwrap().to_owned();
    let source = plain.text().await.unwrap();
    assert!(source.contains("tracking-preferences"), "{source}");

    let gzipped = server
        .http
        .get(&script_url)
        .header("accept-encoding", "gzip, deflate, br")
        .send()
        .await
        .unwrap();
    assert_eq!(gzipped.headers()["content-encoding"], "gzip");
    assert!(
        gzipped
            .headers()
            .get_all("vary")
            .iter()
            .any(|v| v.to_str().unwrap().eq_ignore_ascii_case("accept-encoding")),
        "{:?}",
        gzipped.headers()
    );
    let bytes = gzipped.bytes().await.unwrap();
    eprintln!(
        "consent.js: {} bytes, {} bytes gzipped",
        source.len(),
        bytes.len()
    );
    assert!(
        bytes.len() < 15 * 1024,
        "consent.js must stay under 15 KB gzipped; it is {} bytes",
        bytes.len()
    );
    let mut unzipped = String::new();
    flate2::read::GzDecoder::new(&bytes[..])
        .read_to_string(&mut unzipped)
        .unwrap();
    assert_eq!(unzipped, source);

    let revalidated = server
        .http
        .get(&script_url)
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(revalidated.status(), 304);
}

/// Chromium, openssl and the npm packages, or a loud failure saying how to get them.
fn check_prerequisites() {
    require_browser(&[
        "node_modules/.bin/esbuild",
        "node_modules/playwright-core",
        "node_modules/@segment/analytics-next",
    ]);
    // The https page's test certificate is made with the openssl command (Debian: openssl).
    assert!(
        std::process::Command::new("openssl")
            .arg("version")
            .output()
            .is_ok_and(|o| o.status.success()),
        "the openssl command is missing (apt-get install openssl)"
    );
}

/// The cookie domain of `shared.html`, whose hosts the driver maps to 127.0.0.1.
const SHARED_DOMAIN: &str = ".shop.test";

/// Serve the page on its own port: `index.html` with the Sluice URL and write key filled in,
/// the same page with `data-cookie-domain` as `shared.html`, and the site's bundle. Returns
/// the URL of `index.html`.
async fn serve_page(dir: PathBuf, sluice: &str, write_key: &str) -> String {
    let html = tokio::fs::read_to_string(dir.join("index.html"))
        .await
        .expect("read consent-js/index.html")
        .replace("{{SLUICE}}", sluice)
        .replace("{{WRITE_KEY}}", write_key);
    let key_attribute = format!("data-write-key=\"{write_key}\"");
    assert!(html.contains(&key_attribute), "{html}");
    let shared = html.replace(
        &key_attribute,
        &format!("{key_attribute} data-cookie-domain=\"{SHARED_DOMAIN}\""),
    );
    let page = |html: String| {
        get(move || async move { ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html) })
    };
    let bundle = dir.join("dist/site.js");
    let app = Router::new()
        .route("/index.html", page(html))
        .route("/shared.html", page(shared))
        .route(
            "/dist/site.js",
            get(move || async move {
                match tokio::fs::read(&bundle).await {
                    Ok(bytes) => (
                        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
                        bytes,
                    )
                        .into_response(),
                    Err(e) => (StatusCode::NOT_FOUND, e.to_string()).into_response(),
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/index.html", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

/// `METHOD path` of each request a step recorded.
fn calls(step: &Value) -> Vec<String> {
    step["requests"]
        .as_array()
        .expect("requests")
        .iter()
        .map(|r| {
            format!(
                "{} {}",
                r["method"].as_str().unwrap(),
                r["path"].as_str().unwrap()
            )
        })
        .collect()
}

/// The events a step posted to Sluice: (name, categoryPreferences).
fn sent(step: &Value) -> Vec<(String, Value)> {
    step["requests"]
        .as_array()
        .expect("requests")
        .iter()
        .filter(|r| r["method"] == "POST")
        .map(|r| {
            (
                r["event"].as_str().unwrap().to_owned(),
                r["body"]["context"]["consent"]["categoryPreferences"].clone(),
            )
        })
        .collect()
}

/// The name the driver gives an event: the track name, `page <name>`, or the type.
fn event_name(event: &Value) -> String {
    match (event["event"].as_str(), event["type"].as_str()) {
        (Some(name), _) => name.to_owned(),
        (None, Some("page")) => format!("page {}", event["name"].as_str().unwrap_or("?")),
        (None, kind) => kind.unwrap_or("?").to_owned(),
    }
}

fn sorted(mut names: Vec<String>) -> Vec<String> {
    names.sort();
    names
}

fn strings(names: &[&str]) -> Vec<String> {
    sorted(names.iter().map(|s| s.to_string()).collect())
}

/// The `tracking-preferences` cookie as SPEC §11 has it: `{"version":1,"destinations":{},
/// "custom":{..}}` holding `custom`, path `/`, `SameSite=Lax`, lasting 365 days, `Secure` exactly
/// when the page is https; `cookie` as the browser keeps it, `writes` the strings the page wrote
/// to `document.cookie` (the last one made it).
fn assert_preferences_cookie(cookie: &Value, writes: &Value, custom: &Value, secure: bool) {
    assert_eq!(
        cookie["decoded"],
        json!({"version": 1, "destinations": {}, "custom": custom}),
        "{cookie:#}"
    );
    assert_eq!(cookie["sameSite"], "Lax", "{cookie:#}");
    assert_eq!(cookie["secure"], secure, "{cookie:#}");
    assert_eq!(cookie["path"], "/", "{cookie:#}");
    assert_eq!(cookie["httpOnly"], false, "{cookie:#}");
    let days = (cookie["expires"].as_f64().unwrap()
        - std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64())
        / 86_400.0;
    assert!((364.9..=365.01).contains(&days), "cookie lasts {days} days");

    // As written: Chromium reports a cookie written without SameSite as Lax too.
    let written = writes
        .as_array()
        .and_then(|w| w.last())
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no tracking-preferences write: {writes:#}"));
    let mut parts = written.split("; ");
    assert_eq!(
        parts.next().unwrap(),
        format!("tracking-preferences={}", cookie["value"].as_str().unwrap())
    );
    let mut attributes: Vec<&str> = parts.filter(|a| !a.starts_with("Expires=")).collect();
    attributes.sort_unstable();
    let domain = cookie["domain"].as_str().unwrap();
    let domain = format!("Domain={domain}");
    let mut expected = vec!["Max-Age=31536000", "Path=/", "SameSite=Lax"];
    if secure {
        expected.push("Secure");
    }
    // Host-only unless data-cookie-domain (whose cookie domain starts with a dot) asked.
    if domain.starts_with("Domain=.") {
        expected.push(&domain);
    }
    expected.sort_unstable();
    assert_eq!(attributes, expected, "{written}");
    assert!(written.contains("; Expires="), "{written}");
}

/// axe-core found no serious or critical violation, and it examined `at_least` elements of
/// consent.js's shadow root (so a run that did not see the banner cannot pass).
fn assert_accessible(axe: &Value, at_least: u64, what: &str) {
    let bad: Vec<&Value> = axe["violations"]
        .as_array()
        .expect("axe violations")
        .iter()
        .filter(|v| v["impact"] == "serious" || v["impact"] == "critical")
        .collect();
    assert!(
        bad.is_empty(),
        "axe-core: serious/critical on the {what}: {bad:#?}"
    );
    let seen = axe["consentElements"].as_u64().unwrap();
    assert!(
        seen >= at_least,
        "axe-core examined only {seen} elements of the {what}: {axe:#}"
    );
}

#[tokio::test]
async fn consent_js_in_chromium() {
    let started = std::time::Instant::now();
    let js = js_dir();
    check_prerequisites();
    bundle("consent-js/site.js", "consent-js/dist/site.js").await;

    let server = TestServer::start().await;
    let hook = Receiver::start().await;
    let wk = server.write_key.clone();
    let (analytics_id, ads_id) = workspace(&server, &hook).await;
    let page_url = serve_page(js.join("consent-js"), &server.url, &wk).await;
    assert!(!page_url.starts_with(&server.url));

    let summary = drive_scenario("main", &page_url, &server.url).await;
    let steps = &summary["steps"];
    let loaded_script = [
        "GET /consent.js".to_owned(),
        format!("GET /v1/projects/{wk}/consent"),
    ];
    let analytics_only = json!({"C0002": true, "C0004": false, "C0005": false});
    let both = json!({"C0002": true, "C0004": true, "C0005": false});
    let everything = json!({"C0002": true, "C0004": true, "C0005": true});
    let nothing = json!({"C0002": false, "C0004": false, "C0005": false});
    let posts_only = |step: &Value| -> Vec<String> {
        calls(step)
            .into_iter()
            .filter(|c| c.starts_with("POST"))
            .collect()
    };

    // A, before a choice: the banner names the enabled categories, nothing is granted and
    // nothing but the script and its document was fetched from Sluice, though the page called
    // analytics.page() and track() (analytics-next buffers them, not loaded).
    let before = &steps["A_before"];
    assert_eq!(before["bannerVisible"], true, "{before:#}");
    let text = before["bannerText"].as_str().unwrap();
    assert!(
        text.contains("Analytics, Advertising, Functional") && !text.contains("Retired"),
        "{text}"
    );
    assert_eq!(before["get"], Value::Null);
    assert_eq!(before["loaded"], false);
    assert_eq!(before["cookie"], json!([]));
    assert_eq!(calls(before), loaded_script, "{before:#}");
    assert_eq!(
        before["categories"],
        json!([{"id": "C0002", "name": "Analytics"}, {"id": "C0004", "name": "Advertising"},
               {"id": "C0005", "name": "Functional"}])
    );
    // The banner does not take focus; it is first in the tab order.
    assert_ne!(before["focusedOnLoad"].as_str(), Some("button Accept all"));
    assert_eq!(before["firstTab"], "button Reject all", "{before:#}");
    assert_eq!(before["secondTab"], "button Choose…", "{before:#}");
    // Nothing stored for the visitor before a choice: no cookie at all, no analytics-next
    // storage (it is not loaded).
    assert_eq!(before["cookies"], json!([]), "{before:#}");
    assert_eq!(before["localStorage"], json!([]), "{before:#}");
    // axe-core on the page with the banner (heading, text, three buttons, ...).
    assert_accessible(&before["axe"], 5, "banner");

    // The dialog: opened with Enter on "Choose…" (reached with Tab), focus on the first
    // checkbox, one labelled checkbox per category, all off (default reject); Space ticks, Tab
    // reaches "Save choices".
    let dialog = &steps["A_dialog"];
    assert_eq!(dialog["focused"], "checkbox C0002", "{dialog:#}");
    // axe-core on the open dialog (three checkboxes and four buttons on top of the banner).
    assert_accessible(&dialog["axe"], 12, "preferences dialog");
    for (boxes, analytics_checked) in [
        (&dialog["checkboxes"], false),
        (&dialog["beforeSave"], true),
    ] {
        let boxes = boxes.as_array().unwrap();
        assert_eq!(boxes.len(), 3, "{dialog:#}");
        for b in boxes {
            assert_eq!(b["found"], 1, "{b:#}");
            let expected = analytics_checked && b["id"] == "C0002";
            assert_eq!(b["checked"], expected, "{dialog:#}");
        }
    }
    assert_eq!(
        dialog["tabbed"].as_array().unwrap().last().unwrap(),
        "button Save choices",
        "{dialog:#}"
    );

    // Saved: banner and dialog gone, the cookie holds the choice, analytics-next loaded from
    // Sluice's settings, and the consent update went out first, then the buffered calls, all
    // stamped with exactly the choice; one onChange call.
    let chosen = &steps["A_chosen"];
    assert_eq!(chosen["bannerVisible"], false, "{chosen:#}");
    assert_eq!(chosen["dialogVisible"], false);
    assert_eq!(chosen["loaded"], true);
    assert_eq!(chosen["get"], analytics_only);
    assert_eq!(chosen["changes"], json!([analytics_only]));
    let cookie = &chosen["cookie"].as_array().unwrap()[0];
    assert_preferences_cookie(cookie, &chosen["cookieWrites"], &analytics_only, false);
    assert_eq!(
        cookie["domain"], "127.0.0.1",
        "host-only without data-cookie-domain"
    );
    assert!(
        calls(chosen).contains(&format!("GET /v1/projects/{wk}/settings")),
        "{:#?}",
        calls(chosen)
    );
    let pair = |name: &str, prefs: &Value| (name.to_owned(), prefs.clone());
    assert_eq!(
        sent(chosen),
        vec![
            pair(UPDATED, &analytics_only),
            pair("page A", &analytics_only),
            pair("A Before Choice", &analytics_only),
            pair("A After Choice", &analytics_only),
        ],
        "{chosen:#}"
    );

    // Reopened with the saved choice; Escape closes it, focus returns to the site's button,
    // nothing changes and nothing is sent.
    let escape = &steps["A_escape"];
    let reopened: BTreeMap<String, bool> = escape["reopened"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["id"].as_str().unwrap().to_owned(),
                b["checked"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(serde_json::to_value(&reopened).unwrap(), analytics_only);
    assert_eq!(escape["dialogVisible"], false);
    assert_eq!(escape["focusAfter"], "#privacy", "{escape:#}");
    assert_eq!(escape["changes"], json!([analytics_only]));
    assert_eq!(posts_only(escape), Vec::<String>::new());

    // Reload: no banner, the same consent stamped, no consent update, no onChange.
    let reload = &steps["A_reload"];
    assert_eq!(reload["bannerVisible"], false, "{reload:#}");
    assert_eq!(reload["get"], analytics_only);
    assert_eq!(reload["changes"], json!([]));
    assert_eq!(
        sent(reload),
        vec![
            pair("page A", &analytics_only),
            pair("A After Reload", &analytics_only)
        ],
        "{reload:#}"
    );

    // A change through the API: one consent update; the same choice again sends nothing.
    let set = &steps["A_set"];
    assert_eq!(set["returned"], both);
    assert_eq!(set["again"], both);
    assert_eq!(set["changes"], json!([both]));
    assert_eq!(set["cookie"][0]["decoded"]["custom"], both);
    assert_eq!(
        sent(set),
        vec![pair(UPDATED, &both), pair("A Both Granted", &both)],
        "{set:#}"
    );

    // B: "Reject all" with every destination mapped: the choice is stored, nothing loads and
    // nothing is sent, now or after a reload.
    let rejected = &steps["B_rejected"];
    assert_eq!(rejected["bannerVisible"], false, "{rejected:#}");
    assert_eq!(rejected["get"], nothing);
    assert_eq!(rejected["changes"], json!([nothing]));
    assert_preferences_cookie(
        &rejected["cookie"][0],
        &rejected["cookieWrites"],
        &nothing,
        false,
    );
    assert_eq!(rejected["loaded"], false);
    assert_eq!(calls(rejected), loaded_script, "{rejected:#}");
    let reload = &steps["B_reload"];
    assert_eq!(reload["bannerVisible"], false);
    assert_eq!(reload["get"], nothing);
    assert_eq!(reload["loaded"], false);
    assert_eq!(posts_only(reload), Vec::<String>::new(), "{reload:#}");

    // H: granting only "Functional", which no destination needs, is stored but loads nothing
    // and sends nothing: analytics-next loads only for a category that needs it.
    let functional = &steps["H_functional"];
    let functional_only = json!({"C0002": false, "C0004": false, "C0005": true});
    assert_eq!(functional["get"], functional_only, "{functional:#}");
    assert_eq!(functional["changes"], json!([functional_only]));
    assert_eq!(functional["bannerVisible"], false);
    assert_eq!(functional["loaded"], false, "{functional:#}");
    assert_preferences_cookie(
        &functional["cookie"][0],
        &functional["cookieWrites"],
        &functional_only,
        false,
    );
    assert_eq!(calls(functional), loaded_script, "{functional:#}");

    // C: document.cookie does not work. The banner asks, nothing is sent before the choice;
    // "Accept all" applies to this page view (no cookie is left); after a reload it asks again
    // and sends nothing.
    let c_before = &steps["C_before"];
    assert_eq!(c_before["documentCookie"], "", "cookies are really off");
    assert_eq!(c_before["bannerVisible"], true);
    assert_eq!(calls(c_before), loaded_script, "{c_before:#}");
    let accepted = &steps["C_accepted"];
    assert_eq!(accepted["cookies"], json!([]), "{accepted:#}");
    assert_eq!(accepted["get"], everything);
    assert_eq!(
        sent(accepted),
        vec![
            pair(UPDATED, &everything),
            pair("page C", &everything),
            pair("C Before Choice", &everything),
        ],
        "{accepted:#}"
    );
    // F: with data-cookie-domain=".shop.test", the choice made on www.shop.test holds on
    // other.shop.test too.
    let shared = &steps["F_shared"];
    let cookie = &shared["cookie"][0];
    assert_eq!(cookie["domain"], SHARED_DOMAIN, "{shared:#}");
    assert_preferences_cookie(cookie, &shared["www"]["cookieWrites"], &nothing, false);
    assert_eq!(shared["www"]["bannerVisible"], false);
    assert_eq!(shared["other"]["bannerVisible"], false, "{shared:#}");
    assert_eq!(shared["other"]["get"], nothing);
    assert_eq!(posts_only(shared), Vec::<String>::new(), "{shared:#}");

    // G: on an https page the cookie is also Secure, and it round-trips on reload.
    let https = &steps["G_https"];
    assert_eq!(https["secureContext"], true, "{https:#}");
    assert_eq!(https["rejected"]["get"], nothing, "{https:#}");
    assert_eq!(https["rejected"]["bannerVisible"], false);
    let cookie = &https["cookie"].as_array().expect("cookies")[0];
    assert_preferences_cookie(cookie, &https["rejected"]["cookieWrites"], &nothing, true);
    assert_eq!(cookie["domain"], "secure.shop.test");
    assert_eq!(https["reload"]["bannerVisible"], false, "{https:#}");
    assert_eq!(https["reload"]["get"], nothing);
    assert_eq!(https["reload"]["changes"], json!([]));
    assert_eq!(https["reload"]["loaded"], false);
    assert_eq!(
        calls(https),
        [loaded_script.clone(), loaded_script.clone()].concat(),
        "{https:#}"
    );

    let c_reload = &steps["C_reload"];
    assert_eq!(c_reload["documentCookie"], "");
    assert_eq!(c_reload["bannerVisible"], true, "{c_reload:#}");
    assert_eq!(c_reload["get"], Value::Null);
    assert_eq!(c_reload["loaded"], false);
    assert_eq!(posts_only(c_reload), Vec::<String>::new(), "{c_reload:#}");

    // A destination that needs no consent, under policy allow: analytics-next loads without a
    // choice and sends events stamped "nothing granted"; the banner still asks.
    let everything_hook = server
        .webhook(
            "Everything",
            "Webhooks",
            &format!("{}/all", hook.url),
            json!({}),
        )
        .await;
    let unmapped = drive_scenario("unmapped", &page_url, &server.url).await;
    let d = &unmapped["steps"]["D"];
    assert_eq!(d["bannerVisible"], true, "{d:#}");
    assert_eq!(d["get"], Value::Null);
    assert_eq!(d["loaded"], true);
    assert_eq!(
        sent(d),
        vec![pair("page D", &nothing), pair("D Before Choice", &nothing)],
        "{d:#}"
    );

    // The same under policy deny: nothing before a choice.
    let (status, answer) = server
        .admin(
            "PATCH",
            "/api/v1/workspace",
            Some(json!({"missingConsentPolicy": "deny"})),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    let deny = drive_scenario("deny", &page_url, &server.url).await;
    let e = &deny["steps"]["E"];
    assert_eq!(e["bannerVisible"], true, "{e:#}");
    assert_eq!(e["loaded"], false);
    assert_eq!(calls(e), loaded_script, "{e:#}");

    // Sluice routed by consent: "Product analytics" (C0002) got everything A and C sent; "Ads"
    // (C0004) only A's events after C0004 was granted and C's, plus every consent update;
    // "Everything" only D's. Sluice generated no consent update: each change reached it first.
    let expected_analytics = strings(&[
        UPDATED,
        "page A",
        "A Before Choice",
        "A After Choice",
        "page A",
        "A After Reload",
        UPDATED,
        "A Both Granted",
        UPDATED,
        "page C",
        "C Before Choice",
    ]);
    let expected_ads = strings(&[
        UPDATED,
        UPDATED,
        "A Both Granted",
        UPDATED,
        "page C",
        "C Before Choice",
    ]);
    let expected_all = strings(&["page D", "D Before Choice"]);
    let at = |requests: &[Got], path: &str| -> Vec<Value> {
        requests
            .iter()
            .filter(|g| g.path == path)
            .flat_map(Got::events)
            .collect()
    };
    let names = |events: &[Value]| sorted(events.iter().map(event_name).collect());
    let received = eventually(
        Duration::from_secs(20),
        "deliveries to the webhooks",
        || {
            let hook = hook.clone();
            let expected = (
                expected_analytics.clone(),
                expected_ads.clone(),
                expected_all.clone(),
            );
            async move {
                let got = hook.requests();
                let now = (
                    names(&at(&got, "/analytics")),
                    names(&at(&got, "/ads")),
                    names(&at(&got, "/all")),
                );
                (now == expected).then_some(got)
            }
        },
    )
    .await;
    for (path, event) in received
        .iter()
        .flat_map(|g| g.events().into_iter().map(move |e| (g.path.clone(), e)))
    {
        assert!(!is_generated(&event), "{path}: {event:#}");
        let name = event_name(&event);
        // Which visitor sent it: "page A" / "A After Choice" -> "A".
        let visitor = name
            .strip_prefix("page ")
            .unwrap_or(&name)
            .split(' ')
            .next()
            .unwrap_or("");
        let expected = match (name.as_str(), visitor) {
            (UPDATED, _) => continue, // checked below
            ("A Both Granted", _) => &both,
            (_, "A") => &analytics_only,
            (_, "C") => &everything,
            (_, "D") => &nothing,
            _ => panic!("unexpected {name} at {path}: {event:#}"),
        };
        assert_eq!(
            event["context"]["consent"]["categoryPreferences"], *expected,
            "{name} at {path}: {event:#}"
        );
    }
    // The three consent updates carry the choice they announce.
    let mut updates: Vec<Value> = at(&received, "/ads")
        .into_iter()
        .filter(|e| e["event"] == UPDATED)
        .map(|e| e["context"]["consent"]["categoryPreferences"].clone())
        .collect();
    updates.sort_by_key(|v| v.to_string());
    let mut expected_updates = vec![analytics_only.clone(), both.clone(), everything.clone()];
    expected_updates.sort_by_key(|v| v.to_string());
    assert_eq!(updates, expected_updates);

    // The overview agrees: "Ads" held back A's five events sent before C0004 was granted and
    // D's two; "Product analytics" D's two; "Everything" got D's two.
    let overview = server.overview("").await;
    let steps_of = |id: &str| {
        overview["destinations"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["destinationId"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("no overview for {id}: {overview:#}"))
    };
    let filtered = |id: &str| steps_of(id)["filtered"]["FILTERED_BY_END_USER_CONSENT"].clone();
    assert_eq!(filtered(&ads_id), 7, "{overview:#}");
    assert_eq!(filtered(&analytics_id), 2, "{overview:#}");
    assert_eq!(steps_of(&everything_hook)["routed"], 2, "{overview:#}");

    eprintln!(
        "consent.js browser test: drivers {} + {} + {} ms, whole test {} ms",
        summary["ms"],
        unmapped["ms"],
        deny["ms"],
        started.elapsed().as_millis()
    );
}

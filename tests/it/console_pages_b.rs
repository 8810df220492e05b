//! Console pages over HTTP: Delivery overview, Debugger, Profiles, Regulations and Audit trail.
//! Each test signs in as real users through `/login` and compares what the pages show with the
//! admin API, checks that forms change what they should (and land in the API and the audit
//! trail), and that viewers and forged forms are refused without changing anything.

use std::collections::BTreeMap;
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{Value, json};

use crate::common::{Receiver, TestServer, consented, eventually};
use crate::console_client::{Console, element, tag};

fn attr<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let needle = format!(" {name}=\"");
    let start = tag.find(&needle)? + needle.len();
    Some(&tag[start..start + tag[start..].find('"')?])
}

/// Every number on the overview page: `(destination or "", step, reason or code or "") → value`.
fn overview_numbers(html: &str) -> BTreeMap<(String, String, String), i64> {
    let mut out = BTreeMap::new();
    for (at, _) in html.match_indices(" data-step=\"") {
        let start = html[..at].rfind('<').unwrap();
        let tag = &html[start..at + html[at..].find('>').unwrap()];
        let key = (
            attr(tag, "data-destination").unwrap_or("").to_owned(),
            attr(tag, "data-step").unwrap().to_owned(),
            attr(tag, "data-reason")
                .or(attr(tag, "data-code"))
                .unwrap_or("")
                .to_owned(),
        );
        let value: i64 = attr(tag, "data-value")
            .expect("data-value")
            .parse()
            .unwrap();
        assert!(
            out.insert(key.clone(), value).is_none(),
            "{key:?} shown twice"
        );
    }
    out
}

/// The same numbers, from `GET /api/v1/delivery-overview`.
fn api_numbers(api: &Value) -> BTreeMap<(String, String, String), i64> {
    let mut out = BTreeMap::new();
    let n = |v: &Value| v.as_i64().unwrap();
    let mut top = vec![
        ("received", n(&api["received"])),
        ("generated", n(&api["generated"])),
        ("filteredAtSource", n(&api["filteredAtSource"])),
        ("duplicates", n(&api["duplicates"])),
        ("accepted", n(&api["accepted"])),
    ];
    let failed = api["failedOnIngest"].as_object().unwrap();
    top.push(("failedOnIngest", failed.values().map(n).sum()));
    for (code, count) in failed {
        out.insert(
            (String::new(), "failedOnIngest".to_owned(), code.clone()),
            n(count),
        );
    }
    for (step, value) in &top {
        out.insert((String::new(), (*step).to_owned(), String::new()), *value);
    }
    for d in api["destinations"].as_array().unwrap() {
        let id = d["destinationId"].as_str().unwrap().to_owned();
        // Each destination's funnel repeats the workspace-wide steps.
        for (step, value) in &top {
            out.insert((id.clone(), (*step).to_owned(), String::new()), *value);
        }
        for step in [
            "routed",
            "pending",
            "retrying",
            "dead",
            "delivered",
            "deleted",
        ] {
            out.insert((id.clone(), step.to_owned(), String::new()), n(&d[step]));
        }
        let filtered = d["filtered"].as_object().unwrap();
        out.insert(
            (id.clone(), "filtered".to_owned(), String::new()),
            filtered.values().map(n).sum(),
        );
        for (reason, count) in filtered {
            out.insert(
                (id.clone(), "filtered".to_owned(), reason.clone()),
                n(count),
            );
        }
    }
    out
}

async fn source_id(server: &TestServer) -> (String, String) {
    let (_, sources) = server.admin("GET", "/api/v1/sources", None).await;
    (
        sources[0]["id"].as_str().unwrap().to_owned(),
        sources[0]["name"].as_str().unwrap().to_owned(),
    )
}

async fn regulations(server: &TestServer) -> Vec<Value> {
    let (status, list) = server.admin("GET", "/api/v1/regulations", None).await;
    assert_eq!(status, 200, "{list}");
    list.as_array().unwrap().clone()
}

#[tokio::test]
async fn pages_render_for_owner_and_viewer() {
    let server = TestServer::start().await;
    let owner = Console::sign_in(&server, "owner").await;
    let viewer = Console::sign_in(&server, "viewer").await;
    let pages = [
        ("/overview", "Delivery overview"),
        ("/debugger", "Debugger"),
        ("/profiles", "Profiles"),
        ("/regulations", "Regulations"),
        ("/audit", "Audit trail"),
    ];
    for (path, title) in pages {
        for who in [&owner, &viewer] {
            let page = who.get(path).await;
            assert_eq!(page.status, 200, "{path}: {}", page.html);
            assert!(page.html.contains(&format!("<h1>{title}</h1>")), "{path}");
            assert!(
                page.html
                    .contains(&format!("href=\"{path}\" aria-current=\"page\"")),
                "{path}"
            );
            assert_eq!(page.html.matches("<h1").count(), 1, "{path}");
        }
        // Signed out: to the sign-in page, and back here afterwards.
        let response = owner
            .http
            .get(format!("{}{path}", server.url))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 303, "{path}");
        assert_eq!(
            response.headers()["location"],
            format!("/login?next={path}")
        );
    }

    // Viewers see regulations and the audit trail only as the API's reason.
    let page = viewer.get("/regulations").await;
    assert!(
        element(&page.html, "regulations-hidden")
            .contains("Only owners can see or file deletion and suppression requests")
    );
    assert!(tag(&page.html, "subject_ids").contains(" disabled"));
    assert!(page.html.contains(
        "<button type=\"submit\" disabled aria-describedby=\"create-reason\">File request</button>"
    ));
    let page = viewer.get("/audit").await;
    assert!(element(&page.html, "audit-hidden").contains("Only owners can read the audit trail"));
    assert!(!page.html.contains("id=\"audit-entries\""));
    let page = owner.get("/regulations").await;
    assert!(!page.html.contains("regulations-hidden"));
    assert!(!tag(&page.html, "subject_ids").contains(" disabled"));

    // A custom range with a bad time is shown next to its field.
    let page = owner.get("/overview?range=custom&from=yesterday").await;
    assert_eq!(page.status, 400);
    assert!(element(&page.html, "from-error").contains("Enter a start date and time"));
    assert!(tag(&page.html, "from").contains("aria-invalid=\"true\""));
    let page = owner
        .get("/overview?range=custom&from=2026-01-02T00:00&to=2026-01-01T00:00")
        .await;
    assert_eq!(page.status, 400);
    assert!(element(&page.html, "to-error").contains("end must be after the start"));
}

#[tokio::test]
async fn overview_numbers_equal_the_api() {
    let server = TestServer::start().await;
    let receiver = Receiver::start().await;
    let ads = server
        .webhook(
            "Ads",
            "Google Ads",
            &format!("{}/ads", receiver.url),
            json!({}),
        )
        .await;
    let all = server
        .webhook(
            "Everything",
            "Webhooks",
            &format!("{}/all", receiver.url),
            json!({}),
        )
        .await;
    server
        .create(
            "/api/v1/consent/categories",
            json!({"id": "C0004", "name": "Advertising", "destinations": [ads]}),
        )
        .await;
    let viewer = Console::sign_in(&server, "viewer").await;
    let from = sluice::clock::format_ms(sluice::clock::now_ms() - 3_600_000);

    for i in 0..2 {
        let event = json!({"userId": format!("yes-{i}"), "anonymousId": format!("anon-yes-{i}"), "event": "Granted", "context": {"consent": {"categoryPreferences": {"C0004": true}}}});
        assert_eq!(server.track("/v1/track", event).await.0, 200);
    }
    for i in 0..3 {
        assert_eq!(
            server
                .track(
                    "/v1/track",
                    consented("Refused", &format!("no-{i}"), json!({"C0004": false}))
                )
                .await
                .0,
            200
        );
    }
    let off =
        json!({"userId": "u-off", "event": "Not for ads", "integrations": {"Google Ads": false}});
    assert_eq!(server.track("/v1/track", off).await.0, 200);
    let dup = json!({"userId": "u-dup", "event": "Twice", "messageId": "dup-1"});
    server.track("/v1/track", dup.clone()).await;
    server.track("/v1/track", dup).await;
    let batch = json!({"batch": [{"type": "track", "userId": "u-b", "event": "Fine"}, {"type": "track", "userId": "u-b", "event": 7}]});
    assert_eq!(server.track("/v1/batch", batch).await.0, 200);

    let to = sluice::clock::format_ms(sluice::clock::now_ms() + 60_000);
    let query = format!("?from={from}&to={to}");
    // Wait until delivery has settled, so the page and the API read the same numbers.
    let api = eventually(Duration::from_secs(10), "deliveries settled", || async {
        let api = server.overview(&query).await;
        let settled = api["destinations"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["pending"] == 0 && d["retrying"] == 0);
        (settled
            && api["destinations"]
                .as_array()
                .unwrap()
                .iter()
                .any(|d| d["delivered"].as_i64() > Some(0)))
        .then_some(api)
    })
    .await;

    let page = viewer
        .get(&format!("/overview?range=custom&from={from}&to={to}"))
        .await;
    assert_eq!(page.status, 200, "{}", page.html);
    assert_eq!(overview_numbers(&page.html), api_numbers(&api));
    // And the API answers the same again (nothing moved while the page was read).
    assert_eq!(server.overview(&query).await, api);

    let filtered = &api["destinations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["destinationId"] == ads.as_str())
        .unwrap()["filtered"];
    assert_eq!(filtered["FILTERED_BY_END_USER_CONSENT"], 3, "{api}");
    assert_eq!(filtered["FILTERED_BY_INTEGRATIONS_OBJECT"], 1, "{api}");
    assert_eq!(api["duplicates"], 1);
    assert_eq!(api["failedOnIngest"]["event_not_string"], 1);
    assert!(page.html.contains(
        "Filtered: the end user did not consent <code>FILTERED_BY_END_USER_CONSENT</code>"
    ));
    assert!(
        page.html
            .contains("Failed on ingest: event name is not text <code>event_not_string</code>")
    );
    // The funnel chart is an accessible image with the same numbers in the table.
    assert!(
        page.html
            .contains("role=\"img\" aria-labelledby=\"dest-1-title\"")
    );
    assert!(element(&page.html, "dest-1-title").contains("filtered at destination"));
    assert!(
        page.html
            .contains(&format!("data-destination-section=\"{all}\""))
    );
    // Generated consent-update events are labelled as such.
    let note = &page.html[page.html.find("id=\"generated-note\"").unwrap()..];
    assert!(note[..note.find("</p>").unwrap()].contains("created by Sluice itself"));

    // A preset range and a source filter render too.
    let (source, name) = source_id(&server).await;
    let page = viewer
        .get(&format!("/overview?range=1h&source={source}"))
        .await;
    assert_eq!(page.status, 200);
    assert!(
        page.html
            .contains(&format!("source <strong>{name}</strong>"))
    );
    let page = viewer.get("/overview?range=1h&source=nope").await;
    assert_eq!(page.status, 400);
    assert!(element(&page.html, "source-error").contains("does not exist"));
}

/// Read server-sent events until one named `name` arrives.
async fn next_event(
    stream: &mut (impl futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Unpin),
    buffer: &mut String,
    name: &str,
) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        while let Some(end) = buffer.find("\n\n") {
            let message: String = buffer.drain(..end + 2).collect();
            let event = message
                .lines()
                .find_map(|l| l.strip_prefix("event:"))
                .map(str::trim)
                .unwrap_or("");
            let data: String = message
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(str::trim_start)
                .collect();
            if event == name {
                return serde_json::from_str(&data).unwrap_or(Value::String(data));
            }
        }
        let chunk = tokio::time::timeout_at(deadline, stream.next())
            .await
            .unwrap_or_else(|_| panic!("timed out waiting for a `{name}` event"))
            .expect("stream ended")
            .expect("stream error");
        buffer.push_str(&String::from_utf8_lossy(&chunk));
    }
}

#[tokio::test]
async fn debugger_streams_events_to_signed_in_users_only() {
    let server = TestServer::start().await;
    let ads = server
        .webhook("Ads", "Google Ads", "http://127.0.0.1:9/ads", json!({}))
        .await;
    server
        .create(
            "/api/v1/consent/categories",
            json!({"id": "C0004", "name": "Advertising", "destinations": [ads]}),
        )
        .await;
    let viewer = Console::sign_in(&server, "viewer").await;
    let (source, name) = source_id(&server).await;

    // The page: the frame for the live view, its script, and what to do without JavaScript.
    let page = viewer.get(&format!("/debugger?source={source}")).await;
    assert_eq!(page.status, 200);
    assert_eq!(
        attr(tag(&page.html, "debugger"), "data-stream"),
        Some(format!("/debugger/stream?source={source}").as_str())
    );
    assert!(page.html.contains(&format!("Live events from {name}")));
    assert!(page.html.contains("<noscript>"));
    assert!(page.html.contains("The live view needs JavaScript"));
    assert!(tag(&page.html, "debugger-announce").contains("aria-live=\"polite\""));
    assert!(
        page.html
            .contains("<script src=\"/console/assets/debugger.js\" defer></script>")
    );
    let script = viewer.get("/console/assets/debugger.js").await;
    assert_eq!(script.status, 200);
    assert!(script.html.contains("new EventSource") && !script.html.contains(".innerHTML"));
    assert_eq!(viewer.get("/debugger?source=nope").await.status, 404);

    // Without a session the stream is refused (not redirected), with or without a source.
    let refused = viewer
        .http
        .get(format!("{}/debugger/stream?source={source}", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    let forged = viewer
        .http
        .get(format!("{}/debugger/stream?source={source}", server.url))
        .header("cookie", "sluice_session=not-a-session")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 401);
    assert_eq!(server.app.debugger.subscriber_count(), 0);
    assert_eq!(viewer.get("/debugger/stream?source=nope").await.status, 404);

    let response = viewer
        .http
        .get(format!("{}/debugger/stream?source={source}", server.url))
        .header("cookie", &viewer.cookie)
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
    let mut stream = response.bytes_stream();
    let mut buffer = String::new();
    next_event(&mut stream, &mut buffer, "ready").await;
    server
        .track(
            "/v1/track",
            consented("Checkout Started", "u1", json!({"C0004": false})),
        )
        .await;
    let event = next_event(&mut stream, &mut buffer, "event").await;
    assert_eq!(event["status"], "accepted");
    assert_eq!(event["event"]["event"], "Checkout Started");
    assert_eq!(
        event["consent"],
        json!({"categoryPreferences": {"C0004": false}})
    );
    assert_eq!(
        event["decisions"][0]["reason"],
        "FILTERED_BY_END_USER_CONSENT"
    );
    drop(stream);
    eventually(Duration::from_secs(5), "viewer gone", || async {
        (server.app.debugger.subscriber_count() == 0).then_some(())
    })
    .await;
}

#[tokio::test]
async fn profiles_show_consent_with_provenance() {
    let server = TestServer::start().await;
    let ads = server
        .webhook("Ads", "Google Ads", "http://127.0.0.1:9/ads", json!({}))
        .await;
    server
        .create(
            "/api/v1/consent/categories",
            json!({"id": "C0004", "name": "Advertising", "destinations": [ads]}),
        )
        .await;
    let viewer = Console::sign_in(&server, "viewer").await;
    let (_, source_name) = source_id(&server).await;

    let event = json!({
        "type": "track", "event": "Segment Consent Preference Updated", "userId": "ada@example.com", "anonymousId": "device-1",
        "context": {"consent": {"categoryPreferences": {"C0004": true, "C0009": false}}},
    });
    assert_eq!(server.track("/v1/track", event).await.0, 200);
    let profile = eventually(Duration::from_secs(10), "profile with consent", || async {
        let (status, p) = server.admin("GET", "/api/v1/profiles/device-1", None).await;
        (status == 200 && p["consent"]["C0004"]["value"] == true).then_some(p)
    })
    .await;
    let message_id = profile["consent"]["C0004"]["messageId"]
        .as_str()
        .unwrap()
        .to_owned();

    let page = viewer.get("/profiles?id=ada%40example.com").await;
    assert_eq!(page.status, 200, "{}", page.html);
    let row = tag(&page.html, "profile-consent");
    assert!(row.starts_with("<table"));
    let consent = &page.html[page.html.find("id=\"profile-consent\"").unwrap()..];
    let granted = &consent[consent
        .find("data-category=\"C0004\" data-value=\"granted\"")
        .expect("C0004 granted")..];
    let granted = &granted[..granted.find("</tr>").unwrap()];
    assert!(
        granted.contains("Advertising <code>C0004</code>"),
        "{granted}"
    );
    assert!(granted.contains(&message_id), "{granted}");
    assert!(granted.contains(&source_name), "{granted}");
    assert!(granted.contains(&format!(
        "datetime=\"{}\"",
        profile["consent"]["C0004"]["at"].as_str().unwrap()
    )));
    assert!(consent.contains("data-category=\"C0009\" data-value=\"refused\""));
    assert!(element(&page.html, "profile-user-ids").contains("ada@example.com"));
    assert!(element(&page.html, "profile-anonymous-ids").contains("device-1"));
    let ledger = &page.html[page.html.find("id=\"profile-ledger\"").unwrap()..];
    assert!(ledger.contains("Consent-update event"));
    assert!(ledger.contains(&message_id));

    // The ledger downloads as JSON lines, the same as the API's export.
    assert_eq!(
        attr(tag(&page.html, "profile-export"), "href"),
        Some("/profiles/export?id=ada%40example.com")
    );
    let download = viewer.get("/profiles/export?id=ada%40example.com").await;
    assert_eq!(download.status, 200);
    assert_eq!(download.content_type, "application/x-ndjson");
    let (_, history) = server
        .admin("GET", "/api/v1/profiles/device-1/consent-history", None)
        .await;
    let lines: Vec<Value> = download
        .html
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines, history["entries"].as_array().unwrap().clone());

    // Someone unknown gets a friendly message, not an error page.
    let page = viewer.get("/profiles?id=nobody").await;
    assert_eq!(page.status, 404);
    assert!(element(&page.html, "profile-not-found").contains("No one found with the id"));
    assert_eq!(viewer.get("/profiles/export?id=nobody").await.status, 404);
}

#[tokio::test]
async fn regulations_are_filed_through_the_form() {
    let server = TestServer::start().await;
    let owner = Console::sign_in(&server, "owner").await;
    let viewer = Console::sign_in(&server, "viewer").await;

    // Suppress: filed at once, visible in the API, the page and the audit trail.
    let page = owner
        .post(
            "/regulations",
            &[
                ("regulation_type", "SUPPRESS_ONLY"),
                ("subject_ids", "mallory\r\n\r\n eve \nmallory"),
            ],
        )
        .await;
    assert_eq!(page.status, 303, "{}", page.html);
    assert!(
        page.location.starts_with("/regulations?ok="),
        "{}",
        page.location
    );
    let list = regulations(&server).await;
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["regulationType"], "SUPPRESS_ONLY");
    assert_eq!(list[0]["subjectIds"], json!(["mallory", "eve"]));
    let id = list[0]["id"].as_str().unwrap().to_owned();
    let (_, audit) = server
        .admin("GET", "/api/v1/audit?action=regulation.created", None)
        .await;
    assert_eq!(audit["entries"][0]["resourceId"], id.as_str());
    assert_eq!(audit["entries"][0]["actor"], "owner@example.com");
    eventually(Duration::from_secs(5), "suppressed", || async {
        let (_, s) = server.admin("GET", "/api/v1/suppressions", None).await;
        (s.as_array().unwrap().len() == 2).then_some(())
    })
    .await;
    let page = owner.get("/regulations").await;
    assert!(page.html.contains(&format!("id=\"regulation-{id}\"")));
    assert!(page.html.contains("data-suppressed=\"mallory\""));
    assert!(
        page.html
            .contains("Suppress: stop collecting<br><code>SUPPRESS_ONLY</code>")
    );

    // Deleting asks for confirmation first; nothing is filed until the word is typed.
    let page = owner
        .post(
            "/regulations",
            &[
                ("regulation_type", "SUPPRESS_WITH_DELETE_INTERNAL"),
                ("subject_ids", "trudy"),
            ],
        )
        .await;
    assert_eq!(page.status, 200);
    assert!(element(&page.html, "confirm-heading").contains("This cannot be undone"));
    assert!(tag(&page.html, "confirm-word").contains("data-confirm=\"delete\""));
    assert!(
        page.html
            .contains("<input type=\"hidden\" name=\"subject_ids\" value=\"trudy\">")
    );
    assert_eq!(regulations(&server).await.len(), 1);
    let page = owner
        .post(
            "/regulations",
            &[
                ("regulation_type", "SUPPRESS_WITH_DELETE_INTERNAL"),
                ("subject_ids", "trudy"),
                ("confirm", "yes"),
            ],
        )
        .await;
    assert_eq!(page.status, 400);
    assert!(element(&page.html, "confirm-error").contains("Type the word delete"));
    assert_eq!(regulations(&server).await.len(), 1);
    let page = owner
        .post(
            "/regulations",
            &[
                ("regulation_type", "SUPPRESS_WITH_DELETE_INTERNAL"),
                ("subject_ids", "trudy"),
                ("confirm", "delete"),
            ],
        )
        .await;
    assert_eq!(page.status, 303, "{}", page.html);
    let list = regulations(&server).await;
    assert_eq!(list.len(), 2);
    assert_eq!(
        list.iter()
            .filter(|r| r["regulationType"] == "SUPPRESS_WITH_DELETE_INTERNAL"
                && r["subjectIds"] == json!(["trudy"]))
            .count(),
        1
    );

    // Bad input is shown next to its field.
    let page = owner
        .post(
            "/regulations",
            &[
                ("regulation_type", "SUPPRESS_ONLY"),
                ("subject_ids", " \n "),
            ],
        )
        .await;
    assert_eq!(page.status, 400);
    assert!(element(&page.html, "subject-error").contains("at least one user id"));
    assert!(tag(&page.html, "subject_ids").contains("aria-invalid=\"true\""));
    let long = "x".repeat(201);
    let page = owner
        .post(
            "/regulations",
            &[("regulation_type", "SUPPRESS_ONLY"), ("subject_ids", &long)],
        )
        .await;
    assert_eq!(page.status, 400);
    assert!(tag(&page.html, "subject_ids").contains("aria-invalid=\"true\""));
    let page = owner
        .post(
            "/regulations",
            &[
                ("regulation_type", "FORGET_EVERYTHING"),
                ("subject_ids", "x"),
            ],
        )
        .await;
    assert_eq!(page.status, 400);
    assert!(element(&page.html, "type-error").contains("Choose what to do"));
    assert_eq!(regulations(&server).await.len(), 2);

    // A viewer's POST and a forged form are refused and change nothing.
    let refused = viewer
        .post(
            "/regulations",
            &[
                ("regulation_type", "UNSUPPRESS"),
                ("subject_ids", "mallory"),
            ],
        )
        .await;
    assert_eq!(refused.status, 403);
    assert!(
        refused
            .html
            .contains("Only owners can see or file deletion and suppression requests")
    );
    let forged = owner
        .forge(
            "/regulations",
            &[
                ("regulation_type", "DELETE_INTERNAL"),
                ("subject_ids", "eve"),
                ("confirm", "delete"),
            ],
        )
        .await;
    assert_eq!(forged.status, 403);
    assert_eq!(regulations(&server).await.len(), 2);

    // Unsuppress from the suppressed users list.
    let page = owner
        .post(
            "/regulations",
            &[
                ("regulation_type", "UNSUPPRESS"),
                ("subject_ids", "mallory"),
            ],
        )
        .await;
    assert_eq!(page.status, 303);
    eventually(Duration::from_secs(5), "mallory unsuppressed", || async {
        let (_, s) = server.admin("GET", "/api/v1/suppressions", None).await;
        (!s.as_array()
            .unwrap()
            .iter()
            .any(|s| s["userId"] == "mallory"))
        .then_some(())
    })
    .await;
}

#[tokio::test]
async fn audit_trail_filters_and_exports() {
    let server = TestServer::start().await;
    let owner = Console::sign_in(&server, "owner").await;
    let viewer = Console::sign_in(&server, "viewer").await;
    server
        .create(
            "/api/v1/consent/categories",
            json!({"id": "C0001", "name": "Necessary", "destinations": []}),
        )
        .await;
    server
        .create("/api/v1/sources", json!({"name": "Shop"}))
        .await;
    let (_, patched) = server
        .admin(
            "PATCH",
            "/api/v1/consent/categories/C0001",
            Some(json!({"name": "Strictly necessary"})),
        )
        .await;
    assert_eq!(patched["name"], "Strictly necessary");

    // Everything, newest first, with readable names and the raw action.
    let page = owner.get("/audit").await;
    assert_eq!(page.status, 200);
    assert!(
        page.html
            .contains("Consent category created<br><code class=\"muted\">category.created</code>")
    );
    assert!(page.html.contains("data-action=\"source.created\""));
    // The change shows the field that changed, before and after.
    let modified = &page.html[page.html.find("data-action=\"category.modified\"").unwrap()..];
    let modified = &modified[..modified.find("</table>").unwrap()];
    assert!(
        modified.contains("<td><code>name</code></td>"),
        "{modified}"
    );
    assert!(
        modified.contains("<del>Necessary</del>")
            && modified.contains("<ins>Strictly necessary</ins>"),
        "{modified}"
    );

    // Filtered by action: a shareable GET URL.
    let page = owner.get("/audit?action=category.created").await;
    assert_eq!(page.status, 200);
    assert!(page.html.contains("data-action=\"category.created\""));
    assert!(!page.html.contains("data-action=\"source.created\""));
    assert!(!page.html.contains("data-action=\"category.modified\""));
    assert!(page.html.contains("<option value=\"category.created\" selected>Consent category created (category.created)</option>"));
    assert_eq!(
        attr(tag(&page.html, "audit-export"), "href"),
        Some("/audit/export?action=category.created")
    );

    let download = owner.get("/audit/export?action=category.created").await;
    assert_eq!(download.status, 200);
    assert_eq!(download.content_type, "application/x-ndjson");
    let lines: Vec<Value> = download
        .html
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["action"], "category.created");
    assert_eq!(lines[0]["resourceId"], "C0001");
    let all = owner.get("/audit/export").await;
    let (_, api) = server.admin("GET", "/api/v1/audit?limit=1000", None).await;
    assert_eq!(
        all.html.lines().count(),
        api["entries"].as_array().unwrap().len()
    );

    // Other filters, and a time that is not one.
    let page = owner
        .get("/audit?resource_type=source&actor=owner%40localhost")
        .await;
    assert!(page.status == 200 && !page.html.contains("data-action=\"category.created\""));
    let page = owner.get("/audit?from=soon").await;
    assert_eq!(page.status, 400);
    assert!(element(&page.html, "from-error").contains("Enter a date and time"));
    let page = owner
        .get("/audit?from=2000-01-01T00:00&to=2000-01-02T00:00")
        .await;
    assert_eq!(page.status, 200);
    assert!(element(&page.html, "audit-empty").contains("No entries match"));

    // Paging: older entries behind a cursor.
    for i in 0..55 {
        server
            .create("/api/v1/sources", json!({"name": format!("S{i}")}))
            .await;
    }
    let (_, api) = server
        .admin("GET", "/api/v1/audit?resourceType=source&limit=1000", None)
        .await;
    let total = api["entries"].as_array().unwrap().len();
    assert!(total > 50);
    let page = owner.get("/audit?resource_type=source").await;
    assert_eq!(
        page.html.matches("data-action=\"source.created\"").count(),
        50
    );
    let older = page.html.split("rel=\"next\"").next().unwrap();
    let href = &older[older.rfind("href=\"").unwrap() + 6..];
    let href = href[..href.find('"').unwrap()]
        .replace("&#38;", "&")
        .replace("&amp;", "&");
    assert!(
        href.starts_with("/audit?resource_type=source&cursor="),
        "{href}"
    );
    let page = owner.get(&href).await;
    assert_eq!(
        page.html.matches("data-action=\"source.created\"").count(),
        total - 50
    );
    assert!(
        page.html
            .contains("href=\"/audit?resource_type=source\">Newest entries</a>")
    );

    // Viewers: the API's reason, and no export.
    let page = viewer.get("/audit?action=category.created").await;
    assert!(page.html.contains("Only owners can read the audit trail"));
    assert!(!page.html.contains("data-action="));
    assert_eq!(viewer.get("/audit/export").await.status, 403);
}

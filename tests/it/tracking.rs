//! The Tracking API over HTTP: endpoints, auth, body handling, limits and validation.

use std::io::Write;
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::{Receiver, TestServer, eventually};

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

#[tokio::test]
async fn every_endpoint_and_alias_accepts_its_event() {
    let server = TestServer::start().await;
    let hook = Receiver::start().await;
    server
        .webhook("All", "Webhooks", &format!("{}/all", hook.url), json!({}))
        .await;
    let cases = [
        ("/v1/track", json!({"userId": "u", "event": "T1"})),
        ("/v1/t", json!({"userId": "u", "event": "T2"})),
        ("/v1/identify", json!({"userId": "u", "traits": {"a": 1}})),
        ("/v1/i", json!({"anonymousId": "a"})),
        ("/v1/page", json!({"userId": "u", "name": "Home"})),
        ("/v1/p", json!({"userId": "u"})),
        ("/v1/screen", json!({"userId": "u", "name": "Main"})),
        ("/v1/s", json!({"userId": "u"})),
        ("/v1/group", json!({"userId": "u", "groupId": "g"})),
        ("/v1/g", json!({"userId": "u", "groupId": "g"})),
        ("/v1/alias", json!({"userId": "u", "previousId": "p"})),
        ("/v1/a", json!({"userId": "u", "previousId": "p"})),
        (
            "/v1/batch",
            json!({"batch": [{"type": "track", "userId": "u", "event": "B1"}]}),
        ),
        (
            "/v1/b",
            json!({"batch": [{"type": "track", "userId": "u", "event": "B2"}]}),
        ),
        (
            "/v1/import",
            json!({"batch": [{"type": "track", "userId": "u", "event": "B3"}]}),
        ),
    ];
    for (path, body) in &cases {
        let (status, answer) = server.track(path, body.clone()).await;
        assert_eq!((status, answer), (200, json!({"success": true})), "{path}");
    }
    let expected = cases.len();
    let events = eventually(Duration::from_secs(10), "all events delivered", || {
        let hook = hook.clone();
        async move { (hook.events().len() == expected).then(|| hook.events()) }
    })
    .await;
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        [
            "track", "track", "identify", "identify", "page", "page", "screen", "screen", "group",
            "group", "alias", "alias", "track", "track", "track"
        ]
    );
    // Normalised: messageId, receivedAt, timestamp, context.ip; writeKey never forwarded.
    for e in &events {
        assert!(
            e["messageId"].is_string() && e["receivedAt"].is_string() && e["timestamp"].is_string(),
            "{e}"
        );
        assert_eq!(e["context"]["ip"], "127.0.0.1");
        assert!(e.get("writeKey").is_none());
    }
}

#[tokio::test]
async fn auth_by_header_or_body_and_clear_401s() {
    let server = TestServer::start().await;
    let event = json!({"userId": "u", "event": "E"});
    // Basic auth with and without the trailing colon.
    let (status, _) = server.track("/v1/track", event.clone()).await;
    assert_eq!(status, 200);
    let no_colon = base64_encode(&server.write_key);
    let (status, _) = server
        .send_tracking(
            "/v1/track",
            event.to_string(),
            None,
            &[("authorization", &format!("Basic {no_colon}"))],
        )
        .await;
    assert_eq!(status, 200);
    // writeKey in the body (as analytics.js sends it).
    let mut with_key = event.clone();
    with_key["writeKey"] = json!(server.write_key);
    let (status, _) = server
        .send_tracking("/v1/track", with_key.to_string(), None, &[])
        .await;
    assert_eq!(status, 200);
    // Missing, unknown and disabled keys.
    let (status, answer) = server
        .send_tracking("/v1/track", event.to_string(), None, &[])
        .await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (401, Some("missing_write_key"))
    );
    let (status, answer) = server
        .send_tracking(
            "/v1/track",
            event.to_string(),
            Some("nope-nope-nope-nope"),
            &[],
        )
        .await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (401, Some("invalid_write_key"))
    );
    let mut unknown_in_body = event.clone();
    unknown_in_body["writeKey"] = json!("nope-nope-nope-nope");
    let (status, _) = server
        .send_tracking("/v1/track", unknown_in_body.to_string(), None, &[])
        .await;
    assert_eq!(status, 401);
    let (_, sources) = server.admin("GET", "/api/v1/sources", None).await;
    let id = sources[0]["id"].as_str().unwrap();
    server
        .admin(
            "PATCH",
            &format!("/api/v1/sources/{id}"),
            Some(json!({"enabled": false})),
        )
        .await;
    let (status, answer) = server.track("/v1/track", event.clone()).await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (401, Some("source_disabled"))
    );
    assert!(answer["message"].as_str().unwrap().contains("enable"));
}

fn base64_encode(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

#[tokio::test]
async fn json_under_any_content_type_and_gzip() {
    let server = TestServer::start().await;
    let hook = Receiver::start().await;
    server
        .webhook("All", "Webhooks", &hook.url, json!({}))
        .await;
    let body = json!({"userId": "u", "event": "Plain text"}).to_string();
    let (status, _) = server
        .send_tracking(
            "/v1/t",
            body,
            Some(&server.write_key.clone()),
            &[("content-type", "text/plain")],
        )
        .await;
    assert_eq!(status, 200);
    let batch =
        json!({"batch": [{"type": "track", "userId": "u", "event": "Gzipped"}]}).to_string();
    let (status, _) = server
        .send_tracking(
            "/v1/batch",
            gzip(batch.as_bytes()),
            Some(&server.write_key.clone()),
            &[("content-encoding", "gzip")],
        )
        .await;
    assert_eq!(status, 200);
    eventually(Duration::from_secs(10), "both delivered", || {
        let hook = hook.clone();
        async move { (hook.names_at("/") == ["Plain text", "Gzipped"]).then_some(()) }
    })
    .await;
}

#[tokio::test]
async fn bad_input_gets_documented_status_and_loses_nothing_accepted() {
    let server = TestServer::start().await;
    let hook = Receiver::start().await;
    server
        .webhook("All", "Webhooks", &hook.url, json!({"batchSize": 100}))
        .await;
    let key = server.write_key.clone();
    // Something accepted first.
    let (status, _) = server
        .track("/v1/track", json!({"userId": "u", "event": "Before"}))
        .await;
    assert_eq!(status, 200);

    let big_event =
        json!({"userId": "u", "event": "E", "properties": {"pad": "x".repeat(33 * 1024)}});
    let big_batch = json!({"batch": (0..40).map(|i| json!({"type": "track", "userId": "u", "event": format!("E{i}"), "properties": {"pad": "x".repeat(14 * 1024)}})).collect::<Vec<_>>()});
    let many = json!({"batch": (0..2501).map(|_| json!({"type": "track", "userId": "u", "event": "E"})).collect::<Vec<_>>()});
    let oversized_item = json!({"batch": [{"type": "track", "userId": "u", "event": "E", "properties": {"pad": "x".repeat(33 * 1024)}}]});
    // 10 MB of zeros compress to ~10 KB: a gzip bomb for a 500 KB limit.
    let bomb = gzip(&vec![b' '; 10 * 1024 * 1024]);
    // (path, body, headers, expected status, expected code)
    type Case<'a> = (&'a str, Vec<u8>, Vec<(&'a str, &'a str)>, u16, &'a str);
    let cases: Vec<Case<'_>> = vec![
        (
            "/v1/track",
            b"{not json".to_vec(),
            vec![],
            400,
            "invalid_json",
        ),
        ("/v1/track", b"[1,2]".to_vec(), vec![], 400, "invalid_json"),
        (
            "/v1/track",
            big_event.to_string().into_bytes(),
            vec![],
            400,
            "payload_too_large",
        ),
        (
            "/v1/batch",
            big_batch.to_string().into_bytes(),
            vec![],
            400,
            "payload_too_large",
        ),
        (
            "/v1/batch",
            many.to_string().into_bytes(),
            vec![],
            400,
            "too_many_events",
        ),
        (
            "/v1/batch",
            oversized_item.to_string().into_bytes(),
            vec![],
            400,
            "event_too_large",
        ),
        (
            "/v1/batch",
            bomb,
            vec![("content-encoding", "gzip")],
            400,
            "payload_too_large",
        ),
        (
            "/v1/batch",
            b"not gzip".to_vec(),
            vec![("content-encoding", "gzip")],
            400,
            "invalid_gzip",
        ),
        (
            "/v1/batch",
            b"{}".to_vec(),
            vec![("content-encoding", "br")],
            415,
            "unsupported_encoding",
        ),
        (
            "/v1/batch",
            br#"{"batch": []}"#.to_vec(),
            vec![],
            400,
            "empty_batch",
        ),
        (
            "/v1/batch",
            br#"{"batch": {}}"#.to_vec(),
            vec![],
            400,
            "invalid_batch",
        ),
        (
            "/v1/batch",
            br#"{"events": []}"#.to_vec(),
            vec![],
            400,
            "invalid_batch",
        ),
    ];
    for (path, body, headers, expected_status, expected_code) in cases {
        let (status, answer) = server.send_tracking(path, body, Some(&key), &headers).await;
        assert_eq!(status, expected_status, "{path} {expected_code}: {answer}");
        assert_eq!(answer["code"], expected_code, "{answer}");
        assert!(
            answer["message"].as_str().is_some_and(|m| m.len() > 10),
            "a clear message: {answer}"
        );
    }
    // Wrong types for every validated field: single endpoints answer 400 with the code.
    let invalid: Vec<(&str, Value, &str)> = vec![
        ("/v1/track", json!({"event": "E"}), "no_user_anon_id"),
        (
            "/v1/track",
            json!({"userId": 1, "event": "E"}),
            "id_not_string",
        ),
        (
            "/v1/track",
            json!({"anonymousId": [], "event": "E"}),
            "id_not_string",
        ),
        ("/v1/track", json!({"userId": "u"}), "event_not_defined"),
        (
            "/v1/track",
            json!({"userId": "u", "event": {}}),
            "event_not_string",
        ),
        (
            "/v1/track",
            json!({"userId": "u", "event": "E", "properties": "x"}),
            "properties_not_object",
        ),
        (
            "/v1/identify",
            json!({"userId": "u", "traits": 5}),
            "traits_not_object",
        ),
        (
            "/v1/page",
            json!({"userId": "u", "name": 5}),
            "name_not_string",
        ),
        (
            "/v1/page",
            json!({"userId": "u", "category": []}),
            "category_not_string",
        ),
        ("/v1/group", json!({"userId": "u"}), "id_required"),
        ("/v1/alias", json!({"userId": "u"}), "id_required"),
        (
            "/v1/track",
            json!({"userId": "u", "event": "E", "messageId": "m".repeat(101)}),
            "message_id_too_long",
        ),
        (
            "/v1/track",
            json!({"userId": "u", "event": "E", "context": "x"}),
            "context_not_object",
        ),
        (
            "/v1/track",
            json!({"userId": "u", "event": "Segment Consent Preference Updated"}),
            "consent_categorypreferences_should_exist",
        ),
        (
            "/v1/track",
            json!({"userId": "u", "event": "Segment Consent Preference Updated", "context": {"consent": {"categoryPreferences": {"a": "yes"}}}}),
            "consent_categorypreferences_fields_should_be_bool",
        ),
    ];
    for (path, body, code) in invalid {
        let (status, answer) = server.track(path, body.clone()).await;
        assert_eq!(
            (status, answer["code"].as_str()),
            (400, Some(code)),
            "{body}"
        );
    }
    // A batch with some invalid items: 200, valid ones accepted, each bad one reported.
    let (status, answer) = server
        .track(
            "/v1/batch",
            json!({"batch": [
                {"type": "track", "userId": "u", "event": "Good 1"},
                {"type": "track", "event": "No id"},
                "not an object",
                {"userId": "u", "event": "No type"},
                {"type": "track", "userId": "u", "event": "Good 2"}
            ]}),
        )
        .await;
    assert_eq!(status, 200);
    let codes: Vec<(u64, &str)> = answer["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["index"].as_u64().unwrap(), r["code"].as_str().unwrap()))
        .collect();
    assert_eq!(
        codes,
        vec![
            (1, "no_user_anon_id"),
            (2, "invalid_type"),
            (3, "invalid_type")
        ]
    );

    // Nothing accepted was affected: exactly the three good events arrive.
    eventually(Duration::from_secs(10), "good events delivered", || {
        let hook = hook.clone();
        async move { (hook.names_at("/") == ["Before", "Good 1", "Good 2"]).then_some(()) }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(hook.names_at("/"), ["Before", "Good 1", "Good 2"]);
    // Failures are counted in the overview by code.
    let overview = server.overview("").await;
    assert_eq!(overview["accepted"], 3);
    assert_eq!(overview["failedOnIngest"]["invalid_type"], 2);
    assert_eq!(overview["failedOnIngest"]["payload_too_large"], 3);
    assert_eq!(overview["failedOnIngest"]["no_user_anon_id"], 2);
}

#[tokio::test]
async fn cors_preflight_from_any_origin() {
    let server = TestServer::start().await;
    for path in ["/v1/t", "/v1/b", "/v1/batch", "/v1/m"] {
        let response = server
            .http
            .request(reqwest::Method::OPTIONS, format!("{}{path}", server.url))
            .header("origin", "https://shop.example.com")
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization,content-type",
            )
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
        let h = response.headers();
        assert_eq!(h["access-control-allow-origin"], "https://shop.example.com");
        assert!(
            h["access-control-allow-headers"]
                .to_str()
                .unwrap()
                .contains("authorization")
        );
        assert!(
            h["access-control-allow-methods"]
                .to_str()
                .unwrap()
                .contains("POST")
        );
    }
}

#[tokio::test]
async fn rate_limit_answers_429_with_retry_after() {
    let server = TestServer::start().await;
    let (_, sources) = server.admin("GET", "/api/v1/sources", None).await;
    let id = sources[0]["id"].as_str().unwrap();
    let (status, _) = server
        .admin(
            "PATCH",
            &format!("/api/v1/sources/{id}"),
            Some(json!({"rateLimitPerSecond": 2})),
        )
        .await;
    assert_eq!(status, 200);
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..6 {
        let response = server
            .http
            .post(format!("{}/v1/track", server.url))
            .basic_auth(&server.write_key, Some(""))
            .body(json!({"userId": "u", "event": "E"}).to_string())
            .send()
            .await
            .unwrap();
        statuses.push(response.status().as_u16());
        if response.status() == 429 {
            retry_after = response
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().parse::<u64>().unwrap());
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["code"], "rate_limited");
        }
    }
    assert_eq!(&statuses[..2], &[200, 200]);
    assert!(statuses.contains(&429), "{statuses:?}");
    assert!(
        retry_after.is_some_and(|s| s >= 1),
        "Retry-After in whole seconds"
    );
}

#[tokio::test]
async fn duplicates_are_accepted_but_routed_once() {
    let server = TestServer::start().await;
    let hook = Receiver::start().await;
    server
        .webhook("All", "Webhooks", &hook.url, json!({}))
        .await;
    let event = json!({"userId": "u", "event": "Once", "messageId": "fixed-id-1"});
    for _ in 0..3 {
        assert_eq!(server.track("/v1/track", event.clone()).await.0, 200);
    }
    // Within one batch too.
    let (status, _) = server
        .track(
            "/v1/batch",
            json!({"batch": [
                {"type": "track", "userId": "u", "event": "Twice", "messageId": "fixed-id-2"},
                {"type": "track", "userId": "u", "event": "Twice", "messageId": "fixed-id-2"}
            ]}),
        )
        .await;
    assert_eq!(status, 200);
    eventually(Duration::from_secs(10), "two distinct events", || {
        let hook = hook.clone();
        async move { (hook.events().len() == 2).then_some(()) }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(hook.names_at("/"), ["Once", "Twice"]);
    let overview = server.overview("").await;
    assert_eq!(
        (
            overview["received"].as_i64(),
            overview["duplicates"].as_i64()
        ),
        (Some(5), Some(3))
    );
}

#[tokio::test]
async fn normalisation_corrects_clock_skew_and_merges_batch_context() {
    let server = TestServer::start().await;
    let hook = Receiver::start().await;
    server
        .webhook("All", "Webhooks", &hook.url, json!({}))
        .await;
    // The device clock is an hour behind: sent 10:00:05 for an event at 10:00:00.
    let (status, _) = server
        .track(
            "/v1/batch",
            json!({
                "batch": [{"type": "track", "userId": "u", "event": "Skewed", "timestamp": "2020-01-01T10:00:00.000Z",
                           "context": {"locale": "fr"}}],
                "sentAt": "2020-01-01T10:00:05.000Z",
                "context": {"locale": "en", "library": {"name": "test"}},
                "integrations": {"Amplitude": false}
            }),
        )
        .await;
    assert_eq!(status, 200);
    let event = eventually(Duration::from_secs(10), "delivery", || {
        let hook = hook.clone();
        async move { hook.events().into_iter().next() }
    })
    .await;
    let received = sluice::clock::parse_ms(event["receivedAt"].as_str().unwrap()).unwrap();
    let timestamp = sluice::clock::parse_ms(event["timestamp"].as_str().unwrap()).unwrap();
    assert_eq!(
        received - timestamp,
        5_000,
        "timestamp = receivedAt − (sentAt − originalTimestamp)"
    );
    assert_eq!(event["originalTimestamp"], "2020-01-01T10:00:00.000Z");
    assert_eq!(event["context"]["locale"], "fr", "the item wins");
    assert_eq!(
        event["context"]["library"]["name"], "test",
        "batch context merged"
    );
    assert_eq!(event["integrations"]["Amplitude"], false);
}

#[tokio::test]
async fn forwarded_for_is_honoured_only_from_trusted_proxies() {
    let trusting =
        TestServer::start_with(|c| c.server.trusted_proxies = vec!["127.0.0.1".into()]).await;
    let plain = TestServer::start().await;
    for (server, expected) in [(&trusting, "203.0.113.9"), (&plain, "127.0.0.1")] {
        let hook = Receiver::start().await;
        server
            .webhook("All", "Webhooks", &hook.url, json!({}))
            .await;
        let (status, _) = server
            .send_tracking(
                "/v1/track",
                json!({"userId": "u", "event": "E"}).to_string(),
                Some(&server.write_key.clone()),
                &[("x-forwarded-for", "203.0.113.9")],
            )
            .await;
        assert_eq!(status, 200);
        let event = eventually(Duration::from_secs(10), "delivery", || {
            let hook = hook.clone();
            async move { hook.events().into_iter().next() }
        })
        .await;
        assert_eq!(event["context"]["ip"], expected);
    }
}

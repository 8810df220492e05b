//! The CDN settings documents analytics-next and the consent wrappers read (SPEC §2).

use serde_json::json;

use crate::common::TestServer;

#[tokio::test]
async fn settings_document_describes_consent_and_points_at_this_server() {
    let server = TestServer::start().await;
    let fb = server
        .webhook(
            "Facebook",
            "Facebook Pixel",
            "http://127.0.0.1:9/fb",
            json!({}),
        )
        .await;
    let gads = server
        .webhook("Ads", "Google Ads", "http://127.0.0.1:9/ads", json!({}))
        .await;
    let amp = server
        .webhook(
            "Amplitude",
            "Amplitude",
            "http://127.0.0.1:9/amp",
            json!({}),
        )
        .await;
    server
        .webhook("Unmapped", "Webhooks", "http://127.0.0.1:9/un", json!({}))
        .await;
    let off = server
        .webhook("Disabled", "Off", "http://127.0.0.1:9/off", json!({}))
        .await;
    server
        .admin(
            "PATCH",
            &format!("/api/v1/destinations/{off}"),
            Some(json!({"enabled": false})),
        )
        .await;
    server
        .create(
            "/api/v1/consent/categories",
            json!({"id": "C0004", "name": "Advertising", "destinations": [fb, gads, off]}),
        )
        .await;
    server
        .create(
            "/api/v1/consent/categories",
            json!({"id": "C0002", "name": "Analytics", "destinations": [amp, fb]}),
        )
        .await;
    server
        .create(
            "/api/v1/consent/categories",
            json!({"id": "C0009", "name": "Retired", "destinations": [amp]}),
        )
        .await;
    server
        .admin(
            "POST",
            "/api/v1/consent/categories/C0009/disable",
            Some(json!({"confirmName": "Retired"})),
        )
        .await;

    let url = format!("{}/v1/projects/{}/settings", server.url, server.write_key);
    let response = server
        .http
        .get(&url)
        .header("origin", "https://shop.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    assert_eq!(
        headers["access-control-allow-origin"],
        "https://shop.example.com"
    );
    assert!(
        headers["cache-control"]
            .to_str()
            .unwrap()
            .contains("max-age")
    );
    let etag = headers["etag"].to_str().unwrap().to_owned();
    let doc: serde_json::Value = response.json().await.unwrap();

    let host = server.url.trim_start_matches("http://");
    assert_eq!(
        doc["integrations"]["Segment.io"],
        json!({"apiKey": server.write_key, "apiHost": format!("{host}/v1"), "protocol": "http",
               "unbundledIntegrations": [], "addBundledMetadata": true, "maybeBundledConfigIds": {}})
    );
    assert_eq!(
        doc["integrations"]["Facebook Pixel"]["consentSettings"]["categories"],
        json!(["C0002", "C0004"])
    );
    assert_eq!(
        doc["integrations"]["Google Ads"]["consentSettings"]["categories"],
        json!(["C0004"])
    );
    assert_eq!(
        doc["integrations"]["Amplitude"]["consentSettings"]["categories"],
        json!(["C0002"]),
        "disabled categories are not listed"
    );
    assert_eq!(doc["integrations"]["Webhooks"], json!({}));
    assert!(
        doc["integrations"].get("Off").is_none(),
        "disabled destinations are not listed"
    );
    assert_eq!(
        doc["consentSettings"],
        json!({"allCategories": ["C0002", "C0004"], "hasUnmappedDestinations": true})
    );
    assert_eq!(doc["metrics"]["sampleRate"], 0);
    // No destination is marked for device mode, so analytics-next loads no third-party code.
    for (name, settings) in doc["integrations"].as_object().unwrap() {
        assert!(settings.get("type").is_none(), "{name}");
    }

    // Revalidation: the same ETag gives 304.
    let again = server
        .http
        .get(&url)
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
    // A change of configuration changes the document (and its ETag).
    server
        .admin("DELETE", "/api/v1/consent/categories/C0002", None)
        .await;
    let changed = server
        .http
        .get(&url)
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(changed.status(), 200);

    // Unknown keys and disabled sources: 404 with a message.
    let missing = server
        .http
        .get(format!(
            "{}/v1/projects/nope-nope-nope-nope/settings",
            server.url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let body: serde_json::Value = missing.json().await.unwrap();
    assert_eq!(body["code"], "not_found");

    // The legacy list for the old consent manager.
    let list: serde_json::Value = server
        .http
        .get(format!(
            "{}/v1/projects/{}/integrations",
            server.url, server.write_key
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["creationName"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["Amplitude", "Facebook Pixel", "Google Ads", "Webhooks"]
    );
    let ads = list
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == "Google Ads")
        .unwrap();
    assert_eq!(ads["category"], "Advertising");
}

#[tokio::test]
async fn public_url_decides_the_api_host() {
    let server =
        TestServer::start_with(|c| c.server.public_url = Some("https://events.example.com".into()))
            .await;
    let doc: serde_json::Value = server
        .http
        .get(format!(
            "{}/v1/projects/{}/settings",
            server.url, server.write_key
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        doc["integrations"]["Segment.io"]["apiHost"],
        "events.example.com/v1"
    );
    assert_eq!(doc["integrations"]["Segment.io"]["protocol"], "https");
    assert_eq!(
        doc["consentSettings"],
        json!({"allCategories": [], "hasUnmappedDestinations": false})
    );
}

#[tokio::test]
async fn destinations_that_receive_everything_count_as_unmapped() {
    // Two "Webhooks" destinations, one mapped and one not: the integration receives everything.
    let server = TestServer::start().await;
    let mapped = server
        .webhook("Mapped", "Webhooks", "http://127.0.0.1:9/a", json!({}))
        .await;
    server
        .webhook("Unmapped", "Webhooks", "http://127.0.0.1:9/b", json!({}))
        .await;
    server
        .create(
            "/api/v1/consent/categories",
            json!({"id": "C0004", "name": "Advertising", "destinations": [mapped]}),
        )
        .await;
    let settings = |server: &TestServer| {
        let url = format!("{}/v1/projects/{}/settings", server.url, server.write_key);
        let http = server.http.clone();
        async move {
            http.get(url)
                .send()
                .await
                .unwrap()
                .json::<serde_json::Value>()
                .await
                .unwrap()
        }
    };
    let doc = settings(&server).await;
    assert_eq!(doc["consentSettings"]["hasUnmappedDestinations"], true);
    assert_eq!(doc["integrations"]["Webhooks"], json!({}));

    // A mapped destination with enforceConsent off receives everything too.
    let server = TestServer::start().await;
    let archive = server
        .create("/api/v1/destinations", json!({"name": "Archive", "integration": "Archive", "type": "file", "settings": {"path": "a.jsonl"}, "enforceConsent": false}))
        .await;
    server
        .create(
            "/api/v1/consent/categories",
            json!({"id": "C0004", "name": "Advertising", "destinations": [archive]}),
        )
        .await;
    let doc = settings(&server).await;
    assert_eq!(
        doc["consentSettings"],
        json!({"allCategories": [], "hasUnmappedDestinations": true})
    );
}

//! The admin API over HTTP: authentication, validation errors, secrets, consent categories.

use serde_json::json;

use crate::common::{OWNER_TOKEN, TestServer};

#[tokio::test]
async fn authentication_is_required_and_clear() {
    let server = TestServer::start().await;
    let url = format!("{}/api/v1/sources", server.url);
    let cases = [
        (None, "missing_token"),
        (Some("Bearer wrong-token"), "invalid_token"),
        (Some("Basic abc"), "invalid_token"),
        (Some("Bearer "), "invalid_token"),
    ];
    for (header, code) in cases {
        let mut request = server.http.get(&url);
        if let Some(h) = header {
            request = request.header("authorization", h);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 401, "{header:?}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["code"], code);
    }
    let (status, me) = server.admin("GET", "/api/v1/me", None).await;
    assert_eq!((status, me["role"].as_str()), (200, Some("owner")));
}

#[tokio::test]
async fn roles_and_token_lifecycle() {
    let server = TestServer::start().await;
    let viewer = server
        .create(
            "/api/v1/users",
            json!({"email": "v@example.com", "name": "Viv", "role": "viewer"}),
        )
        .await;
    let member = server.create("/api/v1/users", json!({"email": "m@example.com", "name": "Max", "role": "member", "password": "correct horse battery"})).await;
    let (status, token) = server
        .admin(
            "POST",
            &format!("/api/v1/users/{viewer}/tokens"),
            Some(json!({"name": "cli"})),
        )
        .await;
    assert_eq!(status, 201);
    let viewer_token = token["token"].as_str().unwrap().to_owned();
    let token_id = token["id"].as_str().unwrap().to_owned();
    let (_, token) = server
        .admin(
            "POST",
            &format!("/api/v1/users/{member}/tokens"),
            Some(json!({"name": "cli"})),
        )
        .await;
    let member_token = token["token"].as_str().unwrap().to_owned();

    // Viewers read; members manage destinations but not consent; owners do everything.
    assert_eq!(
        server
            .admin_as(&viewer_token, "GET", "/api/v1/destinations", None)
            .await
            .0,
        200
    );
    let (status, answer) = server
        .admin_as(&viewer_token, "POST", "/api/v1/destinations", Some(json!({"name": "x", "integration": "x", "type": "webhook", "settings": {"url": "http://127.0.0.1:1"}})))
        .await;
    assert_eq!(status, 403);
    assert!(
        answer["message"]
            .as_str()
            .unwrap()
            .contains("Viewers cannot change destinations")
    );
    let dest = server
        .admin_as(&member_token, "POST", "/api/v1/destinations", Some(json!({"name": "x", "integration": "x", "type": "webhook", "settings": {"url": "http://127.0.0.1:1"}})))
        .await;
    assert_eq!(dest.0, 201);
    let (status, answer) = server
        .admin_as(
            &member_token,
            "POST",
            "/api/v1/consent/categories",
            Some(json!({"id": "ad", "name": "Ads", "destinations": []})),
        )
        .await;
    assert_eq!(status, 403);
    assert!(
        answer["message"]
            .as_str()
            .unwrap()
            .starts_with("Only owners can change consent categories")
    );
    assert_eq!(
        server
            .admin_as(&member_token, "GET", "/api/v1/audit", None)
            .await
            .0,
        403
    );
    // Write keys in full for owners only.
    let (_, sources) = server
        .admin_as(&member_token, "GET", "/api/v1/sources", None)
        .await;
    assert!(sources[0]["writeKey"].as_str().unwrap().ends_with('…'));
    let (_, sources) = server.admin("GET", "/api/v1/sources", None).await;
    assert_eq!(sources[0]["writeKey"], server.write_key);

    // Listing tokens never shows secrets; revoking works at once.
    let (_, tokens) = server
        .admin("GET", &format!("/api/v1/users/{viewer}/tokens"), None)
        .await;
    assert!(tokens[0].get("token").is_none());
    assert!(!tokens.to_string().contains(&viewer_token));
    server
        .admin(
            "DELETE",
            &format!("/api/v1/users/{viewer}/tokens/{token_id}"),
            None,
        )
        .await;
    assert_eq!(
        server
            .admin_as(&viewer_token, "GET", "/api/v1/destinations", None)
            .await
            .0,
        401
    );
    let _ = OWNER_TOKEN;
}

#[tokio::test]
async fn validation_errors_name_the_problem() {
    let server = TestServer::start().await;
    let cases = [
        (
            "/api/v1/destinations",
            json!({"name": "x", "integration": "x", "type": "carrier-pigeon", "settings": {}}),
            "carrier-pigeon",
        ),
        (
            "/api/v1/destinations",
            json!({"name": "x", "integration": "x", "type": "webhook", "settings": {"url": "ftp://x"}}),
            "http",
        ),
        (
            "/api/v1/destinations",
            json!({"name": "x", "integration": "x", "type": "webhook", "settings": {"url": "http://x", "batchsize": 5}}),
            "batchsize",
        ),
        (
            "/api/v1/destinations",
            json!({"name": "x", "integration": "All", "type": "webhook", "settings": {"url": "http://x"}}),
            "All",
        ),
        (
            "/api/v1/destinations",
            json!({"name": "x", "integration": "x", "type": "file", "settings": {"path": "/etc/cron.d/x"}}),
            "outside",
        ),
        (
            "/api/v1/destinations",
            json!({"name": "x", "integration": "x", "type": "webhook", "settings": {"url": "http://x"}, "colour": "red"}),
            "colour",
        ),
        (
            "/api/v1/consent/categories",
            json!({"id": "1abc", "name": "Ads"}),
            "digit",
        ),
        (
            "/api/v1/consent/categories",
            json!({"id": "a b", "name": "Ads"}),
            "whitespace",
        ),
        (
            "/api/v1/consent/categories",
            json!({"id": "x".repeat(35), "name": "Ads"}),
            "34",
        ),
        (
            "/api/v1/consent/categories",
            json!({"id": "ok", "name": "n".repeat(51)}),
            "50",
        ),
        (
            "/api/v1/consent/categories",
            json!({"id": "ok", "name": "Ads", "destinations": ["dst_missing"]}),
            "dst_missing",
        ),
        (
            "/api/v1/sources",
            json!({"name": "x", "rateLimitPerSecond": 0}),
            "rateLimitPerSecond",
        ),
        (
            "/api/v1/users",
            json!({"email": "not-an-email", "name": "x", "role": "viewer"}),
            "email",
        ),
        (
            "/api/v1/users",
            json!({"email": "a@b.c", "name": "x", "role": "admin"}),
            "admin",
        ),
        (
            "/api/v1/users",
            json!({"email": "a@b.c", "name": "x", "role": "viewer", "password": "short"}),
            "password",
        ),
    ];
    for (path, body, needle) in cases {
        let (status, answer) = server.admin("POST", path, Some(body.clone())).await;
        assert_eq!(status, 400, "{path} {body}: {answer}");
        let message = answer["message"].as_str().unwrap();
        assert!(
            message.contains(needle),
            "{message:?} should mention {needle:?}"
        );
    }
    // Conflicts and not-found.
    server
        .create(
            "/api/v1/consent/categories",
            json!({"id": "ad", "name": "Ads"}),
        )
        .await;
    let (status, _) = server
        .admin(
            "POST",
            "/api/v1/consent/categories",
            Some(json!({"id": "ad2", "name": "ADS"})),
        )
        .await;
    assert_eq!(status, 409);
    let (status, answer) = server
        .admin("GET", "/api/v1/consent/categories/nope", None)
        .await;
    assert_eq!((status, answer["code"].as_str()), (404, Some("not_found")));
    let (status, _) = server
        .admin(
            "PATCH",
            "/api/v1/workspace",
            Some(json!({"dedupWindowHours": 0})),
        )
        .await;
    assert_eq!(status, 400);
    let (status, _) = server
        .admin(
            "PATCH",
            "/api/v1/workspace",
            Some(json!({"missingConsentPolicy": "maybe"})),
        )
        .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn secrets_are_redacted_and_kept_on_patch() {
    let server = TestServer::start().await;
    let id = server
        .webhook(
            "Signed",
            "Signed",
            "http://127.0.0.1:9/x",
            json!({"secret": "top-secret", "headers": {"Authorization": "Bearer abc"}}),
        )
        .await;
    let (_, view) = server
        .admin("GET", &format!("/api/v1/destinations/{id}"), None)
        .await;
    assert!(!view.to_string().contains("top-secret") && !view.to_string().contains("Bearer abc"));
    // Send the redacted view back with one change: the secret stays.
    let mut settings = view["settings"].clone();
    settings["url"] = json!("http://127.0.0.1:9/y");
    let (status, after) = server
        .admin(
            "PATCH",
            &format!("/api/v1/destinations/{id}"),
            Some(json!({"settings": settings})),
        )
        .await;
    assert_eq!(status, 200, "{after}");
    let stored = server.app.store.destination(&id).await.unwrap();
    assert_eq!(stored.settings["secret"], "top-secret");
    assert_eq!(stored.settings["headers"]["Authorization"], "Bearer abc");
    assert_eq!(stored.settings["url"], "http://127.0.0.1:9/y");
    // The audit trail never holds the secret either.
    let (_, audit) = server.admin("GET", "/api/v1/audit/export", None).await;
    let text = audit.to_string();
    assert!(!text.contains("top-secret") && !text.contains("Bearer abc"));
    assert!(text.contains("destination.updated"));
}

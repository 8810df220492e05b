//! Destination filters over HTTP (SPEC §9).

use std::time::Duration;

use serde_json::json;

use crate::common::{Receiver, TestServer, eventually};

#[tokio::test]
async fn filters_drop_keep_and_rewrite_and_are_counted() {
    let server = TestServer::start().await;
    let hook = Receiver::start().await;
    let dest = server
        .webhook("Hook", "Webhooks", &hook.url, json!({}))
        .await;

    // Invalid rules are refused with the rule and the column.
    let (status, answer) = server
        .admin(
            "PUT",
            &format!("/api/v1/destinations/{dest}/filters"),
            Some(json!({"rules": [
                {"if": "event = \"ok\"", "action": "drop"},
                {"if": "properties.total >", "action": "drop"}
            ]})),
        )
        .await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["code"], "invalid_filter");
    let message = answer["message"].as_str().unwrap();
    assert!(
        message.starts_with("rule 1:") && message.contains("column 19"),
        "{message}"
    );

    let rules = json!({"rules": [
        {"if": "match(event, \"Debug*\")", "action": "drop"},
        {"if": "type = \"track\"", "action": "dropProperties", "fields": ["properties.email", "context.ip"]},
        {"if": "properties.total > 1000", "action": "drop"}
    ]});
    let (status, saved) = server
        .admin(
            "PUT",
            &format!("/api/v1/destinations/{dest}/filters"),
            Some(rules.clone()),
        )
        .await;
    assert_eq!(status, 200, "{saved}");
    assert_eq!(
        server
            .admin("GET", &format!("/api/v1/destinations/{dest}/filters"), None)
            .await
            .1,
        rules
    );

    for (event, total) in [
        ("Debug ping", 1),
        ("Order Completed", 50),
        ("Order Completed", 5000),
        ("Signed Up", 0),
    ] {
        server.track("/v1/track", json!({"userId": "u", "event": event, "properties": {"total": total, "email": "a@b.c"}})).await;
    }
    // The integrations object comes before rules.
    server
        .track(
            "/v1/track",
            json!({"userId": "u", "event": "Debug off", "integrations": {"Webhooks": false}}),
        )
        .await;
    let events = eventually(Duration::from_secs(10), "two events delivered", || {
        let hook = hook.clone();
        async move { (hook.events().len() == 2).then(|| hook.events()) }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(hook.events().len(), 2);
    for event in &events {
        assert!(event["properties"].get("email").is_none(), "{event}");
        assert!(event["context"].get("ip").is_none(), "{event}");
        assert!(event["properties"].get("total").is_some());
    }
    let overview = server.overview("").await;
    let steps = &overview["destinations"][0];
    assert_eq!(steps["filtered"]["FILTERED_BY_RULES"], 2, "{steps}");
    assert_eq!(
        steps["filtered"]["FILTERED_BY_INTEGRATIONS_OBJECT"], 1,
        "{steps}"
    );
    let (_, audit) = server
        .admin(
            "GET",
            "/api/v1/audit?action=destination.filters.updated",
            None,
        )
        .await;
    assert_eq!(audit["entries"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn test_endpoint_evaluates_without_saving() {
    let server = TestServer::start().await;
    let (status, result) = server
        .admin("POST", "/api/v1/destination-filters/test", Some(json!({
            "rules": [{"if": "contains(event, \"Order\")", "action": "keepProperties", "fields": ["properties.total"]},
                      {"if": "properties.total < 0", "action": "drop"}],
            "event": {"type": "track", "event": "Order Completed", "properties": {"total": 5, "email": "x"}}
        })))
        .await;
    assert_eq!(status, 200, "{result}");
    assert_eq!(
        result,
        json!({"delivered": true, "matched": [true, false],
        "event": {"type": "track", "event": "Order Completed", "properties": {"total": 5}}})
    );
    let (_, dropped) = server
        .admin(
            "POST",
            "/api/v1/destination-filters/test",
            Some(json!({
            "rules": [{"if": "event = \"x\"", "action": "keep"}], "event": {"event": "y"}})),
        )
        .await;
    assert_eq!(dropped["delivered"], false);
    assert!(dropped["event"].is_null());
}

//! Consent routing end to end: events sent over HTTP reach exactly the destinations SPEC §4
//! allows, and configuration changes apply to the next event accepted.

use std::time::Duration;

use serde_json::{Value, json};

use crate::common::{Receiver, TestServer, consented, eventually};

/// The SPEC §4 workspace: `ad` → Facebook, Google Ads; `analytics` → Amplitude; a webhook
/// "Unmapped". Each destination posts to its own path on one receiver.
async fn spec_workspace(server: &TestServer, hook: &Receiver) -> Vec<String> {
    let mut ids = Vec::new();
    for (name, path) in [
        ("Facebook", "fb"),
        ("Google Ads", "gads"),
        ("Amplitude", "amp"),
        ("Unmapped", "un"),
    ] {
        ids.push(
            server
                .webhook(name, name, &format!("{}/{path}", hook.url), json!({}))
                .await,
        );
    }
    server
        .create(
            "/api/v1/consent/categories",
            json!({"id": "ad", "name": "Advertising", "destinations": [ids[0], ids[1]]}),
        )
        .await;
    server
        .create(
            "/api/v1/consent/categories",
            json!({"id": "analytics", "name": "Analytics", "destinations": [ids[2]]}),
        )
        .await;
    ids
}

/// Send the events (each with a unique `event` name), then wait until the marker event that is
/// delivered everywhere has arrived at every path, and return who got what.
async fn deliveries(
    server: &TestServer,
    hook: &Receiver,
    events: Vec<Value>,
) -> Vec<(String, Vec<String>)> {
    for event in events {
        let (status, answer) = server.track("/v1/track", event).await;
        assert_eq!(status, 200, "{answer}");
    }
    // The marker has no consent and no integrations: under `allow` it goes everywhere.
    server
        .track("/v1/track", json!({"userId": "m", "event": "Marker"}))
        .await;
    let paths = ["/fb", "/gads", "/amp", "/un"];
    eventually(Duration::from_secs(10), "the marker everywhere", || {
        let hook = hook.clone();
        async move {
            paths
                .iter()
                .all(|p| hook.names_at(p).contains(&"Marker".to_owned()))
                .then_some(())
        }
    })
    .await;
    paths
        .iter()
        .map(|p| {
            let names = hook
                .names_at(p)
                .into_iter()
                .filter(|n| n != "Marker")
                .collect();
            (p.to_string(), names)
        })
        .collect()
}

fn got(list: &[(String, Vec<String>)], path: &str) -> Vec<String> {
    list.iter()
        .find(|(p, _)| p == path)
        .map(|(_, n)| n.clone())
        .unwrap_or_default()
}

#[tokio::test]
async fn spec_table_over_http() {
    let server = TestServer::start().await;
    let hook = Receiver::start().await;
    spec_workspace(&server, &hook).await;
    let result = deliveries(
        &server,
        &hook,
        vec![
            json!({"userId": "u", "event": "r1 absent"}),
            json!({"userId": "u", "event": "r1 empty consent", "context": {"consent": {}}}),
            consented("r2 empty prefs", "u2", json!({})),
            json!({"userId": "u", "event": "r3 integrations only", "integrations": {"Facebook": true, "Amplitude": false}}),
            consented("r4 ad only", "u4", json!({"ad": true, "analytics": false})),
            {
                let mut e = consented("r5 ad, fb+amp off", "u5", json!({"ad": true, "analytics": false}));
                e["integrations"] = json!({"Facebook": false, "Amplitude": false});
                e
            },
        ],
    )
    .await;
    assert_eq!(
        got(&result, "/fb"),
        [
            "r1 absent",
            "r1 empty consent",
            "r3 integrations only",
            "r4 ad only"
        ]
    );
    assert_eq!(
        got(&result, "/gads"),
        [
            "r1 absent",
            "r1 empty consent",
            "r3 integrations only",
            "r4 ad only",
            "r5 ad, fb+amp off"
        ]
    );
    assert_eq!(got(&result, "/amp"), ["r1 absent", "r1 empty consent"]);
    assert_eq!(
        got(&result, "/un"),
        [
            "r1 absent",
            "r1 empty consent",
            "r2 empty prefs",
            "r3 integrations only",
            "r4 ad only",
            "r5 ad, fb+amp off"
        ]
    );

    // The overview accounts for every event per destination (once the last acks are in).
    let overview = eventually(Duration::from_secs(10), "acks applied", || {
        let server = &server;
        async move {
            let o = server.overview("").await;
            let in_flight: i64 = o["destinations"]
                .as_array()?
                .iter()
                .map(|d| d["pending"].as_i64().unwrap_or(0))
                .sum();
            (in_flight == 0).then_some(o)
        }
    })
    .await;
    let accepted = overview["accepted"].as_i64().unwrap();
    // Seven events sent (each user states preferences once, so nothing is generated).
    assert_eq!(accepted - overview["generated"].as_i64().unwrap(), 7);
    for d in overview["destinations"].as_array().unwrap() {
        let filtered: i64 = d["filtered"]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_i64().unwrap())
            .sum();
        let sum = filtered
            + d["pending"].as_i64().unwrap()
            + d["retrying"].as_i64().unwrap()
            + d["dead"].as_i64().unwrap()
            + d["delivered"].as_i64().unwrap();
        assert_eq!(sum, accepted, "counts add up for {}", d["name"]);
    }
    let fb = overview["destinations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "Facebook")
        .unwrap();
    assert_eq!(fb["filtered"]["FILTERED_BY_END_USER_CONSENT"], 1);
    assert_eq!(fb["filtered"]["FILTERED_BY_INTEGRATIONS_OBJECT"], 1);
    assert_eq!(fb["delivered"], 5);
}

#[tokio::test]
async fn facebook_in_both_categories_needs_both() {
    let server = TestServer::start().await;
    let hook = Receiver::start().await;
    let ids = spec_workspace(&server, &hook).await;
    let (status, _) = server
        .admin(
            "PATCH",
            "/api/v1/consent/categories/analytics",
            Some(json!({"destinations": [ids[2], ids[0]]})),
        )
        .await;
    assert_eq!(status, 200);
    let mut row6 = consented("r6", "u", json!({"ad": true, "analytics": false}));
    row6["integrations"] = json!({"Facebook": true, "Amplitude": false});
    let mut row7 = consented("r7", "u", json!({"ad": false, "analytics": true}));
    row7["integrations"] = json!({"Facebook": true, "Amplitude": false});
    let result = deliveries(&server, &hook, vec![row6, row7]).await;
    assert_eq!(got(&result, "/fb"), Vec::<String>::new());
    assert_eq!(got(&result, "/gads"), ["r6"]);
    assert_eq!(got(&result, "/amp"), Vec::<String>::new());
    assert_eq!(got(&result, "/un"), ["r6", "r7"]);
}

#[tokio::test]
async fn configuration_changes_apply_to_the_next_event() {
    let server = TestServer::start().await;
    let hook = Receiver::start().await;
    spec_workspace(&server, &hook).await;
    let denied = || consented("denied ad", "u", json!({"ad": false}));

    // Before: ad is enforced.
    let r = deliveries(&server, &hook, vec![denied()]).await;
    assert!(got(&r, "/fb").is_empty());

    // Disable the category (needs its name): the very next event is not enforced for it.
    let (status, answer) = server
        .admin(
            "POST",
            "/api/v1/consent/categories/ad/disable",
            Some(json!({"confirmName": "advertising"})),
        )
        .await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (400, Some("invalid")),
        "wrong name refused"
    );
    let (status, _) = server
        .admin(
            "POST",
            "/api/v1/consent/categories/ad/disable",
            Some(json!({"confirmName": "Advertising"})),
        )
        .await;
    assert_eq!(status, 200);
    let r = deliveries(
        &server,
        &hook,
        vec![consented("after disable", "u", json!({"ad": false}))],
    )
    .await;
    assert_eq!(got(&r, "/fb"), ["after disable"]);

    // Enable again, and switch the workspace to `deny`: no consent signal now means no consent.
    server
        .admin("POST", "/api/v1/consent/categories/ad/enable", None)
        .await;
    let (status, _) = server
        .admin(
            "PATCH",
            "/api/v1/workspace",
            Some(json!({"missingConsentPolicy": "deny"})),
        )
        .await;
    assert_eq!(status, 200);
    server
        .track(
            "/v1/track",
            json!({"userId": "u", "event": "no signal under deny"}),
        )
        .await;
    server
        .track(
            "/v1/track",
            consented("Marker2", "u", json!({"ad": true, "analytics": true})),
        )
        .await;
    eventually(Duration::from_secs(10), "marker2", || {
        let hook = hook.clone();
        async move {
            hook.names_at("/fb")
                .contains(&"Marker2".to_owned())
                .then_some(())
        }
    })
    .await;
    assert!(
        !hook
            .names_at("/fb")
            .contains(&"no signal under deny".to_owned())
    );
    assert!(
        !hook
            .names_at("/amp")
            .contains(&"no signal under deny".to_owned())
    );
    assert!(
        hook.names_at("/un")
            .contains(&"no signal under deny".to_owned()),
        "unmapped still receives"
    );

    // A source can override the workspace policy.
    let (_, sources) = server.admin("GET", "/api/v1/sources", None).await;
    let id = sources[0]["id"].as_str().unwrap();
    server
        .admin(
            "PATCH",
            &format!("/api/v1/sources/{id}"),
            Some(json!({"missingConsentPolicy": "allow"})),
        )
        .await;
    let r = deliveries(
        &server,
        &hook,
        vec![json!({"userId": "u", "event": "source allows"})],
    )
    .await;
    assert!(got(&r, "/fb").contains(&"source allows".to_owned()));

    // The `any` rule.
    server
        .admin(
            "PATCH",
            "/api/v1/workspace",
            Some(json!({"multiCategoryRule": "any"})),
        )
        .await;
    let ws = server.admin("GET", "/api/v1/workspace", None).await.1;
    assert_eq!(
        ws,
        json!({"missingConsentPolicy": "deny", "multiCategoryRule": "any", "dedupWindowHours": 24})
    );
}

#[tokio::test]
async fn consent_update_events_go_everywhere_and_disabled_destinations_nowhere() {
    let server = TestServer::start().await;
    let hook = Receiver::start().await;
    let ids = spec_workspace(&server, &hook).await;
    let (status, _) = server
        .admin(
            "PATCH",
            &format!("/api/v1/destinations/{}", ids[2]),
            Some(json!({"enabled": false})),
        )
        .await;
    assert_eq!(status, 200);
    let update = consented(
        "Segment Consent Preference Updated",
        "u",
        json!({"ad": false, "analytics": false}),
    );
    server.track("/v1/track", update).await;
    server
        .track("/v1/track", json!({"userId": "m", "event": "Marker"}))
        .await;
    for path in ["/fb", "/gads", "/un"] {
        eventually(Duration::from_secs(10), path, || {
            let hook = hook.clone();
            async move {
                // The update is released by the profile consumer, so it may come second.
                let mut names = hook.names_at(path);
                names.sort();
                (names == ["Marker", "Segment Consent Preference Updated"]).then_some(())
            }
        })
        .await;
    }
    assert!(
        hook.names_at("/amp").is_empty(),
        "disabled destination receives nothing"
    );
    let overview = server.overview("").await;
    let amp = overview["destinations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "Amplitude")
        .unwrap()
        .clone();
    assert_eq!(amp["filtered"]["DESTINATION_DISABLED"], 2);
}

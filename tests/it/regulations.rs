//! GDPR / CCPA regulations over HTTP (SPEC §7): suppression at the API, deletion from
//! profiles, the ledger, the backlog, dead letters and file destinations.

use std::time::Duration;

use serde_json::{Value, json};

use crate::common::{Receiver, TestServer, eventually};

async fn regulate(server: &TestServer, kind: &str, users: &[&str]) -> Value {
    let (status, created) = server
        .admin(
            "POST",
            "/api/v1/regulations",
            Some(json!({"regulationType": kind, "subjectType": "USER_ID", "subjectIds": users})),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["status"], "INITIALIZED");
    let id = created["id"].as_str().unwrap().to_owned();
    eventually(Duration::from_secs(30), "the regulation to finish", || {
        let (server, id) = (&server, id.clone());
        async move {
            let (_, r) = server
                .admin("GET", &format!("/api/v1/regulations/{id}"), None)
                .await;
            matches!(
                r["status"].as_str(),
                Some("FINISHED" | "FAILED" | "PARTIAL_SUCCESS")
            )
            .then_some(r)
        }
    })
    .await
}

async fn wait_for_profile(server: &TestServer, id: &str) {
    eventually(Duration::from_secs(10), "profile", || async move {
        (server
            .admin("GET", &format!("/api/v1/profiles/{id}"), None)
            .await
            .0
            == 200)
            .then_some(())
    })
    .await;
}

#[tokio::test]
async fn suppression_drops_a_users_events_at_the_api_and_can_be_lifted() {
    let server = TestServer::start().await;
    let hook = Receiver::start().await;
    server
        .webhook("All", "Webhooks", &hook.url, json!({}))
        .await;
    // u1 is linked to device a1 before the request.
    server
        .track("/v1/identify", json!({"userId": "u1", "anonymousId": "a1"}))
        .await;
    wait_for_profile(&server, "u1").await;

    let r = regulate(&server, "SUPPRESS_ONLY", &["u1"]).await;
    assert_eq!(r["status"], "FINISHED", "{r}");
    assert_eq!(r["details"]["suppressedAnonymousIds"], 1);
    let (_, list) = server.admin("GET", "/api/v1/suppressions", None).await;
    assert_eq!(list[0]["userId"], "u1");

    let before = server.overview("").await["filteredAtSource"]
        .as_i64()
        .unwrap();
    for body in [
        json!({"userId": "u1", "event": "by user"}),
        json!({"anonymousId": "a1", "event": "by device"}),
        json!({"userId": "u2", "event": "someone else"}),
    ] {
        assert_eq!(
            server.track("/v1/track", body).await.0,
            200,
            "suppressed events are still answered 200"
        );
    }
    eventually(Duration::from_secs(10), "u2's event", || {
        let hook = hook.clone();
        async move {
            hook.names_at("/")
                .contains(&"someone else".to_owned())
                .then_some(())
        }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let names = hook.names_at("/");
    assert!(
        !names.contains(&"by user".to_owned()) && !names.contains(&"by device".to_owned()),
        "{names:?}"
    );
    assert_eq!(
        server.overview("").await["filteredAtSource"]
            .as_i64()
            .unwrap()
            - before,
        2
    );

    let r = regulate(&server, "UNSUPPRESS", &["u1"]).await;
    assert_eq!(r["status"], "FINISHED");
    server
        .track(
            "/v1/track",
            json!({"userId": "u1", "event": "after unsuppress"}),
        )
        .await;
    eventually(Duration::from_secs(10), "u1 flows again", || {
        let hook = hook.clone();
        async move {
            hook.names_at("/")
                .contains(&"after unsuppress".to_owned())
                .then_some(())
        }
    })
    .await;
    // Every regulation is in the audit trail.
    let (_, audit) = server
        .admin("GET", "/api/v1/audit?action=regulation.created", None)
        .await;
    assert_eq!(audit["entries"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn deletion_removes_the_person_everywhere_and_leaves_a_tombstone() {
    let server = TestServer::start_with(|c| c.delivery.max_attempts = 1000).await;
    let hook = Receiver::start().await;
    let down = Receiver::start().await;
    down.answer_with(vec![503]);
    server
        .webhook("All", "Webhooks", &hook.url, json!({}))
        .await;
    // A destination that is down keeps a backlog of both people's events.
    let backlog = server.webhook("Down", "Down", &down.url, json!({})).await;
    let file = server
        .create("/api/v1/destinations", json!({"name": "Archive", "integration": "Archive", "type": "file", "settings": {"path": "archive.jsonl"}}))
        .await;
    let prefs = json!({"consent": {"categoryPreferences": {"C1": true}}});
    for (user, anon) in [("gone", "gone-device"), ("stays", "stays-device")] {
        server
            .track(
                "/v1/identify",
                json!({"userId": user, "anonymousId": anon, "context": prefs}),
            )
            .await;
        server
            .track(
                "/v1/track",
                json!({"anonymousId": anon, "event": "Anonymous click", "context": prefs}),
            )
            .await;
        server
            .track("/v1/track", json!({"userId": user, "event": "Purchase"}))
            .await;
    }
    wait_for_profile(&server, "gone").await;
    let path = server.dir.path().join("files/archive.jsonl");
    eventually(Duration::from_secs(10), "archive written", || {
        let path = path.clone();
        async move { (std::fs::read_to_string(&path).ok()?.lines().count() == 6).then_some(()) }
    })
    .await;
    let (_, history) = server
        .admin("GET", "/api/v1/profiles/gone/consent-history", None)
        .await;
    assert!(!history["entries"].as_array().unwrap().is_empty());

    let r = regulate(&server, "SUPPRESS_WITH_DELETE", &["gone"]).await;
    assert_eq!(r["status"], "FINISHED", "{r:#}");
    let d = &r["details"];
    assert_eq!(d["profilesDeleted"], 1, "{d:#}");
    assert_eq!(
        d["eventsDeleted"], 3,
        "the backlog held the person's three events: {d:#}"
    );
    let archive = d["destinations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["destinationId"] == file)
        .unwrap();
    assert_eq!(archive["status"], "FINISHED");
    assert_eq!(archive["removed"], 3);
    let webhook = d["destinations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["destinationId"] == backlog)
        .unwrap();
    assert_eq!(webhook["status"], "NOT_SUPPORTED");

    // Nothing of the person remains: no profile, no ledger, no lines in the file.
    assert_eq!(
        server.admin("GET", "/api/v1/profiles/gone", None).await.0,
        404
    );
    assert_eq!(
        server
            .admin("GET", "/api/v1/profiles/gone-device", None)
            .await
            .0,
        404
    );
    assert_eq!(
        server
            .admin("GET", "/api/v1/profiles/gone/consent-history", None)
            .await
            .0,
        404
    );
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.lines().count(), 3);
    assert!(!text.contains("gone"), "{text}");
    // A tombstone records that a deletion happened, without personal data.
    let tombstones = server
        .app
        .profiles
        .tombstones(r["id"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(tombstones.len(), 1);
    assert!(tombstones[0].2 >= 1, "ledger entries counted");

    // When the destination recovers, only the other person's events are delivered.
    down.answer_with(vec![200]);
    eventually(Duration::from_secs(15), "the backlog drains", || {
        let down = down.clone();
        async move { (down.events().len() == 3).then_some(()) }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let delivered = down.events();
    assert!(
        delivered.iter().all(|e| e.to_string().contains("stays")),
        "{delivered:#?}"
    );
    let overview = server.overview("").await;
    let down_steps = overview["destinations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["destinationId"] == backlog)
        .unwrap()
        .clone();
    assert_eq!(down_steps["deleted"], 3, "{down_steps}");
    assert_eq!(down_steps["delivered"], 3);
    // And the person stays suppressed.
    server
        .track("/v1/track", json!({"userId": "gone", "event": "Back?"}))
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!hook.names_at("/").contains(&"Back?".to_owned()));
}

#[tokio::test]
async fn delete_internal_removes_dead_letters_too() {
    let server = TestServer::start().await;
    let broken = Receiver::start().await;
    broken.answer_with(vec![400]);
    let dest = server
        .webhook("Broken", "Broken", &broken.url, json!({}))
        .await;
    server
        .track("/v1/track", json!({"userId": "dl-user", "event": "Lost"}))
        .await;
    server
        .track("/v1/track", json!({"userId": "other", "event": "Kept"}))
        .await;
    eventually(Duration::from_secs(10), "two dead letters", || {
        let (server, dest) = (&server, dest.clone());
        async move {
            let (_, page) = server
                .admin(
                    "GET",
                    &format!("/api/v1/destinations/{dest}/dead-letters"),
                    None,
                )
                .await;
            (page["entries"].as_array()?.len() == 2).then_some(())
        }
    })
    .await;
    let r = regulate(&server, "DELETE_INTERNAL", &["dl-user"]).await;
    assert_eq!(r["status"], "FINISHED");
    assert_eq!(r["details"]["deadLettersDeleted"], 1);
    let (_, page) = server
        .admin(
            "GET",
            &format!("/api/v1/destinations/{dest}/dead-letters"),
            None,
        )
        .await;
    let left: Vec<&str> = page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"]["userId"].as_str().unwrap())
        .collect();
    assert_eq!(left, ["other"]);
    // DELETE_INTERNAL does not suppress.
    let (_, list) = server.admin("GET", "/api/v1/suppressions", None).await;
    assert!(list.as_array().unwrap().is_empty());
}

#[tokio::test]
async fn regulation_limits_are_clear() {
    let server = TestServer::start().await;
    let many: Vec<String> = (0..5001).map(|i| format!("u{i}")).collect();
    let cases = [
        (
            json!({"regulationType": "SUPPRESS_ONLY", "subjectType": "USER_ID", "subjectIds": many}),
            "5000",
        ),
        (
            json!({"regulationType": "SUPPRESS_ONLY", "subjectType": "USER_ID", "subjectIds": []}),
            "1 to 5000",
        ),
        (
            json!({"regulationType": "SUPPRESS_ONLY", "subjectType": "EMAIL", "subjectIds": ["a"]}),
            "USER_ID",
        ),
        (
            json!({"regulationType": "FORGET_ME", "subjectType": "USER_ID", "subjectIds": ["a"]}),
            "FORGET_ME",
        ),
    ];
    for (body, needle) in cases {
        let (status, answer) = server
            .admin("POST", "/api/v1/regulations", Some(body))
            .await;
        assert_eq!(status, 400, "{answer}");
        assert!(
            answer["message"].as_str().unwrap().contains(needle),
            "{answer}"
        );
    }
}

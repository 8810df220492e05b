//! Console pages over HTTP: Sources here; Destinations (with filters) in
//! `console_destinations`, Users and tokens in `console_users`; the client is `console_client`.
//! Each test signs in as real users through `/login` and checks what the pages show, what the
//! forms change (through the admin API and the audit trail), and what they refuse.

use serde_json::Value;

use crate::common::TestServer;
use crate::console_client::{Console, audit_actions, element, tag};

async fn source_named(server: &TestServer, name: &str) -> Option<Value> {
    let (_, sources) = server.admin("GET", "/api/v1/sources", None).await;
    sources
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .cloned()
}

#[tokio::test]
async fn sources_page() {
    let server = TestServer::start().await;
    let owner = Console::sign_in(&server, "owner").await;
    let member = Console::sign_in(&server, "member").await;
    let viewer = Console::sign_in(&server, "viewer").await;

    // Everyone sees the list; viewers see the create form disabled, with the API's reason.
    let page = owner.get("/sources").await;
    assert_eq!(page.status, 200);
    assert!(
        page.html
            .contains("<button type=\"submit\">Create source</button>"),
        "{}",
        page.html
    );
    let page = viewer.get("/sources").await;
    assert_eq!(page.status, 200);
    assert!(tag(&page.html, "source-name").contains("disabled"));
    assert!(page.html.contains("Viewers cannot change sources"));

    // Invalid input comes back next to its field, and nothing is created.
    let page = owner
        .post("/sources", &[("name", "Shop"), ("rate_limit", "fast")])
        .await;
    assert_eq!(page.status, 400);
    assert!(element(&page.html, "source-rate-error").contains("whole number"));
    assert!(tag(&page.html, "source-rate").contains("aria-invalid=\"true\""));
    let page = owner.post("/sources", &[("name", "  ")]).await;
    assert_eq!(page.status, 400);
    assert!(element(&page.html, "source-name-error").contains("name must be 1 to 100 characters"));
    assert!(source_named(&server, "Shop").await.is_none());

    // An owner creates a source and lands on its page with the key and the snippets.
    let page = owner
        .post(
            "/sources",
            &[
                ("name", "Shop website"),
                ("rate_limit", "50"),
                ("missing_consent_policy", "deny"),
            ],
        )
        .await;
    assert_eq!(page.status, 303, "{}", page.html);
    let created = source_named(&server, "Shop website")
        .await
        .expect("source created");
    let id = created["id"].as_str().unwrap();
    let key = created["writeKey"].as_str().unwrap();
    assert_eq!(created["rateLimitPerSecond"], 50);
    assert_eq!(created["missingConsentPolicy"], "deny");
    assert!(
        page.location.starts_with(&format!("/sources/{id}?ok=")),
        "{}",
        page.location
    );
    assert!(
        audit_actions(&server, "source")
            .await
            .contains(&("source.created".into(), owner.email.clone()))
    );

    let page = owner.get(&format!("/sources/{id}")).await;
    assert_eq!(page.status, 200);
    assert_eq!(element(&page.html, "write-key"), key);
    let consent_tag = format!(
        "<script src=\"{}/consent.js\" data-write-key=\"{key}\"></script>",
        server.url
    );
    assert!(
        element(&page.html, "snippet-consent").contains(&consent_tag),
        "{}",
        element(&page.html, "snippet-consent")
    );
    let analytics = element(&page.html, "snippet-analytics");
    assert!(
        analytics.contains(&format!("writeKey: '{key}'")),
        "{analytics}"
    );
    assert!(
        analytics.contains(&format!("cdnURL: '{}'", server.url)),
        "{analytics}"
    );
    assert!(page.html.contains("data-copy=\"#snippet-analytics\""));

    // Members and viewers never see an owner's source key; the snippets hold a placeholder.
    for who in [&member, &viewer] {
        let page = who.get(&format!("/sources/{id}")).await;
        assert_eq!(page.status, 200);
        assert!(!page.html.contains(key), "{} sees the write key", who.email);
        assert!(element(&page.html, "snippet-consent").contains("YOUR_WRITE_KEY"));
    }
    let page = viewer.get(&format!("/sources/{id}")).await;
    assert!(tag(&page.html, "source-name").contains("disabled"));
    assert!(page.html.contains("Viewers cannot change sources"));

    // A member sees the key of a source they create once, on the answer page.
    let page = member.post("/sources", &[("name", "iOS app")]).await;
    assert_eq!(page.status, 200, "{}", page.html);
    let ios = source_named(&server, "iOS app").await.unwrap();
    let (_, full) = server
        .admin(
            "GET",
            &format!("/api/v1/sources/{}", ios["id"].as_str().unwrap()),
            None,
        )
        .await;
    let ios_key = full["writeKey"].as_str().unwrap();
    assert_eq!(element(&page.html, "write-key"), ios_key);
    let again = member
        .get(&format!("/sources/{}", ios["id"].as_str().unwrap()))
        .await;
    assert!(!again.html.contains(ios_key));

    // Viewers and forged forms are refused and change nothing.
    for (who, answer) in [
        ("viewer", viewer.post("/sources", &[("name", "Nope")]).await),
        ("forged", owner.forge("/sources", &[("name", "Nope")]).await),
        (
            "viewer",
            viewer
                .post(&format!("/sources/{id}"), &[("name", "Renamed")])
                .await,
        ),
        (
            "forged",
            owner
                .forge(&format!("/sources/{id}"), &[("name", "Renamed")])
                .await,
        ),
        (
            "viewer",
            viewer.post(&format!("/sources/{id}/disable"), &[]).await,
        ),
        (
            "forged",
            owner
                .forge(
                    &format!("/sources/{id}/delete"),
                    &[("confirm_name", "Shop website")],
                )
                .await,
        ),
    ] {
        assert_eq!(answer.status, 403, "{who}: {}", answer.html);
    }
    assert!(source_named(&server, "Nope").await.is_none());
    let unchanged = source_named(&server, "Shop website")
        .await
        .expect("not renamed or deleted");
    assert_eq!(unchanged["enabled"], true);

    // Rename, clear the limit, disable, enable.
    let page = owner
        .post(
            &format!("/sources/{id}"),
            &[
                ("name", "Shop"),
                ("rate_limit", ""),
                ("missing_consent_policy", ""),
            ],
        )
        .await;
    assert_eq!(page.status, 303, "{}", page.html);
    let (_, after) = server
        .admin("GET", &format!("/api/v1/sources/{id}"), None)
        .await;
    assert_eq!(
        (
            after["name"].as_str(),
            &after["rateLimitPerSecond"],
            &after["missingConsentPolicy"]
        ),
        (Some("Shop"), &Value::Null, &Value::Null)
    );
    let page = owner
        .post(
            &format!("/sources/{id}"),
            &[("name", "Shop"), ("rate_limit", "0")],
        )
        .await;
    assert_eq!(page.status, 400);
    assert!(
        element(&page.html, "source-rate-error").contains("rateLimitPerSecond must be at least 1")
    );
    assert_eq!(
        owner
            .post(&format!("/sources/{id}/disable"), &[])
            .await
            .status,
        303
    );
    assert_eq!(
        server
            .admin("GET", &format!("/api/v1/sources/{id}"), None)
            .await
            .1["enabled"],
        false
    );
    assert!(
        owner
            .get(&format!("/sources/{id}"))
            .await
            .html
            .contains("Enable source")
    );
    assert_eq!(
        member
            .post(&format!("/sources/{id}/enable"), &[])
            .await
            .status,
        303
    );
    assert_eq!(
        server
            .admin("GET", &format!("/api/v1/sources/{id}"), None)
            .await
            .1["enabled"],
        true
    );

    // Delete needs the exact name.
    let page = owner
        .post(
            &format!("/sources/{id}/delete"),
            &[("confirm_name", "shop")],
        )
        .await;
    assert!(page.location.contains("error="), "{}", page.location);
    assert!(source_named(&server, "Shop").await.is_some());
    let page = owner
        .post(
            &format!("/sources/{id}/delete"),
            &[("confirm_name", "Shop")],
        )
        .await;
    assert!(
        page.location.starts_with("/sources?ok="),
        "{}",
        page.location
    );
    assert!(source_named(&server, "Shop").await.is_none());
    let actions = audit_actions(&server, "source").await;
    for action in ["source.updated", "source.deleted"] {
        assert!(
            actions.iter().any(|(a, _)| a == action),
            "{action} in {actions:?}"
        );
    }
}

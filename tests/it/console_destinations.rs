//! The Destinations console pages over HTTP: a webhook created and edited through the form
//! generated from its settings, secrets never sent back to the browser (not even after a
//! failed form), errors next to their fields, filters saved and tried against a sample event,
//! enable / disable / delete, the audit trail, and viewers read-only with forged forms refused.

use std::time::Duration;

use serde_json::{Value, json};

use crate::common::{Receiver, TestServer, eventually};
use crate::console_client::{Console, audit_actions, element, tag};

const SIGNING_SECRET: &str = "sig-secret-value-1";
const HEADER_SECRET: &str = "Bearer header-secret-2";

async fn destination_named(server: &TestServer, name: &str) -> Option<Value> {
    let (status, all) = server.admin("GET", "/api/v1/destinations", None).await;
    assert_eq!(status, 200, "{all}");
    all.as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == name)
        .cloned()
}

/// The settings as stored, secrets included (the API only shows them redacted).
async fn stored_settings(server: &TestServer, id: &str) -> Value {
    server.app.store.destination(id).await.unwrap().settings
}

fn no_secrets(html: &str, what: &str) {
    for secret in [SIGNING_SECRET, "header-secret-2"] {
        assert!(!html.contains(secret), "{what}: the page holds {secret}");
    }
}

#[tokio::test]
async fn webhook_through_the_forms() {
    let server = TestServer::start().await;
    let receiver = Receiver::start().await;
    let owner = Console::sign_in(&server, "owner").await;
    let hook = format!("{}/hook", receiver.url);

    let page = owner.get("/destinations").await;
    assert_eq!(page.status, 200);
    assert!(page.html.contains("href=\"/destinations/new\""));

    // Step 1 lists every type; step 2 is the form generated from the type's settings.
    let page = owner.get("/destinations/new").await;
    assert_eq!(page.status, 200);
    for kind in [
        "webhook",
        "file",
        "postgres",
        "object_storage",
        "nats",
        "segment_forward",
    ] {
        assert!(
            page.html
                .contains(&format!("href=\"/destinations/new?type={kind}\"")),
            "{kind} offered"
        );
    }
    let page = owner.get("/destinations/new?type=webhook").await;
    assert_eq!(page.status, 200);
    assert!(tag(&page.html, "setting-url").contains("required"));
    assert!(tag(&page.html, "setting-secret").contains("type=\"password\""));
    assert!(tag(&page.html, "setting-headers").starts_with("<textarea"));
    assert!(tag(&page.html, "setting-batchSize").contains("inputmode=\"numeric\""));
    assert!(tag(&page.html, "dest-integration").contains("value=\"Webhooks\""));
    let page = owner.get("/destinations/new?type=postgres").await;
    assert!(page.html.contains("Database URL"));
    assert!(tag(&page.html, "setting-schema").contains("placeholder=\"sluice\""));

    let form = |url: &str, batch: &str, headers: &str, secret: &str| {
        vec![
            ("type", "webhook".to_owned()),
            ("name", "Orders hook".to_owned()),
            ("integration", "Orders".to_owned()),
            ("enforce_consent", "on".to_owned()),
            ("enabled", "on".to_owned()),
            ("setting:/url", url.to_owned()),
            ("setting:/batchSize", batch.to_owned()),
            ("setting:/timeoutMs", String::new()),
            ("setting:/headers", headers.to_owned()),
            ("setting:/secret", secret.to_owned()),
        ]
    };
    let post = |fields: Vec<(&'static str, String)>| {
        let owner = &owner;
        async move {
            let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
            owner.post("/destinations/new", &fields).await
        }
    };
    let headers = json!({"Authorization": HEADER_SECRET}).to_string();

    // A bad setting comes back next to its field; what was typed stays, except the secrets.
    let page = post(form("not a url", "", &headers, SIGNING_SECRET)).await;
    assert_eq!(page.status, 400, "{}", page.html);
    let error = element(&page.html, "setting-url-error");
    assert!(error.contains("not a url"), "{error}");
    assert!(tag(&page.html, "setting-url").contains("aria-invalid=\"true\""));
    assert!(tag(&page.html, "setting-url").contains("value=\"not a url\""));
    assert!(tag(&page.html, "dest-name").contains("value=\"Orders hook\""));
    no_secrets(&page.html, "failed create");
    let shown_headers = element(&page.html, "setting-headers");
    assert_eq!(
        serde_json::from_str::<Value>(&shown_headers).unwrap(),
        json!({"Authorization": "********"})
    );
    let page = post(form(&hook, "ten", &headers, SIGNING_SECRET)).await;
    assert_eq!(page.status, 400);
    assert!(element(&page.html, "setting-batchSize-error").contains("whole number"));
    let page = post(form(&hook, "5000", &headers, SIGNING_SECRET)).await;
    assert_eq!(page.status, 400);
    assert!(
        element(&page.html, "setting-batchSize-error").contains("batchSize"),
        "{}",
        page.html
    );
    // Sending the masked headers back as they were shown does not save ******** as a secret.
    let page = post(form(&hook, "", &shown_headers, SIGNING_SECRET)).await;
    assert_eq!(page.status, 400);
    assert!(
        element(&page.html, "setting-headers-error")
            .contains("Type the value of Authorization again")
    );
    assert!(destination_named(&server, "Orders hook").await.is_none());

    // Created; the secrets are stored, and never in a page again.
    let page = post(form(&hook, "", &headers, SIGNING_SECRET)).await;
    assert_eq!(page.status, 303, "{}", page.html);
    let created = destination_named(&server, "Orders hook")
        .await
        .expect("created");
    let id = created["id"].as_str().unwrap().to_owned();
    assert!(
        page.location
            .starts_with(&format!("/destinations/{id}?ok=")),
        "{}",
        page.location
    );
    assert_eq!(
        (
            &created["type"],
            &created["integration"],
            &created["enabled"]
        ),
        (&json!("webhook"), &json!("Orders"), &json!(true))
    );
    assert_eq!(created["settings"]["secret"], "********");
    let stored = stored_settings(&server, &id).await;
    assert_eq!(
        (&stored["url"], &stored["secret"], &stored["headers"]),
        (
            &json!(hook),
            &json!(SIGNING_SECRET),
            &json!({"Authorization": HEADER_SECRET})
        )
    );
    let page = owner.get(&format!("/destinations/{id}")).await;
    assert_eq!(page.status, 200);
    no_secrets(&page.html, "destination page");
    assert!(tag(&page.html, "setting-secret").contains("value=\"\""));
    assert!(element(&page.html, "setting-secret-help").contains("A value is saved"));
    assert!(tag(&page.html, "setting-url").contains(&format!("value=\"{hook}\"")));
    no_secrets(&owner.get("/destinations").await.html, "list");

    // Saving the settings page as shown keeps both secrets; the receiver gets them.
    let shown_headers = element(&page.html, "setting-headers");
    let mut edit = form(&hook, "", &shown_headers, "");
    edit[1].1 = "Orders webhook".into();
    let fields: Vec<(&str, &str)> = edit
        .iter()
        .filter(|(k, _)| *k != "type" && *k != "enabled")
        .map(|(k, v)| (*k, v.as_str()))
        .collect();
    let page = owner.post(&format!("/destinations/{id}"), &fields).await;
    assert_eq!(page.status, 303, "{}", page.html);
    assert_eq!(stored_settings(&server, &id).await, stored);
    assert!(destination_named(&server, "Orders webhook").await.is_some());
    let (status, _) = server
        .track(
            "/v1/track",
            json!({"userId": "u1", "event": "Order Completed"}),
        )
        .await;
    assert_eq!(status, 200);
    let got = eventually(
        Duration::from_secs(10),
        "the webhook receives the event",
        || {
            let receiver = receiver.clone();
            async move { receiver.requests().into_iter().next() }
        },
    )
    .await;
    assert_eq!(got.headers["authorization"], HEADER_SECRET);
    assert!(got.headers.contains_key("x-signature"));

    // An inline error on the settings page, with the secret field still empty.
    let mut bad = fields.clone();
    bad.retain(|(k, _)| *k != "setting:/url");
    bad.push(("setting:/url", "ftp://example.com"));
    let page = owner.post(&format!("/destinations/{id}"), &bad).await;
    assert_eq!(page.status, 400);
    assert!(!element(&page.html, "setting-url-error").is_empty());
    no_secrets(&page.html, "failed edit");
    assert_eq!(stored_settings(&server, &id).await, stored);

    // Disable and enable.
    let page = owner
        .post(&format!("/destinations/{id}/disable"), &[])
        .await;
    assert_eq!(page.status, 303);
    assert_eq!(
        destination_named(&server, "Orders webhook").await.unwrap()["enabled"],
        false
    );
    assert!(
        owner
            .get(&format!("/destinations/{id}"))
            .await
            .html
            .contains("Enable destination")
    );
    let page = owner.post(&format!("/destinations/{id}/enable"), &[]).await;
    assert_eq!(page.status, 303);
    assert_eq!(
        destination_named(&server, "Orders webhook").await.unwrap()["enabled"],
        true
    );

    // Delete needs the exact name, typed in the dialog.
    let page = owner.get(&format!("/destinations/{id}")).await;
    assert!(page.html.contains("data-confirm=\"Orders webhook\""));
    let page = owner
        .post(
            &format!("/destinations/{id}/delete"),
            &[("confirm_name", "orders webhook")],
        )
        .await;
    assert!(page.location.contains("error="), "{}", page.location);
    assert!(destination_named(&server, "Orders webhook").await.is_some());
    let page = owner
        .post(
            &format!("/destinations/{id}/delete"),
            &[("confirm_name", "Orders webhook")],
        )
        .await;
    assert!(
        page.location.starts_with("/destinations?ok="),
        "{}",
        page.location
    );
    assert!(destination_named(&server, "Orders webhook").await.is_none());

    // Every change is in the audit trail, by the console user, with the secrets redacted.
    let actions = audit_actions(&server, "destination").await;
    for action in [
        "destination.created",
        "destination.updated",
        "destination.deleted",
    ] {
        assert!(
            actions.contains(&(action.to_owned(), owner.email.clone())),
            "{action} in {actions:?}"
        );
    }
    let (_, audit) = server
        .admin("GET", "/api/v1/audit?resourceType=destination", None)
        .await;
    no_secrets(&audit.to_string(), "audit trail");
}

/// The filters form's fields for these rules: `(condition, action, fields)`.
fn rules_form<'a>(op: &'a str, rules: &[(&'a str, &'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut fields = vec![("op", op)];
    for (condition, action, list) in rules {
        fields.extend([("if", *condition), ("action", *action), ("fields", *list)]);
    }
    fields
}

#[tokio::test]
async fn filters_and_viewers() {
    let server = TestServer::start().await;
    let owner = Console::sign_in(&server, "owner").await;
    let member = Console::sign_in(&server, "member").await;
    let viewer = Console::sign_in(&server, "viewer").await;
    let id = server
        .webhook(
            "Warehouse",
            "Warehouse",
            "http://127.0.0.1:9/hook",
            json!({}),
        )
        .await;
    let filters_path = format!("/destinations/{id}/filters");
    let api_filters = format!("/api/v1/destinations/{id}/filters");

    let page = owner.get(&format!("/destinations/{id}")).await;
    assert_eq!(page.status, 200);
    assert!(page.html.contains("No filters"));
    assert!(element(&page.html, "filter-sample").contains("Order Completed"));

    // "Add a rule" gives an empty row, nothing saved.
    let page = owner.post(&filters_path, &[("op", "add")]).await;
    assert_eq!(page.status, 200);
    assert!(tag(&page.html, "rule-1-if").contains("value=\"\""));

    // A rule that does not parse is shown next to its row, and nothing is saved.
    let page = owner
        .post(
            &filters_path,
            &rules_form(
                "save",
                &[
                    ("event = \"Debug\"", "drop", ""),
                    ("properties.total >", "drop", ""),
                ],
            ),
        )
        .await;
    assert_eq!(page.status, 400);
    assert!(element(&page.html, "rule-2-error").contains("invalid condition"));
    assert!(tag(&page.html, "rule-2-if").contains("aria-invalid=\"true\""));
    assert_eq!(
        server.admin("GET", &api_filters, None).await.1,
        json!({"rules": []})
    );

    // Saved through the form: the API has exactly these rules.
    let rules = [
        ("event = \"Debug\"", "drop", ""),
        (
            "type = \"track\"",
            "dropProperties",
            "properties.email, context.ip",
        ),
    ];
    let page = owner.post(&filters_path, &rules_form("save", &rules)).await;
    assert_eq!(page.status, 303, "{}", page.html);
    assert!(
        page.location
            .starts_with(&format!("/destinations/{id}?ok="))
            && page.location.ends_with("#filters-heading"),
        "{}",
        page.location
    );
    let (status, saved) = server.admin("GET", &api_filters, None).await;
    assert_eq!(status, 200);
    assert_eq!(
        saved,
        json!({"rules": [
            {"if": "event = \"Debug\"", "action": "drop"},
            {"if": "type = \"track\"", "action": "dropProperties", "fields": ["properties.email", "context.ip"]},
        ]})
    );
    let page = owner.get(&page.location).await;
    assert!(page.html.contains("2 filter rules saved"));
    assert!(tag(&page.html, "rule-2-fields").contains("value=\"properties.email, context.ip\""));

    // The test box: the sample event as the destination would get it, nothing saved.
    let sample = json!({
        "type": "track", "event": "Order Completed", "userId": "u1",
        "properties": {"total": 20, "email": "jane@example.com"}, "context": {"ip": "203.0.113.7"}
    })
    .to_string();
    let mut test = rules_form("test", &rules);
    test.push(("sample", &sample));
    let page = owner.post(&filters_path, &test).await;
    assert_eq!(page.status, 200, "{}", page.html);
    let result = element(&page.html, "filter-result");
    assert!(result.contains("Delivered"), "{result}");
    assert!(!page.html.contains("These rules are not saved yet"));
    let delivered: Value =
        serde_json::from_str(&element(&page.html, "filter-result-event")).unwrap();
    assert_eq!(delivered["properties"], json!({"total": 20}));
    assert_eq!(delivered["context"], json!({}));
    let debug = json!({"type": "track", "event": "Debug", "userId": "u1"}).to_string();
    let mut test = rules_form("test", &rules);
    test.push(("sample", &debug));
    let page = owner.post(&filters_path, &test).await;
    assert_eq!(page.status, 200);
    let result = element(&page.html, "filter-result");
    assert!(result.contains("Dropped"), "{result}");
    assert!(page.html.contains("rule 1 drops it"));
    let mut changed = rules_form("test", &rules[..1]);
    changed.push(("sample", &debug));
    let page = owner.post(&filters_path, &changed).await;
    assert!(page.html.contains("These rules are not saved yet"));
    let mut test = rules_form("test", &rules);
    test.push(("sample", "{not json"));
    let page = owner.post(&filters_path, &test).await;
    assert_eq!(page.status, 400);
    assert!(element(&page.html, "filter-sample-error").contains("not valid JSON"));
    assert_eq!(server.admin("GET", &api_filters, None).await.1, saved);

    // Viewers see everything read-only, and may still try rules; members may change them.
    let page = viewer.get(&format!("/destinations/{id}")).await;
    assert_eq!(page.status, 200);
    assert!(tag(&page.html, "setting-url").contains("disabled"));
    assert!(tag(&page.html, "dest-name").contains("disabled"));
    assert!(page.html.contains("Viewers cannot change destinations"));
    assert!(page.html.contains(
        "<button type=\"submit\" disabled aria-describedby=\"filters-reason\">Save filters</button>"
    ));
    assert!(
        !page
            .html
            .contains(&format!("action=\"/destinations/{id}/delete\""))
    );
    let page = viewer.get("/destinations").await;
    assert!(page.html.contains("Viewers cannot change destinations"));
    assert!(!page.html.contains("href=\"/destinations/new\""));
    let page = viewer.get("/destinations/new?type=webhook").await;
    assert!(tag(&page.html, "setting-url").contains("disabled"));
    let mut test = rules_form("test", &rules);
    test.push(("sample", &debug));
    let page = viewer.post(&filters_path, &test).await;
    assert_eq!(page.status, 200);
    assert!(element(&page.html, "filter-result").contains("Dropped"));

    let new_webhook = [
        ("type", "webhook"),
        ("name", "Sneaky"),
        ("integration", "Sneaky"),
        ("setting:/url", "http://127.0.0.1:9/x"),
    ];
    let settings = [
        ("name", "Renamed"),
        ("integration", "Warehouse"),
        ("setting:/url", "http://127.0.0.1:9/other"),
    ];
    let path = |tail: &str| format!("/destinations/{id}{tail}");
    for (who, answer) in [
        (
            "viewer",
            viewer.post(&filters_path, &rules_form("save", &[])).await,
        ),
        (
            "forged",
            owner.forge(&filters_path, &rules_form("save", &[])).await,
        ),
        (
            "viewer",
            viewer.post("/destinations/new", &new_webhook).await,
        ),
        (
            "forged",
            owner.forge("/destinations/new", &new_webhook).await,
        ),
        ("viewer", viewer.post(&path(""), &settings).await),
        ("forged", owner.forge(&path(""), &settings).await),
        ("viewer", viewer.post(&path("/disable"), &[]).await),
        (
            "viewer",
            viewer
                .post(&path("/delete"), &[("confirm_name", "Warehouse")])
                .await,
        ),
        (
            "forged",
            owner
                .forge(&path("/delete"), &[("confirm_name", "Warehouse")])
                .await,
        ),
        ("viewer", viewer.post(&path("/replay"), &[]).await),
    ] {
        assert_eq!(answer.status, 403, "{who}: {}", answer.html);
    }
    assert_eq!(server.admin("GET", &api_filters, None).await.1, saved);
    assert!(destination_named(&server, "Sneaky").await.is_none());
    let warehouse = destination_named(&server, "Warehouse")
        .await
        .expect("not renamed or deleted");
    assert_eq!(warehouse["enabled"], true);
    assert_eq!(warehouse["settings"]["url"], "http://127.0.0.1:9/hook");

    // A member removes the rules.
    let page = member.post(&filters_path, &rules_form("save", &[])).await;
    assert_eq!(page.status, 303, "{}", page.html);
    assert_eq!(
        server.admin("GET", &api_filters, None).await.1,
        json!({"rules": []})
    );

    let actions = audit_actions(&server, "destination").await;
    for who in [&owner.email, &member.email] {
        assert!(
            actions.contains(&("destination.filters.updated".to_owned(), who.clone())),
            "{who} in {actions:?}"
        );
    }
}

//! Every admin route × every role, plus no token, a revoked token and a malformed header.
//!
//! `EXPECTED` is this test's own statement of SPEC §1 (who may do what), independent of the
//! server's `admin::ACCESS` table. The mounted routes come from the OpenAPI document, which is
//! built from the same registrations as the router: a route mounted without a line here, or a
//! line here without a route, fails the test.

use std::collections::BTreeSet;

use serde_json::json;
use sluice::admin::ACCESS;
use sluice::store::Role;

use crate::common::{OWNER_TOKEN, TestServer};

use Role::{Member, Owner, Viewer};

/// The least role for each admin route (SPEC §1): owners change consent and manage users and
/// read the audit trail; members manage sources and destinations; viewers read.
/// The reverse ETL routes (SPEC §1: members and owners manage connections and models; only
/// owners change consent mappings).
const EXPECTED_RETL: &[(&str, &str, Role)] = &[
    ("GET", "/api/v1/retl/connections", Viewer),
    ("POST", "/api/v1/retl/connections", Member),
    ("GET", "/api/v1/retl/connections/{id}", Viewer),
    ("PATCH", "/api/v1/retl/connections/{id}", Member),
    ("DELETE", "/api/v1/retl/connections/{id}", Member),
    ("POST", "/api/v1/retl/connections/{id}/test", Member),
    ("GET", "/api/v1/retl/models", Viewer),
    ("POST", "/api/v1/retl/models", Member),
    ("GET", "/api/v1/retl/models/{id}", Viewer),
    ("PATCH", "/api/v1/retl/models/{id}", Member),
    ("DELETE", "/api/v1/retl/models/{id}", Member),
    ("POST", "/api/v1/retl/models/{id}/preview", Member),
    ("PUT", "/api/v1/retl/models/{id}/consent-mapping", Owner),
    ("GET", "/api/v1/retl/models/{id}/mappings", Viewer),
    ("POST", "/api/v1/retl/models/{id}/mappings", Member),
    (
        "DELETE",
        "/api/v1/retl/models/{id}/mappings/{mapping_id}",
        Member,
    ),
    ("POST", "/api/v1/retl/models/{id}/sync", Member),
    ("GET", "/api/v1/retl/models/{id}/runs", Viewer),
    ("GET", "/api/v1/retl/runs/{id}", Viewer),
];

const EXPECTED: &[(&str, &str, Role)] = &[
    ("GET", "/api/v1/workspace", Viewer),
    ("PATCH", "/api/v1/workspace", Owner),
    ("GET", "/api/v1/sources", Viewer),
    ("POST", "/api/v1/sources", Member),
    ("GET", "/api/v1/sources/{id}", Viewer),
    ("GET", "/api/v1/sources/{id}/debugger", Viewer),
    ("PATCH", "/api/v1/sources/{id}", Member),
    ("DELETE", "/api/v1/sources/{id}", Member),
    ("GET", "/api/v1/destinations", Viewer),
    ("POST", "/api/v1/destinations", Member),
    ("GET", "/api/v1/destinations/{id}", Viewer),
    ("PATCH", "/api/v1/destinations/{id}", Member),
    ("DELETE", "/api/v1/destinations/{id}", Member),
    ("GET", "/api/v1/destinations/{id}/dead-letters", Viewer),
    (
        "POST",
        "/api/v1/destinations/{id}/dead-letters/replay",
        Member,
    ),
    ("GET", "/api/v1/destination-types", Viewer),
    ("GET", "/api/v1/destinations/{id}/filters", Viewer),
    ("PUT", "/api/v1/destinations/{id}/filters", Member),
    ("POST", "/api/v1/destination-filters/test", Viewer),
    ("GET", "/api/v1/consent/categories", Viewer),
    ("POST", "/api/v1/consent/categories", Owner),
    ("GET", "/api/v1/consent/categories/{id}", Viewer),
    ("PATCH", "/api/v1/consent/categories/{id}", Owner),
    ("DELETE", "/api/v1/consent/categories/{id}", Owner),
    ("POST", "/api/v1/consent/categories/{id}/disable", Owner),
    ("POST", "/api/v1/consent/categories/{id}/enable", Owner),
    ("GET", "/api/v1/delivery-overview", Viewer),
    ("GET", "/api/v1/me", Viewer),
    ("GET", "/api/v1/users", Viewer),
    ("POST", "/api/v1/users", Owner),
    ("GET", "/api/v1/users/{id}", Viewer),
    ("PATCH", "/api/v1/users/{id}", Owner),
    ("DELETE", "/api/v1/users/{id}", Owner),
    ("GET", "/api/v1/users/{id}/tokens", Owner),
    ("POST", "/api/v1/users/{id}/tokens", Owner),
    ("DELETE", "/api/v1/users/{id}/tokens/{token_id}", Owner),
    ("GET", "/api/v1/profiles/{id}", Viewer),
    ("GET", "/api/v1/profiles/{id}/consent-history", Viewer),
    (
        "GET",
        "/api/v1/profiles/{id}/consent-history/export",
        Viewer,
    ),
    ("POST", "/api/v1/regulations", Owner),
    ("GET", "/api/v1/regulations", Owner),
    ("GET", "/api/v1/regulations/{id}", Owner),
    ("GET", "/api/v1/suppressions", Owner),
    ("GET", "/api/v1/audit", Owner),
    ("GET", "/api/v1/audit/export", Owner),
];

fn documented_routes() -> BTreeSet<(String, String)> {
    let api = sluice::admin::openapi();
    let mut out = BTreeSet::new();
    for (path, item) in &api.paths.paths {
        let methods = [
            ("GET", item.get.is_some()),
            ("POST", item.post.is_some()),
            ("PATCH", item.patch.is_some()),
            ("PUT", item.put.is_some()),
            ("DELETE", item.delete.is_some()),
        ];
        for (method, present) in methods {
            if present {
                out.insert((method.to_owned(), path.clone()));
            }
        }
    }
    out
}

#[test]
fn every_mounted_route_is_in_the_tables() {
    let documented = documented_routes();
    let expected: BTreeSet<(String, String)> = EXPECTED
        .iter()
        .chain(EXPECTED_RETL.iter())
        .map(|(m, p, _)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    let access: BTreeSet<(String, String)> = ACCESS
        .iter()
        .chain(sluice::admin::RETL_ACCESS.iter())
        .map(|(m, p, _, _)| (m.to_string(), (*p).to_owned()))
        .collect();
    let untested: Vec<_> = documented.difference(&expected).collect();
    let stale: Vec<_> = expected.difference(&documented).collect();
    let unprotected: Vec<_> = documented.difference(&access).collect();
    assert!(
        untested.is_empty(),
        "mounted but missing from this test's EXPECTED table: {untested:?}"
    );
    assert!(stale.is_empty(), "in EXPECTED but not mounted: {stale:?}");
    assert!(
        unprotected.is_empty(),
        "mounted but missing from admin::ACCESS: {unprotected:?}"
    );
}

/// A JSON body for methods that take one; validation may refuse it, access control decides
/// first.
fn body_for(method: &str) -> Option<serde_json::Value> {
    matches!(method, "POST" | "PATCH" | "PUT").then(|| json!({}))
}

#[tokio::test]
async fn route_by_role_table() {
    let server = TestServer::start().await;
    let mut tokens = vec![(Some(Role::Owner), OWNER_TOKEN.to_owned())];
    for role in ["member", "viewer"] {
        let id = server
            .create(
                "/api/v1/users",
                json!({"email": format!("{role}@example.com"), "name": role, "role": role}),
            )
            .await;
        let (_, token) = server
            .admin(
                "POST",
                &format!("/api/v1/users/{id}/tokens"),
                Some(json!({"name": "t"})),
            )
            .await;
        tokens.push((
            Role::parse(role),
            token["token"].as_str().unwrap().to_owned(),
        ));
    }
    // A revoked token.
    let id = server
        .create(
            "/api/v1/users",
            json!({"email": "gone@example.com", "name": "gone", "role": "owner"}),
        )
        .await;
    let (_, token) = server
        .admin(
            "POST",
            &format!("/api/v1/users/{id}/tokens"),
            Some(json!({"name": "t"})),
        )
        .await;
    let revoked = token["token"].as_str().unwrap().to_owned();
    server
        .admin(
            "DELETE",
            &format!(
                "/api/v1/users/{id}/tokens/{}",
                token["id"].as_str().unwrap()
            ),
            None,
        )
        .await;

    let mut failures = Vec::new();
    for (method, path, least) in EXPECTED.iter().chain(EXPECTED_RETL.iter()) {
        let concrete = path
            .replace("{id}", "does-not-exist")
            .replace("{token_id}", "does-not-exist");
        let url = format!("{}{concrete}", server.url);
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let send = |auth: Option<String>| {
            let mut request = server.http.request(method.clone(), &url);
            if let Some(auth) = auth {
                request = request.header("authorization", auth);
            }
            if let Some(body) = body_for(method.as_str()) {
                request = request.json(&body);
            }
            request.send()
        };
        // Without a valid token: 401, whatever the route.
        for (label, auth) in [
            ("no token", None),
            ("revoked token", Some(format!("Bearer {revoked}"))),
            ("malformed header", Some("Token abc".to_owned())),
            ("empty bearer", Some("Bearer ".to_owned())),
        ] {
            let status = send(auth).await.unwrap().status().as_u16();
            if status != 401 {
                failures.push(format!(
                    "{method} {path} with {label}: {status}, expected 401"
                ));
            }
        }
        for (role, token) in &tokens {
            let role = role.unwrap();
            let status = send(Some(format!("Bearer {token}")))
                .await
                .unwrap()
                .status()
                .as_u16();
            let allowed = role >= *least;
            let ok = if allowed {
                !matches!(status, 401 | 403 | 500)
            } else {
                status == 403
            };
            if !ok {
                failures.push(format!(
                    "{method} {path} as {}: {status}, expected {}",
                    role.as_str(),
                    if allowed { "access" } else { "403" }
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} access failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[tokio::test]
async fn openapi_document_is_served_and_lists_every_route() {
    let server = TestServer::start().await;
    let response = server
        .http
        .get(format!("{}/api/v1/openapi.json", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let doc: serde_json::Value = response.json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for (method, path, _, _) in ACCESS.iter().chain(sluice::admin::RETL_ACCESS.iter()) {
        let op = &doc["paths"][path][method.as_str().to_lowercase()];
        assert!(op.is_object(), "{method} {path} missing from openapi.json");
        assert!(op["responses"].is_object());
    }
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    assert!(doc["components"]["schemas"]["DestinationView"].is_object());
}

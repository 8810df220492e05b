//! The Users and tokens console page over HTTP: owners add users who can then sign in, change
//! roles, set passwords and remove users (typing the email); API tokens are shown once, work
//! as bearer tokens and stop working when revoked; members and viewers see the controls
//! disabled and forged forms are refused.

use serde_json::Value;

use crate::common::TestServer;
use crate::console_client::{Console, audit_actions, element, tag};

async fn user_by_email(server: &TestServer, email: &str) -> Option<Value> {
    let (status, users) = server.admin("GET", "/api/v1/users", None).await;
    assert_eq!(status, 200, "{users}");
    users
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["email"] == email)
        .cloned()
}

async fn id_of(server: &TestServer, email: &str) -> String {
    user_by_email(server, email)
        .await
        .unwrap_or_else(|| panic!("no user {email}"))["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// A call to the admin API with a bearer token: its status.
async fn with_token(server: &TestServer, token: &str, method: &str, path: &str) -> u16 {
    server.admin_as(token, method, path, None).await.0
}

/// The token a console page shows once, after creating it.
fn secret_on(html: &str) -> String {
    let secret = element(html, "new-token");
    assert!(secret.starts_with("slc_"), "{secret}");
    secret
}

#[tokio::test]
async fn owners_manage_users() {
    let server = TestServer::start().await;
    let owner = Console::sign_in(&server, "owner").await;
    let viewer = Console::sign_in(&server, "viewer").await;

    let page = owner.get("/users").await;
    assert_eq!(page.status, 200);
    for email in ["owner@example.com", "viewer@example.com", "owner@localhost"] {
        assert!(page.html.contains(email), "{email} listed");
    }
    assert!(
        page.html
            .contains("<button type=\"submit\">Add user</button>")
    );
    assert!(!tag(&page.html, "user-name").contains("disabled"));

    // Invalid input comes back next to its field; the typed password is not sent back.
    let page = owner
        .post(
            "/users",
            &[
                ("name", "Jane"),
                ("email", "jane-at-example"),
                ("role", "member"),
                ("password", "jane-password-1"),
            ],
        )
        .await;
    assert_eq!(page.status, 400);
    assert!(
        element(&page.html, "user-email-error").contains("is not an email address"),
        "{}",
        element(&page.html, "user-email-error")
    );
    assert!(tag(&page.html, "user-email").contains("aria-invalid=\"true\""));
    assert!(tag(&page.html, "user-name").contains("value=\"Jane\""));
    assert!(!page.html.contains("jane-password-1"));
    let page = owner
        .post(
            "/users",
            &[
                ("name", "Jane"),
                ("email", "jane@example.com"),
                ("role", "member"),
                ("password", "short"),
            ],
        )
        .await;
    assert_eq!(page.status, 400);
    assert!(element(&page.html, "user-password-error").contains("10 to 1024 characters"));
    let page = owner
        .post(
            "/users",
            &[
                ("name", "Jane"),
                ("email", "jane@example.com"),
                ("role", "boss"),
            ],
        )
        .await;
    assert_eq!(page.status, 400);
    assert!(element(&page.html, "user-role-error").contains("Choose one of the listed roles"));
    assert!(user_by_email(&server, "jane@example.com").await.is_none());

    // An owner adds a member, who can then sign in with the password chosen.
    let page = owner
        .post(
            "/users",
            &[
                ("name", "Jane Doe"),
                ("email", "jane@example.com"),
                ("role", "member"),
                ("password", "jane-password-1"),
            ],
        )
        .await;
    assert_eq!(page.status, 303, "{}", page.html);
    assert!(page.location.starts_with("/users?ok="), "{}", page.location);
    let jane = user_by_email(&server, "jane@example.com")
        .await
        .expect("user created");
    assert_eq!(
        (&jane["name"], &jane["role"]),
        (&"Jane Doe".into(), &"member".into())
    );
    let jane_id = jane["id"].as_str().unwrap().to_owned();
    assert_eq!(
        Console::log_in(&server, "jane@example.com", "wrong password!")
            .await
            .err(),
        Some(401)
    );
    let jane_console = Console::log_in(&server, "jane@example.com", "jane-password-1")
        .await
        .expect("the new user signs in");
    let page = jane_console.get("/users").await;
    assert_eq!(page.status, 200);
    assert!(page.html.contains("Only owners can manage users"));
    assert!(tag(&page.html, "user-name").contains("disabled"));
    // Members cannot read or create tokens (the API's role table), and are told so.
    assert!(page.html.contains("Only owners can list API tokens"));
    assert!(tag(&page.html, "token-name").contains("disabled"));

    // The same email twice is refused next to the email.
    let page = owner
        .post(
            "/users",
            &[
                ("name", "Jane again"),
                ("email", "jane@example.com"),
                ("role", "viewer"),
            ],
        )
        .await;
    assert_eq!(page.status, 400);
    assert!(element(&page.html, "user-email-error").contains("already exists"));

    // Change the role from the list: it applies to Jane's next request.
    let page = owner
        .post(
            &format!("/users/{jane_id}/role"),
            &[("role", "viewer"), ("from", "list")],
        )
        .await;
    assert_eq!(page.status, 303, "{}", page.html);
    assert!(page.location.starts_with("/users?ok="), "{}", page.location);
    assert_eq!(
        user_by_email(&server, "jane@example.com").await.unwrap()["role"],
        "viewer"
    );
    assert!(
        jane_console
            .get("/sources")
            .await
            .html
            .contains("Viewers cannot change sources")
    );

    // A new password from the user's page; a short one is refused next to the field.
    let page = owner
        .post(
            &format!("/users/{jane_id}/password"),
            &[("password", "tiny")],
        )
        .await;
    assert_eq!(page.status, 400);
    assert!(element(&page.html, "subject-password-error").contains("10 to 1024 characters"));
    assert!(!page.html.contains("value=\"tiny\""));
    let page = owner
        .post(
            &format!("/users/{jane_id}/password"),
            &[("password", "a-new-password-2")],
        )
        .await;
    assert_eq!(page.status, 303, "{}", page.html);
    assert!(
        Console::log_in(&server, "jane@example.com", "jane-password-1")
            .await
            .is_err()
    );
    assert!(
        Console::log_in(&server, "jane@example.com", "a-new-password-2")
            .await
            .is_ok()
    );

    // Viewers, and forms without this session's CSRF token, are refused and change nothing.
    let page = viewer.get("/users").await;
    assert_eq!(page.status, 200);
    assert!(tag(&page.html, "user-name").contains("disabled"));
    assert!(page.html.contains("Only owners can manage users"));
    assert!(
        !page
            .html
            .contains(&format!("action=\"/users/{jane_id}/role\""))
    );
    assert!(
        !page
            .html
            .contains(&format!("action=\"/users/{jane_id}/delete\""))
    );
    let new_user = [
        ("name", "Mallory"),
        ("email", "mallory@example.com"),
        ("role", "owner"),
        ("password", "mallory-password"),
    ];
    for (who, answer) in [
        ("viewer", viewer.post("/users", &new_user).await),
        ("forged", owner.forge("/users", &new_user).await),
        (
            "viewer",
            viewer
                .post(&format!("/users/{jane_id}/role"), &[("role", "owner")])
                .await,
        ),
        (
            "forged",
            owner
                .forge(&format!("/users/{jane_id}/role"), &[("role", "owner")])
                .await,
        ),
        (
            "viewer",
            viewer
                .post(
                    &format!("/users/{jane_id}/password"),
                    &[("password", "taken-over-password")],
                )
                .await,
        ),
        (
            "viewer",
            viewer
                .post(
                    &format!("/users/{jane_id}/delete"),
                    &[("confirm_email", "jane@example.com")],
                )
                .await,
        ),
        (
            "forged",
            owner
                .forge(
                    &format!("/users/{jane_id}/delete"),
                    &[("confirm_email", "jane@example.com")],
                )
                .await,
        ),
    ] {
        assert_eq!(answer.status, 403, "{who}: {}", answer.html);
    }
    assert!(
        user_by_email(&server, "mallory@example.com")
            .await
            .is_none()
    );
    assert_eq!(
        user_by_email(&server, "jane@example.com").await.unwrap()["role"],
        "viewer"
    );
    assert!(
        Console::log_in(&server, "jane@example.com", "taken-over-password")
            .await
            .is_err()
    );

    // Removing needs the exact email; afterwards Jane's session no longer works.
    let page = owner.get("/users").await;
    assert!(page.html.contains("data-confirm=\"jane@example.com\""));
    let page = owner
        .post(
            &format!("/users/{jane_id}/delete"),
            &[("confirm_email", "Jane Doe"), ("from", "list")],
        )
        .await;
    assert!(
        page.location.starts_with("/users?error="),
        "{}",
        page.location
    );
    assert!(user_by_email(&server, "jane@example.com").await.is_some());
    let page = owner
        .post(
            &format!("/users/{jane_id}/delete"),
            &[("confirm_email", "jane@example.com"), ("from", "list")],
        )
        .await;
    assert!(page.location.starts_with("/users?ok="), "{}", page.location);
    assert!(user_by_email(&server, "jane@example.com").await.is_none());
    let page = jane_console.get("/users").await;
    assert_eq!(page.status, 303);
    assert!(page.location.starts_with("/login"), "{}", page.location);

    let actions = audit_actions(&server, "user").await;
    for action in [
        "user.created",
        "user.updated",
        "user.password_changed",
        "user.deleted",
    ] {
        assert!(
            actions.contains(&(action.to_owned(), owner.email.clone())),
            "{action} by {} in {actions:?}",
            owner.email
        );
    }

    // The last owner cannot be demoted: the store's rule, shown as a message. (Last, because
    // the test's own API token belongs to the owner demoted here.)
    let bootstrap = id_of(&server, "owner@localhost").await;
    let page = owner
        .post(
            &format!("/users/{bootstrap}/role"),
            &[("role", "member"), ("from", "list")],
        )
        .await;
    assert!(page.location.starts_with("/users?ok="), "{}", page.location);
    let me = id_of(&server, "owner@example.com").await;
    let page = owner
        .post(&format!("/users/{me}/role"), &[("role", "viewer")])
        .await;
    assert!(
        page.location.starts_with(&format!("/users/{me}?error=")),
        "{}",
        page.location
    );
    let shown = owner.get(&page.location).await;
    assert!(
        shown.html.contains("Cannot demote the last owner"),
        "{}",
        shown.html
    );
    assert_eq!(
        user_by_email(&server, "owner@example.com").await.unwrap()["role"],
        "owner"
    );
}

#[tokio::test]
async fn tokens_are_shown_once_and_revoked() {
    let server = TestServer::start().await;
    let owner = Console::sign_in(&server, "owner").await;
    let member = Console::sign_in(&server, "member").await;
    let viewer = Console::sign_in(&server, "viewer").await;
    let owner_id = id_of(&server, "owner@example.com").await;
    let viewer_id = id_of(&server, "viewer@example.com").await;

    let page = owner.get("/users").await;
    assert!(page.html.contains("Your API tokens"));
    assert!(page.html.contains("No API tokens yet."));

    // A token name is required; the error is next to the field.
    let page = owner
        .post(
            &format!("/users/{owner_id}/tokens"),
            &[("name", " "), ("from", "list")],
        )
        .await;
    assert_eq!(page.status, 400);
    assert!(element(&page.html, "token-name-error").contains("1 to 100 characters"));

    // Created: the secret is on the answer page, with a copy button, and never again.
    let page = owner
        .post(
            &format!("/users/{owner_id}/tokens"),
            &[("name", "CI deploy"), ("from", "list")],
        )
        .await;
    assert_eq!(page.status, 200, "{}", page.html);
    let secret = secret_on(&page.html);
    assert!(page.html.contains("data-copy=\"#new-token\""));
    assert!(page.html.contains("it will not be shown again"));
    let again = owner.get("/users").await;
    assert!(!again.html.contains(&secret), "the secret is shown again");
    assert!(!again.html.contains("id=\"new-token\""));
    let (_, tokens) = server
        .admin("GET", &format!("/api/v1/users/{owner_id}/tokens"), None)
        .await;
    let token_id = tokens[0]["id"].as_str().unwrap().to_owned();
    let row = element(&again.html, &format!("token-{token_id}"));
    assert!(row.contains("CI deploy"), "{row}");
    assert!(
        again
            .html
            .contains(&format!("{}…", tokens[0]["prefix"].as_str().unwrap()))
    );
    assert!(again.html.contains("Never"));

    // It works as a bearer token, with the owner's role; the page then shows when it was used.
    assert_eq!(
        with_token(&server, &secret, "GET", "/api/v1/sources").await,
        200
    );
    assert_eq!(
        with_token(&server, &secret, "GET", "/api/v1/audit").await,
        200
    );
    let page = owner.get("/users").await;
    assert!(!page.html.contains("Never"), "last use shown");

    // Revoked: the next request with it is refused.
    let page = owner
        .post(
            &format!("/users/{owner_id}/tokens/{token_id}/revoke"),
            &[("from", "list")],
        )
        .await;
    assert_eq!(page.status, 303, "{}", page.html);
    assert!(page.location.starts_with("/users?ok="), "{}", page.location);
    assert_eq!(
        with_token(&server, &secret, "GET", "/api/v1/sources").await,
        401
    );
    let page = owner.get("/users").await;
    assert!(page.html.contains("Revoked"));
    assert!(!page.html.contains(&format!("/tokens/{token_id}/revoke")));

    // Owners create and revoke other users' tokens from their page; the token has their role.
    let page = owner.get(&format!("/users/{viewer_id}")).await;
    assert_eq!(page.status, 200);
    assert!(
        page.html.contains("The viewer’s API tokens"),
        "{}",
        page.html
    );
    let page = owner
        .post(
            &format!("/users/{viewer_id}/tokens"),
            &[("name", "Dashboard"), ("from", "user")],
        )
        .await;
    assert_eq!(page.status, 200, "{}", page.html);
    let viewer_secret = secret_on(&page.html);
    assert!(page.html.contains("The viewer’s API tokens"));
    assert_eq!(
        with_token(&server, &viewer_secret, "GET", "/api/v1/sources").await,
        200
    );
    assert_eq!(
        server
            .admin_as(
                &viewer_secret,
                "POST",
                "/api/v1/sources",
                Some(serde_json::json!({"name": "x"}))
            )
            .await
            .0,
        403
    );
    assert!(
        !owner
            .get(&format!("/users/{viewer_id}"))
            .await
            .html
            .contains(&viewer_secret)
    );

    // Members and viewers see no tokens and cannot create or revoke any (owners only, as in
    // the API); forged forms are refused.
    for who in [&member, &viewer] {
        let page = who.get("/users").await;
        assert!(page.html.contains("Only owners can list API tokens"));
        assert!(tag(&page.html, "token-name").contains("disabled"));
        assert!(
            page.html
                .contains("creating and revoking API tokens is for owners")
        );
    }
    let (_, tokens) = server
        .admin("GET", &format!("/api/v1/users/{viewer_id}/tokens"), None)
        .await;
    let viewer_token = tokens[0]["id"].as_str().unwrap().to_owned();
    for (who, answer) in [
        (
            "viewer",
            viewer
                .post(&format!("/users/{viewer_id}/tokens"), &[("name", "Mine")])
                .await,
        ),
        (
            "member",
            member
                .post(&format!("/users/{owner_id}/tokens"), &[("name", "Steal")])
                .await,
        ),
        (
            "forged",
            owner
                .forge(&format!("/users/{owner_id}/tokens"), &[("name", "Forged")])
                .await,
        ),
        (
            "viewer",
            viewer
                .post(
                    &format!("/users/{viewer_id}/tokens/{viewer_token}/revoke"),
                    &[],
                )
                .await,
        ),
    ] {
        assert_eq!(answer.status, 403, "{who}: {}", answer.html);
        assert!(!answer.html.contains("slc_"), "{who} got a token");
    }
    let (_, owner_tokens) = server
        .admin("GET", &format!("/api/v1/users/{owner_id}/tokens"), None)
        .await;
    assert_eq!(owner_tokens.as_array().unwrap().len(), 1);
    assert_eq!(
        with_token(&server, &viewer_secret, "GET", "/api/v1/sources").await,
        200
    );

    // Revoking from the user's page comes back to it.
    let page = owner
        .post(
            &format!("/users/{viewer_id}/tokens/{viewer_token}/revoke"),
            &[("from", "user")],
        )
        .await;
    assert!(
        page.location
            .starts_with(&format!("/users/{viewer_id}?ok=")),
        "{}",
        page.location
    );
    assert_eq!(
        with_token(&server, &viewer_secret, "GET", "/api/v1/sources").await,
        401
    );

    let actions = audit_actions(&server, "token").await;
    assert_eq!(
        actions
            .iter()
            .filter(|(a, actor)| a == "token.created" && *actor == owner.email)
            .count(),
        2,
        "{actions:?}"
    );
    assert_eq!(
        actions
            .iter()
            .filter(|(a, actor)| a == "token.revoked" && *actor == owner.email)
            .count(),
        2,
        "{actions:?}"
    );
}

//! The `sluice` command-line client, run as the real binary against a real server: resource
//! commands, the category-disable confirmation on stdin, error hints, and config as code
//! (`export` → `apply`, idempotence, the audit trail, unknown fields with their line).
//!
//! The binary is run with `tokio::process`, never `std::process::Command::output()`: the
//! server runs on this test's single-threaded runtime and a blocking wait would starve it.

use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

use crate::common::{OWNER_TOKEN, TestServer};

/// What one run of the binary did.
struct Run {
    success: bool,
    stdout: String,
    stderr: String,
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "success: {}\n--- stdout\n{}--- stderr\n{}",
            self.success, self.stdout, self.stderr
        )
    }
}

/// Run `sluice ARGS --url <server> --token TOKEN`, with `stdin` piped in and extra `env`.
async fn sluice_with(
    url: &str,
    token: &str,
    args: &[&str],
    stdin: Option<&str>,
    env: &[(&str, &str)],
) -> Run {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_sluice"));
    command
        .args(args)
        .args(["--url", url, "--token", token])
        .env_remove("SLUICE_URL")
        .env_remove("SLUICE_TOKEN")
        .envs(env.iter().copied())
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = command.spawn().expect("the sluice binary starts");
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("stdin is piped");
        pipe.write_all(input.as_bytes()).await.expect("write stdin");
        drop(pipe);
    }
    let output = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("sluice finishes within 60 s")
        .expect("sluice ran");
    Run {
        success: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

async fn sluice(server: &TestServer, args: &[&str]) -> Run {
    sluice_with(&server.url, OWNER_TOKEN, args, None, &[]).await
}

/// Run and insist on success.
async fn ok(server: &TestServer, args: &[&str]) -> Run {
    let run = sluice(server, args).await;
    assert!(run.success, "sluice {args:?}\n{run:?}");
    run
}

fn json_of(run: &Run) -> Value {
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{run:?}"))
}

#[tokio::test]
async fn sources_and_destinations() {
    let server = TestServer::start().await;

    let created = ok(&server, &["sources", "create", "Web", "--rate-limit", "10"]).await;
    assert!(created.stdout.contains("Web"), "{created:?}");
    assert!(created.stdout.contains("WRITE KEY"), "{created:?}");

    let list = ok(&server, &["sources", "list"]).await;
    assert!(list.stdout.starts_with("ID "), "{list:?}");
    assert!(list.stdout.contains("Default source"), "{list:?}");
    let web_line = list
        .stdout
        .lines()
        .find(|l| l.contains("Web"))
        .expect("Web listed");
    assert!(web_line.contains("10"), "{web_line}");

    let sources = json_of(&ok(&server, &["sources", "list", "--json"]).await);
    let web = sources
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "Web")
        .expect("Web in JSON")
        .clone();
    assert_eq!(web["rateLimitPerSecond"], 10);

    let destination = json_of(
        &ok(
            &server,
            &[
                "destinations",
                "create",
                "--name",
                "Hooks",
                "--integration",
                "Webhooks",
                "--type",
                "webhook",
                "--settings",
                r#"{"url": "http://127.0.0.1:9/in", "secret": "s3cr3t"}"#,
                "--no-enforce-consent",
                "--json",
            ],
        )
        .await,
    );
    assert_eq!(destination["settings"]["secret"], "********");
    assert_eq!(destination["enforceConsent"], false);
    let list = ok(&server, &["destinations", "list"]).await;
    assert!(
        list.stdout.contains("Hooks") && list.stdout.contains("not enforced"),
        "{list:?}"
    );

    // Bad JSON is caught before anything is sent, with an example.
    let bad = sluice(
        &server,
        &[
            "destinations",
            "create",
            "--name",
            "X",
            "--integration",
            "X",
            "--type",
            "webhook",
            "--settings",
            "{url: nope}",
        ],
    )
    .await;
    assert!(!bad.success);
    assert!(
        bad.stderr.contains("--settings is not valid JSON") && bad.stderr.contains("hint:"),
        "{bad:?}"
    );
    // The server's validation message comes through.
    let invalid = sluice(
        &server,
        &[
            "destinations",
            "create",
            "--name",
            "X",
            "--integration",
            "X",
            "--type",
            "pigeon",
        ],
    )
    .await;
    assert!(!invalid.success);
    assert!(
        invalid.stderr.contains("unknown destination type"),
        "{invalid:?}"
    );

    let id = web["id"].as_str().unwrap();
    ok(&server, &["sources", "delete", id]).await;
    let list = ok(&server, &["sources", "list"]).await;
    assert!(!list.stdout.contains("Web"), "{list:?}");
    let again = sluice(&server, &["sources", "delete", id]).await;
    assert!(!again.success);
    assert!(again.stderr.contains("HTTP 404"), "{again:?}");
}

#[tokio::test]
async fn categories_disable_asks_for_the_name() {
    let server = TestServer::start().await;
    let destination = server
        .webhook("Ads", "Google Ads", "http://127.0.0.1:9/ads", json!({}))
        .await;

    let created = ok(
        &server,
        &[
            "categories",
            "create",
            "--id",
            "C0004",
            "--name",
            "Advertising",
            "--destination",
            &destination,
        ],
    )
    .await;
    assert!(created.stdout.contains("Advertising"), "{created:?}");
    let list = ok(&server, &["categories", "list"]).await;
    assert!(
        list.stdout.contains(&format!("Ads ({destination})")),
        "{list:?}"
    );

    let enabled = |server: &TestServer| {
        let server_url = server.url.clone();
        async move {
            let category: Value = reqwest::Client::new()
                .get(format!("{server_url}/api/v1/consent/categories/C0004"))
                .bearer_auth(OWNER_TOKEN)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            category["enabled"].as_bool().unwrap()
        }
    };

    // A wrong name is refused and nothing changes.
    let wrong = sluice_with(
        &server.url,
        OWNER_TOKEN,
        &["categories", "disable", "C0004"],
        Some("Advertisement\n"),
        &[],
    )
    .await;
    assert!(!wrong.success, "{wrong:?}");
    assert!(
        wrong.stderr.contains("Type the category's name to confirm"),
        "{wrong:?}"
    );
    assert!(
        wrong.stderr.contains("category C0004 was not disabled"),
        "{wrong:?}"
    );
    assert!(enabled(&server).await);

    // No answer at all is refused too.
    let silent = sluice_with(
        &server.url,
        OWNER_TOKEN,
        &["categories", "disable", "C0004"],
        Some(""),
        &[],
    )
    .await;
    assert!(!silent.success);
    assert!(silent.stderr.contains("--confirm-name"), "{silent:?}");
    assert!(enabled(&server).await);

    // The right name, typed on stdin.
    let right = sluice_with(
        &server.url,
        OWNER_TOKEN,
        &["categories", "disable", "C0004"],
        Some("Advertising\n"),
        &[],
    )
    .await;
    assert!(right.success, "{right:?}");
    assert!(!enabled(&server).await);

    ok(&server, &["categories", "enable", "C0004"]).await;
    assert!(enabled(&server).await);
    // Scripts pass the name as a flag.
    ok(
        &server,
        &[
            "categories",
            "disable",
            "C0004",
            "--confirm-name",
            "Advertising",
        ],
    )
    .await;
    assert!(!enabled(&server).await);

    let mapped = json_of(
        &ok(
            &server,
            &["categories", "map", "C0004", "--clear", "--json"],
        )
        .await,
    );
    assert_eq!(mapped["destinations"], json!([]));
    let mapped = json_of(
        &ok(
            &server,
            &[
                "categories",
                "map",
                "C0004",
                "--destination",
                &destination,
                "--json",
            ],
        )
        .await,
    );
    assert_eq!(mapped["destinations"], json!([destination]));
    ok(&server, &["categories", "delete", "C0004"]).await;
    let list = ok(&server, &["categories", "list"]).await;
    assert!(list.stdout.contains("No consent categories"), "{list:?}");
}

#[tokio::test]
async fn users_tokens_and_error_hints() {
    let server = TestServer::start().await;
    let user = json_of(
        &sluice_with(
            &server.url,
            OWNER_TOKEN,
            &[
                "users",
                "create",
                "--email",
                "viv@example.com",
                "--name",
                "Viv",
                "--role",
                "viewer",
                "--password-stdin",
                "--json",
            ],
            Some("correct horse battery\n"),
            &[],
        )
        .await,
    );
    assert_eq!(user["hasPassword"], true);
    let user_id = user["id"].as_str().unwrap();
    let users = ok(&server, &["users", "list"]).await;
    assert!(users.stdout.contains("viv@example.com"), "{users:?}");

    // The token alone on stdout, the warning on stderr.
    let created = ok(&server, &["tokens", "create", user_id, "laptop"]).await;
    assert!(
        created.stderr.contains("shown only this once"),
        "{created:?}"
    );
    let viewer_token = created.stdout.trim().to_owned();
    assert!(!viewer_token.is_empty() && !viewer_token.contains(' '));
    let tokens = ok(&server, &["tokens", "list", user_id]).await;
    assert!(tokens.stdout.contains("laptop"), "{tokens:?}");
    assert!(!tokens.stdout.contains(&viewer_token));

    // A viewer reads, and is told clearly what it may not do.
    let list = sluice_with(&server.url, &viewer_token, &["sources", "list"], None, &[]).await;
    assert!(list.success, "{list:?}");
    let refused = sluice_with(
        &server.url,
        &viewer_token,
        &["sources", "create", "Nope"],
        None,
        &[],
    )
    .await;
    assert!(!refused.success);
    assert!(
        refused.stderr.contains("Viewers cannot change sources")
            && refused.stderr.contains("HTTP 403")
            && refused
                .stderr
                .contains("hint: your token's role does not allow this"),
        "{refused:?}"
    );

    // Revoked: 401 with the hint about the token.
    let token_id = json_of(&ok(&server, &["tokens", "list", user_id, "--json"]).await)[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    ok(&server, &["tokens", "revoke", user_id, &token_id]).await;
    let revoked = sluice_with(&server.url, &viewer_token, &["sources", "list"], None, &[]).await;
    assert!(!revoked.success);
    assert!(
        revoked
            .stderr
            .contains("hint: check --token / SLUICE_TOKEN"),
        "{revoked:?}"
    );

    // No server at that address.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let nowhere = format!("http://127.0.0.1:{port}");
    let down = sluice_with(&nowhere, OWNER_TOKEN, &["sources", "list"], None, &[]).await;
    assert!(!down.success);
    assert!(
        down.stderr
            .contains(&format!("is `sluice serve` running at {nowhere}?")),
        "{down:?}"
    );

    // No token at all.
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_sluice"));
    let output = command
        .args(["sources", "list", "--url", &server.url])
        .env_remove("SLUICE_TOKEN")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("pass --token or set SLUICE_TOKEN"));
}

#[tokio::test]
async fn export_apply_round_trip_and_audit() {
    let server = TestServer::start().await;
    let hooks = server
        .webhook(
            "Hooks",
            "Webhooks",
            "http://127.0.0.1:9/in",
            json!({"secret": "old-secret", "headers": {"Authorization": "Bearer abc"}}),
        )
        .await;
    server
        .create(
            "/api/v1/consent/categories",
            json!({"id": "C0002", "name": "Analytics", "destinations": [hooks]}),
        )
        .await;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("workspace.yaml");
    let path_str = path.to_str().unwrap();
    let exported = ok(&server, &["export", "-o", path_str]).await;
    assert!(exported.stderr.contains("Wrote"), "{exported:?}");
    let yaml = std::fs::read_to_string(&path).unwrap();
    assert!(yaml.contains("name: Hooks"), "{yaml}");
    assert!(
        !yaml.contains("old-secret") && !yaml.contains("Bearer abc"),
        "{yaml}"
    );
    assert!(
        yaml.contains("'********'") || yaml.contains("\"********\""),
        "{yaml}"
    );
    assert!(
        yaml.contains("- Hooks"),
        "categories name destinations: {yaml}"
    );

    // Export then apply: nothing to do.
    let dry = ok(&server, &["apply", "-f", path_str, "--dry-run"]).await;
    assert!(dry.stdout.contains("No changes"), "{dry:?}");

    // A new destination whose secret comes from the environment, mapped to a new category.
    // The export lists destinations right before `consentCategories:`, lists unindented.
    assert!(yaml.contains("\ndestinations:\n- name: Hooks\n"), "{yaml}");
    let edited = yaml.replace(
        "consentCategories:\n",
        "- name: Ads archive\n  integration: Google Ads\n  type: webhook\n  settings:\n    \
         url: http://127.0.0.1:9/ads\n    secret: ${ADS_SECRET}\n\
         consentCategories:\n- id: C0004\n  name: Advertising\n  destinations:\n  - Ads archive\n",
    );
    std::fs::write(&path, &edited).unwrap();

    // Without the variable: an error naming it, nothing changed.
    let missing = ok_or_fail(&server, &["apply", "-f", path_str], &[]).await;
    assert!(!missing.success);
    assert!(
        missing
            .stderr
            .contains("environment variable ADS_SECRET is not set"),
        "{missing:?}"
    );

    let env = [("ADS_SECRET", "ads-secret-1")];
    let dry = ok_or_fail(&server, &["apply", "-f", path_str, "--dry-run"], &env).await;
    assert!(dry.success, "{dry:?}");
    assert!(
        dry.stdout.contains("+ create destination \"Ads archive\""),
        "{dry:?}"
    );
    assert!(
        dry.stdout
            .contains("+ create category C0004 \"Advertising\" (destinations: [Ads archive])"),
        "{dry:?}"
    );
    assert!(
        dry.stdout.contains("= destination \"Hooks\" (no change)"),
        "{dry:?}"
    );
    assert!(
        dry.stdout.contains("Dry run: nothing was changed"),
        "{dry:?}"
    );
    let (_, destinations) = server.admin("GET", "/api/v1/destinations", None).await;
    assert_eq!(
        destinations.as_array().unwrap().len(),
        1,
        "dry run changed nothing"
    );

    let applied = ok_or_fail(&server, &["apply", "-f", path_str], &env).await;
    assert!(applied.success, "{applied:?}");
    assert!(applied.stdout.contains("Applied 2 changes"), "{applied:?}");

    // The secret from the environment is what the server stores; the old one was kept.
    let stored = server.app.store.destinations().await.unwrap();
    let ads = stored.iter().find(|d| d.name == "Ads archive").unwrap();
    assert_eq!(ads.settings["secret"], "ads-secret-1");
    let old = stored.iter().find(|d| d.name == "Hooks").unwrap();
    assert_eq!(old.settings["secret"], "old-secret");
    let (_, category) = server
        .admin("GET", "/api/v1/consent/categories/C0004", None)
        .await;
    assert_eq!(category["destinations"], json!([ads.id]));

    // In the audit trail, by the token's user.
    let (_, me) = server.admin("GET", "/api/v1/me", None).await;
    let (_, audit) = server
        .admin("GET", "/api/v1/audit?resourceType=destination", None)
        .await;
    let created = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "destination.created" && e["resourceId"] == ads.id.as_str())
        .expect("destination.created in the audit trail");
    assert_eq!(created["actor"], me["email"]);
    let (_, audit) = server
        .admin("GET", "/api/v1/audit?action=category.created", None)
        .await;
    assert!(
        audit["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["resourceId"] == "C0004"),
        "{audit}"
    );
    // The CLI's tail shows them, oldest first.
    let tail = ok(&server, &["audit", "tail", "--resource-type", "category"]).await;
    let lines: Vec<&str> = tail.stdout.lines().collect();
    let c2 = lines
        .iter()
        .position(|l| l.contains("C0002"))
        .expect("C0002");
    let c4 = lines
        .iter()
        .position(|l| l.contains("C0004"))
        .expect("C0004");
    assert!(c2 < c4, "{tail:?}");

    // Applying the same file again changes nothing.
    let again = ok_or_fail(&server, &["apply", "-f", path_str], &env).await;
    assert!(again.success, "{again:?}");
    assert!(again.stdout.contains("No changes"), "{again:?}");
    // And a fresh export agrees with the server.
    let path2 = dir.path().join("again.yaml");
    ok(&server, &["export", "-o", path2.to_str().unwrap()]).await;
    let dry = ok(
        &server,
        &["apply", "-f", path2.to_str().unwrap(), "--dry-run"],
    )
    .await;
    assert!(dry.stdout.contains("No changes"), "{dry:?}");

    // An update shows the changed field.
    std::fs::write(&path, edited.replace("name: Advertising", "name: Ads")).unwrap();
    let rename = ok_or_fail(&server, &["apply", "-f", path_str], &env).await;
    assert!(rename.success, "{rename:?}");
    assert!(
        rename.stdout.contains("~ update category C0004 \"Ads\"")
            && rename.stdout.contains("name: \"Advertising\" -> \"Ads\""),
        "{rename:?}"
    );
}

/// Run apply-like commands with env, whatever the outcome.
async fn ok_or_fail(server: &TestServer, args: &[&str], env: &[(&str, &str)]) -> Run {
    sluice_with(&server.url, OWNER_TOKEN, args, None, env).await
}

#[tokio::test]
async fn misspelled_fields_name_the_field_and_line() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("workspace.yaml");
    std::fs::write(
        &path,
        "sources:\n  - name: Web\ndestinations:\n  - name: Hooks\n    integraton: Webhooks\n    type: webhook\n",
    )
    .unwrap();
    let run = sluice(&server, &["apply", "-f", path.to_str().unwrap()]).await;
    assert!(!run.success, "{run:?}");
    assert!(
        run.stderr.contains("unknown field `integraton`") && run.stderr.contains("line 5"),
        "{run:?}"
    );
    // Nothing was created.
    let (_, sources) = server.admin("GET", "/api/v1/sources", None).await;
    assert_eq!(sources.as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn audit_tail_follows_new_entries() {
    use tokio::io::AsyncBufReadExt;

    let server = TestServer::start().await;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["audit", "tail", "--follow", "--json", "-n", "1"])
        .args(["--url", &server.url, "--token", OWNER_TOKEN])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut next = async || -> Value {
        let line = tokio::time::timeout(Duration::from_secs(15), lines.next_line())
            .await
            .expect("a line within 15 s")
            .unwrap()
            .expect("tail still running");
        serde_json::from_str(&line).unwrap()
    };
    // The latest entry of the first start, then what happens next.
    let first = next().await;
    server
        .create("/api/v1/sources", json!({"name": "Followed"}))
        .await;
    let created = next().await;
    assert_eq!(created["action"], "source.created");
    assert!(created["id"].as_i64() > first["id"].as_i64());
    child.kill().await.unwrap();
}

#[tokio::test]
async fn filters_test_locally_then_set_and_get_through_the_server() {
    let server = TestServer::start().await;
    let order = r#"{"type": "track", "event": "Order Completed",
        "properties": {"total": 5, "email": "ada@example.com"}}"#;
    let test = |args: &'static [&'static str]| {
        let server = &server;
        async move { sluice_with(&server.url, OWNER_TOKEN, args, Some(order), &[]).await }
    };

    // One rule from the command line: a cheap order is dropped.
    let dropped = test(&[
        "filters",
        "test",
        "--if",
        r#"event = "Order Completed" and properties.total < 10"#,
        "--event",
        "-",
    ])
    .await;
    assert!(dropped.success, "{dropped:?}");
    assert!(dropped.stdout.contains("rule 1: matches"), "{dropped:?}");
    assert!(dropped.stdout.contains("FILTERED_BY_RULES"), "{dropped:?}");

    // drop-properties: delivered without the email, as JSON for scripts.
    let redacted = test(&[
        "filters",
        "test",
        "--if",
        "properties.email != null",
        "--action",
        "drop-properties",
        "--field",
        "properties.email",
        "--event",
        "-",
        "--json",
    ])
    .await;
    assert!(redacted.success, "{redacted:?}");
    let result = json_of(&redacted);
    assert_eq!(result["matched"], json!([true]), "{result}");
    assert_eq!(
        result["event"]["properties"],
        json!({"total": 5}),
        "{result}"
    );

    // A condition with a syntax error points at the column.
    let bad = test(&[
        "filters",
        "test",
        "--if",
        "properties.total << 10",
        "--event",
        "-",
    ])
    .await;
    assert!(!bad.success, "{bad:?}");
    assert!(bad.stderr.contains('^'), "{bad:?}");

    // Rules saved on a destination through the server, read back, then tested by name.
    server
        .webhook("Ads", "Google Ads", "http://127.0.0.1:9/ads", json!({}))
        .await;
    let rules = r#"
- if: 'event = "Order Completed" and properties.total < 10'
  action: drop
"#;
    let set = sluice_with(
        &server.url,
        OWNER_TOKEN,
        &["filters", "set", "Ads", "--rules", "-"],
        Some(rules),
        &[],
    )
    .await;
    assert!(set.success, "{set:?}");
    assert!(set.stdout.contains("1 filter rule"), "{set:?}");
    let got = json_of(&ok(&server, &["filters", "get", "Ads", "--json"]).await);
    assert_eq!(got.as_array().map(Vec::len), Some(1), "{got}");
    assert_eq!(got[0]["action"], "drop", "{got}");
    let by_name = test(&["filters", "test", "--destination", "Ads", "--event", "-"]).await;
    assert!(by_name.success, "{by_name:?}");
    assert!(by_name.stdout.contains("FILTERED_BY_RULES"), "{by_name:?}");

    // An unknown destination says how to find one.
    let missing = sluice(&server, &["filters", "get", "Nope"]).await;
    assert!(!missing.success);
    assert!(
        missing.stderr.contains("sluice destinations list"),
        "{missing:?}"
    );
}

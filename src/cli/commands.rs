//! The resource commands (`sources`, `destinations`, `categories`, `users`, `tokens`,
//! `audit`) and the entry points of `export` and `apply`.
//!
//! Each command makes one or a few admin API calls and prints the result: a table, or with
//! `--json` the server's JSON unchanged. Prompts and one-time notices go to standard error.

use std::collections::HashMap;
use std::io::{IsTerminal as _, Write as _};
use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use serde_json::{Value, json};

use super::apply::{self, ApplyOptions};
use super::client::{
    AuditEntry, AuditPage, Category, Client, ClientError, Destination, Source, Token, User, encode,
};
use super::output::{Table, or_dash, print_json, yes_no};
use super::state::ServerState;
use super::workspace_file::WorkspaceFile;
use super::{
    ApplyArgs, AuditArgs, AuditCommand, CategoriesArgs, CategoriesCommand, Connection,
    DestinationsArgs, DestinationsCommand, ExportArgs, SourcesArgs, SourcesCommand, TailArgs,
    TokensArgs, TokensCommand, UsersArgs, UsersCommand,
};

/// How often `audit tail --follow` polls.
const FOLLOW_EVERY: Duration = Duration::from_secs(2);

fn connect(connection: &Connection) -> Result<Client, ClientError> {
    Client::new(&connection.url, connection.token.as_deref())
}

/// Decode a JSON answer for a table; the CLI and the server are built together, so a shape
/// mismatch means `--url` points at something else.
fn decode<T: serde::de::DeserializeOwned>(value: Value, what: &str) -> anyhow::Result<T> {
    serde_json::from_value(value).with_context(|| {
        format!("the server's answer does not look like Sluice's {what}; is --url a Sluice server of the same version?")
    })
}

/// Read one line from standard input, without its line ending; `None` at end of input.
async fn read_line() -> anyhow::Result<Option<String>> {
    tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        let n = std::io::stdin()
            .read_line(&mut line)
            .context("cannot read standard input")?;
        Ok(if n == 0 {
            None
        } else {
            Some(line.trim_end_matches(['\n', '\r']).to_owned())
        })
    })
    .await
    .context("reading standard input failed")?
}

pub async fn sources(args: SourcesArgs) -> anyhow::Result<()> {
    let client = connect(&args.connection)?;
    let json = args.output.json;
    match args.command {
        SourcesCommand::List => {
            let value = client.get_value("/api/v1/sources").await?;
            if json {
                print_json(&value);
            } else {
                source_table(&decode::<Vec<Source>>(value, "sources")?).print("No sources.");
            }
        }
        SourcesCommand::Create { name, rate_limit } => {
            let mut body = json!({"name": name});
            if let Some(limit) = rate_limit {
                body["rateLimitPerSecond"] = json!(limit);
            }
            let value = client.post("/api/v1/sources", &body).await?;
            if json {
                print_json(&value);
            } else {
                let source: Source = decode(value, "sources")?;
                source_table(std::slice::from_ref(&source)).print("");
                eprintln!(
                    "Send events with the write key as the Basic username: curl -u {}: {}/v1/track -d '{{…}}'",
                    source.write_key,
                    client.base_url()
                );
            }
        }
        SourcesCommand::Delete { id } => {
            client
                .delete(&format!("/api/v1/sources/{}", encode(&id)))
                .await?;
            if !json {
                println!("Deleted source {id}.");
            }
        }
    }
    Ok(())
}

fn source_table(sources: &[Source]) -> Table {
    let mut t = Table::new(&[
        "ID",
        "NAME",
        "ENABLED",
        "RATE LIMIT/S",
        "MISSING CONSENT",
        "WRITE KEY",
    ]);
    for s in sources {
        t.row(vec![
            s.id.clone(),
            s.name.clone(),
            yes_no(s.enabled),
            or_dash(s.rate_limit_per_second),
            s.missing_consent_policy.map_or_else(
                || "(workspace)".to_owned(),
                |p| super::output::compact(&json!(p)),
            ),
            s.write_key.clone(),
        ]);
    }
    t
}

pub async fn destinations(args: DestinationsArgs) -> anyhow::Result<()> {
    let client = connect(&args.connection)?;
    let json = args.output.json;
    match args.command {
        DestinationsCommand::List => {
            let value = client.get_value("/api/v1/destinations").await?;
            if json {
                print_json(&value);
            } else {
                destination_table(&decode::<Vec<Destination>>(value, "destinations")?)
                    .print("No destinations.");
            }
        }
        DestinationsCommand::Create {
            name,
            integration,
            kind,
            settings,
            no_enforce_consent,
        } => {
            let settings: Value = serde_json::from_str(&settings).map_err(|e| {
                anyhow::anyhow!(
                    "--settings is not valid JSON ({e})\nhint: quote the object for the shell, e.g. --settings '{{\"url\": \"https://hooks.example.com/in\"}}'"
                )
            })?;
            let mut body = json!({
                "name": name,
                "integration": integration,
                "type": kind,
                "settings": settings,
            });
            if no_enforce_consent {
                body["enforceConsent"] = json!(false);
            }
            let value = client.post("/api/v1/destinations", &body).await?;
            if json {
                print_json(&value);
            } else {
                let d: Destination = decode(value, "destinations")?;
                destination_table(std::slice::from_ref(&d)).print("");
            }
        }
        DestinationsCommand::Delete { id } => {
            client
                .delete(&format!("/api/v1/destinations/{}", encode(&id)))
                .await?;
            if !json {
                println!("Deleted destination {id}.");
            }
        }
    }
    Ok(())
}

fn destination_table(destinations: &[Destination]) -> Table {
    let mut t = Table::new(&[
        "ID",
        "NAME",
        "INTEGRATION",
        "TYPE",
        "ENABLED",
        "CONSENT",
        "STATE",
    ]);
    for d in destinations {
        let state = d
            .status
            .as_ref()
            .map_or_else(String::new, |s| match &s.last_error {
                Some(e) => format!("{} ({e})", s.state),
                None => s.state.clone(),
            });
        t.row(vec![
            d.id.clone(),
            d.name.clone(),
            d.integration.clone(),
            d.kind.clone(),
            yes_no(d.enabled),
            if d.enforce_consent {
                "enforced"
            } else {
                "not enforced"
            }
            .to_owned(),
            state,
        ]);
    }
    t
}

pub async fn categories(args: CategoriesArgs) -> anyhow::Result<()> {
    let client = connect(&args.connection)?;
    let json = args.output.json;
    let path = |id: &str| format!("/api/v1/consent/categories/{}", encode(id));
    let value = match args.command {
        CategoriesCommand::List => client.get_value("/api/v1/consent/categories").await?,
        CategoriesCommand::Create {
            id,
            name,
            destinations,
        } => {
            client
                .post(
                    "/api/v1/consent/categories",
                    &json!({"id": id, "name": name, "destinations": destinations}),
                )
                .await?
        }
        CategoriesCommand::Map {
            id,
            destinations,
            clear: _,
        } => {
            client
                .patch(&path(&id), &json!({"destinations": destinations}))
                .await?
        }
        CategoriesCommand::Enable { id } => {
            client
                .post(&format!("{}/enable", path(&id)), &json!({}))
                .await?
        }
        CategoriesCommand::Disable { id, confirm_name } => {
            let confirm_name = match confirm_name {
                Some(name) => name,
                None => ask_category_name(&client, &id).await?,
            };
            client
                .post(
                    &format!("{}/disable", path(&id)),
                    &json!({"confirmName": confirm_name}),
                )
                .await
                .with_context(|| format!("category {id} was not disabled"))?
        }
        CategoriesCommand::Delete { id } => {
            client.delete(&path(&id)).await?;
            if !json {
                println!("Deleted category {id}.");
            }
            return Ok(());
        }
    };
    if json {
        print_json(&value);
        return Ok(());
    }
    let categories: Vec<Category> = if value.is_array() {
        decode(value, "categories")?
    } else {
        vec![decode(value, "categories")?]
    };
    // Show destination names next to ids; without them (no access, error) ids alone do.
    let names: HashMap<String, String> = client
        .get::<Vec<Destination>>("/api/v1/destinations")
        .await
        .map(|ds| ds.into_iter().map(|d| (d.id, d.name)).collect())
        .unwrap_or_default();
    let mut t = Table::new(&["ID", "NAME", "ENABLED", "DESTINATIONS"]);
    for c in &categories {
        let mapped: Vec<String> = c
            .destinations
            .iter()
            .map(|id| match names.get(id) {
                Some(name) => format!("{name} ({id})"),
                None => id.clone(),
            })
            .collect();
        t.row(vec![
            c.id.clone(),
            c.name.clone(),
            yes_no(c.enabled),
            if mapped.is_empty() {
                "-".to_owned()
            } else {
                mapped.join(", ")
            },
        ]);
    }
    t.print("No consent categories.");
    Ok(())
}

/// Ask for the category's name on the terminal, as the console does before disabling.
async fn ask_category_name(client: &Client, id: &str) -> anyhow::Result<String> {
    let category: Category = client
        .get(&format!("/api/v1/consent/categories/{}", encode(id)))
        .await?;
    eprintln!(
        "Disabling category {} ({:?}) stops enforcing it: destinations mapped only to it will receive \
         events whatever the end user chose.",
        category.id, category.name
    );
    eprint!("Type the category's name to confirm: ");
    let _ = std::io::stderr().flush();
    let answer = read_line().await?;
    if !std::io::stdin().is_terminal() {
        // The typed line was not echoed; end the prompt's line.
        eprintln!();
    }
    match answer {
        Some(name) if !name.trim().is_empty() => Ok(name),
        _ => anyhow::bail!(
            "no name was typed; category {id} was not disabled\nhint: type the name when asked, or pass --confirm-name NAME in scripts"
        ),
    }
}

pub async fn users(args: UsersArgs) -> anyhow::Result<()> {
    let client = connect(&args.connection)?;
    let json = args.output.json;
    let value = match args.command {
        UsersCommand::List => client.get_value("/api/v1/users").await?,
        UsersCommand::Create {
            email,
            name,
            role,
            password_stdin,
        } => {
            let mut body = json!({"email": email, "name": name, "role": role.as_str()});
            if password_stdin {
                let password = read_line().await?.filter(|p| !p.is_empty()).ok_or_else(|| {
                    anyhow::anyhow!(
                        "--password-stdin: standard input is empty\nhint: printf '%s\\n' \"$PASSWORD\" | sluice users create … --password-stdin"
                    )
                })?;
                body["password"] = json!(password);
            }
            client.post("/api/v1/users", &body).await?
        }
    };
    if json {
        print_json(&value);
        return Ok(());
    }
    let users: Vec<User> = if value.is_array() {
        decode(value, "users")?
    } else {
        vec![decode(value, "users")?]
    };
    let mut t = Table::new(&["ID", "EMAIL", "NAME", "ROLE", "PASSWORD", "CREATED"]);
    for u in users {
        t.row(vec![
            u.id,
            u.email,
            u.name,
            u.role,
            yes_no(u.has_password),
            u.created_at,
        ]);
    }
    t.print("No users.");
    Ok(())
}

pub async fn tokens(args: TokensArgs) -> anyhow::Result<()> {
    let client = connect(&args.connection)?;
    let json = args.output.json;
    let base = |user: &str| format!("/api/v1/users/{}/tokens", encode(user));
    let value = match args.command {
        TokensCommand::List { user_id } => client.get_value(&base(&user_id)).await?,
        TokensCommand::Create { user_id, name } => {
            let value = client.post(&base(&user_id), &json!({"name": name})).await?;
            if json {
                print_json(&value);
                return Ok(());
            }
            let token: Token = decode(value, "tokens")?;
            eprintln!(
                "Created token {:?} ({}) for user {user_id}. It is shown only this once and stored \
                 only as a hash: store it now, e.g. in your secret manager.",
                token.name, token.id
            );
            // The token alone on standard output, so `$(sluice tokens create …)` captures it.
            println!("{}", token.token.unwrap_or_default());
            return Ok(());
        }
        TokensCommand::Revoke { user_id, token_id } => client
            .call(
                reqwest::Method::DELETE,
                &format!("{}/{}", base(&user_id), encode(&token_id)),
                None,
            )
            .await?
            .unwrap_or(Value::Null),
    };
    if json {
        print_json(&value);
        return Ok(());
    }
    let tokens: Vec<Token> = if value.is_array() {
        decode(value, "tokens")?
    } else {
        vec![decode(value, "tokens")?]
    };
    let mut t = Table::new(&["ID", "NAME", "PREFIX", "CREATED", "LAST USED", "REVOKED"]);
    for k in tokens {
        t.row(vec![
            k.id,
            k.name,
            k.prefix,
            k.created_at,
            or_dash(k.last_used_at),
            or_dash(k.revoked_at),
        ]);
    }
    t.print("No tokens.");
    Ok(())
}

pub async fn audit(args: AuditArgs) -> anyhow::Result<()> {
    let client = connect(&args.connection)?;
    match args.command {
        AuditCommand::Tail(tail) => audit_tail(&client, &tail, args.output.json).await,
    }
}

/// The filters of `audit tail` as query parameters (`&k=v…`).
fn audit_filters(tail: &TailArgs) -> String {
    let mut query = String::new();
    for (key, value) in [
        ("action", &tail.action),
        ("resourceType", &tail.resource_type),
        ("resourceId", &tail.resource_id),
        ("actor", &tail.actor),
    ] {
        if let Some(v) = value {
            query.push_str(&format!("&{key}={}", encode(v)));
        }
    }
    query
}

/// Print one entry; `Ok(false)` when standard output is closed (`… | head`), to stop quietly.
fn print_audit_entry(entry: &Value, json: bool) -> anyhow::Result<bool> {
    let line = if json {
        entry.to_string()
    } else {
        let e: AuditEntry = serde_json::from_value(entry.clone())
            .context("an audit entry has an unexpected shape")?;
        format!(
            "{}  {:<24}  {:<22}  {} {}",
            e.at, e.actor, e.action, e.resource_type, e.resource_id
        )
    };
    let mut stdout = std::io::stdout().lock();
    match writeln!(stdout, "{line}").and_then(|()| stdout.flush()) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(anyhow::Error::new(e).context("cannot write to standard output")),
    }
}

fn entry_id(entry: &Value) -> i64 {
    entry["id"].as_i64().unwrap_or(0)
}

async fn audit_tail(client: &Client, tail: &TailArgs, json: bool) -> anyhow::Result<()> {
    let filters = audit_filters(tail);
    let page: AuditPage = client
        .get(&format!("/api/v1/audit?limit={}{filters}", tail.limit))
        .await?;
    let mut last = page.entries.iter().map(entry_id).max().unwrap_or(0);
    for entry in page.entries.iter().rev() {
        if !print_audit_entry(entry, json)? {
            return Ok(());
        }
    }
    if page.entries.is_empty() && !tail.follow && !json {
        eprintln!("No audit entries match.");
    }
    if !tail.follow {
        return Ok(());
    }
    let mut unreachable_reported = false;
    loop {
        tokio::time::sleep(FOLLOW_EVERY).await;
        match entries_after(client, &filters, last).await {
            Ok(new) => {
                unreachable_reported = false;
                for entry in &new {
                    if !print_audit_entry(entry, json)? {
                        return Ok(());
                    }
                    last = last.max(entry_id(entry));
                }
            }
            // A restarting server is worth waiting for; anything else (a revoked token…) is not.
            Err(e @ ClientError::Unreachable { .. }) => {
                if !unreachable_reported {
                    eprintln!(
                        "warning: {e}\n(still trying every {} s)",
                        FOLLOW_EVERY.as_secs()
                    );
                    unreachable_reported = true;
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// The entries newer than `last`, oldest first, paging back as far as needed.
async fn entries_after(
    client: &Client,
    filters: &str,
    last: i64,
) -> Result<Vec<Value>, ClientError> {
    let mut found = Vec::new();
    let mut cursor: Option<i64> = None;
    loop {
        let cursor_param = cursor.map(|c| format!("&cursor={c}")).unwrap_or_default();
        let page: AuditPage = client
            .get(&format!("/api/v1/audit?limit=100{filters}{cursor_param}"))
            .await?;
        let reached_known = page.entries.iter().any(|e| entry_id(e) <= last);
        found.extend(page.entries.into_iter().filter(|e| entry_id(e) > last));
        match page.next_cursor {
            Some(next) if !reached_known => cursor = Some(next),
            _ => break,
        }
    }
    found.reverse();
    Ok(found)
}

pub async fn export(args: ExportArgs) -> anyhow::Result<()> {
    let client = connect(&args.connection)?;
    let state = ServerState::fetch(&client).await?;
    let file = state
        .to_file()
        .map_err(|e| anyhow::anyhow!("cannot export: {e}"))?;
    let yaml = file
        .to_yaml(client.base_url())
        .map_err(anyhow::Error::msg)?;
    match &args.output {
        Some(path) => {
            std::fs::write(path, &yaml).with_context(|| {
                format!(
                    "cannot write {}; check the directory exists and is writable",
                    path.display()
                )
            })?;
            eprintln!(
                "Wrote {} (sources: {}, destinations: {}, consent categories: {}). Secrets show as \"********\".",
                path.display(),
                file.sources.len(),
                file.destinations.len(),
                file.consent_categories.len()
            );
        }
        None => print!("{yaml}"),
    }
    Ok(())
}

async fn read_file(path: &Path) -> anyhow::Result<(String, String)> {
    if path == Path::new("-") {
        let text = tokio::task::spawn_blocking(|| {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut text).map(|_| text)
        })
        .await
        .context("reading standard input failed")?
        .context("cannot read the workspace file from standard input")?;
        return Ok((text, "<stdin>".to_owned()));
    }
    let text = tokio::fs::read_to_string(path)
        .await
        .with_context(|| format!("cannot read {}", path.display()))?;
    Ok((text, path.display().to_string()))
}

pub async fn apply(args: ApplyArgs) -> anyhow::Result<()> {
    let (text, name) = read_file(&args.file).await?;
    let file = WorkspaceFile::parse(&text, &name, &|var| std::env::var(var).ok())?;
    let client = connect(&args.connection)?;
    let state = ServerState::fetch(&client).await?;
    let options = ApplyOptions {
        prune: args.prune,
        update_secrets: args.update_secrets,
    };
    let plan = apply::plan(&file, &state, options)?;
    println!("Comparing {name} with {}:", client.base_url());
    print!("{}", plan.render());
    if !plan.has_changes() {
        println!("No changes: the server already matches {name}.");
        return Ok(());
    }
    if args.dry_run {
        println!("Dry run: nothing was changed. Run without --dry-run to apply.");
        return Ok(());
    }
    let done = apply::execute(&plan, &state, &client, &mut |line| println!("  {line}")).await?;
    println!("Applied {done} changes; each is recorded in the audit trail (`sluice audit tail`).");
    Ok(())
}

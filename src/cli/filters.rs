//! `sluice filters …`: destination filters. `test` evaluates rules against a sample event on
//! this machine (no server needed), with the same code the router uses; `get` and `set` read
//! and replace a destination's rules through the admin API.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::client::{Client, encode};
use super::output::print_json;
use super::{Connection, Output};
use crate::filters::{ActionKind, Rule};

/// `sluice filters …`
#[derive(Args, Debug)]
pub struct FiltersArgs {
    #[command(flatten)]
    pub connection: Connection,
    #[command(flatten)]
    pub output: Output,
    #[command(subcommand)]
    pub command: FiltersCommand,
}

#[derive(Subcommand, Debug)]
pub enum FiltersCommand {
    /// Evaluate rules against a sample event, locally: which rules match, whether the
    /// destination would receive the event, and the event as it would be delivered.
    #[command(after_help = TEST_EXAMPLES)]
    Test {
        /// A file of rules (JSON or YAML list of {if, action, fields}), or `-` for stdin.
        #[arg(long, value_name = "FILE", conflicts_with_all = ["condition", "destination"])]
        rules: Option<PathBuf>,
        /// Take the rules a destination has now (by id or name; needs the server).
        #[arg(long, value_name = "DESTINATION", conflicts_with = "condition")]
        destination: Option<String>,
        /// One rule's condition, in the FQL subset, e.g. 'event = "Order Completed"'.
        #[arg(long = "if", value_name = "CONDITION")]
        condition: Option<String>,
        /// The action of the rule given with --if.
        #[arg(long, value_enum, default_value = "drop", requires = "condition")]
        action: ActionArg,
        /// Field paths for drop-properties / keep-properties (repeat), e.g. properties.email.
        #[arg(long = "field", value_name = "PATH", requires = "condition")]
        fields: Vec<String>,
        /// The sample event (JSON file, or `-` for stdin).
        #[arg(long, value_name = "FILE")]
        event: PathBuf,
    },
    /// Show a destination's rules.
    Get {
        /// The destination's id or name.
        destination: String,
    },
    /// Replace a destination's rules with those in a file (JSON or YAML list); `[]` removes them.
    Set {
        /// The destination's id or name.
        destination: String,
        /// The rules file, or `-` for stdin.
        #[arg(long, value_name = "FILE")]
        rules: PathBuf,
    },
}

const TEST_EXAMPLES: &str = "\
Examples:
  sluice filters test --if 'event = \"Order Completed\" and properties.total < 10' --event order.json
  sluice filters test --if 'type = \"identify\"' --action drop-properties --field traits.email --event user.json
  sluice filters test --rules rules.yaml --event order.json
  sluice filters test --destination 'Ads webhook' --event order.json

A rules file:
  - if: 'event = \"Order Completed\"'
    action: keep
  - if: 'properties.email != null'
    action: dropProperties
    fields: [properties.email]";

#[derive(clap::ValueEnum, Debug, Clone, Copy)]
pub enum ActionArg {
    /// Drop events that match.
    Drop,
    /// Keep only events that match.
    Keep,
    /// Remove the --field paths from events that match.
    DropProperties,
    /// Keep only the --field paths (under properties or traits) of events that match.
    KeepProperties,
}

impl From<ActionArg> for ActionKind {
    fn from(a: ActionArg) -> Self {
        match a {
            ActionArg::Drop => ActionKind::Drop,
            ActionArg::Keep => ActionKind::Keep,
            ActionArg::DropProperties => ActionKind::DropProperties,
            ActionArg::KeepProperties => ActionKind::KeepProperties,
        }
    }
}

async fn read(path: &Path, what: &str) -> anyhow::Result<String> {
    if path == Path::new("-") {
        let mut text = String::new();
        tokio::io::AsyncReadExt::read_to_string(&mut tokio::io::stdin(), &mut text).await?;
        return Ok(text);
    }
    tokio::fs::read_to_string(path)
        .await
        .map_err(|e| anyhow::anyhow!("cannot read the {what} file {}: {e}", path.display()))
}

fn parse_rules(text: &str) -> anyhow::Result<Vec<Rule>> {
    serde_norway::from_str(text).map_err(|e| {
        anyhow::anyhow!(
            "the rules file is not a list of rules ({e})\nhint: each rule is {{if: <condition>, action: drop|keep|dropProperties|keepProperties, fields: [...]}}"
        )
    })
}

async fn destination_id(client: &Client, key: &str) -> anyhow::Result<String> {
    let all: Vec<Value> = client.get("/api/v1/destinations").await?;
    all.iter()
        .find(|d| d["id"] == key)
        .or_else(|| all.iter().find(|d| d["name"] == key))
        .and_then(|d| d["id"].as_str().map(str::to_owned))
        .ok_or_else(|| {
            anyhow::anyhow!(
                "no destination with id or name {key:?}\nhint: `sluice destinations list` shows them"
            )
        })
}

fn connect(connection: &Connection) -> anyhow::Result<Client> {
    Ok(Client::new(&connection.url, connection.token.as_deref())?)
}

pub async fn run(args: FiltersArgs) -> anyhow::Result<()> {
    match args.command {
        FiltersCommand::Test {
            rules,
            destination,
            condition,
            action,
            fields,
            event,
        } => {
            let rules = match (rules, destination, condition) {
                (Some(path), _, _) => parse_rules(&read(&path, "rules").await?)?,
                (None, Some(destination), _) => {
                    let client = connect(&args.connection)?;
                    let id = destination_id(&client, &destination).await?;
                    let current: Value = client
                        .get_value(&format!("/api/v1/destinations/{}/filters", encode(&id)))
                        .await?;
                    serde_json::from_value(current["rules"].clone())?
                }
                (None, None, Some(condition)) => vec![Rule {
                    condition,
                    action: action.into(),
                    fields,
                }],
                (None, None, None) => anyhow::bail!(
                    "say which rules to test: --if CONDITION (with --action), --rules FILE, or --destination NAME"
                ),
            };
            let text = read(&event, "event").await?;
            let sample: Value = serde_json::from_str(&text)
                .map_err(|e| anyhow::anyhow!("the event is not JSON: {e}"))?;
            if !sample.is_object() {
                anyhow::bail!(
                    "the event must be a JSON object, like the events destinations receive"
                );
            }
            test(&rules, sample, args.output.json)
        }
        FiltersCommand::Get { destination } => {
            let client = connect(&args.connection)?;
            let id = destination_id(&client, &destination).await?;
            let answer: Value = client
                .get_value(&format!("/api/v1/destinations/{}/filters", encode(&id)))
                .await?;
            let rules = &answer["rules"];
            if args.output.json {
                print_json(rules);
            } else if rules.as_array().is_none_or(Vec::is_empty) {
                println!("{destination} has no filters: it receives every event consent allows.");
            } else {
                print!("{}", serde_norway::to_string(rules)?);
            }
            Ok(())
        }
        FiltersCommand::Set { destination, rules } => {
            let parsed = parse_rules(&read(&rules, "rules").await?)?;
            let client = connect(&args.connection)?;
            let id = destination_id(&client, &destination).await?;
            let answer = client
                .call(
                    reqwest::Method::PUT,
                    &format!("/api/v1/destinations/{}/filters", encode(&id)),
                    Some(&json!({ "rules": parsed })),
                )
                .await?;
            if args.output.json {
                print_json(&answer.unwrap_or(Value::Null));
            } else {
                println!("{destination} now has {} filter rule(s).", parsed.len());
            }
            Ok(())
        }
    }
}

/// Print what the rules do to the event; a rule error shows the condition with a caret.
fn test(rules: &[Rule], event: Value, json: bool) -> anyhow::Result<()> {
    if let Err(error) = crate::filters::Program::compile(rules) {
        // Numbered from 1, as the listing below numbers them.
        let mut message = format!("rule {}: {}", error.index + 1, error.message);
        if let (Some(column), Some(rule)) = (error.column, rules.get(error.index)) {
            message.push_str(&format!(
                "\n  {}\n  {}^",
                rule.condition,
                " ".repeat(column.saturating_sub(1))
            ));
        }
        anyhow::bail!(message);
    }
    let result =
        crate::admin::filters::evaluate(rules, event).map_err(|e| anyhow::anyhow!(e.message))?;
    if json {
        print_json(&serde_json::to_value(&result)?);
        return Ok(());
    }
    for (index, (rule, matched)) in rules.iter().zip(&result.matched).enumerate() {
        println!(
            "rule {}: {} {:<16} if {}",
            index + 1,
            if *matched {
                "matches      "
            } else {
                "does not match"
            },
            serde_json::to_value(rule.action)?
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            rule.condition
        );
    }
    match &result.event {
        Some(delivered) => {
            println!("\nDelivered. The destination receives:");
            println!("{}", serde_json::to_string_pretty(delivered)?);
        }
        None => {
            println!("\nDropped: the destination does not receive this event (FILTERED_BY_RULES).")
        }
    }
    Ok(())
}

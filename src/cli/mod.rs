//! The `sluice` command-line client: commands a person runs in a terminal against a running
//! Sluice server, through its admin API (`/api/v1`), and configuration as code
//! (`sluice export` / `sluice apply`).
//!
//! Every command takes `--url` (`SLUICE_URL`, default `http://127.0.0.1:8080`) and `--token`
//! (`SLUICE_TOKEN`). Output is a table for people, or the server's JSON with `--json`.
//! Failures print the server's message and a hint (`check --token / SLUICE_TOKEN`, `is sluice
//! serve running at <url>?`) and exit non-zero.
//!
//! Layout: this file holds the clap definitions and the dispatch; [`commands`] the resource
//! commands; [`client`] the admin API client; [`output`] tables and JSON; [`workspace_file`]
//! the YAML format; [`state`] reading a server's workspace (and `export`); [`apply`] the diff
//! and how it is carried out.
//!
//! The CLI changes nothing on its own: every change is an admin API call made with the given
//! token, so it lands in the audit trail under that token's user.

pub mod apply;
pub mod client;
mod commands;
pub mod filters;
pub mod output;
pub mod retl;
pub mod state;
pub mod workspace_file;

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};

/// Where the server is and who is calling.
#[derive(Args, Debug, Clone)]
pub struct Connection {
    /// Base URL of the Sluice server.
    #[arg(
        long,
        env = "SLUICE_URL",
        default_value = "http://127.0.0.1:8080",
        global = true,
        value_name = "URL"
    )]
    pub url: String,
    /// Admin API token, sent as `Authorization: Bearer <token>`. The owner token is printed when
    /// `sluice serve` first starts; `sluice tokens create` makes more.
    #[arg(
        long,
        env = "SLUICE_TOKEN",
        hide_env_values = true,
        global = true,
        value_name = "TOKEN"
    )]
    pub token: Option<String>,
}

/// How results are printed.
#[derive(Args, Debug, Clone, Copy)]
pub struct Output {
    /// Print the server's JSON instead of a table (for scripts).
    #[arg(long, global = true)]
    pub json: bool,
}

/// The client commands, flattened into the `sluice` binary's commands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Sources: where events come from; each has a write key for the Tracking API.
    Sources(SourcesArgs),
    /// Destinations: where events go, and whether they enforce consent.
    Destinations(DestinationsArgs),
    /// Consent categories: the keys of `categoryPreferences` and the destinations each one
    /// gates. Owners only, except listing.
    Categories(CategoriesArgs),
    /// Users of the admin API and console (owners only, except listing).
    Users(UsersArgs),
    /// API tokens of a user (owners only). A token is shown once, when it is created.
    Tokens(TokensArgs),
    /// The audit trail of configuration changes (owners only).
    Audit(AuditArgs),
    /// Write the workspace's configuration as YAML (see `sluice apply --help` for the format).
    Export(ExportArgs),
    /// Make a server match a workspace YAML file: show the difference, then apply it.
    #[command(long_about = APPLY_ABOUT)]
    Apply(ApplyArgs),
    /// Reverse ETL: warehouse connections, models with consent columns, syncs and runs.
    Retl(retl::RetlArgs),
    /// Destination filters: test rules against a sample event locally, show or replace a
    /// destination's rules.
    Filters(filters::FiltersArgs),
}

const APPLY_ABOUT: &str = "\
Make a server match a workspace YAML file (as written by `sluice export`): show the difference, \
then apply it through the admin API, so every change is in the audit trail.

The file:

  workspace:                      # optional; fields left out are left as they are
    missingConsentPolicy: allow   # allow | deny
    multiCategoryRule: all        # all | any
    dedupWindowHours: 24
  sources:                        # matched by name
    - name: Web
      enabled: true               # default true
      rateLimitPerSecond: 500     # default: no limit
      missingConsentPolicy: deny  # default: the workspace's
  destinations:                   # matched by name
    - name: Ads webhook
      integration: Google Ads     # the key in the `integrations` object
      type: webhook               # cannot change once created
      enabled: true               # default true
      enforceConsent: true        # default: the type's default
      settings:
        url: https://hooks.example.com/ads
        secret: ${ADS_SECRET}     # from the environment; \"********\" keeps the stored one
  consentCategories:              # matched by id
    - id: C0004
      name: Advertising
      enabled: true               # default true
      destinations: [Ads webhook] # destination names

Sources and destinations the file does not list are left alone unless --prune is given. \
Unknown fields are errors (with their line), so a misspelt field never goes unnoticed. \
`${NAME}` in any string is replaced by the environment variable NAME (a missing one is an error); \
`$${` is a literal `${`. Secrets cannot be read back, so a secret written in the file is sent \
when the destination's settings change, or always with --update-secrets. Applying the same file \
twice changes nothing the second time.";

/// `sluice sources …`
#[derive(Args, Debug)]
pub struct SourcesArgs {
    #[command(flatten)]
    pub connection: Connection,
    #[command(flatten)]
    pub output: Output,
    #[command(subcommand)]
    pub command: SourcesCommand,
}

#[derive(Subcommand, Debug)]
pub enum SourcesCommand {
    /// List sources (write keys in full for owners).
    List,
    /// Create a source and print its write key.
    Create {
        /// The source's name, e.g. "Web" or "iOS app".
        name: String,
        /// Most Tracking API requests per second; more are answered 429. Default: no limit.
        #[arg(long, value_name = "N")]
        rate_limit: Option<u32>,
    },
    /// Delete a source; its write key stops working at once.
    Delete {
        /// The source's id (`sluice sources list` shows them).
        id: String,
    },
}

/// `sluice destinations …`
#[derive(Args, Debug)]
pub struct DestinationsArgs {
    #[command(flatten)]
    pub connection: Connection,
    #[command(flatten)]
    pub output: Output,
    #[command(subcommand)]
    pub command: DestinationsCommand,
}

#[derive(Subcommand, Debug)]
pub enum DestinationsCommand {
    /// List destinations with their delivery state.
    List,
    /// Create a destination.
    Create {
        /// The destination's name, e.g. "Ads archive".
        #[arg(long)]
        name: String,
        /// The key clients use in the `integrations` object, e.g. "Google Ads" (case-sensitive).
        #[arg(long)]
        integration: String,
        /// The destination type: webhook or file.
        #[arg(long = "type", value_name = "TYPE")]
        kind: String,
        /// The type's settings as a JSON object, e.g. '{"url": "https://hooks.example.com/in"}'
        /// for a webhook or '{"path": "ads.jsonl"}' for a file.
        #[arg(long, value_name = "JSON", default_value = "{}")]
        settings: String,
        /// Deliver every event whatever the end user consented to (for archives you must keep
        /// complete). By default consent is enforced.
        #[arg(long)]
        no_enforce_consent: bool,
    },
    /// Delete a destination, its backlog and its dead letters, and unmap it from categories.
    Delete {
        /// The destination's id (`sluice destinations list` shows them).
        id: String,
    },
}

/// `sluice categories …`
#[derive(Args, Debug)]
pub struct CategoriesArgs {
    #[command(flatten)]
    pub connection: Connection,
    #[command(flatten)]
    pub output: Output,
    #[command(subcommand)]
    pub command: CategoriesCommand,
}

#[derive(Subcommand, Debug)]
pub enum CategoriesCommand {
    /// List consent categories and the destinations they gate.
    List,
    /// Create a consent category.
    Create {
        /// The key in end users' `categoryPreferences`, e.g. C0004 (case-sensitive, 1–34
        /// characters, not starting with a digit).
        #[arg(long)]
        id: String,
        /// A name for people, e.g. "Advertising" (unique ignoring case).
        #[arg(long)]
        name: String,
        /// A destination id that needs this consent; repeat for several.
        #[arg(long = "destination", value_name = "ID")]
        destinations: Vec<String>,
    },
    /// Set the destinations a category gates, replacing the current ones.
    Map {
        /// The category's id.
        id: String,
        /// A destination id; repeat for several.
        #[arg(
            long = "destination",
            value_name = "ID",
            required_unless_present = "clear"
        )]
        destinations: Vec<String>,
        /// Unmap every destination instead.
        #[arg(long, conflicts_with = "destinations")]
        clear: bool,
    },
    /// Enforce a disabled category again.
    Enable {
        /// The category's id.
        id: String,
    },
    /// Stop enforcing a category. Asks you to type its name to confirm, as the console does.
    Disable {
        /// The category's id.
        id: String,
        /// The category's name, as confirmation, for scripts (otherwise it is asked for).
        #[arg(long, value_name = "NAME")]
        confirm_name: Option<String>,
    },
    /// Delete a category; its destinations no longer need that consent.
    Delete {
        /// The category's id.
        id: String,
    },
}

/// `sluice users …`
#[derive(Args, Debug)]
pub struct UsersArgs {
    #[command(flatten)]
    pub connection: Connection,
    #[command(flatten)]
    pub output: Output,
    #[command(subcommand)]
    pub command: UsersCommand,
}

#[derive(Subcommand, Debug)]
pub enum UsersCommand {
    /// List users.
    List,
    /// Create a user (then `sluice tokens create` gives them an API token).
    Create {
        /// The user's email address (unique).
        #[arg(long)]
        email: String,
        /// The user's name.
        #[arg(long)]
        name: String,
        /// What the user may do.
        #[arg(long, value_enum)]
        role: RoleArg,
        /// Read a console password from the first line of standard input, e.g.
        /// `printf '%s\n' "$PW" | sluice users create … --password-stdin`. At least 10
        /// characters. Without it the user has no console password.
        #[arg(long)]
        password_stdin: bool,
    },
}

/// A user's role.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoleArg {
    /// Everything, including consent categories, users and the audit trail.
    Owner,
    /// Manages sources and destinations; reads the rest (not the audit trail).
    Member,
    /// Reads configuration; changes nothing.
    Viewer,
}

impl RoleArg {
    fn as_str(self) -> &'static str {
        match self {
            RoleArg::Owner => "owner",
            RoleArg::Member => "member",
            RoleArg::Viewer => "viewer",
        }
    }
}

/// `sluice tokens …`
#[derive(Args, Debug)]
pub struct TokensArgs {
    #[command(flatten)]
    pub connection: Connection,
    #[command(flatten)]
    pub output: Output,
    #[command(subcommand)]
    pub command: TokensCommand,
}

#[derive(Subcommand, Debug)]
pub enum TokensCommand {
    /// List a user's tokens (never the secrets).
    List {
        /// The user's id (`sluice users list` shows them).
        user_id: String,
    },
    /// Create a token for a user and print it once: store it right away.
    Create {
        /// The user's id.
        user_id: String,
        /// What the token is for, e.g. "ci".
        name: String,
    },
    /// Revoke a token; it stops working at once.
    Revoke {
        /// The user's id.
        user_id: String,
        /// The token's id (`sluice tokens list USER_ID` shows them).
        token_id: String,
    },
}

/// `sluice audit …`
#[derive(Args, Debug)]
pub struct AuditArgs {
    #[command(flatten)]
    pub connection: Connection,
    #[command(flatten)]
    pub output: Output,
    #[command(subcommand)]
    pub command: AuditCommand,
}

#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Print the latest audit entries, oldest first; with --follow, keep printing new ones.
    Tail(TailArgs),
}

#[derive(Args, Debug, Clone)]
pub struct TailArgs {
    /// Keep polling (every 2 s) and print new entries as they come; stop with Ctrl-C.
    #[arg(long, short = 'f')]
    pub follow: bool,
    /// How many of the latest entries to print first (1–1000).
    #[arg(long, short = 'n', default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub limit: u32,
    /// Only entries with this action, e.g. category.disabled or destination.created.
    #[arg(long)]
    pub action: Option<String>,
    /// Only entries about this kind of resource, e.g. category, destination, source, user.
    #[arg(long)]
    pub resource_type: Option<String>,
    /// Only entries about this resource id.
    #[arg(long)]
    pub resource_id: Option<String>,
    /// Only entries by this actor (a user's email).
    #[arg(long)]
    pub actor: Option<String>,
}

/// `sluice export`
#[derive(Args, Debug)]
pub struct ExportArgs {
    #[command(flatten)]
    pub connection: Connection,
    /// Write to this file instead of standard output.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// `sluice apply`
#[derive(Args, Debug)]
pub struct ApplyArgs {
    #[command(flatten)]
    pub connection: Connection,
    /// The workspace file (YAML); `-` reads standard input.
    #[arg(long, short = 'f', value_name = "FILE")]
    pub file: PathBuf,
    /// Show the difference and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Also delete sources, destinations and categories the file does not list.
    #[arg(long)]
    pub prune: bool,
    /// Send the secrets written in the file even if nothing else changed (to rotate them).
    #[arg(long)]
    pub update_secrets: bool,
}

/// Run a client command.
pub async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Sources(args) => commands::sources(args).await,
        Command::Destinations(args) => commands::destinations(args).await,
        Command::Categories(args) => commands::categories(args).await,
        Command::Users(args) => commands::users(args).await,
        Command::Tokens(args) => commands::tokens(args).await,
        Command::Audit(args) => commands::audit(args).await,
        Command::Export(args) => commands::export(args).await,
        Command::Apply(args) => commands::apply(args).await,
        Command::Retl(args) => retl::run(args).await,
        Command::Filters(args) => filters::run(args).await,
    }
}

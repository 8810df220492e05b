//! The `sluice` binary: parses the command line, sets up logging and metrics, and runs a
//! subcommand.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use sluice::app::{App, FirstStart};
use sluice::config::Config;

#[derive(Parser)]
#[command(
    name = "sluice",
    version,
    about = "Sluice: a self-hosted, consent-enforcing customer-event router, wire-compatible with Segment",
    long_about = "Sluice accepts events from any Segment SDK, delivers each one only to the destinations the \
end user consented to, and keeps the proof.\n\nStart with `sluice serve`; it prints an owner token and a \
write key on first start. The other commands manage a running server through its admin API \
(`--url`, `--token` or SLUICE_URL, SLUICE_TOKEN); `sluice export` and `sluice apply` keep its configuration \
as a YAML file."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (Tracking API, admin API, delivery) on the embedded store.
    Serve(ServeArgs),
    /// Measure throughput and latency against a real server started for the purpose.
    Bench(sluice::bench::BenchArgs),
    #[command(hide = true)]
    NullServer(sluice::bench::NullServerArgs),
    /// Client commands against a running server (`--url`, `--token`).
    #[command(flatten)]
    Client(sluice::cli::Command),
}

#[derive(clap::Args)]
struct ServeArgs {
    /// TOML configuration file (sections: server, storage, delivery).
    #[arg(long, short = 'c', env = "SLUICE_CONFIG")]
    config: Option<PathBuf>,
    /// Directory of the embedded store.
    #[arg(long, env = "SLUICE_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Address to listen on, e.g. 0.0.0.0:8080.
    #[arg(long, env = "SLUICE_LISTEN")]
    listen: Option<std::net::SocketAddr>,
    /// URL clients reach this server at, e.g. https://events.example.com.
    #[arg(long, env = "SLUICE_PUBLIC_URL")]
    public_url: Option<String>,
    /// Log format.
    #[arg(long, value_enum, default_value = "text", env = "SLUICE_LOG_FORMAT")]
    log_format: LogFormat,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,tower_http=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn print_banner(url: &str, first: Option<&FirstStart>) {
    println!("Sluice is running.");
    println!("  Tracking API  {url}/v1/batch  (any Segment SDK: host {url})");
    println!("  Admin API     {url}/api/v1");
    println!("  Console       {url}/");
    println!("  Health        {url}/healthz   Metrics {url}/metrics");
    if let Some(first) = first {
        println!();
        if first.token_from_env {
            println!("First start: the owner token is the one in SLUICE_BOOTSTRAP_OWNER_TOKEN.");
        } else {
            println!(
                "First start: this is the owner API token. It is shown only this once; store it now:"
            );
            println!();
            println!("    {}", first.owner_token);
        }
        println!();
        println!(
            "Sign in to the console at {url}/login as owner@localhost with this password (shown once; change it under Users and tokens):"
        );
        println!();
        println!("    {}", first.owner_password);
        println!();
        println!("A source named \"Default source\" was created. Its write key:");
        println!();
        println!("    {}", first.source_write_key);
        println!();
        println!("Try it:");
        println!(
            "  curl -u {}: {url}/v1/track -d '{{\"userId\":\"u1\",\"event\":\"Hello\"}}'",
            first.source_write_key
        );
        println!("  curl -H 'Authorization: Bearer <owner token>' {url}/api/v1/delivery-overview");
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("Shutdown requested; stopping gracefully.");
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    init_tracing(args.log_format);
    let mut config = Config::load(args.config.as_deref()).map_err(anyhow::Error::msg)?;
    if let Some(dir) = args.data_dir {
        config.storage.data_dir = dir;
    }
    if let Some(listen) = args.listen {
        config.server.listen = listen;
    }
    if let Some(url) = args.public_url {
        config.server.public_url = Some(url);
    }
    config.validate().map_err(anyhow::Error::msg)?;

    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .map_err(|e| anyhow::anyhow!("cannot install the metrics recorder: {e}"))?;
    let listener = tokio::net::TcpListener::bind(config.server.listen)
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot listen on {}: {e} (use --listen to pick another address)",
                config.server.listen
            )
        })?;
    let bound = listener.local_addr()?;
    let token = std::env::var("SLUICE_BOOTSTRAP_OWNER_TOKEN")
        .ok()
        .filter(|t| !t.is_empty());
    let (app, first) = App::open(config, token, Some(metrics)).await?;
    print_banner(&app.config.public_url(bound), first.as_ref());
    tracing::info!(address = %bound, data_dir = %app.config.storage.data_dir.display(), "Listening.");
    sluice::server::serve(app, listener, shutdown_signal()).await
}

/// `sluice audit tail | head`: when the reader goes away, stop quietly like other command-line
/// tools instead of printing a panic (Rust ignores SIGPIPE, so `println!` panics instead).
fn quiet_on_closed_stdout() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if message.contains("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(0);
        }
        default(info);
    }));
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    quiet_on_closed_stdout();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => serve(args).await,
            Command::Bench(args) => sluice::bench::run(args).await,
            Command::NullServer(args) => sluice::bench::null_server(args).await,
            Command::Client(command) => sluice::cli::run(command).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

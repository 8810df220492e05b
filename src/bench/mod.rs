//! `sluice bench`: starts real servers as child processes and measures them (issue targets in
//! brackets):
//!
//! 1. **ceiling** — the same HTTP stack with a handler that reads the body and answers 200;
//! 2. **durable batch ingest** — `/v1/batch`, 100 events of ~600 bytes per request, concurrent
//!    connections, a 200 only after the group commit (≥ 100,000 events/s);
//! 3. **single events** — `/v1/track` at a fixed 5,000 requests/s, p50/p99 latency measured
//!    from when each request was due (p99 ≤ 5 ms), then as fast as possible;
//! 4. **end to end** — 8 webhook destinations over 4 categories with mixed consent, delivered to
//!    a local receiver; delivered events/s;
//! 5. **end to end to PostgreSQL** (`e2e-postgres`) — one `postgres` destination in a schema of
//!    its own (dropped afterwards), batch load, then until every event is in the database;
//!    delivered events and rows per second, and the row count checked against the deliveries;
//! 6. **peak RSS** of the server in each phase (≤ 200 MB).
//!
//! Run it on a release build: `cargo run --release -- bench`.

mod load;
mod payload;
mod postgres;
mod receiver;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use base64::Engine;
use bytes::Bytes;
use clap::Args;
use serde_json::{Value, json};

use load::{BodyFn, LoadResult, Target};

const TOKEN: &str = "bench-owner-token-000000000000";

#[derive(Args, Debug, Clone)]
pub struct BenchArgs {
    /// Seconds per measured phase.
    #[arg(long, default_value_t = 10)]
    pub duration: u64,
    /// Concurrent connections for the batch phases.
    #[arg(long, default_value_t = 32)]
    pub connections: usize,
    /// Events per batch request.
    #[arg(long, default_value_t = 100)]
    pub batch_size: usize,
    /// Fixed rate for the single-event latency phase, requests per second.
    #[arg(long, default_value_t = 5000)]
    pub rate: u64,
    /// Phases to run, comma-separated: ceiling, ingest, single, e2e, e2e-postgres.
    #[arg(
        long,
        default_value = "ceiling,ingest,single,e2e,e2e-postgres",
        value_delimiter = ','
    )]
    pub phases: Vec<String>,
    /// PostgreSQL for the e2e-postgres phase (a schema `sluice_bench_<ms>` is created there and
    /// dropped at the end).
    #[arg(
        long,
        env = "SLUICE_BENCH_POSTGRES_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/test"
    )]
    pub postgres_url: String,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    pub json: Option<std::path::PathBuf>,
}

#[derive(Args, Debug)]
pub struct NullServerArgs {
    #[arg(long)]
    pub listen: SocketAddr,
}

/// The ceiling: the same HTTP stack, a handler that reads the body and answers 200.
pub async fn null_server(args: NullServerArgs) -> anyhow::Result<()> {
    let app = axum::Router::new().fallback(|body: Bytes| async move {
        std::hint::black_box(body.len());
        axum::Json(json!({"success": true}))
    });
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    axum::serve(listener, app).await?;
    Ok(())
}

/// A child process (server or null server), killed on drop.
struct Child {
    process: tokio::process::Child,
    addr: SocketAddr,
}

impl Child {
    fn peak_rss_mb(&self) -> Option<f64> {
        let pid = self.process.id()?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
        let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kb / 1024.0)
    }
}

fn free_addr() -> anyhow::Result<SocketAddr> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

async fn wait_listening(addr: SocketAddr) -> anyhow::Result<()> {
    let start = Instant::now();
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        if start.elapsed() > Duration::from_secs(30) {
            anyhow::bail!("the server on {addr} did not start within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

async fn spawn_server(data_dir: &Path) -> anyhow::Result<Child> {
    let addr = free_addr()?;
    let process = tokio::process::Command::new(std::env::current_exe()?)
        .args([
            "serve",
            "--data-dir",
            &data_dir.display().to_string(),
            "--listen",
            &addr.to_string(),
        ])
        .env("SLUICE_BOOTSTRAP_OWNER_TOKEN", TOKEN)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    wait_listening(addr).await?;
    Ok(Child { process, addr })
}

async fn spawn_null_server() -> anyhow::Result<Child> {
    let addr = free_addr()?;
    let process = tokio::process::Command::new(std::env::current_exe()?)
        .args(["null-server", "--listen", &addr.to_string()])
        .kill_on_drop(true)
        .spawn()?;
    wait_listening(addr).await?;
    Ok(Child { process, addr })
}

struct Admin {
    http: reqwest::Client,
    base: String,
}

impl Admin {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(TOKEN);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await?;
        let status = response.status();
        let value: Value = response.json().await?;
        if !status.is_success() {
            anyhow::bail!("{path}: HTTP {status}: {value}");
        }
        Ok(value)
    }

    async fn write_key(&self) -> anyhow::Result<String> {
        let sources = self
            .call(reqwest::Method::GET, "/api/v1/sources", None)
            .await?;
        sources[0]["writeKey"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| anyhow::anyhow!("no source"))
    }
}

fn basic(write_key: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{write_key}:"))
    )
}

/// Batch bodies with unique messageIds: eight templates (varied consent), patched per request.
fn batch_bodies(run: &'static str, size: usize) -> BodyFn {
    let templates: Vec<payload::BatchTemplate> = (0..8)
        .map(|seed| payload::BatchTemplate::new(run, size, seed))
        .collect();
    Arc::new(move |conn, n| {
        let request = ((conn as u64) << 40) | n;
        Bytes::from(templates[(n % 8) as usize].render(request))
    })
}

#[derive(Default, serde::Serialize)]
struct Report {
    ceiling_events_per_s: Option<f64>,
    ingest_events_per_s: Option<f64>,
    ingest_ratio_of_ceiling: Option<f64>,
    ingest_p50_ms: Option<f64>,
    ingest_p99_ms: Option<f64>,
    ingest_errors: Option<u64>,
    single_target_rate: Option<u64>,
    single_achieved_rate: Option<f64>,
    single_p50_ms: Option<f64>,
    single_p99_ms: Option<f64>,
    single_max_rate: Option<f64>,
    e2e_accepted_events: Option<u64>,
    e2e_deliveries: Option<u64>,
    e2e_delivered_per_s: Option<f64>,
    e2e_ingest_events_per_s: Option<f64>,
    e2e_postgres_accepted_events: Option<u64>,
    e2e_postgres_delivered_events: Option<u64>,
    e2e_postgres_delivered_per_s: Option<f64>,
    e2e_postgres_rows: Option<u64>,
    e2e_postgres_rows_per_s: Option<f64>,
    peak_rss_ingest_mb: Option<f64>,
    peak_rss_e2e_mb: Option<f64>,
    peak_rss_e2e_postgres_mb: Option<f64>,
}

/// The server's own view of where ingest time goes (quantiles from `/metrics`).
async fn print_server_timings(admin: &Admin) {
    let Ok(response) = admin
        .http
        .get(format!("{}/metrics", admin.base))
        .send()
        .await
    else {
        return;
    };
    let Ok(text) = response.text().await else {
        return;
    };
    for metric in [
        "sluice_log_commit_seconds",
        "sluice_ingest_durable_wait_seconds",
        "sluice_log_group_messages",
    ] {
        let quantiles: Vec<String> = text
            .lines()
            .filter(|l| l.starts_with(&format!("{metric}{{quantile=")))
            .filter_map(|l| {
                let q = l.split('"').nth(1)?;
                let v: f64 = l.rsplit(' ').next()?.parse().ok()?;
                let v = if metric.ends_with("seconds") {
                    format!("{:.2} ms", v * 1000.0)
                } else {
                    format!("{v:.0}")
                };
                matches!(q, "0.5" | "0.99" | "0.999" | "1").then(|| format!("p{q}={v}"))
            })
            .collect();
        if !quantiles.is_empty() {
            println!("  server {metric:<36} {}", quantiles.join("  "));
        }
    }
}

/// Between phases: flush what the previous server wrote and let the disk go quiet, so one
/// phase's write-back does not stall the next.
async fn settle() {
    let _ = tokio::process::Command::new("sync").status().await;
    tokio::time::sleep(Duration::from_secs(2)).await;
}

fn progress(msg: &str) {
    eprintln!("  … {msg}");
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    if cfg!(debug_assertions) {
        eprintln!(
            "warning: this is a debug build; numbers will be far below a release build (cargo run --release -- bench)"
        );
    }
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    println!(
        "Sluice benchmark: {cores} cores, {} s per phase, {} connections, {} events per batch",
        args.duration, args.connections, args.batch_size
    );
    let duration = Duration::from_secs(args.duration);
    let phase = |name: &str| args.phases.iter().any(|p| p == name);
    let mut report = Report::default();
    let events_per_request = args.batch_size as f64;

    if phase("ceiling") {
        progress("ceiling: null handler, same HTTP stack");
        let null = spawn_null_server().await?;
        let target = Arc::new(Target {
            addr: null.addr,
            path: "/v1/batch".into(),
            authorization: Some(basic("x")),
        });
        let r = load::closed_loop(
            target,
            args.connections,
            duration,
            batch_bodies("ceiling", args.batch_size),
        )
        .await?;
        report.ceiling_events_per_s = Some(r.rate() * events_per_request);
        println!(
            "ceiling (read body, answer 200)   {:>12.0} events/s  ({:.0} req/s)",
            r.rate() * events_per_request,
            r.rate()
        );
    }

    if phase("single-ceiling") {
        // The open-loop generator against the null server: what the generator itself adds.
        let null = spawn_null_server().await?;
        let target = Arc::new(Target {
            addr: null.addr,
            path: "/v1/track".into(),
            authorization: Some(basic("x")),
        });
        let single: BodyFn =
            Arc::new(|conn, n| Bytes::from(payload::event(&format!("c-{conn}-{n}"), n, false)));
        let r = load::open_loop(target, 64, args.rate, duration, single).await?;
        println!(
            "null server at {:>5} req/s        achieved {:>8.0} req/s, p50 {:.2} ms, p99 {:.2} ms",
            args.rate,
            r.rate(),
            r.percentile_ms(0.5),
            r.percentile_ms(0.99)
        );
    }

    if phase("ingest") {
        settle().await;
        let dir = tempfile::tempdir()?;
        let server = spawn_server(dir.path()).await?;
        let admin = Admin {
            http: reqwest::Client::new(),
            base: format!("http://{}", server.addr),
        };
        let auth = Some(basic(&admin.write_key().await?));
        progress("durable batch ingest");
        let target = Arc::new(Target {
            addr: server.addr,
            path: "/v1/batch".into(),
            authorization: auth.clone(),
        });
        let r = load::closed_loop(
            target,
            args.connections,
            duration,
            batch_bodies("ingest", args.batch_size),
        )
        .await?;
        let eps = r.rate() * events_per_request;
        report.ingest_events_per_s = Some(eps);
        report.ingest_p50_ms = Some(r.percentile_ms(0.5));
        report.ingest_p99_ms = Some(r.percentile_ms(0.99));
        report.ingest_errors = Some(r.errors);
        if let Some(ceiling) = report.ceiling_events_per_s {
            report.ingest_ratio_of_ceiling = Some(eps / ceiling);
        }
        println!(
            "durable batch ingest              {:>12.0} events/s  ({:.0} req/s, p50 {:.2} ms, p99 {:.2} ms, {} errors){}",
            eps,
            r.rate(),
            r.percentile_ms(0.5),
            r.percentile_ms(0.99),
            r.errors,
            report
                .ingest_ratio_of_ceiling
                .map(|x| format!(", {:.1}% of ceiling", x * 100.0))
                .unwrap_or_default()
        );
        print_server_timings(&admin).await;
        report.peak_rss_ingest_mb = server.peak_rss_mb();
    }

    if phase("single") {
        settle().await;
        // A fresh server, so the batch phase's background work does not colour the latencies.
        let dir = tempfile::tempdir()?;
        let server = spawn_server(dir.path()).await?;
        let admin = Admin {
            http: reqwest::Client::new(),
            base: format!("http://{}", server.addr),
        };
        let auth = Some(basic(&admin.write_key().await?));
        progress(&format!("single /v1/track at {} req/s", args.rate));
        let target = Arc::new(Target {
            addr: server.addr,
            path: "/v1/track".into(),
            authorization: auth.clone(),
        });
        let single: BodyFn = Arc::new(|conn, n| {
            Bytes::from(payload::event(
                &format!("ajs-next-{}-single-{conn}-{n}", crate::clock::now_ms()),
                n,
                false,
            ))
        });
        let r = load::open_loop(
            Arc::clone(&target),
            64,
            args.rate,
            duration,
            Arc::clone(&single),
        )
        .await?;
        report.single_target_rate = Some(args.rate);
        report.single_achieved_rate = Some(r.rate());
        report.single_p50_ms = Some(r.percentile_ms(0.5));
        report.single_p99_ms = Some(r.percentile_ms(0.99));
        println!(
            "single /v1/track at {:>5} req/s   achieved {:>8.0} req/s, p50 {:.2} ms, p99 {:.2} ms, {} errors",
            args.rate,
            r.rate(),
            r.percentile_ms(0.5),
            r.percentile_ms(0.99),
            r.errors
        );
        print_server_timings(&admin).await;
        progress("single /v1/track as fast as possible");
        let single_max: BodyFn = Arc::new(|conn, n| {
            Bytes::from(payload::event(
                &format!("ajs-next-{}-max-{conn}-{n}", crate::clock::now_ms()),
                n,
                false,
            ))
        });
        let r = load::closed_loop(target, args.connections, duration, single_max).await?;
        report.single_max_rate = Some(r.rate());
        println!(
            "single /v1/track, closed loop     {:>12.0} req/s     (p50 {:.2} ms, p99 {:.2} ms)",
            r.rate(),
            r.percentile_ms(0.5),
            r.percentile_ms(0.99)
        );
        let rss = server.peak_rss_mb();
        report.peak_rss_ingest_mb = match (report.peak_rss_ingest_mb, rss) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
    }

    if phase("e2e") {
        settle().await;
        progress("end to end: 8 webhook destinations over 4 categories, mixed consent");
        let dir = tempfile::tempdir()?;
        let server = spawn_server(dir.path()).await?;
        let admin = Admin {
            http: reqwest::Client::new(),
            base: format!("http://{}", server.addr),
        };
        let (receiver, counts) = receiver::start(8).await?;
        let mut ids = Vec::new();
        for n in 0..8 {
            let d = admin
                .call(
                    reqwest::Method::POST,
                    "/api/v1/destinations",
                    Some(json!({"name": format!("Hook {n}"), "integration": format!("Hook {n}"), "type": "webhook",
                                "settings": {"url": format!("http://{receiver}/d/{n}"), "batchSize": 100}})),
                )
                .await?;
            ids.push(d["id"].as_str().unwrap_or_default().to_owned());
        }
        // C0001: d0 d1 d7; C0002: d2 d3; C0003: d4 d5; C0004: d6 d7 (d7 needs both).
        let mapping = [
            ("C0001", vec![0, 1, 7]),
            ("C0002", vec![2, 3]),
            ("C0003", vec![4, 5]),
            ("C0004", vec![6, 7]),
        ];
        for (id, dests) in mapping {
            let dests: Vec<&String> = dests.iter().map(|&i| &ids[i]).collect();
            admin
                .call(
                    reqwest::Method::POST,
                    "/api/v1/consent/categories",
                    Some(
                        json!({"id": id, "name": format!("Category {id}"), "destinations": dests}),
                    ),
                )
                .await?;
        }
        let auth = Some(basic(&admin.write_key().await?));
        let target = Arc::new(Target {
            addr: server.addr,
            path: "/v1/batch".into(),
            authorization: auth,
        });
        let start = Instant::now();
        let r = load::closed_loop(
            target,
            args.connections,
            duration,
            batch_bodies("e2e", args.batch_size),
        )
        .await?;
        let accepted = r.requests * args.batch_size as u64;
        report.e2e_ingest_events_per_s = Some(r.rate() * events_per_request);
        progress(&format!(
            "{accepted} events accepted; waiting for every delivery"
        ));
        // The expected deliveries come from the routing decisions the server counted.
        let expected = loop {
            let o = admin
                .call(reqwest::Method::GET, "/api/v1/delivery-overview", None)
                .await?;
            let routed: i64 = o["destinations"]
                .as_array()
                .map(|d| d.iter().map(|x| x["routed"].as_i64().unwrap_or(0)).sum())
                .unwrap_or(0);
            let in_flight: i64 = o["destinations"]
                .as_array()
                .map(|d| {
                    d.iter()
                        .map(|x| {
                            x["pending"].as_i64().unwrap_or(0) + x["retrying"].as_i64().unwrap_or(0)
                        })
                        .sum()
                })
                .unwrap_or(0);
            if in_flight == 0 && counts.total() >= routed as u64 {
                break routed as u64;
            }
            if start.elapsed() > duration * 30 {
                anyhow::bail!("deliveries did not finish: {in_flight} still in flight");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let elapsed = start.elapsed();
        let delivered = counts.total();
        report.e2e_accepted_events = Some(accepted);
        report.e2e_deliveries = Some(delivered);
        report.e2e_delivered_per_s = Some(delivered as f64 / elapsed.as_secs_f64());
        report.peak_rss_e2e_mb = server.peak_rss_mb();
        let per_dest: Vec<u64> = counts
            .per_destination
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect();
        println!(
            "end to end, 8 destinations        {:>12.0} deliveries/s ({} events accepted at {:.0}/s, {} deliveries of {} routed, in {:.1} s)",
            delivered as f64 / elapsed.as_secs_f64(),
            accepted,
            r.rate() * events_per_request,
            delivered,
            expected,
            elapsed.as_secs_f64()
        );
        println!("  deliveries per destination      {per_dest:?}");
    }
    if phase("e2e-postgres") {
        postgres::run(&args, &mut report).await?;
    }
    if let Some(mb) = report.peak_rss_ingest_mb {
        println!("peak RSS (ingest/single servers)  {mb:>9.1} MB");
    }
    if let Some(mb) = report.peak_rss_e2e_mb {
        println!("peak RSS (end-to-end server)      {mb:>9.1} MB");
    }
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)?;
        println!("results written to {}", path.display());
    }
    let _ = LoadResult::default();
    Ok(())
}

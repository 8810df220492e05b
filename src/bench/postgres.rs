//! The `e2e-postgres` phase: a fresh server with one `postgres` destination (a schema of its
//! own, dropped at the end), batch load for the phase's duration, then waiting until every
//! routed event is in the database. Reports delivered events and rows per second and checks
//! the row count against what the server says it delivered.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use sqlx::postgres::PgPoolOptions;

use super::load::{self, Target};
use super::{Admin, BenchArgs, Report, basic, batch_bodies, progress, settle, spawn_server};

/// Sums over the destinations of the delivery overview.
#[derive(Debug, Default, Clone, Copy)]
struct Progress {
    routed: i64,
    delivered: i64,
    dead: i64,
    in_flight: i64,
}

async fn overview(admin: &Admin) -> anyhow::Result<Progress> {
    let o = admin
        .call(reqwest::Method::GET, "/api/v1/delivery-overview", None)
        .await?;
    let sum = |field: &str| -> i64 {
        o["destinations"]
            .as_array()
            .map(|d| d.iter().map(|x| x[field].as_i64().unwrap_or(0)).sum())
            .unwrap_or(0)
    };
    Ok(Progress {
        routed: sum("routed"),
        delivered: sum("delivered"),
        dead: sum("dead"),
        in_flight: sum("pending") + sum("retrying"),
    })
}

pub(super) async fn run(args: &BenchArgs, report: &mut Report) -> anyhow::Result<()> {
    settle().await;
    let url = &args.postgres_url;
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(5))
        .connect(url)
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "e2e-postgres: PostgreSQL is not reachable ({e}); start it, or pass --postgres-url / SLUICE_BENCH_POSTGRES_URL"
            )
        })?;
    let schema = format!("sluice_bench_{}", crate::clock::now_ms());
    progress(&format!(
        "end to end: one postgres destination, schema {schema}"
    ));
    let result = measure(args, report, url, &schema).await;
    let drop = format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE");
    if let Err(error) = sqlx::query(sqlx::AssertSqlSafe(drop)).execute(&pool).await {
        eprintln!("warning: could not drop schema {schema}: {error}");
    }
    let (rows, expected) = result?;
    if rows != expected {
        anyhow::bail!(
            "e2e-postgres: {rows} rows in {schema}.tracks, but the server delivered {expected} events"
        );
    }
    Ok(())
}

/// Returns the rows found in `tracks` and the events the server reported delivered.
async fn measure(
    args: &BenchArgs,
    report: &mut Report,
    url: &str,
    schema: &str,
) -> anyhow::Result<(i64, i64)> {
    let dir = tempfile::tempdir()?;
    let server = spawn_server(dir.path()).await?;
    let admin = Admin {
        http: reqwest::Client::new(),
        base: format!("http://{}", server.addr),
    };
    admin
        .call(
            reqwest::Method::POST,
            "/api/v1/destinations",
            Some(
                json!({"name": "Warehouse", "integration": "Warehouse", "type": "postgres",
                        "settings": {"url": url, "schema": schema, "batchSize": 1000}}),
            ),
        )
        .await?;
    let target = Arc::new(Target {
        addr: server.addr,
        path: "/v1/batch".into(),
        authorization: Some(basic(&admin.write_key().await?)),
    });
    let start = Instant::now();
    let r = load::closed_loop(
        target,
        args.connections,
        Duration::from_secs(args.duration),
        batch_bodies("e2epg", args.batch_size),
    )
    .await?;
    let accepted = r.requests * args.batch_size as u64;
    let load_time = start.elapsed();
    let at_load_end = overview(&admin).await?;
    progress(&format!(
        "{accepted} events accepted; waiting until all are in PostgreSQL"
    ));
    let deadline = Duration::from_secs(args.duration * 60).max(Duration::from_secs(300));
    let done = loop {
        let p = overview(&admin).await?;
        if p.in_flight == 0 && p.delivered + p.dead >= p.routed {
            break p;
        }
        if start.elapsed() > deadline {
            anyhow::bail!(
                "e2e-postgres: deliveries did not finish within {deadline:?}: {} of {} delivered",
                p.delivered,
                p.routed
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let elapsed = start.elapsed();
    let pool = PgPoolOptions::new().max_connections(1).connect(url).await?;
    let count = |table: &str| {
        let sql = format!("SELECT count(*) FROM \"{schema}\".\"{table}\"");
        let pool = &pool;
        async move {
            sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql))
                .fetch_one(pool)
                .await
        }
    };
    let tracks = count("tracks").await?;
    let order_completed = count("order_completed").await?;
    let rows = tracks + order_completed;
    let delivered_per_s = done.delivered as f64 / elapsed.as_secs_f64();
    let drain = elapsed.saturating_sub(load_time);
    let drained = done.delivered - at_load_end.delivered;
    report.e2e_postgres_accepted_events = Some(accepted);
    report.e2e_postgres_delivered_events = Some(done.delivered as u64);
    report.e2e_postgres_delivered_per_s = Some(delivered_per_s);
    report.e2e_postgres_rows = Some(rows as u64);
    report.e2e_postgres_rows_per_s = Some(rows as f64 / elapsed.as_secs_f64());
    report.peak_rss_e2e_postgres_mb = server.peak_rss_mb();
    println!(
        "end to end, postgres              {:>12.0} events/s delivered ({:.0} rows/s; {} events accepted at {:.0}/s, {} delivered, {} dead, in {:.1} s)",
        delivered_per_s,
        rows as f64 / elapsed.as_secs_f64(),
        accepted,
        r.rate() * args.batch_size as f64,
        done.delivered,
        done.dead,
        elapsed.as_secs_f64()
    );
    println!(
        "  rows: {tracks} in tracks + {order_completed} in order_completed; after the load ended, {drained} events in {:.1} s ({:.0} events/s)",
        drain.as_secs_f64(),
        drained as f64 / drain.as_secs_f64().max(0.001)
    );
    if let Some(mb) = server.peak_rss_mb() {
        println!("  peak RSS of the server            {mb:>9.1} MB");
    }
    Ok((tracks, done.delivered))
}

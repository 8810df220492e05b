//! A small HTTP/1.1 load generator on hyper: keep-alive connections, closed loop (as fast as
//! answers come back) or open loop (a fixed request rate, latency measured from the time each
//! request was due, so a stalled server cannot hide its stall).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;

/// What a load run measured.
#[derive(Debug, Default, Clone)]
pub struct LoadResult {
    pub requests: u64,
    pub errors: u64,
    pub elapsed: Duration,
    /// Latencies in microseconds, sorted.
    pub latencies_us: Vec<u32>,
}

impl LoadResult {
    pub fn rate(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }

    pub fn percentile_ms(&self, p: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return f64::NAN;
        }
        let index = ((self.latencies_us.len() as f64 - 1.0) * p).round() as usize;
        f64::from(self.latencies_us[index]) / 1000.0
    }
}

/// Builds the body of the `n`-th request of connection `conn`.
pub type BodyFn = Arc<dyn Fn(usize, u64) -> Bytes + Send + Sync>;

pub struct Target {
    pub addr: SocketAddr,
    pub path: String,
    pub authorization: Option<String>,
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

async fn connect(addr: SocketAddr) -> anyhow::Result<Sender> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

async fn send(sender: &mut Sender, target: &Target, body: Bytes) -> anyhow::Result<bool> {
    let mut request = Request::post(target.path.as_str())
        .header("host", target.addr.to_string())
        .header("content-type", "application/json");
    if let Some(auth) = &target.authorization {
        request = request.header("authorization", auth.as_str());
    }
    sender.ready().await?;
    let response = sender.send_request(request.body(Full::new(body))?).await?;
    let ok = response.status().is_success();
    response.into_body().collect().await?;
    Ok(ok)
}

/// `connections` connections, each sending its next request as soon as the previous one is
/// answered, for `duration`.
pub async fn closed_loop(
    target: Arc<Target>,
    connections: usize,
    duration: Duration,
    body: BodyFn,
) -> anyhow::Result<LoadResult> {
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for conn in 0..connections {
        let (target, body, stop) = (Arc::clone(&target), Arc::clone(&body), Arc::clone(&stop));
        tasks.push(tokio::spawn(async move {
            let mut sender = connect(target.addr).await?;
            let mut result = LoadResult::default();
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let payload = body(conn, n);
                n += 1;
                let sent = Instant::now();
                match send(&mut sender, &target, payload).await {
                    Ok(true) => {
                        result.requests += 1;
                        result
                            .latencies_us
                            .push(sent.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
                    }
                    Ok(false) => result.errors += 1,
                    Err(_) => {
                        result.errors += 1;
                        sender = connect(target.addr).await?;
                    }
                }
            }
            anyhow::Ok(result)
        }));
    }
    tokio::time::sleep(duration).await;
    stop.store(true, Ordering::Relaxed);
    merge(tasks, start).await
}

/// A fixed total `rate` of requests per second spread over `connections`, for `duration`.
/// Latency runs from when a request was due to when its answer arrived.
pub async fn open_loop(
    target: Arc<Target>,
    connections: usize,
    rate: u64,
    duration: Duration,
    body: BodyFn,
) -> anyhow::Result<LoadResult> {
    let start = Instant::now();
    let total = rate * duration.as_secs();
    let next = Arc::new(AtomicU64::new(0));
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let mut tasks = Vec::new();
    for conn in 0..connections {
        let (target, body, next) = (Arc::clone(&target), Arc::clone(&body), Arc::clone(&next));
        tasks.push(tokio::spawn(async move {
            let mut sender = connect(target.addr).await?;
            let mut result = LoadResult::default();
            loop {
                // Requests are claimed in order; request k is due at start + k·interval.
                let k = next.fetch_add(1, Ordering::Relaxed);
                if k >= total {
                    break;
                }
                let due = start + interval.mul_f64(k as f64);
                tokio::time::sleep_until(due.into()).await;
                match send(&mut sender, &target, body(conn, k)).await {
                    Ok(true) => {
                        result.requests += 1;
                        result
                            .latencies_us
                            .push(due.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
                    }
                    Ok(false) => result.errors += 1,
                    Err(_) => {
                        result.errors += 1;
                        sender = connect(target.addr).await?;
                    }
                }
            }
            anyhow::Ok(result)
        }));
    }
    merge(tasks, start).await
}

async fn merge(
    tasks: Vec<tokio::task::JoinHandle<anyhow::Result<LoadResult>>>,
    start: Instant,
) -> anyhow::Result<LoadResult> {
    let mut total = LoadResult::default();
    for task in tasks {
        let r = task.await??;
        total.requests += r.requests;
        total.errors += r.errors;
        total.latencies_us.extend(r.latencies_us);
    }
    total.elapsed = start.elapsed();
    total.latencies_us.sort_unstable();
    Ok(total)
}

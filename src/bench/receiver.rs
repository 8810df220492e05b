//! A counting webhook receiver for the end-to-end phase: `/d<N>` paths, counts events per
//! destination by their `messageId` keys, answers 200 at once.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::body::Bytes;
use axum::extract::Path;
use axum::routing::post;

pub struct Counts {
    pub per_destination: Vec<AtomicU64>,
}

impl Counts {
    pub fn total(&self) -> u64 {
        self.per_destination
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum()
    }
}

fn count_events(body: &[u8]) -> u64 {
    const NEEDLE: &[u8] = b"\"messageId\":";
    body.windows(NEEDLE.len()).filter(|w| *w == NEEDLE).count() as u64
}

pub async fn start(destinations: usize) -> anyhow::Result<(SocketAddr, Arc<Counts>)> {
    let counts = Arc::new(Counts {
        per_destination: (0..destinations).map(|_| AtomicU64::new(0)).collect(),
    });
    let c = Arc::clone(&counts);
    let app = Router::new().route(
        "/d/{n}",
        post(move |Path(n): Path<usize>, body: Bytes| {
            let c = Arc::clone(&c);
            async move {
                if let Some(counter) = c.per_destination.get(n) {
                    counter.fetch_add(count_events(&body), Ordering::Relaxed);
                }
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((addr, counts))
}

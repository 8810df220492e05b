//! `GET /api/v1/sources/{id}/debugger`: the live debugger as server-sent events.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::stream::{self, Stream, StreamExt};

use crate::app::App;
use crate::error::ApiError;

/// Live events of a source as server-sent events: `event: ready` once, then one `event:
/// event` per event received (with its consent and the decision per destination), and
/// `event: dropped` when this viewer fell behind and missed messages.
#[utoipa::path(get, path = "/api/v1/sources/{id}/debugger", tag = "sources",
    params(("id" = String, Path, description = "Source id")),
    responses((status = 200, content_type = "text/event-stream", description = "Server-sent events"), (status = 404, body = super::ErrorBody)))]
pub async fn stream(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let key = app
        .snapshot()
        .source_by_id(&id)
        .map(|s| s.source.key)
        .ok_or_else(|| ApiError::not_found(format!("no source with id {id}")))?;
    let subscription = app.debugger.subscribe(key);
    let ready = stream::once(async { Ok(Event::default().event("ready").data("{}")) });
    let events = stream::unfold((subscription, 0u64), |(mut sub, reported)| async move {
        let message = sub.rx.recv().await?;
        let dropped = sub.dropped.load(Ordering::Relaxed);
        let mut out = Vec::with_capacity(2);
        if dropped > reported {
            out.push(Ok(Event::default()
                .event("dropped")
                .data(format!("{{\"missed\":{}}}", dropped - reported))));
        }
        let event = Event::default()
            .event("event")
            .json_data(&*message)
            .unwrap_or_else(|_| Event::default().comment("unserialisable"));
        out.push(Ok(event));
        Some((stream::iter(out), (sub, dropped)))
    })
    .flatten();
    // End the stream on shutdown, so graceful shutdown does not wait for viewers.
    let shutdown = app.background_token();
    let body = ready
        .chain(events)
        .take_until(async move { shutdown.cancelled().await });
    Ok(Sse::new(body).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

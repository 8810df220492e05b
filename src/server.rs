//! HTTP serving: the router of everything, and graceful shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use tokio::net::TcpListener;
use tower::limit::GlobalConcurrencyLimitLayer;
use tower_http::trace::TraceLayer;

use crate::app::App;
use crate::{admin, api, console};

/// Every route the server answers.
pub fn router(app: Arc<App>) -> Router {
    let limit = app.config.server.max_concurrent_requests;
    Router::new()
        .merge(api::routes())
        .merge(api::operational_routes())
        .merge(admin::routes(Arc::clone(&app)))
        .merge(console::routes())
        .layer(TraceLayer::new_for_http())
        .layer(GlobalConcurrencyLimitLayer::new(limit))
        .with_state(app)
}

/// Serve until `shutdown` resolves, then stop accepting, let in-flight requests finish, stop
/// delivery (in-flight deliveries finish) and close the log.
pub async fn serve(
    app: Arc<App>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let bound = listener.local_addr()?;
    app.set_public_url(app.config.public_url(bound));
    let service = router(Arc::clone(&app)).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, service)
        .with_graceful_shutdown(shutdown)
        .await?;
    tracing::info!("HTTP server stopped; finishing deliveries in flight.");
    app.shutdown().await;
    tracing::info!("Shutdown complete.");
    Ok(())
}

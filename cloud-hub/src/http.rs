//! The operations port: `/healthz` (the process answers), `/readyz` (the
//! store answers) and `/metrics` (Prometheus text format).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use tokio_util::sync::CancellationToken;

use crate::store::TelemetryStore;

/// What the HTTP handlers need.
#[derive(Clone)]
pub struct HttpContext {
    pub store: Arc<dyn TelemetryStore>,
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(context): State<HttpContext>) -> impl IntoResponse {
    match context.store.sites_with_state().await {
        Ok(_) => (StatusCode::OK, "ready\n".to_string()),
        Err(error) => (StatusCode::SERVICE_UNAVAILABLE, format!("store: {error}\n")),
    }
}

async fn metrics() -> impl IntoResponse {
    (
        [("content-type", "text/plain; version=0.0.4")],
        crate::metrics::render(),
    )
}

/// The routes, for serving and for tests.
pub fn router(context: HttpContext) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(context)
}

/// Serves until `shutdown`.
pub async fn serve(
    listen: SocketAddr,
    context: HttpContext,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    tracing::info!(%listen, "http (health, metrics) listening");
    axum::serve(listener, router(context))
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}

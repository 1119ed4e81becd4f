//! The HTTP port (`http.listen`): `/healthz` (the process answers),
//! `/readyz` (the store, the stream and the broker answer), `/metrics`
//! (Prometheus text format) — all three unauthenticated, so bind the port to
//! an operations network — and, unless `http.dashboard = false`, the
//! dashboard behind a viewer token ([`crate::dashboard`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use tokio_util::sync::CancellationToken;

use crate::api::ApiContext;
use crate::ingress::BrokerStatus;
use crate::store::TelemetryStore;
use crate::stream::kafka::KafkaLog;

/// Longest a readiness check may take before it counts as failed (the
/// three run at once; give the probe a timeout of 3 s or more).
pub const READY_CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// What the HTTP handlers need.
#[derive(Clone)]
pub struct HttpContext {
    pub store: Arc<dyn TelemetryStore>,
    /// The Kafka log when `stream.kind = "kafka"`; `None` in embedded mode.
    pub stream: Option<Arc<KafkaLog>>,
    /// The ingress's connection to its broker.
    pub broker: BrokerStatus,
    /// The dashboard's data and token check; `None` when it is disabled.
    pub dashboard: Option<ApiContext>,
}

async fn healthz() -> &'static str {
    "ok\n"
}

/// One readiness check's line: `name: ok (what)` or `name: failed: why`.
fn check_line(name: &str, result: &Result<String, String>) -> String {
    match result {
        Ok(what) => format!("{name}: ok ({what})\n"),
        Err(why) => format!("{name}: failed: {why}\n"),
    }
}

async fn check_store(store: &dyn TelemetryStore) -> Result<String, String> {
    match tokio::time::timeout(READY_CHECK_TIMEOUT, store.sites_with_state()).await {
        Ok(Ok(sites)) => Ok(format!("{} sites with data", sites.len())),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err(format!("no answer within {READY_CHECK_TIMEOUT:?}")),
    }
}

async fn check_stream(stream: Option<&Arc<KafkaLog>>) -> Result<String, String> {
    let Some(log) = stream else {
        return Ok("none: the store is the log".into());
    };
    log.reachable(READY_CHECK_TIMEOUT)
        .await
        .map(|()| format!("kafka {}", log.bootstrap()))
}

/// Ready when the store, the stream (Kafka, when configured) and the
/// broker all answer; the body names each check, 503 if any failed.
async fn readyz(State(context): State<HttpContext>) -> impl IntoResponse {
    let (store, stream) = tokio::join!(
        check_store(context.store.as_ref()),
        check_stream(context.stream.as_ref())
    );
    let broker = context.broker.get();
    let ready = store.is_ok() && stream.is_ok() && broker.is_ok();
    let body = format!(
        "{}\n{}{}{}",
        if ready { "ready" } else { "not ready" },
        check_line("store", &store),
        check_line("stream", &stream),
        check_line("broker", &broker),
    );
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, body)
}

async fn metrics() -> impl IntoResponse {
    (
        [("content-type", "text/plain; version=0.0.4")],
        crate::metrics::render(),
    )
}

/// The routes, for serving and for tests.
pub fn router(context: HttpContext) -> Router {
    let dashboard = context.dashboard.clone();
    let operations = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(context);
    match dashboard {
        Some(api) => operations.merge(crate::dashboard::router(api)),
        None => operations,
    }
}

/// Serves until `shutdown`.
pub async fn serve(
    listen: SocketAddr,
    context: HttpContext,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    tracing::info!(
        %listen,
        dashboard = context.dashboard.is_some(),
        "http (health, readiness, metrics, dashboard) listening"
    );
    // Pages and metrics span several segments: send them without waiting
    // out the client's delayed ACK.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!("TCP_NODELAY on an http connection: {e}");
        }
    });
    axum::serve(listener, router(context))
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use tower::ServiceExt;

    use super::*;

    async fn get_readyz(broker: BrokerStatus) -> (StatusCode, String) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = crate::store::sqlite::SqliteStore::open(&dir.path().join("hub.sqlite"))
            .expect("sqlite");
        let app = router(HttpContext {
            store: Arc::new(store),
            stream: None,
            broker,
            dashboard: None,
        });
        let request = axum::http::Request::get("/readyz")
            .body(Body::empty())
            .expect("request");
        let response = app.oneshot(request).await.expect("response");
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .expect("body");
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn ready_names_every_check() {
        let broker = BrokerStatus::down_until_up("not started");
        broker.up("embedded broker on 127.0.0.1:8883, link alive");
        let (status, body) = get_readyz(broker).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(body.starts_with("ready\n"), "{body}");
        assert!(body.contains("store: ok (0 sites with data)"), "{body}");
        assert!(body.contains("stream: ok (none"), "{body}");
        assert!(body.contains("broker: ok (embedded broker"), "{body}");
    }

    #[tokio::test]
    async fn a_broker_that_is_down_makes_the_hub_not_ready() {
        let broker = BrokerStatus::down_until_up("external broker 127.0.0.1:1: not connected yet");
        let (status, body) = get_readyz(broker.clone()).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert!(body.starts_with("not ready\n"), "{body}");
        assert!(
            body.contains("broker: failed: external broker 127.0.0.1:1: not connected yet"),
            "{body}"
        );
        assert!(body.contains("store: ok"), "{body}");
        // Connected, then lost again.
        broker.up("connected");
        assert_eq!(get_readyz(broker.clone()).await.0, StatusCode::OK);
        broker.down("embedded mqtt link failed: closed");
        let (status, body) = get_readyz(broker).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            body.contains("broker: failed: embedded mqtt link failed"),
            "{body}"
        );
    }

    #[test]
    fn each_check_has_a_named_line() {
        assert_eq!(
            check_line("store", &Ok("2 sites with data".into())),
            "store: ok (2 sites with data)\n"
        );
        assert_eq!(
            check_line(
                "broker",
                &Err("external broker 127.0.0.1:1: refused".into())
            ),
            "broker: failed: external broker 127.0.0.1:1: refused\n"
        );
    }
}

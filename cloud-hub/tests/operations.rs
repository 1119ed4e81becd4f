//! The operations side of the HTTP port against real hubs: `/readyz` names
//! the store, the stream and the broker and fails when one of them does;
//! the Grafana dashboard in `infra/grafana/` charts every metric the hub
//! exports.

mod support;

use std::collections::BTreeSet;
use std::path::Path;

use support::{Hub, Mode, free_port};

#[tokio::test]
async fn ready_names_the_store_the_stream_and_the_broker() {
    let hub = Hub::start_in(Mode::Embedded);
    let (status, body) = hub.http_get("/readyz").await;
    assert_eq!(status, 200, "{body}\n{}", hub.log());
    assert!(body.starts_with("ready\n"), "{body}");
    assert!(body.contains("store: ok ("), "{body}");
    assert!(body.contains("stream: ok (none"), "{body}");
    assert!(
        body.contains(&format!(
            "broker: ok (embedded broker on 127.0.0.1:{}, link alive)",
            hub.mqtt_port
        )),
        "{body}"
    );
}

#[tokio::test]
async fn an_unreachable_external_broker_makes_the_hub_not_ready() {
    // Nothing listens there: the hub starts, keeps trying, and says why.
    let closed = free_port();
    let config = format!("[mqtt]\nkind = \"external\"\nhost = \"127.0.0.1\"\nport = {closed}\n");
    let hub = Hub::start(&config, closed, None);
    let (status, body) = hub.http_get("/readyz").await;
    assert_eq!(status, 503, "{body}\n{}", hub.log());
    assert!(body.starts_with("not ready\n"), "{body}");
    assert!(
        body.contains(&format!(
            "broker: failed: external broker 127.0.0.1:{closed}"
        )),
        "the failed check names the broker: {body}"
    );
    assert!(body.contains("store: ok"), "{body}");
    assert_eq!(
        hub.http_get("/healthz").await.0,
        200,
        "alive, though not ready"
    );
}

#[tokio::test]
async fn ready_asks_kafka_in_the_distributed_mode() {
    let hub = Hub::start_in(Mode::KafkaCassandra);
    let (status, body) = hub.http_get("/readyz").await;
    assert_eq!(status, 200, "{body}\n{}", hub.log());
    assert!(body.contains("stream: ok (kafka "), "{body}");
    assert!(body.contains("store: ok ("), "{body}");
}

/// Every `"obs_hub_..."` name in `cloud-hub/src/metrics.rs`.
fn metric_names() -> BTreeSet<String> {
    let source =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/metrics.rs"))
            .expect("metrics.rs");
    source
        .split('"')
        .skip(1)
        .step_by(2)
        .filter(|s| s.starts_with("obs_hub_"))
        .map(str::to_owned)
        .collect()
}

/// Every panel, rows' nested panels included.
fn panels(value: &serde_json::Value) -> Vec<&serde_json::Value> {
    let mut out = Vec::new();
    for panel in value["panels"].as_array().into_iter().flatten() {
        out.push(panel);
        out.extend(panels(panel));
    }
    out
}

#[test]
fn the_grafana_dashboard_charts_every_metric_of_the_hub() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra/grafana/observatory-hub.json");
    let text = std::fs::read_to_string(&path).expect("the dashboard");
    let dashboard: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    assert_eq!(dashboard["uid"], "observatory-hub");
    let variables = dashboard["templating"]["list"]
        .as_array()
        .expect("variables");
    assert!(
        variables.iter().any(|v| v["type"] == "datasource"
            && v["query"] == "prometheus"
            && v["name"] == "datasource"),
        "a Prometheus data source variable"
    );
    let all = panels(&dashboard);
    let mut ids = BTreeSet::new();
    let mut expressions = Vec::new();
    for panel in &all {
        assert!(
            ids.insert(panel["id"].as_u64().expect("a panel id")),
            "duplicate panel id {}",
            panel["id"]
        );
        if panel["type"] == "row" {
            continue;
        }
        assert_eq!(
            panel["datasource"]["uid"], "${datasource}",
            "{} uses the data source variable",
            panel["title"]
        );
        let targets = panel["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{} has a query", panel["title"]);
        for target in targets {
            let expr = target["expr"].as_str().expect("a PromQL expression");
            assert_eq!(
                expr.matches('(').count(),
                expr.matches(')').count(),
                "balanced: {expr}"
            );
            expressions.push(expr.to_owned());
        }
    }
    let names = metric_names();
    assert!(names.len() >= 17, "metrics.rs names: {names:?}");
    let missing: Vec<&String> = names
        .iter()
        .filter(|name| !expressions.iter().any(|e| e.contains(name.as_str())))
        .collect();
    assert!(missing.is_empty(), "metrics without a panel: {missing:?}");
    // Histograms are charted as quantiles of their buckets.
    for histogram in [
        "obs_hub_store_write_seconds",
        "obs_hub_ingest_latency_seconds",
    ] {
        assert!(
            expressions
                .iter()
                .any(|e| e.contains("histogram_quantile")
                    && e.contains(&format!("{histogram}_bucket"))),
            "{histogram} quantiles"
        );
    }
}

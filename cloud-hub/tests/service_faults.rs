//! The distributed mode through outages of the real services: Cassandra
//! stopped while telemetry keeps coming, Kafka stopped and started again.
//! These tests stop services that every other test uses, so they run one
//! at a time, in their own test binary (cargo runs test binaries one after
//! another), and always start the service again.

mod support;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use obs_proto::v1::{GetIngestStatsRequest, QueryTelemetryRequest, Resolution};
use support::{FakeNode, Hub, Mode, authed, batch, unique_site};
use tokio::sync::Mutex;

const PER_BATCH: usize = 180;
const WAIT: Duration = Duration::from_secs(120);
static SERIAL: Mutex<()> = Mutex::const_new(());

/// Runs `scripts/services.sh {action} {service}` off the async runtime, so
/// that MQTT clients keep their connections alive meanwhile.
async fn services(action: &'static str, service: &'static str) {
    tokio::task::spawn_blocking(move || services_blocking(action, service))
        .await
        .expect("services.sh task");
}

fn services_blocking(action: &str, service: &str) {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/services.sh");
    let status = Command::new("bash")
        .arg(&script)
        .args([action, service])
        .status()
        .expect("scripts/services.sh");
    assert!(status.success(), "services.sh {action} {service} failed");
}

/// Starts the service again however the test ends.
struct Restart(&'static str);

impl Drop for Restart {
    fn drop(&mut self) {
        services_blocking("up", self.0);
    }
}

async fn stored(hub: &Hub, token: &str, site: &str) -> Option<u64> {
    let mut api = hub.telemetry().await;
    let request = authed(
        GetIngestStatsRequest {
            sites: vec![site.into()],
        },
        token,
    );
    api.get_ingest_stats(request)
        .await
        .ok()
        .map(|r| r.into_inner().sites[0].samples_stored)
}

async fn wait_stored(hub: &Hub, token: &str, site: &str, want: u64) -> u64 {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let got = stored(hub, token, site).await.unwrap_or(0);
        if got >= want || tokio::time::Instant::now() > deadline {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn raw_count(hub: &Hub, token: &str, site: &str) -> usize {
    let mut api = hub.telemetry().await;
    let request = QueryTelemetryRequest {
        site: site.into(),
        device: "m1/segment/03".into(),
        attribute: "piston".into(),
        resolution: Resolution::Raw as i32,
        limit: 100_000,
        ..Default::default()
    };
    api.query_telemetry(authed(request, token))
        .await
        .expect("query")
        .into_inner()
        .samples
        .len()
}

#[tokio::test]
async fn a_cassandra_outage_delays_storage_but_loses_and_duplicates_nothing() {
    let _serial = SERIAL.lock().await;
    let hub = Hub::start_in(Mode::KafkaCassandra);
    let token = hub.token("viewer");
    let ca = hub.ca();
    let site = unique_site("cas");
    let (cert, key) = hub.enroll_site(&site).await;
    let mut node =
        FakeNode::connect(&site, hub.mqtt_port, ca.cert_pem(), Some((&cert, &key))).await;
    for seq in 1..=20 {
        node.publish(&batch(&site, seq, PER_BATCH, 0)).await;
    }
    assert_eq!(
        wait_stored(&hub, &token, &site, 20 * PER_BATCH as u64).await,
        20 * PER_BATCH as u64
    );

    let restart = Restart("cassandra");
    services("down", "cassandra").await;
    assert_eq!(
        hub.http_get("/readyz").await.0,
        503,
        "not ready without its store"
    );
    // Kafka still takes the batches: the hub keeps acknowledging them.
    for seq in 21..=60 {
        node.publish(&batch(&site, seq, PER_BATCH, 20)).await;
    }
    node.wait_ack(60, WAIT)
        .await
        .unwrap_or_else(|e| panic!("acks continue while cassandra is down: {e}\n{}", hub.log()));
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (_, metrics) = hub.http_get("/metrics").await;
    assert!(
        metrics.contains("obs_hub_store_write_errors_total{stage=\"sink\"}"),
        "the sink's failed writes are counted:\n{metrics}"
    );
    std::mem::forget(restart);
    services("up", "cassandra").await;

    let stored = wait_stored(&hub, &token, &site, 60 * PER_BATCH as u64).await;
    assert_eq!(stored, 60 * PER_BATCH as u64, "{}", hub.log());
    assert_eq!(
        raw_count(&hub, &token, &site).await,
        60 * PER_BATCH / 18,
        "no duplicates"
    );
    assert_eq!(hub.http_get("/readyz").await.0, 200);
}

#[tokio::test]
async fn a_kafka_restart_holds_acks_back_and_loses_and_duplicates_nothing() {
    let _serial = SERIAL.lock().await;
    let hub = Hub::start_in(Mode::KafkaCassandra);
    let token = hub.token("viewer");
    let ca = hub.ca();
    let site = unique_site("kaf");
    let (cert, key) = hub.enroll_site(&site).await;
    let mut node =
        FakeNode::connect(&site, hub.mqtt_port, ca.cert_pem(), Some((&cert, &key))).await;
    for seq in 1..=20 {
        node.publish(&batch(&site, seq, PER_BATCH, 0)).await;
    }
    node.wait_ack(20, WAIT).await.expect("first acks");

    let restart = Restart("kafka");
    services("down", "kafka").await;
    for seq in 21..=40 {
        node.publish(&batch(&site, seq, PER_BATCH, 20)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        node.acked(),
        20,
        "nothing is acknowledged while kafka is down"
    );
    let (status, body) = hub.http_get("/readyz").await;
    assert_eq!(status, 503, "not ready without kafka: {body}");
    assert!(body.contains("stream: failed: kafka"), "{body}");
    std::mem::forget(restart);
    services("up", "kafka").await;
    // Kafka is back. Like a fog-node whose ack timeout expired, resend
    // everything above the last ack until it is all acknowledged.
    let deadline = tokio::time::Instant::now() + WAIT;
    while node.acked() < 40 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no acks after kafka came back\n{}",
            hub.log()
        );
        let from = node.acked() + 1;
        for seq in from..=40 {
            node.publish(&batch(&site, seq, PER_BATCH, from - 1)).await;
        }
        let _ = node.wait_ack(40, Duration::from_secs(10)).await;
    }
    let stored = wait_stored(&hub, &token, &site, 40 * PER_BATCH as u64).await;
    assert_eq!(stored, 40 * PER_BATCH as u64, "{}", hub.log());
    let (status, body) = hub.http_get("/readyz").await;
    assert_eq!(status, 200, "ready again: {body}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        wait_stored(&hub, &token, &site, 40 * PER_BATCH as u64).await,
        40 * PER_BATCH as u64
    );
    assert_eq!(
        raw_count(&hub, &token, &site).await,
        40 * PER_BATCH / 18,
        "no duplicates"
    );
}

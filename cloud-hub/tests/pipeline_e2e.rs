//! End to end: a real `cloud-hub serve` process with its rumqttd broker (mTLS,
//! tenant per site), a publisher that speaks the wire contract with a site
//! certificate signed by the hub CA, and the results read back over gRPC.
//! The same test bodies run in the embedded mode (rumqttd, SQLite, no log)
//! and in the distributed modes (Kafka + Cassandra, with rumqttd or with the
//! Mosquitto started by `scripts/services.sh`).

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use obs_proto::v1::{GetIngestStatsRequest, QueryTelemetryRequest, Resolution, Sample, sample};
use support::{FakeNode, Hub, Mode, authed, batch, site_identity, unique_site};

const WAIT: Duration = Duration::from_secs(60);
const PER_BATCH: usize = 180;

async fn stored_samples(hub: &Hub, token: &str, site: &str) -> u64 {
    let mut api = hub.telemetry().await;
    let request = GetIngestStatsRequest {
        sites: vec![site.into()],
    };
    let stats = api
        .get_ingest_stats(authed(request, token))
        .await
        .expect("stats")
        .into_inner();
    stats.sites[0].samples_stored
}

/// Waits (bounded) until the store holds `want` samples of `site` — in the
/// Kafka mode the sink writes after the ack — and returns what it holds.
async fn wait_stored(hub: &Hub, token: &str, site: &str, want: u64) -> u64 {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let stored = stored_samples(hub, token, site).await;
        if stored >= want || tokio::time::Instant::now() > deadline {
            return stored;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn query(
    hub: &Hub,
    token: &str,
    site: &str,
    device: &str,
    resolution: Resolution,
) -> obs_proto::v1::QueryTelemetryResponse {
    let mut api = hub.telemetry().await;
    let request = QueryTelemetryRequest {
        site: site.into(),
        device: device.into(),
        attribute: "piston".into(),
        resolution: resolution as i32,
        limit: 100_000,
        ..Default::default()
    };
    api.query_telemetry(authed(request, token))
        .await
        .expect("query")
        .into_inner()
}

async fn raw(hub: &Hub, token: &str, site: &str, device: &str) -> Vec<Sample> {
    query(hub, token, site, device, Resolution::Raw)
        .await
        .samples
}

async fn streamed_batches_are_stored_exactly_once_with_matching_rollups(mode: Mode) {
    let hub = Hub::start_in(mode);
    let token = hub.token("viewer");
    let ca = hub.ca();
    let site = unique_site("st");
    let (cert, key) = hub.enroll_site(&site).await;
    let mut node =
        FakeNode::connect(&site, hub.mqtt_port, ca.cert_pem(), Some((&cert, &key))).await;
    for seq in 1..=50 {
        node.publish(&batch(&site, seq, PER_BATCH, 0)).await;
    }
    node.wait_ack(50, WAIT)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", hub.log()));

    let stored = wait_stored(&hub, &token, &site, 50 * PER_BATCH as u64).await;
    assert_eq!(stored, 50 * PER_BATCH as u64, "{}", hub.log());
    // Every stage is counted on /metrics, and the hub is ready.
    let (status, metrics) = hub.http_get("/metrics").await;
    assert_eq!(status, 200);
    let durable = format!(
        "obs_hub_samples_durable_total{{site=\"{site}\"}} {}",
        50 * PER_BATCH
    );
    assert!(
        metrics.contains(&durable),
        "{durable} missing from\n{metrics}"
    );
    assert!(
        metrics.contains("obs_hub_acks_published_total"),
        "{metrics}"
    );
    assert_eq!(hub.http_get("/readyz").await.0, 200);
    assert_eq!(hub.http_get("/healthz").await, (200, "ok\n".to_string()));

    let samples = raw(&hub, &token, &site, "m1/segment/01").await;
    assert_eq!(
        samples.len(),
        50 * PER_BATCH / 18,
        "distinct samples of one series"
    );
    assert!(
        samples
            .windows(2)
            .all(|w| w[0].ts_unix_ns < w[1].ts_unix_ns)
    );

    // 1-minute rollups equal a recomputation from the raw samples.
    let rollups = query(&hub, &token, &site, "m1/segment/01", Resolution::OneMinute)
        .await
        .rollups;
    let mut expected: BTreeMap<i64, (f64, u64)> = BTreeMap::new();
    for s in &samples {
        let Some(sample::Value::DoubleValue(v)) = s.value else {
            panic!("a double sample")
        };
        let entry = expected
            .entry(s.ts_unix_ns.div_euclid(60_000_000_000) * 60)
            .or_default();
        entry.0 += v;
        entry.1 += 1;
    }
    let got: BTreeMap<i64, (f64, u64)> = rollups
        .iter()
        .map(|r| {
            let start = r.bucket_start.as_ref().map(|t| t.seconds).unwrap_or(-1);
            (start, (r.sum, r.count))
        })
        .collect();
    assert_eq!(got, expected);
}

async fn a_hub_killed_mid_stream_loses_nothing_and_stores_nothing_twice(mode: Mode) {
    let mut hub = Hub::start_in(mode);
    let token = hub.token("viewer");
    let ca = hub.ca();
    let site = unique_site("kil");
    let (cert, key) = hub.enroll_site(&site).await;
    let mut node =
        FakeNode::connect(&site, hub.mqtt_port, ca.cert_pem(), Some((&cert, &key))).await;
    for seq in 1..=20 {
        node.publish(&batch(&site, seq, PER_BATCH, 0)).await;
    }
    node.wait_ack(20, WAIT)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", hub.log()));
    // Batches 21..=40 trickle in; the hub is killed while they are being
    // made durable (and, in the Kafka mode, while the sink writes).
    let publisher = node.client.clone();
    let trickle_site = site.clone();
    let trickle = tokio::spawn(async move {
        for seq in 21..=40 {
            let payload = prost::Message::encode_to_vec(&batch(&trickle_site, seq, PER_BATCH, 20));
            let topic = obs_common::site::SiteTopics::for_site(&trickle_site).telemetry;
            if publisher
                .publish(topic, rumqttc::QoS::AtLeastOnce, false, payload)
                .await
                .is_err()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    });
    node.wait_ack(25, WAIT)
        .await
        .expect("some of the second half");
    hub.kill();
    trickle.abort();
    let acked_before_crash = node.acked();
    eprintln!("{mode:?}: acked before the crash: {acked_before_crash}");
    drop(node);
    hub.spawn();

    // Like a fog-node after a reconnect: resend everything above its last
    // ack, in order, until the hub acknowledged it all.
    let mut node =
        FakeNode::connect(&site, hub.mqtt_port, ca.cert_pem(), Some((&cert, &key))).await;
    // (At least batch 40 goes again, so that even a node that had
    // everything acknowledged hears from the new hub.)
    for seq in acked_before_crash.min(39) + 1..=40 {
        node.publish(&batch(&site, seq, PER_BATCH, acked_before_crash))
            .await;
    }
    node.wait_ack(40, WAIT)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", hub.log()));
    // And a full replay of everything changes nothing.
    for seq in 1..=40 {
        node.publish(&batch(&site, seq, PER_BATCH, 0)).await;
    }
    node.wait_ack(40, WAIT)
        .await
        .expect("acks after the replay");

    let stored = wait_stored(&hub, &token, &site, 40 * PER_BATCH as u64).await;
    assert_eq!(stored, 40 * PER_BATCH as u64, "{}", hub.log());
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        stored_samples(&hub, &token, &site).await,
        40 * PER_BATCH as u64
    );
    let samples = raw(&hub, &token, &site, "m1/segment/05").await;
    assert_eq!(samples.len(), 40 * PER_BATCH / 18);
}

#[tokio::test]
async fn embedded_streamed_batches_are_stored_exactly_once_with_matching_rollups() {
    streamed_batches_are_stored_exactly_once_with_matching_rollups(Mode::Embedded).await;
}

#[tokio::test]
async fn kafka_cassandra_streamed_batches_are_stored_exactly_once_with_matching_rollups() {
    streamed_batches_are_stored_exactly_once_with_matching_rollups(Mode::KafkaCassandra).await;
}

#[tokio::test]
async fn mosquitto_kafka_cassandra_streamed_batches_are_stored_exactly_once_with_matching_rollups()
{
    streamed_batches_are_stored_exactly_once_with_matching_rollups(Mode::MosquittoKafkaCassandra)
        .await;
}

#[tokio::test]
async fn embedded_a_hub_killed_mid_stream_loses_nothing_and_stores_nothing_twice() {
    a_hub_killed_mid_stream_loses_nothing_and_stores_nothing_twice(Mode::Embedded).await;
}

#[tokio::test]
async fn kafka_cassandra_a_hub_killed_mid_stream_loses_nothing_and_stores_nothing_twice() {
    a_hub_killed_mid_stream_loses_nothing_and_stores_nothing_twice(Mode::KafkaCassandra).await;
}

async fn a_rejected_batch_is_settled_and_nothing_of_it_stored(mode: Mode) {
    let hub = Hub::start_in(mode);
    let token = hub.token("viewer");
    let ca = hub.ca();
    let site = unique_site("rej");
    let other = unique_site("oth");
    let (cert, key) = hub.enroll_site(&site).await;
    let mut node =
        FakeNode::connect(&site, hub.mqtt_port, ca.cert_pem(), Some((&cert, &key))).await;
    // Seq 1 names another site; seq 2 is fine.
    node.publish(&batch(&other, 1, 18, 0)).await;
    node.publish(&batch(&site, 2, 18, 0)).await;
    node.wait_ack(2, WAIT)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", hub.log()));
    assert_eq!(wait_stored(&hub, &token, &site, 18).await, 18);
    assert_eq!(stored_samples(&hub, &token, &other).await, 0);
    let mut api = hub.telemetry().await;
    let stats = api
        .get_ingest_stats(authed(
            GetIngestStatsRequest {
                sites: vec![site.clone()],
            },
            &token,
        ))
        .await
        .expect("stats")
        .into_inner();
    assert_eq!(stats.sites[0].dead_lettered, 1);
}

#[tokio::test]
async fn embedded_a_rejected_batch_is_settled_and_nothing_of_it_stored() {
    a_rejected_batch_is_settled_and_nothing_of_it_stored(Mode::Embedded).await;
}

#[tokio::test]
async fn kafka_cassandra_a_rejected_batch_is_settled_and_nothing_of_it_stored() {
    a_rejected_batch_is_settled_and_nothing_of_it_stored(Mode::KafkaCassandra).await;
}

#[tokio::test]
async fn sites_are_confined_to_their_prefix_and_strangers_cannot_connect() {
    let hub = Hub::start_in(Mode::Embedded);
    let token = hub.token("viewer");
    let ca = hub.ca();

    // Publishing under another site's prefix: the broker drops the client
    // and nothing reaches the hub.
    let (cert, key) = hub.enroll_site("intruder").await;
    let intruder = FakeNode::connect(
        "intruder",
        hub.mqtt_port,
        ca.cert_pem(),
        Some((&cert, &key)),
    )
    .await;
    intruder
        .publish_raw(
            "/tenants/lsst/obs/v1/up/telemetry",
            prost::Message::encode_to_vec(&batch("lsst", 1, 18, 0)),
        )
        .await;
    let mut errors = intruder.errors.clone();
    tokio::time::timeout(WAIT, errors.changed())
        .await
        .expect("the broker drops the intruder")
        .ok();
    assert!(errors.borrow().is_some());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(stored_samples(&hub, &token, "lsst").await, 0);

    // No certificate, or one from a foreign CA: no connection at all.
    let foreign =
        obs_common::pki::CertificateAuthority::generate("foreign", Duration::from_secs(3600))
            .expect("foreign ca");
    let (cert_f, key_f) = site_identity(&foreign, "nrt");
    for identity in [None, Some((cert_f.as_str(), key_f.as_str()))] {
        let mut stranger = FakeNode::connect("nrt", hub.mqtt_port, ca.cert_pem(), identity).await;
        tokio::time::timeout(WAIT, stranger.errors.changed())
            .await
            .expect("refused")
            .ok();
        assert!(
            stranger.errors.borrow().is_some(),
            "a stranger must be refused"
        );
        let acked = stranger.wait_ack(1, Duration::from_millis(300)).await;
        assert!(acked.is_err());
    }
    assert_eq!(stored_samples(&hub, &token, "nrt").await, 0);
}

#[tokio::test]
async fn grpc_calls_need_a_token_with_the_right_role() {
    let hub = Hub::start_in(Mode::Embedded);
    let mut api = hub.telemetry().await;
    let status = api
        .get_ingest_stats(tonic::Request::new(GetIngestStatsRequest::default()))
        .await
        .expect_err("no token");
    assert_eq!(status.code(), tonic::Code::Unauthenticated);
    assert!(
        status.message().contains("role viewer"),
        "{}",
        status.message()
    );
    let status = api
        .get_ingest_stats(authed(GetIngestStatsRequest::default(), "abc.wrong"))
        .await
        .expect_err("bad token");
    assert_eq!(status.code(), tonic::Code::Unauthenticated);
    let token = hub.token("viewer");
    api.get_ingest_stats(authed(GetIngestStatsRequest::default(), &token))
        .await
        .expect("viewer may read stats");
}

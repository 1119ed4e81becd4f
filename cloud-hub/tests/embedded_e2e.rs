//! End to end in the embedded mode: a real `cloud-hub serve` process with its
//! rumqttd broker (mTLS, tenant per site) and SQLite store, a publisher that
//! speaks the wire contract with a site certificate signed by the hub CA,
//! and the results read back over gRPC.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use obs_proto::v1::{GetIngestStatsRequest, QueryTelemetryRequest, Resolution, sample};
use support::{FakeNode, Hub, authed, batch, site_identity};

const WAIT: Duration = Duration::from_secs(60);
const PER_BATCH: usize = 180;

async fn stored_samples(hub: &Hub, token: &str, site: &str) -> u64 {
    let mut api = hub.telemetry().await;
    let stats = api
        .get_ingest_stats(authed(
            GetIngestStatsRequest {
                sites: vec![site.into()],
            },
            token,
        ))
        .await
        .expect("stats")
        .into_inner();
    stats.sites[0].samples_stored
}

async fn raw(hub: &Hub, token: &str, site: &str, device: &str) -> Vec<obs_proto::v1::Sample> {
    let mut api = hub.telemetry().await;
    api.query_telemetry(authed(
        QueryTelemetryRequest {
            site: site.into(),
            device: device.into(),
            attribute: "piston".into(),
            resolution: Resolution::Raw as i32,
            limit: 100_000,
            ..Default::default()
        },
        token,
    ))
    .await
    .expect("query")
    .into_inner()
    .samples
}

#[tokio::test]
async fn streamed_batches_are_stored_exactly_once_with_matching_rollups() {
    let hub = Hub::start("");
    let token = hub.token("viewer");
    let ca = hub.ca();
    let (cert, key) = site_identity(&ca, "nrt");
    let mut node =
        FakeNode::connect("nrt", hub.mqtt_port, ca.cert_pem(), Some((&cert, &key))).await;
    for seq in 1..=50 {
        node.publish(&batch("nrt", seq, PER_BATCH, 0)).await;
    }
    node.wait_ack(50, WAIT)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", hub.log()));

    assert_eq!(
        stored_samples(&hub, &token, "nrt").await,
        50 * PER_BATCH as u64
    );
    let samples = raw(&hub, &token, "nrt", "m1/segment/01").await;
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
    let mut api = hub.telemetry().await;
    let rollups = api
        .query_telemetry(authed(
            QueryTelemetryRequest {
                site: "nrt".into(),
                device: "m1/segment/01".into(),
                attribute: "piston".into(),
                resolution: Resolution::OneMinute as i32,
                ..Default::default()
            },
            &token,
        ))
        .await
        .expect("rollups")
        .into_inner()
        .rollups;
    let mut expected: BTreeMap<i64, (f64, u64)> = BTreeMap::new();
    for s in &samples {
        let Some(sample::Value::DoubleValue(v)) = s.value else {
            panic!("double")
        };
        let minute = s.ts_unix_ns.div_euclid(60_000_000_000) * 60;
        let entry = expected.entry(minute).or_default();
        entry.0 += v;
        entry.1 += 1;
    }
    let got: BTreeMap<i64, (f64, u64)> = rollups
        .iter()
        .map(|r| {
            (
                r.bucket_start.as_ref().map(|t| t.seconds).unwrap_or(-1),
                (r.sum, r.count),
            )
        })
        .collect();
    assert_eq!(got, expected);
}

#[tokio::test]
async fn a_hub_killed_mid_stream_loses_nothing_and_stores_nothing_twice() {
    let mut hub = Hub::start("");
    let token = hub.token("viewer");
    let ca = hub.ca();
    let (cert, key) = site_identity(&ca, "kil");
    let mut node =
        FakeNode::connect("kil", hub.mqtt_port, ca.cert_pem(), Some((&cert, &key))).await;
    for seq in 1..=20 {
        node.publish(&batch("kil", seq, PER_BATCH, 0)).await;
    }
    node.wait_ack(20, WAIT)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", hub.log()));
    for seq in 21..=40 {
        node.publish(&batch("kil", seq, PER_BATCH, 20)).await;
    }
    // Crash while batches 21..=40 are being written.
    node.wait_ack(22, WAIT)
        .await
        .expect("some of the second half");
    hub.kill();
    let acked_before_crash = node.acked();
    eprintln!("acked before the crash: {acked_before_crash}");
    drop(node);
    hub.spawn();

    // Like a fog-node after a reconnect: resend everything above its last
    // ack, in order, until the hub acknowledged it all.
    let mut node =
        FakeNode::connect("kil", hub.mqtt_port, ca.cert_pem(), Some((&cert, &key))).await;
    for seq in acked_before_crash + 1..=40 {
        node.publish(&batch("kil", seq, PER_BATCH, acked_before_crash))
            .await;
    }
    node.wait_ack(40, WAIT)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", hub.log()));
    // And a full replay of everything changes nothing.
    for seq in 1..=40 {
        node.publish(&batch("kil", seq, PER_BATCH, 0)).await;
    }
    node.wait_ack(40, WAIT)
        .await
        .expect("acks after the replay");
    tokio::time::sleep(Duration::from_millis(500)).await;

    assert_eq!(
        stored_samples(&hub, &token, "kil").await,
        40 * PER_BATCH as u64
    );
    let samples = raw(&hub, &token, "kil", "m1/segment/05").await;
    assert_eq!(samples.len(), 40 * PER_BATCH / 18);
}

#[tokio::test]
async fn sites_are_confined_to_their_prefix_and_strangers_cannot_connect() {
    let hub = Hub::start("");
    let token = hub.token("viewer");
    let ca = hub.ca();

    // A batch that names another site on its own topic is rejected, with
    // its seq, and nothing of it is stored.
    let (cert, key) = site_identity(&ca, "nrt");
    let mut node =
        FakeNode::connect("nrt", hub.mqtt_port, ca.cert_pem(), Some((&cert, &key))).await;
    node.publish(&batch("lsst", 1, 18, 0)).await;
    node.wait_ack(1, WAIT)
        .await
        .expect("a rejection settles seq 1");
    assert_eq!(stored_samples(&hub, &token, "nrt").await, 0);
    assert_eq!(stored_samples(&hub, &token, "lsst").await, 0);

    // Publishing under another site's prefix: the broker drops the client.
    let (cert_b, key_b) = site_identity(&ca, "intruder");
    let intruder = FakeNode::connect(
        "intruder",
        hub.mqtt_port,
        ca.cert_pem(),
        Some((&cert_b, &key_b)),
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
    eprintln!("intruder: {:?}", *errors.borrow());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(stored_samples(&hub, &token, "lsst").await, 0);

    // No certificate, or one from a foreign CA: no connection at all.
    let foreign =
        obs_common::pki::CertificateAuthority::generate("foreign", Duration::from_secs(3600))
            .unwrap();
    let (cert_f, key_f) = site_identity(&foreign, "nrt");
    for identity in [None, Some((cert_f.as_str(), key_f.as_str()))] {
        let mut stranger = FakeNode::connect("nrt", hub.mqtt_port, ca.cert_pem(), identity).await;
        tokio::time::timeout(WAIT, stranger.errors.changed())
            .await
            .expect("refused")
            .ok();
        let error = stranger.errors.borrow().clone().unwrap_or_default();
        assert!(!error.is_empty(), "a stranger must be refused");
        assert!(
            stranger
                .wait_ack(1, Duration::from_millis(300))
                .await
                .is_err()
        );
    }
}

#[tokio::test]
async fn grpc_calls_need_a_token_with_the_right_role() {
    let hub = Hub::start("");
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

//! `GetFleetHealth` over a fleet of 100 telescopes × 18 segments, through
//! the real gRPC API of a `cloud-hub serve` process (embedded mode), and the
//! health engine evaluating that fleet: `cargo bench -p cloud-hub --bench fleet`.
//! Prints figures; asserts nothing about speed.

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use obs_manufacturing::{ImportOptions, SegmentRecord, sample_csv_path};
use obs_proto::v1::fleet_health_service_client::FleetHealthServiceClient;
use obs_proto::v1::manufacturing_service_client::ManufacturingServiceClient;
use obs_proto::v1::upload_segment_records_request::Item;
use obs_proto::v1::{
    GetFleetHealthRequest, RecordInstallationRequest, Sample, SegmentRecordRow, TelemetryBatch,
    UploadOptions, UploadSegmentRecordsRequest, sample,
};
use prost::Message;
use prost_types::Timestamp;
use support::{FakeNode, Hub, Mode, authed};

const SITES: usize = 100;
const SEGMENTS: u32 = 18;
const CALLS: usize = 200;
const T0: i64 = 1_772_323_200;

fn number(device: &str, attribute: &str, at_s: i64, v: f64) -> Sample {
    Sample {
        device: device.into(),
        attribute: attribute.into(),
        ts_unix_ns: at_s * 1_000_000_000,
        value: Some(sample::Value::DoubleValue(v)),
        unit: String::new(),
        quality: 1,
    }
}

/// An hour of one-a-minute telemetry of a site, dust varying by site.
fn hour(site: &str, index: usize) -> TelemetryBatch {
    let samples = (0..60)
        .flat_map(|i| {
            let t = T0 + i * 60;
            let mut s = vec![
                number("dome/shutter/1", "percentage_open", t, 100.0),
                number(
                    "weather/station/1",
                    "dust_concentration",
                    t,
                    (index % 10) as f64 * 20.0,
                ),
                number("weather/station/1", "relative_humidity", t, 60.0),
                number("weather/station/1", "dew_point", t, -2.0),
            ];
            s.extend(
                (1..=SEGMENTS)
                    .map(|p| number(&format!("m1/segment/{p:02}"), "glass_temperature", t, 7.0)),
            );
            s
        })
        .collect();
    TelemetryBatch {
        site: site.into(),
        node_id: "node-1".into(),
        seq: 1,
        samples,
        gaps: vec![],
        created_unix_ns: T0 * 1_000_000_000,
        acked_seq: 0,
    }
}

/// A record per (site, position): the samples with their serials made unique.
fn records() -> Vec<SegmentRecord> {
    let samples: Vec<SegmentRecord> =
        obs_manufacturing::open(sample_csv_path(), &ImportOptions::default())
            .expect("samples")
            .filter_map(Result::ok)
            .map(|(_, r)| r)
            .filter(|r| r.acceptance_passed)
            .collect();
    (0..SITES * SEGMENTS as usize)
        .map(|i| {
            let mut r = samples[i % samples.len()].clone();
            r.serial = format!("BENCH-{:05}", i);
            r
        })
        .collect()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() {
    let hub = Hub::start_in(Mode::Embedded);
    let optics = hub.token("optics");
    let viewer = hub.token("viewer");
    let records = records();
    let seeded = Instant::now();
    let mut messages = vec![UploadSegmentRecordsRequest {
        item: Some(Item::Options(UploadOptions::default())),
    }];
    messages.extend(
        records
            .iter()
            .enumerate()
            .map(|(i, r)| UploadSegmentRecordsRequest {
                item: Some(Item::Row(SegmentRecordRow {
                    row: i as u64 + 1,
                    record: Some(r.into()),
                })),
            }),
    );
    let mut manufacturing = ManufacturingServiceClient::new(hub.channel(None).await);
    manufacturing
        .upload_segment_records(authed(tokio_stream::iter(messages), &optics))
        .await
        .expect("upload");
    let ca = hub.ca();
    for s in 0..SITES {
        let site = format!("bench{s:03}");
        let (cert, key) = hub.enroll_site(&site).await;
        for position in 1..=SEGMENTS {
            let request = RecordInstallationRequest {
                site: site.clone(),
                position,
                serial: records[s * SEGMENTS as usize + position as usize - 1]
                    .serial
                    .clone(),
                at: Some(Timestamp {
                    seconds: T0 - 86_400,
                    nanos: 0,
                }),
            };
            manufacturing
                .record_installation(authed(request, &optics))
                .await
                .expect("install");
        }
        let mut node =
            FakeNode::connect(&site, hub.mqtt_port, ca.cert_pem(), Some((&cert, &key))).await;
        node.publish(&hour(&site, s)).await;
        node.wait_ack(1, Duration::from_secs(60))
            .await
            .expect("ack");
    }
    println!(
        "seeded {SITES} sites x {SEGMENTS} segments in {:.1} s",
        seeded.elapsed().as_secs_f64()
    );

    let mut fleet = FleetHealthServiceClient::new(hub.channel(None).await);
    // The health engine over the whole fleet (one model batch per site).
    let started = Instant::now();
    let response = fleet
        .get_fleet_health(authed(
            GetFleetHealthRequest {
                refresh: true,
                ..Default::default()
            },
            &viewer,
        ))
        .await
        .expect("refresh")
        .into_inner();
    let evaluated = started.elapsed();
    let segments: usize = response.sites.iter().map(|s| s.segments.len()).sum();
    println!(
        "health engine: {segments} predictions for {} sites in {:.0} ms (GetFleetHealth with refresh)",
        response.sites.len(),
        evaluated.as_secs_f64() * 1000.0
    );

    for include_features in [false, true] {
        let request = GetFleetHealthRequest {
            include_features,
            ..Default::default()
        };
        let mut latencies = Vec::with_capacity(CALLS);
        let mut bytes = 0;
        for _ in 0..CALLS {
            let started = Instant::now();
            let response = fleet
                .get_fleet_health(authed(request.clone(), &viewer))
                .await
                .expect("fleet health")
                .into_inner();
            latencies.push(started.elapsed().as_secs_f64() * 1000.0);
            bytes = response.encoded_len();
            assert_eq!(
                response
                    .sites
                    .iter()
                    .map(|s| s.segments.len())
                    .sum::<usize>(),
                segments
            );
        }
        latencies.sort_by(f64::total_cmp);
        println!(
            "GetFleetHealth over {segments} segments, include_features={include_features} ({CALLS} calls, {:.0} kB, gRPC over TLS): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            bytes as f64 / 1000.0,
            percentile(&latencies, 0.5),
            percentile(&latencies, 0.99),
            latencies[latencies.len() - 1]
        );
    }
}

//! Fleet health end to end: two telescopes stream telemetry (one through a
//! heavy dust episode with the dome open, one in clean air), the optics
//! records are uploaded, 18 segments installed at each, and
//! `GetFleetHealth` returns every installed segment with a prediction from
//! the ONNX model, its sha256 and the input completeness — the dusty
//! telescope's segments ranked above the clean one's.

mod support;

use std::time::Duration;

use obs_manufacturing::{ImportOptions, SegmentRecord, sample_csv_path};
use obs_proto::v1::fleet_health_service_client::FleetHealthServiceClient;
use obs_proto::v1::manufacturing_service_client::ManufacturingServiceClient;
use obs_proto::v1::upload_segment_records_request::Item;
use obs_proto::v1::{
    GetFleetHealthRequest, GetSegmentLifecycleRequest, RecordInstallationRequest, Risk,
    SegmentRecordRow, TelemetryBatch, UploadOptions, UploadSegmentRecordsRequest,
    WatchFleetHealthRequest,
};
use prost_types::Timestamp;
use sha2::{Digest, Sha256};
use support::{FakeNode, Hub, Mode, authed, open_dome_hour, unique_site};

const WAIT: Duration = Duration::from_secs(90);
/// 2026-03-01T00:00:00Z.
const T0: i64 = 1_772_323_200;
const MIN: i64 = 60;
/// Hours of telemetry streamed.
const HOURS: i64 = 48;

/// One hour of one-a-minute telemetry with the dome open and `dust` µg/m³.
fn hour(site: &str, seq: u64, dust: f64) -> TelemetryBatch {
    open_dome_hour(site, seq, T0, MIN, dust)
}

fn records() -> Vec<(u64, SegmentRecord)> {
    obs_manufacturing::open(sample_csv_path(), &ImportOptions::default())
        .expect("samples")
        .map(|item| item.expect("a valid sample row"))
        .collect()
}

#[tokio::test]
async fn fleet_health_predicts_every_installed_segment_and_ranks_the_dusty_site_first() {
    let hub = Hub::start_in(Mode::Embedded);
    let optics = hub.token("optics");
    let viewer = hub.token("viewer");
    let (dusty, clean) = (unique_site("dusty"), unique_site("clean"));

    // Records uploaded, then 18 accepted segments installed at each site.
    let records = records();
    let mut messages = vec![UploadSegmentRecordsRequest {
        item: Some(Item::Options(UploadOptions {
            partial: true,
            source: "segments.csv".into(),
            ..Default::default()
        })),
    }];
    messages.extend(records.iter().map(|(row, r)| UploadSegmentRecordsRequest {
        item: Some(Item::Row(SegmentRecordRow {
            row: *row,
            record: Some(r.into()),
        })),
    }));
    let mut manufacturing = ManufacturingServiceClient::new(hub.channel(None).await);
    manufacturing
        .upload_segment_records(authed(tokio_stream::iter(messages), &optics))
        .await
        .unwrap_or_else(|e| panic!("upload: {e}\n{}", hub.log()));
    let accepted: Vec<&SegmentRecord> = records
        .iter()
        .map(|(_, r)| r)
        .filter(|r| r.acceptance_passed)
        .collect();
    let mut identities = std::collections::HashMap::new();
    for (site, serials) in [(&dusty, &accepted[..18]), (&clean, &accepted[18..36])] {
        identities.insert(site.clone(), hub.enroll_site(site).await);
        for (i, record) in serials.iter().enumerate() {
            let request = RecordInstallationRequest {
                site: site.clone(),
                position: i as u32 + 1,
                serial: record.serial.clone(),
                at: Some(Timestamp {
                    seconds: T0 - 86_400,
                    nanos: 0,
                }),
            };
            manufacturing
                .record_installation(authed(request, &optics))
                .await
                .unwrap_or_else(|e| panic!("install {}: {e}", record.serial));
        }
    }

    // Two days of telemetry: a calima at one site, clean air at the other.
    for (site, dust) in [(&dusty, 300.0), (&clean, 2.0)] {
        let (cert, key) = &identities[site];
        let ca = hub.ca();
        let mut node =
            FakeNode::connect(site, hub.mqtt_port, ca.cert_pem(), Some((cert, key))).await;
        for seq in 1..=HOURS as u64 {
            node.publish(&hour(site, seq, dust)).await;
        }
        node.wait_ack(HOURS as u64, WAIT)
            .await
            .unwrap_or_else(|e| panic!("{site}: {e}\n{}", hub.log()));
    }

    let mut fleet = FleetHealthServiceClient::new(hub.channel(None).await);
    let request = GetFleetHealthRequest {
        sites: vec![dusty.clone(), clean.clone()],
        refresh: true,
        include_features: true,
        ..Default::default()
    };
    let response = fleet
        .get_fleet_health(authed(request, &viewer))
        .await
        .unwrap_or_else(|e| panic!("fleet health: {e}\n{}", hub.log()))
        .into_inner();

    let model = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../ml/models/mirror_health.onnx"
    ))
    .expect("the committed model");
    let sha = hex::encode(Sha256::digest(&model));
    assert_eq!(response.model_sha256, sha);
    assert_eq!(response.sites.len(), 2);
    let mut mean_days = Vec::new();
    for site in &response.sites {
        assert_eq!(
            site.segments.len(),
            18,
            "every installed segment of {}",
            site.site
        );
        let mut days = 0.0;
        for segment in &site.segments {
            let p = segment.prediction.as_ref().expect("a prediction");
            assert_eq!(p.model_sha256, sha);
            assert!(
                p.completeness > 0.8 && p.completeness < 1.0,
                "no reflectometer reading yet: {}",
                p.completeness
            );
            assert_eq!(p.features.len(), obs_ml::FEATURES.len());
            assert!((50.0..=100.0).contains(&p.reflectivity_650_pct), "{p:?}");
            assert!(
                segment
                    .provenance
                    .as_ref()
                    .is_some_and(|v| !v.coating_batch.is_empty())
            );
            assert_eq!(
                p.as_of.as_ref().map(|t| t.seconds),
                Some(T0 + HOURS * 3600 - 60),
                "the site's clock"
            );
            days += p.days_to_threshold;
        }
        mean_days.push((site.site.clone(), days / 18.0, site.segments[0].risk));
        // Sorted most urgent first.
        let urgency: Vec<(i32, f64)> = site
            .segments
            .iter()
            .map(|s| {
                (
                    s.risk,
                    s.prediction
                        .as_ref()
                        .map(|p| p.days_to_threshold)
                        .unwrap_or(f64::MAX),
                )
            })
            .collect();
        assert!(
            urgency
                .windows(2)
                .all(|w| w[0].0 > w[1].0 || (w[0].0 == w[1].0 && w[0].1 <= w[1].1)),
            "{urgency:?}"
        );
    }
    eprintln!("mean days to threshold by site: {mean_days:?}");
    let dusty_days = mean_days
        .iter()
        .find(|(s, _, _)| s == &dusty)
        .map(|m| m.1)
        .unwrap_or_default();
    let clean_days = mean_days
        .iter()
        .find(|(s, _, _)| s == &clean)
        .map(|m| m.1)
        .unwrap_or_default();
    assert!(
        dusty_days < clean_days,
        "the dusty site needs maintenance sooner: {mean_days:?}"
    );
    let dusty_exposure = response
        .sites
        .iter()
        .find(|s| s.site == dusty)
        .and_then(|s| s.segments[0].exposure_since_maintenance)
        .expect("exposure");
    assert!(
        dusty_exposure.dust_dose_ug_m3_h > 100.0 * 40.0,
        "{dusty_exposure:?}"
    );

    // A filter on risk keeps only the segments at or above it.
    let request = GetFleetHealthRequest {
        min_risk: Risk::Watch as i32,
        ..Default::default()
    };
    let filtered = fleet
        .get_fleet_health(authed(request, &viewer))
        .await
        .expect("filtered")
        .into_inner();
    assert!(
        filtered
            .sites
            .iter()
            .flat_map(|s| &s.segments)
            .all(|s| s.risk >= Risk::Watch as i32)
    );
    // Without include_features the listing leaves the model inputs out.
    let request = GetFleetHealthRequest {
        sites: vec![dusty.clone(), clean.clone()],
        ..Default::default()
    };
    let listing = fleet
        .get_fleet_health(authed(request, &viewer))
        .await
        .expect("listing")
        .into_inner();
    let predictions: Vec<_> = listing
        .sites
        .iter()
        .flat_map(|s| &s.segments)
        .filter_map(|s| s.prediction.as_ref())
        .collect();
    assert_eq!(predictions.len(), 36);
    assert!(predictions.iter().all(|p| p.features.is_empty()));

    // The prediction is in the segment's lifecycle too.
    let serial = accepted[0].serial.clone();
    let lifecycle = manufacturing
        .get_segment_lifecycle(authed(
            GetSegmentLifecycleRequest {
                serial: serial.clone(),
            },
            &viewer,
        ))
        .await
        .expect("lifecycle")
        .into_inner();
    assert!(
        !lifecycle.predictions.is_empty(),
        "the evaluation is in the lifecycle"
    );
    assert_eq!(lifecycle.predictions[0].serial, serial);

    // WatchFleetHealth: the full picture first, then the segments whose
    // health changed (here: after another hour of dust and a refresh).
    let mut watch = fleet
        .watch_fleet_health(authed(
            WatchFleetHealthRequest {
                filter: Some(GetFleetHealthRequest {
                    sites: vec![dusty.clone()],
                    ..Default::default()
                }),
            },
            &viewer,
        ))
        .await
        .expect("watch")
        .into_inner();
    let first = tokio::time::timeout(WAIT, watch.message())
        .await
        .expect("a first update")
        .expect("stream")
        .expect("an update");
    let snapshot = first.snapshot.expect("the first update is a snapshot");
    assert_eq!(snapshot.sites.len(), 1);
    assert_eq!(snapshot.sites[0].segments.len(), 18);
    {
        let (cert, key) = &identities[&dusty];
        let ca = hub.ca();
        let mut node =
            FakeNode::connect(&dusty, hub.mqtt_port, ca.cert_pem(), Some((cert, key))).await;
        node.publish(&hour(&dusty, HOURS as u64 + 1, 300.0)).await;
        node.wait_ack(HOURS as u64 + 1, WAIT)
            .await
            .expect("one more hour");
    }
    let request = GetFleetHealthRequest {
        sites: vec![dusty.clone()],
        refresh: true,
        ..Default::default()
    };
    fleet
        .get_fleet_health(authed(request, &viewer))
        .await
        .expect("refresh");
    let next = tokio::time::timeout(WAIT, watch.message())
        .await
        .expect("a change within the watch interval")
        .expect("stream")
        .expect("an update");
    assert!(next.snapshot.is_none());
    assert_eq!(
        next.changed.len(),
        18,
        "every segment has a newer prediction"
    );

    // Viewers only: no token is refused.
    let status = fleet
        .get_fleet_health(tonic::Request::new(GetFleetHealthRequest::default()))
        .await
        .expect_err("no token");
    assert_eq!(status.code(), tonic::Code::Unauthenticated);
}

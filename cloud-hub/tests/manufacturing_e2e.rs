//! Segment records and lifecycles end to end, in the embedded mode (rumqttd,
//! SQLite) and the distributed mode (Kafka, Cassandra): the committed sample
//! records uploaded over gRPC, 18 segments installed at each of three
//! telescopes, telemetry streamed by two of them (so exposure accumulates),
//! maintenance recorded by the optics centre and reported by the sites
//! themselves, and the lifecycle of a segment that was recoated and moved
//! from one telescope to another.

mod support;

use std::time::Duration;

use obs_manufacturing::{ImportOptions, SegmentRecord, sample_csv_path};
use obs_proto::v1::manufacturing_service_client::ManufacturingServiceClient;
use obs_proto::v1::upload_segment_records_request::Item;
use obs_proto::v1::{
    CohortGrouping, GetCohortsRequest, GetSegmentLifecycleRequest, MaintenanceEvent,
    MaintenanceKind, RecordInstallationRequest, RecordMaintenanceRequest, Reflectivity, Sample,
    SegmentLifecycle, SegmentRecordRow, TelemetryBatch, UploadOptions, UploadSegmentRecordsRequest,
    sample,
};
use prost_types::Timestamp;
use support::{FakeNode, Hub, Mode, authed, unique_site};
use tonic::transport::Channel;

const WAIT: Duration = Duration::from_secs(90);
/// 2026-01-01T00:00:00Z, seconds.
const T0: i64 = 1_767_225_600;
const MIN: i64 = 60;
const HOUR: i64 = 3600;
/// Every segment is installed ten days before the telemetry starts.
const INSTALLED: i64 = T0 - 10 * 86_400;
/// The segment at site A position 7 is recoated, then moved to site B
/// position 18.
const RECOATED: i64 = T0 + 3 * HOUR + 5 * MIN;
const MOVED: i64 = T0 + 3 * HOUR + 10 * MIN;
const NEW_BATCH: &str = "AL-2026-01";

fn ts(seconds: i64) -> Option<Timestamp> {
    Some(Timestamp { seconds, nanos: 0 })
}

fn value(device: &str, attribute: &str, at_s: i64, v: sample::Value) -> Sample {
    Sample {
        device: device.into(),
        attribute: attribute.into(),
        ts_unix_ns: at_s * 1_000_000_000,
        value: Some(v),
        unit: String::new(),
        quality: 1,
    }
}

fn number(device: &str, attribute: &str, at_s: i64, v: f64) -> Sample {
    value(device, attribute, at_s, sample::Value::DoubleValue(v))
}

/// A maintenance event sample as the fog-node's devices report it.
fn event(at_s: i64, json: &str) -> Sample {
    value(
        "m1/maintenance/1",
        "event",
        at_s,
        sample::Value::StringValue(json.into()),
    )
}

/// 30 minutes of telemetry from `start`, one reading a minute: the dome
/// open, the weather, and every segment's glass temperature.
fn batch(site: &str, seq: u64, start: i64, extra: Vec<Sample>) -> TelemetryBatch {
    let mut samples: Vec<Sample> = (0..30)
        .flat_map(|i| {
            let t = start + i * MIN;
            let mut s = vec![
                number("dome/shutter/1", "percentage_open", t, 100.0),
                number("weather/station/1", "dust_concentration", t, 8.0),
                number("weather/station/1", "relative_humidity", t, 60.0),
                number("weather/station/1", "dew_point", t, -2.0),
            ];
            s.extend(
                (1..=18)
                    .map(|p| number(&format!("m1/segment/{p:02}"), "glass_temperature", t, 6.0)),
            );
            s
        })
        .collect();
    samples.extend(extra);
    TelemetryBatch {
        site: site.into(),
        node_id: "node-1".into(),
        seq,
        samples,
        gaps: vec![],
        created_unix_ns: start * 1_000_000_000,
        acked_seq: 0,
    }
}

fn samples() -> Vec<(u64, SegmentRecord)> {
    obs_manufacturing::open(sample_csv_path(), &ImportOptions::default())
        .expect("samples")
        .map(|item| item.expect("a valid sample row"))
        .collect()
}

async fn client(hub: &Hub) -> ManufacturingServiceClient<Channel> {
    ManufacturingServiceClient::new(hub.channel(None).await)
}

async fn install(hub: &Hub, token: &str, site: &str, position: u32, serial: &str, at: i64) {
    let request = RecordInstallationRequest {
        site: site.into(),
        position,
        serial: serial.into(),
        at: ts(at),
    };
    client(hub)
        .await
        .record_installation(authed(request, token))
        .await
        .unwrap_or_else(|e| panic!("install {serial} at {site}/{position}: {e}"));
}

async fn lifecycle(hub: &Hub, token: &str, serial: &str) -> SegmentLifecycle {
    let request = GetSegmentLifecycleRequest {
        serial: serial.into(),
    };
    client(hub)
        .await
        .get_segment_lifecycle(authed(request, token))
        .await
        .unwrap_or_else(|e| panic!("lifecycle of {serial}: {e}"))
        .into_inner()
}

/// Polls the lifecycle of `serial` until `done` (the Kafka sink writes
/// after the ack) or [`WAIT`].
async fn lifecycle_when(
    hub: &Hub,
    token: &str,
    serial: &str,
    done: impl Fn(&SegmentLifecycle) -> bool,
) -> SegmentLifecycle {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let l = lifecycle(hub, token, serial).await;
        if done(&l) || tokio::time::Instant::now() > deadline {
            return l;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn at_650(readings: &[Reflectivity]) -> Option<f64> {
    readings
        .iter()
        .find(|r| r.wavelength_nm == 650)
        .map(|r| r.percent)
}

async fn stream(hub: &Hub, site: &str, batches: Vec<TelemetryBatch>) {
    let (cert, key) = hub.enroll_site(site).await;
    let ca = hub.ca();
    let mut node = FakeNode::connect(site, hub.mqtt_port, ca.cert_pem(), Some((&cert, &key))).await;
    let last = batches.len() as u64;
    for b in &batches {
        node.publish(b).await;
    }
    node.wait_ack(last, WAIT)
        .await
        .unwrap_or_else(|e| panic!("{site}: {e}\n{}", hub.log()));
}

async fn a_segment_recoated_and_moved_has_one_lifecycle_across_telescopes(mode: Mode) {
    let hub = Hub::start_in(mode);
    let optics = hub.token("optics");
    let viewer = hub.token("viewer");
    let (a, b, c) = (unique_site("ma"), unique_site("mb"), unique_site("mc"));

    // The committed samples, uploaded over gRPC in one atomic upload.
    let records = samples();
    let mut messages = vec![UploadSegmentRecordsRequest {
        item: Some(Item::Options(UploadOptions {
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
    let mut api = client(&hub).await;
    let started = std::time::Instant::now();
    let uploaded = api
        .upload_segment_records(authed(tokio_stream::iter(messages), &optics))
        .await
        .unwrap_or_else(|e| panic!("upload: {e}\n{}", hub.log()))
        .into_inner();
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{mode:?}: 66 sample records uploaded in {seconds:.3} s ({:.0} records/s)",
        66.0 / seconds
    );
    assert_eq!(
        (uploaded.received, uploaded.stored, uploaded.rejected),
        (66, 66, 0)
    );

    // 18 accepted segments at each of three telescopes; the rest are spares.
    let accepted: Vec<&str> = records
        .iter()
        .filter(|(_, r)| r.acceptance_passed)
        .map(|(_, r)| r.serial.as_str())
        .collect();
    for (k, site) in [&a, &b, &c].into_iter().enumerate() {
        for position in 1..=18u32 {
            let serial = accepted[k * 18 + position as usize - 1];
            install(&hub, &optics, site, position, serial, INSTALLED).await;
        }
    }
    let moved = accepted[6]; // site A position 7
    let cleaned = accepted[3]; // site A position 4
    let displaced = accepted[18 + 17]; // site B position 18

    // Site A streams three hours and reports two cleanings it performed (and
    // two events the hub cannot use, which must not stop the batch).
    let cleaning = |segment: u32, before: f64, after: f64| {
        format!(
            r#"{{"kind":"cleaning","segment":{segment},"before":{{"470nm":86.7,"650nm":{before}}},"after":{{"470nm":89.6,"650nm":{after}}}}}"#
        )
    };
    let a_batches = (0..6)
        .map(|i| {
            let start = T0 + i * 30 * MIN;
            let extra = match i {
                2 => vec![event(T0 + HOUR + 5 * MIN, &cleaning(7, 87.1, 89.9))],
                4 => vec![
                    event(T0 + 2 * HOUR, &cleaning(4, 85.5, 88.0)),
                    event(T0 + 2 * HOUR + MIN, "{not json"),
                    event(T0 + 2 * HOUR + 2 * MIN, &cleaning(19, 85.0, 88.0)),
                ],
                _ => vec![],
            };
            batch(&a, i as u64 + 1, start, extra)
        })
        .collect();
    stream(&hub, &a, a_batches).await;

    // The optics centre recoats the segment of A/7 and moves it to B/18.
    let recoat = MaintenanceEvent {
        serial: moved.into(),
        kind: MaintenanceKind::Recoat as i32,
        at: ts(RECOATED),
        reflectivity_after: vec![Reflectivity {
            wavelength_nm: 650,
            percent: 91.3,
        }],
        coating_batch: NEW_BATCH.into(),
        notes: "stripped and recoated at CSOA-VC1".into(),
        ..Default::default()
    };
    for created in [true, false] {
        let r = client(&hub)
            .await
            .record_maintenance(authed(
                RecordMaintenanceRequest {
                    event: Some(recoat.clone()),
                },
                &optics,
            ))
            .await
            .expect("recoat")
            .into_inner();
        assert_eq!(r.created, created, "a repeated recoat is the same event");
    }
    install(&hub, &optics, &b, 18, moved, MOVED).await;

    // Site B streams three hours after the move, with a cleaning and a
    // reflectometer reading of position 18.
    let b_batches = (0..6)
        .map(|i| {
            let start = MOVED + 10 * MIN + i * 30 * MIN;
            let extra = match i {
                1 => vec![event(T0 + 4 * HOUR, &cleaning(18, 91.0, 91.2))],
                3 => vec![number(
                    "m1/reflectometer/1",
                    "seg18_650nm",
                    T0 + 5 * HOUR,
                    90.8,
                )],
                _ => vec![],
            };
            batch(&b, i as u64 + 1, start, extra)
        })
        .collect();
    stream(&hub, &b, b_batches).await;

    // The lifecycle of the moved segment spans both telescopes.
    let life = lifecycle_when(&hub, &viewer, moved, |l| {
        l.maintenance.len() >= 3
            && l.installations.len() == 2
            && l.installations
                .iter()
                .all(|p| p.exposure.is_some_and(|e| e.open_dome_hours > 2.5))
    })
    .await;
    assert_eq!(life.record.as_ref().map(|r| r.version), Some(1));
    let periods: Vec<(String, u32, i64, Option<i64>, f64)> = life
        .installations
        .iter()
        .map(|p| {
            let i = p.installation.clone().expect("installation");
            (
                i.site,
                i.position,
                i.installed_at.expect("from").seconds,
                i.removed_at.map(|t| t.seconds),
                p.exposure.expect("exposure").open_dome_hours,
            )
        })
        .collect();
    assert_eq!(periods.len(), 2, "{periods:?}\n{}", hub.log());
    assert_eq!(
        (
            periods[0].0.as_str(),
            periods[0].1,
            periods[0].2,
            periods[0].3
        ),
        (a.as_str(), 7, INSTALLED, Some(MOVED))
    );
    assert_eq!(
        (
            periods[1].0.as_str(),
            periods[1].1,
            periods[1].2,
            periods[1].3
        ),
        (b.as_str(), 18, MOVED, None)
    );
    // Three hours with the dome open at each telescope (hourly totals).
    for (site, _, _, _, hours) in &periods {
        assert!(
            (2.5..=3.5).contains(hours),
            "{site}: {hours} open-dome hours\n{periods:?}"
        );
    }
    let events: Vec<(String, String, String, u32, String)> = life
        .maintenance
        .iter()
        .map(|m| {
            let kind = MaintenanceKind::try_from(m.kind)
                .expect("kind")
                .as_str_name()
                .to_owned();
            (
                kind,
                m.source.clone(),
                m.site.clone(),
                m.position,
                m.coating_batch.clone(),
            )
        })
        .collect();
    assert_eq!(
        events,
        vec![
            (
                "MAINTENANCE_KIND_CLEANING".into(),
                format!("site:{a}"),
                a.clone(),
                7,
                String::new()
            ),
            (
                "MAINTENANCE_KIND_RECOAT".into(),
                "api:e2e".into(),
                a.clone(),
                7,
                NEW_BATCH.into()
            ),
            (
                "MAINTENANCE_KIND_CLEANING".into(),
                format!("site:{b}"),
                b.clone(),
                18,
                String::new()
            ),
        ],
        "{}",
        hub.log()
    );
    assert_eq!(at_650(&life.maintenance[0].reflectivity_before), Some(87.1));
    assert!(
        life.predictions.is_empty(),
        "filled by the health engine (issue 7)"
    );

    // The site-reported cleaning of A/4, and the displaced segment of B/18.
    let cleaned_life = lifecycle_when(&hub, &viewer, cleaned, |l| !l.maintenance.is_empty()).await;
    let m = &cleaned_life.maintenance;
    assert_eq!(m.len(), 1, "the unusable events were skipped: {m:?}");
    assert_eq!(
        (m[0].source.clone(), m[0].position),
        (format!("site:{a}"), 4)
    );
    assert_eq!(m[0].at.map(|t| t.seconds), Some(T0 + 2 * HOUR));
    assert_eq!(
        (
            at_650(&m[0].reflectivity_before),
            at_650(&m[0].reflectivity_after)
        ),
        (Some(85.5), Some(88.0))
    );
    let displaced_life = lifecycle(&hub, &viewer, displaced).await;
    let removed = displaced_life.installations[0]
        .installation
        .clone()
        .expect("installation");
    assert_eq!(
        removed.removed_at.map(|t| t.seconds),
        Some(MOVED),
        "installing over B/18 closed it"
    );
    let (_, metrics) = hub.http_get("/metrics").await;
    for outcome in ["malformed", "unknown_segment", "recorded"] {
        assert!(
            metrics
                .lines()
                .any(|l| l.starts_with("obs_hub_site_maintenance_events_total")
                    && l.contains(&format!("outcome=\"{outcome}\""))
                    && l.contains(&format!("site=\"{a}\""))),
            "{outcome} of {a} missing:\n{metrics}"
        );
    }

    // Cohorts: every record counts once; the recoated segment is in its new
    // batch, measured by B's cleaning and reflectometer after the recoat.
    let cohorts = |group_by: CohortGrouping, sites: Vec<String>| {
        let hub = &hub;
        let viewer = viewer.clone();
        async move {
            let request = GetCohortsRequest {
                group_by: group_by as i32,
                sites,
            };
            client(hub)
                .await
                .get_cohorts(authed(request, &viewer))
                .await
                .expect("cohorts")
                .into_inner()
                .cohorts
        }
    };
    for grouping in [
        CohortGrouping::Substrate,
        CohortGrouping::FigureErrorBand,
        CohortGrouping::CoatingBatch,
    ] {
        let all = cohorts(grouping, vec![]).await;
        assert_eq!(
            all.iter().map(|c| c.segments).sum::<u32>(),
            66,
            "{grouping:?}: {all:?}"
        );
    }
    let by_batch = cohorts(CohortGrouping::CoatingBatch, vec![]).await;
    let fresh = by_batch
        .iter()
        .find(|c| c.key == NEW_BATCH)
        .expect("the new batch");
    assert_eq!(
        (fresh.segments, fresh.segments_measured),
        (1, 1),
        "{fresh:?}"
    );
    assert!(fresh.open_dome_hours > 2.5, "{fresh:?}");
    assert!(
        fresh.mean_loss_points_per_1000_open_hours > 0.0,
        "{fresh:?}"
    );
    let at_a = cohorts(CohortGrouping::Substrate, vec![a.clone()]).await;
    assert_eq!(
        at_a.iter().map(|c| c.segments).sum::<u32>(),
        17,
        "A/7 left: {at_a:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_a_segment_recoated_and_moved_has_one_lifecycle_across_telescopes() {
    a_segment_recoated_and_moved_has_one_lifecycle_across_telescopes(Mode::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_cassandra_a_segment_recoated_and_moved_has_one_lifecycle_across_telescopes() {
    a_segment_recoated_and_moved_has_one_lifecycle_across_telescopes(Mode::KafkaCassandra).await;
}

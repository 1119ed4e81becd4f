//! One test body that every [`TelemetryStore`] must pass, run against the
//! embedded store in unit tests and against Cassandra in `tests/`.
//! Panics with a message naming the failed expectation.

mod segments;

use obs_proto::v1::{Sample, TelemetryBatch, sample};

pub use self::segments::segment_store_suite;
use super::{DeadLetter, SeriesQuery, TelemetryStore};
use crate::ingest::{Aggregate, Decision, Resolution, SiteState};

const S: i64 = 1_000_000_000;
/// 2026-01-01T00:00:00Z
const T0: i64 = 1_767_225_600 * S;

fn sample(device: &str, attribute: &str, ts_ns: i64, value: f64) -> Sample {
    Sample {
        device: device.into(),
        attribute: attribute.into(),
        ts_unix_ns: ts_ns,
        value: Some(sample::Value::DoubleValue(value)),
        unit: "u".into(),
        quality: 1,
    }
}

/// Batch `seq` of `site`: 90 seconds of 1 Hz data of a dome, a weather
/// station and two segments, starting 90 s after the previous batch.
pub fn batch(site: &str, seq: u64) -> TelemetryBatch {
    let start = T0 + (seq as i64 - 1) * 90 * S;
    let samples = (0..90)
        .flat_map(|i| {
            let t = start + i * S;
            let x = (seq * 90 + i as u64) as f64;
            [
                sample("dome/shutter/1", "percentage_open", t, 100.0),
                sample(
                    "weather/station/1",
                    "dust_concentration",
                    t,
                    25.0 + (x % 7.0),
                ),
                sample(
                    "weather/station/1",
                    "relative_humidity",
                    t,
                    70.0 + (x % 20.0),
                ),
                sample("weather/station/1", "dew_point", t, 3.0),
                sample("m1/segment/01", "glass_temperature", t, 4.0 + (x % 3.0)),
                sample("m1/segment/02", "glass_temperature", t, 9.0),
            ]
        })
        .collect();
    TelemetryBatch {
        site: site.into(),
        node_id: "node-1".into(),
        seq,
        samples,
        gaps: vec![],
        created_unix_ns: start,
        acked_seq: seq - 1,
    }
}

async fn apply<S: TelemetryStore>(store: &S, state: &mut SiteState, batch: &TelemetryBatch) {
    assert_eq!(state.decide(batch), Decision::Accept, "seq {}", batch.seq);
    let mut next = state.clone();
    let writes = next.accept(batch);
    store
        .write_batch(batch, &writes, Some(&next))
        .await
        .expect("write batch");
    *state = next;
}

fn query(site: &str, device: &str, attribute: &str) -> SeriesQuery {
    SeriesQuery {
        site: site.into(),
        device: device.into(),
        attribute: attribute.into(),
        from_ns: T0 - 3600 * S,
        to_ns: T0 + 10 * 86_400 * S,
        limit: 100_000,
    }
}

/// Everything a store must do for the telemetry path. `site` must be unused.
pub async fn telemetry_store_suite<S: TelemetryStore>(store: &S, site: &str) {
    assert!(store.load_site_state(site).await.expect("load").is_none());

    // Ten batches in order, with batch 4 written twice as after a crash
    // between its rows and its state (the state of batch 3 is what was kept).
    let mut state = SiteState::default();
    for seq in 1..=3 {
        apply(store, &mut state, &batch(site, seq)).await;
    }
    let before_crash = state.clone();
    apply(store, &mut state, &batch(site, 4)).await;
    let mut replayed = before_crash;
    apply(store, &mut replayed, &batch(site, 4)).await;
    assert_eq!(replayed, state, "replaying batch 4 gives the same state");
    for seq in 5..=10 {
        apply(store, &mut state, &batch(site, seq)).await;
    }

    // Raw samples: exactly the distinct samples sent.
    let rh = query(site, "weather/station/1", "relative_humidity");
    let raw = store.query_samples(&rh).await.expect("query samples");
    assert_eq!(
        raw.len(),
        900,
        "10 batches x 90 samples, the replay added none"
    );
    assert!(
        raw.windows(2).all(|w| w[0].ts_unix_ns < w[1].ts_unix_ns),
        "ordered, distinct"
    );
    let sent: Vec<Sample> = (1..=10)
        .flat_map(|seq| batch(site, seq).samples)
        .filter(|s| s.attribute == "relative_humidity")
        .collect();
    assert_eq!(raw, sent, "samples read back as sent");

    // Rollups equal a recomputation from the raw samples.
    for resolution in [Resolution::Minute, Resolution::Hour] {
        let stored = store
            .query_rollups(&rh, resolution)
            .await
            .expect("query rollups");
        let mut expected: std::collections::BTreeMap<i64, Aggregate> = Default::default();
        for s in &raw {
            let Some(sample::Value::DoubleValue(v)) = s.value else {
                continue;
            };
            expected
                .entry(resolution.bucket_start(s.ts_unix_ns))
                .and_modify(|a| a.add(v))
                .or_insert_with(|| Aggregate::of(v));
        }
        assert_eq!(stored.len(), expected.len(), "{resolution:?} buckets");
        for point in stored {
            let want = expected[&point.bucket_start];
            let got = point.aggregate;
            assert_eq!(
                (got.min, got.max, got.count),
                (want.min, want.max, want.count)
            );
            assert!((got.sum - want.sum).abs() < 1e-6, "{resolution:?} sum");
        }
    }

    // Late data: a sample older than the open minute is recomputed in.
    let late_ts = T0 + 30 * S + 500_000_000;
    let mut late = batch(site, 11);
    late.samples = vec![sample(
        "weather/station/1",
        "relative_humidity",
        late_ts,
        -40.0,
    )];
    apply(store, &mut state, &late).await;
    let minute = store
        .query_rollups(&rh, Resolution::Minute)
        .await
        .expect("rollups after late data");
    let first = minute.first().expect("a first minute");
    assert_eq!(
        (
            first.bucket_start,
            first.aggregate.min,
            first.aggregate.count
        ),
        (T0 / S, -40.0, 61)
    );

    // Latest values, exposure and the stored state.
    let latest = store.latest(site).await.expect("latest");
    let glass = latest
        .iter()
        .find(|s| s.device == "m1/segment/02" && s.attribute == "glass_temperature")
        .expect("latest glass temperature of segment 2");
    assert_eq!(glass.ts_unix_ns, T0 + (10 * 90 - 1) * S);
    let at_end = store
        .exposure_at(site, 1, T0 / S + 86_400)
        .await
        .expect("exposure")
        .expect("exposure of position 1");
    let expected = state.exposure_totals()[&1];
    assert_eq!(at_end, expected, "stored exposure is the running total");
    assert!(
        (at_end.open_dome_hours - 899.0 / 3600.0).abs() < 1e-9,
        "{at_end:?}"
    );
    assert!(at_end.dust_dose_ug_m3_h > 25.0 * 899.0 / 3600.0);
    assert_eq!(at_end.calima_events, 1);
    assert!(at_end.dew_risk_hours > 0.0);
    let p2 = store
        .exposure_at(site, 2, T0 / S + 86_400)
        .await
        .expect("exposure")
        .expect("p2");
    assert_eq!(
        p2.dew_risk_hours, 0.0,
        "segment 2 stays 6 °C above the dew point"
    );
    assert!(
        store
            .exposure_at(site, 1, T0 / S - 3600)
            .await
            .expect("exposure")
            .is_none()
    );

    let loaded = store
        .load_site_state(site)
        .await
        .expect("load")
        .expect("state");
    assert_eq!(loaded, state);
    assert_eq!(loaded.counters.samples_stored, 10 * 540 + 1);
    let counters = store
        .ingest_counters(&[format!("{site}-none"), site.to_string()])
        .await
        .expect("counters");
    assert_eq!(
        counters,
        std::collections::HashMap::from([(site.to_string(), loaded.counters.clone())]),
        "only sites with state"
    );
    assert!(
        store
            .sites_with_state()
            .await
            .expect("sites")
            .contains(&site.to_string())
    );

    // Dead letters are kept and counted per site.
    let letter = DeadLetter {
        site: Some(site.into()),
        topic: format!("/tenants/{site}/obs/v1/up/telemetry"),
        at_unix_ns: T0,
        reason: "undecodable".into(),
        payload: vec![1, 2, 3],
    };
    store
        .record_dead_letter(&letter)
        .await
        .expect("dead letter");
    store
        .record_dead_letter(&letter)
        .await
        .expect("dead letter");
    let counts = store.dead_letter_counts().await.expect("counts");
    assert!(counts.contains(&(Some(site.to_string()), 2)), "{counts:?}");
}

/// Everything a store must do for API tokens and the audit log.
pub async fn access_store_suite<S: crate::access::AccessStore>(store: &S) {
    use crate::access::{AuditEntry, MintedToken, Role};
    let minted = MintedToken::mint("optics-centre", Role::Optics);
    store
        .insert_api_token(&minted.record)
        .await
        .expect("insert token");
    let found = store
        .find_api_token(&minted.record.id)
        .await
        .expect("find token")
        .expect("the token");
    assert_eq!(found, minted.record);
    assert!(
        store
            .find_api_token("nosuch")
            .await
            .expect("find")
            .is_none()
    );
    for subject in ["CSOA-M1-T2-0007", "CSOA-M1-T2-0008"] {
        let entry = AuditEntry {
            at_unix_ns: crate::time::now_unix_ns(),
            token_id: minted.record.id.clone(),
            caller: "optics-centre".into(),
            role: Role::Optics,
            method: "ManufacturingService/RecordMaintenance".into(),
            subject: subject.into(),
        };
        store.append_audit(&entry).await.expect("audit");
    }
    let log = store.audit_log(10).await.expect("audit log");
    let subjects: Vec<_> = log
        .iter()
        .filter(|e| e.token_id == minted.record.id)
        .map(|e| e.subject.as_str())
        .collect();
    assert_eq!(
        subjects,
        vec!["CSOA-M1-T2-0008", "CSOA-M1-T2-0007"],
        "newest first"
    );
}

/// Everything a store must do for enrolment: sites, join tokens consumed
/// exactly once under concurrency, issued certificates and revocations.
/// `site` must be unused.
pub async fn registry_store_suite<S: crate::store::registry::RegistryStore>(store: &S, site: &str) {
    use crate::store::registry::{
        JoinTokenRecord, Revocation, SiteCertificate, SiteLocation, SiteRecord, SiteState,
    };
    assert!(store.get_site(site).await.expect("get site").is_none());

    // A pending site, then the same site enrolled (a replace, not a second row).
    let mut record = SiteRecord::pending(site, T0);
    record.display_name = "Roque de los Muchachos".into();
    record.location = Some(SiteLocation {
        latitude_deg: 28.7606,
        longitude_deg: -17.8816,
        altitude_m: 2396.0,
    });
    record.mirror_segments = 36;
    store.put_site(&record).await.expect("put pending site");
    assert_eq!(
        store.get_site(site).await.expect("get site"),
        Some(record.clone())
    );
    record.state = SiteState::Active;
    record.enrolled_at_unix_ns = Some(T0 + S);
    record.certificate_not_after_unix_ns = Some(T0 + 86_400 * S);
    store.put_site(&record).await.expect("put active site");
    let second = format!("{site}b");
    let other = SiteRecord::pending(&second, T0);
    store.put_site(&other).await.expect("put second site");
    let listed: Vec<SiteRecord> = store
        .list_sites()
        .await
        .expect("list sites")
        .into_iter()
        .filter(|s| s.site == site || s.site == second)
        .collect();
    assert_eq!(
        listed,
        vec![record.clone(), other],
        "ordered by id, replaced"
    );

    // A join token: stored hashed, found by id, consumed exactly once even
    // when eight callers race for it.
    let token = JoinTokenRecord {
        id: format!("t{}", &site[..site.len().min(5)]),
        secret_sha256: crate::access::hash_secret("secret"),
        site: site.into(),
        created_at_unix_ns: T0,
        expires_at_unix_ns: T0 + 3600 * S,
        used_at_unix_ns: None,
        created_by: "ops".into(),
        reenroll: false,
    };
    store.insert_join_token(&token).await.expect("insert token");
    assert_eq!(
        store.find_join_token(&token.id).await.expect("find token"),
        Some(token.clone())
    );
    assert!(
        !store
            .consume_join_token(&token.id, &second, T0 + S)
            .await
            .expect("consume for another site"),
        "a token is consumed only for its own site"
    );
    let racers = (0..8).map(|i| store.consume_join_token(&token.id, site, T0 + 2 * S + i));
    let won: Vec<bool> = futures::future::join_all(racers)
        .await
        .into_iter()
        .map(|r| r.expect("consume"))
        .collect();
    assert_eq!(
        won.iter().filter(|w| **w).count(),
        1,
        "exactly one concurrent consumer wins: {won:?}"
    );
    let used = store
        .find_join_token(&token.id)
        .await
        .expect("find token")
        .expect("the token");
    assert!(used.used_at_unix_ns.is_some_and(|at| at >= T0 + 2 * S));
    assert!(
        !store
            .consume_join_token(&token.id, site, T0 + 99 * S)
            .await
            .expect("consume again"),
        "a used token stays used"
    );
    assert!(
        !store
            .consume_join_token("nosuch", site, T0)
            .await
            .expect("consume unknown"),
        "an unknown token is not consumed"
    );
    assert!(
        store
            .find_join_token("nosuch")
            .await
            .expect("find")
            .is_none(),
        "consuming an unknown id creates nothing"
    );

    // Issued certificates, oldest first; revocations.
    for (i, serial) in ["0aff01", "7f0002"].iter().enumerate() {
        let certificate = SiteCertificate {
            site: site.into(),
            serial_hex: (*serial).into(),
            issued_at_unix_ns: T0 + i as i64 * S,
            not_after_unix_ns: T0 + 86_400 * S,
        };
        store
            .record_certificate(&certificate)
            .await
            .expect("record certificate");
    }
    let serials: Vec<String> = store
        .site_certificates(site)
        .await
        .expect("certificates")
        .into_iter()
        .map(|c| c.serial_hex)
        .collect();
    assert_eq!(serials, vec!["0aff01", "7f0002"]);
    assert!(
        store
            .site_certificates(&second)
            .await
            .expect("certificates")
            .is_empty()
    );
    let revocation = Revocation {
        site: site.into(),
        at_unix_ns: T0 + 10 * S,
        reason: "stolen fog-node".into(),
        revoked_by: "ops".into(),
    };
    store
        .record_revocation(&revocation)
        .await
        .expect("record revocation");
    assert_eq!(
        store.revocations(site).await.expect("revocations"),
        vec![revocation]
    );
    assert!(
        store
            .revocations(&second)
            .await
            .expect("revocations")
            .is_empty()
    );
}

/// Everything a store must do for predictions.
pub async fn prediction_store_suite<S: super::predictions::PredictionStore>(store: &S, site: &str) {
    use super::predictions::StoredPrediction;
    let prediction = |position: u32, serial: &str, at: i64, days: f64| StoredPrediction {
        site: site.into(),
        position,
        serial: serial.into(),
        as_of_unix_s: at,
        computed_at_unix_ns: at * 1_000_000_000 + 5,
        reflectivity_650_pct: 89.5,
        days_to_threshold: days,
        threshold_650_pct: 88.4,
        model_sha256: "ab".repeat(32),
        model_version: "1.0.0".into(),
        completeness: 0.9,
        features: vec![Some(1.5), None, Some(3.0)],
        risk: "watch".into(),
        risk_reason: "reaches the threshold in 40 days".into(),
    };
    let serial = format!("CSOA-{site}-0001");
    let first = vec![
        prediction(1, &serial, 1000, 50.0),
        prediction(2, "OTHER-1", 1000, 200.0),
    ];
    store
        .put_predictions(&first)
        .await
        .expect("put predictions");
    let later = prediction(1, &serial, 2000, 40.0);
    store
        .put_predictions(std::slice::from_ref(&later))
        .await
        .expect("put a later one");
    // Recomputing for the same site time overwrites.
    store
        .put_predictions(std::slice::from_ref(&later))
        .await
        .expect("put again");
    let latest = store.latest_predictions(site).await.expect("latest");
    assert_eq!(latest.len(), 2, "one per position");
    assert_eq!(latest[0], later);
    assert_eq!(latest[1].serial, "OTHER-1");
    // Several sites at once: site after site in the order asked.
    let other_site = format!("{site}x");
    let mut elsewhere = prediction(3, "OTHER-2", 1000, 10.0);
    elsewhere.site = other_site.clone();
    store
        .put_predictions(std::slice::from_ref(&elsewhere))
        .await
        .expect("put elsewhere");
    let fleet = store
        .latest_predictions_of_sites(&[other_site.clone(), format!("{site}-none"), site.into()])
        .await
        .expect("fleet");
    let mut expected = vec![elsewhere];
    expected.extend(latest);
    assert_eq!(fleet, expected);
    let history = store.predictions_of(&serial, 10).await.expect("history");
    assert_eq!(
        history.iter().map(|p| p.as_of_unix_s).collect::<Vec<_>>(),
        vec![1000, 2000],
        "oldest first, no duplicate"
    );
    assert_eq!(
        store.predictions_of(&serial, 1).await.expect("newest")[0].as_of_unix_s,
        2000
    );
}

//! The Cassandra store against the real Cassandra started by
//! `scripts/services.sh up`: the shared telemetry conformance suite,
//! idempotent schema creation, a clean error when nothing answers, and a
//! rough write throughput (printed, not asserted; run with `--nocapture`).
//!
//! Every test uses its own keyspace and drops it at the end, also when the
//! test body panics.

use std::future::Future;
use std::time::{Duration, Instant};

use cloud_hub::ingest::{Decision, SiteState};
use cloud_hub::store::cassandra::CassandraStore;
use cloud_hub::store::conformance::telemetry_store_suite;
use cloud_hub::store::{DeadLetter, SeriesQuery, TelemetryStore};
use obs_proto::v1::{Sample, TelemetryBatch, sample};
use obs_tests::{cassandra_node, unique};
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;

/// The tests that load Cassandra run one at a time, so the printed timings
/// are not those of two tests sharing the node.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn admin_session() -> Session {
    let node = cassandra_node();
    SessionBuilder::new()
        .known_node(&node)
        .connection_timeout(Duration::from_secs(10))
        .build()
        .await
        .unwrap_or_else(|e| {
            panic!("cassandra at {node} did not answer (scripts/services.sh up): {e}")
        })
}

async fn connect(keyspace: &str) -> CassandraStore {
    let node = cassandra_node();
    CassandraStore::connect(std::slice::from_ref(&node), keyspace, 1, 30)
        .await
        .unwrap_or_else(|e| panic!("connecting the store to {node}: {e}"))
}

/// Runs `body` with a fresh keyspace name, then drops the keyspace whether
/// or not `body` panicked, and re-raises the panic.
async fn with_keyspace<F, Fut>(body: F)
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let keyspace = unique("obs_test_");
    assert!(keyspace.len() <= 48, "{keyspace}");
    let outcome = tokio::spawn(body(keyspace.clone())).await;
    admin_session()
        .await
        .query_unpaged(format!("DROP KEYSPACE IF EXISTS {keyspace}"), &[])
        .await
        .unwrap_or_else(|e| panic!("dropping keyspace {keyspace}: {e}"));
    if let Err(error) = outcome {
        std::panic::resume_unwind(error.into_panic());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passes_the_telemetry_store_suite() {
    let _serial = SERIAL.lock().await;
    with_keyspace(|keyspace| async move {
        let started = Instant::now();
        let store = connect(&keyspace).await;
        let connected = started.elapsed();
        let started = Instant::now();
        telemetry_store_suite(&store, "site").await;
        cloud_hub::store::conformance::access_store_suite(&store).await;
        cloud_hub::store::conformance::prediction_store_suite(&store, "site").await;
        cloud_hub::store::conformance::registry_store_suite(&store, "nrt").await;
        cloud_hub::store::conformance::segment_store_suite(&store, "nrt").await;
        println!(
            "cassandra store: connect + schema {:.2} s, conformance suite {:.2} s",
            connected.as_secs_f64(),
            started.elapsed().as_secs_f64()
        );
    })
    .await;
}

#[tokio::test]
async fn connecting_where_nothing_listens_names_the_contact_point() {
    let started = Instant::now();
    let outcome = tokio::time::timeout(
        Duration::from_secs(30),
        CassandraStore::connect_with_timeout(
            &["127.0.0.1:1".to_string()],
            "obs_unreachable",
            1,
            30,
            Duration::from_secs(2),
        ),
    )
    .await
    .expect("connect gives up within 30 s");
    let error = outcome.expect_err("nothing listens on port 1").to_string();
    assert!(error.contains("cassandra store"), "{error}");
    assert!(error.contains("127.0.0.1:1"), "{error}");
    println!(
        "unreachable contact point refused after {:.2} s: {error}",
        started.elapsed().as_secs_f64()
    );
}

#[tokio::test]
async fn a_contact_point_that_accepts_but_never_answers_gives_up_within_the_timeout() {
    // A listener that takes connections and never says a word.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let started = Instant::now();
    let outcome = tokio::time::timeout(
        Duration::from_secs(30),
        CassandraStore::connect_with_timeout(
            std::slice::from_ref(&address),
            "obs_unreachable",
            1,
            30,
            Duration::from_secs(1),
        ),
    )
    .await
    .expect("connect gives up within 30 s");
    silent.abort();
    let error = outcome.expect_err("nothing answers").to_string();
    assert!(error.contains(&address), "{error}");
    println!(
        "silent contact point refused after {:.2} s: {error}",
        started.elapsed().as_secs_f64()
    );
}

#[tokio::test]
async fn invalid_settings_are_refused_before_connecting() {
    let nodes = ["127.0.0.1:1".to_string()];
    let bad_keyspace = CassandraStore::connect(&nodes, "obs-hub", 1, 30)
        .await
        .expect_err("a keyspace name with a dash")
        .to_string();
    assert!(
        bad_keyspace.contains("keyspace name \"obs-hub\""),
        "{bad_keyspace}"
    );
    let no_nodes = CassandraStore::connect(&[], "obs", 1, 30)
        .await
        .expect_err("no contact points")
        .to_string();
    assert!(no_nodes.contains("no contact points"), "{no_nodes}");
    let long_ttl = CassandraStore::connect(&nodes, "obs", 1, 9_000)
        .await
        .expect_err("a TTL above 20 years")
        .to_string();
    assert!(long_ttl.contains("sample_ttl_days 9000"), "{long_ttl}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connecting_twice_keeps_schema_data_and_an_existing_keyspace_replication() {
    let _serial = SERIAL.lock().await;
    with_keyspace(|keyspace| async move {
        // The keyspace exists already (as an operator would create it for
        // production): connect must not alter its replication.
        let admin = admin_session().await;
        let (datacenter,): (String,) = admin
            .query_unpaged("SELECT data_center FROM system.local", &[])
            .await
            .unwrap()
            .into_rows_result()
            .unwrap()
            .single_row()
            .unwrap();
        admin
            .query_unpaged(
                format!(
                    "CREATE KEYSPACE {keyspace} WITH replication = \
                     {{'class': 'NetworkTopologyStrategy', '{datacenter}': 1}}"
                ),
                &[],
            )
            .await
            .unwrap();

        let first = connect(&keyspace).await;
        let state = SiteState::default();
        first.write_site_state("nrt", &state).await.unwrap();
        let letter = DeadLetter {
            site: None,
            topic: "/tenants/unknown/obs/v1/up/telemetry".into(),
            at_unix_ns: 1,
            reason: "no site in topic".into(),
            payload: vec![0xff],
        };
        first.record_dead_letter(&letter).await.unwrap();

        let second = CassandraStore::connect(&[cassandra_node()], &keyspace, 3, 60)
            .await
            .expect("connecting again to the same keyspace");
        assert_eq!(second.sites_with_state().await.unwrap(), vec!["nrt"]);
        assert_eq!(
            second.load_site_state("nrt").await.unwrap(),
            Some(state),
            "data written before the second connect is kept"
        );
        assert_eq!(
            second.dead_letter_counts().await.unwrap(),
            vec![(None, 1)],
            "a dead letter without a site is counted under None"
        );

        let (replication,): (std::collections::HashMap<String, String>,) = admin
            .query_unpaged(
                "SELECT replication FROM system_schema.keyspaces WHERE keyspace_name = ?",
                (keyspace.as_str(),),
            )
            .await
            .unwrap()
            .into_rows_result()
            .unwrap()
            .single_row()
            .unwrap();
        assert!(
            replication["class"].ends_with("NetworkTopologyStrategy"),
            "{replication:?}"
        );
        assert_eq!(replication.get(&datacenter).map(String::as_str), Some("1"));
    })
    .await;
}

const S: i64 = 1_000_000_000;
/// 2026-03-01T00:00:00Z
const T0: i64 = 1_772_323_200 * S;
const SERIES: usize = 20;
const SAMPLES_PER_BATCH: usize = 1_000;
const BATCHES: u64 = 50;

/// Batch `seq`: 20 series x 50 s of 1 Hz data.
fn load_batch(seq: u64) -> TelemetryBatch {
    let seconds = (SAMPLES_PER_BATCH / SERIES) as i64;
    let start = T0 + (seq as i64 - 1) * seconds * S;
    let samples = (0..seconds)
        .flat_map(|i| {
            (0..SERIES).map(move |series| Sample {
                device: format!("m1/segment/{:02}", series + 1),
                attribute: "glass_temperature".into(),
                ts_unix_ns: start + i * S,
                value: Some(sample::Value::DoubleValue(4.0 + (i % 5) as f64)),
                unit: "degC".into(),
                quality: 1,
            })
        })
        .collect();
    TelemetryBatch {
        site: "load".into(),
        node_id: "node-1".into(),
        seq,
        samples,
        gaps: vec![],
        created_unix_ns: start,
        acked_seq: seq - 1,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_throughput_of_50_batches_of_1000_samples() {
    let _serial = SERIAL.lock().await;
    with_keyspace(|keyspace| async move {
        let store = connect(&keyspace).await;
        let batches: Vec<TelemetryBatch> = (1..=BATCHES).map(load_batch).collect();
        let mut state = SiteState::default();
        let started = Instant::now();
        for batch in &batches {
            assert_eq!(state.decide(batch), Decision::Accept);
            let mut next = state.clone();
            let writes = next.accept(batch);
            store
                .write_batch(batch, &writes, Some(&next))
                .await
                .unwrap();
            state = next;
        }
        let elapsed = started.elapsed().as_secs_f64();
        let samples = BATCHES as usize * SAMPLES_PER_BATCH;
        println!(
            "cassandra store: {BATCHES} batches x {SAMPLES_PER_BATCH} samples in {elapsed:.2} s \
             = {:.0} samples/s ({:.1} ms per batch)",
            samples as f64 / elapsed,
            elapsed * 1000.0 / BATCHES as f64
        );

        let query = SeriesQuery {
            site: "load".into(),
            device: "m1/segment/07".into(),
            attribute: "glass_temperature".into(),
            from_ns: T0,
            to_ns: T0 + 86_400 * S,
            limit: usize::MAX,
        };
        let stored = store.query_samples(&query).await.unwrap();
        assert_eq!(stored.len(), samples / SERIES, "every sample of one series");
        let loaded = store.load_site_state("load").await.unwrap().unwrap();
        assert_eq!(loaded.counters.samples_stored, samples as u64);
    })
    .await;
}

fn point(device: &str, attribute: &str, ts_ns: i64, value: sample::Value) -> Sample {
    Sample {
        device: device.into(),
        attribute: attribute.into(),
        ts_unix_ns: ts_ns,
        value: Some(value),
        unit: "u".into(),
        quality: 1,
    }
}

fn batch_of(site: &str, seq: u64, samples: Vec<Sample>) -> TelemetryBatch {
    TelemetryBatch {
        site: site.into(),
        node_id: "node-1".into(),
        seq,
        created_unix_ns: samples.first().map_or(0, |s| s.ts_unix_ns),
        samples,
        gaps: vec![],
        acked_seq: seq - 1,
    }
}

/// Applies `batch` to `state` and writes it; the state moves on only when
/// the write succeeded.
async fn apply(
    store: &CassandraStore,
    state: &mut SiteState,
    batch: &TelemetryBatch,
) -> Result<(), cloud_hub::store::StoreError> {
    assert_eq!(state.decide(batch), Decision::Accept, "seq {}", batch.seq);
    let mut next = state.clone();
    let writes = next.accept(batch);
    store.write_batch(batch, &writes, Some(&next)).await?;
    *state = next;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latest_wins_by_sample_time_ranges_span_partitions_and_failures_keep_the_state() {
    use sample::Value::{DoubleValue, IntValue};
    let _serial = SERIAL.lock().await;
    with_keyspace(|keyspace| async move {
        let store = connect(&keyspace).await;

        // Latest: the newest sample wins even when it was written first,
        // and a value of another type replaces the old one.
        let mut state = SiteState::default();
        let newer = point("dome/shutter/1", "position", T0 + 100 * S, DoubleValue(1.5));
        apply(&store, &mut state, &batch_of("order", 1, vec![newer]))
            .await
            .unwrap();
        let older = point("dome/shutter/1", "position", T0 + 50 * S, DoubleValue(9.0));
        apply(&store, &mut state, &batch_of("order", 2, vec![older]))
            .await
            .unwrap();
        let latest = store.latest("order").await.unwrap();
        assert_eq!(
            (latest.len(), latest[0].ts_unix_ns, latest[0].value.clone()),
            (1, T0 + 100 * S, Some(DoubleValue(1.5))),
            "an older sample written later does not replace the latest"
        );
        let retyped = point("dome/shutter/1", "position", T0 + 200 * S, IntValue(7));
        apply(&store, &mut state, &batch_of("order", 3, vec![retyped]))
            .await
            .unwrap();
        let latest = store.latest("order").await.unwrap();
        assert_eq!(
            latest[0].value,
            Some(IntValue(7)),
            "the int sample is newer"
        );

        // Ranges over several day and month partitions, in order, up to the limit.
        // 2026-01-31T23:59:00Z and the next two days.
        let jan31 = 1_769_903_940 * S;
        let times = [
            jan31,
            jan31 + 30 * S,
            jan31 + 60 * S,
            jan31 + 90 * S,
            jan31 + 86_470 * S,
        ];
        let samples: Vec<Sample> = times
            .iter()
            .zip(1..)
            .map(|(ts, v)| point("weather/station/1", "pressure", *ts, IntValue(v)))
            .collect();
        let mut state = SiteState::default();
        apply(&store, &mut state, &batch_of("span", 1, samples.clone()))
            .await
            .unwrap();
        let mut query = SeriesQuery {
            site: "span".into(),
            device: "weather/station/1".into(),
            attribute: "pressure".into(),
            from_ns: jan31 - 40 * 86_400 * S,
            to_ns: jan31 + 40 * 86_400 * S,
            limit: 3,
        };
        assert_eq!(
            store.query_samples(&query).await.unwrap(),
            samples[..3].to_vec()
        );
        query.limit = 100;
        assert_eq!(store.query_samples(&query).await.unwrap(), samples);
        let minutes = store
            .query_rollups(&query, cloud_hub::ingest::Resolution::Minute)
            .await
            .unwrap();
        let starts: Vec<i64> = minutes.iter().map(|p| p.bucket_start).collect();
        assert_eq!(starts, vec![jan31 / S, jan31 / S + 60, jan31 / S + 86_460]);
        assert_eq!(minutes[0].aggregate.sum, 3.0, "ints 1 + 2");
        let hours = store
            .query_rollups(&query, cloud_hub::ingest::Resolution::Hour)
            .await
            .unwrap();
        let starts: Vec<i64> = hours.iter().map(|p| p.bucket_start).collect();
        assert_eq!(
            starts,
            vec![jan31 / S - 3_540, jan31 / S + 60, jan31 / S + 60 + 86_400],
            "January's last hour, then two February hours"
        );
        query.to_ns = query.from_ns + 20_000 * 86_400 * S;
        let error = store.query_samples(&query).await.unwrap_err().to_string();
        assert!(error.contains("20001 day partitions, more than"), "{error}");

        // A batch whose rows cannot all be written returns the error and
        // leaves the stored state at the previous batch.
        let before = store.load_site_state("order").await.unwrap();
        admin_session()
            .await
            .query_unpaged(format!("DROP TABLE {keyspace}.rollup_1h"), &[])
            .await
            .unwrap();
        let doomed = point("dome/shutter/1", "position", T0 + 300 * S, DoubleValue(2.0));
        let error = apply(
            &store,
            &mut state_of(&before),
            &batch_of("order", 4, vec![doomed]),
        )
        .await
        .unwrap_err()
        .to_string();
        assert!(
            error.contains("Hour rollups (batch seq 4 of site order)"),
            "{error}"
        );
        assert_eq!(store.load_site_state("order").await.unwrap(), before);
    })
    .await;
}

fn state_of(stored: &Option<SiteState>) -> SiteState {
    stored.clone().expect("a stored state")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_samples_of_every_type_write_only_their_own_column() {
    use sample::Value::{BoolValue, DoubleValue, IntValue, StringValue};
    let _serial = SERIAL.lock().await;
    with_keyspace(|keyspace| async move {
        let store = connect(&keyspace).await;
        let at = |second: i64| T0 + second * S;
        let mut samples = vec![
            point("mount/axis/az", "position", at(1), DoubleValue(181.25)),
            point("mount/axis/az", "position", at(2), IntValue(-7)),
            point("mount/axis/az", "position", at(3), BoolValue(true)),
            point(
                "mount/axis/az",
                "position",
                at(4),
                StringValue("parked".into()),
            ),
        ];
        let mut empty = point("mount/axis/az", "position", at(5), IntValue(0));
        empty.value = None;
        samples.push(empty);
        let mut state = SiteState::default();
        apply(&store, &mut state, &batch_of("types", 1, samples.clone()))
            .await
            .unwrap();
        let query = SeriesQuery {
            site: "types".into(),
            device: "mount/axis/az".into(),
            attribute: "position".into(),
            from_ns: T0,
            to_ns: at(10),
            limit: 100,
        };
        assert_eq!(store.query_samples(&query).await.unwrap(), samples);

        // Which columns each row has written: a value column never set has
        // no write time; the sample without a value nulls all four.
        let rows: Vec<WriteTimes> = admin_session()
            .await
            .query_unpaged(
                format!(
                    "SELECT ts, writetime(value_double), writetime(value_int), \
                         writetime(value_bool), writetime(value_text) FROM {keyspace}.samples \
                         WHERE site = 'types' AND device = 'mount/axis/az' \
                         AND attribute = 'position' AND day = ?"
                ),
                (day_of(T0),),
            )
            .await
            .unwrap()
            .into_rows_result()
            .unwrap()
            .rows()
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let written: Vec<[bool; 4]> = rows
            .iter()
            .map(|(_, d, i, b, t)| [d.is_some(), i.is_some(), b.is_some(), t.is_some()])
            .collect();
        assert_eq!(
            written,
            vec![
                [true, false, false, false],
                [false, true, false, false],
                [false, false, true, false],
                [false, false, false, true],
                [false, false, false, false],
            ],
            "{rows:?}"
        );

        // A rewrite with a value of another type reads back as the new one.
        let retyped = point(
            "mount/axis/az",
            "position",
            at(1),
            StringValue("moved".into()),
        );
        apply(
            &store,
            &mut state,
            &batch_of("types", 2, vec![retyped.clone()]),
        )
        .await
        .unwrap();
        let read = store.query_samples(&query).await.unwrap();
        assert_eq!(read[0], retyped);
    })
    .await;
}

/// A row's `ts` and the write times of its value columns (double, int,
/// bool, text).
type WriteTimes = (i64, Option<i64>, Option<i64>, Option<i64>, Option<i64>);

/// The `day` partition key of a sample time, as the store computes it.
fn day_of(ts_ns: i64) -> i32 {
    (ts_ns.div_euclid(86_400 * S)) as i32
}

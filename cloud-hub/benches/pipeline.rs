//! Throughput and latency of the distributed pipeline, each next to a raw
//! baseline in the same run: `cargo bench -p cloud-hub --bench pipeline`.
//! Needs the services of `scripts/services.sh up`. Prints figures; asserts
//! nothing about speed.
//!
//! 1. bridge: `KafkaBridge` (decode, checks, idempotent `acks=all` produce,
//!    cumulative acks) vs a raw rdkafka producer sending the same records
//!    (payload, key, headers) with the same settings, in alternating rounds;
//! 2. sink: the sink's per-site writer `SiteSink` on `CassandraStore` (raw
//!    samples per batch; latest, rollups, exposure and the state every few
//!    batches) vs raw scylla inserts of the same samples into the same
//!    `samples` table with the same batching, in interleaved slices;
//! 3. end to end: a `cloud-hub serve` process (Kafka + Cassandra) fed over
//!    mTLS MQTT after a warm-up (the site's topic created and picked up by
//!    the sink); durable samples/s and sample -> queryable latency.

#[path = "../tests/support/mod.rs"]
mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use cloud_hub::bridge::kafka::KafkaBridge;
use cloud_hub::ingest::BatchLimits;
use cloud_hub::ingest::maintenance::SiteMaintenance;
use cloud_hub::ingress::{Inbound, Outbound};
use cloud_hub::live::LiveSites;
use cloud_hub::sink::site::SiteSink;
use cloud_hub::store::TelemetryStore;
use cloud_hub::store::cassandra::CassandraStore;
use cloud_hub::stream::kafka::{KafkaConfig, KafkaLog};
use futures::StreamExt;
use obs_common::site::SiteTopics;
use obs_proto::v1::{Ack, GetIngestStatsRequest, Sample, TelemetryBatch, sample};
use prost::Message;
use rdkafka::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Batches per sink round.
const BATCHES: u64 = 320;
/// Batches the raw writer and the sink write in turn within a round: four
/// of the sink's state writes.
const SLICE: u64 = 32;
/// Batches through the whole pipeline after the warm-up.
const E2E_BATCHES: u64 = 1000;
/// Batches through Kafka per round (long enough to hide the producers'
/// start-up).
const KAFKA_BATCHES: u64 = 4000;
/// Rounds of raw producer then bridge, alternating, so that both meet the
/// same moods of Kafka's JVM and of the two shared cores; the ratio reported
/// is the median of the rounds' ratios.
const ROUNDS: u64 = 3;
/// Rounds of the raw writer and the sink.
const SINK_ROUNDS: u64 = 4;
/// Batches each producer sends before the timed part.
const WARM_UP: u64 = 50;
const PER_BATCH: usize = 1000;
const SERIES: usize = 20;

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.into())
}

fn unique() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() % 1_000_000_000_000)
        .unwrap_or_default();
    format!("{}{nanos}", std::process::id())
}

/// Batch `seq`: 1000 samples over 20 series, 50 s of 1 Hz data each.
fn batch(site: &str, seq: u64) -> TelemetryBatch {
    let start = 1_767_225_600_000_000_000i64 + seq as i64 * 50 * 1_000_000_000;
    TelemetryBatch {
        site: site.into(),
        node_id: "bench".into(),
        seq,
        samples: (0..PER_BATCH)
            .map(|i| Sample {
                device: format!("m1/segment/{:02}", i % SERIES + 1),
                attribute: "piston".into(),
                ts_unix_ns: start + (i / SERIES) as i64 * 1_000_000_000,
                value: Some(sample::Value::DoubleValue(i as f64 * 0.25)),
                unit: "nm".into(),
                quality: 1,
            })
            .collect(),
        gaps: vec![],
        created_unix_ns: start,
        acked_seq: 0,
    }
}

fn rate(samples: u64, elapsed: Duration) -> f64 {
    samples as f64 / elapsed.as_secs_f64()
}

/// Acks the bridge publishes, counted.
struct CountingOutbound {
    highest: Arc<Mutex<u64>>,
}

impl Outbound for CountingOutbound {
    fn publish(&self, _topic: String, payload: Bytes) -> Result<(), String> {
        let ack = Ack::decode(payload.as_ref()).map_err(|e| e.to_string())?;
        if let Ok(mut highest) = self.highest.lock() {
            *highest = (*highest).max(ack.up_to_seq);
        }
        Ok(())
    }
}

/// Per round: (raw producer, bridge) samples/s.
async fn bench_bridge() -> Vec<(f64, f64)> {
    let config = KafkaConfig {
        bootstrap: env_or("OBS_TEST_KAFKA", "127.0.0.1:9092"),
        topic_namespace: format!("bench{}.", unique()),
        ..Default::default()
    };
    let site = "bench";
    let payloads: Vec<Vec<u8>> = (1..=WARM_UP + ROUNDS * KAFKA_BATCHES)
        .map(|seq| batch(site, seq).encode_to_vec())
        .collect();
    let (warm, timed) = payloads.split_at(WARM_UP as usize);
    let timed_samples = KAFKA_BATCHES * PER_BATCH as u64;
    let log = Arc::new(KafkaLog::connect(&config).await.expect("kafka"));
    log.ensure_site(site).await.expect("topic");

    // Raw producer: same settings as KafkaLog, same topic, same records
    // (payload, key and headers).
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &config.bootstrap)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("compression.type", "lz4")
        .create()
        .expect("producer");
    let topic = config.telemetry_topic(site);
    let produce_all = |first_seq: u64, payloads: &[Vec<u8>]| {
        let sends: Vec<_> = (first_seq..)
            .zip(payloads)
            .map(|(seq, p)| {
                let headers = OwnedHeaders::new()
                    .insert(Header {
                        key: "seq",
                        value: Some(&seq.to_string()),
                    })
                    .insert(Header {
                        key: "schema",
                        value: Some(obs_proto::TELEMETRY_BATCH_SCHEMA),
                    });
                let record = FutureRecord::to(&topic)
                    .key("bench")
                    .payload(p)
                    .headers(headers);
                producer.send_result(record).map_err(|(error, _)| error)
            })
            .collect();
        async move {
            for send in sends {
                let delivered = send.expect("queued").await.expect("delivered");
                assert!(delivered.is_ok(), "{delivered:?}");
            }
        }
    };
    // The bridge, fed as the broker link feeds it, until the last ack.
    let highest = Arc::new(Mutex::new(0u64));
    let store = Arc::new(
        cloud_hub::store::sqlite::SqliteStore::open(
            &std::env::temp_dir().join(format!("bench-{}.sqlite", unique())),
        )
        .expect("dead letter store"),
    );
    // The bridge refuses sites that are not enrolled: register this one.
    let mut enrolled = cloud_hub::store::registry::SiteRecord::pending(site, 0);
    enrolled.state = cloud_hub::store::registry::SiteState::Active;
    cloud_hub::store::registry::RegistryStore::put_site(store.as_ref(), &enrolled)
        .await
        .expect("site");
    let sites = cloud_hub::enroll::SiteRegistry::load(store.clone())
        .await
        .expect("sites");
    let bridge = KafkaBridge::new(
        log,
        store,
        Box::new(CountingOutbound {
            highest: highest.clone(),
        }),
        BatchLimits::default(),
        LiveSites::default(),
        sites,
    );
    let (tx, rx) = mpsc::channel(1024);
    let stop = CancellationToken::new();
    let task = tokio::spawn(bridge.run(rx, stop.clone()));
    let topic = SiteTopics::for_site(site).telemetry;
    let feed = |messages: Vec<Bytes>, until: u64| {
        let (tx, topic, highest) = (tx.clone(), topic.clone(), highest.clone());
        async move {
            for payload in messages {
                tx.send(Inbound {
                    topic: topic.clone(),
                    payload,
                })
                .await
                .expect("bridge");
            }
            while *highest.lock().expect("lock") < until {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    };
    // Copied into `Bytes` before the clock starts, as the broker link hands
    // them over.
    let to_bytes = |payloads: &[Vec<u8>]| -> Vec<Bytes> {
        payloads.iter().map(|p| Bytes::from(p.clone())).collect()
    };
    produce_all(1, warm).await;
    feed(to_bytes(warm), WARM_UP).await;
    let mut rounds = Vec::new();
    for (round, chunk) in (1..).zip(timed.chunks(KAFKA_BATCHES as usize)) {
        let started = Instant::now();
        produce_all(WARM_UP + (round - 1) * KAFKA_BATCHES + 1, chunk).await;
        let raw = rate(timed_samples, started.elapsed());
        let messages = to_bytes(chunk);
        let started = Instant::now();
        feed(messages, WARM_UP + round * KAFKA_BATCHES).await;
        rounds.push((raw, rate(timed_samples, started.elapsed())));
    }
    stop.cancel();
    let _ = task.await;
    rounds
}

/// The raw writer: `b`'s samples, grouped per partition (series and day)
/// into unlogged batches of at most 100 rows, 16 requests in flight.
async fn raw_write(
    session: &scylla::client::session::Session,
    insert: &scylla::statement::prepared::PreparedStatement,
    b: &TelemetryBatch,
) {
    let mut by_series: std::collections::BTreeMap<&str, Vec<&Sample>> = Default::default();
    for s in &b.samples {
        by_series.entry(s.device.as_str()).or_default().push(s);
    }
    let writes = by_series
        .values()
        .flat_map(|rows| rows.chunks(100))
        .map(|chunk| {
            let mut statement =
                scylla::statement::batch::Batch::new(scylla::statement::batch::BatchType::Unlogged);
            let mut values = Vec::new();
            for s in chunk {
                statement.append_statement(insert.clone());
                let v = match s.value {
                    Some(sample::Value::DoubleValue(v)) => v,
                    _ => 0.0,
                };
                values.push((
                    b.site.as_str(),
                    s.device.as_str(),
                    s.attribute.as_str(),
                    (s.ts_unix_ns / 86_400_000_000_000) as i32,
                    s.ts_unix_ns,
                    v,
                    s.unit.as_str(),
                    s.quality,
                ));
            }
            async move { session.batch(&statement, values).await.map(|_| ()) }
        });
    futures::stream::iter(writes)
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<(), _>>()
        .expect("raw write");
}

/// The raw writer through `batches`; the time it took.
async fn raw_slice(
    session: &scylla::client::session::Session,
    insert: &scylla::statement::prepared::PreparedStatement,
    batches: &[TelemetryBatch],
) -> Duration {
    let started = Instant::now();
    for b in batches {
        raw_write(session, insert, b).await;
    }
    started.elapsed()
}

/// The sink through `batches` as a backlog (the state written every few
/// batches and after the last); the time it took.
async fn sink_slice(sink: &mut SiteSink, batches: Vec<TelemetryBatch>) -> Duration {
    let started = Instant::now();
    let count = batches.len();
    for (i, b) in batches.into_iter().enumerate() {
        sink.apply(b, false, i + 1 < count)
            .await
            .expect("sink write");
    }
    started.elapsed()
}

/// Per round: (raw writer, sink) samples/s.
async fn bench_sink() -> Vec<(f64, f64)> {
    let nodes = vec![env_or("OBS_TEST_CASSANDRA", "127.0.0.1:9042")];
    let keyspace = format!("obs_bench_{}", unique());
    let store = Arc::new(
        CassandraStore::connect(&nodes, &keyspace, 1, 1)
            .await
            .expect("cassandra"),
    );
    // Raw writer: the same samples table, the store's batching.
    let session = scylla::client::session_builder::SessionBuilder::new()
        .known_node(&nodes[0])
        .build()
        .await
        .expect("session");
    let insert = session
        .prepare(format!(
            "INSERT INTO {keyspace}.samples (site, device, attribute, day, ts, value_double, unit, quality) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
        ))
        .await
        .expect("prepare");
    let maintenance = SiteMaintenance::new(store.clone());

    // Round 0 is the warm-up. In each round the two write alternate slices
    // of SLICE batches, which of them goes first alternating too, and each
    // one's time is summed: Cassandra's pace drifts within seconds (JIT,
    // memtable flushes, compactions that either writer may cause), and
    // short interleaved slices spread the drifts over both. Each round
    // writes new sites: which partitions a site's rows hash to changes a
    // writer's speed by some 10 %. The batches are built before the clocks
    // start.
    let mut rounds = Vec::new();
    for round in 0..=SINK_ROUNDS {
        let (raw_site, sink_site) = (format!("raw{round}"), format!("sink{round}"));
        let (shared, maintenance) = (store.clone(), maintenance.clone());
        let mut sink = SiteSink::load(&sink_site, shared, maintenance, CancellationToken::new())
            .await
            .expect("state");
        let (mut raw_time, mut sink_time) = (Duration::ZERO, Duration::ZERO);
        for slice in 0..BATCHES / SLICE {
            let seqs = slice * SLICE + 1..=(slice + 1) * SLICE;
            let raw: Vec<TelemetryBatch> = seqs.clone().map(|seq| batch(&raw_site, seq)).collect();
            let ours: Vec<TelemetryBatch> = seqs.map(|seq| batch(&sink_site, seq)).collect();
            if slice % 2 == 0 {
                raw_time += raw_slice(&session, &insert, &raw).await;
                sink_time += sink_slice(&mut sink, ours).await;
            } else {
                sink_time += sink_slice(&mut sink, ours).await;
                raw_time += raw_slice(&session, &insert, &raw).await;
            }
        }
        let state = store.load_site_state(&sink_site).await.expect("state");
        assert_eq!(
            state.map(|s| s.counters.samples_stored),
            Some(BATCHES * PER_BATCH as u64)
        );
        if round > 0 {
            let samples = BATCHES * PER_BATCH as u64;
            rounds.push((rate(samples, raw_time), rate(samples, sink_time)));
        }
    }
    let _ = session
        .query_unpaged(format!("DROP KEYSPACE {keyspace}"), &[])
        .await;
    rounds
}

async fn bench_end_to_end() -> (f64, f64, f64) {
    let hub = support::Hub::start_in(support::Mode::KafkaCassandra);
    let token = hub.token("viewer");
    let ca = hub.ca();
    let site = support::unique_site("e2e");
    let (cert, key) = hub.enroll_site(&site).await;
    let mut node =
        support::FakeNode::connect(&site, hub.mqtt_port, ca.cert_pem(), Some((&cert, &key))).await;
    let mut api = hub.telemetry().await;
    let stored = |api: &mut obs_proto::v1::telemetry_service_client::TelemetryServiceClient<
        tonic::transport::Channel,
    >| {
        let request = support::authed(
            GetIngestStatsRequest {
                sites: vec![site.clone()],
            },
            &token,
        );
        let mut api = api.clone();
        async move {
            api.get_ingest_stats(request)
                .await
                .map(|r| {
                    r.into_inner()
                        .sites
                        .first()
                        .map(|s| s.samples_stored)
                        .unwrap_or(0)
                })
                .unwrap_or(0)
        }
    };

    // Warm-up: the site's topic is created and the sink's subscription
    // picks it up (a metadata refresh and a rebalance, seconds).
    let telemetry = SiteTopics::for_site(&site).telemetry;
    let publish_all = |seqs: std::ops::RangeInclusive<u64>| {
        let payloads: Vec<Vec<u8>> = seqs.map(|seq| batch(&site, seq).encode_to_vec()).collect();
        let (node, telemetry) = (&node, &telemetry);
        async move {
            for payload in payloads {
                node.publish_raw(telemetry, payload).await;
            }
        }
    };
    publish_all(1..=WARM_UP).await;
    while stored(&mut api).await < WARM_UP * PER_BATCH as u64 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Throughput: everything at once (encoded before the clock starts, as a
    // fog-node's spool holds it), until all of it is queryable.
    let last = WARM_UP + E2E_BATCHES;
    let publishing = publish_all(WARM_UP + 1..=last);
    let started = Instant::now();
    publishing.await;
    node.wait_ack(last, Duration::from_secs(300))
        .await
        .expect("acks");
    while stored(&mut api).await < last * PER_BATCH as u64 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let throughput = rate(E2E_BATCHES * PER_BATCH as u64, started.elapsed());

    // Latency: 10 batches/s; each batch's publish time against the moment the
    // stored count first covers it.
    let mut latencies = Vec::new();
    let base = last * PER_BATCH as u64;
    for i in 1..=50u64 {
        let seq = last + i;
        let sent = Instant::now();
        node.publish(&batch(&site, seq)).await;
        while stored(&mut api).await < base + i * PER_BATCH as u64 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        latencies.push(sent.elapsed().as_secs_f64() * 1000.0);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    latencies.sort_by(|a, b| a.total_cmp(b));
    let p50 = latencies[latencies.len() / 2];
    let p99 = latencies[(latencies.len() * 99 / 100).min(latencies.len() - 1)];
    (throughput, p50, p99)
}

/// The median over rounds of (ours / raw) (of an even count, the mean of
/// the middle two).
fn median_ratio(rounds: &[(f64, f64)]) -> f64 {
    let mut ratios: Vec<f64> = rounds.iter().map(|(raw, ours)| ours / raw).collect();
    ratios.sort_by(f64::total_cmp);
    let n = ratios.len();
    (ratios[(n - 1) / 2] + ratios[n / 2]) / 2.0
}

#[tokio::main]
async fn main() {
    // `cargo bench` passes `--bench`; other words pick parts (default all):
    // `cargo bench -p cloud-hub --bench pipeline -- bridge sink end-to-end`.
    let parts: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let run = |part: &str| parts.is_empty() || parts.iter().any(|p| p == part);
    if run("bridge") {
        let rounds = bench_bridge().await;
        for (raw_producer, bridge) in &rounds {
            println!(
                "bridge round: raw rdkafka producer {raw_producer:.0} samples/s, KafkaBridge {bridge:.0} samples/s ({:.0} % of raw)",
                100.0 * bridge / raw_producer
            );
        }
        println!(
            "bridge: median of {} rounds {:.0} % of the raw producer",
            rounds.len(),
            100.0 * median_ratio(&rounds)
        );
    }
    if run("sink") {
        let rounds = bench_sink().await;
        for (raw_writer, sink) in &rounds {
            println!(
                "sink round: raw scylla writer {raw_writer:.0} samples/s, SiteSink {sink:.0} samples/s ({:.0} % of raw)",
                100.0 * sink / raw_writer
            );
        }
        println!(
            "sink: median of {} rounds {:.0} % of the raw writer",
            rounds.len(),
            100.0 * median_ratio(&rounds)
        );
    }
    if run("end-to-end") {
        let (throughput, p50, p99) = bench_end_to_end().await;
        println!(
            "end to end (mTLS MQTT -> Kafka -> Cassandra, queryable): {throughput:.0} samples/s; sample -> queryable latency p50 {p50:.1} ms, p99 {p99:.1} ms"
        );
    }
}

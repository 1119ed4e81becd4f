//! The uplink against a real Mosquitto over mutual TLS, with a fake hub that
//! stores batches and acks them.
//!
//! Needs `scripts/services.sh up mosquitto` (the dev CA and certificates
//! under `.dev/mosquitto/`, the shared broker on `OBS_TEST_MQTT`).

// Test helpers outside #[test] functions may unwrap too.
#![allow(clippy::unwrap_used)]

mod uplink_support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use fog_node::metrics::get;
use fog_node::node::Node;
use obs_proto::v1::{NodeState, Quality, Sample, sample::Value};
use tokio_util::sync::CancellationToken;
use uplink_support::{
    FakeHub, OwnMosquitto, dev_ca, init_logging, install_identity, shared_mosquitto, test_config,
    unique_site, wait_for, wait_until,
};

const SERIES: usize = 5;
/// 2025-06-01T00:00:00Z
const BASE_NS: i64 = 1_748_736_000_000_000_000;
const LIMIT: Duration = Duration::from_secs(60);

fn sample(series: usize, i: u64) -> Sample {
    Sample {
        device: format!("test/source/{series}"),
        attribute: "counter".into(),
        ts_unix_ns: BASE_NS + i as i64 * 1_000_000,
        value: Some(Value::DoubleValue(i as f64 + series as f64 / 100.0)),
        unit: "n".into(),
        quality: Quality::Valid as i32,
    }
}

/// Sends SERIES samples every 2 ms until `stop`; returns what was sent.
fn start_source(node: &Node, stop: CancellationToken) -> tokio::task::JoinHandle<Vec<Sample>> {
    let tx = node.sample_sender().expect("sender");
    tokio::spawn(async move {
        let mut sent = Vec::new();
        let mut tick = tokio::time::interval(Duration::from_millis(2));
        for i in 0.. {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tick.tick() => {}
            }
            let batch: Vec<Sample> = (0..SERIES).map(|s| sample(s, i)).collect();
            if tx.send(batch.clone()).await.is_err() {
                break;
            }
            sent.extend(batch);
        }
        sent
    })
}

fn by_series(samples: &[Sample]) -> BTreeMap<String, Vec<(i64, Option<Value>)>> {
    let mut out: BTreeMap<String, Vec<(i64, Option<Value>)>> = BTreeMap::new();
    for s in samples {
        out.entry(s.device.clone())
            .or_default()
            .push((s.ts_unix_ns, s.value.clone()));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn uplink_delivers_every_spooled_sample_exactly_once_across_a_broker_restart() {
    init_logging();
    let state_dir = tempfile::tempdir().unwrap();
    let broker_dir = tempfile::tempdir().unwrap();
    let mut broker = OwnMosquitto::start(broker_dir.path());
    let ca = dev_ca();
    let site = unique_site("upl");
    install_identity(state_dir.path(), &ca, &site, ("127.0.0.1", broker.port));
    let hub = FakeHub::start(
        &site,
        ("127.0.0.1".into(), broker.port),
        ca.cert_pem(),
        BTreeMap::new(),
    );
    hub.wait_connected().await;

    let shutdown = CancellationToken::new();
    let node = Node::start(test_config(state_dir.path()), shutdown.clone())
        .await
        .unwrap();
    let source_stop = CancellationToken::new();
    let source = start_source(&node, source_stop.clone());

    let diag = || {
        format!(
            "{}; node: {:?} {:?}",
            hub.state.lock().unwrap().summary(),
            node.uplink_state().snapshot(),
            node.metrics().snapshot()
        )
    };
    wait_for(
        LIMIT,
        "20 batches stored before the cut",
        || hub.state.lock().unwrap().stored.len() >= 20,
        diag,
    )
    .await;
    broker.kill();
    let before_cut = hub.state.lock().unwrap().stored.len();
    wait_for(
        LIMIT,
        "the node to notice the cut",
        || !node.uplink_state().snapshot().connected,
        diag,
    )
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let backlog_while_down = node.spool_stats().await.backlog_batches;
    assert!(
        backlog_while_down > 5,
        "the spool holds what could not be sent ({backlog_while_down} batches)"
    );
    broker.restart();
    wait_for(
        LIMIT,
        "delivery to resume after the restart",
        || hub.state.lock().unwrap().stored.len() > before_cut + 10,
        diag,
    )
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    source_stop.cancel();
    let sent = source.await.unwrap();

    // Everything the source sent is spooled, then acknowledged.
    wait_for(
        LIMIT,
        "every sample spooled",
        || get(&node.metrics().samples_spooled) == sent.len() as u64,
        diag,
    )
    .await;
    let deadline = tokio::time::Instant::now() + LIMIT;
    loop {
        let stats = node.spool_stats().await;
        if stats.backlog_batches == 0 && stats.acked_seq == stats.spooled_seq {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "backlog not drained: {stats:?}; {}",
            diag()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let stats = node.spool_stats().await;

    {
        let hub = hub.state.lock().unwrap();
        let seqs: Vec<u64> = hub.stored.keys().map(|(_, seq)| *seq).collect();
        assert_eq!(
            seqs,
            (1..=stats.spooled_seq).collect::<Vec<_>>(),
            "each seq stored once, none missing"
        );
        let stored: Vec<Sample> = hub
            .stored
            .values()
            .flat_map(|b| b.samples.iter().cloned())
            .collect();
        assert_eq!(stored.len(), sent.len(), "stored sample count = spooled");
        assert_eq!(
            by_series(&stored),
            by_series(&sent),
            "same samples, in order per series"
        );
        let unique: BTreeSet<(String, i64)> = stored
            .iter()
            .map(|s| (s.device.clone(), s.ts_unix_ns))
            .collect();
        assert_eq!(unique.len(), stored.len(), "no duplicate sample stored");
        eprintln!(
            "samples {} in {} batches; resends seen by the hub {}; ahead {}; hub connects {}",
            sent.len(),
            stats.spooled_seq,
            hub.duplicates,
            hub.ahead,
            hub.connects
        );
        assert!(hub.connects >= 2, "the hub reconnected too");
    }
    let m = node.metrics();
    assert!(get(&m.connects) >= 2, "the node reconnected");
    assert!(get(&m.connection_errors) >= 1, "the cut was counted");
    assert!(node.uplink_state().snapshot().last_error.is_some());

    shutdown.cancel();
    tokio::time::timeout(LIMIT, node.wait())
        .await
        .expect("node stops in time")
        .expect("node stops cleanly");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_batch_the_hub_rejects_is_quarantined_counted_and_passed() {
    init_logging();
    let state_dir = tempfile::tempdir().unwrap();
    let ca = dev_ca();
    let site = unique_site("rej");
    let broker = shared_mosquitto();
    install_identity(state_dir.path(), &ca, &site, (&broker.0, broker.1));
    let reason = "sample 0 (bad/device): device must be domain/family/member";
    let hub = FakeHub::start(
        &site,
        broker.clone(),
        ca.cert_pem(),
        BTreeMap::from([(2, reason.to_owned())]),
    );
    hub.wait_connected().await;

    let mut config = test_config(state_dir.path());
    config.batching.max_samples = 10;
    config.batching.max_delay_ms = 60_000;
    let shutdown = CancellationToken::new();
    let node = Node::start(config, shutdown.clone()).await.unwrap();
    let tx = node.sample_sender().unwrap();
    // three batches of ten: seqs 1, 2, 3
    for b in 0..3u64 {
        tx.send((0..10).map(|i| sample(0, b * 10 + i)).collect())
            .await
            .unwrap();
    }
    drop(tx);
    wait_until(LIMIT, "all three batches acked", || {
        hub.state.lock().unwrap().upto.values().next() == Some(&3)
    })
    .await;
    let deadline = tokio::time::Instant::now() + LIMIT;
    while node.spool_stats().await.acked_seq < 3 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "node never took the ack"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let quarantine = state_dir.path().join("spool/quarantine");
    let text = std::fs::read_to_string(quarantine.join("2.reason.txt")).unwrap();
    assert_eq!(text.trim(), format!("REJECT_CODE_INVALID_SAMPLE: {reason}"));
    let payload = std::fs::read(quarantine.join("2.batch")).unwrap();
    let batch =
        <obs_proto::v1::TelemetryBatch as prost::Message>::decode(payload.as_slice()).unwrap();
    assert_eq!((batch.seq, batch.samples.len()), (2, 10));
    assert!(!quarantine.join("1.batch").exists() && !quarantine.join("3.batch").exists());
    assert_eq!(get(&node.metrics().rejected), 1);
    let stats = node.spool_stats().await;
    assert_eq!((stats.quarantined, stats.backlog_batches), (1, 0));
    {
        let hub = hub.state.lock().unwrap();
        let seqs: Vec<u64> = hub.stored.keys().map(|(_, seq)| *seq).collect();
        assert_eq!(
            seqs,
            vec![1, 3],
            "the rejected batch is not stored and not retried forever"
        );
        let online = hub
            .statuses
            .iter()
            .any(|s| s.state == NodeState::Online as i32 && s.site == site);
        assert!(
            online,
            "retained ONLINE status published: {:?}",
            hub.statuses
        );
    }

    shutdown.cancel();
    tokio::time::timeout(LIMIT, node.wait())
        .await
        .unwrap()
        .unwrap();
    wait_until(Duration::from_secs(10), "the OFFLINE status", || {
        hub.state
            .lock()
            .unwrap()
            .statuses
            .last()
            .is_some_and(|s| s.state == NodeState::Offline as i32 && s.acked_seq == 3)
    })
    .await;
}

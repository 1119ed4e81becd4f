//! Resident memory of `fog-node run` streaming at the default rates (real
//! time, 18 segments, default batching and window) to the shared Mosquitto,
//! with a fake hub acking. A measurement, not an assertion:
//!
//! ```text
//! cargo build --release -p fog-node
//! FOG_NODE_BIN=target/release/fog-node cargo test -p fog-node --test node_rss -- --ignored --nocapture
//! ```

// Test helpers outside #[test] functions may unwrap too.
#![allow(clippy::unwrap_used)]

mod uplink_support;

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use uplink_support::{FakeHub, dev_ca, install_identity, shared_mosquitto, unique_site};

fn rss_kib(pid: u32) -> Option<u64> {
    let out = Command::new("ps")
        .args(["-o", "rss=", "-p", &pid.to_string()])
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run with --ignored --nocapture"]
async fn node_rss_while_streaming_at_default_rates() {
    let seconds: u64 = std::env::var("FOG_NODE_RSS_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    // FOG_NODE_TIME_SCALE=720 measures a month-an-hour simulation instead.
    let time_scale: f64 = std::env::var("FOG_NODE_TIME_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0);
    let bin =
        std::env::var("FOG_NODE_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_fog-node").into());
    let dir = tempfile::tempdir().unwrap();
    let site = unique_site("rss");
    let ca = dev_ca();
    let (host, port) = shared_mosquitto();
    install_identity(dir.path(), &ca, &site, (&host, port));
    let hub = FakeHub::start(&site, (host, port), ca.cert_pem(), BTreeMap::new());
    hub.wait_connected().await;
    let config = dir.path().join("node.toml");
    std::fs::write(
        &config,
        format!(
            "state_dir = {:?}\n[simulation]\nenabled = true\ntime_scale = {time_scale:?}\n[tango]\nenabled = true\nlisten = \"127.0.0.1:0\"\n",
            dir.path().to_str().unwrap()
        ),
    )
    .unwrap();
    let mut child = Command::new(&bin)
        .args(["run", "--config", config.to_str().unwrap()])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let pid = child.id();
    let start = Instant::now();
    let mut samples = Vec::new();
    for _ in 0..seconds {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if let Some(rss) = rss_kib(pid) {
            samples.push(rss);
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    let hub = hub.state.lock().unwrap();
    let stored: usize = hub.stored.values().map(|b| b.samples.len()).sum();
    let max = samples.iter().max().copied().unwrap_or(0);
    let last = samples.last().copied().unwrap_or(0);
    eprintln!("binary: {bin}");
    eprintln!("rss KiB per second: {samples:?}");
    eprintln!(
        "rss max {:.1} MiB, last {:.1} MiB; hub stored {stored} samples in {} batches over {elapsed:.1} s ({:.0} samples/s); exit {status}",
        max as f64 / 1024.0,
        last as f64 / 1024.0,
        hub.stored.len(),
        stored as f64 / elapsed
    );
    assert!(status.success(), "the node exits cleanly on SIGTERM");
    assert!(stored > 0, "the node streamed");
}

/// Catch-up throughput: a backlog spooled while the broker address is wrong
/// drains once the identity points at the broker (it is re-read at every
/// connection attempt). Run with `--release` for meaningful numbers.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "a measurement: run with --release --ignored --nocapture"]
async fn uplink_catch_up_throughput() {
    use fog_node::node::Node;
    use obs_proto::v1::{Sample, sample::Value};
    use tokio_util::sync::CancellationToken;

    let batches: u64 = std::env::var("FOG_NODE_BACKLOG_BATCHES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300);
    let dir = tempfile::tempdir().unwrap();
    let site = unique_site("cat");
    let ca = dev_ca();
    let (host, port) = shared_mosquitto();
    install_identity(dir.path(), &ca, &site, (&host, uplink_support::free_port()));
    let hub = FakeHub::start(&site, (host.clone(), port), ca.cert_pem(), BTreeMap::new());
    hub.wait_connected().await;
    let mut config = uplink_support::test_config(dir.path());
    config.batching.max_samples = 2000;
    config.uplink.window = 32;
    config.spool.segment_bytes = 64 * 1024 * 1024;
    config.spool.max_bytes = 1024 * 1024 * 1024;
    let shutdown = CancellationToken::new();
    let node = Node::start(config, shutdown.clone()).await.unwrap();
    let tx = node.sample_sender().unwrap();
    for b in 0..batches {
        let batch: Vec<Sample> = (0..2000)
            .map(|i| Sample {
                device: format!("weather/station/{}", i % 10),
                attribute: "wind_speed".into(),
                ts_unix_ns: 1_750_000_000_000_000_000 + (b * 2000 + i) as i64 * 1_000_000,
                value: Some(Value::DoubleValue(i as f64 * 0.1)),
                unit: "m/s".into(),
                quality: 1,
            })
            .collect();
        tx.send(batch).await.unwrap();
    }
    drop(tx);
    uplink_support::wait_until(Duration::from_secs(120), "the backlog spooled", || {
        fog_node::metrics::get(&node.metrics().batches_sealed) == batches
    })
    .await;
    let stats = node.spool_stats().await;
    install_identity(dir.path(), &ca, &site, (&host, port));
    let start = Instant::now();
    let deadline = start + Duration::from_secs(300);
    while node.spool_stats().await.acked_seq < stats.spooled_seq {
        assert!(Instant::now() < deadline, "backlog did not drain");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = start.elapsed().as_secs_f64();
    eprintln!(
        "catch-up: {} batches ({} samples, {:.1} MiB on disk) acked in {elapsed:.2} s (incl. up to 1 s reconnect backoff): {:.0} batches/s, {:.0} samples/s, {:.1} MiB/s",
        stats.backlog_batches,
        batches * 2000,
        stats.backlog_bytes as f64 / 1048576.0,
        stats.backlog_batches as f64 / elapsed,
        (batches * 2000) as f64 / elapsed,
        stats.backlog_bytes as f64 / 1048576.0 / elapsed
    );
    shutdown.cancel();
    node.wait().await.unwrap();
}

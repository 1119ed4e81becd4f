//! `fog-node run` wiring: the simulated devices and the Tango adapter feed
//! the spool, `status.json` reflects the node, a refused TLS handshake is
//! reported with its reason, and a shutdown loses no sample.

// Test helpers outside #[test] functions may unwrap too.
#![allow(clippy::unwrap_used)]

mod uplink_support;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use fog_node::identity::{Enrollment, Identity, MqttSettings};
use fog_node::metrics::get;
use fog_node::node::Node;
use fog_node::status::{self, StatusReport};
use obs_common::pki::{CertificateAuthority, NodeKey};
use rumqttc::{AsyncClient, MqttOptions, QoS};
use tokio_util::sync::CancellationToken;
use uplink_support::{
    DAY, FakeHub, dev_ca, init_logging, install_identity, shared_mosquitto, test_config,
    unique_site, wait_until,
};

const LIMIT: Duration = Duration::from_secs(60);

/// An identity whose certificate comes from a CA the broker does not trust
/// (while the node itself trusts the broker's CA).
fn rogue_identity(state_dir: &Path, site: &str) {
    let rogue = CertificateAuthority::generate("rogue", DAY).unwrap();
    let key = NodeKey::generate().unwrap();
    let cert = rogue
        .sign_site_csr(&key.csr_pem("node-1").unwrap(), site, DAY)
        .unwrap();
    let (host, port) = shared_mosquitto();
    let enrollment = Enrollment {
        site: site.into(),
        node_id: "node-1".into(),
        hub_grpc: "127.0.0.1:1".into(),
        mqtt: MqttSettings {
            host,
            port,
            topic_prefix: obs_common::site::topic_prefix(site),
            client_id: site.into(),
        },
        mirror_segments: 4,
        certificate_not_after: fog_node::timefmt::rfc3339(cert.not_after),
    };
    Identity::install(
        state_dir,
        enrollment,
        &cert.cert_pem,
        dev_ca().cert_pem(),
        &key.key_pem(),
    )
    .unwrap();
}

fn read_status(state_dir: &Path) -> Option<StatusReport> {
    status::read(&state_dir.join("status.json")).ok()
}

fn fog_node(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_fog-node"))
        .args(args)
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn node_spools_simulated_and_tango_samples_reports_status_and_loses_nothing_on_shutdown() {
    init_logging();
    let dir = tempfile::tempdir().unwrap();
    let site = unique_site("nod");
    rogue_identity(dir.path(), &site);
    let mut config = test_config(dir.path());
    config.simulation.enabled = true;
    config.simulation.time_scale = 600.0;
    config.simulation.tick_ms = 100;
    config.simulation.start = Some("2025-06-15T00:00:00Z".into());
    config.tango.enabled = true;
    config.tango.listen = "127.0.0.1:0".parse().unwrap();
    let config_path = dir.path().join("node.toml");
    std::fs::write(&config_path, toml::to_string(&config).unwrap()).unwrap();

    let shutdown = CancellationToken::new();
    let node = Node::start(config, shutdown.clone()).await.unwrap();
    let tango = node.tango_addr().expect("tango adapter runs");
    let (client, mut eventloop) = AsyncClient::new(
        MqttOptions::new("companion", tango.ip().to_string(), tango.port()),
        8,
    );
    let driver = tokio::spawn(async move { while eventloop.poll().await.is_ok() {} });
    client
        .publish(
            "ws/station/2/telemetry/wind_speed",
            QoS::AtLeastOnce,
            false,
            br#"{"timestamp": "2025-06-15 00:00:01.5", "value": 7.5, "units": "m/s"}"#.to_vec(),
        )
        .await
        .unwrap();

    let state_dir = dir.path().to_owned();
    wait_until(
        LIMIT,
        "status.json of a running node with a refused uplink",
        || {
            read_status(&state_dir).is_some_and(|s| {
                s.running
                    && s.spool.durable_seq > 3
                    && !s.uplink.connected
                    && s.uplink.last_error.is_some()
                    && s.tango.as_ref().is_some_and(|t| t.accepted == 1)
            })
        },
    )
    .await;
    let report = read_status(&state_dir).unwrap();
    let error = report.uplink.last_error.clone().unwrap();
    eprintln!("uplink error: {error}");
    assert!(
        error.contains("received fatal alert: UnknownCA"),
        "the TLS refusal is reported with its reason: {error}"
    );
    assert_eq!(report.site, site);
    assert_eq!(report.spool.acked_seq, 0);
    assert!(report.counters["obs_fog_node_connection_errors_total"] >= 1);
    assert!(report.counters["obs_fog_node_samples_spooled_total"] > 0);

    shutdown.cancel();
    tokio::time::timeout(LIMIT, node.wait())
        .await
        .expect("node stops in time")
        .expect("node stops cleanly");
    driver.abort();

    // Everything the writer received is in the spool: the final status says so.
    let last = read_status(&state_dir).unwrap();
    assert!(!last.running);
    assert_eq!(
        last.counters["obs_fog_node_samples_received_total"],
        last.counters["obs_fog_node_samples_spooled_total"],
        "every received sample was spooled"
    );
    assert_eq!(last.spool.durable_seq, last.spool.spooled_seq);
    assert_eq!(last.spool.backlog_batches, last.spool.spooled_seq);

    // `fog-node status` with no node running opens the spool itself.
    let config_arg = config_path.to_str().unwrap();
    let output = fog_node(&["status", "--config", config_arg, "--format", "json"]);
    assert!(output.status.success(), "{output:?}");
    let shown: StatusReport = serde_json::from_slice(&output.stdout).unwrap();
    assert!(!shown.running);
    assert_eq!(shown.spool, last.spool);
    let output = fog_node(&["status", "--config", config_arg]);
    let table = String::from_utf8_lossy(&output.stdout);
    assert!(
        table.contains("acked seq") && table.contains("disconnected"),
        "{table}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_of_a_running_node_comes_from_its_status_file() {
    let dir = tempfile::tempdir().unwrap();
    let site = unique_site("sts");
    let ca = dev_ca();
    let (host, port) = shared_mosquitto();
    install_identity(dir.path(), &ca, &site, (&host, port));
    let hub = FakeHub::start(&site, (host, port), ca.cert_pem(), BTreeMap::new());
    hub.wait_connected().await;
    let config = test_config(dir.path());
    let config_path = dir.path().join("node.toml");
    std::fs::write(&config_path, toml::to_string(&config).unwrap()).unwrap();
    let shutdown = CancellationToken::new();
    let node = Node::start(config, shutdown.clone()).await.unwrap();
    let tx = node.sample_sender().unwrap();
    tx.send(vec![obs_proto::v1::Sample {
        device: "test/source/1".into(),
        attribute: "x".into(),
        ts_unix_ns: 1_750_000_000_000_000_000,
        value: Some(obs_proto::v1::sample::Value::IntValue(1)),
        ..Default::default()
    }])
    .await
    .unwrap();
    drop(tx);
    let state_dir = dir.path().to_owned();
    wait_until(LIMIT, "the ack in status.json", || {
        read_status(&state_dir).is_some_and(|s| {
            s.uplink.connected && s.spool.acked_seq == 1 && s.uplink.last_ack_unix_ns > 0
        })
    })
    .await;
    let output = tokio::task::spawn_blocking(move || {
        fog_node(&[
            "status",
            "--config",
            config_path.to_str().unwrap(),
            "--format",
            "json",
        ])
    })
    .await
    .unwrap();
    assert!(output.status.success(), "{output:?}");
    let shown: StatusReport = serde_json::from_slice(&output.stdout).unwrap();
    assert!(
        shown.running,
        "the spool is locked by the node: its status file is shown"
    );
    assert_eq!(shown.pid, std::process::id());
    assert_eq!(shown.spool.acked_seq, 1);
    assert_eq!(get(&node.metrics().acks), 1);
    shutdown.cancel();
    tokio::time::timeout(LIMIT, node.wait())
        .await
        .unwrap()
        .unwrap();
}

#[test]
fn run_without_an_identity_says_to_enroll() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("node.toml");
    std::fs::write(
        &config,
        format!("state_dir = {:?}\n", dir.path().to_str().unwrap()),
    )
    .unwrap();
    let output = fog_node(&["run", "--config", config.to_str().unwrap()]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("not enrolled"), "{stderr}");
    assert!(stderr.contains("fog-node enroll"), "{stderr}");

    let output = fog_node(&["print-default-config"]);
    assert!(output.status.success());
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        text.contains("[uplink]") && text.contains("window = 32"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnect_uses_the_identity_on_disk() {
    init_logging();
    let dir = tempfile::tempdir().unwrap();
    let site = unique_site("ren");
    let ca = dev_ca();
    let (host, port) = shared_mosquitto();
    install_identity(dir.path(), &ca, &site, (&host, port));
    let hub = FakeHub::start(&site, (host.clone(), port), ca.cert_pem(), BTreeMap::new());
    hub.wait_connected().await;
    let shutdown = CancellationToken::new();
    let node = Node::start(test_config(dir.path()), shutdown.clone())
        .await
        .unwrap();
    wait_until(LIMIT, "the first connection", || {
        node.uplink_state().snapshot().connected
    })
    .await;

    // A certificate the broker refuses replaces the good one: the next
    // session must use it, and fail with the broker's reason.
    rogue_identity(dir.path(), &site);
    node.reconnect_uplink();
    wait_until(LIMIT, "the refused reconnect", || {
        node.uplink_state()
            .snapshot()
            .last_error
            .is_some_and(|e| e.contains("UnknownCA"))
    })
    .await;
    // A good certificate again (a new key and certificate, as after a
    // renewal): the backoff loop picks it up and delivers.
    install_identity(dir.path(), &ca, &site, (&host, port));
    let tx = node.sample_sender().unwrap();
    tx.send(vec![obs_proto::v1::Sample {
        device: "test/source/1".into(),
        attribute: "x".into(),
        ts_unix_ns: 1_750_000_000_000_000_000,
        value: Some(obs_proto::v1::sample::Value::IntValue(1)),
        ..Default::default()
    }])
    .await
    .unwrap();
    drop(tx);
    wait_until(LIMIT, "delivery with the new certificate", || {
        hub.state.lock().unwrap().stored.len() == 1
    })
    .await;
    assert!(get(&node.metrics().connects) >= 2);
    shutdown.cancel();
    tokio::time::timeout(LIMIT, node.wait())
        .await
        .unwrap()
        .unwrap();
}

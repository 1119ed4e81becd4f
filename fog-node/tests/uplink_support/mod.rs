//! Shared pieces of the uplink and node tests: the dev CA Mosquitto trusts,
//! a private Mosquitto process that a test may kill and restart, a fake hub
//! (an MQTT client with the `cloud-hub` certificate that stores batches and
//! acks them), and a node set up with an installed identity.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use fog_node::config::NodeConfig;
use fog_node::identity::{Enrollment, Identity, MqttSettings};
use obs_common::pki::{CertificateAuthority, NodeKey};
use obs_proto::v1::{Ack, NodeStatus, RejectCode, RejectedBatch, TelemetryBatch};
use prost::Message;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS, TlsConfiguration, Transport};

pub const DAY: Duration = Duration::from_secs(86_400);

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default()
}

fn env_or(name: &str, default: PathBuf) -> PathBuf {
    std::env::var_os(name).map_or(default, PathBuf::from)
}

fn certs_dir() -> PathBuf {
    repo_root().join(".dev/mosquitto/certs")
}

/// Logs to the test output when `RUST_LOG` is set (e.g. `fog_node=debug`).
pub fn init_logging() {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    }
}

/// The shared Mosquitto's address (`OBS_TEST_MQTT`).
pub fn shared_mosquitto() -> (String, u16) {
    let addr = std::env::var("OBS_TEST_MQTT").unwrap_or_else(|_| "127.0.0.1:8884".into());
    let (host, port) = addr.rsplit_once(':').unwrap_or((&addr, "8884"));
    (host.to_owned(), port.parse().unwrap_or(8884))
}

/// The dev CA that Mosquitto trusts.
pub fn dev_ca() -> CertificateAuthority {
    let cert = env_or("OBS_TEST_MQTT_CA_CERT", certs_dir().join("ca.pem"));
    let key = env_or("OBS_TEST_MQTT_CA_KEY", certs_dir().join("ca.key"));
    let cert = std::fs::read_to_string(&cert)
        .unwrap_or_else(|e| panic!("{}: {e} (run scripts/services.sh up)", cert.display()));
    let key = std::fs::read_to_string(&key)
        .unwrap_or_else(|e| panic!("{}: {e} (run scripts/services.sh up)", key.display()));
    CertificateAuthority::from_pem(&cert, &key).expect("dev ca")
}

/// The `cloud-hub` client identity (chain, key).
pub fn hub_identity() -> (String, String) {
    let cert = env_or("OBS_TEST_MQTT_HUB_CERT", certs_dir().join("cloud-hub.pem"));
    let key = env_or("OBS_TEST_MQTT_HUB_KEY", certs_dir().join("cloud-hub.key"));
    (
        std::fs::read_to_string(cert).expect("hub cert"),
        std::fs::read_to_string(key).expect("hub key"),
    )
}

/// A site id no other test run uses: `{prefix}{digits}`.
pub fn unique_site(prefix: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!("{prefix}{}{nanos}", std::process::id() % 100_000)
}

/// Installs an identity for `site` signed by `ca` with the broker at
/// `(host, port)`, the production way (the node's own key, a CSR).
pub fn install_identity(
    state_dir: &Path,
    ca: &CertificateAuthority,
    site: &str,
    broker: (&str, u16),
) -> Identity {
    let key = NodeKey::generate().expect("key");
    let cert = ca
        .sign_site_csr(&key.csr_pem("node-1").expect("csr"), site, DAY)
        .expect("sign");
    let enrollment = Enrollment {
        site: site.into(),
        node_id: "node-1".into(),
        hub_grpc: "127.0.0.1:1".into(),
        mqtt: MqttSettings {
            host: broker.0.into(),
            port: broker.1,
            topic_prefix: obs_common::site::topic_prefix(site),
            client_id: site.into(),
        },
        mirror_segments: 18,
        certificate_not_after: fog_node::timefmt::rfc3339(cert.not_after),
    };
    Identity::install(
        state_dir,
        enrollment,
        &cert.cert_pem,
        ca.cert_pem(),
        &key.key_pem(),
    )
    .expect("install identity")
}

/// A node configuration for tests: no simulation, no Tango adapter, small
/// batches and short timeouts.
pub fn test_config(state_dir: &Path) -> NodeConfig {
    let mut config = NodeConfig {
        state_dir: state_dir.to_owned(),
        ..NodeConfig::default()
    };
    config.simulation.enabled = false;
    config.spool.segment_bytes = 256 * 1024;
    config.spool.max_bytes = 64 * 1024 * 1024;
    config.spool.fsync_interval_ms = 20;
    config.batching.max_samples = 200;
    config.batching.max_delay_ms = 50;
    config.uplink.window = 8;
    config.uplink.ack_timeout_ms = 3000;
    config.uplink.backoff_min_ms = 100;
    config.uplink.backoff_max_ms = 1000;
    config.uplink.connect_timeout_s = 3;
    config.uplink.status_interval_ms = 1000;
    config.uplink.shutdown_grace_ms = 2000;
    config.status.interval_ms = 200;
    config
}

/// A free TCP port on loopback.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A Mosquitto of our own, configured like the dev broker (same
/// certificates and ACL) on another port with its own persistence and log.
pub struct OwnMosquitto {
    pub port: u16,
    config: PathBuf,
    pub log: PathBuf,
    child: Option<Child>,
}

impl OwnMosquitto {
    /// Writes the configuration under `dir` and starts the broker.
    pub fn start(dir: &Path) -> OwnMosquitto {
        let template = repo_root().join(".dev/mosquitto/mosquitto.conf");
        let text = std::fs::read_to_string(&template)
            .unwrap_or_else(|e| panic!("{}: {e} (run scripts/services.sh up)", template.display()));
        let port = free_port();
        let data = dir.join("data");
        std::fs::create_dir_all(&data).expect("data dir");
        let log = dir.join("mosquitto.log");
        let mut out = String::new();
        for line in text.lines() {
            let line = if line.starts_with("listener ") {
                format!("listener {port} 127.0.0.1")
            } else if line.starts_with("persistence_location ") {
                format!("persistence_location {}/", data.display())
            } else if line.starts_with("log_dest ") {
                format!("log_dest file {}", log.display())
            } else {
                line.to_owned()
            };
            out.push_str(&line);
            out.push('\n');
        }
        let config = dir.join("mosquitto.conf");
        std::fs::write(&config, out).expect("write mosquitto.conf");
        let mut broker = OwnMosquitto {
            port,
            config,
            log,
            child: None,
        };
        broker.restart();
        broker
    }

    /// Starts the process and waits (bounded) until it accepts connections.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "already running");
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(&self.config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mosquitto");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "mosquitto did not start; see {}",
                self.log.display()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills the process (SIGKILL: like a crash or a cut link).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for OwnMosquitto {
    fn drop(&mut self) {
        self.kill();
    }
}

/// What the fake hub has seen.
#[derive(Debug, Default)]
pub struct HubState {
    /// Stored batches by (node_id, seq).
    pub stored: BTreeMap<(String, u64), TelemetryBatch>,
    /// Batches received for a seq already settled (resends).
    pub duplicates: u64,
    /// Batches received ahead of the contiguous prefix (not stored).
    pub ahead: u64,
    /// Every seq settled (stored or rejected), per node.
    settled: BTreeMap<String, BTreeSet<u64>>,
    /// Highest contiguous settled seq per node.
    pub upto: BTreeMap<String, u64>,
    /// Seqs to reject, with their reason.
    pub reject: BTreeMap<u64, String>,
    /// Rejections sent.
    pub rejected: Vec<u64>,
    /// Every NodeStatus received, in order.
    pub statuses: Vec<NodeStatus>,
    /// Times the hub (re)connected.
    pub connects: u64,
    /// SUBACKs received.
    pub subacks: u64,
    /// Payloads on the telemetry topic that did not decode.
    pub undecodable: u64,
    /// The last connection error of the hub's client.
    pub last_error: Option<String>,
}

impl HubState {
    /// One line for failure messages.
    pub fn summary(&self) -> String {
        format!(
            "hub: stored {} (last seq {:?}), upto {:?}, duplicates {}, ahead {}, connects {}, subacks {}, undecodable {}, last error {:?}",
            self.stored.len(),
            self.stored.keys().last().map(|(_, s)| *s),
            self.upto,
            self.duplicates,
            self.ahead,
            self.connects,
            self.subacks,
            self.undecodable,
            self.last_error
        )
    }
}

/// An MQTT client with the `cloud-hub` certificate acting as the hub for
/// one site: it stores batches that extend the contiguous prefix of seqs,
/// counts resends, and publishes a cumulative `Ack` after each batch. It
/// reconnects by itself when the broker goes away.
pub struct FakeHub {
    pub state: Arc<Mutex<HubState>>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeHub {
    pub fn start(
        site: &str,
        broker: (String, u16),
        ca_pem: &str,
        reject: BTreeMap<u64, String>,
    ) -> FakeHub {
        let (cert, key) = hub_identity();
        let tls = obs_common::tls::client_config(ca_pem, Some((&cert, &key))).expect("hub tls");
        let client_id = format!("hub-{site}");
        let mut options = MqttOptions::new(client_id, broker.0, broker.1);
        options.set_keep_alive(Duration::from_secs(5));
        options.set_clean_session(true);
        options.set_max_packet_size(64 * 1024 * 1024, 1024 * 1024);
        options.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
            Arc::new(tls),
        )));
        let (client, mut eventloop) = AsyncClient::new(options, 10_000);
        let prefix = obs_common::site::topic_prefix(site);
        let telemetry = format!("{prefix}/up/telemetry");
        let status = format!("{prefix}/up/status");
        let ack_topic = format!("{prefix}/down/ack");
        let state = Arc::new(Mutex::new(HubState {
            reject,
            ..HubState::default()
        }));
        let shared = state.clone();
        let task = tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        shared.lock().unwrap().connects += 1;
                        for topic in [&telemetry, &status] {
                            if let Err(error) = client.try_subscribe(topic, QoS::AtLeastOnce) {
                                eprintln!("fake hub: cannot subscribe to {topic}: {error}");
                            }
                        }
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        shared.lock().unwrap().subacks += 1;
                    }
                    Ok(Event::Incoming(Packet::Publish(publish))) if publish.topic == status => {
                        if let Ok(s) = NodeStatus::decode(publish.payload.as_ref()) {
                            shared.lock().unwrap().statuses.push(s);
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(publish))) if publish.topic == telemetry => {
                        let Ok(batch) = TelemetryBatch::decode(publish.payload.as_ref()) else {
                            shared.lock().unwrap().undecodable += 1;
                            continue;
                        };
                        let ack = shared.lock().unwrap().receive(batch);
                        let ack = ack.encode_to_vec();
                        if let Err(error) =
                            client.try_publish(&ack_topic, QoS::AtLeastOnce, false, ack)
                        {
                            eprintln!("fake hub: cannot publish an ack: {error}");
                        }
                    }
                    Ok(_) => {}
                    Err(error) => {
                        shared.lock().unwrap().last_error = Some(error.to_string());
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        });
        FakeHub { state, task }
    }

    /// Waits (bounded) until the hub is subscribed.
    pub async fn wait_connected(&self) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while self.state.lock().unwrap().subacks < 2 {
            assert!(
                Instant::now() < deadline,
                "the fake hub did not subscribe: {}",
                self.state.lock().unwrap().summary()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for FakeHub {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl HubState {
    /// Settles `batch` if it extends the prefix (the hub's rule, gap records
    /// included), and returns the cumulative ack to publish.
    fn receive(&mut self, batch: TelemetryBatch) -> Ack {
        let node = batch.node_id.clone();
        let settled = self.settled.entry(node.clone()).or_default();
        // First contact starts at the node's own watermark, as the hub does.
        let upto = self.upto.get(&node).copied().unwrap_or(batch.acked_seq);
        let mut rejected = Vec::new();
        if batch.seq <= upto || settled.contains(&batch.seq) {
            self.duplicates += 1;
            if let Some(reason) = self.reject.get(&batch.seq) {
                // a resent rejected batch is rejected again
                rejected.push(RejectedBatch {
                    seq: batch.seq,
                    code: RejectCode::InvalidSample as i32,
                    reason: reason.clone(),
                });
            }
        } else {
            let next = upto + 1;
            let connects = batch.seq == next
                || (batch.samples.is_empty()
                    && batch
                        .gaps
                        .iter()
                        .any(|g| g.first_seq <= next && next <= g.last_seq + 1));
            if !connects {
                self.ahead += 1;
            } else if let Some(reason) = self.reject.get(&batch.seq) {
                settled.insert(batch.seq);
                self.rejected.push(batch.seq);
                rejected.push(RejectedBatch {
                    seq: batch.seq,
                    code: RejectCode::InvalidSample as i32,
                    reason: reason.clone(),
                });
            } else {
                settled.insert(batch.seq);
                for gap in &batch.gaps {
                    settled.extend(gap.first_seq..=gap.last_seq);
                }
                self.stored.insert((node.clone(), batch.seq), batch);
            }
        }
        let mut upto = upto;
        while settled.contains(&(upto + 1)) {
            upto += 1;
        }
        self.upto.insert(node.clone(), upto);
        Ack {
            node_id: node,
            up_to_seq: upto,
            rejected,
        }
    }
}

/// Waits until `check` is true, polling every 50 ms, for at most `limit`;
/// the failure message ends with `diag()`.
pub async fn wait_for(
    limit: Duration,
    what: &str,
    mut check: impl FnMut() -> bool,
    diag: impl Fn() -> String,
) {
    let deadline = Instant::now() + limit;
    while !check() {
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}; {}",
            diag()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until `check` is true, polling every 50 ms, for at most `limit`.
pub async fn wait_until(limit: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !check() {
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

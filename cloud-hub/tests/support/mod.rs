//! A real `cloud-hub serve` child process and a minimal fog-node speaking the
//! wire contract over mTLS, for end-to-end tests.

#![allow(dead_code)]

use std::io::Read;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use obs_common::pki::{CertificateAuthority, NodeKey};
use obs_common::site::SiteTopics;
use obs_proto::v1::enrollment_service_client::EnrollmentServiceClient;
use obs_proto::v1::telemetry_service_client::TelemetryServiceClient;
use obs_proto::v1::{
    Ack, CreateJoinTokenRequest, CreateJoinTokenResponse, EnrollRequest, EnrollResponse, Sample,
    TelemetryBatch, sample,
};
use prost::Message;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS, Transport};
use tokio::sync::watch;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Which deployment mode a test hub runs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// rumqttd + SQLite, no log.
    Embedded,
    /// rumqttd + Kafka + Cassandra (the services of `scripts/services.sh`).
    KafkaCassandra,
    /// Mosquitto + Kafka + Cassandra: the hub reads the shared dev Mosquitto
    /// (whose CA it is given) through a shared subscription.
    MosquittoKafkaCassandra,
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.into())
}

fn dev_mosquitto() -> (u16, String, String) {
    let certs = concat!(env!("CARGO_MANIFEST_DIR"), "/../.dev/mosquitto/certs");
    let port = env_or("OBS_TEST_MQTT", "127.0.0.1:8884")
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .unwrap_or(8884);
    (
        port,
        env_or("OBS_TEST_MQTT_CA_CERT", &format!("{certs}/ca.pem")),
        env_or("OBS_TEST_MQTT_CA_KEY", &format!("{certs}/ca.key")),
    )
}

fn nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default()
}

/// A site id no earlier test run used (Kafka topics outlive test runs).
pub fn unique_site(prefix: &str) -> String {
    format!(
        "{prefix}{}{}",
        std::process::id() % 10_000,
        nanos() % 1_000_000_000
    )
}

/// The config lines that select `mode`'s broker, stream and store.
fn mode_config(mode: Mode, mqtt_port: u16) -> String {
    let embedded = format!("[mqtt]\nkind = \"embedded\"\nlisten = \"127.0.0.1:{mqtt_port}\"\n");
    let unique = format!("{}{}", std::process::id(), nanos() % 1_000_000_000_000);
    let kafka = env_or("OBS_TEST_KAFKA", "127.0.0.1:9092");
    let cassandra = env_or("OBS_TEST_CASSANDRA", "127.0.0.1:9042");
    let debug = env_or("OBS_TEST_KAFKA_DEBUG", "");
    let distributed = format!(
        "[stream]\nkind = \"kafka\"\nbootstrap = \"{kafka}\"\nsink_group = \"sink-{unique}\"\n\
         sink_instance_id = \"hub-{unique}\"\ntopic_namespace = \"t{unique}.\"\ndebug = \"{debug}\"\n\
         [store]\nkind = \"cassandra\"\nnodes = [\"{cassandra}\"]\nkeyspace = \"obs_e2e_{unique}\"\n"
    );
    match mode {
        Mode::Embedded => embedded,
        Mode::KafkaCassandra => format!("{embedded}{distributed}"),
        Mode::MosquittoKafkaCassandra => {
            let (port, ca_cert, ca_key) = dev_mosquitto();
            format!(
                "[mqtt]\nkind = \"external\"\nhost = \"127.0.0.1\"\nport = {port}\nshared_group = \"hub{unique}\"\n\
                 [pki]\nca_cert = {ca_cert:?}\nca_key = {ca_key:?}\n{distributed}"
            )
        }
    }
}

/// A hub child process with its own data directory and ports.
pub struct Hub {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub grpc_port: u16,
    pub http_port: u16,
    /// Where fog-nodes connect: the embedded broker or the external one.
    pub mqtt_port: u16,
    ca_files: Option<(String, String)>,
    child: Option<Child>,
}

impl Hub {
    /// Starts a hub in `mode`.
    pub fn start_in(mode: Mode) -> Hub {
        let embedded_port = free_port();
        let (mqtt_port, ca_files) = match mode {
            Mode::MosquittoKafkaCassandra => {
                let (port, cert, key) = dev_mosquitto();
                (port, Some((cert, key)))
            }
            _ => (embedded_port, None),
        };
        Hub::start(&mode_config(mode, embedded_port), mqtt_port, ca_files)
    }

    /// A hub in external mode on the Mosquitto listening on `mqtt_port`
    /// (which trusts the dev CA, supplied to the hub as its CA), with Kafka
    /// and Cassandra as in [`Mode::MosquittoKafkaCassandra`].
    pub fn start_on_mosquitto(mqtt_port: u16) -> Hub {
        let (dev_port, cert, key) = dev_mosquitto();
        let config = mode_config(Mode::MosquittoKafkaCassandra, free_port()).replace(
            &format!("port = {dev_port}\n"),
            &format!("port = {mqtt_port}\n"),
        );
        Hub::start(&config, mqtt_port, Some((cert, key)))
    }

    /// Writes a config (`extra` TOML after the common keys) and starts the hub.
    pub fn start(extra: &str, mqtt_port: u16, ca_files: Option<(String, String)>) -> Hub {
        let dir = tempfile::tempdir().expect("tempdir");
        let grpc_port = free_port();
        let http_port = free_port();
        let config = dir.path().join("hub.toml");
        let text = format!(
            "data_dir = {data:?}\npublic_host = \"127.0.0.1\"\n\
             [grpc]\nlisten = \"127.0.0.1:{grpc_port}\"\n\
             [http]\nlisten = \"127.0.0.1:{http_port}\"\n{extra}",
            data = dir.path().join("data"),
        );
        std::fs::write(&config, text).expect("write config");
        let mut hub = Hub {
            dir,
            config,
            grpc_port,
            http_port,
            mqtt_port,
            ca_files,
            child: None,
        };
        hub.spawn();
        hub
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("hub.log")
    }

    /// Starts (or restarts) the process and waits until gRPC answers.
    pub fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("hub log");
        let child = Command::new(env!("CARGO_BIN_EXE_cloud-hub"))
            .args(["serve", "--config"])
            .arg(&self.config)
            .env(
                "RUST_LOG",
                std::env::var("OBS_TEST_HUB_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn cloud-hub");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", self.grpc_port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "hub did not start:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// GET `path` on the operations port: (status code, body).
    pub async fn http_get(&self, path: &str) -> (u16, String) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", self.http_port))
            .await
            .expect("http port");
        let request = format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n");
        stream.write_all(request.as_bytes()).await.expect("write");
        let mut response = String::new();
        stream.read_to_string(&mut response).await.expect("read");
        let status = response
            .split_whitespace()
            .nth(1)
            .and_then(|code| code.parse().ok())
            .unwrap_or(0);
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default();
        (status, body)
    }

    /// SIGKILL, as a crash.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The hub's log so far.
    pub fn log(&self) -> String {
        let mut text = String::new();
        let _ = std::fs::File::open(self.log_path()).and_then(|mut f| f.read_to_string(&mut text));
        text
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The hub CA (the test plays the enrolment step by signing with it).
    pub fn ca(&self) -> CertificateAuthority {
        let (cert, key) = self.ca_pem();
        CertificateAuthority::from_pem(&cert, &key).expect("hub ca")
    }

    /// The hub CA's certificate and key (PEM).
    pub fn ca_pem(&self) -> (String, String) {
        let pki = self.data_dir().join("pki");
        let (cert, key) = match &self.ca_files {
            Some((cert, key)) => (PathBuf::from(cert), PathBuf::from(key)),
            None => (pki.join("ca.pem"), pki.join("ca.key")),
        };
        let cert = std::fs::read_to_string(cert).expect("ca certificate");
        let key = std::fs::read_to_string(key).expect("ca key");
        (cert, key)
    }

    /// Mints an API token with `cloud-hub admin token`.
    pub fn token(&self, role: &str) -> String {
        let output = Command::new(env!("CARGO_BIN_EXE_cloud-hub"))
            .args([
                "admin", "token", "--role", role, "--name", "e2e", "--config",
            ])
            .arg(&self.config)
            .output()
            .expect("admin token");
        assert!(output.status.success(), "{output:?}");
        String::from_utf8(output.stdout)
            .expect("utf8")
            .trim()
            .to_owned()
    }

    /// A gRPC channel over TLS trusting the hub CA, presenting `identity`
    /// (chain, key) when given.
    pub async fn channel(&self, identity: Option<(&str, &str)>) -> Channel {
        let mut tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(self.ca().cert_pem()))
            .domain_name("localhost");
        if let Some((chain, key)) = identity {
            tls = tls.identity(Identity::from_pem(chain, key));
        }
        Channel::from_shared(format!("https://127.0.0.1:{}", self.grpc_port))
            .expect("uri")
            .tls_config(tls)
            .expect("tls")
            .connect()
            .await
            .expect("connect grpc")
    }

    /// A TelemetryService client over TLS trusting the hub CA.
    pub async fn telemetry(&self) -> TelemetryServiceClient<Channel> {
        TelemetryServiceClient::new(self.channel(None).await)
    }

    /// An EnrollmentService client over TLS trusting the hub CA.
    pub async fn enrollment(&self) -> EnrollmentServiceClient<Channel> {
        EnrollmentServiceClient::new(self.channel(None).await)
    }

    /// `CreateJoinToken` for `site` with an admin token.
    pub async fn join_token(&self, admin: &str, site: &str) -> CreateJoinTokenResponse {
        let request = CreateJoinTokenRequest {
            site: site.into(),
            ..Default::default()
        };
        self.enrollment()
            .await
            .create_join_token(authed(request, admin))
            .await
            .unwrap_or_else(|e| panic!("join token for {site}: {e}\n{}", self.log()))
            .into_inner()
    }

    /// `Enroll` with `token` and a CSR of a key made here: (response, key PEM).
    pub async fn enroll_with(&self, token: &str, node_id: &str) -> (EnrollResponse, String) {
        let key = NodeKey::generate().expect("key");
        let request = EnrollRequest {
            token: token.into(),
            csr_pem: key.csr_pem(node_id).expect("csr"),
            node_id: node_id.into(),
            fog_node_version: "test".into(),
        };
        let response = self
            .enrollment()
            .await
            .enroll(request)
            .await
            .unwrap_or_else(|e| panic!("enroll: {e}\n{}", self.log()))
            .into_inner();
        (response, key.key_pem())
    }

    /// Enrols `site` over the real gRPC API (an admin token minted with
    /// `cloud-hub admin token`, `CreateJoinToken`, `Enroll` with a CSR of a
    /// key made here): its (chain PEM, key PEM).
    pub async fn enroll_site(&self, site: &str) -> (String, String) {
        let admin = self.token("admin");
        let token = self.join_token(&admin, site).await.token;
        let (response, key) = self.enroll_with(&token, "node-1").await;
        assert_eq!(response.site, site);
        (response.certificate_chain_pem, key)
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Adds a bearer token to a request.
pub fn authed<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Ok(value) = format!("Bearer {token}").parse() {
        request.metadata_mut().insert("authorization", value);
    }
    request
}

/// A site identity signed by `ca` directly, without enrolment: (chain PEM,
/// key PEM). The hub refuses such a site unless it was enrolled.
pub fn site_identity(ca: &CertificateAuthority, site: &str) -> (String, String) {
    let key = NodeKey::generate().expect("key");
    let csr = key.csr_pem("node-1").expect("csr");
    let cert = ca
        .sign_site_csr(&csr, site, Duration::from_secs(86_400))
        .expect("sign");
    (cert.cert_pem, key.key_pem())
}

/// Batch `seq` of `site`: `per_batch` distinct samples of a few series.
pub fn batch(site: &str, seq: u64, per_batch: usize, acked: u64) -> TelemetryBatch {
    let base = 1_767_225_600_000_000_000i64 + (seq as i64) * per_batch as i64 * 1_000_000_000;
    TelemetryBatch {
        site: site.into(),
        node_id: "node-1".into(),
        seq,
        samples: (0..per_batch)
            .map(|i| Sample {
                device: format!("m1/segment/{:02}", i % 18 + 1),
                attribute: "piston".into(),
                ts_unix_ns: base + i as i64 * 1_000_000_000,
                value: Some(sample::Value::DoubleValue((seq * 1000 + i as u64) as f64)),
                unit: "nm".into(),
                quality: 1,
            })
            .collect(),
        gaps: vec![],
        created_unix_ns: base,
        acked_seq: acked,
    }
}

/// A minimal fog-node: publishes batches QoS 1 and tracks the hub's acks.
pub struct FakeNode {
    pub client: AsyncClient,
    pub acks: watch::Receiver<u64>,
    pub errors: watch::Receiver<Option<String>>,
    /// Every ack received, with when.
    pub history: Arc<std::sync::Mutex<Vec<(Instant, Ack)>>>,
    pub site: String,
    topics: SiteTopics,
    driver: tokio::task::JoinHandle<()>,
}

impl Drop for FakeNode {
    fn drop(&mut self) {
        // Stop reconnecting: a leftover client with the same id would take
        // the session over from its successor.
        self.driver.abort();
    }
}

impl FakeNode {
    pub async fn connect(
        site: &str,
        port: u16,
        ca_pem: &str,
        identity: Option<(&str, &str)>,
    ) -> FakeNode {
        FakeNode::connect_as(site, site, port, ca_pem, identity).await
    }

    /// [`connect`](Self::connect) with another MQTT client id (Mosquitto
    /// confines a client by its certificate's CN, not by its client id).
    pub async fn connect_as(
        client_id: &str,
        site: &str,
        port: u16,
        ca_pem: &str,
        identity: Option<(&str, &str)>,
    ) -> FakeNode {
        let tls = obs_common::tls::client_config(ca_pem, identity).expect("tls");
        let mut options = MqttOptions::new(client_id, "127.0.0.1", port);
        // The embedded broker admits a connect whose client id and username
        // name an active site (Mosquitto takes the username from the CN).
        options.set_credentials(site, "");
        options.set_keep_alive(Duration::from_secs(5));
        options.set_max_packet_size(16 * 1024 * 1024, 16 * 1024 * 1024);
        options.set_transport(Transport::tls_with_config(
            rumqttc::TlsConfiguration::Rustls(Arc::new(tls)),
        ));
        let (client, mut eventloop) = AsyncClient::new(options, 1024);
        let mut network = eventloop.network_options();
        network.set_tcp_nodelay(true);
        eventloop.set_network_options(network);
        let topics = SiteTopics::for_site(site);
        let (ack_tx, acks) = watch::channel(0u64);
        let (err_tx, errors) = watch::channel(None);
        let ack_topic = topics.ack.clone();
        let resubscriber = client.clone();
        let history = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = history.clone();
        let driver = tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    // A clean session: subscribe again after every connect.
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        let _ = resubscriber.try_subscribe(ack_topic.clone(), QoS::AtLeastOnce);
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) if p.topic == ack_topic => {
                        if let Ok(ack) = Ack::decode(p.payload.as_ref()) {
                            ack_tx.send_modify(|v| *v = (*v).max(ack.up_to_seq));
                            if let Ok(mut seen) = seen.lock() {
                                seen.push((Instant::now(), ack));
                            }
                        }
                    }
                    Ok(_) => {}
                    Err(error) => {
                        let _ = err_tx.send(Some(error.to_string()));
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            }
        });
        FakeNode {
            client,
            acks,
            errors,
            history,
            site: site.into(),
            topics,
            driver,
        }
    }

    pub async fn publish(&self, batch: &TelemetryBatch) {
        self.publish_raw(&self.topics.telemetry.clone(), batch.encode_to_vec())
            .await;
    }

    pub async fn publish_raw(&self, topic: &str, payload: Vec<u8>) {
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload)
            .await
            .expect("publish");
    }

    /// Waits until the hub acknowledged `seq`.
    pub async fn wait_ack(&mut self, seq: u64, within: Duration) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if *self.acks.borrow() >= seq {
                return Ok(());
            }
            if tokio::time::timeout_at(deadline, self.acks.changed())
                .await
                .is_err()
            {
                return Err(format!(
                    "no ack for seq {seq} (last ack {}, last error {:?})",
                    *self.acks.borrow(),
                    *self.errors.borrow()
                ));
            }
        }
    }

    pub fn acked(&self) -> u64 {
        *self.acks.borrow()
    }
}

/// A double sample at `at_s` (Unix seconds), without a unit.
pub fn number(device: &str, attribute: &str, at_s: i64, v: f64) -> Sample {
    Sample {
        device: device.into(),
        attribute: attribute.into(),
        ts_unix_ns: at_s * 1_000_000_000,
        value: Some(sample::Value::DoubleValue(v)),
        unit: String::new(),
        quality: 1,
    }
}

/// Hour `seq` (1-based from `t0`, Unix seconds) of a site with its dome
/// open: every `step_s` the shutter, the weather (`dust` µg/m³) and the 18
/// segments' glass temperatures.
pub fn open_dome_hour(site: &str, seq: u64, t0: i64, step_s: i64, dust: f64) -> TelemetryBatch {
    let start = t0 + (seq as i64 - 1) * 3600;
    let samples = (0..3600 / step_s)
        .flat_map(|i| {
            let t = start + i * step_s;
            let mut s = vec![
                number("dome/shutter/1", "percentage_open", t, 100.0),
                number("weather/station/1", "dust_concentration", t, dust),
                number("weather/station/1", "relative_humidity", t, 55.0),
                number("weather/station/1", "dew_point", t, -3.0),
            ];
            s.extend(
                (1..=18)
                    .map(|p| number(&format!("m1/segment/{p:02}"), "glass_temperature", t, 8.0)),
            );
            s
        })
        .collect();
    TelemetryBatch {
        site: site.into(),
        node_id: "node-1".into(),
        seq,
        samples,
        gaps: vec![],
        created_unix_ns: start * 1_000_000_000,
        acked_seq: seq - 1,
    }
}

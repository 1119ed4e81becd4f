//! Shared helpers of the end-to-end tests: where the real services started by
//! `scripts/services.sh up` listen, and MQTT clients over mTLS.
//!
//! Every address comes from the `OBS_TEST_*` variables that
//! `scripts/services.sh env` prints; the defaults match that script.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use obs_common::pki::CertificateAuthority;
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, Transport};
use tokio::sync::mpsc;

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

/// The repository root (where `.dev/` lives).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default()
}

/// Kafka bootstrap servers.
pub fn kafka_bootstrap() -> String {
    env_or("OBS_TEST_KAFKA", "127.0.0.1:9092")
}

/// A Cassandra contact point.
pub fn cassandra_node() -> String {
    env_or("OBS_TEST_CASSANDRA", "127.0.0.1:9042")
}

/// Mosquitto's mTLS listener, host and port.
pub fn mosquitto_addr() -> (String, u16) {
    let addr = env_or("OBS_TEST_MQTT", "127.0.0.1:8884");
    let (host, port) = addr.rsplit_once(':').unwrap_or((&addr, "8884"));
    (host.to_owned(), port.parse().unwrap_or(8884))
}

/// The dev CA Mosquitto trusts, to sign test client certificates.
pub fn mosquitto_ca() -> anyhow::Result<CertificateAuthority> {
    let certs = repo_root().join(".dev/mosquitto/certs");
    let cert = env_or(
        "OBS_TEST_MQTT_CA_CERT",
        &certs.join("ca.pem").to_string_lossy(),
    );
    let key = env_or(
        "OBS_TEST_MQTT_CA_KEY",
        &certs.join("ca.key").to_string_lossy(),
    );
    let cert_pem = std::fs::read_to_string(&cert).with_context(|| {
        format!("reading the dev CA certificate {cert} (run scripts/services.sh up)")
    })?;
    let key_pem = std::fs::read_to_string(&key)
        .with_context(|| format!("reading the dev CA key {key} (run scripts/services.sh up)"))?;
    Ok(CertificateAuthority::from_pem(&cert_pem, &key_pem)?)
}

/// A name no other test run uses (topics, keyspaces, groups).
pub fn unique(prefix: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{prefix}{}{nanos}", std::process::id())
}

/// What an MQTT test client saw on its connection.
#[derive(Debug)]
pub enum Seen {
    Connected,
    Subscribed,
    PubAck(u16),
    Publish {
        topic: String,
        payload: Vec<u8>,
    },
    /// The connection failed; the event loop stops.
    Error(String),
}

/// An MQTT client whose event loop runs in a task and reports into a channel.
pub struct TestClient {
    pub client: AsyncClient,
    pub events: mpsc::UnboundedReceiver<Seen>,
}

impl TestClient {
    /// Connects to `host:port` over TLS trusting `ca_pem`, with an optional
    /// client identity (chain PEM, key PEM). Does not wait for CONNACK.
    pub fn start(
        client_id: &str,
        (host, port): (String, u16),
        ca_pem: &str,
        identity: Option<(&str, &str)>,
    ) -> anyhow::Result<Self> {
        let tls = obs_common::tls::client_config(ca_pem, identity)?;
        let mut options = MqttOptions::new(client_id, host, port);
        options.set_keep_alive(Duration::from_secs(5));
        options.set_transport(Transport::tls_with_config(
            rumqttc::TlsConfiguration::Rustls(Arc::new(tls)),
        ));
        let (client, eventloop) = AsyncClient::new(options, 64);
        let (tx, events) = mpsc::unbounded_channel();
        tokio::spawn(drive(eventloop, tx));
        Ok(TestClient { client, events })
    }

    /// Waits up to `timeout` for an event that `want` accepts; earlier
    /// events are returned too, in order, so tests can assert on them.
    pub async fn wait_for(
        &mut self,
        timeout: Duration,
        mut want: impl FnMut(&Seen) -> bool,
    ) -> anyhow::Result<Vec<Seen>> {
        let mut seen = Vec::new();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let event = tokio::time::timeout_at(deadline, self.events.recv())
                .await
                .with_context(|| format!("timed out; saw {seen:?}"))?
                .with_context(|| format!("event loop ended; saw {seen:?}"))?;
            let done = want(&event);
            seen.push(event);
            if done {
                return Ok(seen);
            }
        }
    }
}

async fn drive(mut eventloop: EventLoop, tx: mpsc::UnboundedSender<Seen>) {
    loop {
        let seen = match eventloop.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(_))) => Seen::Connected,
            Ok(Event::Incoming(Packet::SubAck(_))) => Seen::Subscribed,
            Ok(Event::Incoming(Packet::PubAck(ack))) => Seen::PubAck(ack.pkid),
            Ok(Event::Incoming(Packet::Publish(publish))) => Seen::Publish {
                topic: publish.topic,
                payload: publish.payload.to_vec(),
            },
            Ok(_) => continue,
            Err(error) => {
                let _ = tx.send(Seen::Error(error.to_string()));
                return;
            }
        };
        if tx.send(seen).is_err() {
            return;
        }
    }
}

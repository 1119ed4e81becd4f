//! The embedded MQTT broker: rumqttd in its own thread, TLS on the configured
//! port, client certificates required and verified against the hub CA, and
//! tenant isolation: a certificate's subject O (the site id) confines that
//! client to topics under `/tenants/{site}/`. The hub reads and writes
//! through an in-process link, which has no tenant and sees every site.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;

use bytes::Bytes;
use rumqttd::local::{LinkRx, LinkTx};
use rumqttd::{
    Broker, Config, ConnectionSettings, Notification, RouterConfig, ServerSettings, TlsConfig,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{Inbound, Outbound};
use crate::pki::PkiPaths;

/// Filter the hub's link subscribes to: every site's uplink topics.
pub const UPLINK_FILTER: &str = "/tenants/+/obs/v1/up/#";

/// Largest MQTT payload the broker accepts (bigger batches are refused by
/// the broker before they reach the hub).
pub const MAX_PAYLOAD_BYTES: usize = 8 * 1024 * 1024;

/// Errors starting the broker.
#[derive(Debug, thiserror::Error)]
pub enum EmbeddedBrokerError {
    #[error("embedded mqtt broker on {listen}: {reason}")]
    Start { listen: SocketAddr, reason: String },
}

fn broker_config(listen: SocketAddr, pki: &PkiPaths) -> Config {
    let path = |p: &std::path::Path| p.to_string_lossy().into_owned();
    let server = ServerSettings {
        name: "fog-nodes".into(),
        listen,
        tls: Some(TlsConfig::Rustls {
            capath: Some(path(&pki.ca_cert)),
            certpath: path(&pki.server_cert),
            keypath: path(&pki.server_key),
        }),
        next_connection_delay_ms: 1,
        connections: ConnectionSettings {
            connection_timeout_ms: 60_000,
            max_payload_size: MAX_PAYLOAD_BYTES,
            max_inflight_count: 256,
            auth: None,
            external_auth: None,
            dynamic_filters: true,
        },
    };
    Config {
        id: 0,
        router: RouterConfig {
            max_connections: 10_010,
            max_outgoing_packet_count: 1024,
            max_segment_size: 64 * 1024 * 1024,
            max_segment_count: 4,
            ..Default::default()
        },
        v4: Some(HashMap::from([("1".to_string(), server)])),
        ..Default::default()
    }
}

/// Acks go out through the hub's link.
struct LinkOutbound {
    tx: Mutex<LinkTx>,
}

impl Outbound for LinkOutbound {
    fn publish(&self, topic: String, payload: Bytes) -> Result<(), String> {
        let mut tx = self
            .tx
            .lock()
            .map_err(|_| "link lock poisoned".to_string())?;
        tx.publish(topic, payload)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

/// Starts the broker and the hub's link; inbound messages are sent to
/// `inbound` until `shutdown`.
pub fn start(
    listen: SocketAddr,
    pki: &PkiPaths,
    inbound: mpsc::Sender<Inbound>,
    shutdown: CancellationToken,
) -> Result<Box<dyn Outbound>, EmbeddedBrokerError> {
    let fail = |reason: String| EmbeddedBrokerError::Start { listen, reason };
    // Fail early and clearly on a port in use: rumqttd would only log it.
    std::net::TcpListener::bind(listen).map_err(|e| fail(e.to_string()))?;
    let mut broker = Broker::new(broker_config(listen, pki));
    let (mut link_tx, link_rx) = broker.link("cloud-hub").map_err(|e| fail(e.to_string()))?;
    link_tx
        .subscribe(UPLINK_FILTER)
        .map_err(|e| fail(e.to_string()))?;
    std::thread::Builder::new()
        .name("mqtt-broker".into())
        .spawn(move || {
            if let Err(error) = broker.start() {
                tracing::error!(%error, %listen, "embedded mqtt broker stopped");
            }
        })
        .map_err(|e| fail(e.to_string()))?;
    tokio::spawn(read_link(link_rx, inbound, shutdown));
    tracing::info!(%listen, "embedded mqtt broker listening (mTLS, tenant per site)");
    Ok(Box::new(LinkOutbound {
        tx: Mutex::new(link_tx),
    }))
}

async fn read_link(
    mut link_rx: LinkRx,
    inbound: mpsc::Sender<Inbound>,
    shutdown: CancellationToken,
) {
    loop {
        let notification = tokio::select! {
            _ = shutdown.cancelled() => return,
            next = link_rx.next() => next,
        };
        match notification {
            Ok(Some(Notification::Forward(forward))) => {
                let message = Inbound {
                    topic: String::from_utf8_lossy(&forward.publish.topic).into_owned(),
                    payload: forward.publish.payload,
                };
                if inbound.send(message).await.is_err() {
                    return;
                }
            }
            Ok(_) => {}
            Err(error) => {
                tracing::error!(%error, "embedded mqtt link failed");
                return;
            }
        }
    }
}

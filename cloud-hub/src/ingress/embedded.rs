//! The embedded MQTT broker: rumqttd in its own thread, TLS on the configured
//! port, client certificates required and verified against the hub CA, and
//! tenant isolation: a certificate's subject O (the site id) confines that
//! client to topics under `/tenants/{site}/`. The hub reads and writes
//! through an in-process link, which has no tenant and sees every site.
//!
//! Every CONNECT is also checked against the [`SiteRegistry`]: the client
//! id (which rumqttd hands the hook before prefixing it with the tenant)
//! must be an active site and the MQTT username must equal it, so a revoked
//! or never-enrolled site is refused at its next connect. The hook cannot
//! see the certificate; a revoked certificate presenting another site's id
//! still only reaches its own tenant's topics, whose batches the bridge
//! refuses. [`EmbeddedSessions`] closes a revoked site's live session.
//!
//! The router and the listener are built here rather than through
//! `Broker::start` so that the hub keeps the router handle for that.

use std::net::SocketAddr;
use std::sync::Mutex;

use bytes::Bytes;
use rumqttd::local::{LinkBuilder, LinkRx, LinkTx};
use rumqttd::protocol::v4::V4;
use rumqttd::protocol::{Disconnect, DisconnectReasonCode, Packet};
use rumqttd::{
    ConnectionSettings, LinkType, Notification, Router, RouterConfig, Server, ServerSettings,
    TlsConfig,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{BrokerStatus, Inbound, Outbound};
use crate::enroll::{SessionCloser, SiteRegistry};
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

fn server_settings(listen: SocketAddr, pki: &PkiPaths, sites: SiteRegistry) -> ServerSettings {
    let path = |p: &std::path::Path| p.to_string_lossy().into_owned();
    let mut connections = ConnectionSettings {
        connection_timeout_ms: 60_000,
        max_payload_size: MAX_PAYLOAD_BYTES,
        max_inflight_count: 256,
        auth: None,
        external_auth: None,
        dynamic_filters: true,
    };
    connections.set_auth_handler(move |client_id: String, username: String, _password| {
        let sites = sites.clone();
        async move {
            let admitted = username == client_id && sites.admits(&client_id).await;
            if !admitted {
                tracing::warn!(
                    client_id,
                    username,
                    reason = "client id is not an active site, or the username differs",
                    "mqtt connect refused"
                );
            }
            admitted
        }
    });
    ServerSettings {
        name: "fog-nodes".into(),
        listen,
        tls: Some(TlsConfig::Rustls {
            capath: Some(path(&pki.ca_cert)),
            certpath: path(&pki.server_cert),
            keypath: path(&pki.server_key),
        }),
        next_connection_delay_ms: 1,
        connections,
    }
}

fn router_config() -> RouterConfig {
    RouterConfig {
        max_connections: 10_010,
        max_outgoing_packet_count: 1024,
        max_segment_size: 64 * 1024 * 1024,
        max_segment_count: 4,
        ..Default::default()
    }
}

type OpenLink = dyn Fn(&str) -> Result<LinkTx, String> + Send + Sync;

/// Closes live sessions of the embedded broker: a local link with the
/// site's tenant and client id takes the session over (rumqttd drops the
/// older connection with the same id), then disconnects itself.
pub struct EmbeddedSessions {
    open: Box<OpenLink>,
}

#[async_trait::async_trait]
impl SessionCloser for EmbeddedSessions {
    async fn close(&self, site: &str) {
        match (self.open)(site) {
            Ok(mut link) => {
                let disconnect = Packet::Disconnect(
                    Disconnect {
                        reason_code: DisconnectReasonCode::NormalDisconnection,
                    },
                    None,
                );
                if let Err(error) = link.send(disconnect).await {
                    tracing::warn!(%error, site, "cannot end the session-closing link");
                }
                tracing::info!(site, "closed the site's mqtt session");
            }
            Err(error) => tracing::warn!(%error, site, "cannot close the site's mqtt session"),
        }
    }
}

/// What [`start`] returns: where acks go and how to close sessions.
pub struct EmbeddedBroker {
    pub outbound: Box<dyn Outbound>,
    pub sessions: std::sync::Arc<EmbeddedSessions>,
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
/// `inbound` until `shutdown`. Connections are admitted by `sites`.
/// `status` is up while the link and the broker thread run.
pub fn start(
    listen: SocketAddr,
    pki: &PkiPaths,
    sites: SiteRegistry,
    inbound: mpsc::Sender<Inbound>,
    status: BrokerStatus,
    shutdown: CancellationToken,
) -> Result<EmbeddedBroker, EmbeddedBrokerError> {
    let fail = |reason: String| EmbeddedBrokerError::Start { listen, reason };
    // Fail early and clearly on a port in use: rumqttd would only log it.
    std::net::TcpListener::bind(listen).map_err(|e| fail(e.to_string()))?;
    let router_tx = Router::new(0, router_config()).spawn();
    let (mut link_tx, link_rx, _) = LinkBuilder::new("cloud-hub", router_tx.clone())
        .build()
        .map_err(|e| fail(e.to_string()))?;
    link_tx
        .subscribe(UPLINK_FILTER)
        .map_err(|e| fail(e.to_string()))?;
    let mut server = Server::new(server_settings(listen, pki, sites), router_tx.clone(), V4);
    status.up(format!("embedded broker on {listen}, link alive"));
    let thread_status = status.clone();
    std::thread::Builder::new()
        .name("mqtt-broker".into())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            match runtime {
                Ok(runtime) => {
                    if let Err(error) = runtime.block_on(server.start(LinkType::Remote)) {
                        tracing::error!(%error, %listen, "embedded mqtt broker stopped");
                        thread_status.down(format!("embedded broker on {listen} stopped: {error}"));
                    }
                }
                Err(error) => {
                    tracing::error!(%error, %listen, "embedded mqtt broker runtime");
                    thread_status.down(format!("embedded broker runtime: {error}"));
                }
            }
        })
        .map_err(|e| fail(e.to_string()))?;
    tokio::spawn(read_link(link_rx, inbound, status, shutdown));
    tracing::info!(%listen, "embedded mqtt broker listening (mTLS, tenant per site)");
    let open: Box<OpenLink> = Box::new(move |site: &str| {
        LinkBuilder::new(site, router_tx.clone())
            .tenant_id(Some(site.to_owned()))
            .build()
            .map(|(tx, _rx, _)| tx)
            .map_err(|e| e.to_string())
    });
    Ok(EmbeddedBroker {
        outbound: Box::new(LinkOutbound {
            tx: Mutex::new(link_tx),
        }),
        sessions: std::sync::Arc::new(EmbeddedSessions { open }),
    })
}

async fn read_link(
    mut link_rx: LinkRx,
    inbound: mpsc::Sender<Inbound>,
    status: BrokerStatus,
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
                status.down(format!("embedded mqtt link failed: {error}"));
                return;
            }
        }
    }
}

//! An external broker (Mosquitto, EMQX): the hub is the privileged MQTT
//! client `cloud-hub`, with a client certificate it issues itself from its
//! CA, reading every site's uplink through a shared subscription and
//! publishing acks to each site's `down/ack`. The broker's ACL (see
//! `infra/mosquitto/acl`) is what confines each site to its own prefix;
//! because Mosquitto acknowledges a denied publish like any other, only the
//! hub's own `Ack` counts as delivery.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use obs_common::pki::CertificateAuthority;
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, QoS, Transport};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{BrokerStatus, Inbound, Outbound};

/// The hub's MQTT identity on an external broker (its certificate CN): a
/// name no site id (`[a-z][a-z0-9]{1,31}`) can take.
pub const HUB_CLIENT: &str = "cloud-hub";
/// Validity of the hub's client certificate; reissued at every start.
const CLIENT_CERT_VALIDITY: Duration = Duration::from_secs(30 * 86_400);
/// Publishes the hub may have queued towards the broker.
const REQUEST_QUEUE: usize = 4096;

/// Where the external broker is.
#[derive(Debug, Clone)]
pub struct ExternalBroker {
    pub host: String,
    pub port: u16,
    pub shared_group: String,
    /// CA of the broker's server certificate.
    pub broker_ca_pem: String,
}

/// Errors connecting to the external broker.
#[derive(Debug, thiserror::Error)]
#[error("external mqtt broker {host}:{port}: {reason}")]
pub struct ExternalBrokerError {
    host: String,
    port: u16,
    reason: String,
}

/// The shared subscription that brings every site's uplink to one of the
/// hubs of `group`. Site topics start with `/`, hence the `//`.
pub fn uplink_filter(group: &str) -> String {
    format!("$share/{group}//tenants/+/obs/v1/up/#")
}

struct ClientOutbound {
    client: AsyncClient,
}

impl Outbound for ClientOutbound {
    fn publish(&self, topic: String, payload: Bytes) -> Result<(), String> {
        self.client
            .try_publish(topic, QoS::AtLeastOnce, false, payload)
            .map_err(|e| e.to_string())
    }
}

/// Connects (in the background, reconnecting with backoff) and forwards
/// every uplink message to `inbound`. `status` is up while connected.
pub fn start(
    broker: ExternalBroker,
    ca: &CertificateAuthority,
    inbound: mpsc::Sender<Inbound>,
    status: BrokerStatus,
    shutdown: CancellationToken,
) -> Result<Box<dyn Outbound>, ExternalBrokerError> {
    let fail = |reason: String| ExternalBrokerError {
        host: broker.host.clone(),
        port: broker.port,
        reason,
    };
    let identity = ca
        .issue_client(HUB_CLIENT, None, CLIENT_CERT_VALIDITY)
        .map_err(|e| fail(e.to_string()))?;
    let tls = obs_common::tls::client_config(
        &broker.broker_ca_pem,
        Some((&identity.cert_pem, &identity.key_pem)),
    )
    .map_err(|e| fail(e.to_string()))?;
    let client_id = format!("{HUB_CLIENT}-{}", std::process::id());
    let mut options = MqttOptions::new(client_id, broker.host.clone(), broker.port);
    options.set_keep_alive(Duration::from_secs(15));
    options.set_clean_session(true);
    options.set_max_packet_size(16 * 1024 * 1024, 16 * 1024 * 1024);
    options.set_transport(Transport::tls_with_config(
        rumqttc::TlsConfiguration::Rustls(Arc::new(tls)),
    ));
    let (client, mut eventloop) = AsyncClient::new(options, REQUEST_QUEUE);
    // Acks are small: send them at once, not after the broker's delayed ACK.
    let mut network = eventloop.network_options();
    network.set_tcp_nodelay(true);
    eventloop.set_network_options(network);
    let filter = uplink_filter(&broker.shared_group);
    let endpoint = format!("external broker {}:{}", broker.host, broker.port);
    status.down(format!("{endpoint}: not connected yet"));
    let link = Link {
        client: client.clone(),
        filter,
        inbound,
        status,
        endpoint,
    };
    tokio::spawn(drive(eventloop, link, shutdown));
    tracing::info!(
        host = broker.host,
        port = broker.port,
        "connecting to the external mqtt broker"
    );
    Ok(Box::new(ClientOutbound { client }))
}

/// What the connection task works with.
struct Link {
    client: AsyncClient,
    filter: String,
    inbound: mpsc::Sender<Inbound>,
    status: BrokerStatus,
    /// `external broker host:port`, for the status.
    endpoint: String,
}

async fn drive(mut eventloop: EventLoop, link: Link, shutdown: CancellationToken) {
    let Link {
        client,
        filter,
        inbound,
        status,
        endpoint,
    } = link;
    let mut pause = Duration::from_millis(200);
    loop {
        let event = tokio::select! {
            _ = shutdown.cancelled() => {
                let _ = client.try_disconnect();
                return;
            }
            event = eventloop.poll() => event,
        };
        match event {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                pause = Duration::from_millis(200);
                tracing::info!(filter, "connected to the external mqtt broker");
                status.up(format!("{endpoint}: connected"));
                // A clean session: subscribe again after every connect.
                if let Err(error) = client.subscribe(filter.clone(), QoS::AtLeastOnce).await {
                    tracing::error!(%error, "cannot subscribe to the uplink topics");
                }
            }
            Ok(Event::Incoming(Packet::Publish(publish))) => {
                let message = Inbound {
                    topic: publish.topic,
                    payload: publish.payload,
                };
                if inbound.send(message).await.is_err() {
                    return;
                }
            }
            Ok(_) => {}
            Err(error) => {
                status.down(format!("{endpoint}: {error}"));
                tracing::warn!(%error, retry_in_ms = pause.as_millis() as u64, "external mqtt broker connection failed");
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(pause) => {}
                }
                pause = (pause * 2).min(Duration::from_secs(10));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shared_subscription_covers_every_site_uplink() {
        assert_eq!(uplink_filter("hub"), "$share/hub//tenants/+/obs/v1/up/#");
    }
}

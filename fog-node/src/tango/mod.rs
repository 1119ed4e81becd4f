//! The Tango JSON adapter: a local MQTT 3.1.1 listener (plain TCP, loopback
//! by default) where existing Tango device companions publish
//! `{domain}/{family}/{member}/telemetry/{attribute}` with
//! `{"timestamp", "value", "units"}` payloads ([`parse`]). Accepted samples
//! go to the same spool writer as the simulated devices; malformed messages
//! are counted per reason and logged with the topic, never fatal.
//!
//! This is a minimal broker-side of MQTT written on rumqttc's own v4 packet
//! codec, not an embedded rumqttd: the adapter only ever receives (CONNECT,
//! PUBLISH QoS 0/1/2, PINGREQ, DISCONNECT; SUBSCRIBE is answered with a
//! failure code), and doing it in-process this way gives what rumqttd does
//! not: the listener stops with the node's shutdown token (a rumqttd
//! `Broker` cannot be stopped), a QoS 1 PUBACK is sent only once the sample
//! is in the spool writer's channel, and a full channel stops reading the
//! socket, so backpressure reaches the publisher over TCP instead of piling
//! up in a router's in-memory logs.

pub mod parse;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::BytesMut;
use rumqttc::mqttbytes::v4::{
    ConnAck, ConnectReturnCode, Packet, PubAck, PubComp, PubRec, SubAck, SubscribeReasonCode,
    UnsubAck,
};
use rumqttc::mqttbytes::{Error as CodecError, QoS};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::TangoConfig;
use crate::error::{Error, Result};
use crate::spool_writer::SampleSender;
pub use parse::{Malformed, Refused, parse_message};

/// Longest wait for the CONNECT packet of a new connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Counters of the adapter.
#[derive(Debug, Default)]
pub struct TangoCounters {
    accepted: AtomicU64,
    malformed: [AtomicU64; Malformed::ALL.len()],
    connections: AtomicU64,
    refused_connections: AtomicU64,
    protocol_errors: AtomicU64,
}

/// A copy of [`TangoCounters`], for `status.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TangoSnapshot {
    /// Samples handed to the spool writer.
    pub accepted: u64,
    /// Refused messages by reason (`bad_topic`, `bad_json`, ...).
    pub malformed: BTreeMap<String, u64>,
    /// Connections accepted, ever.
    pub connections: u64,
    /// Connections refused because `max_connections` were open.
    pub refused_connections: u64,
    /// Connections closed for a protocol violation.
    pub protocol_errors: u64,
}

impl TangoCounters {
    /// The current values.
    pub fn snapshot(&self) -> TangoSnapshot {
        TangoSnapshot {
            accepted: self.accepted.load(Ordering::Relaxed),
            malformed: Malformed::ALL
                .iter()
                .map(|m| {
                    (
                        m.as_str().to_owned(),
                        self.malformed[*m as usize].load(Ordering::Relaxed),
                    )
                })
                .collect(),
            connections: self.connections.load(Ordering::Relaxed),
            refused_connections: self.refused_connections.load(Ordering::Relaxed),
            protocol_errors: self.protocol_errors.load(Ordering::Relaxed),
        }
    }

    /// Refused messages for `reason`.
    pub fn malformed(&self, reason: Malformed) -> u64 {
        self.malformed[reason as usize].load(Ordering::Relaxed)
    }

    /// Samples accepted.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }
}

/// A running listener.
#[derive(Debug)]
pub struct TangoListener {
    local_addr: SocketAddr,
    task: JoinHandle<()>,
}

impl TangoListener {
    /// The address it listens on (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Waits until the listener and every connection ended (after `stop`),
    /// so that no sample sender is left.
    pub async fn join(self) {
        let _ = self.task.await;
    }
}

/// Binds `config.listen` and serves until `stop` is cancelled.
pub async fn start(
    config: &TangoConfig,
    samples: SampleSender,
    counters: Arc<TangoCounters>,
    stop: CancellationToken,
) -> Result<TangoListener> {
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|e| Error::Task {
            task: "tango adapter",
            reason: format!("cannot listen on {}: {e}", config.listen),
        })?;
    let local_addr = listener.local_addr().map_err(|e| Error::Task {
        task: "tango adapter",
        reason: format!("listener address: {e}"),
    })?;
    if !local_addr.ip().is_loopback() {
        tracing::warn!(%local_addr, "the tango adapter has no TLS and no authentication but listens beyond loopback");
    }
    tracing::info!(%local_addr, "tango adapter listening");
    let max_packet = config.max_packet_bytes;
    let slots = Arc::new(Semaphore::new(config.max_connections));
    let task = tokio::spawn(async move {
        let tracker = TaskTracker::new();
        loop {
            let (stream, peer) = tokio::select! {
                _ = stop.cancelled() => break,
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        tracing::warn!(%error, "tango adapter accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            let Ok(permit) = slots.clone().try_acquire_owned() else {
                counters.refused_connections.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%peer, "tango adapter at max_connections, refusing a connection");
                continue;
            };
            counters.connections.fetch_add(1, Ordering::Relaxed);
            let connection = Connection {
                samples: samples.clone(),
                counters: counters.clone(),
                stop: stop.clone(),
                max_packet,
                peer,
            };
            tracker.spawn(async move {
                connection.serve(stream).await;
                drop(permit);
            });
        }
        drop(samples);
        tracker.close();
        tracker.wait().await;
        tracing::info!("tango adapter stopped");
    });
    Ok(TangoListener { local_addr, task })
}

struct Connection {
    samples: SampleSender,
    counters: Arc<TangoCounters>,
    stop: CancellationToken,
    max_packet: usize,
    peer: SocketAddr,
}

/// What to do after a packet.
enum Next {
    Continue,
    Close,
}

impl Connection {
    async fn serve(self, mut stream: TcpStream) {
        let peer = self.peer;
        match self.serve_inner(&mut stream).await {
            Ok(()) => tracing::debug!(%peer, "tango client disconnected"),
            Err(error) => {
                self.counters
                    .protocol_errors
                    .fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%peer, error, "closing a tango client connection");
            }
        }
        let _ = stream.shutdown().await;
    }

    async fn serve_inner(&self, stream: &mut TcpStream) -> std::result::Result<(), String> {
        let mut input = BytesMut::with_capacity(4096);
        let mut output = BytesMut::with_capacity(64);
        let mut idle_limit = CONNECT_TIMEOUT;
        let mut connected = false;
        loop {
            // Fail fast on a client that does not speak MQTT at all.
            if !connected && input.first().is_some_and(|b| b >> 4 != 1) {
                return Err("the first packet is not CONNECT".into());
            }
            let packet = match Packet::read(&mut input, self.max_packet) {
                Ok(packet) => packet,
                Err(CodecError::InsufficientBytes(_)) => {
                    let read = tokio::select! {
                        _ = self.stop.cancelled() => return Ok(()),
                        read = tokio::time::timeout(idle_limit, stream.read_buf(&mut input)) => read,
                    };
                    match read {
                        Err(_) => return Err(format!("nothing received for {idle_limit:?}")),
                        Ok(Err(error)) => return Err(format!("read failed: {error}")),
                        Ok(Ok(0)) if input.is_empty() => return Ok(()),
                        Ok(Ok(0)) => return Err("connection closed inside a packet".into()),
                        Ok(Ok(_)) => continue,
                    }
                }
                Err(error) => return Err(format!("bad packet: {error}")),
            };
            if !connected {
                let Packet::Connect(connect) = packet else {
                    return Err("the first packet is not CONNECT".into());
                };
                connected = true;
                // MQTT: close after 1.5 keep-alive periods without a packet.
                idle_limit = match connect.keep_alive {
                    0 => Duration::from_secs(24 * 3600),
                    k => Duration::from_millis(u64::from(k) * 1500),
                };
                tracing::debug!(peer = %self.peer, client_id = connect.client_id, "tango client connected");
                reply(
                    stream,
                    &mut output,
                    Packet::ConnAck(ConnAck::new(ConnectReturnCode::Success, false)),
                )
                .await?;
                continue;
            }
            let answer = match self.handle(packet).await? {
                (Next::Close, _) => return Ok(()),
                (Next::Continue, answer) => answer,
            };
            if let Some(answer) = answer {
                reply(stream, &mut output, answer).await?;
            }
        }
    }

    async fn handle(&self, packet: Packet) -> std::result::Result<(Next, Option<Packet>), String> {
        Ok(match packet {
            Packet::Publish(publish) => {
                self.accept(&publish.topic, &publish.payload).await?;
                let answer = match publish.qos {
                    QoS::AtMostOnce => None,
                    QoS::AtLeastOnce => Some(Packet::PubAck(PubAck::new(publish.pkid))),
                    QoS::ExactlyOnce => Some(Packet::PubRec(PubRec::new(publish.pkid))),
                };
                (Next::Continue, answer)
            }
            Packet::PubRel(rel) => (
                Next::Continue,
                Some(Packet::PubComp(PubComp::new(rel.pkid))),
            ),
            Packet::PingReq => (Next::Continue, Some(Packet::PingResp)),
            Packet::Subscribe(subscribe) => {
                tracing::debug!(peer = %self.peer, "tango clients cannot subscribe, refusing");
                let codes = vec![SubscribeReasonCode::Failure; subscribe.filters.len()];
                (
                    Next::Continue,
                    Some(Packet::SubAck(SubAck::new(subscribe.pkid, codes))),
                )
            }
            Packet::Unsubscribe(unsubscribe) => (
                Next::Continue,
                Some(Packet::UnsubAck(UnsubAck::new(unsubscribe.pkid))),
            ),
            Packet::Disconnect => (Next::Close, None),
            Packet::PubAck(_) | Packet::PubRec(_) | Packet::PubComp(_) | Packet::PingResp => {
                (Next::Continue, None)
            }
            Packet::Connect(_) => return Err("a second CONNECT".into()),
            Packet::ConnAck(_) | Packet::SubAck(_) | Packet::UnsubAck(_) => {
                return Err("a packet only a broker sends".into());
            }
        })
    }

    /// Parses one message and hands the sample to the spool writer,
    /// waiting while its channel is full.
    async fn accept(&self, topic: &str, payload: &[u8]) -> std::result::Result<(), String> {
        match parse_message(topic, payload) {
            Ok(sample) => {
                self.samples
                    .send(vec![sample])
                    .await
                    .map_err(|_| "the spool writer is gone (shutting down)".to_owned())?;
                self.counters.accepted.fetch_add(1, Ordering::Relaxed);
            }
            Err(refused) => {
                self.counters.malformed[refused.reason as usize].fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    peer = %self.peer,
                    topic,
                    reason = refused.reason.as_str(),
                    detail = refused.detail,
                    "refusing a malformed tango message"
                );
            }
        }
        Ok(())
    }
}

async fn reply(
    stream: &mut TcpStream,
    output: &mut BytesMut,
    packet: Packet,
) -> std::result::Result<(), String> {
    output.clear();
    packet
        .write(output, usize::MAX)
        .map_err(|e| format!("encoding a reply: {e}"))?;
    stream
        .write_all(output)
        .await
        .map_err(|e| format!("write failed: {e}"))
}

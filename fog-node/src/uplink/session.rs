//! One MQTT connection of the uplink, from TLS handshake to disconnect. See
//! the [uplink docs](super).

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use obs_proto::v1::{Ack, NodeState, RejectCode};
use prost::Message;
use rumqttc::{
    AsyncClient, ConnectionError, Event, EventLoop, LastWill, MqttOptions, Packet, QoS,
    TlsConfiguration, Transport,
};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::{Backoff, RateLimiter, SendCursor, SessionEnd, StatusSource, UplinkParts};
use super::{node_status, with_acked_seq};
use crate::identity::Identity;
use crate::metrics;
use crate::spool::SpoolStats;
use crate::spool_writer::{SharedSpool, lock};
use crate::timefmt::{now_unix_ns, parse_rfc3339_ns};

/// Largest MQTT packet the broker may send us (acks, possibly with reasons).
const MAX_INCOMING_PACKET: usize = 1024 * 1024;
/// Largest MQTT packet (the protocol's limit): one spool record may be large.
const MAX_OUTGOING_PACKET: usize = 268_435_455;
/// How long a stopping session waits for its OFFLINE status to go out.
const DISCONNECT_WAIT: Duration = Duration::from_secs(2);

type SessionResult = Result<SessionEnd, String>;

/// What the event loop task reports.
enum SessionEvent {
    /// A message on the ack topic.
    Ack(Bytes),
    /// The connection failed; the event loop stopped.
    Error(String),
}

/// Aborts the event loop task when the session ends.
struct Driver(JoinHandle<()>);

impl Drop for Driver {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Connects, then sends and acks until an error, a stop or a reconnect.
pub(crate) async fn run(
    parts: &UplinkParts,
    identity: &Identity,
    backoff: &mut Backoff,
) -> SessionResult {
    let config = &parts.config;
    let enrollment = &identity.enrollment;
    let topics = identity.topics();
    let source = StatusSource {
        site: &enrollment.site,
        node_id: &enrollment.node_id,
        certificate_not_after_s: parse_rfc3339_ns(&enrollment.certificate_not_after)
            .map_or(0, |ns| ns.div_euclid(1_000_000_000)),
    };
    let stats = spool_stats(&parts.spool).await?;
    let will = node_status(&source, NodeState::Offline, &stats, now_unix_ns());
    let tls = obs_common::tls::client_config(
        &identity.ca_pem,
        Some((&identity.cert_chain_pem, identity.key_pem())),
    )
    .map_err(|e| format!("tls configuration: {e}"))?;
    let mut options = MqttOptions::new(
        &enrollment.mqtt.client_id,
        &enrollment.mqtt.host,
        enrollment.mqtt.port,
    );
    // The hub's embedded broker admits a CONNECT only when its client id
    // and username name an active site; Mosquitto takes the username from
    // the certificate's CN instead and ignores this one.
    options
        .set_credentials(&enrollment.mqtt.client_id, "")
        .set_clean_session(true)
        .set_keep_alive(Duration::from_secs(config.keep_alive_s))
        .set_inflight(u16::try_from(config.window + 8).unwrap_or(u16::MAX))
        .set_max_packet_size(MAX_INCOMING_PACKET, MAX_OUTGOING_PACKET)
        .set_last_will(LastWill::new(&topics.status, will, QoS::AtLeastOnce, true))
        .set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
            Arc::new(tls),
        )));
    let (client, mut eventloop) = AsyncClient::new(options, config.window * 2 + 16);
    let mut network = eventloop.network_options();
    network.set_connection_timeout(config.connect_timeout_s);
    // Small packets (PUBACKs, statuses) go out at once, not after the
    // broker's delayed ACK.
    network.set_tcp_nodelay(true);
    eventloop.set_network_options(network);

    let broker = format!("{}:{}", enrollment.mqtt.host, enrollment.mqtt.port);
    let connect_limit = Duration::from_secs(config.connect_timeout_s * 2 + 1);
    tokio::select! {
        _ = parts.stop.cancelled() => return Ok(SessionEnd::Stopped),
        connected = tokio::time::timeout(connect_limit, wait_for_connack(&mut eventloop)) => {
            match connected {
                Err(_) => return Err(format!("no CONNACK from {broker} within {connect_limit:?}")),
                Ok(Err(error)) => return Err(format!("connecting to {broker}: {}", describe(&error))),
                Ok(Ok(())) => {}
            }
        }
    }
    backoff.reset();
    metrics::inc(&parts.metrics.connects);
    parts.state.set_connected(true);
    parts
        .state
        .last_connect_unix_ns
        .store(now_unix_ns(), Ordering::Relaxed);
    tracing::info!(
        broker,
        client_id = enrollment.mqtt.client_id,
        acked_seq = stats.acked_seq,
        backlog_batches = stats.backlog_batches,
        "uplink connected"
    );

    let (events_tx, events) = mpsc::unbounded_channel();
    let driver = Driver(tokio::spawn(drive(
        eventloop,
        events_tx,
        topics.ack.clone(),
    )));
    client
        .subscribe(&topics.ack, QoS::AtLeastOnce)
        .await
        .map_err(|e| format!("subscribing to {}: {e}", topics.ack))?;
    let online = node_status(&source, NodeState::Online, &stats, now_unix_ns());
    client
        .publish(&topics.status, QoS::AtLeastOnce, true, online)
        .await
        .map_err(|e| format!("publishing the status: {e}"))?;

    let mut session = Session {
        parts,
        client,
        telemetry_topic: topics.telemetry.clone(),
        status_topic: topics.status.clone(),
        node_id: enrollment.node_id.clone(),
        source,
        acked: stats.acked_seq,
        cursor: SendCursor::new(stats.acked_seq),
        in_flight: VecDeque::new(),
        progress_at: Instant::now(),
        limiter: RateLimiter::new(
            config.max_batches_per_s,
            config.max_bytes_per_s,
            Instant::now(),
        ),
        caught_up: false,
        writer_gone: false,
    };
    if stats.backlog_batches > 0 {
        metrics::inc(&parts.metrics.resends);
    }
    let result = session.run_loop(events).await;
    drop(driver);
    result
}

async fn wait_for_connack(eventloop: &mut EventLoop) -> Result<(), ConnectionError> {
    loop {
        if let Event::Incoming(Packet::ConnAck(_)) = eventloop.poll().await? {
            return Ok(());
        }
    }
}

/// Polls the event loop and reports acks and the first error.
async fn drive(
    mut eventloop: EventLoop,
    events: mpsc::UnboundedSender<SessionEvent>,
    ack_topic: String,
) {
    loop {
        let event = match eventloop.poll().await {
            Ok(Event::Incoming(Packet::Publish(publish))) if publish.topic == ack_topic => {
                SessionEvent::Ack(publish.payload)
            }
            Ok(Event::Incoming(Packet::Disconnect)) => {
                SessionEvent::Error("the broker sent DISCONNECT".into())
            }
            Ok(_) => continue,
            Err(error) => SessionEvent::Error(describe(&error)),
        };
        let stop = matches!(event, SessionEvent::Error(_));
        if events.send(event).is_err() || stop {
            return;
        }
    }
}

/// The error and its causes, e.g. `I/O: received fatal alert: CertificateRevoked`.
fn describe(error: &ConnectionError) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

struct Session<'a> {
    parts: &'a UplinkParts,
    client: AsyncClient,
    telemetry_topic: String,
    status_topic: String,
    node_id: String,
    source: StatusSource<'a>,
    /// The spool's ack watermark.
    acked: u64,
    cursor: SendCursor,
    /// Seqs published and not yet covered by an ack, in send order.
    in_flight: VecDeque<u64>,
    /// Last ack progress (or the first send after an idle period).
    progress_at: Instant,
    limiter: RateLimiter,
    /// The cursor reached the durable end of the spool.
    caught_up: bool,
    /// The spool writer ended (shutdown): no more durable changes.
    writer_gone: bool,
}

impl Session<'_> {
    async fn run_loop(
        &mut self,
        mut events: mpsc::UnboundedReceiver<SessionEvent>,
    ) -> SessionResult {
        let config = &self.parts.config;
        let mut durable = self.parts.durable.clone();
        let mut status_tick =
            tokio::time::interval(Duration::from_millis(config.status_interval_ms));
        status_tick.reset();
        loop {
            durable.borrow_and_update();
            if let Some(end) = self.fill_window().await? {
                return self.finish(end).await;
            }
            let ack_deadline = self.progress_at + config.ack_timeout();
            tokio::select! {
                _ = self.parts.stop.cancelled() => return self.finish(SessionEnd::Stopped).await,
                _ = self.parts.reconnect.notified() => return self.finish(SessionEnd::Reconnect).await,
                event = events.recv() => match event {
                    Some(SessionEvent::Ack(payload)) => self.on_ack(&payload).await?,
                    Some(SessionEvent::Error(error)) => return Err(error),
                    None => return Err("the mqtt event loop ended".into()),
                },
                changed = durable.changed(),
                    if self.caught_up && !self.writer_gone && self.in_flight.len() < config.window =>
                {
                    self.writer_gone = changed.is_err();
                    self.caught_up = false;
                }
                _ = tokio::time::sleep_until(ack_deadline.into()), if !self.in_flight.is_empty() => {
                    metrics::inc(&self.parts.metrics.ack_timeouts);
                    metrics::inc(&self.parts.metrics.resends);
                    tracing::warn!(
                        acked_seq = self.acked,
                        in_flight = self.in_flight.len(),
                        timeout_ms = config.ack_timeout_ms,
                        "no ack progress, resending everything above the last ack"
                    );
                    self.rewind();
                }
                _ = status_tick.tick() => self.publish_status(NodeState::Online).await?,
            }
        }
    }

    /// Publishes records until the window is full or the spool has no more.
    /// Returns `Some` if a stop came while waiting for the rate limit.
    async fn fill_window(&mut self) -> Result<Option<SessionEnd>, String> {
        let window = self.parts.config.window;
        while self.in_flight.len() < window && !self.caught_up {
            let batch = read_next(
                &self.parts.spool,
                &mut self.cursor,
                window - self.in_flight.len(),
                self.parts.config.read_bytes,
            )
            .await?;
            if batch.is_empty() {
                self.caught_up = true;
                break;
            }
            for out in batch {
                let wait = self.limiter.wait(Instant::now());
                if !wait.is_zero() {
                    tokio::select! {
                        _ = self.parts.stop.cancelled() => return Ok(Some(SessionEnd::Stopped)),
                        _ = tokio::time::sleep(wait) => {}
                    }
                }
                let payload = with_acked_seq(&out.record.payload, self.acked);
                let bytes = payload.len();
                self.limiter.record(bytes, Instant::now());
                if self.in_flight.is_empty() {
                    self.progress_at = Instant::now();
                }
                self.client
                    .publish(&self.telemetry_topic, QoS::AtLeastOnce, false, payload)
                    .await
                    .map_err(|e| format!("publishing seq {}: {e}", out.record.seq))?;
                self.in_flight.push_back(out.record.seq);
                let m = &self.parts.metrics;
                metrics::inc(&m.batches_published);
                metrics::add(&m.bytes_published, bytes as u64);
                if out.early_gap {
                    metrics::inc(&m.gap_records_sent_first);
                    tracing::info!(
                        seq = out.record.seq,
                        acked_seq = self.acked,
                        "sent the gap record ahead of the data after a loss"
                    );
                }
            }
            self.parts
                .state
                .in_flight
                .store(self.in_flight.len() as u64, Ordering::Relaxed);
        }
        Ok(None)
    }

    fn rewind(&mut self) {
        self.cursor.rewind(self.acked);
        self.in_flight.clear();
        self.caught_up = false;
        self.progress_at = Instant::now();
    }

    /// Handles a hub `Ack`: quarantines the rejected seqs, then moves the
    /// spool's watermark.
    async fn on_ack(&mut self, payload: &[u8]) -> Result<(), String> {
        let ack = match Ack::decode(payload) {
            Ok(ack) => ack,
            Err(error) => {
                tracing::warn!(%error, bytes = payload.len(), "ignoring an ack that does not decode");
                return Ok(());
            }
        };
        if ack.node_id != self.node_id {
            tracing::debug!(node_id = ack.node_id, "ignoring an ack for another node");
            return Ok(());
        }
        if ack.up_to_seq <= self.acked && ack.rejected.is_empty() {
            return Ok(());
        }
        let spool = self.parts.spool.clone();
        let metrics = self.parts.metrics.clone();
        let acked = self.acked;
        let result = tokio::task::spawn_blocking(move || {
            let mut spool = lock(&spool);
            for rejected in ack.rejected.iter().filter(|r| r.seq > acked) {
                let code = RejectCode::try_from(rejected.code)
                    .map_or_else(|_| format!("code {}", rejected.code), |c| c.as_str_name().to_owned());
                let reason = format!("{code}: {}", rejected.reason);
                match spool.quarantine(rejected.seq, &reason) {
                    Ok(_) => metrics::inc(&metrics.rejected),
                    Err(error) => tracing::warn!(%error, seq = rejected.seq, "cannot quarantine a rejected batch"),
                }
            }
            let target = ack.up_to_seq.min(spool.durable_seq());
            if target < ack.up_to_seq {
                tracing::warn!(
                    up_to_seq = ack.up_to_seq,
                    durable_seq = spool.durable_seq(),
                    "the hub acked beyond the durable seq, clamping"
                );
            }
            if target > spool.acked_seq() {
                spool.ack(target)?;
            }
            Ok::<u64, crate::spool::SpoolError>(spool.acked_seq())
        })
        .await
        .map_err(|e| format!("the ack task failed: {e}"))?;
        let new_acked = result.map_err(|e| format!("recording the ack: {e}"))?;
        if new_acked > self.acked {
            self.acked = new_acked;
            self.in_flight.retain(|seq| *seq > new_acked);
            self.cursor.on_ack(new_acked);
            self.progress_at = Instant::now();
            metrics::inc(&self.parts.metrics.acks);
            self.parts
                .state
                .last_ack_unix_ns
                .store(now_unix_ns(), Ordering::Relaxed);
            self.parts
                .state
                .in_flight
                .store(self.in_flight.len() as u64, Ordering::Relaxed);
            tracing::debug!(
                acked_seq = new_acked,
                in_flight = self.in_flight.len(),
                "hub ack"
            );
        }
        Ok(())
    }

    async fn publish_status(&self, state: NodeState) -> Result<(), String> {
        let stats = spool_stats(&self.parts.spool).await?;
        let payload = node_status(&self.source, state, &stats, now_unix_ns());
        self.client
            .publish(&self.status_topic, QoS::AtLeastOnce, true, payload)
            .await
            .map_err(|e| format!("publishing the status: {e}"))
    }

    /// Publishes OFFLINE when stopping, then disconnects.
    async fn finish(&self, end: SessionEnd) -> SessionResult {
        if end == SessionEnd::Stopped {
            match tokio::time::timeout(DISCONNECT_WAIT, self.publish_status(NodeState::Offline))
                .await
            {
                Ok(Ok(())) => {}
                Ok(Err(error)) => tracing::debug!(%error, "cannot publish the offline status"),
                Err(_) => tracing::debug!("timed out publishing the offline status"),
            }
        }
        let _ = tokio::time::timeout(DISCONNECT_WAIT, self.client.disconnect()).await;
        // Give the event loop a moment to write what is queued.
        tokio::time::sleep(Duration::from_millis(100)).await;
        Ok(end)
    }
}

async fn spool_stats(spool: &SharedSpool) -> Result<SpoolStats, String> {
    let spool = spool.clone();
    tokio::task::spawn_blocking(move || lock(&spool).stats())
        .await
        .map_err(|e| format!("the spool stats task failed: {e}"))
}

/// Reads the next records on the blocking pool.
async fn read_next(
    spool: &SharedSpool,
    cursor: &mut SendCursor,
    max_records: usize,
    max_bytes: usize,
) -> Result<Vec<super::Outgoing>, String> {
    let spool = spool.clone();
    let mut moved = cursor.clone();
    let (moved, result) = tokio::task::spawn_blocking(move || {
        let result = moved.next_records(&lock(&spool), max_records, max_bytes);
        (moved, result)
    })
    .await
    .map_err(|e| format!("the spool read task failed: {e}"))?;
    *cursor = moved;
    result.map_err(|e| format!("reading the spool: {e}"))
}

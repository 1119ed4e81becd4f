//! The uplink: sends the spool's records to the hub over mutual-TLS MQTT and
//! trims the spool when the hub acknowledges them.
//!
//! One task runs connection after connection ([`run`]); each connection is a
//! session (`session`): TLS with the node's certificate (reloaded from
//! `{state_dir}/identity/` every time, so a renewed certificate is used at
//! the next connect), client id = the site, clean session, a retained
//! OFFLINE `NodeStatus` as Last Will. The session is up only at CONNACK;
//! then it subscribes to `{prefix}/down/ack`, publishes a retained ONLINE
//! status (refreshed every `status_interval_ms`) and sends records from
//! the ack watermark up, keeping at most `window` batches unacknowledged.
//!
//! A broker PUBACK is not delivery: only the hub's `Ack{node_id,
//! up_to_seq, rejected}` is. On an Ack for this node the spool quarantines
//! each rejected seq, then takes the watermark (clamped to the durable
//! seq; lower acks are ignored). Without ack progress for `ack_timeout_ms`,
//! and at every new connection, everything above the last ack is sent
//! again; the hub deduplicates by seq. Between connections the task waits a
//! jittered exponential backoff. Spool calls run on the blocking pool.

mod backoff;
mod cursor;
mod payload;
mod session;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

pub use backoff::{Backoff, RateLimiter};
pub use cursor::{Outgoing, SendCursor};
pub use payload::{StatusSource, node_status, with_acked_seq};

use crate::config::UplinkConfig;
use crate::identity::Identity;
use crate::metrics::{self, NodeMetrics};
use crate::spool_writer::SharedSpool;

/// What the uplink shows of itself, for `status.json`.
#[derive(Debug, Default)]
pub struct UplinkState {
    connected: AtomicBool,
    in_flight: AtomicU64,
    last_ack_unix_ns: AtomicI64,
    last_connect_unix_ns: AtomicI64,
    last_error: Mutex<Option<String>>,
}

/// A copy of [`UplinkState`] at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct UplinkSnapshot {
    pub connected: bool,
    pub in_flight: u64,
    /// Unix ns of the last ack that moved the watermark (0 = none yet).
    pub last_ack_unix_ns: i64,
    /// Unix ns of the last CONNACK (0 = never).
    pub last_connect_unix_ns: i64,
    pub last_error: Option<String>,
}

impl UplinkState {
    /// The current values.
    pub fn snapshot(&self) -> UplinkSnapshot {
        UplinkSnapshot {
            connected: self.connected.load(Ordering::Relaxed),
            in_flight: self.in_flight.load(Ordering::Relaxed),
            last_ack_unix_ns: self.last_ack_unix_ns.load(Ordering::Relaxed),
            last_connect_unix_ns: self.last_connect_unix_ns.load(Ordering::Relaxed),
            last_error: self
                .last_error
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        }
    }

    fn set_error(&self, error: &str) {
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(error.to_owned());
    }

    fn set_connected(&self, connected: bool) {
        self.connected.store(connected, Ordering::Relaxed);
        if !connected {
            self.in_flight.store(0, Ordering::Relaxed);
        }
    }
}

/// Everything the uplink task needs.
#[derive(Clone)]
pub struct UplinkParts {
    pub config: UplinkConfig,
    /// The identity is reloaded from here before every connection.
    pub state_dir: PathBuf,
    pub spool: SharedSpool,
    /// The spool writer's durable seq; a change means records to send.
    pub durable: watch::Receiver<u64>,
    pub metrics: Arc<NodeMetrics>,
    pub state: Arc<UplinkState>,
    /// Notified when the certificate was renewed: reconnect with it.
    pub reconnect: Arc<Notify>,
    /// Cancelled to stop: the session publishes OFFLINE and disconnects.
    pub stop: CancellationToken,
}

/// How a session ended without an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SessionEnd {
    /// `stop` was cancelled.
    Stopped,
    /// A reconnect was requested (renewed certificate).
    Reconnect,
}

/// Runs sessions until `parts.stop` is cancelled. Connection errors are
/// logged with their reason and counted, never fatal.
pub async fn run(parts: UplinkParts) {
    let mut backoff = Backoff::new(
        Duration::from_millis(parts.config.backoff_min_ms),
        Duration::from_millis(parts.config.backoff_max_ms),
    );
    loop {
        if parts.stop.is_cancelled() {
            break;
        }
        let result = match Identity::load(&parts.state_dir) {
            Ok(identity) => {
                metrics::inc(&parts.metrics.connect_attempts);
                session::run(&parts, &identity, &mut backoff).await
            }
            Err(error) => Err(format!("cannot load the identity: {error}")),
        };
        parts.state.set_connected(false);
        match result {
            Ok(SessionEnd::Stopped) => break,
            Ok(SessionEnd::Reconnect) => {
                tracing::info!("reconnecting with the renewed certificate");
                continue;
            }
            Err(error) => {
                metrics::inc(&parts.metrics.connection_errors);
                parts.state.set_error(&error);
                let delay = backoff.next_delay();
                tracing::warn!(
                    %error,
                    retry_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                    "uplink connection failed"
                );
                tokio::select! {
                    _ = parts.stop.cancelled() => break,
                    _ = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
    tracing::info!("uplink stopped");
}

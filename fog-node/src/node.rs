//! `fog-node run`: the tasks of a running node and how they stop.
//!
//! ```text
//! simulated devices (thread) ─┐                                      ┌─► uplink task ──mTLS MQTT──► hub
//! tango adapter (tasks) ──────┼─ bounded channel ─► spool writer ─► spool ◄─┤   (acks trim the spool)
//! test/other sources ─────────┘   (backpressure)     (thread)        └─► status writer ─► status.json
//!                                                                        renewal task ─► identity/, reconnect
//! ```
//!
//! Shutdown, on the [`CancellationToken`]: the producers stop and drop their
//! senders; the writer seals and syncs what it got, then ends; the uplink
//! gets `uplink.shutdown_grace_ms` to have the backlog acknowledged, then
//! publishes OFFLINE and disconnects; a last `status.json` is written. A
//! sample that reached the writer's channel is durable before the process
//! exits.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::config::NodeConfig;
use crate::error::{Error, Result};
use crate::identity::Identity;
use crate::metrics::NodeMetrics;
use crate::spool::{Spool, SpoolStats};
use crate::spool_writer::{self, SampleSender, SharedSpool, WriterParts, lock};
use crate::status::{self, SpoolView, StatusReport};
use crate::tango::{self, TangoCounters, TangoListener};
use crate::uplink::{self, UplinkParts, UplinkState};

/// Runs the node until `shutdown` is cancelled, then drains in order.
pub async fn run(config: NodeConfig, shutdown: CancellationToken) -> Result<()> {
    Node::start(config, shutdown).await?.wait().await
}

/// A running node: handles for its tasks and views of its state.
pub struct Node {
    config: NodeConfig,
    identity: Identity,
    shutdown: CancellationToken,
    sources_stop: CancellationToken,
    uplink_stop: CancellationToken,
    aux_stop: CancellationToken,
    spool: SharedSpool,
    metrics: Arc<NodeMetrics>,
    uplink_state: Arc<UplinkState>,
    tango_counters: Option<Arc<TangoCounters>>,
    reconnect: Arc<Notify>,
    samples: Option<SampleSender>,
    sim: Option<std::thread::JoinHandle<()>>,
    tango: Option<TangoListener>,
    writer: Option<std::thread::JoinHandle<Result<()>>>,
    uplink: JoinHandle<()>,
    renewal: JoinHandle<()>,
    status: JoinHandle<()>,
}

impl Node {
    /// Loads the identity, opens the spool and starts every task.
    pub async fn start(config: NodeConfig, shutdown: CancellationToken) -> Result<Node> {
        config.validate()?;
        let identity = Identity::load(&config.state_dir)?;
        let enrollment = identity.enrollment.clone();
        let spool_config = config.spool_config(&enrollment.site, &enrollment.node_id);
        let (spool, report) = tokio::task::spawn_blocking(move || Spool::open(spool_config))
            .await
            .map_err(|e| Error::Task {
                task: "spool",
                reason: e.to_string(),
            })??;
        tracing::info!(
            site = enrollment.site,
            node_id = enrollment.node_id,
            next_seq = report.next_seq,
            acked_seq = report.acked_seq,
            "node starting"
        );
        let durable_seq = spool.durable_seq();
        let spool: SharedSpool = Arc::new(Mutex::new(spool));
        let metrics = Arc::new(NodeMetrics::default());
        let uplink_state = Arc::new(UplinkState::default());
        let sources_stop = shutdown.child_token();
        let uplink_stop = CancellationToken::new();
        let aux_stop = CancellationToken::new();

        let (samples, samples_rx) = tokio::sync::mpsc::channel(config.batching.channel_capacity);
        let (durable_tx, durable_rx) = watch::channel(durable_seq);
        let writer = spool_writer::spawn(WriterParts {
            spool: spool.clone(),
            samples: samples_rx,
            batching: config.batching.clone(),
            fsync_interval: Duration::from_millis(config.spool.fsync_interval_ms),
            durable: durable_tx,
            metrics: metrics.clone(),
            shutdown: shutdown.clone(),
        })?;

        let sim = if config.simulation.enabled {
            let segments = config
                .simulation
                .segments
                .unwrap_or(enrollment.mirror_segments)
                .clamp(1, 99);
            Some(crate::simulated::spawn(
                &config.simulation,
                segments,
                samples.clone(),
                sources_stop.clone(),
            )?)
        } else {
            None
        };
        let (tango, tango_counters) = if config.tango.enabled {
            let counters = Arc::new(TangoCounters::default());
            let listener = tango::start(
                &config.tango,
                samples.clone(),
                counters.clone(),
                sources_stop.clone(),
            )
            .await?;
            (Some(listener), Some(counters))
        } else {
            (None, None)
        };

        let reconnect = Arc::new(Notify::new());
        let span = tracing::info_span!("node", site = %enrollment.site);
        let uplink = tokio::spawn(
            uplink::run(UplinkParts {
                config: config.uplink.clone(),
                state_dir: config.state_dir.clone(),
                spool: spool.clone(),
                durable: durable_rx,
                metrics: metrics.clone(),
                state: uplink_state.clone(),
                reconnect: reconnect.clone(),
                stop: uplink_stop.clone(),
            })
            .instrument(tracing::info_span!(parent: &span, "uplink")),
        );
        let renewal = tokio::spawn(
            crate::enroll::renewal_task(
                config.state_dir.clone(),
                metrics.clone(),
                reconnect.clone(),
                aux_stop.clone(),
            )
            .instrument(tracing::info_span!(parent: &span, "renewal")),
        );
        let mut node = Node {
            config,
            identity,
            shutdown,
            sources_stop,
            uplink_stop,
            aux_stop,
            spool,
            metrics,
            uplink_state,
            tango_counters,
            reconnect,
            samples: Some(samples),
            sim,
            tango,
            writer: Some(writer),
            uplink,
            renewal,
            status: tokio::spawn(async {}),
        };
        node.status = tokio::spawn(status_loop(node.status_source(), node.aux_stop.clone()));
        Ok(node)
    }

    /// The node's counters.
    pub fn metrics(&self) -> &NodeMetrics {
        &self.metrics
    }

    /// The uplink's state.
    pub fn uplink_state(&self) -> &UplinkState {
        &self.uplink_state
    }

    /// The Tango adapter's counters, when it runs.
    pub fn tango_counters(&self) -> Option<&TangoCounters> {
        self.tango_counters.as_deref()
    }

    /// The Tango adapter's address, when it runs.
    pub fn tango_addr(&self) -> Option<SocketAddr> {
        self.tango.as_ref().map(TangoListener::local_addr)
    }

    /// A sender into the spool writer, for another sample source; drop it
    /// when done, the writer ends only once every sender is gone.
    pub fn sample_sender(&self) -> Option<SampleSender> {
        self.samples.clone()
    }

    /// The spool's numbers now.
    pub async fn spool_stats(&self) -> SpoolStats {
        let spool = self.spool.clone();
        tokio::task::spawn_blocking(move || lock(&spool).stats())
            .await
            .unwrap_or_default()
    }

    /// Makes the uplink end its session and connect again with the identity
    /// on disk (what a certificate renewal does).
    pub fn reconnect_uplink(&self) {
        self.reconnect.notify_one();
    }

    /// Stops the simulated devices and the Tango adapter, leaving the
    /// writer and uplink running (the backlog keeps draining).
    pub fn stop_sources(&self) {
        self.sources_stop.cancel();
    }

    fn status_source(&self) -> StatusSource {
        StatusSource {
            path: self.config.status_path(),
            interval: Duration::from_millis(self.config.status.interval_ms),
            site: self.identity.enrollment.site.clone(),
            node_id: self.identity.enrollment.node_id.clone(),
            state_dir: self.config.state_dir.clone(),
            spool: self.spool.clone(),
            metrics: self.metrics.clone(),
            uplink: self.uplink_state.clone(),
            tango: self.tango_counters.clone(),
        }
    }

    /// Waits for the shutdown token (or a failed writer), then stops every
    /// task in order. See the [module docs](self).
    pub async fn wait(mut self) -> Result<()> {
        let writer_done = loop {
            tokio::select! {
                _ = self.shutdown.cancelled() => break false,
                _ = tokio::time::sleep(Duration::from_millis(200)) => {
                    if self.writer.as_ref().is_none_or(|w| w.is_finished()) {
                        break true;
                    }
                }
            }
        };
        if writer_done {
            tracing::error!("the spool writer stopped, shutting the node down");
        }
        tracing::info!("node stopping: producers first");
        self.sources_stop.cancel();
        if let Some(sim) = self.sim.take() {
            let _ = tokio::task::spawn_blocking(move || sim.join()).await;
        }
        if let Some(tango) = self.tango.take() {
            tango.join().await;
        }
        self.samples = None;
        let written = match self.writer.take() {
            Some(writer) => tokio::task::spawn_blocking(move || writer.join())
                .await
                .map_err(|e| Error::Task {
                    task: "spool writer",
                    reason: e.to_string(),
                })?
                .map_err(|_| Error::Task {
                    task: "spool writer",
                    reason: "panicked".into(),
                })?,
            None => Ok(()),
        };
        let grace = Duration::from_millis(self.config.uplink.shutdown_grace_ms);
        let deadline = Instant::now() + grace;
        while self.uplink_state.snapshot().connected && Instant::now() < deadline {
            let spool = self.spool.clone();
            let backlog = tokio::task::spawn_blocking(move || lock(&spool).stats().backlog_batches)
                .await
                .unwrap_or(0);
            if backlog == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.uplink_stop.cancel();
        if tokio::time::timeout(Duration::from_secs(5), &mut self.uplink)
            .await
            .is_err()
        {
            tracing::warn!("the uplink did not stop in time");
            self.uplink.abort();
        }
        self.aux_stop.cancel();
        let _ = (&mut self.renewal).await;
        let _ = (&mut self.status).await;
        let source = StatusSource {
            path: self.config.status_path(),
            interval: Duration::ZERO,
            site: self.identity.enrollment.site.clone(),
            node_id: self.identity.enrollment.node_id.clone(),
            state_dir: self.config.state_dir.clone(),
            spool: self.spool.clone(),
            metrics: self.metrics.clone(),
            uplink: self.uplink_state.clone(),
            tango: self.tango_counters.clone(),
        };
        if let Err(error) = write_status(&source, false).await {
            tracing::warn!(%error, "cannot write the final status");
        }
        let stats = self.spool_stats().await;
        tracing::info!(
            durable_seq = stats.durable_seq,
            acked_seq = stats.acked_seq,
            backlog_batches = stats.backlog_batches,
            "node stopped"
        );
        written
    }
}

/// What the status writer reads.
struct StatusSource {
    path: std::path::PathBuf,
    interval: Duration,
    site: String,
    node_id: String,
    state_dir: std::path::PathBuf,
    spool: SharedSpool,
    metrics: Arc<NodeMetrics>,
    uplink: Arc<UplinkState>,
    tango: Option<Arc<TangoCounters>>,
}

async fn status_loop(source: StatusSource, stop: CancellationToken) {
    let mut tick = tokio::time::interval(source.interval);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        if let Err(error) = write_status(&source, true).await {
            tracing::warn!(%error, "cannot write status.json");
        }
    }
}

async fn write_status(source: &StatusSource, running: bool) -> Result<()> {
    let spool = source.spool.clone();
    let stats = tokio::task::spawn_blocking(move || lock(&spool).stats())
        .await
        .map_err(|e| Error::Task {
            task: "status",
            reason: e.to_string(),
        })?;
    let not_after = Identity::load(&source.state_dir)
        .map(|id| id.enrollment.certificate_not_after)
        .unwrap_or_default();
    let mut report = StatusReport {
        site: source.site.clone(),
        node_id: source.node_id.clone(),
        spool: SpoolView::from(&stats),
        uplink: source.uplink.snapshot(),
        certificate_not_after: not_after,
        tango: source.tango.as_ref().map(|t| t.snapshot()),
        counters: source.metrics.snapshot(),
        ..StatusReport::default()
    };
    report.stamp(running);
    let path = source.path.clone();
    tokio::task::spawn_blocking(move || status::write(&path, &report))
        .await
        .map_err(|e| Error::Task {
            task: "status",
            reason: e.to_string(),
        })?
}

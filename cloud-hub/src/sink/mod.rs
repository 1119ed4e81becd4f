//! The distributed mode's sink: consumer group `sink` on every
//! `obs.telemetry.*` topic under the configured namespace (new sites are
//! picked up by the subscription's pattern without a restart), one worker
//! per site applying its batches in order — the single writer
//! [`crate::ingest`] relies on — and a consumer offset stored only once the
//! batch's rows and a state counting it are written ([`site`]). While the
//! store is down a worker retries the same batch; its queue fills, the
//! consumer stops reading, and memory stays bounded.

pub mod site;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use obs_common::site::validate_site_id;
use obs_proto::v1::TelemetryBatch;
use prost::Message as _;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message, OwnedMessage};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::ingest::maintenance::SiteMaintenance;
use crate::store::{StoreError, StoreResult, TelemetryStore};
use crate::stream::kafka::{KafkaConfig, REJECTED_HEADER, client_config};
use site::{Applied, SiteSink};

/// Batches queued per site worker.
const WORKER_QUEUE: usize = 64;

/// Runs the sink until `shutdown`; `maintenance` records the maintenance
/// events sites report in their batches.
pub async fn run(
    config: KafkaConfig,
    store: Arc<dyn TelemetryStore>,
    maintenance: SiteMaintenance,
    shutdown: CancellationToken,
) -> StoreResult<()> {
    let mut client = client_config(&config);
    if !config.sink_instance_id.is_empty() {
        client.set("group.instance.id", &config.sink_instance_id);
    }
    let consumer: StreamConsumer = client
        .set(
            "session.timeout.ms",
            config.sink_session_timeout_ms.to_string(),
        )
        .set(
            "heartbeat.interval.ms",
            (config.sink_session_timeout_ms / 3).to_string(),
        )
        .set("group.id", &config.sink_group)
        .set("enable.auto.commit", "true")
        .set("auto.commit.interval.ms", "1000")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("topic.metadata.refresh.interval.ms", "2000")
        .set("max.poll.interval.ms", "600000")
        .create()
        .map_err(|e| StoreError::new("kafka", "creating the sink consumer", e))?;
    let pattern = config.telemetry_pattern();
    consumer
        .subscribe(&[&pattern])
        .map_err(|e| StoreError::new("kafka", "subscribing the sink", e))?;
    let consumer = Arc::new(consumer);
    tracing::info!(group = config.sink_group, pattern, "sink consuming");

    let mut workers: HashMap<String, mpsc::Sender<OwnedMessage>> = HashMap::new();
    let mut tasks = JoinSet::new();
    loop {
        let received = tokio::select! {
            _ = shutdown.cancelled() => break,
            received = consumer.recv() => received,
        };
        let message = match received {
            Ok(message) => message.detach(),
            Err(error) => {
                tracing::warn!(%error, "sink consumer error");
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        let topic = message.topic().to_owned();
        let sender = workers.entry(topic.clone()).or_insert_with(|| {
            let (tx, rx) = mpsc::channel(WORKER_QUEUE);
            let site = config.site_of_topic(&topic).unwrap_or_default().to_owned();
            tasks.spawn(worker(
                topic.clone(),
                site,
                rx,
                store.clone(),
                maintenance.clone(),
                consumer.clone(),
                shutdown.clone(),
            ));
            tx
        });
        tokio::select! {
            _ = shutdown.cancelled() => break,
            sent = sender.send(message) => if sent.is_err() {
                tracing::error!(topic, "sink worker stopped");
            },
        }
    }
    drop(workers);
    while tasks.join_next().await.is_some() {}
    if let Err(error) = consumer.commit_consumer_state(CommitMode::Sync) {
        tracing::warn!(%error, "final offset commit failed");
    }
    tracing::info!("sink stopped");
    Ok(())
}

async fn worker(
    topic: String,
    site: String,
    mut messages: mpsc::Receiver<OwnedMessage>,
    store: Arc<dyn TelemetryStore>,
    maintenance: SiteMaintenance,
    consumer: Arc<StreamConsumer>,
    shutdown: CancellationToken,
) {
    let valid = match validate_site_id(&site) {
        Ok(()) => true,
        Err(error) => {
            tracing::error!(%error, topic, "topic does not name a site; its records are skipped");
            false
        }
    };
    let Some(mut sink) = SiteSink::load(&site, store, maintenance, shutdown).await else {
        return;
    };
    // Per partition, the last record the stored state does not cover yet.
    let mut unsaved: HashMap<i32, i64> = HashMap::new();
    while let Some(message) = messages.recv().await {
        crate::metrics::sink_queued(&site, messages.len());
        let more = !messages.is_empty();
        let batch = valid.then(|| decode(&site, &message)).flatten();
        let applied = match batch {
            Some((batch, rejected)) => sink.apply(batch, rejected, more).await,
            None => sink.settle(more).await,
        };
        unsaved.insert(message.partition(), message.offset());
        match applied {
            None => return,
            Some(Applied::Pending) => {}
            Some(Applied::Saved) => store_offsets(&consumer, &topic, &mut unsaved),
        }
    }
    // Closed at shutdown: one try to save what is applied.
    if sink.settle(false).await == Some(Applied::Saved) {
        store_offsets(&consumer, &topic, &mut unsaved);
    }
}

fn store_offsets(consumer: &StreamConsumer, topic: &str, offsets: &mut HashMap<i32, i64>) {
    for (partition, offset) in offsets.drain() {
        if let Err(error) = consumer.store_offset(topic, partition, offset) {
            tracing::warn!(%error, topic, offset, "cannot store the offset");
        }
    }
}

/// The batch a record holds and whether it is the bridge's marker of a
/// refused batch; `None` (logged) when it cannot be decoded.
fn decode(site: &str, message: &OwnedMessage) -> Option<(TelemetryBatch, bool)> {
    match TelemetryBatch::decode(message.payload().unwrap_or_default()) {
        Ok(batch) => {
            let rejected = message
                .headers()
                .is_some_and(|h| h.iter().any(|h| h.key == REJECTED_HEADER));
            Some((batch, rejected))
        }
        Err(error) => {
            tracing::error!(%error, site, offset = message.offset(), "undecodable record skipped");
            None
        }
    }
}

//! The distributed mode's sink: consumer group `sink` on every
//! `obs.telemetry.*` topic (under the configured namespace) (new sites are picked up by the subscription's
//! pattern without a restart), one worker per site applying its batches in
//! order — the single writer [`crate::ingest`] relies on — and a consumer
//! offset stored only after the batch's rows are written. While the store is
//! down a worker retries the same batch; its queue fills, the consumer stops
//! reading, and memory stays bounded.

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
use crate::ingest::{Decision, SiteState};
use crate::store::{StoreError, StoreResult, TelemetryStore};
use crate::stream::kafka::{KafkaConfig, REJECTED_HEADER, client_config};

/// Batches queued per site worker.
const WORKER_QUEUE: usize = 64;
/// Longest pause between retries of a failed write.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

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

/// Retries `op` with a growing pause until it succeeds or `shutdown`.
async fn retry<T, F, Fut>(what: &str, shutdown: &CancellationToken, mut op: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = StoreResult<T>>,
{
    let mut pause = Duration::from_millis(100);
    loop {
        match op().await {
            Ok(value) => return Some(value),
            Err(error) => {
                tracing::warn!(%error, what, retry_in_ms = pause.as_millis() as u64, "sink write failed");
                tokio::select! {
                    _ = shutdown.cancelled() => return None,
                    _ = tokio::time::sleep(pause) => {}
                }
                pause = (pause * 2).min(MAX_BACKOFF);
            }
        }
    }
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
    if let Err(error) = validate_site_id(&site) {
        tracing::error!(%error, topic, "topic does not name a site; its records are skipped");
    }
    let Some(loaded) = retry("loading ingest state", &shutdown, || {
        store.load_site_state(&site)
    })
    .await
    else {
        return;
    };
    let mut state = loaded.unwrap_or_default();
    while let Some(message) = messages.recv().await {
        crate::metrics::sink_queued(&site, messages.len());
        if !apply(
            &site,
            &message,
            &mut state,
            store.as_ref(),
            &maintenance,
            &shutdown,
        )
        .await
        {
            return;
        }
        if let Err(error) = consumer.store_offset(&topic, message.partition(), message.offset()) {
            tracing::warn!(%error, topic, offset = message.offset(), "cannot store the offset");
        }
    }
}

/// Applies one record to `state` and the store; false when shut down
/// before it could be written.
async fn apply(
    site: &str,
    message: &OwnedMessage,
    state: &mut SiteState,
    store: &dyn TelemetryStore,
    maintenance: &SiteMaintenance,
    shutdown: &CancellationToken,
) -> bool {
    if validate_site_id(site).is_err() {
        return true;
    }
    let batch = match TelemetryBatch::decode(message.payload().unwrap_or_default()) {
        Ok(batch) => batch,
        Err(error) => {
            tracing::error!(%error, site, offset = message.offset(), "undecodable record skipped");
            return true;
        }
    };
    let rejected = message
        .headers()
        .is_some_and(|h| h.iter().any(|h| h.key == REJECTED_HEADER));
    let decision = state.decide(&batch);
    if decision != Decision::Accept && !(rejected && decision != Decision::Duplicate) {
        return true;
    }
    let mut next = state.clone();
    let written = if rejected {
        next.reject(&batch);
        retry("writing ingest state", shutdown, || {
            store.write_site_state(site, &next)
        })
        .await
    } else {
        // Before the batch's rows and state: a crash in between replays the
        // batch (see `ingest::maintenance`).
        let recorded = retry("recording site maintenance", shutdown, || {
            maintenance.apply(site, &batch)
        })
        .await;
        if recorded.is_none() {
            return false;
        }
        let writes = next.accept(&batch);
        retry("writing a batch", shutdown, || async {
            let started = std::time::Instant::now();
            let written = store.write_batch(&batch, &writes, &next).await;
            crate::metrics::store_write("sink", started.elapsed().as_secs_f64(), written.is_ok());
            written
        })
        .await
    };
    if written.is_some() && !rejected {
        crate::metrics::sink_written(site, batch.samples.len());
        crate::metrics::ingest_latency(batch.created_unix_ns);
    }
    if written.is_none() {
        return false;
    }
    *state = next;
    true
}

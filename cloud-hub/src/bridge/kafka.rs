//! The distributed mode's bridge: each accepted batch is produced to its
//! site's Kafka topic, and acknowledged to the fog-node only once Kafka
//! confirmed it with `acks=all`. Acks are cumulative over the contiguous
//! durable sequence numbers of each node, so a batch that failed to produce
//! holds the ack back until the node resends it.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use obs_proto::v1::{RejectCode, RejectedBatch, TelemetryBatch};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{Decode, Parsed, admit, parse, publish_ack};
use crate::enroll::SiteRegistry;
use crate::ingest::{BatchLimits, Decision, SeqTracker};
use crate::ingress::{Inbound, Outbound};
use crate::live::LiveSites;
use crate::store::TelemetryStore;
use crate::stream::kafka::KafkaLog;

/// How long shutdown waits for outstanding deliveries to be acknowledged.
const DRAIN: Duration = Duration::from_secs(5);

/// One node's batches: settled (durable in Kafka, rejected or reported lost)
/// and produced but not yet confirmed.
#[derive(Debug, Default)]
struct NodeProgress {
    durable: SeqTracker,
    in_flight: BTreeSet<u64>,
    /// Every seq up to this one is durable or in flight (it may lag behind
    /// the true end of that prefix, never run ahead of it).
    produced: u64,
}

impl NodeProgress {
    fn starting_at(acked_seq: u64) -> Self {
        NodeProgress {
            durable: SeqTracker::starting_at(acked_seq),
            in_flight: BTreeSet::new(),
            produced: acked_seq,
        }
    }

    /// The first seq after the prefix that is durable or in flight.
    fn next(&self) -> u64 {
        let mut next = self.produced.max(self.durable.upto()) + 1;
        while self.in_flight.contains(&next) || self.durable.contains(next) {
            next += 1;
        }
        next
    }

    /// `seq` was handed to Kafka.
    fn produced(&mut self, seq: u64) {
        self.in_flight.insert(seq);
        self.produced = self.next() - 1;
    }

    /// Kafka did not take `seq`: the prefix ends before it.
    fn failed(&mut self, seq: u64) {
        self.in_flight.remove(&seq);
        self.produced = self.produced.min(seq.saturating_sub(1));
    }

    /// `samples`: how many the batch holds (its `samples` may be left
    /// undecoded).
    fn decide(&self, batch: &TelemetryBatch, samples: usize) -> Decision {
        if self.durable.contains(batch.seq) || self.in_flight.contains(&batch.seq) {
            return Decision::Duplicate;
        }
        let next = self.next();
        let connecting_gap = samples == 0
            && batch
                .gaps
                .iter()
                .any(|g| g.first_seq <= next && next <= g.last_seq.saturating_add(1));
        if batch.seq == next || connecting_gap {
            Decision::Accept
        } else {
            Decision::Ahead { expected: next }
        }
    }
}

/// A delivery report coming back to the bridge task.
struct Delivered {
    site: String,
    /// The batch without its samples (seq, node, gaps).
    batch: TelemetryBatch,
    rejected: Option<RejectedBatch>,
    /// Samples the batch held.
    samples: usize,
    ok: bool,
}

/// The distributed mode's bridge task.
pub struct KafkaBridge {
    log: Arc<KafkaLog>,
    store: Arc<dyn TelemetryStore>,
    outbound: Box<dyn Outbound>,
    limits: BatchLimits,
    live: LiveSites,
    sites: SiteRegistry,
    nodes: HashMap<(String, String), NodeProgress>,
    /// Batches handed to Kafka, each resolving on its delivery report.
    deliveries: FuturesUnordered<Pending>,
}

type Pending = Pin<Box<dyn Future<Output = Delivered> + Send + Sync>>;

impl KafkaBridge {
    pub fn new(
        log: Arc<KafkaLog>,
        store: Arc<dyn TelemetryStore>,
        outbound: Box<dyn Outbound>,
        limits: BatchLimits,
        live: LiveSites,
        sites: SiteRegistry,
    ) -> Self {
        KafkaBridge {
            log,
            store,
            outbound,
            limits,
            live,
            sites,
            nodes: HashMap::new(),
            deliveries: FuturesUnordered::new(),
        }
    }

    /// Runs until the inbound channel closes or `shutdown`; then acks what
    /// Kafka confirms within a short drain period.
    pub async fn run(mut self, mut inbound: mpsc::Receiver<Inbound>, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                message = inbound.recv() => match message {
                    Some(message) => self.handle(message).await,
                    None => break,
                },
                Some(delivered) = self.deliveries.next() => self.delivered(delivered),
            }
        }
        let deadline = tokio::time::Instant::now() + DRAIN;
        while !self.deliveries.is_empty() {
            match tokio::time::timeout_at(deadline, self.deliveries.next()).await {
                Ok(Some(delivered)) => self.delivered(delivered),
                _ => break,
            }
        }
        tracing::info!("kafka bridge stopped");
    }

    async fn handle(&mut self, message: Inbound) {
        let _gate = self.sites.ingest_gate().await;
        let parsed = parse(&message, &self.limits, Decode::Header);
        match admit(&self.sites, &message, parsed).await {
            Parsed::Batch {
                site,
                batch,
                samples,
            } => self.produce(site, &message, batch, samples, None).await,
            Parsed::Rejected {
                site,
                batch,
                rejection,
                ..
            } => {
                tracing::warn!(site, seq = batch.seq, reason = %rejection, "batch rejected");
                let letter = crate::store::DeadLetter {
                    site: Some(site.clone()),
                    topic: message.topic.clone(),
                    at_unix_ns: crate::time::now_unix_ns(),
                    reason: rejection.reason.clone(),
                    payload: message.payload.to_vec(),
                };
                self.dead_letter(&letter).await;
                let rejected = RejectedBatch {
                    seq: batch.seq,
                    code: rejection.code as i32,
                    reason: rejection.reason,
                };
                if rejection.code == RejectCode::SiteNotActive {
                    // No marker: nothing of a site that is not active
                    // reaches its topic (a never-enrolled site has none).
                    let upto = batch.acked_seq;
                    let out = self.outbound.as_ref();
                    publish_ack(out, &site, &batch.node_id, upto, vec![rejected]);
                    return;
                }
                // A marker in the site's topic lets the sink settle the seq.
                let marker = TelemetryBatch {
                    site: site.clone(),
                    node_id: batch.node_id.clone(),
                    seq: batch.seq,
                    acked_seq: batch.acked_seq,
                    ..Default::default()
                };
                self.produce(site, &message, marker, 0, Some(rejected))
                    .await;
            }
            Parsed::Status { site, status } => self.live.set_status(&site, status),
            Parsed::Unusable(letter) => {
                tracing::warn!(topic = letter.topic, reason = letter.reason, "dead letter");
                self.dead_letter(&letter).await;
            }
        }
    }

    async fn dead_letter(&self, letter: &crate::store::DeadLetter) {
        if let Some(site) = &letter.site {
            self.live.dead_lettered(site);
        }
        if let Err(error) = self.log.dead_letter(letter).await {
            tracing::error!(%error, topic = letter.topic, "failed to produce a dead letter");
        }
        if let Err(error) = self.store.record_dead_letter(letter).await {
            tracing::error!(%error, topic = letter.topic, "failed to keep a dead letter");
        }
    }

    async fn produce(
        &mut self,
        site: String,
        message: &Inbound,
        batch: TelemetryBatch,
        samples: usize,
        rejected: Option<RejectedBatch>,
    ) {
        let key = (site.clone(), batch.node_id.clone());
        let progress = self
            .nodes
            .entry(key)
            .or_insert_with(|| NodeProgress::starting_at(batch.acked_seq));
        match progress.decide(&batch, samples) {
            Decision::Accept => {}
            Decision::Duplicate => {
                crate::metrics::batch_duplicate(&site);
                if !progress.in_flight.contains(&batch.seq) {
                    let upto = progress.durable.upto();
                    publish_ack(
                        self.outbound.as_ref(),
                        &site,
                        &batch.node_id,
                        upto,
                        Vec::new(),
                    );
                }
                return;
            }
            Decision::Ahead { expected } => {
                crate::metrics::batch_ahead(&site);
                tracing::debug!(
                    site,
                    seq = batch.seq,
                    expected,
                    "batch ahead of the produced prefix"
                );
                let upto = progress.durable.upto();
                publish_ack(
                    self.outbound.as_ref(),
                    &site,
                    &batch.node_id,
                    upto,
                    Vec::new(),
                );
                return;
            }
        }
        if let Err(error) = self.log.ensure_site(&site).await {
            tracing::error!(%error, site, "cannot create the site topic");
            return;
        }
        // A rejection marker carries only the batch's identity.
        let marker;
        let payload: &[u8] = if rejected.is_some() {
            marker = prost::Message::encode_to_vec(&batch);
            &marker
        } else {
            message.payload.as_ref()
        };
        let reason = rejected.as_ref().map(|r| r.reason.clone());
        let delivery = match self
            .log
            .produce(&site, &batch.node_id, batch.seq, payload, reason.as_deref())
            .await
        {
            Ok(delivery) => delivery,
            Err(error) => {
                tracing::error!(%error, site, seq = batch.seq, "cannot produce batch");
                return;
            }
        };
        tracing::debug!(
            site,
            node = batch.node_id,
            seq = batch.seq,
            "batch produced"
        );
        progress.produced(batch.seq);
        // Without samples (Decode::Header left them encoded).
        let summary = batch;
        self.deliveries.push(Box::pin(async move {
            let ok = match delivery.await {
                Ok(Ok(_)) => true,
                Ok(Err((error, _))) => {
                    tracing::warn!(%error, site, seq = summary.seq, "kafka did not take the batch");
                    false
                }
                Err(_) => false,
            };
            Delivered {
                site,
                batch: summary,
                rejected,
                samples,
                ok,
            }
        }));
    }

    fn delivered(&mut self, delivered: Delivered) {
        let key = (delivered.site.clone(), delivered.batch.node_id.clone());
        let Some(progress) = self.nodes.get_mut(&key) else {
            return;
        };
        if !delivered.ok {
            progress.failed(delivered.batch.seq);
            return;
        }
        progress.in_flight.remove(&delivered.batch.seq);
        progress.durable.settle(&delivered.batch);
        if delivered.rejected.is_none() {
            crate::metrics::batch_durable(&delivered.site, delivered.samples);
        }
        tracing::debug!(
            site = delivered.site,
            seq = delivered.batch.seq,
            upto = progress.durable.upto(),
            "batch durable"
        );
        let upto = progress.durable.upto();
        let rejected = delivered.rejected.into_iter().collect();
        publish_ack(
            self.outbound.as_ref(),
            &delivered.site,
            &delivered.batch.node_id,
            upto,
            rejected,
        );
        self.live.acked(&delivered.site, crate::time::now_unix_ns());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(seq: u64) -> TelemetryBatch {
        TelemetryBatch {
            seq,
            ..Default::default()
        }
    }

    #[test]
    fn in_flight_batches_extend_the_prefix_and_are_not_produced_twice() {
        let mut progress = NodeProgress::default();
        progress.produced(1);
        progress.produced(2);
        assert_eq!(progress.decide(&data(2), 1), Decision::Duplicate);
        assert_eq!(progress.decide(&data(3), 1), Decision::Accept);
        assert_eq!(
            progress.decide(&data(4), 1),
            Decision::Ahead { expected: 3 }
        );
        // Batch 1 failed: the prefix stops before it and the resend is taken.
        progress.failed(1);
        assert_eq!(progress.decide(&data(1), 1), Decision::Accept);
        assert_eq!(
            progress.decide(&data(3), 1),
            Decision::Ahead { expected: 1 }
        );
    }

    #[test]
    fn the_prefix_follows_deliveries_out_of_order_and_failures() {
        let mut progress = NodeProgress::starting_at(10);
        assert_eq!(progress.decide(&data(10), 1), Decision::Duplicate);
        for seq in 11..=14 {
            assert_eq!(progress.decide(&data(seq), 1), Decision::Accept);
            progress.produced(seq);
        }
        assert_eq!(progress.next(), 15);
        // 13 is confirmed before 11 and 12; 12 fails.
        progress.in_flight.remove(&13);
        progress.durable.settle(&data(13));
        assert_eq!(progress.next(), 15);
        progress.failed(12);
        assert_eq!(progress.next(), 12);
        assert_eq!(
            progress.decide(&data(15), 1),
            Decision::Ahead { expected: 12 }
        );
        // The resend of 12 joins the prefix up to the confirmed 13 and the
        // in-flight 14.
        progress.produced(12);
        assert_eq!(progress.next(), 15);
        assert_eq!(progress.decide(&data(15), 1), Decision::Accept);
    }
}

//! The embedded mode's ingest: each accepted batch is written to the store in
//! one transaction (samples, rollups, exposure, progress), then acknowledged.
//! One task applies every site's batches in arrival order, which is the
//! single-writer-per-site rule [`crate::ingest`] relies on.

use std::collections::HashMap;
use std::sync::Arc;

use obs_proto::v1::{RejectCode, RejectedBatch, TelemetryBatch};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{Decode, Parsed, admit, parse, publish_ack};
use crate::enroll::SiteRegistry;
use crate::ingest::maintenance::SiteMaintenance;
use crate::ingest::{BatchLimits, Decision, Rejection, SiteState};
use crate::ingress::{Inbound, Outbound};
use crate::live::LiveSites;
use crate::store::{StoreResult, TelemetryStore};

/// The embedded mode's single writer.
pub struct DirectIngest {
    store: Arc<dyn TelemetryStore>,
    outbound: Box<dyn Outbound>,
    limits: BatchLimits,
    live: LiveSites,
    sites: SiteRegistry,
    states: HashMap<String, SiteState>,
    maintenance: Option<SiteMaintenance>,
}

impl DirectIngest {
    pub fn new(
        store: Arc<dyn TelemetryStore>,
        outbound: Box<dyn Outbound>,
        limits: BatchLimits,
        live: LiveSites,
        sites: SiteRegistry,
    ) -> Self {
        DirectIngest {
            store,
            outbound,
            limits,
            live,
            sites,
            states: HashMap::new(),
            maintenance: None,
        }
    }

    /// Also records the maintenance events sites report in their batches.
    pub fn with_site_maintenance(mut self, maintenance: SiteMaintenance) -> Self {
        self.maintenance = Some(maintenance);
        self
    }

    /// Handles inbound messages until the channel closes or `shutdown`.
    pub async fn run(mut self, mut inbound: mpsc::Receiver<Inbound>, shutdown: CancellationToken) {
        loop {
            let message = tokio::select! {
                _ = shutdown.cancelled() => break,
                message = inbound.recv() => match message {
                    Some(message) => message,
                    None => break,
                },
            };
            self.handle(message).await;
        }
        tracing::info!("ingest stopped");
    }

    async fn state(&mut self, site: &str) -> StoreResult<&mut SiteState> {
        if !self.states.contains_key(site) {
            let loaded = self.store.load_site_state(site).await?.unwrap_or_default();
            self.states.insert(site.to_owned(), loaded);
        }
        Ok(self.states.entry(site.to_owned()).or_default())
    }

    async fn handle(&mut self, message: Inbound) {
        let _gate = self.sites.ingest_gate().await;
        let parsed = parse(&message, &self.limits, Decode::Full);
        match admit(&self.sites, &message, parsed).await {
            Parsed::Batch { site, batch, .. } => {
                if let Err(error) = self.accept(&site, &batch).await {
                    // Not acknowledged: the fog-node resends it.
                    tracing::error!(%error, site, seq = batch.seq, "failed to store batch");
                }
            }
            Parsed::Rejected {
                site,
                batch,
                rejection,
                ..
            } => {
                if let Err(error) = self.reject(&site, &message, &batch, rejection).await {
                    tracing::error!(%error, site, seq = batch.seq, "failed to record a rejected batch");
                }
            }
            Parsed::Status { site, status } => self.live.set_status(&site, status),
            Parsed::Unusable(letter) => {
                tracing::warn!(topic = letter.topic, reason = letter.reason, "dead letter");
                if let Some(site) = &letter.site {
                    self.live.dead_lettered(site);
                }
                if let Err(error) = self.store.record_dead_letter(&letter).await {
                    tracing::error!(%error, topic = letter.topic, "failed to keep a dead letter");
                }
            }
        }
    }

    async fn accept(&mut self, site: &str, batch: &TelemetryBatch) -> StoreResult<()> {
        let store = self.store.clone();
        let maintenance = self.maintenance.clone();
        let state = self.state(site).await?;
        let decision = state.decide(batch);
        match decision {
            Decision::Accept => {
                let mut next = state.clone();
                let writes = next.accept(batch);
                // Before the batch's rows and state: a crash in between
                // replays the batch (see `ingest::maintenance`).
                if let Some(maintenance) = &maintenance {
                    maintenance.apply(site, batch).await?;
                }
                let started = std::time::Instant::now();
                let written = store.write_batch(batch, &writes, Some(&next)).await;
                crate::metrics::store_write(
                    "ingest",
                    started.elapsed().as_secs_f64(),
                    written.is_ok(),
                );
                written?;
                *state = next;
                crate::metrics::batch_durable(site, batch.samples.len());
                crate::metrics::ingest_latency(batch.created_unix_ns);
            }
            Decision::Duplicate => crate::metrics::batch_duplicate(site),
            Decision::Ahead { expected } => {
                crate::metrics::batch_ahead(site);
                tracing::debug!(
                    site,
                    seq = batch.seq,
                    expected,
                    "batch ahead of the settled prefix"
                );
            }
        }
        let upto = state
            .settled_upto(&batch.node_id)
            .unwrap_or(batch.acked_seq);
        publish_ack(
            self.outbound.as_ref(),
            site,
            &batch.node_id,
            upto,
            Vec::new(),
        );
        self.live.acked(site, crate::time::now_unix_ns());
        Ok(())
    }

    async fn reject(
        &mut self,
        site: &str,
        message: &Inbound,
        batch: &TelemetryBatch,
        rejection: Rejection,
    ) -> StoreResult<()> {
        tracing::warn!(site, seq = batch.seq, reason = %rejection, "batch rejected");
        let letter = crate::store::DeadLetter {
            site: Some(site.to_owned()),
            topic: message.topic.clone(),
            at_unix_ns: crate::time::now_unix_ns(),
            reason: rejection.reason.clone(),
            payload: message.payload.to_vec(),
        };
        self.store.record_dead_letter(&letter).await?;
        self.live.dead_lettered(site);
        if rejection.code == RejectCode::SiteNotActive {
            // Nothing of a site that is not active is kept, not even its seq.
            let rejected = vec![RejectedBatch {
                seq: batch.seq,
                code: rejection.code as i32,
                reason: rejection.reason,
            }];
            let (node, upto) = (&batch.node_id, batch.acked_seq);
            publish_ack(self.outbound.as_ref(), site, node, upto, rejected);
            return Ok(());
        }
        let store = self.store.clone();
        let state = self.state(site).await?;
        if state.decide(batch) != Decision::Duplicate {
            let mut next = state.clone();
            next.reject(batch);
            store.write_site_state(site, &next).await?;
            *state = next;
        }
        let upto = state
            .settled_upto(&batch.node_id)
            .unwrap_or(batch.acked_seq);
        let rejected = vec![RejectedBatch {
            seq: batch.seq,
            code: rejection.code as i32,
            reason: rejection.reason,
        }];
        publish_ack(self.outbound.as_ref(), site, &batch.node_id, upto, rejected);
        Ok(())
    }
}

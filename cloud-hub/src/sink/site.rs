//! One site's batches, applied in order by its sink worker.
//!
//! Each batch's raw samples (and the recomputation of buckets it brought
//! late data for) are written while the next batch is read and applied to
//! the state in memory, and before that one's rows are sent. The site's
//! state (which seqs are applied, counters, open rollup buckets, exposure)
//! and the latest, rollup and exposure rows it implies are written after
//! them, but while more batches wait only every [`STATE_EVERY`] batches,
//! each row once with its newest value (an open hour's rollup would
//! otherwise be rewritten by every batch). Rows the stored state does not
//! count yet are rewritten identically when their batches are replayed
//! from that state, so a crash costs a replay, never a loss or a double
//! count. The worker stores consumer offsets only for batches a written
//! state covers.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use obs_proto::v1::{Sample, TelemetryBatch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::ingest::maintenance::SiteMaintenance;
use crate::ingest::{
    Aggregate, BatchWrites, Decision, ExposureRow, ExposureTotals, Resolution, RollupRow,
    SeriesKey, SiteState,
};
use crate::store::{StoreResult, TelemetryStore};

/// Batches applied after which the state is written even while more wait.
pub const STATE_EVERY: usize = 8;
/// Longest pause between retries of a failed write.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

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

/// Whether a written state now covers every batch applied so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Saved,
    /// Rows written, the state not yet.
    Pending,
}

/// A site's state as the sink applies its batches.
pub struct SiteSink {
    site: String,
    state: SiteState,
    store: Arc<dyn TelemetryStore>,
    maintenance: SiteMaintenance,
    shutdown: CancellationToken,
    /// Batches applied since the state was last written.
    unsaved: usize,
    /// The rows of the last batch, being written while the next is read.
    writing: Option<JoinHandle<Option<()>>>,
    /// Latest, rollup and exposure rows to write with the state.
    derived: Derived,
}

/// The newest latest, rollup and exposure rows of each key since the state
/// was last written.
#[derive(Debug, Default)]
struct Derived {
    latest: BTreeMap<(String, String), Sample>,
    rollups: BTreeMap<(Resolution, SeriesKey, i64), Aggregate>,
    exposure: BTreeMap<(u32, i64), ExposureTotals>,
}

impl Derived {
    /// Keeps `writes`' latest, rollup and exposure rows and returns the
    /// rest: the late buckets, whose recomputation from raw samples
    /// supersedes any row kept for them.
    fn absorb(&mut self, writes: BatchWrites) -> BatchWrites {
        for sample in writes.latest {
            let key = (sample.device.clone(), sample.attribute.clone());
            match self.latest.get(&key) {
                Some(kept) if kept.ts_unix_ns > sample.ts_unix_ns => {}
                _ => {
                    self.latest.insert(key, sample);
                }
            }
        }
        for row in writes.rollups {
            let key = (row.resolution, row.series, row.bucket_start);
            self.rollups.insert(key, row.aggregate);
        }
        for row in writes.exposure {
            self.exposure
                .insert((row.position, row.hour_start), row.totals);
        }
        for late in &writes.late {
            let key = (late.resolution, late.series.clone(), late.bucket_start);
            self.rollups.remove(&key);
        }
        BatchWrites {
            late: writes.late,
            ..Default::default()
        }
    }

    fn take(&mut self) -> BatchWrites {
        let rollups = std::mem::take(&mut self.rollups).into_iter();
        let exposure = std::mem::take(&mut self.exposure).into_iter();
        BatchWrites {
            latest: std::mem::take(&mut self.latest).into_values().collect(),
            rollups: rollups
                .map(
                    |((resolution, series, bucket_start), aggregate)| RollupRow {
                        series,
                        resolution,
                        bucket_start,
                        aggregate,
                    },
                )
                .collect(),
            late: Vec::new(),
            exposure: exposure
                .map(|((position, hour_start), totals)| ExposureRow {
                    position,
                    hour_start,
                    totals,
                })
                .collect(),
        }
    }
}

impl SiteSink {
    /// The site's stored state (retried until it loads); `None` on shutdown.
    pub async fn load(
        site: &str,
        store: Arc<dyn TelemetryStore>,
        maintenance: SiteMaintenance,
        shutdown: CancellationToken,
    ) -> Option<Self> {
        let loaded = retry("loading ingest state", &shutdown, || {
            store.load_site_state(site)
        })
        .await?;
        Some(SiteSink {
            site: site.to_owned(),
            state: loaded.unwrap_or_default(),
            store,
            maintenance,
            shutdown,
            unsaved: 0,
            writing: None,
            derived: Derived::default(),
        })
    }

    /// Applies one record: a batch, or the bridge's marker of a refused one
    /// (`rejected`). `more`: further records are waiting, so the state may
    /// be left for later, and the batch's rows may still be being written
    /// when this returns. `None` when shut down before it was written (the
    /// record is then replayed from the stored state).
    pub async fn apply(
        &mut self,
        batch: TelemetryBatch,
        rejected: bool,
        more: bool,
    ) -> Option<Applied> {
        let decision = self.state.decide(&batch);
        let relevant =
            decision == Decision::Accept || (rejected && decision != Decision::Duplicate);
        if relevant {
            if rejected {
                self.state.reject(&batch);
            } else {
                self.write(batch).await?;
            }
            self.unsaved += 1;
        }
        self.settle(more).await
    }

    /// Waits until the rows of every batch applied so far are written.
    pub async fn written(&mut self) -> Option<()> {
        let Some(writing) = self.writing.take() else {
            return Some(());
        };
        match writing.await {
            Ok(written) => written,
            Err(error) => {
                tracing::error!(%error, site = self.site, "sink write task failed");
                None
            }
        }
    }

    /// Writes the state if batches wait for it and either no further
    /// records are waiting (`more`) or [`STATE_EVERY`] batches do.
    pub async fn settle(&mut self, more: bool) -> Option<Applied> {
        if self.unsaved == 0 {
            return Some(Applied::Saved);
        }
        if more && self.unsaved < STATE_EVERY {
            return Some(Applied::Pending);
        }
        self.save().await?;
        Some(Applied::Saved)
    }

    /// Writes the latest, rollup and exposure rows kept back and the state,
    /// once the rows it counts are written; `None` on shutdown.
    pub async fn save(&mut self) -> Option<()> {
        self.written().await?;
        let derived = self.derived.take();
        let no_samples = TelemetryBatch {
            site: self.site.clone(),
            ..Default::default()
        };
        let (state, store) = (&self.state, &self.store);
        retry("writing rollups and ingest state", &self.shutdown, || {
            store.write_batch(&no_samples, &derived, Some(state))
        })
        .await?;
        self.unsaved = 0;
        Some(())
    }

    /// The batch's maintenance events, then its rows: started once the
    /// previous batch's rows are written (so later rows of a key are always
    /// sent later), and written while the caller reads the next batch.
    async fn write(&mut self, batch: TelemetryBatch) -> Option<()> {
        let site = self.site.as_str();
        // Before the batch's rows and state: a crash in between replays the
        // batch (see `ingest::maintenance`).
        retry("recording site maintenance", &self.shutdown, || {
            self.maintenance.apply(site, &batch)
        })
        .await?;
        // The state moves on in memory; a shutdown before the rows are
        // written drops it, and the batch is replayed from the stored one.
        let writes = self.derived.absorb(self.state.accept(&batch));
        self.written().await?;
        let (site, store, shutdown) =
            (self.site.clone(), self.store.clone(), self.shutdown.clone());
        self.writing = Some(tokio::spawn(async move {
            retry("writing a batch", &shutdown, || async {
                let started = std::time::Instant::now();
                let written = store.write_batch(&batch, &writes, None).await;
                let seconds = started.elapsed().as_secs_f64();
                crate::metrics::store_write("sink", seconds, written.is_ok());
                written
            })
            .await?;
            crate::metrics::sink_written(&site, batch.samples.len());
            crate::metrics::ingest_latency(batch.created_unix_ns);
            Some(())
        }));
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::Resolution;
    use crate::store::SeriesQuery;
    use crate::store::conformance::batch;
    use crate::store::sqlite::SqliteStore;

    async fn sink(store: &Arc<SqliteStore>) -> SiteSink {
        let maintenance = SiteMaintenance::new(store.clone());
        SiteSink::load("nrt", store.clone(), maintenance, CancellationToken::new())
            .await
            .expect("state loads")
    }

    /// Samples, rollups, latest values and exposure as a reader sees them.
    async fn tables(store: &SqliteStore) -> String {
        let mut seen = String::new();
        for (device, attribute) in [
            ("m1/segment/01", "glass_temperature"),
            ("weather/station/1", "dust_concentration"),
        ] {
            let query = SeriesQuery {
                site: "nrt".into(),
                device: device.into(),
                attribute: attribute.into(),
                from_ns: 0,
                to_ns: i64::MAX,
                limit: 100_000,
            };
            let samples = store.query_samples(&query).await.unwrap();
            let minutes = store.query_rollups(&query, Resolution::Minute).await;
            let hours = store.query_rollups(&query, Resolution::Hour).await;
            seen += &format!("{samples:?}\n{minutes:?}\n{hours:?}\n");
        }
        let latest = store.latest("nrt").await.unwrap();
        let exposure = store.exposure_at("nrt", 1, i64::MAX / 1_000_000_000).await;
        seen + &format!("{latest:?}\n{exposure:?}")
    }

    #[tokio::test]
    async fn the_state_waits_while_batches_queue_and_a_replay_from_it_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open(&dir.path().join("sink.sqlite")).unwrap());
        let mut first = sink(&store).await;
        for seq in 1..=3 {
            let applied = first.apply(batch("nrt", seq), false, true).await;
            assert_eq!(applied, Some(Applied::Pending), "seq {seq}");
        }
        // The rows are written, the state not yet: a crash now replays 1..=3.
        first.written().await.expect("rows written");
        assert!(store.load_site_state("nrt").await.unwrap().is_none());
        assert_eq!(
            store
                .query_samples(&query_of_segment_1())
                .await
                .unwrap()
                .len(),
            3 * 90
        );
        drop(first);
        // Replayed, then batch 4 with data late for batch 1's minutes (whose
        // rollups are still kept back), and batch 5.
        let mut second = sink(&store).await;
        for batch in batches() {
            let more = batch.seq < 5;
            let applied = second.apply(batch, false, more).await;
            assert!(applied.is_some());
        }
        let state = store.load_site_state("nrt").await.unwrap().unwrap();
        assert_eq!(state.counters.batches_stored, 5);
        assert_eq!(state.counters.samples_stored, 5 * 540);
        // Minute 0: 60 samples of batch 1 and 60 late ones of batch 4.
        let minutes = store
            .query_rollups(&query_of_segment_1(), Resolution::Minute)
            .await
            .unwrap();
        assert_eq!(minutes[0].aggregate.count, 120);

        // The same batches applied one state write each, with no replay.
        let straight = Arc::new(SqliteStore::open(&dir.path().join("straight.sqlite")).unwrap());
        let mut each = sink(&straight).await;
        for batch in batches() {
            let applied = each.apply(batch, false, false).await;
            assert_eq!(applied, Some(Applied::Saved));
        }
        assert_eq!(tables(&store).await, tables(&straight).await);
    }

    /// Batches 1-5 of the conformance suite, batch 4's samples moved into
    /// batch 1's time (half a second after each of its samples).
    fn batches() -> Vec<TelemetryBatch> {
        let mut batches: Vec<TelemetryBatch> = (1..=5).map(|seq| batch("nrt", seq)).collect();
        for sample in &mut batches[3].samples {
            sample.ts_unix_ns -= 3 * 90 * 1_000_000_000 - 500_000_000;
        }
        batches
    }

    #[tokio::test]
    async fn a_backlog_still_writes_the_state_every_few_batches() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open(&dir.path().join("sink.sqlite")).unwrap());
        let mut sink = sink(&store).await;
        for seq in 1..=STATE_EVERY as u64 {
            let applied = sink.apply(batch("nrt", seq), false, true).await;
            let expected = if seq == STATE_EVERY as u64 {
                Applied::Saved
            } else {
                Applied::Pending
            };
            assert_eq!(applied, Some(expected), "seq {seq}");
        }
        let state = store.load_site_state("nrt").await.unwrap().unwrap();
        assert_eq!(state.counters.batches_stored, STATE_EVERY as u64);
        // A duplicate changes nothing and leaves nothing to save.
        let again = sink.apply(batch("nrt", 1), false, true).await;
        assert_eq!(again, Some(Applied::Saved));
    }

    fn query_of_segment_1() -> SeriesQuery {
        SeriesQuery {
            site: "nrt".into(),
            device: "m1/segment/01".into(),
            attribute: "glass_temperature".into(),
            from_ns: 0,
            to_ns: i64::MAX,
            limit: 100_000,
        }
    }
}

//! The spool writer: one dedicated thread that receives samples from every
//! producer over a bounded channel, seals them into batches (every
//! `max_samples` samples or `max_delay_ms` after the oldest waiting one),
//! appends them to the spool and group-commits: one fsync every
//! `fsync_interval` or as soon as `fsync_bytes` are waiting.
//!
//! A full channel makes producers wait; nothing is dropped. When every
//! sender is gone (shutdown) the writer seals what is left, syncs, and ends.
//! After each append or sync it publishes the durable seq on a watch
//! channel, which wakes the uplink.

use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use obs_proto::v1::Sample;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::config::BatchingConfig;
use crate::error::{Error, Result};
use crate::metrics::{self, NodeMetrics};
use crate::spool::{Spool, SpoolError};

/// The spool, shared by the writer, the uplink and the status writer. Lock
/// it only on a blocking thread and never across an `.await`.
pub type SharedSpool = Arc<Mutex<Spool>>;

/// Where producers send samples.
pub type SampleSender = mpsc::Sender<Vec<Sample>>;

/// Locks the spool, recovering the guard if a panicking holder poisoned it
/// (the spool itself stays consistent: its writes are all-or-nothing).
pub fn lock(spool: &SharedSpool) -> MutexGuard<'_, Spool> {
    spool
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Gathers samples and decides when a batch is sealed.
#[derive(Debug)]
pub struct Batcher {
    pending: Vec<Sample>,
    oldest: Option<Instant>,
    max_samples: usize,
    max_delay: Duration,
}

impl Batcher {
    /// A batcher sealing every `max_samples` samples or `max_delay` after
    /// the oldest waiting sample.
    pub fn new(max_samples: usize, max_delay: Duration) -> Self {
        Batcher {
            pending: Vec::new(),
            oldest: None,
            max_samples: max_samples.max(1),
            max_delay,
        }
    }

    /// Adds samples received at `now`; returns the batches that are full.
    pub fn push(&mut self, samples: Vec<Sample>, now: Instant) -> Vec<Vec<Sample>> {
        if samples.is_empty() {
            return Vec::new();
        }
        if self.pending.is_empty() {
            self.oldest = Some(now);
        }
        if self.pending.is_empty() && samples.len() < self.max_samples {
            self.pending = samples;
        } else {
            self.pending.extend(samples);
        }
        let mut full = Vec::new();
        while self.pending.len() >= self.max_samples {
            let rest = self.pending.split_off(self.max_samples);
            full.push(std::mem::replace(&mut self.pending, rest));
        }
        if self.pending.is_empty() {
            self.oldest = None;
        }
        full
    }

    /// When the waiting samples must be sealed, if any wait.
    pub fn deadline(&self) -> Option<Instant> {
        self.oldest.map(|t| t + self.max_delay)
    }

    /// Whether the waiting samples have waited `max_delay`.
    pub fn is_due(&self, now: Instant) -> bool {
        self.deadline().is_some_and(|d| now >= d)
    }

    /// Takes the waiting samples as one batch.
    pub fn take(&mut self) -> Option<Vec<Sample>> {
        self.oldest = None;
        (!self.pending.is_empty()).then(|| std::mem::take(&mut self.pending))
    }

    /// Samples waiting.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// Whether no sample waits.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }
}

/// What the writer thread needs.
pub struct WriterParts {
    pub spool: SharedSpool,
    pub samples: mpsc::Receiver<Vec<Sample>>,
    pub batching: BatchingConfig,
    pub fsync_interval: Duration,
    pub durable: watch::Sender<u64>,
    pub metrics: Arc<NodeMetrics>,
    /// Cancelled on shutdown: a failing spool is then no longer retried for ever.
    pub shutdown: CancellationToken,
}

/// Starts the writer thread; it ends when every sender is dropped.
pub fn spawn(parts: WriterParts) -> Result<JoinHandle<Result<()>>> {
    std::thread::Builder::new()
        .name("spool-writer".into())
        .spawn(move || run(parts))
        .map_err(|e| Error::Task {
            task: "spool writer",
            reason: format!("cannot start its thread: {e}"),
        })
}

enum Received {
    Samples(Vec<Sample>),
    Closed,
    Timeout,
}

fn run(mut parts: WriterParts) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .map_err(|e| Error::Task {
            task: "spool writer",
            reason: format!("cannot build its timer runtime: {e}"),
        })?;
    let mut batcher = Batcher::new(
        parts.batching.max_samples,
        Duration::from_millis(parts.batching.max_delay_ms),
    );
    let mut last_sync = Instant::now();
    let mut dirty = false;
    loop {
        let sync_deadline = dirty.then(|| last_sync + parts.fsync_interval);
        let deadline = match (batcher.deadline(), sync_deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let received = runtime.block_on(async {
            match deadline {
                Some(deadline) => {
                    match tokio::time::timeout_at(deadline.into(), parts.samples.recv()).await {
                        Ok(Some(samples)) => Received::Samples(samples),
                        Ok(None) => Received::Closed,
                        Err(_) => Received::Timeout,
                    }
                }
                None => match parts.samples.recv().await {
                    Some(samples) => Received::Samples(samples),
                    None => Received::Closed,
                },
            }
        });
        let now = Instant::now();
        match received {
            Received::Samples(samples) => {
                metrics::add(&parts.metrics.samples_received, samples.len() as u64);
                for batch in batcher.push(samples, now) {
                    seal(&parts, batch)?;
                    dirty = true;
                }
            }
            Received::Closed => break,
            Received::Timeout => {}
        }
        if batcher.is_due(now)
            && let Some(batch) = batcher.take()
        {
            seal(&parts, batch)?;
            dirty = true;
        }
        if dirty && (now >= last_sync + parts.fsync_interval || lock(&parts.spool).needs_sync()) {
            sync(&parts)?;
            dirty = false;
            last_sync = Instant::now();
        }
    }
    if let Some(batch) = batcher.take() {
        seal(&parts, batch)?;
    }
    sync(&parts)?;
    tracing::info!(
        durable_seq = *parts.durable.borrow(),
        "spool writer stopped, everything received is durable"
    );
    Ok(())
}

/// Appends one batch, retrying while the spool fails (a full disk): the
/// channel fills up meanwhile and producers wait. A poisoned spool (failed
/// fsync) ends the writer: only reopening it, i.e. a restart, recovers.
fn seal(parts: &WriterParts, batch: Vec<Sample>) -> Result<()> {
    let mut delay = Duration::from_millis(100);
    loop {
        let result = {
            let mut spool = lock(&parts.spool);
            let result = spool.append(&batch);
            parts.durable.send_if_modified(|d| {
                let changed = *d != spool.durable_seq();
                *d = spool.durable_seq();
                changed
            });
            result
        };
        match result {
            Ok(seq) => {
                metrics::inc(&parts.metrics.batches_sealed);
                metrics::add(&parts.metrics.samples_spooled, batch.len() as u64);
                tracing::trace!(seq, samples = batch.len(), "batch sealed");
                return Ok(());
            }
            Err(SpoolError::RecordTooLarge { bytes, limit, .. }) if batch.len() > 1 => {
                tracing::warn!(
                    bytes,
                    limit,
                    samples = batch.len(),
                    "batch too large for a segment, splitting it"
                );
                let mut first = batch;
                let second = first.split_off(first.len() / 2);
                seal(parts, first)?;
                return seal(parts, second);
            }
            Err(error @ SpoolError::Poisoned { .. }) => return Err(error.into()),
            Err(error) => {
                metrics::inc(&parts.metrics.spool_errors);
                if parts.shutdown.is_cancelled() && delay > Duration::from_secs(1) {
                    tracing::error!(
                        %error,
                        samples = batch.len(),
                        "shutting down with a failing spool: these samples are lost"
                    );
                    return Err(error.into());
                }
                tracing::error!(%error, samples = batch.len(), retry_in_ms = delay.as_millis() as u64, "cannot append a batch, retrying");
                std::thread::sleep(delay);
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}

fn sync(parts: &WriterParts) -> Result<()> {
    let mut delay = Duration::from_millis(100);
    loop {
        let result = {
            let mut spool = lock(&parts.spool);
            let result = spool.sync();
            parts.durable.send_replace(spool.durable_seq());
            result
        };
        match result {
            Ok(()) => return Ok(()),
            Err(error @ SpoolError::Poisoned { .. }) => return Err(error.into()),
            Err(error) => {
                metrics::inc(&parts.metrics.spool_errors);
                if parts.shutdown.is_cancelled() && delay > Duration::from_secs(1) {
                    return Err(error.into());
                }
                tracing::error!(%error, "cannot sync the spool, retrying");
                std::thread::sleep(delay);
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples(n: usize) -> Vec<Sample> {
        (0..n)
            .map(|i| Sample {
                device: "t/t/1".into(),
                attribute: "a".into(),
                ts_unix_ns: i as i64,
                ..Sample::default()
            })
            .collect()
    }

    #[test]
    fn seals_by_size_in_order_and_keeps_the_rest() {
        let mut b = Batcher::new(4, Duration::from_secs(1));
        let t0 = Instant::now();
        assert!(b.push(samples(3), t0).is_empty());
        let full = b.push(samples(6), t0);
        assert_eq!(full.len(), 2);
        assert_eq!(full.iter().map(Vec::len).collect::<Vec<_>>(), vec![4, 4]);
        let ts: Vec<i64> = full.concat().iter().map(|s| s.ts_unix_ns).collect();
        assert_eq!(ts, vec![0, 1, 2, 0, 1, 2, 3, 4]);
        assert_eq!(b.len(), 1);
        assert_eq!(b.take().unwrap()[0].ts_unix_ns, 5);
        assert!(b.is_empty() && b.deadline().is_none());
    }

    #[test]
    fn seals_by_age_of_the_oldest_sample() {
        let mut b = Batcher::new(100, Duration::from_millis(500));
        let t0 = Instant::now();
        assert!(!b.is_due(t0));
        b.push(samples(1), t0);
        b.push(samples(1), t0 + Duration::from_millis(400));
        assert_eq!(b.deadline(), Some(t0 + Duration::from_millis(500)));
        assert!(!b.is_due(t0 + Duration::from_millis(499)));
        assert!(b.is_due(t0 + Duration::from_millis(500)));
        assert_eq!(b.take().map(|v| v.len()), Some(2));
        assert!(b.take().is_none());
        // the clock starts again with the next sample
        b.push(samples(1), t0 + Duration::from_secs(10));
        assert_eq!(b.deadline(), Some(t0 + Duration::from_millis(10_500)));
    }

    #[test]
    fn writer_spools_everything_and_syncs_on_close() {
        let dir = tempfile::tempdir().unwrap();
        let config = crate::spool::SpoolConfig::new(dir.path(), "nrt", "node-1");
        let (spool, _) = Spool::open(config).unwrap();
        let spool = Arc::new(Mutex::new(spool));
        let (tx, rx) = mpsc::channel(4);
        let (durable_tx, durable_rx) = watch::channel(0);
        let metrics = Arc::new(NodeMetrics::default());
        let handle = spawn(WriterParts {
            spool: spool.clone(),
            samples: rx,
            batching: BatchingConfig {
                max_samples: 10,
                max_delay_ms: 60_000,
                channel_capacity: 4,
            },
            fsync_interval: Duration::from_secs(60),
            durable: durable_tx,
            metrics: metrics.clone(),
            shutdown: CancellationToken::new(),
        })
        .unwrap();
        for _ in 0..7 {
            tx.blocking_send(samples(3)).unwrap();
        }
        drop(tx);
        handle.join().unwrap().unwrap();
        // 21 samples: two full batches of 10 and the rest sealed at close
        assert_eq!(*durable_rx.borrow(), 3);
        let spool = lock(&spool);
        let records = spool.read_from(1, 10, usize::MAX).unwrap();
        assert_eq!(
            records.iter().map(|r| r.samples).collect::<Vec<_>>(),
            vec![10, 10, 1]
        );
        assert_eq!(metrics::get(&metrics.samples_spooled), 21);
    }
}

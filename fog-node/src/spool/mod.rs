//! The fog-node's durable store-and-forward spool.
//!
//! Every batch of device samples is appended as one record, a prost-encoded
//! [`TelemetryBatch`](obs_proto::v1::TelemetryBatch) with a per-node
//! sequence number, to append-only segment files in one directory:
//!
//! ```text
//! {dir}/00000000000000000001.seg   segments, named by their first seq (format in `segment`)
//! {dir}/spool.meta                 ack watermark, next-seq floor, loss counters (format in `meta`)
//! {dir}/spool.lock                 held while a Spool is open
//! {dir}/quarantine/{seq}.batch     payloads the hub rejected, with {seq}.reason.txt
//! ```
//!
//! Guarantees:
//! - Seqs start at 1 and strictly increase; a seq that was ever durable is
//!   never assigned again, even after every segment was trimmed.
//! - [`Spool::read_from`] returns only durable records (seq ≤ the last
//!   fsynced seq), so nothing that a crash could take back is ever sent.
//! - Group commit is the caller's: [`Spool::sync`] fsyncs, and the caller's
//!   loop calls it every [`SpoolConfig::fsync_interval`] or as soon as
//!   [`Spool::needs_sync`]. A segment is also fsynced when it is sealed.
//! - [`Spool::ack`] persists the hub's watermark and deletes segments it
//!   covers; after a restart reading resumes above the watermark.
//! - Past [`SpoolConfig::max_bytes`] the oldest segments are dropped, acked
//!   or not, and a gap record (`GAP_REASON_SPOOL_FULL`) that accounts for
//!   every dropped sample takes a new seq; gaps carried by dropped gap
//!   records move into it.
//! - After `kill -9` or power loss, [`Spool::open`] verifies every record's
//!   CRC: a torn record at the end of the last segment is cut off (a write
//!   the crash interrupted: never durable, never sent). Damage anywhere
//!   else, and a cut record that `spool.meta` proves was durable, is
//!   reported in a `GAP_REASON_SPOOL_CORRUPT` gap record; good records after
//!   damage are still delivered.
//!
//! Fault injection for tests (a full disk, a failing truncate or fsync)
//! lives in `writer::faults`, compiled only under `cfg(test)`.
//!
//! The API is blocking: run it on a dedicated thread or `spawn_blocking`.

mod config;
mod error;
mod gap;
mod index;
mod meta;
mod quarantine;
mod recovery;
mod retention;
mod segment;
mod writer;

#[cfg(test)]
mod model_tests;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::fs::{self, File, TryLockError};
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use obs_proto::v1::{Gap, Sample};

pub use config::{MAX_NODE_ID_LEN, MAX_SEGMENT_BYTES, MIN_SEGMENT_BYTES, SpoolConfig};
pub use error::{FileKind, Result, SpoolError};
pub use segment::{FORMAT_VERSION, FRAME_HEADER_LEN, SEGMENT_HEADER_LEN, SEGMENT_MAGIC};

use gap::chunk_gaps;
use index::{RecordMeta, SegmentIndex, SegmentReader};
use meta::{Meta, write_meta};
use quarantine::write_quarantine;
use segment::{FrameHeader, encode_identity, encode_record};
use writer::ActiveWriter;

/// Name of the lock file in the spool directory.
const LOCK_FILE: &str = "spool.lock";
/// Room kept for the gap record when dropping segments to make space.
const GAP_RECORD_RESERVE: u64 = 512;
/// Slack for a seq that grows by a varint byte between encoding and writing.
const SEQ_SLACK: u64 = 10;
/// Payload bytes of a batch besides its identity, samples and gaps: the
/// `seq` and `created_unix_ns` fields (key and 10-byte varint each).
const BATCH_FIELDS_LEN: usize = 22;

/// One durable record, ready to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoolRecord {
    pub seq: u64,
    /// Samples in the batch (0 for a gap record).
    pub samples: u32,
    /// Whether this is a gap record (no samples, only `gaps`).
    pub is_gap: bool,
    /// The encoded `TelemetryBatch`, `seq` included: the MQTT payload.
    pub payload: Vec<u8>,
}

/// What [`Spool::open`] found and repaired.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Segment files kept.
    pub segments: usize,
    /// Records in them that passed their CRC check.
    pub records: u64,
    /// Bytes cut off: torn records at the end of the last segment, or
    /// garbage at the end of an older one that stood for no record.
    pub truncated_bytes: u64,
    /// Segments with damage (a bad header or records failing their check).
    pub corrupt_segments: u64,
    /// `GAP_REASON_SPOOL_CORRUPT` gaps appended for data lost to damage.
    pub corrupt_gaps: u64,
    /// Segments deleted to finish a drop a crash interrupted.
    pub completed_drops: u64,
    /// Segments deleted because the ack watermark covers them.
    pub trimmed_segments: u64,
    /// The seq the next append gets.
    pub next_seq: u64,
    /// The hub's ack watermark.
    pub acked_seq: u64,
}

/// Counters and watermarks, for `NodeStatus`, metrics and `fog-node status`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SpoolStats {
    /// Seq of the last appended record (0 if none ever).
    pub spooled_seq: u64,
    /// Seq of the last fsynced record: the highest one `read_from` returns.
    pub durable_seq: u64,
    /// The hub's ack watermark.
    pub acked_seq: u64,
    /// Records above the watermark still in the spool.
    pub backlog_batches: u64,
    /// Their size on disk.
    pub backlog_bytes: u64,
    /// Segment files.
    pub segments: u64,
    /// Size of all segment files.
    pub total_bytes: u64,
    /// Bytes appended since the last fsync.
    pub unsynced_bytes: u64,
    /// Samples dropped by the size bound, ever (persisted).
    pub gap_samples: u64,
    /// Unacked records dropped by the size bound, ever (persisted).
    pub dropped_batches: u64,
    /// Batches in `quarantine/`.
    pub quarantined: u64,
    /// Bytes cut off torn tails since this spool was opened.
    pub truncated_bytes: u64,
}

/// The durable spool of one node. See the [module docs](self).
pub struct Spool {
    config: SpoolConfig,
    /// Pre-encoded site and node id, the first bytes of every payload.
    identity: Vec<u8>,
    /// Oldest first; when `writer` is set, it is open on the last one.
    segments: VecDeque<SegmentIndex>,
    writer: Option<ActiveWriter>,
    next_seq: u64,
    durable_seq: u64,
    meta: Meta,
    total_bytes: u64,
    truncated_bytes: u64,
    quarantined: u64,
    /// Set when an fsync failed; every later write is refused.
    poisoned: Option<String>,
    /// Reused encoding buffer.
    buf: Vec<u8>,
    /// Holds the directory lock while the spool is open.
    _lock: File,
}

const _: () = {
    const fn assert_send<T: Send>() {}
    assert_send::<Spool>();
};

impl std::fmt::Debug for Spool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spool")
            .field("dir", &self.config.dir)
            .field("next_seq", &self.next_seq)
            .field("durable_seq", &self.durable_seq)
            .field("acked_seq", &self.meta.acked_seq)
            .field("segments", &self.segments.len())
            .field("total_bytes", &self.total_bytes)
            .field("poisoned", &self.poisoned.is_some())
            .finish()
    }
}

impl Spool {
    /// Opens (or creates) the spool in `config.dir`, recovering from
    /// whatever state a crash left it in.
    pub fn open(config: SpoolConfig) -> Result<(Spool, RecoveryReport)> {
        config.validate()?;
        let dir = config.dir.clone();
        fs::create_dir_all(&dir)
            .map_err(|e| SpoolError::io(FileKind::Directory, &dir, "create", e))?;
        let lock = lock_dir(&dir)?;
        let recovered = recovery::recover(&dir)?;
        let mut report = recovered.report;
        let next_seq = recovered.next_seq;
        let mut spool = Spool {
            identity: encode_identity(&config.site, &config.node_id),
            config,
            total_bytes: recovered.segments.iter().map(|s| s.file_len).sum(),
            segments: recovered.segments,
            writer: recovered.writer,
            next_seq,
            durable_seq: next_seq - 1,
            meta: recovered.meta,
            truncated_bytes: report.truncated_bytes,
            quarantined: recovered.quarantined,
            poisoned: None,
            buf: Vec::new(),
            _lock: lock,
        };
        if !recovered.corrupt_gaps.is_empty() {
            for gap in &recovered.corrupt_gaps {
                tracing::warn!(
                    first_seq = gap.first_seq,
                    last_seq = gap.last_seq,
                    samples = gap.samples,
                    detail = %gap.detail,
                    "spool damage reported as a gap"
                );
            }
            report.corrupt_gaps = recovered.corrupt_gaps.len() as u64;
            spool.append_gaps(recovered.corrupt_gaps)?;
            spool.sync()?;
        }
        spool.make_room(0)?;
        if spool.meta.next_seq < spool.next_seq {
            // Everything recovered is durable now: record that, so that a
            // durable record lost to damage later is reported, not reused.
            spool.meta.next_seq = spool.next_seq;
            write_meta(&spool.config.dir, &spool.meta)?;
        }
        report.next_seq = spool.next_seq;
        report.segments = spool.segments.len();
        tracing::info!(
            dir = %spool.config.dir.display(),
            segments = report.segments,
            records = report.records,
            truncated_bytes = report.truncated_bytes,
            corrupt_segments = report.corrupt_segments,
            next_seq = report.next_seq,
            acked_seq = report.acked_seq,
            "spool opened"
        );
        Ok((spool, report))
    }

    /// The configuration the spool was opened with.
    pub fn config(&self) -> &SpoolConfig {
        &self.config
    }

    /// Appends one batch of samples and returns its seq.
    ///
    /// The record is written to the active segment but not fsynced: it
    /// becomes readable once [`sync`](Self::sync) has run. On error nothing
    /// was appended (a partial write is cut off) and the seq is not used.
    pub fn append(&mut self, samples: &[Sample]) -> Result<u64> {
        self.check_usable("append")?;
        if samples.is_empty() {
            return Err(SpoolError::EmptyBatch {
                dir: self.config.dir.clone(),
            });
        }
        let mut buf = std::mem::take(&mut self.buf);
        let result = self.append_batch(&mut buf, samples);
        self.buf = buf;
        result
    }

    fn append_batch(&mut self, buf: &mut Vec<u8>, samples: &[Sample]) -> Result<u64> {
        let created = now_unix_ns();
        let mut seq = self.next_seq;
        let mut header = encode_record(buf, &self.identity, seq, samples, &[], created);
        self.check_size(buf.len())?;
        self.make_room(buf.len() as u64 + SEGMENT_HEADER_LEN as u64 + SEQ_SLACK)?;
        if self.next_seq != seq {
            // Gap records took seqs while making room.
            seq = self.next_seq;
            header = encode_record(buf, &self.identity, seq, samples, &[], created);
            self.check_size(buf.len())?;
        }
        self.write_frame(buf, &header)?;
        Ok(seq)
    }

    /// Makes every appended record durable (fdatasync of the active
    /// segment, and of the directory after a new segment was created).
    ///
    /// If the fsync fails the spool refuses all further writes until it is
    /// reopened: the kernel may have dropped the unsynced pages.
    pub fn sync(&mut self) -> Result<()> {
        self.check_usable("sync")?;
        let result = match self.writer.as_mut() {
            Some(writer) if writer.is_dirty() => writer.sync(&self.config.dir),
            _ => Ok(()),
        };
        if let Err(error) = result {
            self.poison(&error);
            return Err(error);
        }
        self.durable_seq = self.next_seq - 1;
        Ok(())
    }

    /// Bytes appended since the last fsync.
    pub fn unsynced_bytes(&self) -> u64 {
        self.writer.as_ref().map_or(0, ActiveWriter::unsynced)
    }

    /// Whether the unsynced bytes reached [`SpoolConfig::fsync_bytes`], so
    /// the group-commit loop should sync now rather than at its next tick.
    pub fn needs_sync(&self) -> bool {
        self.unsynced_bytes() >= self.config.fsync_bytes
    }

    /// Seq of the last appended record.
    pub fn spooled_seq(&self) -> u64 {
        self.next_seq - 1
    }

    /// Seq of the last fsynced record.
    pub fn durable_seq(&self) -> u64 {
        self.durable_seq
    }

    /// The hub's ack watermark.
    pub fn acked_seq(&self) -> u64 {
        self.meta.acked_seq
    }

    /// Durable records with seq ≥ `from_seq`, in seq order: at most
    /// `max_records`, and no more payload bytes than `max_bytes` unless the
    /// first record alone is larger (it is returned anyway, so a large
    /// batch cannot stall the uplink). Seqs dropped or trimmed are skipped.
    pub fn read_from(
        &self,
        from_seq: u64,
        max_records: usize,
        max_bytes: usize,
    ) -> Result<Vec<SpoolRecord>> {
        let mut out = Vec::new();
        let mut bytes = 0usize;
        let start = self
            .segments
            .partition_point(|s| s.base_seq <= from_seq)
            .saturating_sub(1);
        for segment in self.segments.range(start..) {
            let mut reader: Option<SegmentReader> = None;
            for record in &segment.records[segment.position_of(from_seq)..] {
                let payload_len = record.frame_len as usize - FRAME_HEADER_LEN;
                if record.seq > self.durable_seq
                    || out.len() >= max_records
                    || (!out.is_empty() && bytes + payload_len > max_bytes)
                {
                    return Ok(out);
                }
                let reader = match reader.as_mut() {
                    Some(reader) => reader,
                    None => reader.insert(SegmentReader::open(&segment.path)?),
                };
                let payload = reader.read_payload(record)?;
                bytes += payload.len();
                out.push(SpoolRecord {
                    seq: record.seq,
                    samples: record.samples,
                    is_gap: record.gap,
                    payload,
                });
            }
        }
        Ok(out)
    }

    /// Seqs of the durable gap records with seq ≥ `from_seq`, in seq order,
    /// taken from the in-memory index (no file is read): how the uplink
    /// finds the gap records to send before the data that follows a loss.
    pub fn gap_seqs_from(&self, from_seq: u64) -> Vec<u64> {
        let start = self
            .segments
            .partition_point(|s| s.base_seq <= from_seq)
            .saturating_sub(1);
        self.segments
            .range(start..)
            .flat_map(|segment| &segment.records[segment.position_of(from_seq)..])
            .take_while(|record| record.seq <= self.durable_seq)
            .filter(|record| record.gap)
            .map(|record| record.seq)
            .collect()
    }

    /// Records the hub's cumulative ack: persists the watermark (atomic
    /// write of `spool.meta`), then deletes the segments it fully covers.
    ///
    /// An ack above the durable seq is refused with
    /// [`SpoolError::AckBeyondDurable`] and changes nothing; an ack at or
    /// below the current watermark is a no-op (acks may be redelivered).
    pub fn ack(&mut self, up_to_seq: u64) -> Result<()> {
        self.check_usable("ack")?;
        if up_to_seq > self.durable_seq {
            return Err(SpoolError::AckBeyondDurable {
                path: self.config.dir.clone(),
                requested: up_to_seq,
                durable: self.durable_seq,
            });
        }
        if up_to_seq <= self.meta.acked_seq {
            return Ok(());
        }
        let meta = Meta {
            acked_seq: up_to_seq,
            next_seq: self.meta.next_seq.max(self.durable_seq + 1),
            ..self.meta
        };
        write_meta(&self.config.dir, &meta)?;
        self.meta = meta;
        self.trim_acked();
        Ok(())
    }

    /// Copies the payload of record `seq` to `{dir}/quarantine/{seq}.batch`
    /// and `reason` to `{seq}.reason.txt`, and returns the batch file's path.
    ///
    /// For batches the hub rejected: call it before [`ack`](Self::ack), since
    /// the hub's ack covers the rejected seq and trims it.
    pub fn quarantine(&mut self, seq: u64, reason: &str) -> Result<PathBuf> {
        self.check_usable("quarantine")?;
        let not_found = || SpoolError::NotFound {
            dir: self.config.dir.clone(),
            op: "quarantine",
            seq,
        };
        let position = self
            .segments
            .partition_point(|s| s.base_seq <= seq)
            .checked_sub(1)
            .ok_or_else(not_found)?;
        let segment = &self.segments[position];
        let record = segment.get(seq).ok_or_else(not_found)?;
        let payload = SegmentReader::open(&segment.path)?.read_payload(record)?;
        let (path, is_new) = write_quarantine(&self.config.dir, seq, &payload, reason)?;
        if is_new {
            self.quarantined += 1;
        }
        tracing::warn!(seq, reason, path = %path.display(), "quarantined a batch the hub rejected");
        Ok(path)
    }

    /// Current counters and watermarks.
    pub fn stats(&self) -> SpoolStats {
        let acked = self.meta.acked_seq;
        let (mut backlog_batches, mut backlog_bytes) = (0u64, 0u64);
        for segment in &self.segments {
            match segment.records.first() {
                Some(first) if first.seq > acked => {
                    backlog_batches += segment.records.len() as u64;
                    backlog_bytes += segment.record_bytes;
                }
                Some(_) => {
                    let unacked = &segment.records[segment.position_of(acked + 1)..];
                    backlog_batches += unacked.len() as u64;
                    backlog_bytes += unacked.iter().map(|r| u64::from(r.frame_len)).sum::<u64>();
                }
                None => {}
            }
        }
        SpoolStats {
            spooled_seq: self.spooled_seq(),
            durable_seq: self.durable_seq,
            acked_seq: acked,
            backlog_batches,
            backlog_bytes,
            segments: self.segments.len() as u64,
            total_bytes: self.total_bytes,
            unsynced_bytes: self.unsynced_bytes(),
            gap_samples: self.meta.gap_samples,
            dropped_batches: self.meta.dropped_batches,
            quarantined: self.quarantined,
            truncated_bytes: self.truncated_bytes,
        }
    }

    fn check_usable(&self, op: &'static str) -> Result<()> {
        match &self.poisoned {
            None => Ok(()),
            Some(reason) => Err(SpoolError::Poisoned {
                dir: self.config.dir.clone(),
                op,
                reason: reason.clone(),
            }),
        }
    }

    fn poison(&mut self, error: &SpoolError) {
        tracing::error!(%error, "fsync failed, the spool refuses writes until reopened");
        self.poisoned = Some(error.to_string());
    }

    fn check_size(&self, frame_len: usize) -> Result<()> {
        let limit = self.config.max_frame_bytes();
        if frame_len as u64 > limit {
            return Err(SpoolError::RecordTooLarge {
                dir: self.config.dir.clone(),
                bytes: frame_len as u64,
                limit,
            });
        }
        Ok(())
    }

    /// Writes one encoded record, rolling to a new segment first if it
    /// would not fit, and indexes it. Nothing changes on error.
    fn write_frame(&mut self, frame: &[u8], header: &FrameHeader) -> Result<()> {
        debug_assert_eq!(header.seq, self.next_seq);
        let frame_len = frame.len() as u64;
        let full = self.writer.as_ref().is_none_or(|w| {
            let has_records = self.segments.back().is_some_and(|s| !s.records.is_empty());
            has_records && w.len() + frame_len > self.config.segment_bytes
        });
        let writer = match self.writer.as_mut() {
            Some(writer) if !full => writer,
            _ => self.roll()?,
        };
        let offset = writer.append(frame)?;
        let file_len = writer.len();
        if let Some(segment) = self.segments.back_mut() {
            segment.push(RecordMeta::new(offset, header));
            segment.file_len = file_len;
        }
        self.total_bytes += frame_len;
        self.next_seq += 1;
        Ok(())
    }

    /// Seals the active segment (cut any failed write, fsync: its records
    /// become durable) and starts `{next_seq:020}.seg`.
    fn roll(&mut self) -> Result<&mut ActiveWriter> {
        if let Some(writer) = self.writer.as_mut() {
            writer.repair_tail()?;
            if let Err(error) = writer.sync(&self.config.dir) {
                self.poison(&error);
                return Err(error);
            }
            self.durable_seq = self.next_seq - 1;
            self.writer = None;
        }
        let writer = ActiveWriter::create(&self.config.dir, self.next_seq)?;
        let header_len = writer.len();
        self.segments.push_back(SegmentIndex::new(
            self.next_seq,
            writer.path().to_owned(),
            header_len,
        ));
        self.total_bytes += header_len;
        Ok(self.writer.insert(writer))
    }

    /// Appends gap records carrying `gaps` (several if they do not fit in
    /// one).
    fn append_gaps(&mut self, gaps: Vec<Gap>) -> Result<()> {
        let budget = (self.config.max_frame_bytes() as usize)
            .saturating_sub(FRAME_HEADER_LEN + self.identity.len() + BATCH_FIELDS_LEN);
        let mut buf = Vec::new();
        for chunk in chunk_gaps(gaps, budget) {
            let header = encode_record(
                &mut buf,
                &self.identity,
                self.next_seq,
                &[],
                &chunk,
                now_unix_ns(),
            );
            self.check_size(buf.len())?;
            self.write_frame(&buf, &header)?;
        }
        Ok(())
    }
}

fn lock_dir(dir: &std::path::Path) -> Result<File> {
    let path = dir.join(LOCK_FILE);
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| SpoolError::io(FileKind::Lock, &path, "open", e))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(TryLockError::WouldBlock) => Err(SpoolError::Locked { path }),
        Err(TryLockError::Error(error)) => Err(SpoolError::io(FileKind::Lock, path, "lock", error)),
    }
}

fn now_unix_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

//! The retention side of the spool: trimming what the hub acknowledged and,
//! past `max_bytes`, dropping the oldest segments behind a gap record.

use super::error::Result;
use super::gap::plan_drop;
use super::meta::write_meta;
use super::recovery::remove_segment;
use super::{GAP_RECORD_RESERVE, Spool};

impl Spool {
    /// Drops the oldest sealed segments until `incoming` more bytes fit
    /// under `max_bytes`, replacing them by a durable gap record first.
    pub(super) fn make_room(&mut self, incoming: u64) -> Result<()> {
        let max = self.config.max_bytes;
        // Every round drops at least one segment, so this ends; the bound
        // only guards against a bug turning it into a busy loop.
        for _ in 0..=self.segments.len() + 1 {
            if self.total_bytes + incoming <= max {
                return Ok(());
            }
            let sealed = self.segments.len() - usize::from(self.writer.is_some());
            let (mut count, mut freed) = (0usize, 0u64);
            while count < sealed && (self.total_bytes - freed) + incoming + GAP_RECORD_RESERVE > max
            {
                freed += self.segments[count].file_len;
                count += 1;
            }
            if count == 0 {
                // Only the active segment is left; it cannot be dropped.
                return Ok(());
            }
            self.drop_oldest(count)?;
        }
        tracing::warn!(
            total_bytes = self.total_bytes,
            max_bytes = max,
            "spool still above its size bound after dropping segments"
        );
        Ok(())
    }

    /// Replaces the `count` oldest segments by gap records.
    fn drop_oldest(&mut self, count: usize) -> Result<()> {
        let plan = plan_drop(
            self.segments.range(..count),
            self.meta.acked_seq,
            self.config.max_bytes,
        );
        if !plan.gaps.is_empty() {
            self.append_gaps(plan.gaps)?;
            // The gap must be durable before the data it stands for goes.
            self.sync()?;
        }
        for _ in 0..count {
            let Some(segment) = self.segments.pop_front() else {
                break;
            };
            self.total_bytes -= segment.file_len;
            if let Err(error) = remove_segment(&segment.path) {
                // Recovery finishes the drop: the gap record covers it.
                tracing::warn!(%error, "cannot remove a dropped segment");
            }
        }
        self.meta.gap_samples += plan.samples;
        self.meta.dropped_batches += plan.batches;
        self.meta.next_seq = self.meta.next_seq.max(self.durable_seq + 1);
        tracing::warn!(
            segments = count,
            batches = plan.batches,
            samples = plan.samples,
            "spool full, dropped the oldest unacked data and appended a gap record"
        );
        if let Err(error) = write_meta(&self.config.dir, &self.meta) {
            tracing::warn!(%error, "cannot persist the loss counters, will retry at the next ack");
        }
        Ok(())
    }

    /// Deletes the oldest segments the ack watermark fully covers.
    pub(super) fn trim_acked(&mut self) {
        let acked = self.meta.acked_seq;
        while let Some(front) = self.segments.front() {
            let covered = match front.last_seq() {
                Some(last) => last <= acked,
                // A segment whose records were all lost to damage covers
                // the seqs up to the next segment.
                None => self
                    .segments
                    .get(1)
                    .is_some_and(|next| next.base_seq - 1 <= acked),
            };
            if !covered {
                break;
            }
            if self.segments.len() == 1 {
                // The active segment: its records are all acked, hence durable.
                self.writer = None;
            }
            let Some(segment) = self.segments.pop_front() else {
                break;
            };
            self.total_bytes -= segment.file_len;
            if let Err(error) = remove_segment(&segment.path) {
                tracing::warn!(%error, "cannot remove an acked segment, recovery will");
            }
        }
    }
}

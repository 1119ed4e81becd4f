//! In which order the uplink sends the spool's records.
//!
//! Records go out in seq order from the ack watermark up. When the next
//! record is not the seq the hub expects (the spool dropped or lost the
//! records in between), the gap record that reports the loss is sent first:
//! it has a higher seq (it was appended after the loss) but the hub accepts a
//! gap record whose range starts at its next expected seq, then the data
//! after the loss (see `cloud-hub/src/ingest/seq.rs`). A gap record sent
//! early is not sent again when the pass reaches its own seq.

use std::collections::BTreeSet;

use obs_proto::v1::TelemetryBatch;
use prost::Message;

use crate::spool::{Result, Spool, SpoolRecord};

/// A record to publish, and whether it is a gap record sent ahead of its turn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub record: SpoolRecord,
    pub early_gap: bool,
}

/// Where the send pass stands. See the [module docs](self).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendCursor {
    /// The next seq to read from the spool.
    next_seq: u64,
    /// The seq the hub needs next if it received everything sent so far.
    expected: u64,
    /// Gap records sent ahead of their turn in this pass.
    sent_early: BTreeSet<u64>,
}

impl SendCursor {
    /// A pass starting above the ack watermark `acked`.
    pub fn new(acked: u64) -> Self {
        SendCursor {
            next_seq: acked + 1,
            expected: acked + 1,
            sent_early: BTreeSet::new(),
        }
    }

    /// Starts over above `acked`: everything unacked is sent again.
    pub fn rewind(&mut self, acked: u64) {
        *self = SendCursor::new(acked);
    }

    /// The hub acknowledged everything up to `acked`.
    pub fn on_ack(&mut self, acked: u64) {
        if self.next_seq <= acked {
            self.next_seq = acked + 1;
        }
        self.expected = self.expected.max(acked + 1);
        self.sent_early.retain(|seq| *seq > acked);
    }

    /// The next seq the pass will read.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// The next records to publish, at most about `max_records` (a gap
    /// record sent early may add one per loss) and `max_bytes` of payload.
    pub fn next_records(
        &mut self,
        spool: &Spool,
        max_records: usize,
        max_bytes: usize,
    ) -> Result<Vec<Outgoing>> {
        let mut out = Vec::new();
        if max_records == 0 {
            return Ok(out);
        }
        for record in spool.read_from(self.next_seq, max_records, max_bytes)? {
            self.next_seq = record.seq + 1;
            if self.sent_early.contains(&record.seq) {
                self.expected = record.seq + 1;
                continue;
            }
            if record.seq > self.expected {
                self.gaps_first(spool, record.seq, &mut out)?;
            }
            self.expected = record.seq + 1;
            out.push(Outgoing {
                record,
                early_gap: false,
            });
        }
        Ok(out)
    }

    /// Pushes the unsent gap records at or after `from_seq` that report
    /// the loss starting at `self.expected`.
    fn gaps_first(&mut self, spool: &Spool, from_seq: u64, out: &mut Vec<Outgoing>) -> Result<()> {
        let mut found = false;
        for seq in spool.gap_seqs_from(from_seq) {
            if self.sent_early.contains(&seq) {
                continue;
            }
            let Some(record) = spool
                .read_from(seq, 1, usize::MAX)?
                .into_iter()
                .find(|r| r.seq == seq)
            else {
                continue;
            };
            if reports_loss_at(&record.payload, self.expected) {
                found = true;
                self.sent_early.insert(seq);
                out.push(Outgoing {
                    record,
                    early_gap: true,
                });
            }
        }
        if !found {
            tracing::warn!(
                expected = self.expected,
                next = from_seq,
                "seqs are missing from the spool and no gap record reports them"
            );
        }
        Ok(())
    }
}

/// Whether the gap record `payload` reports a loss the hub can connect at
/// `next` (the rule of the hub's `SeqTracker`).
fn reports_loss_at(payload: &[u8], next: u64) -> bool {
    match TelemetryBatch::decode(payload) {
        Ok(batch) => {
            batch.samples.is_empty()
                && batch
                    .gaps
                    .iter()
                    .any(|g| g.first_seq <= next && next <= g.last_seq.saturating_add(1))
        }
        Err(error) => {
            tracing::warn!(%error, "a gap record in the spool does not decode");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use obs_proto::v1::Sample;

    use super::*;
    use crate::spool::SpoolConfig;

    fn samples(n: usize) -> Vec<Sample> {
        (0..n)
            .map(|i| Sample {
                device: "weather/station/1".into(),
                attribute: "wind_speed".into(),
                ts_unix_ns: 1_700_000_000_000_000_000 + i as i64,
                ..Sample::default()
            })
            .collect()
    }

    fn seqs(out: &[Outgoing]) -> Vec<(u64, bool)> {
        out.iter().map(|o| (o.record.seq, o.early_gap)).collect()
    }

    #[test]
    fn without_loss_records_go_in_seq_order_from_the_watermark() {
        let dir = tempfile::tempdir().unwrap();
        let (mut spool, _) = Spool::open(SpoolConfig::new(dir.path(), "nrt", "n1")).unwrap();
        for _ in 0..5 {
            spool.append(&samples(3)).unwrap();
        }
        spool.sync().unwrap();
        spool.ack(2).unwrap();
        let mut cursor = SendCursor::new(2);
        let first = cursor.next_records(&spool, 2, usize::MAX).unwrap();
        assert_eq!(seqs(&first), vec![(3, false), (4, false)]);
        let rest = cursor.next_records(&spool, 10, usize::MAX).unwrap();
        assert_eq!(seqs(&rest), vec![(5, false)]);
        assert!(
            cursor
                .next_records(&spool, 10, usize::MAX)
                .unwrap()
                .is_empty()
        );
        cursor.rewind(3);
        let again = cursor.next_records(&spool, 10, usize::MAX).unwrap();
        assert_eq!(seqs(&again), vec![(4, false), (5, false)]);
    }

    #[test]
    fn the_gap_record_goes_before_the_data_after_a_loss_and_only_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = SpoolConfig::new(dir.path(), "nrt", "n1");
        config.segment_bytes = 4096;
        config.max_bytes = 3 * 4096;
        let (mut spool, _) = Spool::open(config).unwrap();
        // Nothing is acked: appending past max_bytes drops the oldest
        // segments and appends a gap record for them.
        while spool.stats().dropped_batches == 0 {
            spool.append(&samples(10)).unwrap();
        }
        for _ in 0..3 {
            spool.append(&samples(10)).unwrap();
        }
        spool.sync().unwrap();
        let gap_seqs = spool.gap_seqs_from(1);
        assert_eq!(gap_seqs.len(), 1, "one drop, one gap record");
        let gap_seq = gap_seqs[0];
        let all = spool.read_from(1, 10_000, usize::MAX).unwrap();
        let first_data = all[0].seq;
        assert!(first_data > 1, "the oldest records were dropped");

        let mut cursor = SendCursor::new(0);
        let mut sent = Vec::new();
        loop {
            let batch = cursor.next_records(&spool, 4, usize::MAX).unwrap();
            if batch.is_empty() {
                break;
            }
            sent.extend(batch);
        }
        assert_eq!(
            (sent[0].record.seq, sent[0].early_gap),
            (gap_seq, true),
            "the gap record leads"
        );
        assert!(sent[0].record.is_gap);
        assert_eq!(sent[1].record.seq, first_data);
        let order: Vec<u64> = sent.iter().map(|o| o.record.seq).collect();
        assert_eq!(
            order.iter().filter(|s| **s == gap_seq).count(),
            1,
            "not sent again at its own place: {order:?}"
        );
        let mut expected: Vec<u64> = all.iter().map(|r| r.seq).collect();
        expected.retain(|s| *s != gap_seq);
        expected.insert(0, gap_seq);
        assert_eq!(order, expected);

        // The hub's rule accepts it first and then the data in order.
        let decoded = TelemetryBatch::decode(sent[0].record.payload.as_slice()).unwrap();
        assert!(
            decoded
                .gaps
                .iter()
                .any(|g| g.first_seq == 1 && g.last_seq == first_data - 1)
        );
    }
}

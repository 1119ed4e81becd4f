//! Which batches of a node have been accounted for: the contiguous prefix of
//! sequence numbers, plus what arrived ahead of it (gap records, which the
//! fog-node sends before the data that follows a loss).

use std::collections::BTreeMap;

use obs_proto::v1::TelemetryBatch;
use serde::{Deserialize, Serialize};

/// Most ranges a tracker keeps ahead of its contiguous prefix; more are refused
/// until the prefix catches up, so a misbehaving node cannot grow hub memory.
pub const MAX_AHEAD: usize = 4096;

/// What to do with a batch, given what was accounted for before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The next batch (or a gap record that connects): take it.
    Accept,
    /// Already accounted for: acknowledge again, store nothing.
    Duplicate,
    /// Something before it is missing; the node will resend in order.
    Ahead {
        /// The sequence number that is missing.
        expected: u64,
    },
}

/// Sequence numbers of one node that are durable (or otherwise settled:
/// rejected, or reported lost by a gap record).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeqTracker {
    /// Every seq `<= upto` is settled.
    upto: u64,
    /// Settled ranges above `upto + 1`, first -> last (inclusive).
    ahead: BTreeMap<u64, u64>,
}

impl SeqTracker {
    /// A tracker for a node seen for the first time: the node never resends
    /// below what it was acknowledged, so its own `acked_seq` is the start.
    pub fn starting_at(acked_seq: u64) -> Self {
        SeqTracker {
            upto: acked_seq,
            ahead: BTreeMap::new(),
        }
    }

    /// Highest seq such that it and every lower one is settled: the value a
    /// hub `Ack` carries.
    pub fn upto(&self) -> u64 {
        self.upto
    }

    /// Whether `seq` was already settled.
    pub fn contains(&self, seq: u64) -> bool {
        seq <= self.upto
            || self
                .ahead
                .range(..=seq)
                .next_back()
                .is_some_and(|(_, last)| seq <= *last)
    }

    /// How to treat `batch`.
    pub fn decide(&self, batch: &TelemetryBatch) -> Decision {
        if self.contains(batch.seq) {
            return Decision::Duplicate;
        }
        let next = self.upto + 1;
        if batch.seq == next || is_gap_record_from(batch, next) {
            return Decision::Accept;
        }
        Decision::Ahead { expected: next }
    }

    /// Marks `batch` settled: its own seq and, for a gap record, the ranges it
    /// reports lost. Call only after [`decide`](Self::decide) said Accept.
    pub fn settle(&mut self, batch: &TelemetryBatch) {
        for gap in &batch.gaps {
            if gap.first_seq <= gap.last_seq {
                self.insert(gap.first_seq, gap.last_seq);
            }
        }
        self.insert(batch.seq, batch.seq);
    }

    /// Marks a single seq settled (a rejected batch).
    pub fn settle_seq(&mut self, seq: u64) {
        self.insert(seq, seq);
    }

    /// Whether a range can still be recorded ahead of the prefix.
    pub fn has_room(&self) -> bool {
        self.ahead.len() < MAX_AHEAD
    }

    fn insert(&mut self, first: u64, last: u64) {
        if last <= self.upto {
            return;
        }
        let first = first.max(self.upto + 1);
        let entry = self.ahead.entry(first).or_insert(last);
        *entry = (*entry).max(last);
        self.advance();
    }

    fn advance(&mut self) {
        while let Some((&first, &last)) = self.ahead.first_key_value() {
            if first > self.upto + 1 {
                break;
            }
            self.ahead.remove(&first);
            self.upto = self.upto.max(last);
        }
    }
}

/// A batch that only reports losses and whose first lost seq is `next` or
/// earlier: it connects to the settled prefix even though its own seq is
/// higher (the fog-node sends it before the data that follows the loss).
fn is_gap_record_from(batch: &TelemetryBatch, next: u64) -> bool {
    batch.samples.is_empty()
        && batch
            .gaps
            .iter()
            .any(|gap| gap.first_seq <= next && next <= gap.last_seq.saturating_add(1))
}

#[cfg(test)]
mod tests {
    use obs_proto::v1::Gap;
    use proptest::prelude::*;

    use super::*;

    fn data(seq: u64) -> TelemetryBatch {
        TelemetryBatch {
            seq,
            samples: vec![Default::default()],
            ..Default::default()
        }
    }

    fn gap_record(seq: u64, first: u64, last: u64) -> TelemetryBatch {
        TelemetryBatch {
            seq,
            gaps: vec![Gap {
                first_seq: first,
                last_seq: last,
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn in_order_batches_advance_and_repeats_are_duplicates() {
        let mut tracker = SeqTracker::starting_at(0);
        for seq in 1..=3 {
            assert_eq!(tracker.decide(&data(seq)), Decision::Accept);
            tracker.settle(&data(seq));
        }
        assert_eq!(tracker.upto(), 3);
        assert_eq!(tracker.decide(&data(2)), Decision::Duplicate);
        assert_eq!(tracker.decide(&data(5)), Decision::Ahead { expected: 4 });
    }

    #[test]
    fn a_gap_record_sent_first_bridges_the_loss_and_is_not_taken_twice() {
        // 1..=3 acked; 4..=10 dropped by the spool; 11..=20 survive; the gap
        // record has seq 21 and arrives before 11.
        let mut tracker = SeqTracker::starting_at(3);
        assert_eq!(tracker.decide(&data(11)), Decision::Ahead { expected: 4 });
        let gap = gap_record(21, 4, 10);
        assert_eq!(tracker.decide(&gap), Decision::Accept);
        tracker.settle(&gap);
        assert_eq!(tracker.upto(), 10);
        for seq in 11..=20 {
            assert_eq!(tracker.decide(&data(seq)), Decision::Accept, "seq {seq}");
            tracker.settle(&data(seq));
        }
        assert_eq!(tracker.upto(), 21, "the early gap record closes the prefix");
        assert_eq!(tracker.decide(&gap), Decision::Duplicate);
    }

    #[test]
    fn a_gap_record_that_does_not_connect_waits() {
        let tracker = SeqTracker::starting_at(3);
        assert_eq!(
            tracker.decide(&gap_record(30, 6, 10)),
            Decision::Ahead { expected: 4 }
        );
    }

    #[test]
    fn a_first_contact_starts_at_the_nodes_ack() {
        let tracker = SeqTracker::starting_at(41);
        assert_eq!(tracker.decide(&data(41)), Decision::Duplicate);
        assert_eq!(tracker.decide(&data(42)), Decision::Accept);
    }

    proptest! {
        /// Whatever order and repetition batches arrive in, re-sent in order
        /// until settled, each seq is accepted exactly once and the prefix
        /// ends at the last seq.
        #[test]
        fn every_seq_is_accepted_exactly_once(
            order in proptest::collection::vec(1u64..=30, 0..200)
        ) {
            let mut tracker = SeqTracker::starting_at(0);
            let mut accepted = vec![0u32; 31];
            let arrivals = order.into_iter().chain(1..=30);
            for seq in arrivals {
                if tracker.decide(&data(seq)) == Decision::Accept {
                    accepted[seq as usize] += 1;
                    tracker.settle(&data(seq));
                }
            }
            prop_assert_eq!(tracker.upto(), 30);
            prop_assert!(accepted[1..].iter().all(|n| *n == 1), "{:?}", accepted);
        }
    }
}

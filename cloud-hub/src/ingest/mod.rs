//! Turning telemetry batches into rows exactly once, shared by every
//! deployment mode.
//!
//! A site's batches are applied one at a time, in sequence order per node,
//! by exactly one task of the hub (the embedded ingest, or the Kafka sink).
//! [`SiteState`] is everything that task carries from one batch to the next:
//! which sequence numbers are settled, the counters of `ingest_progress`,
//! the rollup buckets being filled and the running exposure totals. Applying
//! a batch to a state yields the rows to write ([`BatchWrites`]) and the next
//! state; a store writes the rows and then the state. Every row is an
//! absolute value derived from the state, so replaying a batch after a crash
//! rewrites the same rows, and the state written last decides whether the
//! batch counts as applied.

pub mod exposure;
pub mod maintenance;
pub mod rollup;
pub mod seq;
mod validate;
pub mod view;

use std::collections::BTreeMap;

use obs_proto::v1::{Sample, TelemetryBatch};
use serde::{Deserialize, Serialize};

pub use self::exposure::{ExposureRow, ExposureTotals};
pub use self::rollup::{Aggregate, LateBucket, Resolution, RollupRow, SeriesKey};
pub use self::seq::{Decision, SeqTracker};
pub use self::validate::{BatchLimits, Rejection, check_batch};
pub use self::view::BatchView;

/// Counters kept in `ingest_progress` for a site.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IngestCounters {
    pub samples_stored: u64,
    pub batches_stored: u64,
    pub gaps: u64,
    pub gap_samples: u64,
    pub rejected_batches: u64,
    /// Samples older than their series' open rollup bucket (their buckets
    /// were recomputed from raw samples).
    pub late_samples: u64,
    pub last_sample_ts_ns: i64,
    pub last_batch_created_ns: i64,
}

/// What the single writer of a site carries between batches.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SiteState {
    nodes: BTreeMap<String, SeqTracker>,
    pub counters: IngestCounters,
    rollups: rollup::OpenBuckets,
    exposure: exposure::ExposureState,
}

/// Rows derived from one batch, besides its raw samples.
#[derive(Debug, Default)]
pub struct BatchWrites {
    /// The newest sample of each series (on equal times the later one in
    /// the batch): its `latest` row.
    pub latest: Vec<Sample>,
    pub rollups: Vec<RollupRow>,
    /// Buckets to recompute from raw samples (late data).
    pub late: Vec<LateBucket>,
    pub exposure: Vec<ExposureRow>,
}

impl SiteState {
    /// How to treat `batch` given what this site has settled.
    pub fn decide(&self, batch: &TelemetryBatch) -> Decision {
        match self.nodes.get(&batch.node_id) {
            Some(tracker) => {
                let decision = tracker.decide(batch);
                if decision == Decision::Accept
                    && batch.seq > tracker.upto() + 1
                    && !tracker.has_room()
                {
                    return Decision::Ahead {
                        expected: tracker.upto() + 1,
                    };
                }
                decision
            }
            None => SeqTracker::starting_at(batch.acked_seq).decide(batch),
        }
    }

    /// The highest seq of `node_id` up to which everything is settled.
    pub fn settled_upto(&self, node_id: &str) -> Option<u64> {
        self.nodes.get(node_id).map(SeqTracker::upto)
    }

    /// The highest settled seq over the site's nodes.
    pub fn highest_settled(&self) -> u64 {
        self.nodes.values().map(SeqTracker::upto).max().unwrap_or(0)
    }

    /// Applies an accepted batch: settles its seq (and the seqs its gap
    /// records report lost), counts it, and returns the rows it adds.
    pub fn accept(&mut self, batch: &TelemetryBatch) -> BatchWrites {
        self.tracker(batch).settle(batch);
        let counters = &mut self.counters;
        counters.samples_stored += batch.samples.len() as u64;
        counters.batches_stored += 1;
        counters.gaps += batch.gaps.len() as u64;
        counters.gap_samples += batch.gaps.iter().map(|g| g.samples).sum::<u64>();
        counters.last_batch_created_ns = counters.last_batch_created_ns.max(batch.created_unix_ns);
        if let Some(latest) = batch.samples.iter().map(|s| s.ts_unix_ns).max() {
            counters.last_sample_ts_ns = counters.last_sample_ts_ns.max(latest);
        }
        let rollups = self.rollups.apply(&batch.samples);
        self.counters.late_samples += rollups.late_samples;
        BatchWrites {
            latest: latest_per_series(&batch.samples),
            rollups: rollups.rows,
            late: rollups.late,
            exposure: self.exposure.apply(&batch.samples),
        }
    }

    /// Settles a batch that will never be stored (rejected as invalid), so
    /// that the acknowledgements can move past it.
    pub fn reject(&mut self, batch: &TelemetryBatch) {
        self.tracker(batch).settle_seq(batch.seq);
        self.counters.rejected_batches += 1;
    }

    /// Running exposure totals per mirror position.
    pub fn exposure_totals(&self) -> &BTreeMap<u32, ExposureTotals> {
        self.exposure.totals()
    }

    fn tracker(&mut self, batch: &TelemetryBatch) -> &mut SeqTracker {
        self.nodes
            .entry(batch.node_id.clone())
            .or_insert_with(|| SeqTracker::starting_at(batch.acked_seq))
    }
}

/// The newest sample of each series in `samples` (on equal times the later
/// one, as the stores' `latest` keeps it).
fn latest_per_series(samples: &[Sample]) -> Vec<Sample> {
    let mut latest: BTreeMap<(&str, &str), &Sample> = BTreeMap::new();
    for sample in samples {
        let slot = latest
            .entry((sample.device.as_str(), sample.attribute.as_str()))
            .or_insert(sample);
        if sample.ts_unix_ns >= slot.ts_unix_ns {
            *slot = sample;
        }
    }
    latest.into_values().cloned().collect()
}

#[cfg(test)]
mod tests {
    use obs_proto::v1::{Gap, Sample, sample};

    use super::*;

    fn batch(seq: u64, samples: usize) -> TelemetryBatch {
        TelemetryBatch {
            site: "nrt".into(),
            node_id: "n1".into(),
            seq,
            samples: (0..samples)
                .map(|i| Sample {
                    device: "m1/segment/01".into(),
                    attribute: "glass_temperature".into(),
                    ts_unix_ns: (seq as i64 * 100 + i as i64) * 1_000_000_000,
                    value: Some(sample::Value::DoubleValue(4.0)),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn accepted_batches_are_counted_once_and_replays_are_duplicates() {
        let mut state = SiteState::default();
        for seq in 1..=3 {
            assert_eq!(state.decide(&batch(seq, 5)), Decision::Accept);
            let writes = state.accept(&batch(seq, 5));
            assert_eq!(writes.rollups.len(), 2, "minute + hour of one series");
        }
        assert_eq!(state.decide(&batch(2, 5)), Decision::Duplicate);
        assert_eq!(state.counters.samples_stored, 15);
        assert_eq!(state.counters.batches_stored, 3);
        assert_eq!(state.settled_upto("n1"), Some(3));
    }

    #[test]
    fn gap_records_are_counted_and_rejections_settle() {
        let mut state = SiteState::default();
        state.accept(&batch(1, 1));
        let gap = TelemetryBatch {
            gaps: vec![Gap {
                first_seq: 2,
                last_seq: 4,
                samples: 30,
                ..Default::default()
            }],
            ..batch(7, 0)
        };
        assert_eq!(state.decide(&gap), Decision::Accept);
        state.accept(&gap);
        assert_eq!((state.counters.gaps, state.counters.gap_samples), (1, 30));
        assert_eq!(state.settled_upto("n1"), Some(4));
        state.reject(&batch(5, 1));
        assert_eq!(state.decide(&batch(6, 1)), Decision::Accept);
        state.accept(&batch(6, 1));
        assert_eq!(state.settled_upto("n1"), Some(7));
        assert_eq!(state.counters.rejected_batches, 1);
    }

    #[test]
    fn state_survives_a_json_round_trip() {
        let mut state = SiteState::default();
        state.accept(&batch(1, 3));
        let text = serde_json::to_string(&state).unwrap();
        let back: SiteState = serde_json::from_str(&text).unwrap();
        assert_eq!(back, state);
    }

    fn point(device: &str, ts: i64, value: f64) -> Sample {
        Sample {
            device: device.into(),
            attribute: "a".into(),
            ts_unix_ns: ts,
            value: Some(obs_proto::v1::sample::Value::DoubleValue(value)),
            ..Default::default()
        }
    }

    #[test]
    fn the_newest_sample_of_each_series_is_kept() {
        let samples = [
            point("d1", 5, 1.0),
            point("d1", 9, 2.0),
            point("d1", 7, 3.0),
            point("d1", 9, 4.0),
            point("d2", 1, 5.0),
        ];
        let latest: Vec<(String, i64, Option<f64>)> = latest_per_series(&samples)
            .into_iter()
            .map(|s| (s.device.clone(), s.ts_unix_ns, rollup::numeric_value(&s)))
            .collect();
        assert_eq!(
            latest,
            vec![("d1".into(), 9, Some(4.0)), ("d2".into(), 1, Some(5.0))]
        );
    }
}

//! 1-minute and 1-hour rollups (min, max, sum, count) of numeric series.
//!
//! Batches of a site are applied in sequence order, so the hub keeps the
//! bucket each series is currently filling and writes it as an absolute
//! value after every batch: replaying a batch from the same state writes the
//! same rows again. A sample older than its series' current bucket (late
//! data) cannot be folded in that way; its bucket is recomputed from the raw
//! samples instead.

use std::collections::BTreeMap;

use obs_proto::v1::{Sample, sample};
use serde::{Deserialize, Serialize};

/// Bucket widths.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Resolution {
    Minute,
    Hour,
}

impl Resolution {
    /// Width in seconds.
    pub const fn seconds(self) -> i64 {
        match self {
            Resolution::Minute => 60,
            Resolution::Hour => 3600,
        }
    }

    /// Start (Unix seconds) of the bucket holding `ts_unix_ns`.
    pub fn bucket_start(self, ts_unix_ns: i64) -> i64 {
        ts_unix_ns
            .div_euclid(1_000_000_000)
            .div_euclid(self.seconds())
            * self.seconds()
    }
}

/// min, max, sum and count of the numeric samples in a bucket.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Aggregate {
    pub min: f64,
    pub max: f64,
    pub sum: f64,
    pub count: u64,
}

impl Aggregate {
    /// The aggregate of one value.
    pub fn of(value: f64) -> Self {
        Aggregate {
            min: value,
            max: value,
            sum: value,
            count: 1,
        }
    }

    /// Folds one more value in.
    pub fn add(&mut self, value: f64) {
        self.min = self.min.min(value);
        self.max = self.max.max(value);
        self.sum += value;
        self.count += 1;
    }

    /// Folds another aggregate in.
    pub fn merge(&mut self, other: &Aggregate) {
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        self.sum += other.sum;
        self.count += other.count;
    }
}

/// The numeric value of a sample, if it has one that can be aggregated:
/// doubles and integers as they are, booleans as 0/1; strings and
/// non-finite numbers have none.
pub fn numeric_value(sample: &Sample) -> Option<f64> {
    let value = match sample.value.as_ref()? {
        sample::Value::DoubleValue(v) => *v,
        sample::Value::IntValue(v) => *v as f64,
        sample::Value::BoolValue(v) => f64::from(u8::from(*v)),
        sample::Value::StringValue(_) => return None,
    };
    value.is_finite().then_some(value)
}

/// A series: one attribute of one device.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SeriesKey {
    pub device: String,
    pub attribute: String,
}

impl SeriesKey {
    pub fn of(sample: &Sample) -> Self {
        SeriesKey {
            device: sample.device.clone(),
            attribute: sample.attribute.clone(),
        }
    }
}

/// One rollup row to write (absolute value).
#[derive(Debug, Clone, PartialEq)]
pub struct RollupRow {
    pub series: SeriesKey,
    pub resolution: Resolution,
    /// Bucket start, Unix seconds.
    pub bucket_start: i64,
    pub aggregate: Aggregate,
}

/// A bucket whose stored rollup must be recomputed from raw samples because
/// late data arrived for it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct LateBucket {
    pub series: SeriesKey,
    pub resolution: Resolution,
    pub bucket_start: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct OpenBucket {
    start: i64,
    aggregate: Option<Aggregate>,
}

/// The bucket each series is currently filling, per resolution.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OpenBuckets {
    // serde_json needs string keys; the series is kept as "device\u{1f}attribute".
    buckets: BTreeMap<String, [OpenBucket; 2]>,
}

/// Rows written and late buckets found while folding one batch in.
#[derive(Debug, Default)]
pub struct RollupOutput {
    pub rows: Vec<RollupRow>,
    pub late: Vec<LateBucket>,
    pub late_samples: u64,
}

const SEP: char = '\u{1f}';

impl OpenBuckets {
    /// Number of series with an open bucket.
    pub fn series(&self) -> usize {
        self.buckets.len()
    }

    /// Folds the numeric samples of a batch in and returns the rows to write.
    pub fn apply(&mut self, samples: &[Sample]) -> RollupOutput {
        let mut out = RollupOutput::default();
        // Per series, whether this batch changed its minute and hour bucket.
        let mut dirty: BTreeMap<String, [bool; 2]> = BTreeMap::new();
        let mut late: BTreeMap<LateBucket, ()> = BTreeMap::new();
        // One buffer for the series key (every stored sample is folded in).
        let mut key = String::new();
        for sample in samples {
            let Some(value) = numeric_value(sample) else {
                continue;
            };
            key.clear();
            key.push_str(&sample.device);
            key.push(SEP);
            key.push_str(&sample.attribute);
            if !self.buckets.contains_key(&key) {
                self.buckets.insert(key.clone(), Default::default());
            }
            if !dirty.contains_key(&key) {
                dirty.insert(key.clone(), [false; 2]);
            }
            let (Some(buckets), Some(flags)) = (self.buckets.get_mut(&key), dirty.get_mut(&key))
            else {
                continue;
            };
            let mut was_late = false;
            for (index, resolution) in [Resolution::Minute, Resolution::Hour]
                .into_iter()
                .enumerate()
            {
                let start = resolution.bucket_start(sample.ts_unix_ns);
                let bucket = &mut buckets[index];
                match (&mut bucket.aggregate, start.cmp(&bucket.start)) {
                    (None, _) | (Some(_), std::cmp::Ordering::Greater) => {
                        // A bucket this batch touched is complete: write it now.
                        let touched = std::mem::take(&mut flags[index]);
                        if let (Some(aggregate), true) = (bucket.aggregate, touched) {
                            out.rows.push(RollupRow {
                                series: SeriesKey::of(sample),
                                resolution,
                                bucket_start: bucket.start,
                                aggregate,
                            });
                        }
                        *bucket = OpenBucket {
                            start,
                            aggregate: Some(Aggregate::of(value)),
                        };
                    }
                    (Some(aggregate), std::cmp::Ordering::Equal) => aggregate.add(value),
                    (Some(_), std::cmp::Ordering::Less) => {
                        was_late = true;
                        late.insert(
                            LateBucket {
                                series: SeriesKey::of(sample),
                                resolution,
                                bucket_start: start,
                            },
                            (),
                        );
                        continue;
                    }
                }
                flags[index] = true;
            }
            out.late_samples += u64::from(was_late);
        }
        let touched = dirty
            .iter()
            .flat_map(|(key, flags)| (0..2).filter(|&i| flags[i]).map(move |i| (key, i)));
        for (key, index) in touched {
            let Some(bucket) = self.buckets.get(key).map(|b| &b[index]) else {
                continue;
            };
            let (Some(aggregate), Some((device, attribute))) =
                (bucket.aggregate, key.split_once(SEP))
            else {
                continue;
            };
            out.rows.push(RollupRow {
                series: SeriesKey {
                    device: device.to_owned(),
                    attribute: attribute.to_owned(),
                },
                resolution: if index == 0 {
                    Resolution::Minute
                } else {
                    Resolution::Hour
                },
                bucket_start: bucket.start,
                aggregate,
            });
        }
        out.late = late.into_keys().collect();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(attribute: &str, ts_s: i64, value: f64) -> Sample {
        Sample {
            device: "weather/station/1".into(),
            attribute: attribute.into(),
            ts_unix_ns: ts_s * 1_000_000_000,
            value: Some(sample::Value::DoubleValue(value)),
            ..Default::default()
        }
    }

    fn row(out: &RollupOutput, resolution: Resolution, start: i64) -> Aggregate {
        out.rows
            .iter()
            .find(|r| r.resolution == resolution && r.bucket_start == start)
            .map(|r| r.aggregate)
            .unwrap_or_else(|| panic!("no {resolution:?} row at {start}: {:?}", out.rows))
    }

    #[test]
    fn rows_are_absolute_and_carry_over_batches() {
        let mut open = OpenBuckets::default();
        let out = open.apply(&[sample("rh", 0, 10.0), sample("rh", 30, 20.0)]);
        assert_eq!(
            row(&out, Resolution::Minute, 0),
            Aggregate {
                min: 10.0,
                max: 20.0,
                sum: 30.0,
                count: 2
            }
        );
        // The next batch continues minute 0 and opens minute 60.
        let out = open.apply(&[sample("rh", 45, 5.0), sample("rh", 60, 7.0)]);
        assert_eq!(row(&out, Resolution::Minute, 0).count, 3);
        assert_eq!(row(&out, Resolution::Minute, 0).min, 5.0);
        assert_eq!(row(&out, Resolution::Minute, 60), Aggregate::of(7.0));
        assert_eq!(row(&out, Resolution::Hour, 0).count, 4);
        assert_eq!(row(&out, Resolution::Hour, 0).sum, 42.0);
    }

    #[test]
    fn replaying_from_the_same_state_writes_the_same_rows() {
        let mut open = OpenBuckets::default();
        open.apply(&[sample("rh", 0, 10.0)]);
        let before = open.clone();
        let batch = [sample("rh", 10, 11.0), sample("dust", 10, 3.0)];
        let first = open.apply(&batch);
        let mut again = before;
        let second = again.apply(&batch);
        assert_eq!(first.rows, second.rows);
        assert_eq!(open, again);
    }

    #[test]
    fn late_samples_ask_for_a_recomputation() {
        let mut open = OpenBuckets::default();
        open.apply(&[sample("rh", 120, 1.0)]);
        let out = open.apply(&[sample("rh", 30, 2.0)]);
        assert_eq!(out.late_samples, 1);
        assert_eq!(
            out.late
                .iter()
                .map(|l| (l.resolution, l.bucket_start))
                .collect::<Vec<_>>(),
            vec![(Resolution::Minute, 0)],
            "the hour bucket is still open and takes the sample"
        );
        assert_eq!(row(&out, Resolution::Hour, 0).count, 2);
    }

    #[test]
    fn strings_and_non_finite_values_are_not_aggregated() {
        let mut open = OpenBuckets::default();
        let mut text = sample("state", 0, 0.0);
        text.value = Some(sample::Value::StringValue("OPEN".into()));
        let out = open.apply(&[text, sample("rh", 0, f64::NAN)]);
        assert!(out.rows.is_empty());
        assert_eq!(open.series(), 0);
    }

    proptest::proptest! {
        /// However in-order samples are cut into batches, the last row written
        /// for each bucket equals the aggregate of the raw samples in it.
        #[test]
        fn rows_equal_a_recomputation_from_raw_samples(
            steps in proptest::collection::vec((1i64..90, -50.0f64..50.0), 1..300),
            cuts in proptest::collection::vec(1usize..40, 1..40),
        ) {
            let mut t = 0;
            let samples: Vec<Sample> = steps
                .iter()
                .map(|(dt, v)| {
                    t += dt;
                    sample(if t % 2 == 0 { "a" } else { "b" }, t, *v)
                })
                .collect();
            let mut open = OpenBuckets::default();
            let mut written = std::collections::BTreeMap::new();
            let mut rest = samples.as_slice();
            for cut in cuts.iter().cycle() {
                if rest.is_empty() {
                    break;
                }
                let (batch, tail) = rest.split_at((*cut).min(rest.len()));
                rest = tail;
                for row in open.apply(batch).rows {
                    written.insert((row.series.attribute.clone(), row.resolution, row.bucket_start), row.aggregate);
                }
            }
            let mut expected: std::collections::BTreeMap<_, Aggregate> = std::collections::BTreeMap::new();
            for s in &samples {
                let Some(v) = numeric_value(s) else { continue };
                for resolution in [Resolution::Minute, Resolution::Hour] {
                    expected
                        .entry((s.attribute.clone(), resolution, resolution.bucket_start(s.ts_unix_ns)))
                        .and_modify(|a| a.add(v))
                        .or_insert_with(|| Aggregate::of(v));
                }
            }
            proptest::prop_assert_eq!(written.len(), expected.len());
            for (key, want) in expected {
                let got = written[&key];
                proptest::prop_assert_eq!((got.min, got.max, got.count), (want.min, want.max, want.count));
                proptest::prop_assert!((got.sum - want.sum).abs() < 1e-9);
            }
        }
    }

    #[test]
    fn buckets_of_negative_times_floor() {
        assert_eq!(Resolution::Minute.bucket_start(-1), -60);
        assert_eq!(Resolution::Hour.bucket_start(3_600_000_000_001), 3600);
    }
}

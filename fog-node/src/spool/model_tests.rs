//! Property test: random appends, syncs, acks, crashes and tail corruption
//! against a model of what the hub must end up with.
//!
//! The model knows every sample appended (by a unique id in `ts_unix_ns`)
//! and under which seq. A simulated uplink reads durable records above the
//! ack watermark and acks them. At the end every sample that was ever
//! durable (and not deliberately destroyed) must have been delivered exactly
//! once, in order, or be inside the seq range of a delivered gap whose
//! sample counts add up exactly.

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};

use obs_proto::v1::{Gap, GapReason, TelemetryBatch};
use proptest::prelude::*;
use prost::Message;

use super::segment::SEGMENT_HEADER_LEN;
use super::tests::{config, sample};
use super::*;

#[derive(Debug, Clone)]
enum Op {
    /// Append a batch of this many samples.
    Append(usize),
    Sync,
    /// Read and ack up to a point between the watermark and the durable
    /// seq (selector / 255 of the way).
    Ack(u8),
    /// Drop the spool without syncing and lose a random part of the
    /// unsynced tail (or the whole never-synced active file), then reopen.
    Crash(u16),
    /// Sync, then flip a byte of the newest record on disk, then reopen.
    CorruptTail(u16),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        10 => (1usize..=12).prop_map(Op::Append),
        3 => Just(Op::Sync),
        3 => any::<u8>().prop_map(Op::Ack),
        1 => any::<u16>().prop_map(Op::Crash),
        1 => any::<u16>().prop_map(Op::CorruptTail),
    ]
}

#[derive(Default)]
struct Model {
    /// Sample ids of records appended and not yet delivered, by seq.
    pending: BTreeMap<u64, Vec<i64>>,
    /// Sample ids delivered, in delivery order.
    delivered: Vec<i64>,
    /// Gaps delivered in gap records.
    gaps: Vec<Gap>,
    /// Highest seq delivered so far.
    last_delivered_seq: u64,
    /// Every seq up to here was durable at some point and must not be reused.
    durable_floor: u64,
    next_id: i64,
}

impl Model {
    /// Reads everything durable above the watermark up to `target` and
    /// acks `target`, checking each record against what was appended.
    fn deliver(&mut self, spool: &mut Spool, target: u64) {
        loop {
            let from = self.last_delivered_seq.max(spool.acked_seq()) + 1;
            let records = spool.read_from(from, 3, usize::MAX).unwrap();
            let mut progressed = false;
            for record in records.iter().filter(|r| r.seq <= target) {
                progressed = true;
                assert!(record.seq > self.last_delivered_seq, "order");
                self.last_delivered_seq = record.seq;
                let batch = TelemetryBatch::decode(record.payload.as_slice()).unwrap();
                assert_eq!(batch.seq, record.seq);
                if record.is_gap {
                    assert!(batch.samples.is_empty());
                    self.gaps.extend(batch.gaps);
                    continue;
                }
                let ids: Vec<i64> = batch.samples.iter().map(|s| s.ts_unix_ns).collect();
                let expected = self.pending.remove(&record.seq);
                assert_eq!(
                    Some(&ids),
                    expected.as_ref(),
                    "content of seq {}",
                    record.seq
                );
                assert_eq!(record.samples as usize, ids.len());
                self.delivered.extend(ids);
            }
            if !progressed {
                break;
            }
        }
        spool.ack(target).unwrap();
    }

    fn observe(&mut self, spool: &Spool) {
        self.durable_floor = self.durable_floor.max(spool.durable_seq());
        let stats = spool.stats();
        assert!(stats.total_bytes <= spool.config().max_bytes, "{stats:?}");
        assert!(stats.acked_seq <= stats.durable_seq && stats.durable_seq <= stats.spooled_seq);
    }
}

fn run(ops: Vec<Op>) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = SpoolConfig {
        max_bytes: 3 * 4096,
        ..config(dir.path())
    };
    let (mut spool, _) = Spool::open(cfg.clone()).unwrap();
    let mut model = Model::default();
    for op in ops {
        match op {
            Op::Append(count) => {
                let ids: Vec<i64> = (model.next_id..model.next_id + count as i64).collect();
                model.next_id += count as i64;
                let batch: Vec<_> = ids.iter().map(|&id| sample(id)).collect();
                let seq = spool.append(&batch).unwrap();
                assert!(seq > model.durable_floor, "seq {seq} reused");
                assert!(model.pending.insert(seq, ids).is_none());
            }
            Op::Sync => spool.sync().unwrap(),
            Op::Ack(selector) => {
                let (acked, durable) = (spool.acked_seq(), spool.durable_seq());
                let error = spool.ack(durable + 1).unwrap_err();
                assert!(matches!(error, SpoolError::AckBeyondDurable { .. }));
                let target = acked + (durable - acked) * u64::from(selector) / 255;
                model.deliver(&mut spool, target);
                spool.ack(acked).unwrap(); // a stale ack is a no-op
                assert_eq!(spool.acked_seq(), target.max(acked));
            }
            Op::Crash(selector) => {
                let durable = spool.durable_seq();
                let spooled = spool.spooled_seq();
                let active = spool
                    .writer
                    .as_ref()
                    .map(|w| (w.path().to_owned(), w.synced_len(), w.len()));
                drop(spool);
                if let Some((path, synced, len)) = active {
                    if synced == 0 && selector % 4 == 0 {
                        // Never synced: its directory entry may be gone too.
                        fs::remove_file(&path).unwrap();
                    } else {
                        let low = synced.max(SEGMENT_HEADER_LEN as u64);
                        let cut = low + u64::from(selector) % (len - low + 1);
                        let file = OpenOptions::new().write(true).open(&path).unwrap();
                        file.set_len(cut).unwrap();
                    }
                }
                let report;
                (spool, report) = Spool::open(cfg.clone()).unwrap();
                assert_eq!(report.corrupt_gaps, 0);
                let survived = spool.spooled_seq();
                assert!(
                    durable <= survived && survived <= spooled,
                    "{durable} {survived} {spooled}"
                );
                // Lost only as a suffix: everything above `survived` is gone.
                model.pending.retain(|&seq, _| seq <= survived);
            }
            Op::CorruptTail(selector) => {
                spool.sync().unwrap();
                let newest = spool
                    .segments
                    .back()
                    .and_then(|s| s.records.last().map(|r| (s.path.clone(), *r)));
                let Some((path, record)) = newest else {
                    continue;
                };
                if record.gap {
                    // The gaps it carries are destroyed with it.
                    let payload = SegmentReader::open(&path)
                        .unwrap()
                        .read_payload(&record)
                        .unwrap();
                    for gap in TelemetryBatch::decode(payload.as_slice()).unwrap().gaps {
                        model
                            .pending
                            .retain(|&seq, _| seq < gap.first_seq || seq > gap.last_seq);
                    }
                }
                drop(spool);
                let mut bytes = fs::read(&path).unwrap();
                let at = record.offset as usize + usize::from(selector) % record.frame_len as usize;
                bytes[at] ^= 1 << (selector % 8);
                fs::write(&path, &bytes).unwrap();
                let report;
                (spool, report) = Spool::open(cfg.clone()).unwrap();
                assert!(report.truncated_bytes >= u64::from(record.frame_len));
                if spool.spooled_seq() == record.seq - 1 {
                    // Cut as a torn write: nothing said it had been durable,
                    // so its seq may be used again.
                    assert_eq!(report.corrupt_gaps, 0);
                    model.pending.remove(&record.seq);
                    model.durable_floor = record.seq - 1;
                } else {
                    // `spool.meta` knew it was durable: a corrupt gap reports it.
                    assert_eq!(report.corrupt_gaps, 1);
                    assert!(spool.spooled_seq() > record.seq);
                }
            }
        }
        model.observe(&spool);
    }

    spool.sync().unwrap();
    let durable = spool.durable_seq();
    model.deliver(&mut spool, durable);
    assert!(
        model.delivered.windows(2).all(|w| w[0] < w[1]),
        "samples delivered twice or out of order"
    );
    // Whatever was not delivered was dropped or damaged, and a delivered gap
    // says so; the size bound's gaps count the dropped samples exactly.
    let covers = |reason: GapReason, seq: u64| {
        model
            .gaps
            .iter()
            .any(|g| g.reason == reason as i32 && g.first_seq <= seq && seq <= g.last_seq)
    };
    let mut dropped = 0u64;
    for (&seq, ids) in &model.pending {
        if covers(GapReason::SpoolCorrupt, seq) {
            continue;
        }
        assert!(
            covers(GapReason::SpoolFull, seq),
            "seq {seq} lost silently; gaps {:?}",
            model.gaps
        );
        dropped += ids.len() as u64;
    }
    let full_gap_samples: u64 = model
        .gaps
        .iter()
        .filter(|g| g.reason == GapReason::SpoolFull as i32)
        .map(|g| g.samples)
        .sum();
    assert_eq!(full_gap_samples, dropped, "gaps {:?}", model.gaps);
    assert_eq!(spool.stats().backlog_batches, 0);
}

proptest! {
    // 64 cases by default (a few seconds in debug); PROPTEST_CASES=5000 for a soak.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(64),
        ..ProptestConfig::default()
    })]

    #[test]
    fn spool_model_loses_nothing_durable_and_accounts_for_every_drop(
        ops in prop::collection::vec(op(), 1..120)
    ) {
        run(ops);
    }
}

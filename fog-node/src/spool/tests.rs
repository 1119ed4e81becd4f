//! Unit tests of the spool's format, recovery and fault handling. Faults
//! (a full disk, a failing truncate or fsync) are injected through the
//! test-only thread-locals in `writer::faults`.

use std::fs;
use std::path::{Path, PathBuf};

use obs_proto::v1::{Gap, GapReason, Sample, TelemetryBatch, sample::Value};
use prost::Message;

use super::segment::{
    FRAME_HEADER_LEN, SEGMENT_HEADER_LEN, encode_identity, encode_record, scan_segment,
    segment_header,
};
use super::writer::faults;
use super::*;

pub(super) fn sample(ts: i64) -> Sample {
    Sample {
        device: "m1/segment/07".into(),
        attribute: "piston".into(),
        ts_unix_ns: ts,
        unit: "nm".into(),
        quality: 1,
        value: Some(Value::DoubleValue(ts as f64 * 0.5)),
    }
}

pub(super) fn samples(first_ts: i64, count: usize) -> Vec<Sample> {
    (0..count as i64).map(|i| sample(first_ts + i)).collect()
}

pub(super) fn config(dir: &Path) -> SpoolConfig {
    SpoolConfig {
        segment_bytes: 4096,
        max_bytes: 1 << 20,
        ..SpoolConfig::new(dir, "nrt", "nrt-fog-1")
    }
}

fn open(config: &SpoolConfig) -> (Spool, RecoveryReport) {
    Spool::open(config.clone()).unwrap()
}

pub(super) fn read_all(spool: &Spool) -> Vec<SpoolRecord> {
    spool.read_from(0, usize::MAX, usize::MAX).unwrap()
}

fn decode(record: &SpoolRecord) -> TelemetryBatch {
    TelemetryBatch::decode(record.payload.as_slice()).unwrap()
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    files.sort();
    files
}

#[test]
fn spool_record_encoding_matches_prost_and_round_trips() {
    let batch_samples = samples(1_700_000_000_000_000_000, 3);
    let gaps = [Gap {
        first_seq: 1,
        last_seq: 2,
        samples: 9,
        reason: GapReason::SpoolFull as i32,
        ..Gap::default()
    }];
    let identity = encode_identity("nrt", "nrt-fog-1");
    let mut buf = Vec::new();
    for (seq, s, g) in [(1, &batch_samples[..], &[][..]), (300, &[][..], &gaps[..])] {
        let header = encode_record(&mut buf, &identity, seq, s, g, 42);
        let expected = TelemetryBatch {
            site: "nrt".into(),
            node_id: "nrt-fog-1".into(),
            seq,
            samples: s.to_vec(),
            gaps: g.to_vec(),
            created_unix_ns: 42,
            ..TelemetryBatch::default()
        };
        assert_eq!(
            &buf[FRAME_HEADER_LEN..],
            expected.encode_to_vec().as_slice()
        );
        assert_eq!(header.seq, seq);
        assert_eq!(header.samples as usize, s.len());
        assert_eq!(header.is_gap(), s.is_empty());

        let mut file = segment_header().to_vec();
        file.extend_from_slice(&buf);
        let scan = scan_segment(&file, seq, u64::MAX);
        assert_eq!(scan.header, super::segment::HeaderCheck::Valid);
        assert!(scan.damages.is_empty());
        assert_eq!(scan.records.len(), 1);
        assert_eq!(scan.records[0].header, header);
        assert_eq!(scan.records[0].offset, SEGMENT_HEADER_LEN as u64);
    }
    let header = encode_record(&mut buf, &identity, 7, &batch_samples, &[], 0);
    assert_eq!(
        (header.first_ts, header.last_ts),
        (1_700_000_000_000_000_000, 1_700_000_000_000_000_002)
    );
}

#[test]
fn spool_append_sync_read_round_trips_batches() {
    let dir = tempfile::tempdir().unwrap();
    let (mut spool, report) = open(&config(dir.path()));
    assert_eq!(report.next_seq, 1);
    for i in 0..20 {
        assert_eq!(spool.append(&samples(i * 10, 5)).unwrap(), i as u64 + 1);
    }
    spool.sync().unwrap();
    let records = read_all(&spool);
    assert_eq!(records.len(), 20);
    assert!(spool.stats().segments > 1, "4 KiB segments must roll");
    for (i, record) in records.iter().enumerate() {
        let batch = decode(record);
        assert_eq!(record.seq, i as u64 + 1);
        assert_eq!(batch.seq, record.seq);
        assert_eq!(
            (batch.site.as_str(), batch.node_id.as_str()),
            ("nrt", "nrt-fog-1")
        );
        assert_eq!(batch.samples, samples(i as i64 * 10, 5));
        assert_eq!(record.samples, 5);
        assert!(!record.is_gap);
    }
    let window = spool.read_from(5, 3, usize::MAX).unwrap();
    assert_eq!(window.iter().map(|r| r.seq).collect::<Vec<_>>(), [5, 6, 7]);
    let one = spool.read_from(5, 10, 1).unwrap();
    assert_eq!(
        one.len(),
        1,
        "max_bytes below one record still returns that record"
    );
}

#[test]
fn spool_flipped_bit_in_any_crc_protected_byte_is_rejected() {
    let identity = encode_identity("nrt", "nrt-fog-1");
    let mut buf = Vec::new();
    let mut file = segment_header().to_vec();
    encode_record(&mut buf, &identity, 1, &samples(0, 2), &[], 1);
    file.extend_from_slice(&buf);
    let last_offset = file.len();
    encode_record(&mut buf, &identity, 2, &samples(2, 2), &[], 1);
    file.extend_from_slice(&buf);
    for at in last_offset..file.len() {
        for bit in [0x01u8, 0x80] {
            let mut damaged = file.clone();
            damaged[at] ^= bit;
            let scan = scan_segment(&damaged, 1, u64::MAX);
            assert_eq!(scan.records.len(), 1, "flip at byte {at} accepted");
            assert_eq!(scan.valid_len, last_offset as u64);
            assert!(scan.tail_damage().is_some());
        }
    }
}

#[test]
fn spool_damage_in_older_segment_becomes_a_corrupt_gap_once() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let (mut spool, _) = open(&cfg);
    for i in 0..30 {
        spool.append(&samples(i * 10, 4)).unwrap();
    }
    spool.sync().unwrap();
    let first = &spool.segments[0];
    let victim = first.records[2];
    let records_in_first = first.records.len();
    let path = first.path.clone();
    drop(spool);

    // Flip a payload byte of the third record of the oldest segment.
    let mut bytes = fs::read(&path).unwrap();
    bytes[victim.offset as usize + FRAME_HEADER_LEN + 5] ^= 0x10;
    fs::write(&path, &bytes).unwrap();

    let (mut spool, report) = open(&cfg);
    assert_eq!(report.corrupt_segments, 1);
    assert_eq!(report.corrupt_gaps, 1);
    assert_eq!(report.truncated_bytes, 0);
    assert_eq!(report.next_seq, 32, "the gap record took seq 31");
    let records = read_all(&spool);
    let seqs: Vec<u64> = records.iter().map(|r| r.seq).collect();
    assert!(!seqs.contains(&victim.seq));
    assert_eq!(seqs.len(), 30, "29 good records and the gap record");
    assert!(
        records_in_first > 3,
        "records after the damage are still delivered"
    );
    let gap_record = records.last().unwrap();
    assert!(gap_record.is_gap);
    let gaps = decode(gap_record).gaps;
    assert_eq!(gaps.len(), 1);
    assert_eq!(
        (gaps[0].first_seq, gaps[0].last_seq),
        (victim.seq, victim.seq)
    );
    assert_eq!(gaps[0].samples, 4, "taken from the intact frame header");
    assert_eq!(gaps[0].reason, GapReason::SpoolCorrupt as i32);
    assert!(
        gaps[0].detail.contains("unverified frame headers"),
        "{}",
        gaps[0].detail
    );
    assert_eq!((gaps[0].from_ts_unix_ns, gaps[0].to_ts_unix_ns), (20, 23));
    spool.sync().unwrap();
    drop(spool);

    // Reopening finds the same damage but does not report it twice.
    let (spool, report) = open(&cfg);
    assert_eq!(report.corrupt_segments, 1);
    assert_eq!(report.corrupt_gaps, 0);
    assert_eq!(read_all(&spool).len(), 30);
}

#[test]
fn spool_damaged_length_field_gives_a_gap_with_unknown_sample_count() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let (mut spool, _) = open(&cfg);
    for i in 0..30 {
        spool.append(&samples(i * 10, 4)).unwrap();
    }
    spool.sync().unwrap();
    let first = &spool.segments[0];
    let victim = first.records[1];
    let path = first.path.clone();
    drop(spool);

    let mut bytes = fs::read(&path).unwrap();
    bytes[victim.offset as usize + 5] ^= 0x40; // payload length += 16384
    fs::write(&path, &bytes).unwrap();

    let (spool, report) = open(&cfg);
    assert_eq!(report.corrupt_gaps, 1);
    let records = read_all(&spool);
    let gaps = decode(records.last().unwrap()).gaps;
    assert_eq!(
        (gaps[0].first_seq, gaps[0].last_seq),
        (victim.seq, victim.seq)
    );
    assert_eq!(gaps[0].samples, 0);
    assert!(
        gaps[0].detail.contains("sample count unknown"),
        "{}",
        gaps[0].detail
    );
    assert_eq!((gaps[0].from_ts_unix_ns, gaps[0].to_ts_unix_ns), (3, 20));
}

#[test]
fn spool_disk_full_during_append_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let (mut spool, _) = open(&cfg);
    spool.append(&samples(0, 3)).unwrap();
    spool.sync().unwrap();
    let before = spool.stats();

    faults::SHORT_WRITE.set(Some(25));
    let error = spool.append(&samples(100, 3)).unwrap_err().to_string();
    let segment = dir.path().join("00000000000000000001.seg");
    assert_eq!(
        error,
        format!(
            "spool segment {}: write failed: no space left on device (injected)",
            segment.display()
        )
    );
    assert_eq!(spool.stats(), before, "in-memory state must not advance");
    assert_eq!(fs::metadata(&segment).unwrap().len(), before.total_bytes);

    // The seq is not burnt: the next append gets it.
    assert_eq!(spool.append(&samples(200, 3)).unwrap(), 2);
    spool.sync().unwrap();
    drop(spool);
    let (spool, report) = open(&cfg);
    assert_eq!(report.truncated_bytes, 0);
    let records = read_all(&spool);
    assert_eq!(records.len(), 2);
    assert_eq!(decode(&records[1]).samples, samples(200, 3));
}

#[test]
fn spool_disk_full_with_failing_truncate_is_cut_later() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let (mut spool, _) = open(&cfg);
    spool.append(&samples(0, 3)).unwrap();
    spool.sync().unwrap();

    // The failed write cannot be cut at once; the next append cuts it.
    faults::SHORT_WRITE.set(Some(60));
    faults::FAILED_TRUNCATES.set(1);
    spool.append(&samples(100, 3)).unwrap_err();
    assert_eq!(spool.append(&samples(200, 3)).unwrap(), 2);
    spool.sync().unwrap();
    assert_eq!(read_all(&spool).len(), 2);

    // Again, and now the process dies before anything cuts it.
    faults::SHORT_WRITE.set(Some(60));
    faults::FAILED_TRUNCATES.set(2);
    spool.append(&samples(300, 3)).unwrap_err();
    let error = spool.append(&samples(400, 3)).unwrap_err().to_string();
    assert!(error.contains("truncate failed"), "{error}");
    drop(spool);
    let (spool, report) = open(&cfg);
    assert_eq!(report.truncated_bytes, 60);
    let records = read_all(&spool);
    assert_eq!(records.iter().map(|r| r.seq).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(decode(&records[1]).samples, samples(200, 3));
}

#[test]
fn spool_fsync_failure_refuses_writes_until_reopened() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let (mut spool, _) = open(&cfg);
    spool.append(&samples(0, 3)).unwrap();
    faults::FAIL_SYNC.set(true);
    let error = spool.sync().unwrap_err().to_string();
    assert!(error.contains("fsync failed"), "{error}");
    assert_eq!(spool.durable_seq(), 0);
    assert!(spool.read_from(1, 10, usize::MAX).unwrap().is_empty());
    let error = spool.append(&samples(1, 1)).unwrap_err();
    assert!(
        matches!(error, SpoolError::Poisoned { op: "append", .. }),
        "{error}"
    );
    drop(spool);
    let (spool, _) = open(&cfg);
    assert_eq!(
        spool.durable_seq(),
        1,
        "recovery rescans and fsyncs what is there"
    );
}

#[test]
fn spool_full_drops_oldest_segment_into_a_gap_record() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = SpoolConfig {
        max_bytes: 3 * 4096,
        ..config(dir.path())
    };
    let (mut spool, _) = open(&cfg);
    let mut appended = 0u64;
    for i in 0..60 {
        spool.append(&samples(i * 10, 5)).unwrap();
        appended += 5;
        assert!(spool.stats().total_bytes <= cfg.max_bytes);
    }
    spool.sync().unwrap();
    let stats = spool.stats();
    assert!(stats.dropped_batches > 0);
    let records = read_all(&spool);
    let delivered: u64 = records.iter().map(|r| u64::from(r.samples)).sum();
    let gaps: Vec<Gap> = records
        .iter()
        .filter(|r| r.is_gap)
        .flat_map(|r| decode(r).gaps)
        .collect();
    let gap_samples: u64 = gaps.iter().map(|g| g.samples).sum();
    assert_eq!(delivered + gap_samples, appended);
    assert_eq!(gap_samples, stats.gap_samples);
    assert!(gaps.iter().all(|g| g.reason == GapReason::SpoolFull as i32));
    // The gaps report contiguous seq ranges from 1 up to the first record kept.
    assert_eq!(gaps[0].first_seq, 1);
    assert_eq!(gaps[0].from_ts_unix_ns, 0);
    for pair in gaps.windows(2) {
        assert_eq!(pair[0].last_seq + 1, pair[1].first_seq, "{gaps:?}");
    }
    let first_kept = records.iter().find(|r| !r.is_gap).unwrap().seq;
    assert_eq!(gaps.last().unwrap().last_seq + 1, first_kept);
    drop(spool);
    let (spool, _) = open(&cfg);
    assert_eq!(
        spool.stats().gap_samples,
        stats.gap_samples,
        "counters persist"
    );
}

#[test]
fn spool_crash_between_gap_record_and_segment_removal_finishes_the_drop() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = SpoolConfig {
        max_bytes: 3 * 4096,
        ..config(dir.path())
    };
    let (mut spool, _) = open(&cfg);
    let mut i = 0;
    spool.append(&samples(0, 5)).unwrap();
    let saved = loop {
        let oldest = segment_files(dir.path())[0].clone();
        let bytes = fs::read(&oldest).unwrap();
        spool.append(&samples(i * 10, 5)).unwrap();
        i += 1;
        if !oldest.exists() {
            break (oldest, bytes);
        }
    };
    spool.sync().unwrap();
    let expected: Vec<SpoolRecord> = read_all(&spool);
    drop(spool);
    // As if the crash came after the gap record was durable but before
    // the dropped segment was deleted.
    fs::write(&saved.0, &saved.1).unwrap();
    let (spool, report) = open(&cfg);
    assert_eq!(report.completed_drops, 1);
    assert!(!saved.0.exists());
    assert_eq!(read_all(&spool), expected);
}

#[test]
fn spool_dropped_gap_records_are_carried_into_the_new_one() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = SpoolConfig {
        max_bytes: 3 * 4096,
        ..config(dir.path())
    };
    let (mut spool, _) = open(&cfg);
    let mut appended = 0u64;
    let mut acked_samples = 0u64;
    let mut most_gaps_in_a_record = 0;
    for i in 0..200 {
        spool.append(&samples(i * 10, 5)).unwrap();
        appended += 5;
        if i % 25 == 24 {
            // Deliver and ack a little, so the gaps are not all contiguous.
            spool.sync().unwrap();
            let from = spool.acked_seq() + 1;
            let batch = spool.read_from(from, 2, usize::MAX).unwrap();
            acked_samples += batch.iter().map(|r| u64::from(r.samples)).sum::<u64>();
            for gaps in batch.iter().filter(|r| r.is_gap).map(|r| decode(r).gaps) {
                most_gaps_in_a_record = most_gaps_in_a_record.max(gaps.len());
                acked_samples += gaps.iter().map(|g| g.samples).sum::<u64>();
            }
            spool.ack(batch.last().unwrap().seq).unwrap();
        }
    }
    spool.sync().unwrap();
    let records = spool
        .read_from(spool.acked_seq() + 1, usize::MAX, usize::MAX)
        .unwrap();
    let delivered: u64 = records.iter().map(|r| u64::from(r.samples)).sum();
    let gap_samples: u64 = records
        .iter()
        .filter(|r| r.is_gap)
        .flat_map(|r| decode(r).gaps)
        .map(|g| g.samples)
        .sum();
    assert_eq!(acked_samples + delivered + gap_samples, appended);
    assert!(most_gaps_in_a_record > 1, "a gap record carried older gaps");
}

#[test]
fn spool_config_errors_name_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            SpoolConfig {
                max_bytes: 4096 * 2 - 1,
                ..config(dir.path())
            },
            "max_bytes",
        ),
        (
            SpoolConfig {
                segment_bytes: 10,
                ..config(dir.path())
            },
            "segment_bytes",
        ),
        (SpoolConfig::new(dir.path(), "NRT", "n"), "site"),
        (SpoolConfig::new(dir.path(), "nrt", ""), "node_id"),
    ];
    for (cfg, field) in cases {
        let error = Spool::open(cfg).err().unwrap().to_string();
        assert!(error.contains(&format!("`{field}`")), "{error}");
        assert!(error.contains(&dir.path().display().to_string()), "{error}");
    }
    let error = SpoolError::Config {
        dir: dir.path().into(),
        field: "max_bytes",
        reason: "x".into(),
    }
    .to_string();
    assert!(!error.ends_with('.'));
}

#[test]
fn spool_empty_and_oversized_batches_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (mut spool, _) = open(&config(dir.path()));
    assert!(matches!(
        spool.append(&[]),
        Err(SpoolError::EmptyBatch { .. })
    ));
    let error = spool.append(&samples(0, 200)).unwrap_err();
    assert!(
        matches!(error, SpoolError::RecordTooLarge { .. }),
        "{error}"
    );
    assert_eq!(spool.append(&samples(0, 1)).unwrap(), 1);
}

#[test]
fn spool_cut_tail_record_that_was_durable_is_reported_as_a_gap() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let (mut spool, _) = open(&cfg);
    for i in 0..3 {
        spool.append(&samples(i * 10, 3)).unwrap();
    }
    spool.sync().unwrap();
    spool.ack(1).unwrap(); // persists next_seq floor 4: seqs 1..=3 were durable
    let record = *spool.segments[0].records.last().unwrap();
    let path = spool.segments[0].path.clone();
    drop(spool);

    let mut bytes = fs::read(&path).unwrap();
    bytes[record.offset as usize + FRAME_HEADER_LEN + 3] ^= 0x04;
    fs::write(&path, &bytes).unwrap();
    let (spool, report) = open(&cfg);
    assert_eq!(report.truncated_bytes, u64::from(record.frame_len));
    assert_eq!((report.corrupt_gaps, report.next_seq), (1, 5));
    let records = spool.read_from(2, usize::MAX, usize::MAX).unwrap();
    assert_eq!(records.iter().map(|r| r.seq).collect::<Vec<_>>(), [2, 4]);
    let gaps = decode(&records[1]).gaps;
    assert_eq!(
        (gaps[0].first_seq, gaps[0].last_seq, gaps[0].samples),
        (3, 3, 3)
    );
    assert_eq!(gaps[0].reason, GapReason::SpoolCorrupt as i32);
    assert!(
        gaps[0].detail.starts_with("seqs 3..=3 were durable"),
        "{}",
        gaps[0].detail
    );
}

#[test]
fn spool_unreadable_older_segment_becomes_a_gap_without_panicking() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let (mut spool, _) = open(&cfg);
    for i in 0..60 {
        spool.append(&samples(i * 10, 4)).unwrap();
    }
    spool.sync().unwrap();
    let second_base = spool.segments[1].base_seq;
    let third_base = spool.segments[2].base_seq;
    let path = spool.segments[1].path.clone();
    drop(spool);

    fs::write(&path, b"OBSSP").unwrap(); // shorter than a segment header
    let (spool, report) = open(&cfg);
    assert_eq!((report.corrupt_segments, report.corrupt_gaps), (1, 1));
    let records = read_all(&spool);
    let gaps = decode(records.last().unwrap()).gaps;
    assert_eq!(
        (gaps[0].first_seq, gaps[0].last_seq, gaps[0].samples),
        (second_base, third_base - 1, 0)
    );
    assert!(
        gaps[0].detail.contains("sample count unknown"),
        "{}",
        gaps[0].detail
    );
    let delivered: Vec<u64> = records
        .iter()
        .filter(|r| !r.is_gap)
        .map(|r| r.seq)
        .collect();
    assert_eq!(delivered.len() as u64, 60 - (third_base - second_base));
}

#[test]
fn spool_drop_of_a_vanished_segment_still_accounts_from_the_index() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = SpoolConfig {
        max_bytes: 3 * 4096,
        ..config(dir.path())
    };
    let (mut spool, _) = open(&cfg);
    while spool.segments.len() < 3 {
        spool.append(&samples(0, 5)).unwrap();
    }
    let oldest = &spool.segments[0];
    let lost: u64 = oldest.records.iter().map(|r| u64::from(r.samples)).sum();
    fs::remove_file(&oldest.path).unwrap();
    let before = spool.stats().gap_samples;
    while spool.stats().gap_samples == before {
        spool.append(&samples(0, 5)).unwrap();
    }
    assert_eq!(spool.stats().gap_samples - before, lost);
}

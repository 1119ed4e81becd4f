//! The spool's public contract: durable-only reads, acks and trimming,
//! sequence numbers that survive everything, torn tails, quarantine.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};

use fog_node::spool::{Spool, SpoolConfig, SpoolError, SpoolRecord};
use obs_proto::v1::{Sample, TelemetryBatch, sample::Value};
use prost::Message;

fn samples(first_ts: i64, count: usize) -> Vec<Sample> {
    (0..count as i64)
        .map(|i| Sample {
            device: "m1/segment/07".into(),
            attribute: "piston".into(),
            ts_unix_ns: first_ts + i,
            unit: "nm".into(),
            quality: 1,
            value: Some(Value::DoubleValue(12.5 + i as f64)),
        })
        .collect()
}

fn config(dir: &Path) -> SpoolConfig {
    SpoolConfig {
        segment_bytes: 4096,
        max_bytes: 1 << 20,
        ..SpoolConfig::new(dir, "nrt", "nrt-fog-1")
    }
}

fn read_all(spool: &Spool) -> Vec<SpoolRecord> {
    spool.read_from(0, usize::MAX, usize::MAX).unwrap()
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
fn spool_torn_tail_at_every_offset_recovers_exactly_the_previous_records() {
    let origin = tempfile::tempdir().unwrap();
    let (mut spool, _) = Spool::open(config(origin.path())).unwrap();
    for i in 0..4 {
        spool.append(&samples(i * 100, 3)).unwrap();
    }
    spool.sync().unwrap();
    let before_last = spool.stats().total_bytes;
    spool.append(&samples(900, 3)).unwrap();
    spool.sync().unwrap();
    let expected: Vec<SpoolRecord> = read_all(&spool)[..4].to_vec();
    drop(spool);
    let files = segment_files(origin.path());
    assert_eq!(files.len(), 1);
    let bytes = fs::read(&files[0]).unwrap();
    assert!(before_last < bytes.len() as u64);

    for cut in before_last..bytes.len() as u64 {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join(files[0].file_name().unwrap()),
            &bytes[..cut as usize],
        )
        .unwrap();
        let (mut spool, report) = Spool::open(config(dir.path())).unwrap();
        assert_eq!(report.truncated_bytes, cut - before_last, "cut at {cut}");
        assert_eq!((report.records, report.next_seq), (4, 5), "cut at {cut}");
        assert_eq!(read_all(&spool), expected, "cut at {cut}");
        assert_eq!(spool.append(&samples(1000, 1)).unwrap(), 5);
    }
}

#[test]
fn spool_seq_is_never_reused_after_a_full_trim_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (mut spool, _) = Spool::open(config(dir.path())).unwrap();
    for i in 0..30 {
        spool.append(&samples(i * 10, 5)).unwrap();
    }
    spool.sync().unwrap();
    assert!(segment_files(dir.path()).len() > 1);
    spool.ack(30).unwrap();
    assert!(
        segment_files(dir.path()).is_empty(),
        "everything acked is deleted"
    );
    assert_eq!(spool.stats().segments, 0);
    assert_eq!(spool.append(&samples(0, 1)).unwrap(), 31);
    spool.sync().unwrap();
    spool.ack(31).unwrap();
    drop(spool);

    let (mut spool, report) = Spool::open(config(dir.path())).unwrap();
    assert_eq!(
        (report.segments, report.next_seq, report.acked_seq),
        (0, 32, 31)
    );
    assert_eq!(spool.append(&samples(0, 1)).unwrap(), 32);
}

#[test]
fn spool_reads_only_durable_records() {
    let dir = tempfile::tempdir().unwrap();
    let (mut spool, _) = Spool::open(config(dir.path())).unwrap();
    for i in 0..3 {
        spool.append(&samples(i, 1)).unwrap();
    }
    assert!(spool.read_from(1, 100, usize::MAX).unwrap().is_empty());
    assert!(spool.unsynced_bytes() > 0);
    let stats = spool.stats();
    assert_eq!((stats.spooled_seq, stats.durable_seq), (3, 0));
    spool.sync().unwrap();
    assert_eq!(spool.unsynced_bytes(), 0);
    spool.append(&samples(10, 1)).unwrap();
    let seqs: Vec<u64> = read_all(&spool).iter().map(|r| r.seq).collect();
    assert_eq!(seqs, [1, 2, 3], "seq 4 is not durable yet");
}

#[test]
fn spool_needs_sync_once_fsync_bytes_are_waiting() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = SpoolConfig {
        fsync_bytes: 1000,
        ..config(dir.path())
    };
    let (mut spool, _) = Spool::open(cfg).unwrap();
    spool.append(&samples(0, 1)).unwrap();
    assert!(!spool.needs_sync());
    while spool.unsynced_bytes() < 1000 {
        spool.append(&samples(0, 1)).unwrap();
    }
    assert!(spool.needs_sync());
    spool.sync().unwrap();
    assert!(!spool.needs_sync());
}

#[test]
fn spool_ack_above_the_durable_seq_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (mut spool, _) = Spool::open(config(dir.path())).unwrap();
    spool.append(&samples(0, 1)).unwrap();
    spool.sync().unwrap();
    spool.append(&samples(1, 1)).unwrap();
    let error = spool.ack(2).unwrap_err();
    assert!(matches!(
        error,
        SpoolError::AckBeyondDurable {
            requested: 2,
            durable: 1,
            ..
        }
    ));
    assert_eq!(
        error.to_string(),
        format!(
            "spool {}: ack failed: up_to_seq 2 is above the durable seq 1",
            dir.path().display()
        )
    );
    assert_eq!(spool.acked_seq(), 0);
    spool.ack(1).unwrap();
    spool.ack(0).unwrap();
    assert_eq!(spool.acked_seq(), 1, "a stale ack changes nothing");
}

#[test]
fn spool_ack_trims_whole_segments_and_reading_resumes_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (mut spool, _) = Spool::open(config(dir.path())).unwrap();
    for i in 0..40 {
        spool.append(&samples(i * 10, 5)).unwrap();
    }
    spool.sync().unwrap();
    let files = segment_files(dir.path());
    assert!(files.len() >= 3);
    let total_before = spool.stats().backlog_bytes;

    // Find the seq that ends the first segment; ack one less, then it.
    let second_base: u64 = files[1]
        .file_stem()
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    spool.ack(second_base - 2).unwrap();
    assert_eq!(
        segment_files(dir.path()).len(),
        files.len(),
        "partly acked segment stays"
    );
    spool.ack(second_base - 1).unwrap();
    assert_eq!(segment_files(dir.path()), files[1..]);
    let stats = spool.stats();
    assert_eq!(stats.backlog_batches, 40 - (second_base - 1));
    assert!(stats.backlog_bytes < total_before);
    drop(spool);

    let (spool, report) = Spool::open(config(dir.path())).unwrap();
    assert_eq!(report.acked_seq, second_base - 1);
    let next = spool
        .read_from(spool.acked_seq() + 1, 1, usize::MAX)
        .unwrap();
    assert_eq!(next[0].seq, second_base);
    let batch = TelemetryBatch::decode(next[0].payload.as_slice()).unwrap();
    assert_eq!(batch.samples, samples((second_base as i64 - 1) * 10, 5));
}

#[test]
fn spool_quarantine_keeps_the_payload_and_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let (mut spool, _) = Spool::open(config(dir.path())).unwrap();
    spool.append(&samples(0, 2)).unwrap();
    spool.append(&samples(10, 2)).unwrap();
    spool.sync().unwrap();
    let path = spool
        .quarantine(2, "sample 0: device name is empty")
        .unwrap();
    assert_eq!(path, dir.path().join("quarantine").join("2.batch"));
    assert_eq!(fs::read(&path).unwrap(), read_all(&spool)[1].payload);
    assert_eq!(
        fs::read_to_string(dir.path().join("quarantine/2.reason.txt")).unwrap(),
        "sample 0: device name is empty\n"
    );
    spool.quarantine(2, "again").unwrap();
    assert_eq!(spool.stats().quarantined, 1, "the same seq counts once");
    spool.ack(2).unwrap();
    let error = spool.quarantine(2, "gone").unwrap_err();
    assert!(
        matches!(error, SpoolError::NotFound { seq: 2, .. }),
        "{error}"
    );
    drop(spool);
    let (spool, _) = Spool::open(config(dir.path())).unwrap();
    assert_eq!(spool.stats().quarantined, 1);
}

#[test]
fn spool_directory_cannot_be_opened_twice() {
    let dir = tempfile::tempdir().unwrap();
    let (_spool, _) = Spool::open(config(dir.path())).unwrap();
    let error = Spool::open(config(dir.path())).err().unwrap();
    assert!(matches!(error, SpoolError::Locked { .. }), "{error}");
}

#[test]
fn spool_damaged_meta_file_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let (mut spool, _) = Spool::open(config(dir.path())).unwrap();
    spool.append(&samples(0, 1)).unwrap();
    spool.sync().unwrap();
    spool.ack(1).unwrap();
    drop(spool);
    let meta = dir.path().join("spool.meta");
    let file = OpenOptions::new().write(true).open(&meta).unwrap();
    file.set_len(10).unwrap();
    let error = Spool::open(config(dir.path())).err().unwrap().to_string();
    assert!(
        error.starts_with(&format!("spool meta {}: read failed", meta.display())),
        "{error}"
    );
}

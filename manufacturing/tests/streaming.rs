//! A 50 MB CSV (and a 10 MB JSON array) import with bounded memory.
//!
//! One test in its own binary, so the process's peak memory belongs to it.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use obs_manufacturing::{
    Format, ImportOptions, MAX_RECORD_BYTES, read, sample_csv_path, sample_jsonl_path,
};

/// Counts the bytes the importer has pulled from the file.
struct Counting<R> {
    inner: R,
    consumed: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.consumed.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// `VmHWM` (peak) or `VmRSS` of this process in KiB, where /proc exists.
fn proc_status_kib(key: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(key))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Writes the sample rows again and again with fresh serials until `target` bytes.
fn write_big_csv(path: &std::path::Path, target: u64) -> u64 {
    let sample = std::fs::read_to_string(sample_csv_path()).expect("samples");
    let mut lines = sample.lines();
    let header = lines.next().expect("header");
    let bodies: Vec<&str> = lines.map(|l| &l[l.find(',').expect("serial")..]).collect();
    let mut out = BufWriter::new(File::create(path).expect("create"));
    writeln!(out, "{header}").expect("write");
    let mut written = header.len() as u64 + 1;
    let mut rows = 0u64;
    while written < target {
        let body = bodies[(rows % bodies.len() as u64) as usize];
        let serial = format!("BULK-{rows:08}");
        writeln!(out, "{serial}{body}").expect("write");
        written += (serial.len() + body.len() + 1) as u64;
        rows += 1;
    }
    out.flush().expect("flush");
    rows
}

#[test]
fn a_50_mb_csv_streams_with_bounded_memory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("big.csv");
    let target = 50 * 1024 * 1024;
    let rows = write_big_csv(&path, target);
    let size = std::fs::metadata(&path).expect("metadata").len();
    assert!(size >= target);

    let rss_before = proc_status_kib("VmRSS:");
    let consumed = Arc::new(AtomicU64::new(0));
    let reader = Counting {
        inner: File::open(&path).expect("open"),
        consumed: consumed.clone(),
    };
    let started = Instant::now();
    let mut records = 0u64;
    let mut consumed_at_first = None;
    for item in read(reader, "big.csv", Format::Csv, &ImportOptions::default()) {
        let (row, record) = item.expect("valid row");
        consumed_at_first.get_or_insert_with(|| consumed.load(Ordering::Relaxed));
        records += 1;
        assert_eq!(row, records);
        assert!(record.serial.starts_with("BULK-"));
    }
    let elapsed = started.elapsed();
    let peak = proc_status_kib("VmHWM:");
    assert_eq!(records, rows);
    assert_eq!(consumed.load(Ordering::Relaxed), size);

    let first = consumed_at_first.expect("a record");
    println!(
        "imported {records} rows, {:.1} MB in {:.2} s; {first} bytes read before the first record; \
         rss before {rss_before:?} KiB, peak {peak:?} KiB",
        size as f64 / 1e6,
        elapsed.as_secs_f64()
    );
    assert!(
        first <= 256 * 1024,
        "{first} bytes read before the first record"
    );
    if let (Some(before), Some(peak)) = (rss_before, peak) {
        // Whole-file buffering would add 50 MB; the serial set for the
        // duplicate check is the only thing that grows (~80 B per row).
        let growth_mib = peak.saturating_sub(before) / 1024;
        println!("peak growth during import: {growth_mib} MiB");
        assert!(growth_mib < 40, "peak memory grew {growth_mib} MiB");
    }

    // A JSON array is streamed element by element too.
    let json_path = dir.path().join("big.json");
    let sample = std::fs::read_to_string(sample_jsonl_path()).expect("samples");
    let mut out = BufWriter::new(File::create(&json_path).expect("create"));
    out.write_all(b"[\n").expect("write");
    let mut n = 0u64;
    let mut written = 0usize;
    'outer: loop {
        for line in sample.lines() {
            let line = line.replacen("CSOA-M1-", &format!("J{n:07}-"), 1);
            let sep = if n == 0 { "" } else { ",\n" };
            write!(out, "{sep}{line}").expect("write");
            written += line.len() + 2;
            n += 1;
            if written > 10 * 1024 * 1024 {
                break 'outer;
            }
        }
    }
    out.write_all(b"\n]\n").expect("write");
    out.flush().expect("flush");
    drop(out);
    let consumed = Arc::new(AtomicU64::new(0));
    let reader = Counting {
        inner: File::open(&json_path).expect("open"),
        consumed: consumed.clone(),
    };
    let mut items = read(reader, "big.json", Format::Json, &ImportOptions::default());
    let first = items.next().expect("first").expect("valid");
    assert_eq!(first.0, 1);
    let at_first = consumed.load(Ordering::Relaxed);
    assert!(
        at_first <= 128 * 1024,
        "{at_first} bytes before the first JSON record"
    );
    assert!(at_first < MAX_RECORD_BYTES as u64);
    let mut rest = 0u64;
    for item in items {
        item.expect("valid");
        rest += 1;
    }
    assert_eq!(rest + 1, n);
}

//! Spool throughput, in samples per second, next to a raw baseline.
//!
//! - `append/*`: group commit as the node runs it: `batches` appends of
//!   `samples` realistic samples each, then one `sync` (fdatasync). The raw
//!   baselines write the same encoded `TelemetryBatch` bytes through a
//!   `BufWriter<File>` and fdatasync at the same cadence: `raw` with the
//!   bytes encoded once up front, `raw_encode` encoding each batch like the
//!   spool must. The difference is the spool's own overhead (framing, CRC,
//!   index, segment rolls).
//! - `replay/*`: reading a spool of 1M samples back with `read_from` (CRC
//!   checked), against reading the same segment files raw.
//!
//! Run: `cargo bench -p fog-node --bench spool -- --warm-up-time 1 --measurement-time 3`

#![allow(clippy::unwrap_used)] // Bench code: a failed unwrap is a broken setup, reported as a panic.

use std::fs::{self, File};
use std::hint::black_box;
use std::io::{BufWriter, Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use fog_node::spool::{Spool, SpoolConfig};
use obs_proto::v1::{Quality, Sample, TelemetryBatch, sample::Value};
use prost::Message;

/// Acked (and trimmed) once the backlog passes this, outside the timing.
const TRIM_AT: u64 = 128 * 1024 * 1024;

fn batch(first_ts: i64, count: usize) -> Vec<Sample> {
    (0..count as i64)
        .map(|i| Sample {
            device: "m1/segment/07".into(),
            attribute: "piston".into(),
            ts_unix_ns: first_ts + i * 100_000_000,
            unit: "nm".into(),
            quality: Quality::Valid as i32,
            value: Some(Value::DoubleValue(12.5 + (i % 97) as f64 * 0.01)),
        })
        .collect()
}

fn telemetry_batch(samples: &[Sample], seq: u64) -> TelemetryBatch {
    TelemetryBatch {
        site: "nrt".into(),
        node_id: "nrt-fog-1".into(),
        seq,
        samples: samples.to_vec(),
        created_unix_ns: 1_760_000_000_000_000_000,
        ..TelemetryBatch::default()
    }
}

fn config(dir: &Path) -> SpoolConfig {
    SpoolConfig {
        segment_bytes: 64 * 1024 * 1024,
        max_bytes: 4 * 1024 * 1024 * 1024,
        ..SpoolConfig::new(dir, "nrt", "nrt-fog-1")
    }
}

fn append(c: &mut Criterion) {
    let mut group = c.benchmark_group("append");
    group.sample_size(10);
    // (samples per batch, batches per fsync)
    for (samples, batches) in [(100usize, 100usize), (1000, 10)] {
        let samples_batch = batch(1_760_000_000_000_000_000, samples);
        let payload = telemetry_batch(&samples_batch, 1).encode_to_vec();
        group.throughput(Throughput::ElementsAndBytes {
            elements: (samples * batches) as u64,
            bytes: (payload.len() * batches) as u64,
        });
        let label = format!("{samples}x{batches}");

        group.bench_function(BenchmarkId::new("spool", &label), |b| {
            let dir = tempfile::tempdir().unwrap();
            let (mut spool, _) = Spool::open(config(dir.path())).unwrap();
            b.iter_custom(|iters| {
                let mut timed = Duration::ZERO;
                for _ in 0..iters {
                    let start = Instant::now();
                    for _ in 0..batches {
                        black_box(spool.append(&samples_batch).unwrap());
                    }
                    spool.sync().unwrap();
                    timed += start.elapsed();
                    if spool.stats().backlog_bytes > TRIM_AT {
                        spool.ack(spool.durable_seq()).unwrap();
                    }
                }
                timed
            });
        });

        for encode in [false, true] {
            let name = if encode { "raw_encode" } else { "raw" };
            group.bench_function(BenchmarkId::new(name, &label), |b| {
                let dir = tempfile::tempdir().unwrap();
                let path = dir.path().join("raw.log");
                let mut out = BufWriter::with_capacity(64 * 1024, File::create(&path).unwrap());
                let mut written = 0u64;
                let mut seq = 0u64;
                b.iter_custom(|iters| {
                    let mut timed = Duration::ZERO;
                    for _ in 0..iters {
                        let start = Instant::now();
                        for _ in 0..batches {
                            if encode {
                                seq += 1;
                                let encoded = telemetry_batch_ref(&samples_batch, seq);
                                out.write_all(&encoded).unwrap();
                            } else {
                                out.write_all(&payload).unwrap();
                            }
                        }
                        out.flush().unwrap();
                        out.get_ref().sync_data().unwrap();
                        timed += start.elapsed();
                        written += (payload.len() * batches) as u64;
                        if written > TRIM_AT {
                            out.get_ref().set_len(0).unwrap();
                            out = BufWriter::with_capacity(64 * 1024, File::create(&path).unwrap());
                            written = 0;
                        }
                    }
                    timed
                });
            });
        }
    }
    group.finish();
}

/// Encodes a batch the way a caller without the spool would: clone the
/// samples into a `TelemetryBatch` and encode it.
fn telemetry_batch_ref(samples: &[Sample], seq: u64) -> Vec<u8> {
    telemetry_batch(samples, seq).encode_to_vec()
}

fn replay(c: &mut Criterion) {
    const SAMPLES: usize = 100;
    const BATCHES: usize = 10_000;
    let dir = tempfile::tempdir().unwrap();
    let (mut spool, _) = Spool::open(config(dir.path())).unwrap();
    let samples_batch = batch(1_760_000_000_000_000_000, SAMPLES);
    for i in 0..BATCHES {
        spool.append(&samples_batch).unwrap();
        if i % 100 == 99 {
            spool.sync().unwrap();
        }
    }
    spool.sync().unwrap();
    let payload_bytes = spool
        .read_from(1, 1, usize::MAX)
        .unwrap()
        .first()
        .map_or(0, |r| r.payload.len());

    let mut group = c.benchmark_group("replay");
    group.sample_size(10);
    group.throughput(Throughput::ElementsAndBytes {
        elements: (SAMPLES * BATCHES) as u64,
        bytes: (payload_bytes * BATCHES) as u64,
    });
    group.bench_function(BenchmarkId::new("spool", "1M"), |b| {
        b.iter(|| {
            let mut next = 1;
            let mut samples = 0u64;
            loop {
                let records = spool.read_from(next, 512, 4 * 1024 * 1024).unwrap();
                let Some(last) = records.last() else { break };
                next = last.seq + 1;
                samples += records.iter().map(|r| u64::from(r.samples)).sum::<u64>();
            }
            assert_eq!(samples, (SAMPLES * BATCHES) as u64);
            black_box(samples)
        });
    });
    group.bench_function(BenchmarkId::new("raw", "1M"), |b| {
        // The same segment files read sequentially through one reused
        // 128 KiB buffer: the I/O floor under `read_from`.
        let files: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "seg"))
            .collect();
        let mut buf = vec![0u8; 128 * 1024];
        b.iter(|| {
            let mut bytes = 0usize;
            for path in &files {
                let mut file = File::open(path).unwrap();
                loop {
                    let n = file.read(&mut buf).unwrap();
                    if n == 0 {
                        break;
                    }
                    bytes += n;
                }
            }
            black_box(bytes)
        });
    });
    group.finish();
}

criterion_group!(benches, append, replay);
criterion_main!(benches);

//! Mirror health inference cost through `ort` (1 intra-op thread):
//! 100 sites x 18 segments = 1800 rows in one batch, in 100 per-site batches
//! of 18, and one row at a time. At the end the same figures are measured
//! with a plain timing loop and printed next to Python onnxruntime's
//! (`ml/train/bench_ort.py`, run with the project venv), same rows
//! (ml/models/golden.csv tiled to 1800).
//!
//! `cargo bench -p obs-ml --bench predict`

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use criterion::{BenchmarkId, Criterion, Throughput};
use obs_ml::{HealthModel, ModelOptions, N_FEATURES, Runtime};

const SITES: usize = 100;
const SEGMENTS: usize = 18;

fn ml_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn golden_rows(path: &Path) -> Result<Vec<[f32; N_FEATURES]>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut rows = Vec::new();
    for line in text.lines().skip(1).filter(|l| !l.is_empty()) {
        let v: Vec<f32> = line
            .split(',')
            .map(|x| x.parse::<f32>().map_err(|e| format!("{x}: {e}")))
            .collect::<Result<_, _>>()?;
        if v.len() < N_FEATURES {
            return Err(format!("short row in {}", path.display()));
        }
        rows.push(std::array::from_fn(|i| v[i]));
    }
    if rows.is_empty() {
        return Err(format!("no rows in {}", path.display()));
    }
    Ok(rows)
}

fn setup() -> Result<(HealthModel, Vec<[f32; N_FEATURES]>), String> {
    let runtime = Runtime::discover().map_err(|e| e.to_string())?;
    let model = HealthModel::load_with(
        ml_dir().join("models/mirror_health.onnx"),
        &runtime,
        ModelOptions {
            intra_threads: 1,
            max_batch_rows: 4096,
        },
    )
    .map_err(|e| e.to_string())?;
    let golden = golden_rows(&ml_dir().join("models/golden.csv"))?;
    let rows = (0..SITES * SEGMENTS)
        .map(|i| golden[i % golden.len()])
        .collect();
    Ok((model, rows))
}

fn criterion_benches(c: &mut Criterion, model: &HealthModel, rows: &[[f32; N_FEATURES]]) {
    let mut g = c.benchmark_group("mirror_health");
    g.throughput(Throughput::Elements(rows.len() as u64));
    g.bench_function(BenchmarkId::new("one_batch", rows.len()), |b| {
        b.iter(|| model.predict(black_box(rows)))
    });
    g.bench_function(
        BenchmarkId::new("per_site_batches", format!("{SITES}x{SEGMENTS}")),
        |b| {
            b.iter(|| {
                for site in rows.chunks(SEGMENTS) {
                    let _ = black_box(model.predict(black_box(site)));
                }
            })
        },
    );
    g.throughput(Throughput::Elements(1));
    g.bench_function("single_row", |b| {
        b.iter(|| model.predict(black_box(&rows[..1])))
    });
    g.finish();
}

/// Median seconds per call over rounds of `number` calls.
fn timed(mut f: impl FnMut(), repeat: usize, number: usize) -> f64 {
    let mut rounds: Vec<f64> = (0..repeat)
        .map(|_| {
            let t0 = Instant::now();
            for _ in 0..number {
                f();
            }
            t0.elapsed().as_secs_f64() / number as f64
        })
        .collect();
    rounds.sort_by(f64::total_cmp);
    rounds[rounds.len() / 2]
}

fn side_by_side(model: &HealthModel, rows: &[[f32; N_FEATURES]]) {
    for _ in 0..200 {
        let _ = model.predict(&rows[..1]);
    }
    let single = timed(
        || {
            let _ = black_box(model.predict(&rows[..1]));
        },
        7,
        2000,
    );
    let batch = timed(
        || {
            let _ = black_box(model.predict(rows));
        },
        7,
        30,
    );
    let per_site = timed(
        || {
            for site in rows.chunks(SEGMENTS) {
                let _ = black_box(model.predict(site));
            }
        },
        7,
        3,
    );
    let python = ml_dir().join("../.venv/bin/python");
    let script = ml_dir().join("train/bench_ort.py");
    let py = Command::new(&python).arg(&script).output();
    let py_json = match py {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout)
            .lines()
            .last()
            .unwrap_or_default()
            .to_owned(),
        Ok(out) => format!("failed: {}", String::from_utf8_lossy(&out.stderr).trim()),
        Err(e) => format!("cannot run {}: {e}", python.display()),
    };
    let field = |name: &str| -> String {
        py_json
            .split(&format!("\"{name}\": "))
            .nth(1)
            .and_then(|rest| rest.split([',', '}']).next())
            .map_or_else(|| "?".to_owned(), |v| v.trim().to_owned())
    };
    println!();
    println!("mirror health model, 1 intra-op thread, median of 7 rounds");
    println!("{:<34} {:>16} {:>20}", "", "rust ort", "python onnxruntime");
    println!(
        "{:<34} {:>13.2} us {:>17} us",
        "single row (1 run of 1 row)",
        single * 1e6,
        field("single_row_us")
    );
    println!(
        "{:<34} {:>13.3} ms {:>17} ms",
        "1800 rows, one batch",
        batch * 1e3,
        field("batch_1800_ms")
    );
    println!(
        "{:<34} {:>13.3} us {:>17} us",
        "  per row",
        batch * 1e6 / rows.len() as f64,
        field("batch_1800_row_us")
    );
    println!(
        "{:<34} {:>13.3} ms {:>17} ms",
        "1800 rows, 100 batches of 18",
        per_site * 1e3,
        field("per_site_18_ms")
    );
    println!("python: {py_json}");
}

fn main() {
    let (model, rows) = match setup() {
        Ok(v) => v,
        Err(e) => {
            eprintln!("predict bench skipped: {e} (run scripts/setup.sh and ml/train/train.sh)");
            return;
        }
    };
    let mut c = Criterion::default().configure_from_args();
    criterion_benches(&mut c, &model, &rows);
    c.final_summary();
    // Under `cargo test --benches` criterion runs each bench once; skip the timing table.
    if std::env::args().any(|a| a == "--bench") {
        side_by_side(&model, &rows);
    }
}

//! `fog-node simulate` writes the training table of the mirror health
//! model: shape, determinism, sane targets (`cargo test -p fog-node simulate`).

use std::path::Path;
use std::sync::OnceLock;

use fog_node::simulate::{self, FEATURE_COLUMNS, SimulateConfig, SimulateError, TARGET_COLUMNS};

/// One parsed row: id columns, then every numeric column (NaN = empty cell).
#[derive(Debug, Clone)]
struct Row {
    site: String,
    segment: u32,
    day: String,
    values: Vec<f64>,
}

impl Row {
    fn get(&self, column: &str) -> f64 {
        let i = FEATURE_COLUMNS
            .iter()
            .chain(TARGET_COLUMNS.iter())
            .position(|c| *c == column)
            .unwrap_or_else(|| panic!("no column {column}"));
        self.values[i]
    }
}

fn read(path: &Path) -> (String, Vec<Row>) {
    let text = std::fs::read_to_string(path).expect("simulate test fixture");
    let mut lines = text.lines();
    let header = lines.next().expect("simulate test fixture").to_owned();
    let rows = lines
        .map(|line| {
            let cells: Vec<&str> = line.split(',').collect();
            assert_eq!(
                cells.len(),
                3 + FEATURE_COLUMNS.len() + TARGET_COLUMNS.len(),
                "{line}"
            );
            Row {
                site: cells[0].to_owned(),
                segment: cells[1].parse().expect("simulate test fixture"),
                day: cells[2].to_owned(),
                values: cells[3..]
                    .iter()
                    .map(|c| {
                        if c.is_empty() {
                            f64::NAN
                        } else {
                            c.parse().expect("simulate test fixture")
                        }
                    })
                    .collect(),
            }
        })
        .collect();
    (header, rows)
}

fn config(out: &Path) -> SimulateConfig {
    SimulateConfig {
        segments: 3,
        years: 60.0 / 365.0,
        seed: 42,
        sites: vec!["la_palma".to_owned()],
        horizon_days: 90,
        climate_variants: 0,
        out: out.to_path_buf(),
    }
}

/// A dusty site with two recoats within its 120 days (seed 1), shared.
fn dusty() -> &'static Vec<Row> {
    static ROWS: OnceLock<Vec<Row>> = OnceLock::new();
    ROWS.get_or_init(|| {
        let dir = tempfile::tempdir().expect("simulate test fixture");
        let out = dir.path().join("dusty.csv");
        let summary = simulate::run(&SimulateConfig {
            segments: 6,
            years: 0.33,
            seed: 1,
            sites: vec!["dusty_desert".to_owned()],
            horizon_days: 90,
            climate_variants: 0,
            out: out.clone(),
        })
        .expect("simulate test fixture");
        assert_eq!(summary.rows, 6 * 120);
        read(&out).1
    })
}

#[test]
fn simulate_writes_one_row_per_segment_per_day_with_the_contract_header() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("nested/table.csv");
    let summary = simulate::run(&config(&out)).unwrap();
    assert_eq!(summary.rows, 3 * 60);
    assert_eq!(summary.sites.len(), 1);
    let (header, rows) = read(&out);
    let expected: Vec<&str> = ["site", "segment", "day"]
        .into_iter()
        .chain(FEATURE_COLUMNS)
        .chain(TARGET_COLUMNS)
        .collect();
    assert_eq!(header, expected.join(","));
    assert_eq!(rows.len(), 180);
    assert_eq!(
        (rows[0].site.as_str(), rows[0].segment, rows[0].day.as_str()),
        ("la_palma", 1, "2025-01-01")
    );
    assert_eq!(
        (rows[179].segment, rows[179].day.as_str()),
        (3, "2025-03-01")
    );
    // The reading is empty before a segment's first measurement, never 0.
    let first = rows[0].get("last_measured_reflectivity_650_pct");
    assert!(
        first.is_nan(),
        "no reflectometer reading on the first day: {first}"
    );
    assert!(
        rows.iter()
            .any(|r| r.get("last_measured_reflectivity_650_pct") > 80.0)
    );
    for r in &rows {
        for (c, v) in FEATURE_COLUMNS.iter().zip(&r.values) {
            if !c.starts_with("last_measured") {
                assert!(v.is_finite(), "{c} missing in {r:?}");
            }
        }
    }
}

#[test]
fn simulate_is_deterministic_for_a_seed() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, c) = (
        dir.path().join("a.csv"),
        dir.path().join("b.csv"),
        dir.path().join("c.csv"),
    );
    simulate::run(&config(&a)).unwrap();
    simulate::run(&config(&b)).unwrap();
    simulate::run(&SimulateConfig {
        seed: 43,
        ..config(&c)
    })
    .unwrap();
    let (a, b, c) = (
        std::fs::read(a).unwrap(),
        std::fs::read(b).unwrap(),
        std::fs::read(c).unwrap(),
    );
    assert!(a == b, "same seed, different bytes");
    assert!(a != c, "another seed gave the same table");
}

#[test]
fn simulate_targets_are_in_range() {
    for r in dusty() {
        let refl = r.get("reflectivity_650_pct");
        let days = r.get("days_to_threshold");
        assert!((50.0..100.0).contains(&refl), "{r:?}");
        assert!((0.0..=90.0).contains(&days) && days.fract() == 0.0, "{r:?}");
        let threshold = r.get("threshold_650_pct");
        assert!((threshold - (r.get("fresh_reflectivity_650_pct") - 3.0).max(80.0)).abs() < 1e-3);
        if refl < threshold {
            assert_eq!(days, 0.0, "below the threshold already: {r:?}");
        }
        assert!(refl <= r.get("fresh_reflectivity_650_pct") + 1e-6);
    }
}

/// Consecutive rows of each segment.
fn pairs(rows: &[Row]) -> Vec<(&Row, &Row)> {
    let mut out = Vec::new();
    for a in rows {
        if let Some(b) = rows
            .iter()
            .find(|b| b.segment == a.segment && b.day > a.day)
        {
            out.push((a, b));
        }
    }
    out
}

#[test]
fn simulate_reflectivity_drops_right_after_a_big_dust_day() {
    let rows = dusty();
    // Days without maintenance in between: the since-maintenance counters grow.
    let quiet: Vec<(&Row, &Row)> = pairs(rows)
        .into_iter()
        .filter(|(a, b)| b.get("days_since_cleaning") > a.get("days_since_cleaning"))
        .collect();
    assert!(quiet.len() > 500);
    let dose = |(a, b): &(&Row, &Row)| {
        b.get("dust_dose_since_maintenance_ug_m3_h") - a.get("dust_dose_since_maintenance_ug_m3_h")
    };
    let drop =
        |(a, b): &(&Row, &Row)| a.get("reflectivity_650_pct") - b.get("reflectivity_650_pct");
    let big = quiet
        .iter()
        .max_by(|x, y| dose(x).total_cmp(&dose(y)))
        .unwrap();
    assert!(dose(big) > 50.0, "largest daily dose {}", dose(big));
    // k_d = 3.5e-4 points per ug/m3 h, susceptibility ~0.8-1.3
    assert!(
        drop(big) > 0.6 * 3.5e-4 * dose(big),
        "drop {} for dose {}",
        drop(big),
        dose(big)
    );
    // Among the largest 5 % of daily drops...
    let below = quiet.iter().filter(|p| drop(p) < drop(big)).count();
    assert!(
        below as f64 > 0.95 * quiet.len() as f64,
        "drop {} ranks {below}/{}",
        drop(big),
        quiet.len()
    );
    // ...and far above a quiet day's (lowest quarter of doses: dome mostly shut).
    let mut by_dose = quiet.clone();
    by_dose.sort_by(|x, y| dose(x).total_cmp(&dose(y)));
    let mut quiet_drops: Vec<f64> = by_dose[..by_dose.len() / 4].iter().map(drop).collect();
    quiet_drops.sort_by(f64::total_cmp);
    let quiet_median = quiet_drops[quiet_drops.len() / 2];
    assert!(
        drop(big) > 10.0 * quiet_median.max(1e-3),
        "drop {} vs quiet day {quiet_median}",
        drop(big)
    );
    // Dose drives the daily loss.
    let (xs, ys): (Vec<f64>, Vec<f64>) = quiet.iter().map(|p| (dose(p), drop(p))).unzip();
    assert!(
        correlation(&xs, &ys) > 0.8,
        "corr {}",
        correlation(&xs, &ys)
    );
}

fn correlation(x: &[f64], y: &[f64]) -> f64 {
    let n = x.len() as f64;
    let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
    let cov: f64 = x.iter().zip(y).map(|(a, b)| (a - mx) * (b - my)).sum();
    let vx: f64 = x.iter().map(|a| (a - mx).powi(2)).sum();
    let vy: f64 = y.iter().map(|b| (b - my).powi(2)).sum();
    cov / (vx * vy).sqrt()
}

#[test]
fn simulate_state_resets_after_a_recoat() {
    let rows = dusty();
    let recoats: Vec<(&Row, &Row)> = pairs(rows)
        .into_iter()
        .filter(|(a, b)| b.get("days_since_recoat") < a.get("days_since_recoat"))
        .collect();
    assert!(!recoats.is_empty(), "expected a recoat in the dusty run");
    for (before, after) in recoats {
        let fresh = after.get("fresh_reflectivity_650_pct");
        assert!(after.get("days_since_recoat") < 1.0, "{after:?}");
        assert_eq!(after.get("cleanings_since_recoat"), 0.0);
        assert!(after.get("reflectivity_650_pct") > fresh - 0.1, "{after:?}");
        assert!(after.get("reflectivity_650_pct") > before.get("reflectivity_650_pct"));
        assert!(
            after.get("days_to_threshold") > before.get("days_to_threshold"),
            "{before:?} -> {after:?}"
        );
        assert!(
            after.get("dust_dose_since_recoat_ug_m3_h")
                < before.get("dust_dose_since_recoat_ug_m3_h")
        );
        // measured right after the recoat
        assert!(after.get("last_measured_age_days") < 1.0);
        assert!((after.get("last_measured_reflectivity_650_pct") - fresh).abs() < 0.5);
    }
}

#[test]
fn simulate_errors_name_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let unknown = SimulateConfig {
        sites: vec!["atlantis".to_owned()],
        ..config(&dir.path().join("x.csv"))
    };
    let err = simulate::run(&unknown).unwrap_err();
    assert!(matches!(err, SimulateError::UnknownSite { .. }), "{err}");
    assert!(err.to_string().contains("atlantis") && err.to_string().contains("la_palma"));

    let blocker = dir.path().join("file");
    std::fs::write(&blocker, b"").unwrap();
    let out = blocker.join("table.csv");
    let err = simulate::run(&SimulateConfig {
        years: 2.0 / 365.0,
        horizon_days: 1,
        ..config(&out)
    })
    .unwrap_err();
    assert!(matches!(err, SimulateError::Io { .. }), "{err}");
    assert!(
        err.to_string().contains(&out.display().to_string()),
        "{err}"
    );

    let err = simulate::run(&SimulateConfig {
        years: 0.0,
        ..config(&out)
    })
    .unwrap_err();
    assert!(err.to_string().contains("--years"), "{err}");
}

#[test]
fn simulate_cli_writes_the_table() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("cli.csv");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_fog-node"))
        .args([
            "simulate",
            "--segments",
            "2",
            "--years",
            "0.03",
            "--seed",
            "5",
        ])
        .args([
            "--sites",
            "humid_coastal,la_palma",
            "--horizon-days",
            "10",
            "--out",
        ])
        .arg(&out)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    // 0.03 years = 11 days, 2 segments, 2 sites
    assert!(stdout.contains("wrote 44 rows"), "{stdout}");
    let (_, rows) = read(&out);
    assert_eq!(rows.len(), 44);
    assert_eq!(rows[0].site, "humid_coastal");
    assert_eq!(rows[43].site, "la_palma");
}

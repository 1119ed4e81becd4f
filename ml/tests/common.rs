//! Shared helpers of the obs-ml integration tests. The tests that run the
//! model need ONNX Runtime: they find it like the hub does (OBS_ORT_DYLIB,
//! then the project venv made by scripts/setup.sh).

#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;

use obs_ml::{FEATURES, N_FEATURES, Runtime};

pub fn ml_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn model_path() -> PathBuf {
    ml_dir().join("models/mirror_health.onnx")
}

pub fn runtime() -> Arc<Runtime> {
    match Runtime::discover() {
        Ok(rt) => rt,
        Err(e) => panic!("these tests need ONNX Runtime 1.31.1 (run scripts/setup.sh): {e}"),
    }
}

/// ml/models/golden.csv: feature rows and the outputs Python onnxruntime gave.
pub struct Golden {
    pub rows: Vec<[f32; N_FEATURES]>,
    pub reflectivity: Vec<f32>,
    pub days: Vec<f32>,
}

pub fn golden() -> Golden {
    let path = ml_dir().join("models/golden.csv");
    let text =
        std::fs::read_to_string(&path).expect("ml/models/golden.csv (run ml/train/train.sh)");
    let mut lines = text.lines();
    let header: Vec<&str> = lines
        .next()
        .expect("golden.csv header")
        .split(',')
        .collect();
    assert_eq!(
        header[..N_FEATURES],
        FEATURES,
        "golden.csv columns differ from the contract"
    );
    assert_eq!(
        header[N_FEATURES..],
        ["reflectivity_650_pct", "days_to_threshold"]
    );
    let mut g = Golden {
        rows: Vec::new(),
        reflectivity: Vec::new(),
        days: Vec::new(),
    };
    for line in lines.filter(|l| !l.is_empty()) {
        let v: Vec<f32> = line
            .split(',')
            .map(|x| x.parse().expect("golden.csv number"))
            .collect();
        assert_eq!(v.len(), N_FEATURES + 2, "{line}");
        g.rows.push(std::array::from_fn(|i| v[i]));
        g.reflectivity.push(v[N_FEATURES]);
        g.days.push(v[N_FEATURES + 1]);
    }
    g
}

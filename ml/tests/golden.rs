//! The Rust `ort` path gives the same outputs as Python onnxruntime on the
//! fixed rows of ml/models/golden.csv (written by ml/train/train.py).

mod common;

use std::sync::Arc;

use obs_ml::{FeatureRow, HealthModel, ModelOptions};

const TOLERANCE: f32 = 1e-4;

#[test]
fn outputs_match_python_onnxruntime() {
    let g = common::golden();
    assert!(g.rows.len() >= 50, "golden.csv has {} rows", g.rows.len());
    let model = HealthModel::load(common::model_path(), &common::runtime()).unwrap();
    let got = model.predict(&g.rows).unwrap();
    assert_eq!(got.len(), g.rows.len());
    let mut worst = (0.0f32, 0.0f32);
    for (i, p) in got.iter().enumerate() {
        let dr = (p.reflectivity_650_pct - g.reflectivity[i]).abs();
        let dd = (p.days_to_threshold - g.days[i]).abs();
        worst = (worst.0.max(dr), worst.1.max(dd));
        assert!(
            dr <= TOLERANCE,
            "row {i}: reflectivity {} vs {}",
            p.reflectivity_650_pct,
            g.reflectivity[i]
        );
        assert!(
            dd <= TOLERANCE,
            "row {i}: days {} vs {}",
            p.days_to_threshold,
            g.days[i]
        );
    }
    println!("max |diff| reflectivity {} days {}", worst.0, worst.1);
}

#[test]
fn small_batches_give_the_same_outputs_as_one_batch() {
    let g = common::golden();
    let rt = common::runtime();
    let one = HealthModel::load(common::model_path(), &rt).unwrap();
    let small = HealthModel::load_with(
        common::model_path(),
        &rt,
        ModelOptions {
            intra_threads: 1,
            max_batch_rows: 7,
        },
    )
    .unwrap();
    assert_eq!(
        one.predict(&g.rows).unwrap(),
        small.predict(&g.rows).unwrap()
    );
    assert!(one.predict(&[]).unwrap().is_empty());
}

#[test]
fn outputs_are_in_range_and_hash_and_version_are_exposed() {
    let g = common::golden();
    let model = HealthModel::load(common::model_path(), &common::runtime()).unwrap();
    for p in model.predict(&g.rows).unwrap() {
        assert!((50.0..=100.0).contains(&p.reflectivity_650_pct), "{p:?}");
        assert!((0.0..=365.0).contains(&p.days_to_threshold), "{p:?}");
    }
    let card = std::fs::read_to_string(common::ml_dir().join("models/MODEL_CARD.md")).unwrap();
    assert_eq!(model.sha256().len(), 64);
    assert!(
        card.contains(model.sha256()),
        "MODEL_CARD.md does not name sha256 {}",
        model.sha256()
    );
    assert!(
        card.contains(&format!("`{}`", model.version())),
        "version {}",
        model.version()
    );
    assert_ne!(model.version(), "unversioned");
}

#[test]
fn imputed_rows_predict_and_non_finite_inputs_are_refused() {
    let g = common::golden();
    let model = HealthModel::load(common::model_path(), &common::runtime()).unwrap();
    let mut row = FeatureRow::from_values(g.rows[0]);
    row.set(obs_ml::Feature::LastMeasuredReflectivity650Pct, None);
    assert!(row.completeness() < 1.0);
    let x = row.impute().unwrap();
    assert_eq!(model.predict(&[x]).unwrap().len(), 1);

    let mut bad = g.rows[0];
    bad[3] = f32::NAN;
    let err = model.predict(&[g.rows[1], bad]).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("row 1") && msg.contains("surface_figure_error_nm_rms"),
        "{msg}"
    );
}

#[tokio::test]
async fn async_prediction_runs_off_the_runtime_and_agrees() {
    let g = common::golden();
    let model = Arc::new(HealthModel::load(common::model_path(), &common::runtime()).unwrap());
    let blocking = model.predict(&g.rows).unwrap();
    let from_async = model.predict_async(g.rows.clone()).await.unwrap();
    assert_eq!(blocking, from_async);
}

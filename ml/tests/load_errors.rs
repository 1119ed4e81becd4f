//! Loading a model that breaks the contract, or is not there, gives an
//! error naming the file (never a panic).

mod common;

use obs_ml::{Error, HealthModel};

#[test]
fn wrong_input_width_is_refused_at_load() {
    let path = common::ml_dir().join("tests/data/wrong_width.onnx");
    let err = HealthModel::load(&path, &common::runtime()).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::ModelContract { .. }), "{msg}");
    assert!(msg.contains("wrong_width.onnx"), "{msg}");
    assert!(msg.contains("[N, 20]") && msg.contains("19"), "{msg}");
}

#[test]
fn missing_model_file_is_named() {
    let path = common::ml_dir().join("models/no_such_model.onnx");
    let err = HealthModel::load(&path, &common::runtime()).unwrap_err();
    assert!(matches!(err, Error::ModelRead { .. }), "{err}");
    assert!(err.to_string().contains("no_such_model.onnx"), "{err}");
}

#[test]
fn a_file_that_is_not_onnx_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("garbage.onnx");
    std::fs::write(&path, b"not a protobuf at all").unwrap();
    let err = HealthModel::load(&path, &common::runtime()).unwrap_err();
    assert!(matches!(err, Error::ModelLoad { .. }), "{err}");
    assert!(err.to_string().contains("garbage.onnx"), "{err}");
}

#[test]
fn a_second_library_in_the_same_process_is_refused() {
    let rt = common::runtime();
    let again = obs_ml::Runtime::load_from(rt.library_path()).unwrap();
    assert!(std::sync::Arc::ptr_eq(&rt, &again));
    let dir = tempfile::tempdir().unwrap();
    let other = dir.path().join("libonnxruntime.so.1.31.1");
    std::fs::copy(rt.library_path(), &other).unwrap();
    let err = obs_ml::Runtime::load_from(&other).unwrap_err();
    assert!(matches!(err, Error::RuntimeAlreadyLoaded { .. }), "{err}");
}

//! A bad ONNX Runtime path is an error, not a panic. This binary never loads
//! the real library (ONNX Runtime is per process), so each case reaches the
//! loader.

use obs_ml::{Error, Runtime, RuntimeConfig};

#[test]
fn a_missing_library_is_named() {
    let path = std::path::Path::new("/nonexistent/dir/libonnxruntime.so.1.31.1");
    let err = Runtime::load(&RuntimeConfig {
        library_path: Some(path.into()),
    })
    .unwrap_err();
    assert!(matches!(err, Error::RuntimeNotFound { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("/nonexistent/dir/libonnxruntime.so.1.31.1"),
        "{err}"
    );
}

#[test]
fn a_file_that_is_not_a_library_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("libonnxruntime.so.1.31.1");
    std::fs::write(&path, b"not an ELF file").unwrap();
    let err = Runtime::load_from(&path).unwrap_err();
    assert!(matches!(err, Error::RuntimeLoad { .. }), "{err}");
    assert!(
        err.to_string().contains("libonnxruntime.so.1.31.1"),
        "{err}"
    );
}

#[test]
fn a_wrong_version_is_refused_before_loading() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("libonnxruntime.so.1.22.0");
    std::fs::write(&path, b"").unwrap();
    let err = Runtime::load_from(&path).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::RuntimeVersion { .. }), "{msg}");
    assert!(msg.contains("1.22.0") && msg.contains("1.31.1"), "{msg}");
}

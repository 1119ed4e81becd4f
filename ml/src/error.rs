//! Errors of the mirror health model.

use std::path::PathBuf;

/// Everything that can go wrong loading ONNX Runtime, a model, or predicting.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No ONNX Runtime library was found.
    #[error(
        "onnx runtime library {expected} not found; searched: {}; set OBS_ORT_DYLIB or run scripts/setup.sh",
        searched.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
    )]
    RuntimeNotFound {
        /// File name looked for.
        expected: &'static str,
        /// Every path and directory tried, in order.
        searched: Vec<PathBuf>,
    },
    /// The library given or found is not ONNX Runtime 1.31.x.
    #[error("onnx runtime at {} is version {found}, expected {expected}", path.display())]
    RuntimeVersion {
        /// The library.
        path: PathBuf,
        /// The version it reports (or its file name says).
        found: String,
        /// The version this build needs.
        expected: &'static str,
    },
    /// The library exists but could not be loaded or initialised.
    #[error("cannot load onnx runtime from {}: {message}", path.display())]
    RuntimeLoad {
        /// The library.
        path: PathBuf,
        /// What ort or the loader said.
        message: String,
    },
    /// ONNX Runtime is already loaded in this process from another library.
    #[error(
        "onnx runtime is already loaded from {} in this process; cannot load {} as well",
        loaded.display(),
        requested.display()
    )]
    RuntimeAlreadyLoaded {
        /// The library in use.
        loaded: PathBuf,
        /// The one asked for.
        requested: PathBuf,
    },
    /// The model file cannot be read.
    #[error("cannot read model {}: {source}", path.display())]
    ModelRead {
        /// The model file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// ONNX Runtime refused the model.
    #[error("cannot load model {}: {message}", path.display())]
    ModelLoad {
        /// The model file.
        path: PathBuf,
        /// What ort said.
        message: String,
    },
    /// The model's inputs, outputs or metadata do not match the feature contract.
    #[error("model {} does not match the feature contract: {reason}", path.display())]
    ModelContract {
        /// The model file.
        path: PathBuf,
        /// The mismatch.
        reason: String,
    },
    /// An input value is NaN or infinite.
    #[error("row {row}: feature {feature} is not finite ({value})")]
    NonFiniteInput {
        /// Index of the row in the call.
        row: usize,
        /// The feature.
        feature: &'static str,
        /// The value.
        value: f32,
    },
    /// A missing feature that has no imputation rule.
    #[error("feature {feature} is missing and has no imputation rule")]
    Unimputable {
        /// The feature.
        feature: &'static str,
    },
    /// Running the model failed.
    #[error("inference with model {} failed: {message}", path.display())]
    Inference {
        /// The model file.
        path: PathBuf,
        /// What ort said (or what was wrong with its outputs).
        message: String,
    },
    /// A thread panicked while holding the session (the session is unusable).
    #[error("model {} session is poisoned by an earlier panic", path.display())]
    Poisoned {
        /// The model file.
        path: PathBuf,
    },
    /// The blocking inference task failed to complete.
    #[error("inference task failed: {0}")]
    Join(String),
}

/// Result of this crate.
pub type Result<T> = std::result::Result<T, Error>;

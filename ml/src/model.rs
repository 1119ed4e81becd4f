//! [`HealthModel`]: the mirror health ONNX model, checked against the
//! feature contract at load and run in batches.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use ndarray::Array2;
use ort::session::Session;
use ort::session::builder::GraphOptimizationLevel;
use ort::value::TensorRef;
use sha2::{Digest, Sha256};

use crate::features::{FEATURES, INPUT_NAME, N_FEATURES, OUTPUT_DAYS, OUTPUT_REFLECTIVITY};
use crate::runtime::Runtime;
use crate::{Error, Result};

/// Metadata key with the comma-separated feature names the model was trained on.
pub const META_FEATURES: &str = "features";
/// Metadata key with the model version.
pub const META_VERSION: &str = "model_version";

/// One prediction for one segment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prediction {
    /// Predicted reflectivity at 650 nm now, %.
    pub reflectivity_650_pct: f32,
    /// Predicted days until the threshold if left alone, `0..=365` (365 = not within the horizon).
    pub days_to_threshold: f32,
}

/// Session options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelOptions {
    /// Intra-op threads of the session (1 keeps a hub's cores for I/O).
    pub intra_threads: usize,
    /// Largest batch per `run` call, rows.
    pub max_batch_rows: usize,
}

impl Default for ModelOptions {
    fn default() -> Self {
        Self {
            intra_threads: 1,
            max_batch_rows: 4096,
        }
    }
}

/// The loaded model. `predict` takes `&self`: the session sits behind a
/// mutex (ort's `run` needs `&mut`), so one `Arc<HealthModel>` can serve
/// many callers, one batch at a time.
#[derive(Debug)]
pub struct HealthModel {
    session: Mutex<Session>,
    path: PathBuf,
    sha256: String,
    version: String,
    options: ModelOptions,
    _runtime: Arc<Runtime>,
}

impl HealthModel {
    /// Loads `model_path` with default options and checks it against the
    /// feature contract: one input `features` of `float32 [N, 20]`, outputs
    /// `reflectivity_650_pct` and `days_to_threshold`, and (when the model
    /// carries it) the same feature list in its metadata.
    pub fn load(model_path: impl AsRef<Path>, runtime: &Arc<Runtime>) -> Result<Self> {
        Self::load_with(model_path, runtime, ModelOptions::default())
    }

    /// [`HealthModel::load`] with explicit options.
    pub fn load_with(
        model_path: impl AsRef<Path>,
        runtime: &Arc<Runtime>,
        options: ModelOptions,
    ) -> Result<Self> {
        let path = model_path.as_ref().to_path_buf();
        let bytes = std::fs::read(&path).map_err(|source| Error::ModelRead {
            path: path.clone(),
            source,
        })?;
        let sha256 = hex::encode(Sha256::digest(&bytes));
        let load_err = |e: ort::Error| Error::ModelLoad {
            path: path.clone(),
            message: e.to_string(),
        };
        let session = Session::builder(runtime.environment())
            .map_err(load_err)?
            .with_intra_threads(options.intra_threads.max(1))
            .map_err(|e| load_err(e.into()))?
            .with_optimization_level(GraphOptimizationLevel::All)
            .map_err(|e| load_err(e.into()))?
            .commit_from_memory(&bytes)
            .map_err(load_err)?;
        check_contract(&session, &path)?;
        let version = session
            .metadata()
            .ok()
            .and_then(|m| m.custom(META_VERSION))
            .unwrap_or_else(|| "unversioned".to_owned());
        tracing::info!(model = %path.display(), %sha256, %version, "loaded mirror health model");
        Ok(Self {
            session: Mutex::new(session),
            path,
            sha256,
            version,
            options: ModelOptions {
                max_batch_rows: options.max_batch_rows.max(1),
                ..options
            },
            _runtime: Arc::clone(runtime),
        })
    }

    /// sha256 (hex) of the model file's bytes as loaded.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    /// The model version from its metadata (`model_version`), or `unversioned`.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The model file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Predicts every row, in batches of at most `max_batch_rows`.
    /// Blocks (about 2–10 µs per row): call [`HealthModel::predict_async`]
    /// from async code.
    pub fn predict(&self, rows: &[[f32; N_FEATURES]]) -> Result<Vec<Prediction>> {
        for (i, row) in rows.iter().enumerate() {
            if let Some((j, v)) = row.iter().enumerate().find(|(_, v)| !v.is_finite()) {
                return Err(Error::NonFiniteInput {
                    row: i,
                    feature: FEATURES[j],
                    value: *v,
                });
            }
        }
        let mut out = Vec::with_capacity(rows.len());
        let mut session = self.session.lock().map_err(|_| Error::Poisoned {
            path: self.path.clone(),
        })?;
        for chunk in rows.chunks(self.options.max_batch_rows) {
            self.run_batch(&mut session, chunk, &mut out)?;
        }
        Ok(out)
    }

    /// [`HealthModel::predict`] on the blocking thread pool
    /// (`tokio::task::spawn_blocking`), so the async runtime never waits on inference.
    pub async fn predict_async(
        self: &Arc<Self>,
        rows: Vec<[f32; N_FEATURES]>,
    ) -> Result<Vec<Prediction>> {
        let model = Arc::clone(self);
        tokio::task::spawn_blocking(move || model.predict(&rows))
            .await
            .map_err(|e| Error::Join(e.to_string()))?
    }

    fn run_batch(
        &self,
        session: &mut Session,
        rows: &[[f32; N_FEATURES]],
        out: &mut Vec<Prediction>,
    ) -> Result<()> {
        let fail = |message: String| Error::Inference {
            path: self.path.clone(),
            message,
        };
        let flat: Vec<f32> = rows.iter().flatten().copied().collect();
        let input = Array2::from_shape_vec((rows.len(), N_FEATURES), flat)
            .map_err(|e| fail(e.to_string()))?;
        let tensor = TensorRef::from_array_view(&input).map_err(|e| fail(e.to_string()))?;
        let outputs = session
            .run(ort::inputs![INPUT_NAME => tensor])
            .map_err(|e| fail(e.to_string()))?;
        let column = |name: &str| -> Result<Vec<f32>> {
            let value = outputs
                .get(name)
                .ok_or_else(|| fail(format!("no output {name}")))?;
            let array = value
                .try_extract_array::<f32>()
                .map_err(|e| fail(format!("output {name}: {e}")))?;
            if array.len() != rows.len() {
                return Err(fail(format!(
                    "output {name} has {} values for {} rows",
                    array.len(),
                    rows.len()
                )));
            }
            Ok(array.iter().copied().collect())
        };
        let reflectivity = column(OUTPUT_REFLECTIVITY)?;
        let days = column(OUTPUT_DAYS)?;
        out.extend(reflectivity.into_iter().zip(days).map(|(r, d)| Prediction {
            reflectivity_650_pct: r,
            days_to_threshold: d,
        }));
        Ok(())
    }
}

fn check_contract(session: &Session, path: &Path) -> Result<()> {
    let bad = |reason: String| Error::ModelContract {
        path: path.to_path_buf(),
        reason,
    };
    let inputs = session.inputs();
    let [input] = inputs else {
        return Err(bad(format!(
            "expected exactly one input {INPUT_NAME:?}, found {:?}",
            inputs.iter().map(|i| i.name()).collect::<Vec<_>>()
        )));
    };
    if input.name() != INPUT_NAME {
        return Err(bad(format!(
            "input is named {:?}, expected {INPUT_NAME:?}",
            input.name()
        )));
    }
    if input.dtype().tensor_type() != Some(ort::value::TensorElementType::Float32) {
        return Err(bad(format!(
            "input {INPUT_NAME:?} is {:?}, expected a float32 tensor",
            input.dtype()
        )));
    }
    let shape: Vec<i64> = input
        .dtype()
        .tensor_shape()
        .map(|s| s.iter().copied().collect())
        .unwrap_or_default();
    if shape.len() != 2 || shape[1] != N_FEATURES as i64 {
        return Err(bad(format!(
            "input {INPUT_NAME:?} has shape {shape:?}, expected [N, {N_FEATURES}] (one column per feature)"
        )));
    }
    for name in [OUTPUT_REFLECTIVITY, OUTPUT_DAYS] {
        if !session.outputs().iter().any(|o| o.name() == name) {
            return Err(bad(format!(
                "no output {name:?} (outputs: {:?})",
                session
                    .outputs()
                    .iter()
                    .map(|o| o.name())
                    .collect::<Vec<_>>()
            )));
        }
    }
    if let Some(listed) = session
        .metadata()
        .ok()
        .and_then(|m| m.custom(META_FEATURES))
    {
        let names: Vec<&str> = listed.split(',').map(str::trim).collect();
        if names != FEATURES {
            return Err(bad(format!(
                "trained on features [{listed}], this build expects [{}]",
                FEATURES.join(",")
            )));
        }
    }
    Ok(())
}

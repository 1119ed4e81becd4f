//! Mirror health model: the feature contract ([`features`]) and ONNX
//! inference through `ort` ([`HealthModel`]), with ONNX Runtime loaded at
//! run time from the project venv or a configured path ([`Runtime`]).
//!
//! ```no_run
//! use obs_ml::{HealthModel, Runtime, features::N_FEATURES};
//! # fn main() -> obs_ml::Result<()> {
//! let runtime = Runtime::discover()?; // OBS_ORT_DYLIB, then ./.venv/...
//! let model = HealthModel::load("ml/models/mirror_health.onnx", &runtime)?;
//! let rows: Vec<[f32; N_FEATURES]> = Vec::new();
//! for p in model.predict(&rows)? {
//!     println!("{:.2} % now, {:.0} days to threshold", p.reflectivity_650_pct, p.days_to_threshold);
//! }
//! # Ok(())
//! # }
//! ```
//!
//! The model is trained on SIMULATED data from the project's own physics
//! (`fog-node simulate`, see `ml/models/MODEL_CARD.md`) and has not been
//! validated on real telescopes.

mod error;
pub mod features;
mod model;
pub mod runtime;

pub use error::{Error, Result};
pub use features::{FEATURES, Feature, FeatureRow, N_FEATURES};
pub use model::{HealthModel, META_FEATURES, META_VERSION, ModelOptions, Prediction};
pub use runtime::{Runtime, RuntimeConfig};

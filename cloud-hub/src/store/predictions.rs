//! Predictions of the health model, kept with their lineage: the model's
//! sha256 and version, the feature vector, the input completeness and the
//! site time they are for.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::StoreResult;

/// One prediction for one installed segment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredPrediction {
    pub site: String,
    pub position: u32,
    pub serial: String,
    /// The site time the prediction is for (its latest sample), Unix seconds.
    pub as_of_unix_s: i64,
    pub computed_at_unix_ns: i64,
    pub reflectivity_650_pct: f64,
    pub days_to_threshold: f64,
    pub threshold_650_pct: f64,
    pub model_sha256: String,
    pub model_version: String,
    /// Share of the inputs that were present, 0..=1.
    pub completeness: f64,
    /// The model's inputs in `obs_ml::FEATURES` order; `None` = missing
    /// (imputed for inference as `obs_ml::FeatureRow::impute` documents).
    pub features: Vec<Option<f64>>,
    /// `ok`, `watch`, `clean_soon` or `recoat`.
    pub risk: String,
    pub risk_reason: String,
}

/// Where predictions are kept. A prediction is keyed by (site, position,
/// as_of): recomputing it for the same site time overwrites it.
#[async_trait]
pub trait PredictionStore: Send + Sync + 'static {
    async fn put_predictions(&self, predictions: &[StoredPrediction]) -> StoreResult<()>;

    /// The newest prediction of every position of `site`, by position.
    async fn latest_predictions(&self, site: &str) -> StoreResult<Vec<StoredPrediction>>;

    /// [`latest_predictions`](Self::latest_predictions) of each of `sites`,
    /// site after site in their order (the whole fleet for fleet health).
    /// Stores override it to read in one go.
    async fn latest_predictions_of_sites(
        &self,
        sites: &[String],
    ) -> StoreResult<Vec<StoredPrediction>> {
        let mut out = Vec::new();
        for site in sites {
            out.extend(self.latest_predictions(site).await?);
        }
        Ok(out)
    }

    /// Predictions made for `serial`, oldest first, at most `limit` (the newest).
    async fn predictions_of(
        &self,
        serial: &str,
        limit: usize,
    ) -> StoreResult<Vec<StoredPrediction>>;
}

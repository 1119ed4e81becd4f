//! The health engine: for every installed segment of every active site, a
//! feature row from manufacturing + maintenance + exposure + the latest
//! reflectometer reading, the ONNX model run on the rows of a site in one
//! batch (off the async runtime), a risk level, and each prediction stored
//! with its lineage. A site is evaluated as of its own latest sample time,
//! not the wall clock, so accelerated simulations and replays of old data
//! get meaningful "days to maintenance".
//!
//! It runs on a schedule and on demand ([`HealthEngine::evaluate_all`]).

pub mod features;
pub mod risk;

use std::sync::Arc;
use std::time::Duration;

use obs_ml::HealthModel;
use tokio_util::sync::CancellationToken;

use self::features::{SegmentInputs, feature_row};
use crate::api::manufacturing::lifecycle::ExposureReader;
use crate::store::StoreResult;
use crate::store::TelemetryStore;
use crate::store::predictions::{PredictionStore, StoredPrediction};
use crate::store::registry::{RegistryStore, SiteRecord, SiteState};
use crate::store::segments::{MaintenanceKind, SegmentStore};

const NS: i64 = 1_000_000_000;
/// Device and attribute prefix of reflectometer readings: `segNN_650nm`.
const REFLECTOMETER: &str = "m1/reflectometer/1";

/// Everything the engine reads and writes.
#[derive(Clone)]
pub struct HealthEngine {
    pub model: Arc<HealthModel>,
    pub telemetry: Arc<dyn TelemetryStore>,
    pub segments: Arc<dyn SegmentStore>,
    pub registry: Arc<dyn RegistryStore>,
    pub predictions: Arc<dyn PredictionStore>,
}

/// Why a segment got no prediction this round.
#[derive(Debug, Clone, PartialEq)]
pub struct Skipped {
    pub site: String,
    pub position: u32,
    pub reason: String,
}

/// What one evaluation did.
#[derive(Debug, Default)]
pub struct Evaluation {
    pub predictions: Vec<StoredPrediction>,
    pub skipped: Vec<Skipped>,
}

fn date_unix_s(date: time::Date) -> i64 {
    date.midnight().assume_utc().unix_timestamp()
}

impl HealthEngine {
    /// Evaluates every active site.
    pub async fn evaluate_all(&self) -> StoreResult<Evaluation> {
        let mut all = Evaluation::default();
        for site in self.registry.list_sites().await? {
            if site.state != SiteState::Active {
                continue;
            }
            let evaluation = self.evaluate_site(&site).await?;
            all.predictions.extend(evaluation.predictions);
            all.skipped.extend(evaluation.skipped);
        }
        Ok(all)
    }

    /// Evaluates the installed segments of one site and stores the results.
    pub async fn evaluate_site(&self, site: &SiteRecord) -> StoreResult<Evaluation> {
        let mut evaluation = Evaluation::default();
        let Some(state) = self.telemetry.load_site_state(&site.site).await? else {
            return Ok(evaluation);
        };
        let as_of_ns = state.counters.last_sample_ts_ns;
        if as_of_ns <= 0 {
            return Ok(evaluation);
        }
        let as_of_s = as_of_ns.div_euclid(NS);
        let latest = self.telemetry.latest(&site.site).await?;
        let mut reader = ExposureReader::new(self.telemetry.as_ref());
        let mut rows = Vec::new();
        let mut meta = Vec::new();
        for position in 1..=site.mirror_segments.max(1) {
            let skip = |reason: String| Skipped {
                site: site.site.clone(),
                position,
                reason,
            };
            let Some(installation) = self
                .segments
                .installation_at(&site.site, position, as_of_ns)
                .await?
            else {
                continue;
            };
            let Some(stored) = self.segments.segment(&installation.serial).await? else {
                evaluation.skipped.push(skip(format!(
                    "no manufacturing record for {}",
                    installation.serial
                )));
                continue;
            };
            let record = &stored.record;
            let maintenance = self.segments.maintenance_of(&installation.serial).await?;
            let past: Vec<_> = maintenance
                .iter()
                .filter(|m| m.at_unix_ns <= as_of_ns)
                .collect();
            let last_recoat_ns = past
                .iter()
                .filter(|m| m.kind == MaintenanceKind::Recoat)
                .map(|m| m.at_unix_ns)
                .max();
            let coated_at_s = last_recoat_ns
                .map(|ns| ns.div_euclid(NS))
                .unwrap_or_else(|| date_unix_s(record.coating_date));
            let cleanings: Vec<i64> = past
                .iter()
                .filter(|m| {
                    m.kind == MaintenanceKind::Cleaning
                        && m.at_unix_ns.div_euclid(NS) >= coated_at_s
                })
                .map(|m| m.at_unix_ns)
                .collect();
            let last_cleaning_s = cleanings.iter().max().map(|ns| ns.div_euclid(NS));
            let installed_s = installation.installed_at_unix_ns.div_euclid(NS);
            let maintenance_s = last_cleaning_s.unwrap_or(coated_at_s);
            let (since_maintenance, since_recoat) =
                if reader.site_latest(&site.site).await?.is_some() {
                    (
                        Some(
                            reader
                                .during(
                                    &installation,
                                    maintenance_s.saturating_mul(NS),
                                    Some(as_of_ns),
                                )
                                .await?,
                        ),
                        Some(
                            reader
                                .during(
                                    &installation,
                                    coated_at_s.saturating_mul(NS),
                                    Some(as_of_ns),
                                )
                                .await?,
                        ),
                    )
                } else {
                    (None, None)
                };
            // The newest 650 nm reading: the reflectometer's, or a
            // maintenance record's "after" (else "before") value.
            let attribute = format!("seg{position:02}_650nm");
            let reflectometer = latest
                .iter()
                .find(|s| s.device == REFLECTOMETER && s.attribute == attribute)
                .and_then(|s| {
                    crate::ingest::rollup::numeric_value(s)
                        .map(|v| (v, s.ts_unix_ns.div_euclid(NS)))
                })
                .filter(|(_, at)| *at >= installed_s && *at <= as_of_s);
            let from_maintenance = past
                .iter()
                .filter_map(|m| {
                    m.after
                        .get(&650)
                        .or_else(|| m.before.get(&650))
                        .map(|v| (*v, m.at_unix_ns.div_euclid(NS)))
                })
                .max_by_key(|(_, at)| *at);
            let last_measured_650 = [reflectometer, from_maintenance]
                .into_iter()
                .flatten()
                .max_by_key(|(_, at)| *at);
            let inputs = SegmentInputs {
                as_of_unix_s: as_of_s,
                ring: Some(record.ring),
                fresh_650_pct: record.fresh_reflectivity_at(650),
                microroughness_angstrom_rms: Some(record.microroughness_angstrom_rms),
                surface_figure_error_nm_rms: Some(record.surface_figure_error_nm_rms),
                coated_at_unix_s: Some(coated_at_s),
                last_cleaning_at_unix_s: last_cleaning_s,
                cleanings_since_recoat: cleanings.len() as u32,
                exposure_since_maintenance: since_maintenance,
                exposure_since_recoat: since_recoat,
                last_measured_650,
            };
            let row = feature_row(&inputs);
            match row.impute() {
                Ok(values) => {
                    rows.push(values);
                    meta.push((position, installation.serial.clone(), row, inputs));
                }
                Err(error) => evaluation.skipped.push(skip(format!("{error}"))),
            }
        }
        if rows.is_empty() {
            return Ok(evaluation);
        }
        let outputs = self.model.predict_async(rows).await.map_err(|e| {
            crate::store::StoreError::new("model", format!("predicting site {}", site.site), e)
        })?;
        let computed_at = crate::time::now_unix_ns();
        for ((position, serial, row, inputs), output) in meta.into_iter().zip(outputs) {
            let fresh = inputs
                .fresh_650_pct
                .unwrap_or(f64::from(obs_ml::features::FRESH_ALUMINIUM_650_PCT));
            let threshold = f64::from(obs_ml::features::threshold_650_pct(fresh as f32));
            let reflectivity = f64::from(output.reflectivity_650_pct);
            let days = f64::from(output.days_to_threshold);
            let coating_age = row.get(obs_ml::Feature::CoatingAgeDays).map(f64::from);
            let (risk, reason) = risk::assess(reflectivity, days, threshold, coating_age);
            evaluation.predictions.push(StoredPrediction {
                site: site.site.clone(),
                position,
                serial,
                as_of_unix_s: as_of_s,
                computed_at_unix_ns: computed_at,
                reflectivity_650_pct: reflectivity,
                days_to_threshold: days,
                threshold_650_pct: threshold,
                model_sha256: self.model.sha256().to_owned(),
                model_version: self.model.version().to_owned(),
                completeness: f64::from(row.completeness()),
                features: row.values().iter().map(|v| v.map(f64::from)).collect(),
                risk: risk::risk_name(risk).to_owned(),
                risk_reason: reason,
            });
        }
        self.predictions
            .put_predictions(&evaluation.predictions)
            .await?;
        crate::metrics::predictions_made(&site.site, evaluation.predictions.len());
        Ok(evaluation)
    }

    /// Evaluates every `interval` until `shutdown`.
    pub async fn run(self, interval: Duration, shutdown: CancellationToken) {
        let mut ticker = tokio::time::interval(interval);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = ticker.tick() => {}
            }
            match self.evaluate_all().await {
                Ok(evaluation) => tracing::debug!(
                    predictions = evaluation.predictions.len(),
                    skipped = evaluation.skipped.len(),
                    "health evaluated"
                ),
                Err(error) => tracing::warn!(%error, "health evaluation failed"),
            }
        }
    }
}

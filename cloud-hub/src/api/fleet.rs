//! `FleetHealthService` (role viewer): per site and per installed segment,
//! where it came from, what it has lived through since its last
//! maintenance, and what the model predicts, with the model's lineage.

use std::collections::HashMap;
use std::pin::Pin;
use std::time::Duration;

use futures::Stream;
use obs_common::site::validate_site_id;
use obs_ml::Feature;
use obs_proto::v1::fleet_health_service_server::FleetHealthService;
use obs_proto::v1::{
    Exposure, Feature as ApiFeature, FleetHealthUpdate, GetFleetHealthRequest,
    GetFleetHealthResponse, Location, PipelineState, Prediction, Provenance, Risk, SegmentHealth,
    SiteHealth, WatchFleetHealthRequest,
};
use tonic::{Request, Response, Status};

use super::{ApiContext, store_status, time_from_ns};
use crate::access::Role;
use crate::health::risk::risk_of_name;
use crate::store::predictions::StoredPrediction;
use crate::store::registry::SiteState;
use crate::store::segments::{MaintenanceKind, MaintenanceRecord, StoredSegment};

/// How often `WatchFleetHealth` looks for changes.
pub const WATCH_INTERVAL: Duration = Duration::from_secs(5);

pub struct FleetApi {
    context: ApiContext,
}

impl FleetApi {
    pub fn new(context: ApiContext) -> Self {
        FleetApi { context }
    }
}

fn feature(p: &StoredPrediction, f: Feature) -> Option<f64> {
    p.features.get(f as usize).copied().flatten()
}

fn maintenance_kind(kind: MaintenanceKind) -> i32 {
    match kind {
        MaintenanceKind::Cleaning => obs_proto::v1::MaintenanceKind::Cleaning as i32,
        MaintenanceKind::Recoat => obs_proto::v1::MaintenanceKind::Recoat as i32,
        MaintenanceKind::Inspection => obs_proto::v1::MaintenanceKind::Inspection as i32,
    }
}

/// Most urgent first: highest risk, then fewest days.
fn urgency(a: &SegmentHealth, b: &SegmentHealth) -> std::cmp::Ordering {
    let days = |s: &SegmentHealth| {
        s.prediction
            .as_ref()
            .map(|p| p.days_to_threshold)
            .unwrap_or(f64::MAX)
    };
    b.risk
        .cmp(&a.risk)
        .then(days(a).total_cmp(&days(b)))
        .then(a.position.cmp(&b.position))
}

/// The fleet as the request asks for it: four store reads whatever the
/// fleet's size (sites, their latest predictions, those segments with their
/// maintenance, the sites' ingest counters).
pub async fn fleet_health(
    context: &ApiContext,
    request: &GetFleetHealthRequest,
) -> Result<GetFleetHealthResponse, Status> {
    let sites: Vec<_> = context
        .registry
        .list_sites()
        .await
        .map_err(store_status)?
        .into_iter()
        .filter(|site| {
            site.state == SiteState::Active
                && (request.sites.is_empty() || request.sites.contains(&site.site))
        })
        .collect();
    let names: Vec<String> = sites.iter().map(|site| site.site.clone()).collect();
    let predictions = context
        .predictions
        .latest_predictions_of_sites(&names)
        .await
        .map_err(store_status)?;
    let serials: Vec<String> = predictions.iter().map(|p| p.serial.clone()).collect();
    let details = context
        .segments
        .segments_with_maintenance(&serials)
        .await
        .map_err(store_status)?;
    let counters = context
        .telemetry
        .ingest_counters(&names)
        .await
        .map_err(store_status)?;
    let min_risk = Risk::try_from(request.min_risk).unwrap_or(Risk::Unspecified);
    let mut response = GetFleetHealthResponse {
        generated_at: Some(time_from_ns(crate::time::now_unix_ns())),
        ..Default::default()
    };
    let mut by_site: HashMap<&str, Vec<SegmentHealth>> = HashMap::new();
    for (p, (stored, maintenance)) in predictions.iter().zip(&details) {
        let Some(stored) = stored else {
            continue;
        };
        if !request.coating_batch.is_empty() && stored.record.coating_batch != request.coating_batch
        {
            continue;
        }
        let risk = risk_of_name(&p.risk);
        if risk < min_risk {
            continue;
        }
        if response.model_sha256.is_empty() {
            response.model_sha256 = p.model_sha256.clone();
            response.model_version = p.model_version.clone();
        }
        by_site
            .entry(p.site.as_str())
            .or_default()
            .push(segment_health(
                p,
                stored,
                maintenance,
                risk,
                request.include_features,
            ));
    }
    for site in &sites {
        let mut segments = by_site.remove(site.site.as_str()).unwrap_or_default();
        segments.sort_by(urgency);
        let live = context.live.get(&site.site);
        let last_sample = counters
            .get(&site.site)
            .map(|c| c.last_sample_ts_ns)
            .unwrap_or_default();
        response.sites.push(SiteHealth {
            site: site.site.clone(),
            display_name: site.display_name.clone(),
            location: site.location.as_ref().map(|l| Location {
                latitude_deg: l.latitude_deg,
                longitude_deg: l.longitude_deg,
                altitude_m: l.altitude_m,
            }),
            as_of: (last_sample > 0).then(|| time_from_ns(last_sample)),
            pipeline: Some(PipelineState {
                connected: live.connected(),
                backlog_batches: live
                    .status
                    .as_ref()
                    .map(|s| s.backlog_batches)
                    .unwrap_or_default(),
                last_ack_at: live.last_ack_unix_ns.map(time_from_ns),
                last_sample_at: (last_sample > 0).then(|| time_from_ns(last_sample)),
            }),
            segments,
        });
    }
    Ok(response)
}

/// One installed segment: its record, its last maintenance up to the
/// prediction's site time, and the prediction.
fn segment_health(
    p: &StoredPrediction,
    stored: &StoredSegment,
    maintenance: &[MaintenanceRecord],
    risk: Risk,
    include_features: bool,
) -> SegmentHealth {
    let record = &stored.record;
    let last = maintenance
        .iter()
        .filter(|m| {
            m.kind != MaintenanceKind::Inspection
                && m.at_unix_ns.div_euclid(1_000_000_000) <= p.as_of_unix_s
        })
        .max_by_key(|m| m.at_unix_ns);
    let measured_age = feature(p, Feature::LastMeasuredAgeDays);
    let proto_record = obs_proto::v1::SegmentRecord::from(record);
    SegmentHealth {
        site: p.site.clone(),
        position: p.position,
        serial: p.serial.clone(),
        provenance: Some(Provenance {
            segment_type: record.segment_type.clone(),
            ring: record.ring,
            substrate: proto_record.substrate,
            coating_kind: proto_record.coating_kind,
            coating_batch: record.coating_batch.clone(),
            coated_at: proto_record.coated_at,
            fresh_reflectivity_650_pct: record.fresh_reflectivity_at(650).unwrap_or_default(),
            surface_figure_error_nm_rms: record.surface_figure_error_nm_rms,
            microroughness_angstrom_rms: record.microroughness_angstrom_rms,
            acceptance_passed: record.acceptance_passed,
            record_version: stored.version,
        }),
        exposure_since_maintenance: Some(Exposure {
            open_dome_hours: feature(p, Feature::OpenDomeHoursSinceMaintenance).unwrap_or_default(),
            dust_dose_ug_m3_h: feature(p, Feature::DustDoseSinceMaintenanceUgM3H)
                .unwrap_or_default(),
            calima_events: feature(p, Feature::CalimaEventsSinceMaintenance).unwrap_or_default()
                as u32,
            humid_hours: feature(p, Feature::HumidHoursSinceMaintenance).unwrap_or_default(),
            dew_risk_hours: feature(p, Feature::DewRiskHoursSinceMaintenance).unwrap_or_default(),
            days_with_data: 0,
        }),
        last_maintenance_kind: last.map(|m| maintenance_kind(m.kind)).unwrap_or_default(),
        last_maintenance_at: last.map(|m| time_from_ns(m.at_unix_ns)),
        last_measured_reflectivity_650_pct: feature(p, Feature::LastMeasuredReflectivity650Pct),
        last_measured_at: measured_age.map(|age| {
            time_from_ns((p.as_of_unix_s - (age * 86_400.0) as i64).saturating_mul(1_000_000_000))
        }),
        prediction: Some(prediction_message(p, include_features)),
        risk: risk as i32,
        risk_reason: p.risk_reason.clone(),
    }
}

/// A stored prediction as the API shows it, with or without its inputs.
pub fn prediction_message(p: &StoredPrediction, with_features: bool) -> Prediction {
    Prediction {
        site: p.site.clone(),
        position: p.position,
        serial: p.serial.clone(),
        as_of: Some(time_from_ns(p.as_of_unix_s.saturating_mul(1_000_000_000))),
        reflectivity_650_pct: p.reflectivity_650_pct,
        days_to_threshold: p.days_to_threshold,
        threshold_650_pct: p.threshold_650_pct,
        model_sha256: p.model_sha256.clone(),
        model_version: p.model_version.clone(),
        completeness: p.completeness,
        features: if with_features {
            obs_ml::FEATURES
                .iter()
                .zip(&p.features)
                .map(|(name, value)| ApiFeature {
                    name: (*name).to_owned(),
                    value: *value,
                })
                .collect()
        } else {
            Vec::new()
        },
        risk: risk_of_name(&p.risk) as i32,
        computed_at: Some(time_from_ns(p.computed_at_unix_ns)),
    }
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<FleetHealthUpdate, Status>> + Send>>;

#[tonic::async_trait]
impl FleetHealthService for FleetApi {
    async fn get_fleet_health(
        &self,
        request: Request<GetFleetHealthRequest>,
    ) -> Result<Response<GetFleetHealthResponse>, Status> {
        let subject = request.get_ref().sites.join(",");
        self.context
            .auth
            .authorize(
                &request,
                Role::Viewer,
                "FleetHealthService/GetFleetHealth",
                &subject,
            )
            .await?;
        let request = request.into_inner();
        for site in &request.sites {
            validate_site_id(site).map_err(|e| Status::invalid_argument(format!("sites: {e}")))?;
        }
        if request.refresh {
            let engine = self.context.health.as_ref().ok_or_else(|| {
                Status::failed_precondition(
                    "the health engine is disabled (health.enabled = false)",
                )
            })?;
            let sites = self
                .context
                .registry
                .list_sites()
                .await
                .map_err(store_status)?;
            for site in sites
                .iter()
                .filter(|s| request.sites.is_empty() || request.sites.contains(&s.site))
            {
                if site.state == SiteState::Active {
                    engine.evaluate_site(site).await.map_err(store_status)?;
                }
            }
        }
        Ok(Response::new(fleet_health(&self.context, &request).await?))
    }

    type WatchFleetHealthStream = WatchStream;

    async fn watch_fleet_health(
        &self,
        request: Request<WatchFleetHealthRequest>,
    ) -> Result<Response<Self::WatchFleetHealthStream>, Status> {
        self.context
            .auth
            .authorize(
                &request,
                Role::Viewer,
                "FleetHealthService/WatchFleetHealth",
                "",
            )
            .await?;
        let filter = request.into_inner().filter.unwrap_or_default();
        let context = self.context.clone();
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tokio::spawn(async move {
            let mut seen: HashMap<(String, u32), (i64, i32)> = HashMap::new();
            let mut first = true;
            loop {
                let snapshot = match fleet_health(&context, &filter).await {
                    Ok(snapshot) => snapshot,
                    Err(status) => {
                        let _ = tx.send(Err(status)).await;
                        return;
                    }
                };
                let mut changed = Vec::new();
                for segment in snapshot.sites.iter().flat_map(|s| &s.segments) {
                    let key = (segment.site.clone(), segment.position);
                    let as_of = segment
                        .prediction
                        .as_ref()
                        .and_then(|p| p.as_of.as_ref())
                        .map(|t| t.seconds)
                        .unwrap_or(0);
                    let value = (as_of, segment.risk);
                    if seen.insert(key, value) != Some(value) {
                        changed.push(segment.clone());
                    }
                }
                let update = if first {
                    FleetHealthUpdate {
                        snapshot: Some(snapshot),
                        changed: Vec::new(),
                    }
                } else {
                    FleetHealthUpdate {
                        snapshot: None,
                        changed,
                    }
                };
                if (first || !update.changed.is_empty()) && tx.send(Ok(update)).await.is_err() {
                    return;
                }
                first = false;
                tokio::time::sleep(WATCH_INTERVAL).await;
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }
}

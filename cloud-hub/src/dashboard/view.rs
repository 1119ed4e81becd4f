//! The dashboard's JSON: the fleet ([`fleet_view`], from
//! [`crate::api::fleet::fleet_health`]) and one segment's lifecycle
//! ([`lifecycle_view`], from [`crate::api::manufacturing::lifecycle::lifecycle`])
//! in the shape the page draws. Times are Unix milliseconds.

use std::collections::HashMap;

use obs_proto::v1::{GetFleetHealthRequest, Reflectivity, SegmentHealth, SegmentLifecycle};
use prost_types::Timestamp;
use serde::Serialize;
use tonic::Status;

use super::layout::{Band, LegendEntry, RECOAT_OUTLINE, hex_centre, legend};
use crate::api::manufacturing::cohorts::{REFERENCE_NM, REFLECTOMETER};
use crate::api::manufacturing::lifecycle::{ExposureReader, lifecycle};
use crate::api::{ApiContext, manufacturing_status, store_status, time_to_ns};
use crate::health::risk::risk_name;
use crate::ingest::Resolution;
use crate::store::SeriesQuery;

/// Said next to every prediction.
pub const MODEL_NOTE: &str = "Predictions come from a model trained on simulated data \
     (the same physics as the telescope simulators), not on measurements of real mirrors.";
/// Most reflectometer hours read per installation.
const MAX_READINGS: usize = 10_000;

fn ms(ts: Option<&Timestamp>) -> Option<i64> {
    ts.map(|t| time_to_ns(t).div_euclid(1_000_000))
}

fn at_650(readings: &[Reflectivity]) -> Option<f64> {
    readings
        .iter()
        .find(|r| r.wavelength_nm == REFERENCE_NM)
        .map(|r| r.percent)
}

/// A proto enum value's name without its prefix, lower case:
/// `SUBSTRATE_ZERODUR` → `zerodur`.
fn enum_name(name: &str, prefix: &str) -> String {
    name.strip_prefix(prefix).unwrap_or(name).to_lowercase()
}

/// The whole page's data.
#[derive(Debug, Serialize)]
pub struct FleetView {
    pub generated_at_ms: i64,
    /// sha256 of the model the newest predictions came from (empty: none).
    pub model_sha256: String,
    pub model_version: String,
    pub model_note: &'static str,
    pub legend: Vec<LegendEntry>,
    pub recoat_outline: &'static str,
    pub sites: Vec<SiteView>,
}

#[derive(Debug, Serialize)]
pub struct LocationView {
    pub latitude_deg: f64,
    pub longitude_deg: f64,
    pub altitude_m: f64,
}

#[derive(Debug, Serialize)]
pub struct PipelineView {
    pub connected: bool,
    pub backlog_batches: u64,
    pub last_ack_ms: Option<i64>,
    pub last_sample_ms: Option<i64>,
}

/// One telescope.
#[derive(Debug, Serialize)]
pub struct SiteView {
    pub site: String,
    pub display_name: String,
    pub location: Option<LocationView>,
    /// The site's clock: its latest sample, what predictions are made for.
    pub as_of_ms: Option<i64>,
    pub pipeline: PipelineView,
    pub mirror_segments: u32,
    /// Every position of the mirror, by position.
    pub segments: Vec<SegmentView>,
}

#[derive(Debug, Serialize)]
pub struct PredictionView {
    pub reflectivity_650_pct: f64,
    pub days_to_threshold: f64,
    pub threshold_650_pct: f64,
    pub completeness: f64,
    pub as_of_ms: Option<i64>,
}

/// One position of a mirror, installed or empty.
#[derive(Debug, Serialize)]
pub struct SegmentView {
    pub position: u32,
    pub ring: u32,
    /// Centre in units of the centre-to-centre distance (see `layout`).
    pub x: f64,
    pub y: f64,
    /// The installed segment; `None` for an empty position.
    pub serial: Option<String>,
    pub prediction: Option<PredictionView>,
    /// `ok`, `watch`, `clean_soon`, `recoat`, or `unspecified`.
    pub risk: &'static str,
    pub risk_reason: String,
    pub band: Band,
    pub colour: &'static str,
    pub recoat: bool,
    pub segment_type: String,
    pub coating_batch: String,
    pub last_measured_reflectivity_650_pct: Option<f64>,
    pub open_dome_hours_since_maintenance: Option<f64>,
    pub dust_dose_since_maintenance_ug_m3_h: Option<f64>,
}

impl SegmentView {
    fn from_health(health: &SegmentHealth) -> Self {
        let risk = obs_proto::v1::Risk::try_from(health.risk).unwrap_or_default();
        let prediction = health.prediction.as_ref();
        let band = Band::of(prediction.map(|p| p.days_to_threshold));
        let centre = hex_centre(health.position);
        let exposure = health.exposure_since_maintenance.as_ref();
        SegmentView {
            position: health.position,
            ring: centre.map(|c| c.ring).unwrap_or_default(),
            x: centre.map(|c| c.x).unwrap_or_default(),
            y: centre.map(|c| c.y).unwrap_or_default(),
            serial: Some(health.serial.clone()),
            prediction: prediction.map(|p| PredictionView {
                reflectivity_650_pct: p.reflectivity_650_pct,
                days_to_threshold: p.days_to_threshold,
                threshold_650_pct: p.threshold_650_pct,
                completeness: p.completeness,
                as_of_ms: ms(p.as_of.as_ref()),
            }),
            risk: risk_name(risk),
            risk_reason: health.risk_reason.clone(),
            band,
            colour: band.colour(),
            recoat: risk == obs_proto::v1::Risk::Recoat,
            segment_type: health
                .provenance
                .as_ref()
                .map(|p| p.segment_type.clone())
                .unwrap_or_default(),
            coating_batch: health
                .provenance
                .as_ref()
                .map(|p| p.coating_batch.clone())
                .unwrap_or_default(),
            last_measured_reflectivity_650_pct: health.last_measured_reflectivity_650_pct,
            open_dome_hours_since_maintenance: exposure.map(|e| e.open_dome_hours),
            dust_dose_since_maintenance_ug_m3_h: exposure.map(|e| e.dust_dose_ug_m3_h),
        }
    }

    /// A position without a prediction: its installed segment, if any.
    fn without_prediction(position: u32, serial: Option<String>) -> Self {
        let centre = hex_centre(position);
        SegmentView {
            position,
            ring: centre.map(|c| c.ring).unwrap_or_default(),
            x: centre.map(|c| c.x).unwrap_or_default(),
            y: centre.map(|c| c.y).unwrap_or_default(),
            risk_reason: if serial.is_some() {
                "no prediction yet".into()
            } else {
                "no segment installed".into()
            },
            serial,
            prediction: None,
            risk: risk_name(obs_proto::v1::Risk::Unspecified),
            band: Band::Unknown,
            colour: Band::Unknown.colour(),
            recoat: false,
            segment_type: String::new(),
            coating_batch: String::new(),
            last_measured_reflectivity_650_pct: None,
            open_dome_hours_since_maintenance: None,
            dust_dose_since_maintenance_ug_m3_h: None,
        }
    }
}

/// The fleet (every active site, or only `site`), each mirror position
/// placed and coloured.
pub async fn fleet_view(context: &ApiContext, site: Option<&str>) -> Result<FleetView, Status> {
    let request = GetFleetHealthRequest {
        sites: site.map(|s| vec![s.to_owned()]).unwrap_or_default(),
        ..Default::default()
    };
    let health = crate::api::fleet::fleet_health(context, &request).await?;
    let now = crate::time::now_unix_ns();
    let mut sites = Vec::with_capacity(health.sites.len());
    for site in health.sites {
        let mirror_segments = context.mirror_layout.mirror_segments(&site.site).await;
        let mut by_position: HashMap<u32, SegmentView> = site
            .segments
            .iter()
            .map(|s| (s.position, SegmentView::from_health(s)))
            .collect();
        let pipeline = site.pipeline.unwrap_or_default();
        let last_sample_ms = ms(pipeline.last_sample_at.as_ref());
        // Installations are looked up at the site's clock or now, whichever
        // is later (an accelerated simulation may run ahead of the wall).
        let at = last_sample_ms.map_or(now, |t| t.saturating_mul(1_000_000).max(now));
        let mut segments = Vec::with_capacity(mirror_segments as usize);
        for position in 1..=mirror_segments {
            let view = match by_position.remove(&position) {
                Some(view) => view,
                None => {
                    let installed = context
                        .segments
                        .installation_at(&site.site, position, at)
                        .await
                        .map_err(store_status)?;
                    SegmentView::without_prediction(position, installed.map(|i| i.serial))
                }
            };
            segments.push(view);
        }
        sites.push(SiteView {
            site: site.site,
            display_name: site.display_name,
            location: site.location.map(|l| LocationView {
                latitude_deg: l.latitude_deg,
                longitude_deg: l.longitude_deg,
                altitude_m: l.altitude_m,
            }),
            as_of_ms: ms(site.as_of.as_ref()),
            pipeline: PipelineView {
                connected: pipeline.connected,
                backlog_batches: pipeline.backlog_batches,
                last_ack_ms: ms(pipeline.last_ack_at.as_ref()),
                last_sample_ms,
            },
            mirror_segments,
            segments,
        });
    }
    Ok(FleetView {
        generated_at_ms: now.div_euclid(1_000_000),
        model_sha256: health.model_sha256,
        model_version: health.model_version,
        model_note: MODEL_NOTE,
        legend: legend(),
        recoat_outline: RECOAT_OUTLINE,
        sites,
    })
}

/// The manufacturing record, in brief.
#[derive(Debug, Default, Serialize)]
pub struct RecordView {
    pub serial: String,
    pub segment_type: String,
    pub ring: u32,
    pub substrate: String,
    pub coating_kind: String,
    pub coating_batch: String,
    pub coating_plant: String,
    pub coated_at_ms: Option<i64>,
    pub fresh_reflectivity_650_pct: Option<f64>,
    pub surface_figure_error_nm_rms: f64,
    pub microroughness_angstrom_rms: f64,
    pub acceptance_passed: bool,
    /// The current version (1 = never replaced).
    pub version: u32,
}

#[derive(Debug, Serialize)]
pub struct InstallationView {
    pub site: String,
    pub position: u32,
    pub from_ms: Option<i64>,
    /// `None` while installed.
    pub to_ms: Option<i64>,
    pub open_dome_hours: f64,
    pub dust_dose_ug_m3_h: f64,
}

#[derive(Debug, Serialize)]
pub struct MaintenanceView {
    /// `cleaning`, `recoat` or `inspection`.
    pub kind: String,
    pub at_ms: Option<i64>,
    pub before_650_pct: Option<f64>,
    pub after_650_pct: Option<f64>,
    pub source: String,
    pub site: String,
    pub position: u32,
}

/// A measured reflectivity at 650 nm.
#[derive(Debug, Serialize)]
pub struct MeasuredPoint {
    pub at_ms: i64,
    pub reflectivity_650_pct: f64,
    /// `reflectometer`, or `before cleaning` / `after recoat` / ...
    pub source: String,
}

/// A stored prediction.
#[derive(Debug, Serialize)]
pub struct PredictedPoint {
    pub as_of_ms: i64,
    pub reflectivity_650_pct: f64,
    pub days_to_threshold: f64,
    pub threshold_650_pct: f64,
}

/// One segment's life, for the side panel and its chart.
#[derive(Debug, Serialize)]
pub struct LifecycleView {
    pub serial: String,
    pub record: RecordView,
    pub installations: Vec<InstallationView>,
    pub maintenance: Vec<MaintenanceView>,
    /// Maintenance readings and reflectometer readings (hourly means while
    /// installed), oldest first.
    pub measured: Vec<MeasuredPoint>,
    /// The stored predictions, oldest first.
    pub predicted: Vec<PredictedPoint>,
    pub model_note: &'static str,
}

fn record_view(lifecycle: &SegmentLifecycle) -> RecordView {
    let Some(stored) = lifecycle.record.as_ref() else {
        return RecordView::default();
    };
    let Some(r) = stored.record.as_ref() else {
        return RecordView::default();
    };
    RecordView {
        serial: r.serial.clone(),
        segment_type: r.segment_type.clone(),
        ring: r.ring,
        substrate: enum_name(r.substrate().as_str_name(), "SUBSTRATE_"),
        coating_kind: enum_name(r.coating_kind().as_str_name(), "COATING_KIND_"),
        coating_batch: r.coating_batch.clone(),
        coating_plant: r.coating_plant.clone(),
        coated_at_ms: ms(r.coated_at.as_ref()),
        fresh_reflectivity_650_pct: at_650(&r.fresh_reflectivity),
        surface_figure_error_nm_rms: r.surface_figure_error_nm_rms,
        microroughness_angstrom_rms: r.microroughness_angstrom_rms,
        acceptance_passed: r.acceptance_passed,
        version: stored.version,
    }
}

/// The lifecycle of `serial` with its reflectivity measured and predicted.
pub async fn lifecycle_view(context: &ApiContext, serial: &str) -> Result<LifecycleView, Status> {
    let life = lifecycle(
        context.segments.as_ref(),
        context.telemetry.as_ref(),
        Some(context.predictions.as_ref()),
        serial,
    )
    .await
    .map_err(manufacturing_status)?;
    let mut measured = Vec::new();
    let maintenance: Vec<MaintenanceView> = life
        .maintenance
        .iter()
        .map(|m| {
            let kind = enum_name(m.kind().as_str_name(), "MAINTENANCE_KIND_");
            let at_ms = ms(m.at.as_ref());
            let (before, after) = (
                at_650(&m.reflectivity_before),
                at_650(&m.reflectivity_after),
            );
            if let Some(at) = at_ms {
                for (when, value) in [("before", before), ("after", after)] {
                    if let Some(value) = value {
                        measured.push(MeasuredPoint {
                            at_ms: at,
                            reflectivity_650_pct: value,
                            source: format!("{when} {kind}"),
                        });
                    }
                }
            }
            MaintenanceView {
                kind,
                at_ms,
                before_650_pct: before,
                after_650_pct: after,
                source: m.source.clone(),
                site: m.site.clone(),
                position: m.position,
            }
        })
        .collect();
    measured.extend(reflectometer_readings(context, serial).await?);
    measured.sort_by_key(|p| p.at_ms);
    let installations = life
        .installations
        .iter()
        .filter_map(|period| {
            let i = period.installation.as_ref()?;
            let exposure = period.exposure.unwrap_or_default();
            Some(InstallationView {
                site: i.site.clone(),
                position: i.position,
                from_ms: ms(i.installed_at.as_ref()),
                to_ms: ms(i.removed_at.as_ref()),
                open_dome_hours: exposure.open_dome_hours,
                dust_dose_ug_m3_h: exposure.dust_dose_ug_m3_h,
            })
        })
        .collect();
    let predicted = life
        .predictions
        .iter()
        .filter_map(|p| {
            Some(PredictedPoint {
                as_of_ms: ms(p.as_of.as_ref())?,
                reflectivity_650_pct: p.reflectivity_650_pct,
                days_to_threshold: p.days_to_threshold,
                threshold_650_pct: p.threshold_650_pct,
            })
        })
        .collect();
    Ok(LifecycleView {
        serial: serial.to_owned(),
        record: record_view(&life),
        installations,
        maintenance,
        measured,
        predicted,
        model_note: MODEL_NOTE,
    })
}

/// Reflectometer readings at 650 nm of the segment's positions while it
/// was installed there (`m1/reflectometer/1` `segNN_650nm`, hourly means,
/// as the cohorts read them).
async fn reflectometer_readings(
    context: &ApiContext,
    serial: &str,
) -> Result<Vec<MeasuredPoint>, Status> {
    let installations = context
        .segments
        .installations_of(serial)
        .await
        .map_err(store_status)?;
    let mut reader = ExposureReader::new(context.telemetry.as_ref());
    let mut points = Vec::new();
    for i in installations {
        let Some(end) = reader.end_of(&i).await.map_err(store_status)? else {
            continue;
        };
        let query = SeriesQuery {
            site: i.site.clone(),
            device: REFLECTOMETER.into(),
            attribute: format!("seg{:02}_{REFERENCE_NM}nm", i.position),
            from_ns: i.installed_at_unix_ns,
            to_ns: end.saturating_add(1),
            limit: MAX_READINGS,
        };
        if query.from_ns >= query.to_ns {
            continue;
        }
        let rollups = context
            .telemetry
            .query_rollups(&query, Resolution::Hour)
            .await
            .map_err(store_status)?;
        points.extend(
            rollups
                .into_iter()
                .filter(|p| p.aggregate.count > 0)
                .map(|p| MeasuredPoint {
                    at_ms: p.bucket_start.saturating_mul(1000),
                    reflectivity_650_pct: p.aggregate.sum / p.aggregate.count as f64,
                    source: "reflectometer".into(),
                }),
        );
    }
    Ok(points)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enum_names_lose_their_prefix() {
        assert_eq!(enum_name("SUBSTRATE_ZERODUR", "SUBSTRATE_"), "zerodur");
        assert_eq!(
            enum_name("MAINTENANCE_KIND_CLEANING", "MAINTENANCE_KIND_"),
            "cleaning"
        );
    }

    #[test]
    fn an_empty_position_is_grey_and_placed() {
        let view = SegmentView::without_prediction(7, None);
        assert_eq!((view.ring, view.x, view.y), (2, 0.0, -2.0));
        assert_eq!(view.colour, Band::Unknown.colour());
        assert_eq!(view.risk_reason, "no segment installed");
    }
}

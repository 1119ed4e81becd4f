//! `obsctl fleet health`: every installed segment of the fleet, most urgent
//! first.

use obs_proto::v1::fleet_health_service_client::FleetHealthServiceClient;
use obs_proto::v1::{GetFleetHealthRequest, Risk};
use serde::Serialize;

use crate::cli::{FleetCommand, Format};
use crate::client::{Hub, status_error};
use crate::output::{Table, print_json, rfc3339};

#[derive(Serialize)]
struct Row {
    site: String,
    position: u32,
    serial: String,
    risk: String,
    reason: String,
    predicted_reflectivity_650_pct: Option<f64>,
    days_to_threshold: Option<f64>,
    threshold_650_pct: Option<f64>,
    last_measured_650_pct: Option<f64>,
    coating_batch: String,
    open_dome_hours_since_maintenance: f64,
    dust_dose_since_maintenance_ug_m3_h: f64,
    completeness: Option<f64>,
    model_sha256: String,
    as_of: Option<String>,
}

fn risk_name(risk: i32) -> String {
    Risk::try_from(risk)
        .map(|r| r.as_str_name().trim_start_matches("RISK_").to_lowercase())
        .unwrap_or_default()
}

/// Runs a fleet command.
pub async fn run(hub: &Hub, command: FleetCommand, format: Format) -> anyhow::Result<()> {
    let FleetCommand::Health {
        site,
        min_risk,
        coating_batch,
        refresh,
    } = command;
    let min_risk = match min_risk.as_deref() {
        None => Risk::Unspecified,
        Some("ok") => Risk::Ok,
        Some("watch") => Risk::Watch,
        Some("clean-soon") => Risk::CleanSoon,
        Some("recoat") => Risk::Recoat,
        Some(other) => anyhow::bail!("--min-risk {other:?}: use ok, watch, clean-soon or recoat"),
    };
    let request = GetFleetHealthRequest {
        sites: site,
        min_risk: min_risk as i32,
        coating_batch: coating_batch.unwrap_or_default(),
        refresh,
        // The table and its JSON show no model inputs.
        include_features: false,
    };
    let response = FleetHealthServiceClient::new(hub.channel.clone())
        .get_fleet_health(hub.request(request)?)
        .await
        .map_err(|s| status_error("GetFleetHealth", s))?
        .into_inner();
    let mut rows: Vec<Row> = Vec::new();
    for site in &response.sites {
        for s in &site.segments {
            let p = s.prediction.as_ref();
            let e = s.exposure_since_maintenance.unwrap_or_default();
            rows.push(Row {
                site: s.site.clone(),
                position: s.position,
                serial: s.serial.clone(),
                risk: risk_name(s.risk),
                reason: s.risk_reason.clone(),
                predicted_reflectivity_650_pct: p.map(|p| p.reflectivity_650_pct),
                days_to_threshold: p.map(|p| p.days_to_threshold),
                threshold_650_pct: p.map(|p| p.threshold_650_pct),
                last_measured_650_pct: s.last_measured_reflectivity_650_pct,
                coating_batch: s
                    .provenance
                    .as_ref()
                    .map(|p| p.coating_batch.clone())
                    .unwrap_or_default(),
                open_dome_hours_since_maintenance: e.open_dome_hours,
                dust_dose_since_maintenance_ug_m3_h: e.dust_dose_ug_m3_h,
                completeness: p.map(|p| p.completeness),
                model_sha256: p.map(|p| p.model_sha256.clone()).unwrap_or_default(),
                as_of: p.and_then(|p| p.as_of.as_ref()).map(rfc3339),
            });
        }
    }
    // The hub sorts each site; across sites, most urgent first too.
    rows.sort_by(|a, b| {
        let rank = |r: &Row| match r.risk.as_str() {
            "recoat" => 0,
            "clean_soon" => 1,
            "watch" => 2,
            _ => 3,
        };
        rank(a).cmp(&rank(b)).then(
            a.days_to_threshold
                .unwrap_or(f64::MAX)
                .total_cmp(&b.days_to_threshold.unwrap_or(f64::MAX)),
        )
    });
    match format {
        Format::Json => print_json(&rows),
        Format::Table => {
            let mut table = Table::new([
                "site",
                "pos",
                "serial",
                "risk",
                "R650 pred",
                "days",
                "last meas",
                "open h",
                "dust dose",
                "complete",
                "batch",
            ]);
            let num = |v: Option<f64>, digits: usize| {
                v.map(|v| format!("{v:.digits$}"))
                    .unwrap_or_else(|| "-".into())
            };
            for r in &rows {
                table.row([
                    r.site.clone(),
                    r.position.to_string(),
                    r.serial.clone(),
                    r.risk.clone(),
                    num(r.predicted_reflectivity_650_pct, 2),
                    num(r.days_to_threshold, 0),
                    num(r.last_measured_650_pct, 2),
                    format!("{:.0}", r.open_dome_hours_since_maintenance),
                    format!("{:.0}", r.dust_dose_since_maintenance_ug_m3_h),
                    num(r.completeness.map(|c| c * 100.0), 0) + "%",
                    r.coating_batch.clone(),
                ]);
            }
            table.print();
            if !response.model_sha256.is_empty() {
                println!(
                    "model {} sha256 {} (trained on simulated data)",
                    response.model_version, response.model_sha256
                );
            }
            Ok(())
        }
    }
}

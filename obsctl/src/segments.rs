//! `obsctl segments upload|show|install|maintain|lifecycle|cohorts`.

pub mod upload;

use std::collections::BTreeMap;

use obs_manufacturing::SegmentRecord;
use obs_proto::v1::manufacturing_service_client::ManufacturingServiceClient;
use obs_proto::v1::{
    CohortGrouping, GetCohortsRequest, GetSegmentLifecycleRequest, GetSegmentRequest, Installation,
    MaintenanceEvent, MaintenanceKind, RecordInstallationRequest, RecordMaintenanceRequest,
    Reflectivity, StoredSegmentRecord,
};
use serde::Serialize;
use tonic::transport::Channel;

use crate::cli::{CohortBy, Connection, Format, MaintenanceKindArg, SegmentsCommand};
use crate::client::{Hub, status_error};
use crate::output::{Table, print_json, rfc3339, timestamp};

/// A stored record version, its record in the optics centre's JSON format.
#[derive(Debug, Serialize)]
pub struct SegmentView {
    pub serial: String,
    pub version: u32,
    pub uploaded_at: String,
    pub uploaded_by: String,
    pub source: String,
    pub record: serde_json::Value,
}

#[derive(Debug, Serialize)]
pub struct InstallationView {
    pub serial: String,
    pub site: String,
    pub position: u32,
    pub installed_at: String,
    pub removed_at: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct MaintenanceView {
    pub serial: String,
    pub kind: String,
    pub at: String,
    /// Percent by wavelength (`650nm`).
    pub before: BTreeMap<String, f64>,
    pub after: BTreeMap<String, f64>,
    pub notes: String,
    pub source: String,
    pub site: String,
    pub position: Option<u32>,
    pub coating_batch: String,
}

#[derive(Debug, Serialize)]
pub struct PeriodView {
    #[serde(flatten)]
    pub installation: InstallationView,
    pub open_dome_hours: f64,
    pub dust_dose_ug_m3_h: f64,
    pub calima_events: u32,
    pub humid_hours: f64,
    pub dew_risk_hours: f64,
    pub days_with_data: u32,
}

#[derive(Debug, Serialize)]
pub struct ShowView {
    pub current: SegmentView,
    pub previous_versions: Vec<SegmentView>,
    pub installation: Option<InstallationView>,
}

#[derive(Debug, Serialize)]
pub struct LifecycleView {
    pub record: SegmentView,
    pub previous_versions: Vec<SegmentView>,
    pub installations: Vec<PeriodView>,
    pub maintenance: Vec<MaintenanceView>,
    /// Filled once the health engine lands.
    pub predictions: Vec<serde_json::Value>,
}

#[derive(Debug, Serialize)]
pub struct CohortView {
    pub key: String,
    pub segments: u32,
    pub segments_measured: u32,
    pub open_dome_hours: f64,
    pub mean_loss_points_per_1000_open_hours: f64,
}

fn time_text(ts: Option<&prost_types::Timestamp>) -> String {
    ts.map(rfc3339).unwrap_or_default()
}

fn segment_view(s: &StoredSegmentRecord) -> SegmentView {
    let wire = s.record.clone().unwrap_or_default();
    let serial = wire.serial.clone();
    let record = SegmentRecord::try_from(wire)
        .ok()
        .and_then(|r| obs_manufacturing::record_to_json(&r).ok())
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or(serde_json::Value::Null);
    SegmentView {
        serial,
        version: s.version,
        uploaded_at: time_text(s.uploaded_at.as_ref()),
        uploaded_by: s.uploaded_by.clone(),
        source: s.source.clone(),
        record,
    }
}

fn installation_view(i: &Installation) -> InstallationView {
    InstallationView {
        serial: i.serial.clone(),
        site: i.site.clone(),
        position: i.position,
        installed_at: time_text(i.installed_at.as_ref()),
        removed_at: i.removed_at.as_ref().map(rfc3339),
    }
}

fn readings_view(values: &[Reflectivity]) -> BTreeMap<String, f64> {
    values
        .iter()
        .map(|r| (format!("{}nm", r.wavelength_nm), r.percent))
        .collect()
}

fn kind_name(kind: i32) -> String {
    MaintenanceKind::try_from(kind)
        .map(|k| {
            k.as_str_name()
                .trim_start_matches("MAINTENANCE_KIND_")
                .to_lowercase()
        })
        .unwrap_or_else(|_| kind.to_string())
}

fn maintenance_view(m: &MaintenanceEvent) -> MaintenanceView {
    MaintenanceView {
        serial: m.serial.clone(),
        kind: kind_name(m.kind),
        at: time_text(m.at.as_ref()),
        before: readings_view(&m.reflectivity_before),
        after: readings_view(&m.reflectivity_after),
        notes: m.notes.clone(),
        source: m.source.clone(),
        site: m.site.clone(),
        position: (m.position > 0).then_some(m.position),
        coating_batch: m.coating_batch.clone(),
    }
}

/// Parses `650=85.5,470=86.7` (or `650nm=85.5`) into readings.
pub fn parse_readings(flag: &str, text: &str) -> anyhow::Result<Vec<Reflectivity>> {
    text.split(',')
        .filter(|part| !part.trim().is_empty())
        .map(|part| {
            let (nm, pct) = part.split_once('=').ok_or_else(|| {
                anyhow::anyhow!("{flag} {part:?}: write WAVELENGTH=PERCENT, e.g. 650=85.5")
            })?;
            let nm = nm.trim().trim_end_matches("nm");
            Ok(Reflectivity {
                wavelength_nm: nm.parse().map_err(|_| {
                    anyhow::anyhow!("{flag} {part:?}: {nm:?} is not a wavelength in nm")
                })?,
                percent: pct
                    .trim()
                    .parse()
                    .map_err(|_| anyhow::anyhow!("{flag} {part:?}: {pct:?} is not a percentage"))?,
            })
        })
        .collect()
}

fn at_or_now(at: Option<&str>) -> anyhow::Result<prost_types::Timestamp> {
    match at {
        Some(text) => timestamp(text),
        None => Ok(crate::output::from_ns(
            time::OffsetDateTime::now_utc().unix_timestamp_nanos() as i64,
        )),
    }
}

fn reading(values: &BTreeMap<String, f64>, key: &str) -> String {
    values
        .get(key)
        .map(|v| format!("{v:.1}"))
        .unwrap_or_else(|| "-".into())
}

fn print_installations(title: &str, installations: &[InstallationView]) {
    if installations.is_empty() {
        return;
    }
    println!("{title}");
    let mut table = Table::new(["serial", "site", "position", "installed", "removed"]);
    for i in installations {
        table.row([
            i.serial.clone(),
            i.site.clone(),
            i.position.to_string(),
            i.installed_at.clone(),
            i.removed_at.clone().unwrap_or_else(|| "-".into()),
        ]);
    }
    table.print();
}

fn print_maintenance(events: &[MaintenanceView]) {
    let mut table = Table::new([
        "at",
        "kind",
        "source",
        "site",
        "pos",
        "650 before",
        "650 after",
        "batch",
        "notes",
    ]);
    for m in events {
        table.row([
            m.at.clone(),
            m.kind.clone(),
            m.source.clone(),
            m.site.clone(),
            m.position.map(|p| p.to_string()).unwrap_or_default(),
            reading(&m.before, "650nm"),
            reading(&m.after, "650nm"),
            m.coating_batch.clone(),
            m.notes.clone(),
        ]);
    }
    table.print();
}

fn print_versions(versions: &[SegmentView]) {
    let mut table = Table::new(["version", "uploaded", "by", "source"]);
    for v in versions {
        table.row([
            v.version.to_string(),
            v.uploaded_at.clone(),
            v.uploaded_by.clone(),
            v.source.clone(),
        ]);
    }
    table.print();
}

fn print_record(s: &SegmentView) {
    let field = |name: &str| match s.record.get(name) {
        Some(serde_json::Value::String(text)) => text.clone(),
        Some(other) => other.to_string(),
        None => "-".into(),
    };
    let mut table = Table::new(["field", "value"]);
    table.row(["serial".into(), s.serial.clone()]);
    table.row([
        "version".into(),
        format!(
            "{} (uploaded {} by {} from {})",
            s.version, s.uploaded_at, s.uploaded_by, s.source
        ),
    ]);
    for name in [
        "segment_type",
        "ring",
        "substrate",
        "surface_figure_error_nm_rms",
        "microroughness_angstrom_rms",
        "coating_kind",
        "coating_batch",
        "coating_date",
        "fresh_reflectivity_650nm_pct",
        "acceptance_passed",
        "acceptance_notes",
    ] {
        table.row([name.into(), field(name)]);
    }
    table.print();
}

/// Runs a segments command.
pub async fn run(
    connection: &Connection,
    command: SegmentsCommand,
    format: Format,
) -> anyhow::Result<()> {
    if let SegmentsCommand::Upload {
        file,
        partial,
        replace,
        allow_extra,
    } = command
    {
        let hub = Hub::connect_with_timeout(connection, None).await?;
        let request = upload::UploadRequest {
            path: file,
            partial,
            replace,
            allow_extra,
        };
        let summary = upload::upload(&hub, &request, format == Format::Table).await?;
        match format {
            Format::Json => print_json(&summary)?,
            Format::Table => print!("{}", upload::render(&summary)),
        }
        if summary.rolled_back || summary.rejected > 0 {
            anyhow::bail!(
                "{}: {} of {} records rejected{}",
                summary.file,
                summary.rejected,
                summary.received,
                if summary.rolled_back {
                    "; nothing stored"
                } else {
                    ""
                }
            );
        }
        return Ok(());
    }
    let hub = Hub::connect(connection).await?;
    let client = ManufacturingServiceClient::new(hub.channel.clone());
    run_query(&hub, client, command, format).await
}

async fn run_query(
    hub: &Hub,
    mut client: ManufacturingServiceClient<Channel>,
    command: SegmentsCommand,
    format: Format,
) -> anyhow::Result<()> {
    match command {
        SegmentsCommand::Upload { .. } => Ok(()),
        SegmentsCommand::Show { serial, history } => {
            let request = GetSegmentRequest {
                serial,
                include_history: history,
            };
            let r = client
                .get_segment(hub.request(request)?)
                .await
                .map_err(|s| status_error("GetSegment", s))?
                .into_inner();
            let view = ShowView {
                current: segment_view(&r.current.unwrap_or_default()),
                previous_versions: r.previous_versions.iter().map(segment_view).collect(),
                installation: r.installation.as_ref().map(installation_view),
            };
            if format == Format::Json {
                return print_json(&view);
            }
            print_record(&view.current);
            if let Some(i) = &view.installation {
                println!(
                    "installed at {} position {} since {}",
                    i.site, i.position, i.installed_at
                );
            }
            if !view.previous_versions.is_empty() {
                println!("previous versions");
                print_versions(&view.previous_versions);
            }
            Ok(())
        }
        SegmentsCommand::Install {
            site,
            position,
            serial,
            at,
        } => {
            let request = RecordInstallationRequest {
                site,
                position,
                serial,
                at: Some(at_or_now(at.as_deref())?),
            };
            let r = client
                .record_installation(hub.request(request)?)
                .await
                .map_err(|s| status_error("RecordInstallation", s))?
                .into_inner();
            let installed: Vec<InstallationView> =
                r.installation.iter().map(installation_view).collect();
            let closed: Vec<InstallationView> = r.closed.iter().map(installation_view).collect();
            if format == Format::Json {
                return print_json(
                    &serde_json::json!({ "installation": installed, "closed": closed }),
                );
            }
            print_installations("installed", &installed);
            print_installations("closed", &closed);
            Ok(())
        }
        SegmentsCommand::Maintain {
            serial,
            kind,
            at,
            before,
            after,
            notes,
            coating_batch,
        } => {
            let kind = match kind {
                MaintenanceKindArg::Cleaning => MaintenanceKind::Cleaning,
                MaintenanceKindArg::Recoat => MaintenanceKind::Recoat,
                MaintenanceKindArg::Inspection => MaintenanceKind::Inspection,
            };
            let event = MaintenanceEvent {
                serial,
                kind: kind as i32,
                at: Some(at_or_now(at.as_deref())?),
                reflectivity_before: parse_readings("--before", before.as_deref().unwrap_or(""))?,
                reflectivity_after: parse_readings("--after", after.as_deref().unwrap_or(""))?,
                notes: notes.unwrap_or_default(),
                coating_batch: coating_batch.unwrap_or_default(),
                ..Default::default()
            };
            let r = client
                .record_maintenance(hub.request(RecordMaintenanceRequest { event: Some(event) })?)
                .await
                .map_err(|s| status_error("RecordMaintenance", s))?
                .into_inner();
            let view: Vec<MaintenanceView> = r.event.iter().map(maintenance_view).collect();
            if format == Format::Json {
                return print_json(
                    &serde_json::json!({ "created": r.created, "event": view.first() }),
                );
            }
            println!(
                "{}",
                if r.created {
                    "recorded"
                } else {
                    "already recorded"
                }
            );
            print_maintenance(&view);
            Ok(())
        }
        SegmentsCommand::Lifecycle { serial } => {
            let r = client
                .get_segment_lifecycle(hub.request(GetSegmentLifecycleRequest { serial })?)
                .await
                .map_err(|s| status_error("GetSegmentLifecycle", s))?
                .into_inner();
            let view = LifecycleView {
                record: segment_view(&r.record.unwrap_or_default()),
                previous_versions: r.previous_versions.iter().map(segment_view).collect(),
                installations: r
                    .installations
                    .iter()
                    .map(|p| {
                        let e = p.exposure.unwrap_or_default();
                        PeriodView {
                            installation: installation_view(
                                &p.installation.clone().unwrap_or_default(),
                            ),
                            open_dome_hours: e.open_dome_hours,
                            dust_dose_ug_m3_h: e.dust_dose_ug_m3_h,
                            calima_events: e.calima_events,
                            humid_hours: e.humid_hours,
                            dew_risk_hours: e.dew_risk_hours,
                            days_with_data: e.days_with_data,
                        }
                    })
                    .collect(),
                maintenance: r.maintenance.iter().map(maintenance_view).collect(),
                predictions: Vec::new(),
            };
            if format == Format::Json {
                return print_json(&view);
            }
            print_record(&view.record);
            if !view.previous_versions.is_empty() {
                println!("\nprevious versions");
                print_versions(&view.previous_versions);
            }
            println!("\ninstallations");
            let mut table = Table::new([
                "site",
                "pos",
                "installed",
                "removed",
                "open-dome h",
                "dust µg/m³·h",
                "humid h",
                "dew-risk h",
                "calima",
            ]);
            for p in &view.installations {
                let i = &p.installation;
                table.row([
                    i.site.clone(),
                    i.position.to_string(),
                    i.installed_at.clone(),
                    i.removed_at.clone().unwrap_or_else(|| "-".into()),
                    format!("{:.2}", p.open_dome_hours),
                    format!("{:.1}", p.dust_dose_ug_m3_h),
                    format!("{:.2}", p.humid_hours),
                    format!("{:.2}", p.dew_risk_hours),
                    p.calima_events.to_string(),
                ]);
            }
            table.print();
            println!("\nmaintenance");
            print_maintenance(&view.maintenance);
            println!("\npredictions: none yet (the health engine, issue 7)");
            Ok(())
        }
        SegmentsCommand::Cohorts { by, site } => {
            let group_by = match by {
                CohortBy::CoatingBatch => CohortGrouping::CoatingBatch,
                CohortBy::Substrate => CohortGrouping::Substrate,
                CohortBy::FigureError => CohortGrouping::FigureErrorBand,
            };
            let request = GetCohortsRequest {
                group_by: group_by as i32,
                sites: site,
            };
            let r = client
                .get_cohorts(hub.request(request)?)
                .await
                .map_err(|s| status_error("GetCohorts", s))?
                .into_inner();
            let cohorts: Vec<CohortView> = r
                .cohorts
                .into_iter()
                .map(|c| CohortView {
                    key: c.key,
                    segments: c.segments,
                    segments_measured: c.segments_measured,
                    open_dome_hours: c.open_dome_hours,
                    mean_loss_points_per_1000_open_hours: c.mean_loss_points_per_1000_open_hours,
                })
                .collect();
            if format == Format::Json {
                return print_json(&cohorts);
            }
            let mut table = Table::new([
                "cohort",
                "segments",
                "measured",
                "open-dome h",
                "loss @650 / 1000 h",
            ]);
            for c in &cohorts {
                table.row([
                    c.key.clone(),
                    c.segments.to_string(),
                    c.segments_measured.to_string(),
                    format!("{:.1}", c.open_dome_hours),
                    if c.segments_measured > 0 {
                        format!("{:.2}", c.mean_loss_points_per_1000_open_hours)
                    } else {
                        "-".into()
                    },
                ]);
            }
            table.print();
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readings_parse_with_or_without_the_unit() {
        let r = parse_readings("--before", "650=85.5, 470nm=86.7").unwrap();
        assert_eq!(
            r.iter()
                .map(|r| (r.wavelength_nm, r.percent))
                .collect::<Vec<_>>(),
            vec![(650, 85.5), (470, 86.7)]
        );
        assert!(parse_readings("--before", "").unwrap().is_empty());
        let error = parse_readings("--after", "650:85").unwrap_err().to_string();
        assert!(
            error.contains("--after") && error.contains("WAVELENGTH=PERCENT"),
            "{error}"
        );
        let error = parse_readings("--after", "red=85").unwrap_err().to_string();
        assert!(error.contains("not a wavelength"), "{error}");
    }
}

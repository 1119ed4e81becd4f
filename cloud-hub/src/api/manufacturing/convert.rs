//! Conversions between the store's segment types and the wire types.

use obs_proto::v1;

use super::super::{time_from_ns, time_to_ns};
use super::error::ManufacturingError;
use crate::ingest::ExposureTotals;
use crate::ingest::maintenance::check_reading;
use crate::store::segments::{
    Installation, MaintenanceKind, MaintenanceRecord, ReflectivityByWavelength, StoredSegment,
};

/// A stored version as the wire type.
pub fn stored_segment(s: &StoredSegment) -> v1::StoredSegmentRecord {
    v1::StoredSegmentRecord {
        record: Some(v1::SegmentRecord::from(&s.record)),
        version: s.version,
        uploaded_at: Some(time_from_ns(s.uploaded_at_unix_ns)),
        uploaded_by: s.uploaded_by.clone(),
        source: s.source.clone(),
    }
}

/// An installation as the wire type.
pub fn installation(i: &Installation) -> v1::Installation {
    v1::Installation {
        serial: i.serial.clone(),
        site: i.site.clone(),
        position: i.position,
        installed_at: Some(time_from_ns(i.installed_at_unix_ns)),
        removed_at: i.removed_at_unix_ns.map(time_from_ns),
    }
}

/// Exposure totals as the wire type.
pub fn exposure(t: &ExposureTotals) -> v1::Exposure {
    v1::Exposure {
        open_dome_hours: t.open_dome_hours,
        dust_dose_ug_m3_h: t.dust_dose_ug_m3_h,
        calima_events: t.calima_events,
        humid_hours: t.humid_hours,
        dew_risk_hours: t.dew_risk_hours,
        days_with_data: t.days_with_data,
    }
}

/// A maintenance kind as the wire enum.
pub fn kind_to_proto(kind: MaintenanceKind) -> v1::MaintenanceKind {
    match kind {
        MaintenanceKind::Cleaning => v1::MaintenanceKind::Cleaning,
        MaintenanceKind::Recoat => v1::MaintenanceKind::Recoat,
        MaintenanceKind::Inspection => v1::MaintenanceKind::Inspection,
    }
}

/// The wire enum as a maintenance kind; unspecified and unknown values are
/// refused.
pub fn kind_from_proto(value: i32) -> Result<MaintenanceKind, ManufacturingError> {
    match v1::MaintenanceKind::try_from(value) {
        Ok(v1::MaintenanceKind::Cleaning) => Ok(MaintenanceKind::Cleaning),
        Ok(v1::MaintenanceKind::Recoat) => Ok(MaintenanceKind::Recoat),
        Ok(v1::MaintenanceKind::Inspection) => Ok(MaintenanceKind::Inspection),
        _ => Err(ManufacturingError::invalid(
            "kind",
            format!("{value} is not cleaning, recoat or inspection"),
        )),
    }
}

fn readings_to_proto(values: &ReflectivityByWavelength) -> Vec<v1::Reflectivity> {
    values
        .iter()
        .map(|(nm, pct)| v1::Reflectivity {
            wavelength_nm: *nm,
            percent: *pct,
        })
        .collect()
}

/// Readings from the wire, each checked (wavelength, 0..=100 %), no
/// wavelength twice; `field` names them in errors.
pub fn readings_from_proto(
    field: &str,
    values: &[v1::Reflectivity],
) -> Result<ReflectivityByWavelength, ManufacturingError> {
    let mut out = ReflectivityByWavelength::new();
    for r in values {
        check_reading(r.wavelength_nm, r.percent)
            .map_err(|reason| ManufacturingError::invalid(field, reason))?;
        if out.insert(r.wavelength_nm, r.percent).is_some() {
            return Err(ManufacturingError::invalid(
                field,
                format!("{} nm is given twice", r.wavelength_nm),
            ));
        }
    }
    Ok(out)
}

/// A maintenance record as the wire type.
pub fn maintenance(m: &MaintenanceRecord) -> v1::MaintenanceEvent {
    v1::MaintenanceEvent {
        serial: m.serial.clone(),
        kind: kind_to_proto(m.kind) as i32,
        at: Some(time_from_ns(m.at_unix_ns)),
        reflectivity_before: readings_to_proto(&m.before),
        reflectivity_after: readings_to_proto(&m.after),
        notes: m.notes.clone(),
        source: m.source.clone(),
        site: m.site.clone(),
        position: m.position,
        coating_batch: m.coating_batch.clone(),
    }
}

/// A required timestamp as Unix ns; `field` names it when missing.
pub fn required_time(
    ts: Option<&prost_types::Timestamp>,
    field: &str,
) -> Result<i64, ManufacturingError> {
    let ts = ts.ok_or_else(|| ManufacturingError::invalid(field, "is required"))?;
    if !(0..1_000_000_000).contains(&ts.nanos) {
        return Err(ManufacturingError::invalid(
            field,
            format!("nanos {} is out of range 0..1e9", ts.nanos),
        ));
    }
    Ok(time_to_ns(ts))
}

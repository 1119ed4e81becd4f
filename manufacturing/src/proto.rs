//! Conversions between [`SegmentRecord`] and the wire type
//! [`obs_proto::v1::SegmentRecord`].
//!
//! Record → proto → record is lossless. Calendar dates travel as timestamps
//! at midnight UTC; a proto timestamp at another time of day is refused
//! rather than silently cut to a date (a local midnight sent as UTC would
//! otherwise shift the date by a day). Unspecified or unknown enum values and
//! missing timestamps are refused too. Errors use the file-format field names.

use obs_proto::v1;
use prost_types::Timestamp;
use time::{Date, OffsetDateTime};

use crate::error::FieldError;
use crate::record::{CoatingKind, Reflectivity, SegmentRecord, Substrate, ZernikeTerm};
use crate::schema::Field;

const SECONDS_PER_DAY: i64 = 86_400;

impl From<Substrate> for v1::Substrate {
    fn from(s: Substrate) -> Self {
        match s {
            Substrate::Zerodur => v1::Substrate::Zerodur,
            Substrate::Ule => v1::Substrate::Ule,
            Substrate::Borosilicate => v1::Substrate::Borosilicate,
            Substrate::FusedSilica => v1::Substrate::FusedSilica,
        }
    }
}

impl From<CoatingKind> for v1::CoatingKind {
    fn from(c: CoatingKind) -> Self {
        match c {
            CoatingKind::BareAluminium => v1::CoatingKind::BareAluminium,
            CoatingKind::ProtectedAluminium => v1::CoatingKind::ProtectedAluminium,
            CoatingKind::ProtectedSilver => v1::CoatingKind::ProtectedSilver,
        }
    }
}

/// A calendar date as a timestamp at midnight UTC.
pub fn date_to_timestamp(date: Date) -> Timestamp {
    Timestamp {
        seconds: date.midnight().assume_utc().unix_timestamp(),
        nanos: 0,
    }
}

/// A timestamp at midnight UTC as a calendar date; `field` names it in errors.
pub fn timestamp_to_date(ts: Option<&Timestamp>, field: &str) -> Result<Date, FieldError> {
    let ts = ts.ok_or_else(|| FieldError::new(field, "", "is missing"))?;
    let shown = || format!("{}s {}ns", ts.seconds, ts.nanos);
    if ts.nanos != 0 || ts.seconds.rem_euclid(SECONDS_PER_DAY) != 0 {
        return Err(FieldError::new(
            field,
            shown(),
            "is not midnight UTC (calendar dates travel as midnight UTC)",
        ));
    }
    OffsetDateTime::from_unix_timestamp(ts.seconds)
        .map(|t| t.date())
        .map_err(|_| FieldError::new(field, shown(), "is out of the supported date range"))
}

impl From<&SegmentRecord> for v1::SegmentRecord {
    fn from(r: &SegmentRecord) -> Self {
        v1::SegmentRecord {
            serial: r.serial.clone(),
            segment_type: r.segment_type.clone(),
            ring: r.ring,
            blank_id: r.blank_id.clone(),
            substrate: v1::Substrate::from(r.substrate) as i32,
            cte_class: r.cte_class.clone(),
            cte_max_ppm_per_k: r.cte_max_ppm_per_k,
            size_flat_to_flat_mm: r.size_flat_to_flat_mm,
            thickness_mm: r.thickness_mm,
            mass_kg: r.mass_kg,
            surface_figure_error_nm_rms: r.surface_figure_error_nm_rms,
            radius_of_curvature_nominal_mm: r.radius_of_curvature_nominal_mm,
            radius_of_curvature_measured_mm: r.radius_of_curvature_measured_mm,
            conic_constant: r.conic_constant,
            off_axis_distance_mm: r.off_axis_distance_mm,
            clocking_arcsec: r.clocking_arcsec,
            microroughness_angstrom_rms: r.microroughness_angstrom_rms,
            interferometer: r.interferometer.clone(),
            cgh_id: r.cgh_id.clone(),
            zernike_residuals: r
                .zernike_residuals
                .iter()
                .map(|t| v1::ZernikeTerm {
                    noll_index: t.noll_index,
                    coefficient_nm: t.coefficient_nm,
                })
                .collect(),
            polished_at: Some(date_to_timestamp(r.polished_date)),
            coating_kind: v1::CoatingKind::from(r.coating_kind) as i32,
            coating_thickness_nm: r.coating_thickness_nm,
            fresh_reflectivity: r
                .fresh_reflectivity
                .iter()
                .map(|x| v1::Reflectivity {
                    wavelength_nm: x.wavelength_nm,
                    percent: x.percent,
                })
                .collect(),
            coated_at: Some(date_to_timestamp(r.coating_date)),
            coating_plant: r.coating_plant.clone(),
            coating_batch: r.coating_batch.clone(),
            witness_slide_id: r.witness_slide_id.clone(),
            acceptance_passed: r.acceptance_passed,
            acceptance_inspector: r.acceptance_inspector.clone(),
            accepted_at: Some(date_to_timestamp(r.acceptance_date)),
            acceptance_notes: r.acceptance_notes.clone(),
        }
    }
}

impl From<SegmentRecord> for v1::SegmentRecord {
    fn from(r: SegmentRecord) -> Self {
        v1::SegmentRecord::from(&r)
    }
}

fn substrate_from_proto(value: i32) -> Result<Substrate, FieldError> {
    let field = Field::Substrate.name();
    match v1::Substrate::try_from(value) {
        Ok(v1::Substrate::Zerodur) => Ok(Substrate::Zerodur),
        Ok(v1::Substrate::Ule) => Ok(Substrate::Ule),
        Ok(v1::Substrate::Borosilicate) => Ok(Substrate::Borosilicate),
        Ok(v1::Substrate::FusedSilica) => Ok(Substrate::FusedSilica),
        Ok(v1::Substrate::Unspecified) => Err(FieldError::new(field, "", "is unspecified")),
        Err(_) => Err(FieldError::new(
            field,
            value.to_string(),
            "is not a known substrate",
        )),
    }
}

fn coating_kind_from_proto(value: i32) -> Result<CoatingKind, FieldError> {
    let field = Field::CoatingKind.name();
    match v1::CoatingKind::try_from(value) {
        Ok(v1::CoatingKind::BareAluminium) => Ok(CoatingKind::BareAluminium),
        Ok(v1::CoatingKind::ProtectedAluminium) => Ok(CoatingKind::ProtectedAluminium),
        Ok(v1::CoatingKind::ProtectedSilver) => Ok(CoatingKind::ProtectedSilver),
        Ok(v1::CoatingKind::Unspecified) => Err(FieldError::new(field, "", "is unspecified")),
        Err(_) => Err(FieldError::new(
            field,
            value.to_string(),
            "is not a known coating kind",
        )),
    }
}

impl TryFrom<v1::SegmentRecord> for SegmentRecord {
    type Error = FieldError;

    /// Refuses unspecified enums and missing or non-midnight timestamps; see
    /// the module docs.
    fn try_from(p: v1::SegmentRecord) -> Result<Self, Self::Error> {
        Ok(SegmentRecord {
            substrate: substrate_from_proto(p.substrate)?,
            coating_kind: coating_kind_from_proto(p.coating_kind)?,
            polished_date: timestamp_to_date(p.polished_at.as_ref(), &Field::PolishedDate.name())?,
            coating_date: timestamp_to_date(p.coated_at.as_ref(), &Field::CoatingDate.name())?,
            acceptance_date: timestamp_to_date(
                p.accepted_at.as_ref(),
                &Field::AcceptanceDate.name(),
            )?,
            serial: p.serial,
            segment_type: p.segment_type,
            ring: p.ring,
            blank_id: p.blank_id,
            cte_class: p.cte_class,
            cte_max_ppm_per_k: p.cte_max_ppm_per_k,
            size_flat_to_flat_mm: p.size_flat_to_flat_mm,
            thickness_mm: p.thickness_mm,
            mass_kg: p.mass_kg,
            surface_figure_error_nm_rms: p.surface_figure_error_nm_rms,
            radius_of_curvature_nominal_mm: p.radius_of_curvature_nominal_mm,
            radius_of_curvature_measured_mm: p.radius_of_curvature_measured_mm,
            conic_constant: p.conic_constant,
            off_axis_distance_mm: p.off_axis_distance_mm,
            clocking_arcsec: p.clocking_arcsec,
            microroughness_angstrom_rms: p.microroughness_angstrom_rms,
            interferometer: p.interferometer,
            cgh_id: p.cgh_id,
            zernike_residuals: p
                .zernike_residuals
                .into_iter()
                .map(|t| ZernikeTerm {
                    noll_index: t.noll_index,
                    coefficient_nm: t.coefficient_nm,
                })
                .collect(),
            coating_thickness_nm: p.coating_thickness_nm,
            fresh_reflectivity: p
                .fresh_reflectivity
                .into_iter()
                .map(|x| Reflectivity {
                    wavelength_nm: x.wavelength_nm,
                    percent: x.percent,
                })
                .collect(),
            coating_plant: p.coating_plant,
            coating_batch: p.coating_batch,
            witness_slide_id: p.witness_slide_id,
            acceptance_passed: p.acceptance_passed,
            acceptance_inspector: p.acceptance_inspector,
            acceptance_notes: p.acceptance_notes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn dates_travel_as_midnight_utc() {
        let d = date!(2024 - 03 - 19);
        let ts = date_to_timestamp(d);
        assert_eq!(ts.seconds % SECONDS_PER_DAY, 0);
        assert_eq!(timestamp_to_date(Some(&ts), "coating_date"), Ok(d));
        let before_1970 = date!(1965 - 07 - 01);
        assert_eq!(
            timestamp_to_date(Some(&date_to_timestamp(before_1970)), "x"),
            Ok(before_1970)
        );
    }

    #[test]
    fn non_midnight_and_missing_timestamps_are_refused() {
        let ts = Timestamp {
            seconds: date_to_timestamp(date!(2024 - 03 - 19)).seconds + 3600,
            nanos: 0,
        };
        let e = timestamp_to_date(Some(&ts), "coating_date").unwrap_err();
        assert_eq!(
            e.to_string(),
            "coating_date: 1710810000s 0ns is not midnight UTC (calendar dates travel as midnight UTC)"
        );
        let e = timestamp_to_date(None, "polished_date").unwrap_err();
        assert_eq!(e.to_string(), "polished_date: is missing");
        let huge = Timestamp {
            seconds: i64::MAX - i64::MAX.rem_euclid(SECONDS_PER_DAY),
            nanos: 0,
        };
        assert!(timestamp_to_date(Some(&huge), "x").is_err());
    }

    #[test]
    fn unspecified_and_unknown_enums_are_refused() {
        assert_eq!(
            substrate_from_proto(0).unwrap_err().to_string(),
            "substrate: is unspecified"
        );
        assert_eq!(
            coating_kind_from_proto(42).unwrap_err().to_string(),
            "coating_kind: 42 is not a known coating kind"
        );
    }
}

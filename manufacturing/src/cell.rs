//! A record's fields as file-format values, for the CSV and JSON writers.
//! Values a file cannot hold are refused here, so writing never loses data
//! silently.

use std::collections::BTreeSet;

use time::Date;

use crate::error::FieldError;
use crate::parse::{DATE_FORMAT, MAX_NOLL_INDEX};
use crate::record::SegmentRecord;
use crate::schema::Field;

/// One field's value as written.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Cell<'a> {
    Text(&'a str),
    Number(f64),
    Integer(u32),
    Bool(bool),
    Date(String),
    /// Coefficients for Noll 1..=n; `None` where the record has no term.
    Zernike(Vec<Option<f64>>),
    /// A reflectivity the record does not have.
    Absent,
}

fn refuse(field: Field, value: impl Into<String>, reason: &str) -> FieldError {
    FieldError::new(field.name(), value, reason)
}

fn number(field: Field, x: f64) -> Result<Cell<'static>, FieldError> {
    if x.is_finite() {
        Ok(Cell::Number(x))
    } else {
        Err(refuse(field, x.to_string(), "is not a finite number"))
    }
}

fn date(field: Field, d: Date) -> Result<Cell<'static>, FieldError> {
    d.format(DATE_FORMAT)
        .map(Cell::Date)
        .map_err(|_| refuse(field, d.to_string(), "cannot be written as YYYY-MM-DD"))
}

/// The value of `field` in `record`.
pub(crate) fn cell(record: &SegmentRecord, field: Field) -> Result<Cell<'_>, FieldError> {
    let r = record;
    Ok(match field {
        Field::Serial => Cell::Text(&r.serial),
        Field::SegmentType => Cell::Text(&r.segment_type),
        Field::Ring => Cell::Integer(r.ring),
        Field::BlankId => Cell::Text(&r.blank_id),
        Field::Substrate => Cell::Text(r.substrate.as_str()),
        Field::CteClass => Cell::Text(&r.cte_class),
        Field::CteMaxPpmPerK => number(field, r.cte_max_ppm_per_k)?,
        Field::SizeFlatToFlatMm => number(field, r.size_flat_to_flat_mm)?,
        Field::ThicknessMm => number(field, r.thickness_mm)?,
        Field::MassKg => number(field, r.mass_kg)?,
        Field::SurfaceFigureErrorNmRms => number(field, r.surface_figure_error_nm_rms)?,
        Field::RadiusOfCurvatureNominalMm => number(field, r.radius_of_curvature_nominal_mm)?,
        Field::RadiusOfCurvatureMeasuredMm => number(field, r.radius_of_curvature_measured_mm)?,
        Field::ConicConstant => number(field, r.conic_constant)?,
        Field::OffAxisDistanceMm => number(field, r.off_axis_distance_mm)?,
        Field::ClockingArcsec => number(field, r.clocking_arcsec)?,
        Field::MicroroughnessAngstromRms => number(field, r.microroughness_angstrom_rms)?,
        Field::Interferometer => Cell::Text(&r.interferometer),
        Field::CghId => Cell::Text(&r.cgh_id),
        Field::ZernikeNm => zernike(r)?,
        Field::PolishedDate => date(field, r.polished_date)?,
        Field::CoatingKind => Cell::Text(r.coating_kind.as_str()),
        Field::CoatingThicknessNm => number(field, r.coating_thickness_nm)?,
        Field::FreshReflectivity(wl) => {
            let mut found = r
                .fresh_reflectivity
                .iter()
                .filter(|x| x.wavelength_nm == wl);
            match (found.next(), found.next()) {
                (None, _) => Cell::Absent,
                (Some(x), None) => number(field, x.percent)?,
                (Some(_), Some(_)) => return Err(refuse(field, "", "appears more than once")),
            }
        }
        Field::CoatingDate => date(field, r.coating_date)?,
        Field::CoatingPlant => Cell::Text(&r.coating_plant),
        Field::CoatingBatch => Cell::Text(&r.coating_batch),
        Field::WitnessSlideId => Cell::Text(&r.witness_slide_id),
        Field::AcceptancePassed => Cell::Bool(r.acceptance_passed),
        Field::AcceptanceInspector => Cell::Text(&r.acceptance_inspector),
        Field::AcceptanceDate => date(field, r.acceptance_date)?,
        Field::AcceptanceNotes => Cell::Text(&r.acceptance_notes),
    })
}

fn zernike(r: &SegmentRecord) -> Result<Cell<'static>, FieldError> {
    let mut seen = BTreeSet::new();
    let mut max = 0;
    for t in &r.zernike_residuals {
        let shown = || format!("Noll index {}", t.noll_index);
        if !(1..=MAX_NOLL_INDEX).contains(&t.noll_index) {
            return Err(refuse(
                Field::ZernikeNm,
                shown(),
                "cannot be written (range 1..=1000)",
            ));
        }
        if !seen.insert(t.noll_index) {
            return Err(refuse(Field::ZernikeNm, shown(), "appears more than once"));
        }
        number(Field::ZernikeNm, t.coefficient_nm)?;
        max = max.max(t.noll_index);
    }
    let mut values = vec![None; max as usize];
    for t in &r.zernike_residuals {
        values[t.noll_index as usize - 1] = Some(t.coefficient_nm);
    }
    Ok(Cell::Zernike(values))
}

/// The fields of `record` in writing order: [`crate::schema::COLUMNS`] with the
/// `extra_wavelengths` after the standard reflectivity set.
pub(crate) fn field_order(extra_wavelengths: &[u32]) -> Vec<Field> {
    let mut out = Vec::new();
    for c in crate::schema::COLUMNS {
        out.push(c.field);
        if c.field == Field::FreshReflectivity(880) {
            out.extend(
                extra_wavelengths
                    .iter()
                    .map(|wl| Field::FreshReflectivity(*wl)),
            );
        }
    }
    out
}

/// Wavelengths of `records` outside the standard set, sorted.
pub(crate) fn extra_wavelengths<'a>(
    records: impl IntoIterator<Item = &'a SegmentRecord>,
) -> Vec<u32> {
    let set: BTreeSet<u32> = records
        .into_iter()
        .flat_map(|r| r.fresh_reflectivity.iter().map(|x| x.wavelength_nm))
        .filter(|wl| !crate::schema::is_standard_wavelength(*wl))
        .collect();
    set.into_iter().collect()
}

/// Refuses a record with a wavelength that has no column among `fields`.
pub(crate) fn check_wavelengths(
    record: &SegmentRecord,
    fields: &[Field],
) -> Result<(), FieldError> {
    for x in &record.fresh_reflectivity {
        let field = Field::FreshReflectivity(x.wavelength_nm);
        if !fields.contains(&field) {
            return Err(refuse(field, "", "has no column in this file"));
        }
    }
    Ok(())
}

/// Text of a cell in a CSV file.
pub(crate) fn csv_text(cell: &Cell<'_>) -> String {
    match cell {
        Cell::Text(s) => (*s).to_owned(),
        Cell::Number(x) => x.to_string(),
        Cell::Integer(n) => n.to_string(),
        Cell::Bool(b) => b.to_string(),
        Cell::Date(d) => d.clone(),
        Cell::Zernike(values) => values
            .iter()
            .map(|v| v.map(|x| x.to_string()).unwrap_or_default())
            .collect::<Vec<_>>()
            .join(";"),
        Cell::Absent => String::new(),
    }
}

/// Test helper: a cell matches its field's kind.
#[cfg(test)]
pub(crate) fn matches_kind(cell: &Cell<'_>, kind: crate::schema::Kind) -> bool {
    use crate::schema::Kind;
    matches!(
        (cell, kind),
        (
            Cell::Text(_),
            Kind::Text | Kind::Substrate | Kind::CoatingKind
        ) | (Cell::Number(_) | Cell::Absent, Kind::Number)
            | (Cell::Integer(_), Kind::Integer)
            | (Cell::Bool(_), Kind::Bool)
            | (Cell::Date(_), Kind::Date)
            | (Cell::Zernike(_), Kind::ZernikeList)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::ZernikeTerm;

    #[test]
    fn every_field_of_a_record_has_a_cell_of_its_kind() {
        let r = crate::samples::example_record();
        for field in field_order(&[]) {
            let c = cell(&r, field).unwrap();
            assert!(matches_kind(&c, field.kind()), "{field:?}: {c:?}");
        }
    }

    #[test]
    fn zernike_gaps_are_empty_entries() {
        let mut r = crate::samples::example_record();
        r.zernike_residuals = vec![
            ZernikeTerm {
                noll_index: 4,
                coefficient_nm: 2.5,
            },
            ZernikeTerm {
                noll_index: 1,
                coefficient_nm: 0.0,
            },
        ];
        assert_eq!(csv_text(&cell(&r, Field::ZernikeNm).unwrap()), "0;;;2.5");
        r.zernike_residuals.push(ZernikeTerm {
            noll_index: 4,
            coefficient_nm: 1.0,
        });
        assert!(cell(&r, Field::ZernikeNm).is_err());
    }

    #[test]
    fn non_finite_numbers_are_refused() {
        let mut r = crate::samples::example_record();
        r.mass_kg = f64::NAN;
        assert_eq!(
            cell(&r, Field::MassKg).unwrap_err().to_string(),
            "mass_kg: NaN is not a finite number"
        );
    }
}

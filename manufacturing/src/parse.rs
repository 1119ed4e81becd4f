//! Values of one field, from CSV text or a JSON value, into a record. Both
//! importers go through here so a value means the same in either format.

use serde_json::Value;
use time::Date;
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;

use crate::error::FieldError;
use crate::record::{CoatingKind, Reflectivity, SegmentRecord, Substrate, ZernikeTerm};
use crate::schema::{Field, Kind};

/// `YYYY-MM-DD`, the only date format of the files.
pub(crate) const DATE_FORMAT: &[BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day]");

/// Highest Noll index a record may carry (radial order ~44).
pub const MAX_NOLL_INDEX: u32 = 1000;

fn err(field: Field, value: &str, reason: impl Into<String>) -> FieldError {
    FieldError::new(field.name(), value, reason)
}

/// Sets `field` of `record` from CSV text.
pub(crate) fn set_text(
    record: &mut SegmentRecord,
    field: Field,
    text: &str,
) -> Result<(), FieldError> {
    match field.kind() {
        Kind::Text => {
            *text_slot(record, field) = text.to_owned();
            Ok(())
        }
        Kind::Number => match field {
            // An empty reflectivity cell: not measured at that wavelength.
            Field::FreshReflectivity(_) if text.trim().is_empty() => Ok(()),
            _ => set_number(record, field, parse_number(field, text)?),
        },
        Kind::Integer => {
            let t = text.trim();
            let ring = t
                .parse::<u32>()
                .map_err(|_| err(field, t, "is not a whole number"))?;
            record.ring = ring;
            Ok(())
        }
        Kind::Date => {
            *date_slot(record, field) = parse_date(field, text)?;
            Ok(())
        }
        Kind::Bool => {
            let t = text.trim();
            record.acceptance_passed = if t.eq_ignore_ascii_case("true") {
                true
            } else if t.eq_ignore_ascii_case("false") {
                false
            } else {
                return Err(err(field, t, "is not true or false"));
            };
            Ok(())
        }
        Kind::Substrate => {
            record.substrate = text
                .parse::<Substrate>()
                .map_err(|e| err(field, text.trim(), format!("is not one of {}", e.expected)))?;
            Ok(())
        }
        Kind::CoatingKind => {
            record.coating_kind = text
                .parse::<CoatingKind>()
                .map_err(|e| err(field, text.trim(), format!("is not one of {}", e.expected)))?;
            Ok(())
        }
        Kind::ZernikeList => {
            record.zernike_residuals = parse_zernike_text(text)?;
            Ok(())
        }
    }
}

/// Sets `field` of `record` from a JSON value.
pub(crate) fn set_json(
    record: &mut SegmentRecord,
    field: Field,
    value: &Value,
) -> Result<(), FieldError> {
    let shown = || match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    match (field.kind(), value) {
        (Kind::Text, Value::String(s)) => {
            *text_slot(record, field) = s.clone();
            Ok(())
        }
        (Kind::Text, Value::Null) => {
            text_slot(record, field).clear();
            Ok(())
        }
        (Kind::Text, _) => Err(err(field, &shown(), "is not a string")),
        (Kind::Number, Value::Null) if matches!(field, Field::FreshReflectivity(_)) => Ok(()),
        (Kind::Number, Value::Number(n)) => match n.as_f64() {
            Some(x) if x.is_finite() => set_number(record, field, x),
            _ => Err(err(field, &shown(), "is not a finite number")),
        },
        (Kind::Number, Value::String(_)) => Err(err(field, &shown(), string_not_number(field))),
        (Kind::Number, _) => Err(err(field, &shown(), number_expectation(field))),
        (Kind::Integer, Value::Number(n)) => {
            record.ring = n
                .as_u64()
                .and_then(|v| u32::try_from(v).ok())
                .ok_or_else(|| err(field, &shown(), "is not a whole number"))?;
            Ok(())
        }
        (Kind::Integer, _) => Err(err(field, &shown(), "is not a whole number")),
        (Kind::Bool, Value::Bool(b)) => {
            record.acceptance_passed = *b;
            Ok(())
        }
        (Kind::Bool, _) => Err(err(field, &shown(), "is not true or false")),
        (Kind::Date | Kind::Substrate | Kind::CoatingKind, Value::String(s)) => {
            set_text(record, field, s)
        }
        (Kind::Date, _) => Err(err(field, &shown(), "is not a date string (YYYY-MM-DD)")),
        (Kind::Substrate | Kind::CoatingKind, _) => Err(err(field, &shown(), "is not a string")),
        (Kind::ZernikeList, Value::Array(items)) => {
            record.zernike_residuals = zernike_from_json(items)?;
            Ok(())
        }
        (Kind::ZernikeList, _) => Err(err(
            field,
            &shown(),
            "is not an array of numbers in nm (Noll 1, 2, 3, ...; null skips an index)",
        )),
    }
}

fn number_expectation(field: Field) -> String {
    match field.unit_label() {
        "" => "is not a number".to_owned(),
        unit => format!("is not a number (expected {unit})"),
    }
}

fn string_not_number(field: Field) -> String {
    match field.unit_label() {
        "" => "is a string, expected a number".to_owned(),
        unit => format!("is a string, expected a number in {unit}"),
    }
}

fn parse_number(field: Field, text: &str) -> Result<f64, FieldError> {
    let t = text.trim();
    if t.is_empty() {
        let reason = match field.unit_label() {
            "" => "is missing, expected a number".to_owned(),
            unit => format!("is missing, expected a number in {unit}"),
        };
        return Err(err(field, "", reason));
    }
    match t.parse::<f64>() {
        Ok(x) if x.is_finite() => Ok(x),
        Ok(_) => Err(err(field, t, "is not a finite number")),
        Err(_) => Err(err(field, t, number_expectation(field))),
    }
}

fn parse_date(field: Field, text: &str) -> Result<Date, FieldError> {
    let t = text.trim();
    if t.is_empty() {
        return Err(err(field, "", "is missing, expected a date YYYY-MM-DD"));
    }
    Date::parse(t, DATE_FORMAT).map_err(|_| err(field, t, "is not a date (expected YYYY-MM-DD)"))
}

/// `;`-separated coefficients for Noll 1, 2, 3, ...; an empty entry skips an index.
fn parse_zernike_text(text: &str) -> Result<Vec<ZernikeTerm>, FieldError> {
    let t = text.trim();
    let mut terms = Vec::new();
    if t.is_empty() {
        return Ok(terms);
    }
    for (noll_index, token) in (1..).zip(t.split(';')) {
        if noll_index > MAX_NOLL_INDEX {
            return Err(too_many_zernike_terms());
        }
        let token = token.trim();
        if token.is_empty() {
            continue;
        }
        match token.parse::<f64>() {
            Ok(x) if x.is_finite() => terms.push(ZernikeTerm {
                noll_index,
                coefficient_nm: x,
            }),
            _ => {
                return Err(err(
                    Field::ZernikeNm,
                    token,
                    format!("is not a number (Noll {noll_index}, nm)"),
                ));
            }
        }
    }
    Ok(terms)
}

fn zernike_from_json(items: &[Value]) -> Result<Vec<ZernikeTerm>, FieldError> {
    if items.len() > MAX_NOLL_INDEX as usize {
        return Err(too_many_zernike_terms());
    }
    let mut terms = Vec::new();
    for (noll_index, item) in (1..).zip(items) {
        match item {
            Value::Null => {}
            Value::Number(n) => match n.as_f64() {
                Some(x) if x.is_finite() => terms.push(ZernikeTerm {
                    noll_index,
                    coefficient_nm: x,
                }),
                _ => {
                    return Err(err(
                        Field::ZernikeNm,
                        &n.to_string(),
                        "is not a finite number",
                    ));
                }
            },
            other => {
                return Err(err(
                    Field::ZernikeNm,
                    &other.to_string(),
                    format!("is not a number (Noll {noll_index}, nm)"),
                ));
            }
        }
    }
    Ok(terms)
}

fn too_many_zernike_terms() -> FieldError {
    err(
        Field::ZernikeNm,
        "",
        format!("has more than {MAX_NOLL_INDEX} entries (Noll index out of range)"),
    )
}

fn set_number(record: &mut SegmentRecord, field: Field, x: f64) -> Result<(), FieldError> {
    let slot = match field {
        Field::CteMaxPpmPerK => &mut record.cte_max_ppm_per_k,
        Field::SizeFlatToFlatMm => &mut record.size_flat_to_flat_mm,
        Field::ThicknessMm => &mut record.thickness_mm,
        Field::MassKg => &mut record.mass_kg,
        Field::SurfaceFigureErrorNmRms => &mut record.surface_figure_error_nm_rms,
        Field::RadiusOfCurvatureNominalMm => &mut record.radius_of_curvature_nominal_mm,
        Field::RadiusOfCurvatureMeasuredMm => &mut record.radius_of_curvature_measured_mm,
        Field::ConicConstant => &mut record.conic_constant,
        Field::OffAxisDistanceMm => &mut record.off_axis_distance_mm,
        Field::ClockingArcsec => &mut record.clocking_arcsec,
        Field::MicroroughnessAngstromRms => &mut record.microroughness_angstrom_rms,
        Field::CoatingThicknessNm => &mut record.coating_thickness_nm,
        Field::FreshReflectivity(wavelength_nm) => {
            record.fresh_reflectivity.push(Reflectivity {
                wavelength_nm,
                percent: x,
            });
            return Ok(());
        }
        other => {
            debug_assert!(false, "{other:?} is not a number field");
            return Err(err(other, "", "is not a number field"));
        }
    };
    *slot = x;
    Ok(())
}

/// The string field behind a [`Kind::Text`] field.
fn text_slot(record: &mut SegmentRecord, field: Field) -> &mut String {
    match field {
        Field::Serial => &mut record.serial,
        Field::SegmentType => &mut record.segment_type,
        Field::BlankId => &mut record.blank_id,
        Field::CteClass => &mut record.cte_class,
        Field::Interferometer => &mut record.interferometer,
        Field::CghId => &mut record.cgh_id,
        Field::CoatingPlant => &mut record.coating_plant,
        Field::CoatingBatch => &mut record.coating_batch,
        Field::WitnessSlideId => &mut record.witness_slide_id,
        Field::AcceptanceInspector => &mut record.acceptance_inspector,
        _ => &mut record.acceptance_notes,
    }
}

/// The date field behind a [`Kind::Date`] field.
fn date_slot(record: &mut SegmentRecord, field: Field) -> &mut Date {
    match field {
        Field::PolishedDate => &mut record.polished_date,
        Field::CoatingDate => &mut record.coating_date,
        _ => &mut record.acceptance_date,
    }
}

/// Puts the reflectivity list in wavelength order, as the files list it.
pub(crate) fn finish(record: &mut SegmentRecord) {
    record.fresh_reflectivity.sort_by_key(|r| r.wavelength_nm);
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    fn rec() -> SegmentRecord {
        SegmentRecord::placeholder()
    }

    #[test]
    fn text_values_parse_into_their_fields() {
        let mut r = rec();
        set_text(&mut r, Field::MassKg, " 101.5 ").unwrap();
        set_text(&mut r, Field::Ring, "2").unwrap();
        set_text(&mut r, Field::AcceptancePassed, "TRUE").unwrap();
        set_text(&mut r, Field::CoatingDate, "2024-03-19").unwrap();
        set_text(&mut r, Field::Substrate, "ule").unwrap();
        set_text(&mut r, Field::ZernikeNm, "0;1.5;;-2").unwrap();
        set_text(&mut r, Field::FreshReflectivity(650), "").unwrap();
        assert_eq!(r.mass_kg, 101.5);
        assert_eq!(r.ring, 2);
        assert!(r.acceptance_passed);
        assert_eq!(r.coating_date, date!(2024 - 03 - 19));
        assert_eq!(r.substrate, Substrate::Ule);
        let nolls: Vec<u32> = r.zernike_residuals.iter().map(|t| t.noll_index).collect();
        assert_eq!(nolls, [1, 2, 4]);
        assert!(r.fresh_reflectivity.is_empty());
    }

    #[test]
    fn bad_text_values_name_field_value_and_expectation() {
        let mut r = rec();
        let cases = [
            (
                Field::MassKg,
                "12,5",
                "mass_kg: 12,5 is not a number (expected kg)",
            ),
            (
                Field::MassKg,
                "",
                "mass_kg: is missing, expected a number in kg",
            ),
            (Field::MassKg, "NaN", "mass_kg: NaN is not a finite number"),
            (Field::Ring, "1.0", "ring: 1.0 is not a whole number"),
            (
                Field::AcceptancePassed,
                "yes",
                "acceptance_passed: yes is not true or false",
            ),
            (
                Field::CoatingDate,
                "19/03/2024",
                "coating_date: 19/03/2024 is not a date (expected YYYY-MM-DD)",
            ),
            (
                Field::CoatingKind,
                "gold",
                "coating_kind: gold is not one of bare_aluminium, protected_aluminium, protected_silver",
            ),
            (
                Field::ZernikeNm,
                "1;x",
                "zernike_nm: x is not a number (Noll 2, nm)",
            ),
        ];
        for (field, text, expected) in cases {
            let e = set_text(&mut r, field, text).unwrap_err();
            assert_eq!(e.to_string(), expected);
        }
    }

    #[test]
    fn json_values_are_type_checked() {
        let mut r = rec();
        set_json(&mut r, Field::MassKg, &serde_json::json!(99.25)).unwrap();
        set_json(
            &mut r,
            Field::ZernikeNm,
            &serde_json::json!([0.0, null, 3.5]),
        )
        .unwrap();
        set_json(&mut r, Field::AcceptanceNotes, &Value::Null).unwrap();
        assert_eq!(r.mass_kg, 99.25);
        assert_eq!(r.zernike_residuals.len(), 2);
        assert_eq!(r.zernike_residuals[1].noll_index, 3);
        let e = set_json(&mut r, Field::MassKg, &serde_json::json!("99")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "mass_kg: 99 is a string, expected a number in kg"
        );
        let e = set_json(&mut r, Field::MassKg, &serde_json::json!(true)).unwrap_err();
        assert_eq!(e.to_string(), "mass_kg: true is not a number (expected kg)");
        let e = set_json(&mut r, Field::Ring, &serde_json::json!(-1)).unwrap_err();
        assert_eq!(e.to_string(), "ring: -1 is not a whole number");
        let e = set_json(&mut r, Field::Serial, &serde_json::json!(7)).unwrap_err();
        assert_eq!(e.to_string(), "serial: 7 is not a string");
    }

    #[test]
    fn too_many_zernike_entries_is_an_error() {
        let text = vec!["1"; MAX_NOLL_INDEX as usize + 1].join(";");
        let e = parse_zernike_text(&text).unwrap_err();
        assert_eq!(e.field, "zernike_nm");
    }
}

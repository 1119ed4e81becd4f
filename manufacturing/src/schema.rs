//! The file format's vocabulary: one table of fields with their units, shared
//! by the CSV header, the JSON keys, the writers and every error message.
//!
//! A name is `<quantity>_<unit>` (`mass_kg`, `surface_figure_error_nm_rms`).
//! Units are checked, never assumed or converted: a name with a known
//! quantity and another unit (`surface_figure_error_um_rms`, `mass_g`, or a
//! bare `mass`) is reported as a wrong unit that says what is expected.
//! Reflectivity columns are `fresh_reflectivity_<wavelength>nm_pct`; the
//! standard set (470, 530, 650, 880 nm) is required, other wavelengths may be
//! added.

use std::borrow::Cow;

use crate::record::STANDARD_WAVELENGTHS_NM;

/// A field of the file formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[allow(missing_docs)] // each variant is documented by its row in COLUMNS
pub enum Field {
    Serial,
    SegmentType,
    Ring,
    BlankId,
    Substrate,
    CteClass,
    CteMaxPpmPerK,
    SizeFlatToFlatMm,
    ThicknessMm,
    MassKg,
    SurfaceFigureErrorNmRms,
    RadiusOfCurvatureNominalMm,
    RadiusOfCurvatureMeasuredMm,
    ConicConstant,
    OffAxisDistanceMm,
    ClockingArcsec,
    MicroroughnessAngstromRms,
    Interferometer,
    CghId,
    ZernikeNm,
    PolishedDate,
    CoatingKind,
    CoatingThicknessNm,
    /// Fresh reflectivity at a wavelength in nm.
    FreshReflectivity(u32),
    CoatingDate,
    CoatingPlant,
    CoatingBatch,
    WitnessSlideId,
    AcceptancePassed,
    AcceptanceInspector,
    AcceptanceDate,
    AcceptanceNotes,
}

/// How a field's value is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Free text (may be empty; validation says which must not be).
    Text,
    /// A whole number.
    Integer,
    /// A finite decimal number.
    Number,
    /// A calendar date, `YYYY-MM-DD`.
    Date,
    /// `true` or `false`.
    Bool,
    /// One of `zerodur`, `ule`, `borosilicate`, `fused_silica`.
    Substrate,
    /// One of `bare_aluminium`, `protected_aluminium`, `protected_silver`.
    CoatingKind,
    /// Zernike coefficients in nm for Noll 1, 2, 3, ...: CSV `;`-separated
    /// (an empty entry skips an index), JSON an array of numbers or nulls.
    ZernikeList,
}

/// One column of the CSV file (one key of a JSON record).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Column {
    /// The field.
    pub field: Field,
    /// Full name, with the unit suffix.
    pub name: &'static str,
    /// The quantity without the unit suffix (equal to `name` when dimensionless).
    pub base: &'static str,
    /// The unit suffix of the name, empty when dimensionless or not a quantity.
    pub unit: &'static str,
    /// The unit in words, for messages: `nm RMS`, `%`, `kg`.
    pub unit_label: &'static str,
    /// How the value is written.
    pub kind: Kind,
    /// What it is.
    pub description: &'static str,
}

const fn col(
    field: Field,
    name: &'static str,
    base: &'static str,
    unit: &'static str,
    unit_label: &'static str,
    kind: Kind,
    description: &'static str,
) -> Column {
    Column {
        field,
        name,
        base,
        unit,
        unit_label,
        kind,
        description,
    }
}

use Kind::*;

/// Every column, in the order the writers use. All are required.
#[rustfmt::skip]
pub const COLUMNS: &[Column] = &[
    col(Field::Serial, "serial", "serial", "", "", Text, "serial number, e.g. CSOA-M1-T2-0007"),
    col(Field::SegmentType, "segment_type", "segment_type", "", "", Text, "prescription family, e.g. T2"),
    col(Field::Ring, "ring", "ring", "", "", Integer, "1 = inner ring, 2 = outer ring (3 for 36 segments)"),
    col(Field::BlankId, "blank_id", "blank_id", "", "", Text, "glass blank identifier"),
    col(Field::Substrate, "substrate", "substrate", "", "", Kind::Substrate, "substrate material"),
    col(Field::CteClass, "cte_class", "cte_class", "", "", Text, "expansion class (Zerodur 0, 1, 2, 0 EXTREME) or maker's name"),
    col(Field::CteMaxPpmPerK, "cte_max_ppm_per_k", "cte_max", "ppm_per_k", "ppm/K", Number, "bound of the coefficient of thermal expansion, 10^-6/K"),
    col(Field::SizeFlatToFlatMm, "size_flat_to_flat_mm", "size_flat_to_flat", "mm", "mm", Number, "hexagon size across flats"),
    col(Field::ThicknessMm, "thickness_mm", "thickness", "mm", "mm", Number, "substrate thickness"),
    col(Field::MassKg, "mass_kg", "mass", "kg", "kg", Number, "mass"),
    col(Field::SurfaceFigureErrorNmRms, "surface_figure_error_nm_rms", "surface_figure_error", "nm_rms", "nm RMS", Number, "surface figure error (spec <= 15)"),
    col(Field::RadiusOfCurvatureNominalMm, "radius_of_curvature_nominal_mm", "radius_of_curvature_nominal", "mm", "mm", Number, "prescription radius of curvature"),
    col(Field::RadiusOfCurvatureMeasuredMm, "radius_of_curvature_measured_mm", "radius_of_curvature_measured", "mm", "mm", Number, "measured radius of curvature"),
    col(Field::ConicConstant, "conic_constant", "conic_constant", "", "", Number, "conic constant of the parent surface (-1 = paraboloid)"),
    col(Field::OffAxisDistanceMm, "off_axis_distance_mm", "off_axis_distance", "mm", "mm", Number, "distance of the segment centre from the axis"),
    col(Field::ClockingArcsec, "clocking_arcsec", "clocking", "arcsec", "arcsec", Number, "rotation about the segment axis"),
    col(Field::MicroroughnessAngstromRms, "microroughness_angstrom_rms", "microroughness", "angstrom_rms", "Å RMS", Number, "microroughness"),
    col(Field::Interferometer, "interferometer", "interferometer", "", "", Text, "interferometer of the final metrology"),
    col(Field::CghId, "cgh_id", "cgh_id", "", "", Text, "computer-generated hologram (empty if none)"),
    col(Field::ZernikeNm, "zernike_nm", "zernike", "nm", "nm", ZernikeList, "residual Zernike coefficients, Noll 1, 2, 3, ..."),
    col(Field::PolishedDate, "polished_date", "polished_date", "", "", Date, "date polishing finished"),
    col(Field::CoatingKind, "coating_kind", "coating_kind", "", "", Kind::CoatingKind, "coating kind"),
    col(Field::CoatingThicknessNm, "coating_thickness_nm", "coating_thickness", "nm", "nm", Number, "total coating stack thickness"),
    col(Field::FreshReflectivity(470), "fresh_reflectivity_470nm_pct", "fresh_reflectivity_470nm", "pct", "%", Number, "fresh reflectivity at 470 nm (witness slide)"),
    col(Field::FreshReflectivity(530), "fresh_reflectivity_530nm_pct", "fresh_reflectivity_530nm", "pct", "%", Number, "fresh reflectivity at 530 nm (witness slide)"),
    col(Field::FreshReflectivity(650), "fresh_reflectivity_650nm_pct", "fresh_reflectivity_650nm", "pct", "%", Number, "fresh reflectivity at 650 nm (witness slide)"),
    col(Field::FreshReflectivity(880), "fresh_reflectivity_880nm_pct", "fresh_reflectivity_880nm", "pct", "%", Number, "fresh reflectivity at 880 nm (witness slide)"),
    col(Field::CoatingDate, "coating_date", "coating_date", "", "", Date, "date of coating"),
    col(Field::CoatingPlant, "coating_plant", "coating_plant", "", "", Text, "coating plant (vacuum chamber)"),
    col(Field::CoatingBatch, "coating_batch", "coating_batch", "", "", Text, "coating batch"),
    col(Field::WitnessSlideId, "witness_slide_id", "witness_slide_id", "", "", Text, "witness slide coated with the segment"),
    col(Field::AcceptancePassed, "acceptance_passed", "acceptance_passed", "", "", Bool, "whether the segment passed acceptance"),
    col(Field::AcceptanceInspector, "acceptance_inspector", "acceptance_inspector", "", "", Text, "acceptance inspector"),
    col(Field::AcceptanceDate, "acceptance_date", "acceptance_date", "", "", Date, "date of the acceptance decision"),
    col(Field::AcceptanceNotes, "acceptance_notes", "acceptance_notes", "", "", Text, "reason for a rejection or a concession"),
];

/// The CSV header the writers produce (reflectivity: the standard set).
pub fn csv_header() -> Vec<&'static str> {
    COLUMNS.iter().map(|c| c.name).collect()
}

/// Prefix of the reflectivity fields.
const REFLECTIVITY_PREFIX: &str = "fresh_reflectivity_";

impl Field {
    /// Name in the file formats (and in error messages).
    pub fn name(self) -> Cow<'static, str> {
        match self.column() {
            Some(c) => Cow::Borrowed(c.name),
            None => match self {
                Field::FreshReflectivity(wl) => Cow::Owned(reflectivity_name(wl)),
                _ => Cow::Borrowed(""),
            },
        }
    }

    /// Its row in [`COLUMNS`]; `None` for a non-standard wavelength.
    pub fn column(self) -> Option<&'static Column> {
        COLUMNS.iter().find(|c| c.field == self)
    }

    /// How its value is written.
    pub fn kind(self) -> Kind {
        match self {
            Field::FreshReflectivity(_) => Kind::Number,
            other => other.column().map_or(Kind::Text, |c| c.kind),
        }
    }

    /// Its unit in words, empty when dimensionless.
    pub fn unit_label(self) -> &'static str {
        match self {
            Field::FreshReflectivity(_) => "%",
            other => other.column().map_or("", |c| c.unit_label),
        }
    }
}

/// Name of the reflectivity field at a wavelength, e.g. `fresh_reflectivity_650nm_pct`.
pub fn reflectivity_name(wavelength_nm: u32) -> String {
    format!("{REFLECTIVITY_PREFIX}{wavelength_nm}nm_pct")
}

/// What a column name or JSON key is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NameMatch {
    Known(Field),
    /// A known quantity with another unit (or none).
    WrongUnit {
        /// `unit \`um_rms\`` or `no unit`.
        found: String,
        expected: String,
        unit: &'static str,
    },
    Unknown,
}

fn describe_unit(suffix: &str) -> String {
    if suffix.is_empty() {
        "no unit".to_owned()
    } else {
        format!("unit `{suffix}`")
    }
}

/// Classifies one column name or JSON key (surrounding spaces ignored).
pub(crate) fn classify(name: &str) -> NameMatch {
    let name = name.trim();
    if let Some(c) = COLUMNS.iter().find(|c| c.name == name) {
        return NameMatch::Known(c.field);
    }
    if let Some(rest) = name.strip_prefix(REFLECTIVITY_PREFIX) {
        return classify_reflectivity(rest);
    }
    for c in COLUMNS.iter().filter(|c| !c.unit.is_empty()) {
        let suffix = if name == c.base {
            Some("")
        } else {
            name.strip_prefix(c.base).and_then(|r| r.strip_prefix('_'))
        };
        if let Some(suffix) = suffix {
            return NameMatch::WrongUnit {
                found: describe_unit(suffix),
                expected: c.name.to_owned(),
                unit: c.unit_label,
            };
        }
    }
    NameMatch::Unknown
}

fn classify_reflectivity(rest: &str) -> NameMatch {
    let digits_end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    let (digits, tail) = rest.split_at(digits_end);
    if let (Ok(wl), Some(after_nm)) = (digits.parse::<u32>(), tail.strip_prefix("nm")) {
        if after_nm == "_pct" {
            return NameMatch::Known(Field::FreshReflectivity(wl));
        }
        let suffix = after_nm.strip_prefix('_').unwrap_or(after_nm);
        return NameMatch::WrongUnit {
            found: describe_unit(suffix),
            expected: reflectivity_name(wl),
            unit: "%",
        };
    }
    NameMatch::WrongUnit {
        found: format!("`{rest}` (wavelength not in nm)"),
        expected: format!("{REFLECTIVITY_PREFIX}<wavelength>nm_pct"),
        unit: "%",
    }
}

/// A problem with the set of names of a header or JSON object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NameIssue {
    Unknown(String),
    WrongUnit {
        name: String,
        found: String,
        expected: String,
        unit: &'static str,
    },
    Duplicate(String),
    Missing(&'static str),
}

/// Names mapped to fields, with the problems found.
#[derive(Debug, Default)]
pub(crate) struct NameMap {
    /// The field of each name in order; `None` for names to ignore.
    pub fields: Vec<Option<Field>>,
    pub issues: Vec<NameIssue>,
}

/// Maps the names of a CSV header or a JSON object to fields. Unknown names
/// are an issue unless `allow_extra`; wrong units, duplicates and missing
/// required names always are. A required name whose quantity came with a
/// wrong unit is not reported missing a second time.
pub(crate) fn map_names<'a>(
    names: impl IntoIterator<Item = &'a str>,
    allow_extra: bool,
) -> NameMap {
    let mut map = NameMap::default();
    let mut seen: Vec<Field> = Vec::new();
    let mut wrong_unit_expected: Vec<String> = Vec::new();
    for name in names {
        let field = match classify(name) {
            NameMatch::Known(field) if seen.contains(&field) => {
                map.issues
                    .push(NameIssue::Duplicate(name.trim().to_owned()));
                None
            }
            NameMatch::Known(field) => {
                seen.push(field);
                Some(field)
            }
            NameMatch::WrongUnit {
                found,
                expected,
                unit,
            } => {
                wrong_unit_expected.push(expected.clone());
                map.issues.push(NameIssue::WrongUnit {
                    name: name.trim().to_owned(),
                    found,
                    expected,
                    unit,
                });
                None
            }
            NameMatch::Unknown => {
                if !allow_extra {
                    map.issues.push(NameIssue::Unknown(name.trim().to_owned()));
                }
                None
            }
        };
        map.fields.push(field);
    }
    for c in COLUMNS {
        if !seen.contains(&c.field) && !wrong_unit_expected.iter().any(|e| e == c.name) {
            map.issues.push(NameIssue::Missing(c.name));
        }
    }
    map
}

/// True for the standard reflectometer wavelengths.
pub(crate) fn is_standard_wavelength(wavelength_nm: u32) -> bool {
    STANDARD_WAVELENGTHS_NM.contains(&wavelength_nm)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_column_name_is_base_plus_unit() {
        for c in COLUMNS {
            let expected = if c.unit.is_empty() {
                c.base.to_owned()
            } else {
                format!("{}_{}", c.base, c.unit)
            };
            assert_eq!(c.name, expected);
            assert_eq!(classify(c.name), NameMatch::Known(c.field));
            assert_eq!(c.field.name(), c.name);
        }
    }

    #[test]
    fn wrong_units_name_the_expected_column() {
        assert_eq!(
            classify("surface_figure_error_um_rms"),
            NameMatch::WrongUnit {
                found: "unit `um_rms`".into(),
                expected: "surface_figure_error_nm_rms".into(),
                unit: "nm RMS",
            }
        );
        assert_eq!(
            classify("mass"),
            NameMatch::WrongUnit {
                found: "no unit".into(),
                expected: "mass_kg".into(),
                unit: "kg",
            }
        );
        assert_eq!(
            classify("fresh_reflectivity_650nm_frac"),
            NameMatch::WrongUnit {
                found: "unit `frac`".into(),
                expected: "fresh_reflectivity_650nm_pct".into(),
                unit: "%",
            }
        );
        assert!(matches!(
            classify("fresh_reflectivity_0.65um_pct"),
            NameMatch::WrongUnit { expected, .. } if expected == "fresh_reflectivity_<wavelength>nm_pct"
        ));
        assert_eq!(
            classify("coating_thickness_um").clone(),
            NameMatch::WrongUnit {
                found: "unit `um`".into(),
                expected: "coating_thickness_nm".into(),
                unit: "nm",
            }
        );
    }

    #[test]
    fn extra_wavelengths_and_unknown_names() {
        assert_eq!(
            classify("fresh_reflectivity_1020nm_pct"),
            NameMatch::Known(Field::FreshReflectivity(1020))
        );
        assert_eq!(
            Field::FreshReflectivity(1020).name(),
            "fresh_reflectivity_1020nm_pct"
        );
        assert_eq!(classify("operator"), NameMatch::Unknown);
    }

    #[test]
    fn map_names_reports_missing_duplicate_unknown_and_wrong_unit() {
        let mut names = csv_header();
        names.retain(|n| *n != "mass_kg" && *n != "surface_figure_error_nm_rms");
        names.push("surface_figure_error_um_rms");
        names.push("serial");
        names.push("operator");
        let map = map_names(names.iter().copied(), false);
        assert_eq!(
            map.issues,
            vec![
                NameIssue::WrongUnit {
                    name: "surface_figure_error_um_rms".into(),
                    found: "unit `um_rms`".into(),
                    expected: "surface_figure_error_nm_rms".into(),
                    unit: "nm RMS",
                },
                NameIssue::Duplicate("serial".into()),
                NameIssue::Unknown("operator".into()),
                NameIssue::Missing("mass_kg"),
            ]
        );
        let map = map_names(names.iter().copied(), true);
        assert_eq!(
            map.issues.len(),
            3,
            "allow_extra only forgives the unknown name"
        );
    }
}

//! Validation of a record against physical ranges and the acceptance rules.
//!
//! [`validate`] returns every error of a record, each naming the field (file
//! format name), the value and the allowed range, e.g.
//! `surface_figure_error_nm_rms: -3 is out of range 0..=100 nm RMS`.
//! [`warnings`] returns findings that are plausible but worth a look. The
//! rules and their ranges are listed in the crate README.

use std::collections::BTreeSet;
use std::ops::RangeInclusive;

use time::{Date, OffsetDateTime};

use crate::error::FieldError;
use crate::parse::MAX_NOLL_INDEX;
use crate::record::{STANDARD_WAVELENGTHS_NM, SegmentRecord, Substrate};
use crate::schema::{Field, reflectivity_name};

mod limits;

pub use limits::*;
use limits::{is_segment_type, is_serial, zerodur_class_bound};

/// Rules that depend on the project or the moment of validation.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidationRules {
    /// Dates after this day are errors.
    pub today: Date,
    /// Highest ring: 2 for 18 segments, 3 for 36.
    pub max_ring: u32,
    /// Surface figure error specification, nm RMS.
    pub figure_error_spec_nm_rms: f64,
    /// Deviation of the measured radius of curvature from nominal beyond
    /// which a record is an error, ppm.
    pub roc_max_deviation_ppm: f64,
    /// Deviation beyond which a record gets a warning, ppm.
    pub roc_warn_deviation_ppm: f64,
}

impl ValidationRules {
    /// The defaults of an 18-segment mirror with a 15 nm RMS spec, as of `today`.
    pub fn new(today: Date) -> Self {
        Self {
            today,
            max_ring: 2,
            figure_error_spec_nm_rms: 15.0,
            roc_max_deviation_ppm: 1000.0,
            roc_warn_deviation_ppm: 200.0,
        }
    }

    /// [`ValidationRules::new`] as of today (UTC).
    pub fn as_of_now() -> Self {
        Self::new(OffsetDateTime::now_utc().date())
    }

    /// Sets the highest ring from the segment count of the mirror (18 → 2,
    /// 36 → 3); `None` when the count is not a full set of hexagonal rings
    /// around a central hole (6, 18, 36, 60, ...).
    pub fn for_segment_count(mut self, segments: u32) -> Option<Self> {
        self.max_ring = rings_for_segment_count(segments)?;
        Some(self)
    }
}

/// Number of hexagonal rings of a mirror of `segments` segments with a central
/// hole (ring k holds 6k segments); `None` for other counts.
pub fn rings_for_segment_count(segments: u32) -> Option<u32> {
    let mut total = 0u32;
    for ring in 1..=64u32 {
        total += 6 * ring;
        if total == segments {
            return Some(ring);
        }
        if total > segments {
            break;
        }
    }
    None
}

impl SegmentRecord {
    /// Every error of this record; empty when it is valid. See [`validate`].
    pub fn validate(&self, rules: &ValidationRules) -> Vec<FieldError> {
        validate(self, rules)
    }
}

/// Every error of `record`; empty when it is valid.
pub fn validate(record: &SegmentRecord, rules: &ValidationRules) -> Vec<FieldError> {
    let mut c = Checker::default();
    c.identity(record, rules);
    c.substrate(record);
    c.geometry(record, rules);
    c.zernike(record);
    c.coating(record);
    c.dates(record, rules);
    c.acceptance(record, rules);
    c.errors
}

/// Plausible but unusual values: a radius of curvature between the warning
/// and error deviations, an over-spec segment accepted under a concession,
/// Zernike residuals larger than the figure error, rough fresh polish.
pub fn warnings(record: &SegmentRecord, rules: &ValidationRules) -> Vec<FieldError> {
    let mut out = Vec::new();
    let ppm = record.radius_of_curvature_deviation_ppm();
    if ppm.abs() > rules.roc_warn_deviation_ppm && ppm.abs() <= rules.roc_max_deviation_ppm {
        out.push(FieldError::new(
            Field::RadiusOfCurvatureMeasuredMm.name(),
            record.radius_of_curvature_measured_mm.to_string(),
            format!(
                "deviates {} ppm from nominal {} mm (warning above {} ppm)",
                fmt_num(ppm.round()),
                fmt_num(record.radius_of_curvature_nominal_mm),
                fmt_num(rules.roc_warn_deviation_ppm)
            ),
        ));
    }
    let figure = record.surface_figure_error_nm_rms;
    if record.acceptance_passed
        && figure > rules.figure_error_spec_nm_rms
        && !record.acceptance_notes.trim().is_empty()
    {
        out.push(FieldError::new(
            Field::SurfaceFigureErrorNmRms.name(),
            figure.to_string(),
            format!(
                "exceeds the {} nm RMS spec; accepted under the concession in acceptance_notes",
                fmt_num(rules.figure_error_spec_nm_rms)
            ),
        ));
    }
    let high_order_rms = record
        .zernike_residuals
        .iter()
        .filter(|t| t.noll_index >= 5)
        .map(|t| t.coefficient_nm * t.coefficient_nm)
        .sum::<f64>()
        .sqrt();
    if high_order_rms > 1.1 * figure + 1.0 {
        out.push(FieldError::new(
            Field::ZernikeNm.name(),
            format!("{} nm RMS", fmt_num((high_order_rms * 10.0).round() / 10.0)),
            format!(
                "(Noll 5 and above) is more than the surface figure error {} nm RMS",
                fmt_num(figure)
            ),
        ));
    }
    if record.microroughness_angstrom_rms > MICROROUGHNESS_TYPICAL_MAX {
        out.push(FieldError::new(
            Field::MicroroughnessAngstromRms.name(),
            record.microroughness_angstrom_rms.to_string(),
            format!(
                "is above the {} Å RMS typical of fresh polish",
                fmt_num(MICROROUGHNESS_TYPICAL_MAX)
            ),
        ));
    }
    out
}

/// A bound without float noise: at most 6 decimals, no trailing zeros.
pub(crate) fn fmt_num(x: f64) -> String {
    let s = format!("{x:.6}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".to_owned()
    } else {
        s.to_owned()
    }
}

#[derive(Default)]
struct Checker {
    errors: Vec<FieldError>,
}

impl Checker {
    fn push(
        &mut self,
        field: impl Into<String>,
        value: impl Into<String>,
        reason: impl Into<String>,
    ) {
        self.errors.push(FieldError::new(field, value, reason));
    }

    /// `value` within `range`, else `value is out of range lo..=hi unit context`.
    fn range(
        &mut self,
        field: Field,
        value: f64,
        range: RangeInclusive<f64>,
        context: &str,
    ) -> bool {
        self.range_named(&field.name(), field.unit_label(), value, range, context)
    }

    fn range_named(
        &mut self,
        name: &str,
        unit: &str,
        value: f64,
        range: RangeInclusive<f64>,
        context: &str,
    ) -> bool {
        if range.contains(&value) {
            return true;
        }
        let unit = if unit.is_empty() {
            String::new()
        } else {
            format!(" {unit}")
        };
        self.push(
            name,
            value.to_string(),
            format!(
                "is out of range {}..={}{unit}{context}",
                fmt_num(*range.start()),
                fmt_num(*range.end())
            ),
        );
        false
    }

    fn text(&mut self, field: Field, value: &str, required: bool, max_len: usize) {
        if required && value.trim().is_empty() {
            self.push(field.name(), "", "is missing");
        } else if value.chars().count() > max_len {
            self.push(
                field.name(),
                value,
                format!("is longer than {max_len} characters"),
            );
        }
    }

    fn identity(&mut self, r: &SegmentRecord, rules: &ValidationRules) {
        let serial = Field::Serial.name();
        if r.serial.is_empty() {
            self.push(serial, "", "is missing");
        } else if r.serial.chars().count() > MAX_SERIAL_LEN {
            self.push(
                serial,
                &r.serial,
                format!("is longer than {MAX_SERIAL_LEN} characters"),
            );
        } else if !is_serial(&r.serial) {
            self.push(
                serial,
                &r.serial,
                "does not match [A-Z0-9]+(-[A-Z0-9]+)+ (e.g. CSOA-M1-T2-0007)",
            );
        }
        if r.segment_type.is_empty() {
            self.push(Field::SegmentType.name(), "", "is missing");
        } else if !is_segment_type(&r.segment_type) {
            self.push(
                Field::SegmentType.name(),
                &r.segment_type,
                "does not match [A-Z][A-Z0-9]{0,7} (e.g. T2)",
            );
        }
        if !(1..=rules.max_ring).contains(&r.ring) {
            self.push(
                Field::Ring.name(),
                r.ring.to_string(),
                format!("is out of range 1..={} (1 = inner ring)", rules.max_ring),
            );
        }
        self.text(Field::BlankId, &r.blank_id, true, MAX_TEXT_LEN);
        self.text(Field::CteClass, &r.cte_class, true, MAX_TEXT_LEN);
        self.text(Field::Interferometer, &r.interferometer, true, MAX_TEXT_LEN);
        self.text(Field::CghId, &r.cgh_id, false, MAX_TEXT_LEN);
        self.text(Field::CoatingPlant, &r.coating_plant, true, MAX_TEXT_LEN);
        self.text(Field::CoatingBatch, &r.coating_batch, true, MAX_TEXT_LEN);
        self.text(
            Field::WitnessSlideId,
            &r.witness_slide_id,
            true,
            MAX_TEXT_LEN,
        );
        self.text(
            Field::AcceptanceInspector,
            &r.acceptance_inspector,
            true,
            MAX_TEXT_LEN,
        );
        self.text(
            Field::AcceptanceNotes,
            &r.acceptance_notes,
            false,
            MAX_NOTES_LEN,
        );
    }

    fn substrate(&mut self, r: &SegmentRecord) {
        let (bound, context) = match r.substrate {
            Substrate::Zerodur => match zerodur_class_bound(&r.cte_class) {
                Some(bound) => (bound, format!(" for zerodur class {}", r.cte_class.trim())),
                None => {
                    if !r.cte_class.trim().is_empty() {
                        self.push(
                            Field::CteClass.name(),
                            &r.cte_class,
                            "is not a zerodur expansion class (0, 1, 2, 0 EXTREME)",
                        );
                    }
                    (0.10, " for zerodur".to_owned())
                }
            },
            Substrate::Ule => (0.03, " for ule".to_owned()),
            Substrate::FusedSilica => (0.6, " for fused_silica".to_owned()),
            Substrate::Borosilicate => (4.0, " for borosilicate".to_owned()),
        };
        self.range(
            Field::CteMaxPpmPerK,
            r.cte_max_ppm_per_k,
            0.0..=bound,
            &context,
        );
    }

    fn geometry(&mut self, r: &SegmentRecord, rules: &ValidationRules) {
        let size_ok = self.range(
            Field::SizeFlatToFlatMm,
            r.size_flat_to_flat_mm,
            SIZE_FLAT_TO_FLAT_MM,
            "",
        );
        let thickness_ok = self.range(Field::ThicknessMm, r.thickness_mm, THICKNESS_MM, "");
        let mass_ok = self.range(Field::MassKg, r.mass_kg, MASS_KG, "");
        if size_ok && thickness_ok && mass_ok {
            let solid = solid_hexagon_mass_kg(r.size_flat_to_flat_mm, r.thickness_mm, r.substrate);
            let lo = (MASS_FRACTION_OF_SOLID.start() * solid * 10.0).round() / 10.0;
            let hi = (MASS_FRACTION_OF_SOLID.end() * solid * 10.0).round() / 10.0;
            self.range(
                Field::MassKg,
                r.mass_kg,
                lo..=hi,
                &format!(
                    " (0.3 to 1.1 × a solid {} hexagon of {} mm × {} mm)",
                    r.substrate,
                    fmt_num(r.size_flat_to_flat_mm),
                    fmt_num(r.thickness_mm)
                ),
            );
        }
        self.range(
            Field::SurfaceFigureErrorNmRms,
            r.surface_figure_error_nm_rms,
            SURFACE_FIGURE_ERROR_NM_RMS,
            "",
        );
        let nominal = r.radius_of_curvature_nominal_mm;
        if self.range(
            Field::RadiusOfCurvatureNominalMm,
            nominal,
            RADIUS_OF_CURVATURE_NOMINAL_MM,
            "",
        ) {
            let tol = rules.roc_max_deviation_ppm * 1e-6;
            let round = |x: f64| (x * 1000.0).round() / 1000.0;
            self.range(
                Field::RadiusOfCurvatureMeasuredMm,
                r.radius_of_curvature_measured_mm,
                round(nominal * (1.0 - tol))..=round(nominal * (1.0 + tol)),
                &format!(
                    " (nominal {} mm ± {} ppm)",
                    fmt_num(nominal),
                    fmt_num(rules.roc_max_deviation_ppm)
                ),
            );
        }
        self.range(Field::ConicConstant, r.conic_constant, CONIC_CONSTANT, "");
        self.range(
            Field::OffAxisDistanceMm,
            r.off_axis_distance_mm,
            OFF_AXIS_DISTANCE_MM,
            "",
        );
        self.range(
            Field::ClockingArcsec,
            r.clocking_arcsec,
            CLOCKING_ARCSEC,
            "",
        );
        self.range(
            Field::MicroroughnessAngstromRms,
            r.microroughness_angstrom_rms,
            MICROROUGHNESS_ANGSTROM_RMS,
            "",
        );
    }

    fn zernike(&mut self, r: &SegmentRecord) {
        let field = Field::ZernikeNm.name();
        let mut seen = BTreeSet::new();
        let mut reported = BTreeSet::new();
        for t in &r.zernike_residuals {
            let noll = t.noll_index;
            if !(1..=MAX_NOLL_INDEX).contains(&noll) {
                self.push(
                    field.clone(),
                    format!("Noll index {noll}"),
                    format!("is out of range 1..={MAX_NOLL_INDEX}"),
                );
            } else if !seen.insert(noll) && reported.insert(noll) {
                self.push(
                    field.clone(),
                    format!("Noll index {noll}"),
                    "appears more than once",
                );
            }
            self.range_named(
                &field,
                "nm",
                t.coefficient_nm,
                ZERNIKE_COEFFICIENT_NM,
                &format!(" (Noll {noll})"),
            );
        }
    }

    fn coating(&mut self, r: &SegmentRecord) {
        let kind = r.coating_kind;
        let context = format!(" for {kind}");
        self.range(
            Field::CoatingThicknessNm,
            r.coating_thickness_nm,
            coating_thickness_nm(kind),
            &context,
        );
        let mut seen = BTreeSet::new();
        let mut reported = BTreeSet::new();
        for refl in &r.fresh_reflectivity {
            let wl = refl.wavelength_nm;
            let name = reflectivity_name(wl);
            if !WAVELENGTH_NM.contains(&wl) {
                self.push(
                    name.clone(),
                    format!("wavelength {wl} nm"),
                    format!(
                        "is out of range {}..={} nm",
                        WAVELENGTH_NM.start(),
                        WAVELENGTH_NM.end()
                    ),
                );
            }
            if !seen.insert(wl) {
                if reported.insert(wl) {
                    self.push(name, "", "appears more than once");
                }
                continue;
            }
            // Per-kind ranges exist for the standard wavelengths only.
            if self.range_named(&name, "%", refl.percent, REFLECTIVITY_PCT, "")
                && let Some(range) = fresh_reflectivity_pct(kind, wl)
            {
                self.range_named(&name, "%", refl.percent, range, &context);
            }
        }
        for wl in STANDARD_WAVELENGTHS_NM {
            if !seen.contains(&wl) {
                self.push(
                    reflectivity_name(wl),
                    "",
                    "is missing (the standard set 470, 530, 650, 880 nm is required)",
                );
            }
        }
    }

    fn dates(&mut self, r: &SegmentRecord, rules: &ValidationRules) {
        let dates = [
            (Field::PolishedDate, r.polished_date),
            (Field::CoatingDate, r.coating_date),
            (Field::AcceptanceDate, r.acceptance_date),
        ];
        for (field, d) in dates {
            if d < EARLIEST_DATE {
                self.push(
                    field.name(),
                    d.to_string(),
                    format!("is before {EARLIEST_DATE}"),
                );
            } else if d > rules.today {
                self.push(
                    field.name(),
                    d.to_string(),
                    format!("is in the future (today is {})", rules.today),
                );
            }
        }
        for pair in dates.windows(2) {
            let [(earlier_field, earlier), (later_field, later)] = [pair[0], pair[1]];
            if later < earlier {
                self.push(
                    later_field.name(),
                    later.to_string(),
                    format!("is before {} {earlier}", earlier_field.name()),
                );
            }
        }
    }

    fn acceptance(&mut self, r: &SegmentRecord, rules: &ValidationRules) {
        let figure = r.surface_figure_error_nm_rms;
        let notes_empty = r.acceptance_notes.trim().is_empty();
        if r.acceptance_passed && figure > rules.figure_error_spec_nm_rms && notes_empty {
            self.push(
                Field::AcceptancePassed.name(),
                "true",
                format!(
                    "but surface_figure_error_nm_rms {figure} exceeds the {} nm RMS spec: \
                     set it to false or record the concession in acceptance_notes",
                    fmt_num(rules.figure_error_spec_nm_rms)
                ),
            );
        }
        if !r.acceptance_passed && notes_empty {
            self.push(
                Field::AcceptanceNotes.name(),
                "",
                "is missing: a rejected segment needs the reason",
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_count_follows_hexagonal_rings() {
        assert_eq!(rings_for_segment_count(18), Some(2));
        assert_eq!(rings_for_segment_count(36), Some(3));
        assert_eq!(rings_for_segment_count(6), Some(1));
        assert_eq!(rings_for_segment_count(20), None);
        assert_eq!(rings_for_segment_count(0), None);
    }

    #[test]
    fn bounds_print_without_float_noise() {
        assert_eq!(fmt_num(12000.0 * 1.001), "12012");
        assert_eq!(fmt_num(0.007), "0.007");
        assert_eq!(fmt_num(-648000.0), "-648000");
        assert_eq!(fmt_num(-0.0), "0");
    }
}

//! The physical ranges and per-kind tables the validation uses.

use std::ops::RangeInclusive;

use time::Date;
use time::macros::date;

use crate::record::{CoatingKind, Substrate};

/// Longest serial, characters.
pub const MAX_SERIAL_LEN: usize = 32;
/// Longest text field other than the notes, characters.
pub const MAX_TEXT_LEN: usize = 128;
/// Longest acceptance note, characters.
pub const MAX_NOTES_LEN: usize = 4000;
/// Hexagon size across flats, mm (Keck 1800, ELT 1450, this project 900).
pub const SIZE_FLAT_TO_FLAT_MM: RangeInclusive<f64> = 100.0..=2000.0;
/// Substrate thickness, mm.
pub const THICKNESS_MM: RangeInclusive<f64> = 10.0..=200.0;
/// Mass, kg.
pub const MASS_KG: RangeInclusive<f64> = 1.0..=2000.0;
/// Mass as a fraction of a solid hexagonal blank of the record's size,
/// thickness and substrate density (lightweighting down to 30 %).
pub const MASS_FRACTION_OF_SOLID: RangeInclusive<f64> = 0.3..=1.1;
/// Surface figure error, nm RMS.
pub const SURFACE_FIGURE_ERROR_NM_RMS: RangeInclusive<f64> = 0.0..=100.0;
/// Nominal radius of curvature, mm.
pub const RADIUS_OF_CURVATURE_NOMINAL_MM: RangeInclusive<f64> = 1000.0..=200_000.0;
/// Conic constant of a primary's parent surface (sphere 0 to hyperboloids).
pub const CONIC_CONSTANT: RangeInclusive<f64> = -2.0..=0.0;
/// Off-axis distance, mm.
pub const OFF_AXIS_DISTANCE_MM: RangeInclusive<f64> = 0.0..=50_000.0;
/// Clocking, arcsec (±180°).
pub const CLOCKING_ARCSEC: RangeInclusive<f64> = -648_000.0..=648_000.0;
/// Microroughness, Å RMS.
pub const MICROROUGHNESS_ANGSTROM_RMS: RangeInclusive<f64> = 0.0..=200.0;
/// Typical upper bound of fresh microroughness, Å RMS (warning above).
pub const MICROROUGHNESS_TYPICAL_MAX: f64 = 30.0;
/// Zernike coefficient, nm.
pub const ZERNIKE_COEFFICIENT_NM: RangeInclusive<f64> = -1000.0..=1000.0;
/// Reflectometer wavelength, nm.
pub const WAVELENGTH_NM: RangeInclusive<u32> = 200..=25_000;
/// Reflectivity, percent.
pub const REFLECTIVITY_PCT: RangeInclusive<f64> = 0.0..=100.0;
/// Earliest plausible date of any record.
pub const EARLIEST_DATE: Date = date!(1960 - 01 - 01);

/// `^[A-Z0-9]+(-[A-Z0-9]+)+$`
pub(crate) fn is_serial(s: &str) -> bool {
    let mut parts = 0;
    for part in s.split('-') {
        if part.is_empty()
            || !part
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        {
            return false;
        }
        parts += 1;
    }
    parts >= 2
}

/// `^[A-Z][A-Z0-9]{0,7}$`
pub(crate) fn is_segment_type(s: &str) -> bool {
    let b = s.as_bytes();
    (1..=8).contains(&b.len())
        && b[0].is_ascii_uppercase()
        && b.iter()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
}

/// CTE bound of a Zerodur expansion class, 10⁻⁶/K (SCHOTT data sheet).
pub(crate) fn zerodur_class_bound(class: &str) -> Option<f64> {
    match class.trim().to_ascii_uppercase().as_str() {
        "0 EXTREME" => Some(0.007),
        "0" => Some(0.02),
        "1" => Some(0.05),
        "2" => Some(0.10),
        _ => None,
    }
}

/// Mass of a solid regular hexagon of `size` across flats and `thickness`, kg.
pub fn solid_hexagon_mass_kg(
    size_flat_to_flat_mm: f64,
    thickness_mm: f64,
    substrate: Substrate,
) -> f64 {
    let s = size_flat_to_flat_mm / 1000.0;
    let area_m2 = 3.0_f64.sqrt() / 2.0 * s * s;
    area_m2 * thickness_mm / 1000.0 * substrate.density_kg_per_m3()
}

/// Total coating stack thickness per kind, nm.
pub fn coating_thickness_nm(kind: CoatingKind) -> RangeInclusive<f64> {
    match kind {
        CoatingKind::BareAluminium => 80.0..=120.0,
        CoatingKind::ProtectedAluminium => 100.0..=250.0,
        CoatingKind::ProtectedSilver => 100.0..=300.0,
    }
}

/// Plausible fresh reflectivity of a coating kind at a standard wavelength,
/// percent (Al ≈ 91 at 500 nm, 91.7 at 670, ~86 at 880; Ag ≈ 97.6 at 500).
pub fn fresh_reflectivity_pct(
    kind: CoatingKind,
    wavelength_nm: u32,
) -> Option<RangeInclusive<f64>> {
    let range = match (kind, wavelength_nm) {
        (CoatingKind::BareAluminium, 470 | 530) => 87.0..=93.0,
        (CoatingKind::BareAluminium, 650) => 85.0..=93.0,
        (CoatingKind::BareAluminium, 880) => 80.0..=90.0,
        (CoatingKind::ProtectedAluminium, 470 | 530 | 650) => 82.0..=93.0,
        (CoatingKind::ProtectedAluminium, 880) => 78.0..=90.0,
        (CoatingKind::ProtectedSilver, 470) => 88.0..=99.0,
        (CoatingKind::ProtectedSilver, 530) => 92.0..=99.5,
        (CoatingKind::ProtectedSilver, 650 | 880) => 94.0..=99.5,
        _ => return None,
    };
    Some(range)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serial_and_type_patterns() {
        assert!(is_serial("CSOA-M1-T2-0007"));
        assert!(!is_serial("CSOA"));
        assert!(!is_serial("csoa-m1"));
        assert!(!is_serial("CSOA--1"));
        assert!(is_segment_type("T2"));
        assert!(!is_segment_type("2T"));
        assert!(!is_segment_type("T123456789"));
    }

    #[test]
    fn solid_mass_of_the_project_segment_is_about_100_kg() {
        let m = solid_hexagon_mass_kg(900.0, 60.0, Substrate::Zerodur);
        assert!((106.0..107.0).contains(&m), "{m}");
    }
}

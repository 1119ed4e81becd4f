//! The manufacturing record of one mirror segment, as the optics centre
//! measured it before the segment left.
//!
//! Units are part of the field names. The same names are used as CSV columns,
//! JSON keys and the `field` of every error (see [`crate::schema`]), except for
//! the two lists: [`SegmentRecord::zernike_residuals`] (file field `zernike_nm`)
//! and [`SegmentRecord::fresh_reflectivity`] (file fields
//! `fresh_reflectivity_<wavelength>nm_pct`).

use std::fmt;
use std::str::FromStr;

use time::Date;

/// Wavelengths of the standard reflectometer set, in nm.
pub const STANDARD_WAVELENGTHS_NM: [u32; 4] = [470, 530, 650, 880];

/// Everything the optics centre measured on a segment.
#[derive(Debug, Clone, PartialEq)]
pub struct SegmentRecord {
    /// Serial number, e.g. `CSOA-M1-T2-0007`.
    pub serial: String,
    /// Prescription family, e.g. `T2`.
    pub segment_type: String,
    /// 1 = inner ring, 2 = outer ring (3 for 36-segment mirrors).
    pub ring: u32,
    /// Identifier of the glass blank the segment was cut from.
    pub blank_id: String,
    /// Substrate material.
    pub substrate: Substrate,
    /// Expansion class: Zerodur `0`, `1`, `2` or `0 EXTREME`, else the maker's name.
    pub cte_class: String,
    /// Bound of the coefficient of thermal expansion, 10⁻⁶/K.
    pub cte_max_ppm_per_k: f64,
    /// Hexagon size across flats, mm.
    pub size_flat_to_flat_mm: f64,
    /// Substrate thickness, mm.
    pub thickness_mm: f64,
    /// Mass, kg.
    pub mass_kg: f64,
    /// Surface figure error, nm RMS (spec ≤ 15).
    pub surface_figure_error_nm_rms: f64,
    /// Nominal (prescription) radius of curvature, mm.
    pub radius_of_curvature_nominal_mm: f64,
    /// Measured radius of curvature, mm.
    pub radius_of_curvature_measured_mm: f64,
    /// Conic constant of the parent surface (dimensionless; −1 = paraboloid).
    pub conic_constant: f64,
    /// Distance of the segment centre from the mirror axis, mm.
    pub off_axis_distance_mm: f64,
    /// Clocking (rotation about the segment axis), arcsec.
    pub clocking_arcsec: f64,
    /// Microroughness, Å RMS.
    pub microroughness_angstrom_rms: f64,
    /// Interferometer used for the final metrology.
    pub interferometer: String,
    /// Computer-generated hologram used as null corrector (empty if none).
    pub cgh_id: String,
    /// Residual surface figure as Zernike coefficients (Noll order), nm.
    pub zernike_residuals: Vec<ZernikeTerm>,
    /// Date polishing finished.
    pub polished_date: Date,
    /// Kind of reflective coating.
    pub coating_kind: CoatingKind,
    /// Total coating stack thickness, nm.
    pub coating_thickness_nm: f64,
    /// Fresh reflectivity measured on the witness slide, percent per wavelength.
    pub fresh_reflectivity: Vec<Reflectivity>,
    /// Date of coating.
    pub coating_date: Date,
    /// Coating plant (vacuum chamber) identifier.
    pub coating_plant: String,
    /// Coating batch identifier.
    pub coating_batch: String,
    /// Identifier of the witness slide coated with the segment.
    pub witness_slide_id: String,
    /// Whether the segment passed acceptance.
    pub acceptance_passed: bool,
    /// Name of the acceptance inspector.
    pub acceptance_inspector: String,
    /// Date of the acceptance decision.
    pub acceptance_date: Date,
    /// Free-text notes: reason for a rejection or a concession.
    pub acceptance_notes: String,
}

/// One Zernike coefficient of the residual surface figure.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ZernikeTerm {
    /// Noll index (1 = piston).
    pub noll_index: u32,
    /// Coefficient, nm (surface).
    pub coefficient_nm: f64,
}

/// Reflectivity at one wavelength.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reflectivity {
    /// Wavelength, nm.
    pub wavelength_nm: u32,
    /// Reflectivity, percent (0–100).
    pub percent: f64,
}

impl SegmentRecord {
    /// Fresh reflectivity at `wavelength_nm`, percent, if it was measured.
    pub fn fresh_reflectivity_at(&self, wavelength_nm: u32) -> Option<f64> {
        self.fresh_reflectivity
            .iter()
            .find(|r| r.wavelength_nm == wavelength_nm)
            .map(|r| r.percent)
    }

    /// Deviation of the measured from the nominal radius of curvature, in ppm.
    pub fn radius_of_curvature_deviation_ppm(&self) -> f64 {
        (self.radius_of_curvature_measured_mm / self.radius_of_curvature_nominal_mm - 1.0) * 1e6
    }

    /// A record with every field set to a neutral value; the importers fill it
    /// in and guarantee every field was set before handing it out.
    pub(crate) fn placeholder() -> Self {
        Self {
            serial: String::new(),
            segment_type: String::new(),
            ring: 0,
            blank_id: String::new(),
            substrate: Substrate::Zerodur,
            cte_class: String::new(),
            cte_max_ppm_per_k: 0.0,
            size_flat_to_flat_mm: 0.0,
            thickness_mm: 0.0,
            mass_kg: 0.0,
            surface_figure_error_nm_rms: 0.0,
            radius_of_curvature_nominal_mm: 0.0,
            radius_of_curvature_measured_mm: 0.0,
            conic_constant: 0.0,
            off_axis_distance_mm: 0.0,
            clocking_arcsec: 0.0,
            microroughness_angstrom_rms: 0.0,
            interferometer: String::new(),
            cgh_id: String::new(),
            zernike_residuals: Vec::new(),
            polished_date: Date::MIN,
            coating_kind: CoatingKind::BareAluminium,
            coating_thickness_nm: 0.0,
            fresh_reflectivity: Vec::new(),
            coating_date: Date::MIN,
            coating_plant: String::new(),
            coating_batch: String::new(),
            witness_slide_id: String::new(),
            acceptance_passed: false,
            acceptance_inspector: String::new(),
            acceptance_date: Date::MIN,
            acceptance_notes: String::new(),
        }
    }
}

/// Substrate material of a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Substrate {
    /// SCHOTT Zerodur glass ceramic.
    Zerodur,
    /// Corning ULE titania-silicate glass.
    Ule,
    /// Borosilicate glass (e.g. Borofloat, Pyrex).
    Borosilicate,
    /// Fused silica.
    FusedSilica,
}

impl Substrate {
    /// Every substrate, in file-format order.
    pub const ALL: [Substrate; 4] = [
        Substrate::Zerodur,
        Substrate::Ule,
        Substrate::Borosilicate,
        Substrate::FusedSilica,
    ];

    /// Name in the file formats: `zerodur`, `ule`, `borosilicate`, `fused_silica`.
    pub fn as_str(self) -> &'static str {
        match self {
            Substrate::Zerodur => "zerodur",
            Substrate::Ule => "ule",
            Substrate::Borosilicate => "borosilicate",
            Substrate::FusedSilica => "fused_silica",
        }
    }

    /// Density, kg/m³ (maker's data sheets).
    pub fn density_kg_per_m3(self) -> f64 {
        match self {
            Substrate::Zerodur => 2530.0,
            Substrate::Ule => 2210.0,
            Substrate::Borosilicate => 2230.0,
            Substrate::FusedSilica => 2200.0,
        }
    }
}

/// Kind of reflective coating.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CoatingKind {
    /// Bare aluminium (80–120 nm).
    BareAluminium,
    /// Aluminium with a dielectric overcoat.
    ProtectedAluminium,
    /// Silver with adhesion layer and dielectric overcoat.
    ProtectedSilver,
}

impl CoatingKind {
    /// Every coating kind, in file-format order.
    pub const ALL: [CoatingKind; 3] = [
        CoatingKind::BareAluminium,
        CoatingKind::ProtectedAluminium,
        CoatingKind::ProtectedSilver,
    ];

    /// Name in the file formats: `bare_aluminium`, `protected_aluminium`,
    /// `protected_silver`.
    pub fn as_str(self) -> &'static str {
        match self {
            CoatingKind::BareAluminium => "bare_aluminium",
            CoatingKind::ProtectedAluminium => "protected_aluminium",
            CoatingKind::ProtectedSilver => "protected_silver",
        }
    }
}

/// A name that is not one of an enum's file-format names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{value}` is not one of {expected}")]
pub struct UnknownName {
    /// The name found.
    pub value: String,
    /// The accepted names, comma separated.
    pub expected: String,
}

fn parse_name<T: Copy>(s: &str, all: &[T], name: fn(T) -> &'static str) -> Result<T, UnknownName> {
    let wanted = s.trim();
    all.iter()
        .copied()
        .find(|v| name(*v).eq_ignore_ascii_case(wanted))
        .ok_or_else(|| UnknownName {
            value: s.to_owned(),
            expected: all.iter().map(|v| name(*v)).collect::<Vec<_>>().join(", "),
        })
}

impl FromStr for Substrate {
    type Err = UnknownName;

    /// Parses a file-format name, ignoring ASCII case and surrounding spaces.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_name(s, &Substrate::ALL, Substrate::as_str)
    }
}

impl FromStr for CoatingKind {
    type Err = UnknownName;

    /// Parses a file-format name, ignoring ASCII case and surrounding spaces.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_name(s, &CoatingKind::ALL, CoatingKind::as_str)
    }
}

impl fmt::Display for Substrate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for CoatingKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enum_names_parse_case_insensitively_and_round_trip() {
        for s in Substrate::ALL {
            assert_eq!(s.as_str().parse::<Substrate>(), Ok(s));
        }
        for c in CoatingKind::ALL {
            assert_eq!(c.as_str().to_uppercase().parse::<CoatingKind>(), Ok(c));
        }
        let err = "glass".parse::<Substrate>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "`glass` is not one of zerodur, ule, borosilicate, fused_silica"
        );
    }
}

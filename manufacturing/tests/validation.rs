//! Every validation rule, each with the exact error it produces.

use obs_manufacturing::{
    CoatingKind, Reflectivity, SegmentRecord, Substrate, ValidationRules, ZernikeTerm,
    example_record, validate, warnings,
};
use time::macros::date;

fn rules() -> ValidationRules {
    ValidationRules::new(date!(2025 - 06 - 01))
}

/// The errors of the example record after `change`, as messages.
fn errors_after(change: impl FnOnce(&mut SegmentRecord)) -> Vec<String> {
    errors_with(&rules(), change)
}

fn errors_with(rules: &ValidationRules, change: impl FnOnce(&mut SegmentRecord)) -> Vec<String> {
    let mut r = example_record();
    change(&mut r);
    validate(&r, rules)
        .iter()
        .map(ToString::to_string)
        .collect()
}

fn warnings_after(change: impl FnOnce(&mut SegmentRecord)) -> Vec<String> {
    let mut r = example_record();
    change(&mut r);
    warnings(&r, &rules())
        .iter()
        .map(ToString::to_string)
        .collect()
}

fn set_reflectivity(r: &mut SegmentRecord, wavelength_nm: u32, percent: f64) {
    for x in &mut r.fresh_reflectivity {
        if x.wavelength_nm == wavelength_nm {
            x.percent = percent;
        }
    }
}

#[test]
fn the_example_record_is_valid_without_warnings() {
    assert_eq!(errors_after(|_| {}), Vec::<String>::new());
    assert_eq!(warnings_after(|_| {}), Vec::<String>::new());
}

#[test]
fn field_errors_carry_field_value_and_reason() {
    let mut r = example_record();
    r.surface_figure_error_nm_rms = -3.0;
    let e = &validate(&r, &rules())[0];
    assert_eq!(
        (e.field.as_str(), e.value.as_str(), e.reason.as_str()),
        (
            "surface_figure_error_nm_rms",
            "-3",
            "is out of range 0..=100 nm RMS"
        )
    );
}

#[test]
fn serial_must_match_the_pattern_and_length() {
    assert_eq!(
        errors_after(|r| r.serial = "csoa-m1-t2-0007".into()),
        ["serial: csoa-m1-t2-0007 does not match [A-Z0-9]+(-[A-Z0-9]+)+ (e.g. CSOA-M1-T2-0007)"]
    );
    assert_eq!(
        errors_after(|r| r.serial = "CSOA".into()),
        ["serial: CSOA does not match [A-Z0-9]+(-[A-Z0-9]+)+ (e.g. CSOA-M1-T2-0007)"]
    );
    let long = format!("CSOA-{}", "1".repeat(28));
    assert_eq!(
        errors_after(|r| r.serial = long.clone()),
        [format!("serial: {long} is longer than 32 characters")]
    );
    assert_eq!(errors_after(|r| r.serial.clear()), ["serial: is missing"]);
}

#[test]
fn segment_type_must_match_the_pattern() {
    assert_eq!(
        errors_after(|r| r.segment_type = "t2".into()),
        ["segment_type: t2 does not match [A-Z][A-Z0-9]{0,7} (e.g. T2)"]
    );
    assert_eq!(
        errors_after(|r| r.segment_type.clear()),
        ["segment_type: is missing"]
    );
}

#[test]
fn ring_is_one_or_two_or_up_to_three_for_36_segments() {
    assert_eq!(
        errors_after(|r| r.ring = 3),
        ["ring: 3 is out of range 1..=2 (1 = inner ring)"]
    );
    assert_eq!(
        errors_after(|r| r.ring = 0),
        ["ring: 0 is out of range 1..=2 (1 = inner ring)"]
    );
    let keck = rules().for_segment_count(36).unwrap();
    assert_eq!(keck.max_ring, 3);
    assert_eq!(errors_with(&keck, |r| r.ring = 3), Vec::<String>::new());
    assert_eq!(
        errors_with(&keck, |r| r.ring = 4),
        ["ring: 4 is out of range 1..=3 (1 = inner ring)"]
    );
    assert!(rules().for_segment_count(20).is_none());
}

#[test]
fn required_text_fields_must_be_present_and_short() {
    assert_eq!(
        errors_after(|r| {
            r.blank_id.clear();
            r.cte_class = " ".into();
            r.coating_batch.clear();
            r.witness_slide_id.clear();
            r.acceptance_inspector.clear();
            r.coating_plant.clear();
            r.interferometer = "x".repeat(129);
        }),
        [
            "blank_id: is missing".to_owned(),
            "cte_class: is missing".to_owned(),
            format!(
                "interferometer: {}… is longer than 128 characters",
                "x".repeat(80)
            ),
            "coating_plant: is missing".to_owned(),
            "coating_batch: is missing".to_owned(),
            "witness_slide_id: is missing".to_owned(),
            "acceptance_inspector: is missing".to_owned(),
        ]
    );
    assert_eq!(errors_after(|r| r.cgh_id.clear()), Vec::<String>::new());
    assert_eq!(
        errors_after(|r| r.acceptance_notes = "n".repeat(4001)),
        [format!(
            "acceptance_notes: {}… is longer than 4000 characters",
            "n".repeat(80)
        )]
    );
}

#[test]
fn cte_bound_depends_on_substrate_and_zerodur_class() {
    assert_eq!(
        errors_after(|r| r.cte_max_ppm_per_k = 0.05),
        ["cte_max_ppm_per_k: 0.05 is out of range 0..=0.02 ppm/K for zerodur class 0"]
    );
    assert_eq!(
        errors_after(|r| r.cte_max_ppm_per_k = -0.01),
        ["cte_max_ppm_per_k: -0.01 is out of range 0..=0.02 ppm/K for zerodur class 0"]
    );
    assert_eq!(
        errors_after(|r| {
            r.cte_class = "2".into();
            r.cte_max_ppm_per_k = 0.1;
        }),
        Vec::<String>::new()
    );
    assert_eq!(
        errors_after(|r| r.cte_class = "3".into()),
        ["cte_class: 3 is not a zerodur expansion class (0, 1, 2, 0 EXTREME)"]
    );
    assert_eq!(
        errors_after(|r| {
            r.substrate = Substrate::Ule;
            r.cte_class = "7972 mirror grade".into();
            r.cte_max_ppm_per_k = 0.05;
            r.mass_kg = 92.0;
        }),
        ["cte_max_ppm_per_k: 0.05 is out of range 0..=0.03 ppm/K for ule"]
    );
}

#[test]
fn size_thickness_and_mass_have_plausible_ranges() {
    assert_eq!(
        errors_after(|r| r.size_flat_to_flat_mm = 50.0),
        ["size_flat_to_flat_mm: 50 is out of range 100..=2000 mm"]
    );
    assert_eq!(
        errors_after(|r| r.thickness_mm = 5.0),
        ["thickness_mm: 5 is out of range 10..=200 mm"]
    );
    assert_eq!(
        errors_after(|r| r.mass_kg = 0.1),
        ["mass_kg: 0.1 is out of range 1..=2000 kg"]
    );
}

#[test]
fn mass_must_fit_the_size_thickness_and_density() {
    // 106.6 kg solid: a mass in grams or of another segment size is caught.
    assert_eq!(
        errors_after(|r| r.mass_kg = 500.0),
        ["mass_kg: 500 is out of range 32..=117.3 kg \
             (0.3 to 1.1 × a solid zerodur hexagon of 900.1 mm × 60.05 mm)"]
    );
}

#[test]
fn surface_figure_error_is_between_0_and_100_nm_rms() {
    assert_eq!(
        errors_after(|r| r.surface_figure_error_nm_rms = -3.0),
        ["surface_figure_error_nm_rms: -3 is out of range 0..=100 nm RMS"]
    );
    assert_eq!(
        errors_after(|r| {
            r.surface_figure_error_nm_rms = 130.0;
            r.acceptance_passed = false;
            r.acceptance_notes = "rejected: figure".into();
        }),
        ["surface_figure_error_nm_rms: 130 is out of range 0..=100 nm RMS"]
    );
    assert_eq!(
        errors_after(|r| r.surface_figure_error_nm_rms = f64::NAN),
        ["surface_figure_error_nm_rms: NaN is out of range 0..=100 nm RMS"]
    );
}

#[test]
fn measured_radius_of_curvature_within_1000_ppm_of_nominal() {
    assert_eq!(
        errors_after(|r| r.radius_of_curvature_measured_mm = 12_020.0),
        [
            "radius_of_curvature_measured_mm: 12020 is out of range 11988..=12012 mm \
             (nominal 12000 mm ± 1000 ppm)"
        ]
    );
    assert_eq!(
        errors_after(|r| r.radius_of_curvature_nominal_mm = 500.0),
        ["radius_of_curvature_nominal_mm: 500 is out of range 1000..=200000 mm"]
    );
    // Between 200 and 1000 ppm: valid, with a warning.
    assert_eq!(
        errors_after(|r| r.radius_of_curvature_measured_mm = 12_003.0),
        Vec::<String>::new()
    );
    assert_eq!(
        warnings_after(|r| r.radius_of_curvature_measured_mm = 12_003.0),
        [
            "radius_of_curvature_measured_mm: 12003 deviates 250 ppm from nominal 12000 mm (warning above 200 ppm)"
        ]
    );
}

#[test]
fn conic_off_axis_clocking_and_microroughness_ranges() {
    assert_eq!(
        errors_after(|r| r.conic_constant = 1.0),
        ["conic_constant: 1 is out of range -2..=0"]
    );
    assert_eq!(
        errors_after(|r| r.off_axis_distance_mm = -5.0),
        ["off_axis_distance_mm: -5 is out of range 0..=50000 mm"]
    );
    assert_eq!(
        errors_after(|r| r.clocking_arcsec = 700_000.0),
        ["clocking_arcsec: 700000 is out of range -648000..=648000 arcsec"]
    );
    assert_eq!(
        errors_after(|r| r.microroughness_angstrom_rms = 250.0),
        ["microroughness_angstrom_rms: 250 is out of range 0..=200 Å RMS"]
    );
    assert_eq!(
        errors_after(|r| r.microroughness_angstrom_rms = -1.0),
        ["microroughness_angstrom_rms: -1 is out of range 0..=200 Å RMS"]
    );
    assert_eq!(
        warnings_after(|r| r.microroughness_angstrom_rms = 36.0),
        ["microroughness_angstrom_rms: 36 is above the 30 Å RMS typical of fresh polish"]
    );
}

#[test]
fn zernike_noll_indices_are_unique_and_at_least_one() {
    let term = |noll_index, coefficient_nm| ZernikeTerm {
        noll_index,
        coefficient_nm,
    };
    assert_eq!(
        errors_after(|r| r.zernike_residuals.push(term(0, 1.0))),
        ["zernike_nm: Noll index 0 is out of range 1..=1000"]
    );
    assert_eq!(
        errors_after(|r| {
            r.zernike_residuals.push(term(4, 1.0));
            r.zernike_residuals.push(term(4, 2.0));
        }),
        ["zernike_nm: Noll index 4 appears more than once"]
    );
    assert_eq!(
        errors_after(|r| r.zernike_residuals[4].coefficient_nm = 5000.0),
        ["zernike_nm: 5000 is out of range -1000..=1000 nm (Noll 5)"]
    );
    assert_eq!(
        warnings_after(|r| r.zernike_residuals[4].coefficient_nm = 40.0),
        [
            "zernike_nm: 40.4 nm RMS (Noll 5 and above) is more than the surface figure error 11.8 nm RMS"
        ]
    );
}

#[test]
fn coating_thickness_depends_on_the_kind() {
    assert_eq!(
        errors_after(|r| r.coating_thickness_nm = 150.0),
        ["coating_thickness_nm: 150 is out of range 80..=120 nm for bare_aluminium"]
    );
    assert_eq!(
        errors_after(|r| {
            r.coating_kind = CoatingKind::ProtectedAluminium;
            r.coating_thickness_nm = 150.0;
        }),
        Vec::<String>::new()
    );
}

#[test]
fn fresh_reflectivity_is_a_percentage() {
    assert_eq!(
        errors_after(|r| set_reflectivity(r, 650, 130.0)),
        ["fresh_reflectivity_650nm_pct: 130 is out of range 0..=100 %"]
    );
    assert_eq!(
        errors_after(|r| set_reflectivity(r, 470, -1.0)),
        ["fresh_reflectivity_470nm_pct: -1 is out of range 0..=100 %"]
    );
}

#[test]
fn fresh_reflectivity_is_plausible_for_the_coating_kind() {
    assert_eq!(
        errors_after(|r| set_reflectivity(r, 650, 70.0)),
        ["fresh_reflectivity_650nm_pct: 70 is out of range 85..=93 % for bare_aluminium"]
    );
    assert_eq!(
        errors_after(|r| set_reflectivity(r, 880, 97.0)),
        ["fresh_reflectivity_880nm_pct: 97 is out of range 80..=90 % for bare_aluminium"]
    );
    // Protected silver reaches ~97.6 % where aluminium cannot.
    let silver = |r: &mut SegmentRecord| {
        r.coating_kind = CoatingKind::ProtectedSilver;
        r.coating_thickness_nm = 180.0;
        for (wl, pct) in [(470, 96.0), (530, 97.6), (650, 98.0), (880, 98.5)] {
            set_reflectivity(r, wl, pct);
        }
    };
    assert_eq!(errors_after(silver), Vec::<String>::new());
    assert_eq!(
        errors_after(|r| {
            silver(r);
            set_reflectivity(r, 650, 91.0);
        }),
        ["fresh_reflectivity_650nm_pct: 91 is out of range 94..=99.5 % for protected_silver"]
    );
}

#[test]
fn the_standard_wavelengths_are_required_once_each() {
    assert_eq!(
        errors_after(|r| r.fresh_reflectivity.retain(|x| x.wavelength_nm != 880)),
        [
            "fresh_reflectivity_880nm_pct: is missing (the standard set 470, 530, 650, 880 nm is required)"
        ]
    );
    assert_eq!(
        errors_after(|r| r.fresh_reflectivity.push(Reflectivity {
            wavelength_nm: 650,
            percent: 90.0
        })),
        ["fresh_reflectivity_650nm_pct: appears more than once"]
    );
    assert_eq!(
        errors_after(|r| r.fresh_reflectivity.push(Reflectivity {
            wavelength_nm: 100,
            percent: 50.0
        })),
        ["fresh_reflectivity_100nm_pct: wavelength 100 nm is out of range 200..=25000 nm"]
    );
    // Extra wavelengths are only checked as percentages.
    assert_eq!(
        errors_after(|r| r.fresh_reflectivity.push(Reflectivity {
            wavelength_nm: 1020,
            percent: 95.0
        })),
        Vec::<String>::new()
    );
}

#[test]
fn dates_are_ordered_polished_coated_accepted() {
    assert_eq!(
        errors_after(|r| r.coating_date = date!(2023 - 01 - 15)),
        ["coating_date: 2023-01-15 is before polished_date 2023-02-01"]
    );
    assert_eq!(
        errors_after(|r| r.acceptance_date = date!(2023 - 03 - 01)),
        ["acceptance_date: 2023-03-01 is before coating_date 2023-03-14"]
    );
    assert_eq!(
        errors_after(|r| r.acceptance_date = r.coating_date),
        Vec::<String>::new(),
        "same day is fine"
    );
}

#[test]
fn dates_are_not_in_the_future_or_implausibly_old() {
    assert_eq!(
        errors_after(|r| r.acceptance_date = date!(2025 - 07 - 01)),
        ["acceptance_date: 2025-07-01 is in the future (today is 2025-06-01)"]
    );
    assert_eq!(
        errors_after(|r| r.polished_date = date!(1901 - 01 - 01)),
        ["polished_date: 1901-01-01 is before 1960-01-01"]
    );
}

#[test]
fn an_over_spec_segment_that_passed_needs_a_concession_note() {
    assert_eq!(
        errors_after(|r| r.surface_figure_error_nm_rms = 17.0),
        [
            "acceptance_passed: true but surface_figure_error_nm_rms 17 exceeds the 15 nm RMS \
             spec: set it to false or record the concession in acceptance_notes"
        ]
    );
    let concession = |r: &mut SegmentRecord| {
        r.surface_figure_error_nm_rms = 15.6;
        r.acceptance_notes = "concession CN-07".into();
    };
    assert_eq!(errors_after(concession), Vec::<String>::new());
    assert_eq!(
        warnings_after(concession),
        [
            "surface_figure_error_nm_rms: 15.6 exceeds the 15 nm RMS spec; accepted under the concession in acceptance_notes"
        ]
    );
    assert_eq!(
        errors_after(|r| {
            r.surface_figure_error_nm_rms = 17.0;
            r.acceptance_passed = false;
            r.acceptance_notes = "rejected: figure 17 nm RMS".into();
        }),
        Vec::<String>::new()
    );
}

#[test]
fn a_rejected_segment_needs_the_reason() {
    assert_eq!(
        errors_after(|r| r.acceptance_passed = false),
        ["acceptance_notes: is missing: a rejected segment needs the reason"]
    );
}

#[test]
fn validation_returns_every_error_of_a_record() {
    let errors = errors_after(|r| {
        r.serial = "bad serial".into();
        r.ring = 9;
        r.mass_kg = -1.0;
        r.microroughness_angstrom_rms = 500.0;
        set_reflectivity(r, 650, 130.0);
        r.coating_date = date!(2030 - 01 - 01);
    });
    assert_eq!(
        errors,
        [
            "serial: bad serial does not match [A-Z0-9]+(-[A-Z0-9]+)+ (e.g. CSOA-M1-T2-0007)",
            "ring: 9 is out of range 1..=2 (1 = inner ring)",
            "mass_kg: -1 is out of range 1..=2000 kg",
            "microroughness_angstrom_rms: 500 is out of range 0..=200 Å RMS",
            "fresh_reflectivity_650nm_pct: 130 is out of range 0..=100 %",
            "coating_date: 2030-01-01 is in the future (today is 2025-06-01)",
            "acceptance_date: 2023-03-24 is before coating_date 2030-01-01",
        ]
    );
}

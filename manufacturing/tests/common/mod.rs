//! Shared strategies and helpers of the integration tests.
#![allow(dead_code)]

use std::collections::BTreeMap;

use obs_manufacturing::{
    CoatingKind, ImportError, Reflectivity, SegmentRecord, Substrate, ZernikeTerm,
};
use proptest::prelude::*;
use time::Date;

/// Any text a field may hold: mostly CSV-hostile ASCII, sometimes any Unicode.
pub fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[A-Za-z0-9 ,;:\"'\n\r\t{}\\[\\]-]{0,16}",
        1 => any::<String>(),
    ]
}

/// Finite numbers of any magnitude, or anything (NaN, infinities) when `finite` is false.
pub fn number(finite: bool) -> BoxedStrategy<f64> {
    use proptest::num::f64 as f;
    if finite {
        prop_oneof![
            3 => -1e4..1e4f64,
            1 => f::NORMAL | f::SUBNORMAL | f::ZERO,
        ]
        .boxed()
    } else {
        any::<f64>().boxed()
    }
}

pub fn date() -> impl Strategy<Value = Date> {
    (1960i32..=2100, 1u16..=365)
        .prop_map(|(y, d)| Date::from_ordinal_date(y, d).unwrap_or(Date::MIN))
}

/// Records with any values. With `file_safe`, lists are sorted with unique
/// keys and numbers are finite, as the file formats require.
pub fn record(file_safe: bool) -> impl Strategy<Value = SegmentRecord> {
    let ids = (text(), text(), any::<u32>(), text(), text(), text(), text());
    let numbers = prop::collection::vec(number(file_safe), 12);
    let misc = (
        prop::sample::select(Substrate::ALL.to_vec()),
        prop::sample::select(CoatingKind::ALL.to_vec()),
        (date(), date(), date()),
        any::<bool>(),
        (text(), text(), text(), text(), text()),
    );
    let lists = if file_safe {
        (
            prop::collection::btree_map(1u32..=60, number(true), 0..16)
                .prop_map(|m: BTreeMap<u32, f64>| {
                    m.into_iter()
                        .map(|(noll_index, coefficient_nm)| ZernikeTerm {
                            noll_index,
                            coefficient_nm,
                        })
                        .collect::<Vec<_>>()
                })
                .boxed(),
            prop::collection::btree_map(
                prop_oneof![
                    prop::sample::select(vec![470u32, 530, 650, 880]),
                    200u32..3000
                ],
                number(true),
                0..6,
            )
            .prop_map(|m| {
                m.into_iter()
                    .map(|(wavelength_nm, percent)| Reflectivity {
                        wavelength_nm,
                        percent,
                    })
                    .collect::<Vec<_>>()
            })
            .boxed(),
        )
    } else {
        (
            prop::collection::vec(
                (any::<u32>(), number(false)).prop_map(|(noll_index, coefficient_nm)| {
                    ZernikeTerm {
                        noll_index,
                        coefficient_nm,
                    }
                }),
                0..20,
            )
            .boxed(),
            prop::collection::vec(
                (any::<u32>(), number(false)).prop_map(|(wavelength_nm, percent)| Reflectivity {
                    wavelength_nm,
                    percent,
                }),
                0..8,
            )
            .boxed(),
        )
    };
    (ids, numbers, misc, lists).prop_map(|(ids, n, misc, (zernike, reflectivity))| {
        let (serial, segment_type, ring, blank_id, cte_class, interferometer, cgh_id) = ids;
        let (substrate, coating_kind, (polished, coated, accepted), passed, texts) = misc;
        let (plant, batch, witness, inspector, notes) = texts;
        SegmentRecord {
            serial,
            segment_type,
            ring,
            blank_id,
            substrate,
            cte_class,
            cte_max_ppm_per_k: n[0],
            size_flat_to_flat_mm: n[1],
            thickness_mm: n[2],
            mass_kg: n[3],
            surface_figure_error_nm_rms: n[4],
            radius_of_curvature_nominal_mm: n[5],
            radius_of_curvature_measured_mm: n[6],
            conic_constant: n[7],
            off_axis_distance_mm: n[8],
            clocking_arcsec: n[9],
            microroughness_angstrom_rms: n[10],
            interferometer,
            cgh_id,
            zernike_residuals: zernike,
            polished_date: polished,
            coating_kind,
            coating_thickness_nm: n[11],
            fresh_reflectivity: reflectivity,
            coating_date: coated,
            coating_plant: plant,
            coating_batch: batch,
            witness_slide_id: witness,
            acceptance_passed: passed,
            acceptance_inspector: inspector,
            acceptance_date: accepted,
            acceptance_notes: notes,
        }
    })
}

/// Records and errors of an import.
pub fn split(
    items: impl Iterator<Item = Result<(u64, SegmentRecord), ImportError>>,
) -> (Vec<(u64, SegmentRecord)>, Vec<ImportError>) {
    let mut ok = Vec::new();
    let mut errors = Vec::new();
    for item in items {
        match item {
            Ok(x) => ok.push(x),
            Err(e) => errors.push(e),
        }
    }
    (ok, errors)
}

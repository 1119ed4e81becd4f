//! One feature row per installed segment, from what the hub knows about it:
//! its manufacturing record, its maintenance history, the exposure its
//! position accumulated and the last reflectivity measured on it. The
//! columns are obs-ml's contract ([`obs_ml::FEATURES`]); a value the hub
//! does not have stays missing (`None`) and lowers the completeness score.

use obs_ml::{Feature, FeatureRow};

use crate::ingest::ExposureTotals;

const DAY_S: f64 = 86_400.0;

/// What the engine gathered about one installed segment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SegmentInputs {
    /// The site time the row is for (its latest sample), Unix seconds.
    pub as_of_unix_s: i64,
    pub ring: Option<u32>,
    pub fresh_650_pct: Option<f64>,
    pub microroughness_angstrom_rms: Option<f64>,
    pub surface_figure_error_nm_rms: Option<f64>,
    /// When the current coating was applied: the last recoat, else the
    /// manufacturing record's coating date.
    pub coated_at_unix_s: Option<i64>,
    /// The last cleaning after that coating, if any.
    pub last_cleaning_at_unix_s: Option<i64>,
    pub cleanings_since_recoat: u32,
    /// Exposure of the segment's position since the last maintenance (or
    /// its installation, if later); `None` when the site sent no telemetry.
    pub exposure_since_maintenance: Option<ExposureTotals>,
    /// The same since the last recoat (or the installation).
    pub exposure_since_recoat: Option<ExposureTotals>,
    /// Last measured reflectivity at 650 nm and when, Unix seconds.
    pub last_measured_650: Option<(f64, i64)>,
}

fn days(from_unix_s: i64, to_unix_s: i64) -> f32 {
    ((to_unix_s - from_unix_s) as f64 / DAY_S).max(0.0) as f32
}

/// The model's input row for `inputs`.
pub fn feature_row(inputs: &SegmentInputs) -> FeatureRow {
    use Feature as F;
    let now = inputs.as_of_unix_s;
    let mut row = FeatureRow::new();
    let coating_age = inputs.coated_at_unix_s.map(|at| days(at, now));
    row.set(F::CoatingAgeDays, coating_age);
    row.set(F::DaysSinceRecoat, coating_age);
    row.set(
        F::DaysSinceCleaning,
        inputs
            .last_cleaning_at_unix_s
            .or(inputs.coated_at_unix_s)
            .map(|at| days(at, now)),
    );
    row.set(
        F::CleaningsSinceRecoat,
        Some(inputs.cleanings_since_recoat as f32),
    );
    row.set(
        F::FreshReflectivity650Pct,
        inputs.fresh_650_pct.map(|v| v as f32),
    );
    row.set(
        F::MicroroughnessAngstromRms,
        inputs.microroughness_angstrom_rms.map(|v| v as f32),
    );
    row.set(
        F::SurfaceFigureErrorNmRms,
        inputs.surface_figure_error_nm_rms.map(|v| v as f32),
    );
    row.set(F::Ring, inputs.ring.map(|r| r as f32));
    if let (Some(m), Some(r)) = (
        &inputs.exposure_since_maintenance,
        &inputs.exposure_since_recoat,
    ) {
        row.set(
            F::OpenDomeHoursSinceMaintenance,
            Some(m.open_dome_hours as f32),
        );
        row.set(
            F::DustDoseSinceMaintenanceUgM3H,
            Some(m.dust_dose_ug_m3_h as f32),
        );
        row.set(
            F::CalimaEventsSinceMaintenance,
            Some(m.calima_events as f32),
        );
        row.set(F::HumidHoursSinceMaintenance, Some(m.humid_hours as f32));
        row.set(
            F::DewRiskHoursSinceMaintenance,
            Some(m.dew_risk_hours as f32),
        );
        row.set(
            F::DustDoseSinceRecoatUgM3H,
            Some(r.dust_dose_ug_m3_h as f32),
        );
        row.set(F::HumidHoursSinceRecoat, Some(r.humid_hours as f32));
        row.set(F::DewRiskHoursSinceRecoat, Some(r.dew_risk_hours as f32));
    }
    if let Some((pct, at)) = inputs.last_measured_650 {
        row.set(F::LastMeasuredReflectivity650Pct, Some(pct as f32));
        row.set(F::LastMeasuredAgeDays, Some(days(at, now)));
    }
    let (sin, cos) = obs_ml::features::season(now as f64);
    row.set(F::SeasonSin, Some(sin));
    row.set(F::SeasonCos, Some(cos));
    row
}

#[cfg(test)]
mod tests {
    use super::*;

    fn totals(open: f64, dust: f64) -> ExposureTotals {
        ExposureTotals {
            open_dome_hours: open,
            dust_dose_ug_m3_h: dust,
            calima_events: 2,
            humid_hours: 10.0,
            dew_risk_hours: 4.0,
            days_with_data: 30,
        }
    }

    fn inputs() -> SegmentInputs {
        SegmentInputs {
            as_of_unix_s: 1_767_225_600,
            ring: Some(2),
            fresh_650_pct: Some(91.4),
            microroughness_angstrom_rms: Some(18.0),
            surface_figure_error_nm_rms: Some(11.0),
            coated_at_unix_s: Some(1_767_225_600 - 100 * 86_400),
            last_cleaning_at_unix_s: Some(1_767_225_600 - 10 * 86_400),
            cleanings_since_recoat: 2,
            exposure_since_maintenance: Some(totals(50.0, 200.0)),
            exposure_since_recoat: Some(totals(500.0, 2000.0)),
            last_measured_650: Some((89.9, 1_767_225_600 - 5 * 86_400)),
        }
    }

    #[test]
    fn a_fully_known_segment_gives_a_complete_row() {
        let row = feature_row(&inputs());
        assert_eq!(
            row.completeness(),
            1.0,
            "{:?}",
            row.missing().collect::<Vec<_>>()
        );
        assert_eq!(row.get(Feature::CoatingAgeDays), Some(100.0));
        assert_eq!(row.get(Feature::DaysSinceCleaning), Some(10.0));
        assert_eq!(row.get(Feature::OpenDomeHoursSinceMaintenance), Some(50.0));
        assert_eq!(row.get(Feature::DustDoseSinceMaintenanceUgM3H), Some(200.0));
        assert_eq!(row.get(Feature::DustDoseSinceRecoatUgM3H), Some(2000.0));
        assert_eq!(row.get(Feature::CalimaEventsSinceMaintenance), Some(2.0));
        assert_eq!(row.get(Feature::LastMeasuredAgeDays), Some(5.0));
    }

    #[test]
    fn what_the_hub_does_not_know_stays_missing() {
        let row = feature_row(&SegmentInputs {
            exposure_since_maintenance: None,
            exposure_since_recoat: None,
            last_measured_650: None,
            ..inputs()
        });
        let missing: Vec<_> = row.missing().map(|f| f.name()).collect();
        assert_eq!(missing.len(), 10, "{missing:?}");
        assert!(missing.contains(&"dust_dose_since_maintenance_ug_m3_h"));
        assert!(missing.contains(&"last_measured_reflectivity_650_pct"));
        assert!((row.completeness() - 0.5).abs() < 1e-6);
    }
}

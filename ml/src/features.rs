//! The feature contract of the mirror health model: the single source of
//! truth for the order, names and units of the model's input columns.
//!
//! The training table written by `fog-node simulate` has these columns in
//! this order (`fog_node::simulate::FEATURE_COLUMNS`, checked by
//! `ml/tests/contract.rs`); `ml/train/train.py` refuses a table whose columns
//! differ and stores the list in the ONNX metadata (`features`), which
//! [`crate::HealthModel::load`] compares with [`FEATURES`].
//!
//! "Maintenance" is the last cleaning **or** recoat, whichever is later.
//! Exposure quantities are the hub's (`cloud-hub/src/ingest/exposure.rs`):
//! open-dome hours `∫ fraction open dt`; dust dose `∫ dust·fraction open dt`
//! (µg/m³·h); calima events = dust rising to ≥ 20 µg/m³ (an event ends below
//! 12); humid hours with RH > 80 %; dew-risk hours with the glass within
//! 2 °C of the dew point.

/// Number of input features.
pub const N_FEATURES: usize = 20;

/// Input columns of the model, in order. Every value is an `f32`.
pub const FEATURES: [&str; N_FEATURES] = [
    "coating_age_days",
    "fresh_reflectivity_650_pct",
    "microroughness_angstrom_rms",
    "surface_figure_error_nm_rms",
    "ring",
    "days_since_cleaning",
    "days_since_recoat",
    "cleanings_since_recoat",
    "open_dome_hours_since_maintenance",
    "dust_dose_since_maintenance_ug_m3_h",
    "calima_events_since_maintenance",
    "humid_hours_since_maintenance",
    "dew_risk_hours_since_maintenance",
    "dust_dose_since_recoat_ug_m3_h",
    "humid_hours_since_recoat",
    "dew_risk_hours_since_recoat",
    "last_measured_reflectivity_650_pct",
    "last_measured_age_days",
    "season_sin",
    "season_cos",
];

/// One input feature; `feature as usize` is its column in [`FEATURES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(usize)]
pub enum Feature {
    /// Age of the current coating, days (manufacturing record: coating date).
    CoatingAgeDays = 0,
    /// Reflectivity of the coating when fresh at 650 nm, %.
    FreshReflectivity650Pct,
    /// Microroughness of the coating, Å RMS.
    MicroroughnessAngstromRms,
    /// Surface figure error of the segment, nm RMS.
    SurfaceFigureErrorNmRms,
    /// Hexagonal ring of the position, 1 = innermost.
    Ring,
    /// Days since the last cleaning or recoat, whichever is later.
    DaysSinceCleaning,
    /// Days since the last recoat, days.
    DaysSinceRecoat,
    /// Cleanings since the last recoat (count).
    CleaningsSinceRecoat,
    /// Open-dome hours since maintenance, h (weighted by the fraction open).
    OpenDomeHoursSinceMaintenance,
    /// Dust dose while open since maintenance, µg/m³·h.
    DustDoseSinceMaintenanceUgM3H,
    /// Calima events since maintenance (count).
    CalimaEventsSinceMaintenance,
    /// Hours with RH > 80 % since maintenance, h.
    HumidHoursSinceMaintenance,
    /// Hours with the glass within 2 °C of the dew point since maintenance, h.
    DewRiskHoursSinceMaintenance,
    /// Dust dose while open since the last recoat, µg/m³·h.
    DustDoseSinceRecoatUgM3H,
    /// Hours with RH > 80 % since the last recoat, h.
    HumidHoursSinceRecoat,
    /// Dew-risk hours since the last recoat, h.
    DewRiskHoursSinceRecoat,
    /// Last reflectometer reading at 650 nm, %.
    LastMeasuredReflectivity650Pct,
    /// Age of that reading, days.
    LastMeasuredAgeDays,
    /// `sin(2π·doy/365.2425)`, `doy` = day of year (0 = 1 January 00:00 UTC), see [`season`].
    SeasonSin,
    /// `cos(2π·doy/365.2425)`.
    SeasonCos,
}

impl Feature {
    /// Every feature, in column order.
    pub const ALL: [Feature; N_FEATURES] = [
        Feature::CoatingAgeDays,
        Feature::FreshReflectivity650Pct,
        Feature::MicroroughnessAngstromRms,
        Feature::SurfaceFigureErrorNmRms,
        Feature::Ring,
        Feature::DaysSinceCleaning,
        Feature::DaysSinceRecoat,
        Feature::CleaningsSinceRecoat,
        Feature::OpenDomeHoursSinceMaintenance,
        Feature::DustDoseSinceMaintenanceUgM3H,
        Feature::CalimaEventsSinceMaintenance,
        Feature::HumidHoursSinceMaintenance,
        Feature::DewRiskHoursSinceMaintenance,
        Feature::DustDoseSinceRecoatUgM3H,
        Feature::HumidHoursSinceRecoat,
        Feature::DewRiskHoursSinceRecoat,
        Feature::LastMeasuredReflectivity650Pct,
        Feature::LastMeasuredAgeDays,
        Feature::SeasonSin,
        Feature::SeasonCos,
    ];

    /// Column name, as in [`FEATURES`].
    pub fn name(self) -> &'static str {
        FEATURES[self as usize]
    }
}

/// Name of the model's input tensor (`float32 [N, N_FEATURES]`).
pub const INPUT_NAME: &str = "features";
/// Output: reflectivity at 650 nm now, %.
pub const OUTPUT_REFLECTIVITY: &str = "reflectivity_650_pct";
/// Output: days until the reflectivity falls below the threshold if the
/// segment is left alone, capped at [`HORIZON_DAYS`] (right-censored: a
/// segment that does not cross within the horizon gets the cap).
pub const OUTPUT_DAYS: &str = "days_to_threshold";

/// The maintenance threshold is `fresh − THRESHOLD_DROP_POINTS`...
pub const THRESHOLD_DROP_POINTS: f32 = 3.0;
/// ...but never below this, %.
pub const THRESHOLD_FLOOR_PCT: f32 = 80.0;
/// Cap of `days_to_threshold`, days.
pub const HORIZON_DAYS: f32 = 365.0;
/// Fresh bare aluminium at 650 nm (DOMAIN.md), % — the imputation of a
/// missing fresh reflectivity.
pub const FRESH_ALUMINIUM_650_PCT: f32 = 91.5;

/// Threshold at 650 nm below which a segment needs maintenance, %:
/// `max(fresh − 3, 80)`.
pub fn threshold_650_pct(fresh_650_pct: f32) -> f32 {
    (fresh_650_pct - THRESHOLD_DROP_POINTS).max(THRESHOLD_FLOOR_PCT)
}

/// `(season_sin, season_cos)` at `unix_s`: the phase of the day of year
/// (`doy = (unix_s / 86400) mod 365.2425`, 0 = 1 January 00:00 UTC, the
/// environment model's `sun::day_of_year`) over the mean tropical year.
pub fn season(unix_s: f64) -> (f32, f32) {
    const YEAR_DAYS: f64 = 365.2425;
    let doy = (unix_s / 86_400.0).rem_euclid(YEAR_DAYS);
    let phase = std::f64::consts::TAU * doy / YEAR_DAYS;
    (phase.sin() as f32, phase.cos() as f32)
}

/// One input row where any value may be missing.
///
/// A missing input is `None`, never a silent 0. [`FeatureRow::completeness`]
/// is the share present (stored with each prediction);
/// [`FeatureRow::impute`] fills the gaps for inference only, by the rules
/// documented there.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct FeatureRow {
    values: [Option<f32>; N_FEATURES],
}

impl FeatureRow {
    /// A row with every value missing.
    pub fn new() -> Self {
        Self::default()
    }

    /// A complete row.
    pub fn from_values(values: [f32; N_FEATURES]) -> Self {
        let mut row = Self::new();
        for (f, v) in Feature::ALL.into_iter().zip(values) {
            row.set(f, Some(v));
        }
        row
    }

    /// Sets (or clears, with `None`) a value; a non-finite value counts as missing.
    pub fn set(&mut self, feature: Feature, value: Option<f32>) -> &mut Self {
        self.values[feature as usize] = value.filter(|v| v.is_finite());
        self
    }

    /// Builder form of [`FeatureRow::set`] with a present value.
    #[must_use]
    pub fn with(mut self, feature: Feature, value: f32) -> Self {
        self.set(feature, Some(value));
        self
    }

    /// The value of `feature`, if present.
    pub fn get(&self, feature: Feature) -> Option<f32> {
        self.values[feature as usize]
    }

    /// All values in column order.
    pub fn values(&self) -> &[Option<f32>; N_FEATURES] {
        &self.values
    }

    /// The missing features, in column order.
    pub fn missing(&self) -> impl Iterator<Item = Feature> + '_ {
        Feature::ALL
            .into_iter()
            .filter(|f| self.values[*f as usize].is_none())
    }

    /// Share of the features present, `0.0..=1.0`.
    pub fn completeness(&self) -> f32 {
        let present = self.values.iter().filter(|v| v.is_some()).count();
        present as f32 / N_FEATURES as f32
    }

    /// The row for inference, with missing values imputed. Used only at
    /// inference (training uses rule 3 only, the one gap its data has).
    /// Rules, applied in order:
    ///
    /// 1. `days_since_recoat` ← `coating_age_days`, and the other way round
    ///    (a recoat is a new coating);
    /// 2. `days_since_cleaning` ← `days_since_recoat` (no cleaning since);
    /// 3. `last_measured_reflectivity_650_pct` ← `fresh_reflectivity_650_pct`
    ///    and `last_measured_age_days` ← `days_since_recoat`: as if the
    ///    segment had been measured fresh when it was coated (a reading with
    ///    no age, or an age with no reading, is replaced as a pair);
    /// 4. `fresh_reflectivity_650_pct` ← 91.5 % (fresh bare aluminium),
    ///    `microroughness_angstrom_rms` ← 20 Å, `surface_figure_error_nm_rms`
    ///    ← 12.5 nm (the middle of DOMAIN.md's ranges).
    ///
    /// Anything else (ring, counts, exposure, season) has no sound default:
    /// the hub computes those itself, so a gap there is an error
    /// ([`crate::Error::Unimputable`]) rather than a guess.
    pub fn impute(&self) -> crate::Result<[f32; N_FEATURES]> {
        use Feature as F;
        let mut row = *self;
        if row.get(F::DaysSinceRecoat).is_none() {
            row.set(F::DaysSinceRecoat, row.get(F::CoatingAgeDays));
        }
        if row.get(F::CoatingAgeDays).is_none() {
            row.set(F::CoatingAgeDays, row.get(F::DaysSinceRecoat));
        }
        if row.get(F::DaysSinceCleaning).is_none() {
            row.set(F::DaysSinceCleaning, row.get(F::DaysSinceRecoat));
        }
        if row.get(F::FreshReflectivity650Pct).is_none() {
            row.set(F::FreshReflectivity650Pct, Some(FRESH_ALUMINIUM_650_PCT));
        }
        if row.get(F::LastMeasuredReflectivity650Pct).is_none()
            || row.get(F::LastMeasuredAgeDays).is_none()
        {
            row.set(
                F::LastMeasuredReflectivity650Pct,
                row.get(F::FreshReflectivity650Pct),
            );
            row.set(F::LastMeasuredAgeDays, row.get(F::DaysSinceRecoat));
        }
        if row.get(F::MicroroughnessAngstromRms).is_none() {
            row.set(F::MicroroughnessAngstromRms, Some(20.0));
        }
        if row.get(F::SurfaceFigureErrorNmRms).is_none() {
            row.set(F::SurfaceFigureErrorNmRms, Some(12.5));
        }
        let mut out = [0.0; N_FEATURES];
        for (slot, f) in out.iter_mut().zip(Feature::ALL) {
            *slot = row
                .get(f)
                .ok_or(crate::Error::Unimputable { feature: f.name() })?;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full() -> FeatureRow {
        FeatureRow::from_values(std::array::from_fn(|i| i as f32 + 1.0))
    }

    #[test]
    fn feature_enum_matches_names() {
        for (i, f) in Feature::ALL.iter().enumerate() {
            assert_eq!(*f as usize, i);
            assert_eq!(f.name(), FEATURES[i]);
        }
    }

    #[test]
    fn completeness_counts_present_values() {
        let mut row = full();
        assert_eq!(row.completeness(), 1.0);
        row.set(Feature::LastMeasuredAgeDays, None);
        row.set(Feature::Ring, Some(f32::NAN));
        assert_eq!(row.completeness(), 18.0 / 20.0);
        let missing: Vec<_> = row.missing().collect();
        assert_eq!(missing, vec![Feature::Ring, Feature::LastMeasuredAgeDays]);
    }

    #[test]
    fn missing_measurement_is_the_fresh_value_at_the_recoat() {
        let mut row = full()
            .with(Feature::FreshReflectivity650Pct, 91.2)
            .with(Feature::DaysSinceRecoat, 400.0);
        row.set(Feature::LastMeasuredReflectivity650Pct, None);
        let x = row.impute().unwrap();
        assert_eq!(x[Feature::LastMeasuredReflectivity650Pct as usize], 91.2);
        assert_eq!(x[Feature::LastMeasuredAgeDays as usize], 400.0);
    }

    #[test]
    fn ages_fill_each_other_and_exposure_gaps_are_errors() {
        let mut row = full().with(Feature::CoatingAgeDays, 30.0);
        row.set(Feature::DaysSinceRecoat, None);
        row.set(Feature::DaysSinceCleaning, None);
        let x = row.impute().unwrap();
        assert_eq!(x[Feature::DaysSinceRecoat as usize], 30.0);
        assert_eq!(x[Feature::DaysSinceCleaning as usize], 30.0);
        row.set(Feature::DustDoseSinceMaintenanceUgM3H, None);
        let err = row.impute().unwrap_err();
        assert!(
            err.to_string()
                .contains("dust_dose_since_maintenance_ug_m3_h"),
            "{err}"
        );
    }

    #[test]
    fn threshold_and_season() {
        assert_eq!(threshold_650_pct(91.5), 88.5);
        assert_eq!(threshold_650_pct(82.0), 80.0);
        // 2025-01-01 00:00 UTC is 0.0 .. 1 day into the mean year cycle.
        let (s, c) = season(1_735_689_600.0);
        assert!((s * s + c * c - 1.0).abs() < 1e-5);
    }
}

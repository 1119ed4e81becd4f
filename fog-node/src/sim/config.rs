//! [`EnvironmentConfig`]: everything that defines a simulated site.

use serde::{Deserialize, Serialize};

use super::{
    DomePolicy, MaintenancePolicy, MirrorPhysics, Result, SegmentInit, SimError, SiteClimate,
};

/// Everything that defines a simulated site.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EnvironmentConfig {
    /// Seed of every random stream.
    pub seed: u64,
    /// Start time, Unix seconds (UTC).
    pub start_unix_s: i64,
    /// Number of mirror segments (18; GTC and Keck have 36).
    pub segments: u32,
    /// Site climate.
    pub climate: SiteClimate,
    /// Dome operating rules.
    pub dome: DomePolicy,
    /// Cleaning, measuring and recoating.
    pub maintenance: MaintenancePolicy,
    /// Degradation constants.
    pub physics: MirrorPhysics,
    /// Initial state per segment, by position; empty = all default (fresh
    /// aluminium, new coating), otherwise exactly `segments` entries.
    pub initial_segments: Vec<SegmentInit>,
}

impl Default for EnvironmentConfig {
    fn default() -> Self {
        Self {
            seed: 1,
            // 2025-01-01 00:00:00 UTC
            start_unix_s: 1_735_689_600,
            segments: 18,
            climate: SiteClimate::la_palma(),
            dome: DomePolicy::default(),
            maintenance: MaintenancePolicy::default(),
            physics: MirrorPhysics::default(),
            initial_segments: Vec::new(),
        }
    }
}

impl EnvironmentConfig {
    /// Checks every range the model relies on.
    pub fn validate(&self) -> Result<()> {
        let bad = |field: &str, reason: String| SimError::InvalidConfig {
            field: field.to_owned(),
            reason,
        };
        if self.segments == 0 || self.segments > 999 {
            return Err(bad(
                "segments",
                format!("{} is outside 1..=999", self.segments),
            ));
        }
        if !self.initial_segments.is_empty()
            && self.initial_segments.len() != self.segments as usize
        {
            return Err(bad(
                "initial_segments",
                format!(
                    "has {} entries, expected 0 or {}",
                    self.initial_segments.len(),
                    self.segments
                ),
            ));
        }
        self.climate
            .validate()
            .map_err(|(field, reason)| bad(field, reason))?;
        if !(self.dome.travel_seconds.is_finite() && self.dome.travel_seconds > 0.0) {
            return Err(bad("dome.travel_seconds", "must be positive".to_owned()));
        }
        if let Some(c) = &self.maintenance.cleaning
            && !(c.interval_days > 0.0 && c.jitter_days >= 0.0 && c.jitter_days < c.interval_days)
        {
            return Err(bad(
                "maintenance.cleaning",
                format!(
                    "need 0 <= jitter ({}) < interval ({})",
                    c.jitter_days, c.interval_days
                ),
            ));
        }
        if let Some(d) = self.maintenance.reflectometer_interval_days
            && d.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater)
        {
            return Err(bad(
                "maintenance.reflectometer_interval_days",
                format!("{d} must be positive"),
            ));
        }
        let p = &self.physics;
        let ordered =
            |r: [f64; 2]| r[0].is_finite() && r[1].is_finite() && 0.0 <= r[0] && r[0] <= r[1];
        if !ordered(p.cleaning_cap_points) {
            return Err(bad(
                "physics.cleaning_cap_points",
                format!("{:?} is not an ordered range", p.cleaning_cap_points),
            ));
        }
        if !(ordered(p.cleaning_efficiency) && p.cleaning_efficiency[1] < 1.0) {
            return Err(bad(
                "physics.cleaning_efficiency",
                format!(
                    "{:?} must be an ordered range below 1",
                    p.cleaning_efficiency
                ),
            ));
        }
        if !(p.thermal_tau_hours.is_finite() && p.thermal_tau_hours > 0.0) {
            return Err(bad(
                "physics.thermal_tau_hours",
                "must be positive".to_owned(),
            ));
        }
        for (i, s) in self.initial_segments.iter().enumerate() {
            let ok = s.fresh.to_array().iter().all(|v| (0.0..=100.0).contains(v))
                && s.coating_age_days.is_finite()
                && s.coating_age_days >= 0.0
                && s.days_since_cleaning.is_finite()
                && s.microroughness_angstrom.is_finite();
            if !ok {
                return Err(bad(
                    &format!("initial_segments[{i}]"),
                    format!("out of range: {s:?}"),
                ));
            }
        }
        Ok(())
    }
}

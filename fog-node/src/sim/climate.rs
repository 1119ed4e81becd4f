//! Site climate: the statistical description of a site's weather that the
//! weather processes in [`super::weather`] are driven by.
//!
//! All regimes are serde structs with La Palma defaults (Roque de los
//! Muchachos, 28.76° N 17.88° W, ~2400 m, ~774 hPa). The presets
//! [`SiteClimate::la_palma`], [`SiteClimate::dusty_desert`] and
//! [`SiteClimate::humid_coastal`] give the training data some variety.

use serde::{Deserialize, Serialize};

/// The climate of one observing site.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SiteClimate {
    /// Human-readable name of the preset or site.
    pub name: String,
    /// Geodetic latitude, degrees north.
    pub latitude_deg: f64,
    /// Longitude, degrees east (La Palma is negative).
    pub longitude_deg: f64,
    /// Altitude above sea level, metres (informative).
    pub altitude_m: f64,
    /// Air temperature.
    pub temperature: TemperatureRegime,
    /// Barometric pressure.
    pub pressure: PressureRegime,
    /// Relative humidity and humid (fog, storm) episodes.
    pub humidity: HumidityRegime,
    /// Wind speed, gusts and direction.
    pub wind: WindRegime,
    /// Background aerosol and calima (Saharan dust) episodes.
    pub dust: DustRegime,
}

/// Seasonal + diurnal temperature with a slow synoptic anomaly.
///
/// `T = mean + seasonal·cos(2π(doy − warmest)/year) + diurnal·cos(2π(h − 15)/24) + x`,
/// where `x` is an Ornstein–Uhlenbeck process.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TemperatureRegime {
    /// Annual mean air temperature, °C.
    pub annual_mean_c: f64,
    /// Half the difference between the warmest and coldest monthly means, °C.
    pub seasonal_amplitude_c: f64,
    /// Day of year (0 = 1 January) of the warmest weather.
    pub warmest_day_of_year: f64,
    /// Half the mean day–night range, °C (maximum at 15 h local solar time).
    pub diurnal_amplitude_c: f64,
    /// Standard deviation of the synoptic anomaly, °C.
    pub anomaly_sigma_c: f64,
    /// Correlation time of the anomaly, hours.
    pub anomaly_tau_hours: f64,
}

/// Barometric pressure: mean plus an Ornstein–Uhlenbeck anomaly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PressureRegime {
    /// Mean station pressure, hPa.
    pub mean_hpa: f64,
    /// Standard deviation of the anomaly, hPa.
    pub sigma_hpa: f64,
    /// Correlation time, hours.
    pub tau_hours: f64,
    /// Pressure drop during humid (storm) episodes, hPa.
    pub storm_drop_hpa: f64,
}

/// Relative humidity: dry "fair" weather, interrupted by humid episodes
/// (fog, clouds rising above the inversion, storms) that arrive as a Poisson
/// process, more often in winter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HumidityRegime {
    /// Median RH in fair weather, %.
    pub fair_rh_median_pct: f64,
    /// Log-space sigma of fair-weather RH.
    pub fair_rh_log_sigma: f64,
    /// Correlation time of the RH anomaly, hours.
    pub anomaly_tau_hours: f64,
    /// Mean number of humid episodes per year.
    pub humid_episodes_per_year: f64,
    /// Seasonal modulation of the episode rate, `rate·(1 + w·cos(2π(doy − coldest)/year))`, in `[0, 1]`.
    pub winter_weight: f64,
    /// Mean episode length, hours (exponentially distributed, at least 2 h).
    pub humid_episode_mean_hours: f64,
    /// Each episode's RH level is drawn uniformly from `[min, max]`, %.
    pub humid_rh_min_pct: f64,
    /// Upper bound of an episode's RH level, %.
    pub humid_rh_max_pct: f64,
    /// Standard deviation of RH around the episode level, %.
    pub humid_rh_sigma_pct: f64,
    /// Time constant with which RH follows its target, hours.
    pub relax_tau_hours: f64,
}

/// Wind: log-normal sustained speed (an Ornstein–Uhlenbeck process in log
/// space), gusts as a multiple of it, and a meandering direction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WindRegime {
    /// Median sustained (10-minute) speed, m/s.
    pub median_m_s: f64,
    /// Extra speed in winter, as a fraction of the median (seasonal cosine).
    pub winter_increase: f64,
    /// Log-space sigma of the sustained speed.
    pub log_sigma: f64,
    /// Correlation time, hours.
    pub tau_hours: f64,
    /// Mean gust factor (gust / sustained).
    pub gust_factor: f64,
    /// Standard deviation of the gust factor.
    pub gust_factor_sigma: f64,
    /// Prevailing direction the wind comes from, degrees.
    pub prevailing_direction_deg: f64,
    /// Standard deviation of the direction around the prevailing one, degrees.
    pub direction_sigma_deg: f64,
    /// Speed multiplier during humid (storm) episodes.
    pub storm_factor: f64,
}

/// Dust: log-normal background plus calima episodes.
///
/// Calima episodes arrive as a Poisson process (`rate_summer` per day inside
/// the summer window, `rate_other` outside), last an exponential time with
/// mean `mean_duration_days` (at least half a day) and follow a
/// `peak·sqrt(sin(π u))` profile over the episode (`u` in `[0, 1]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DustRegime {
    /// Median background concentration, µg/m³.
    pub background_median_ug_m3: f64,
    /// Log-space sigma of the background.
    pub background_log_sigma: f64,
    /// Correlation time of the background, hours.
    pub background_tau_hours: f64,
    /// Particle counts (≥ 0.3 µm) per m³ at the background median.
    pub background_counts_m3: f64,
    /// Counts scale as `(dust / median)^exponent` (1.5 gives ×1000 counts at ×100 mass).
    pub counts_exponent: f64,
    /// First day of year of the calima season.
    pub summer_start_doy: f64,
    /// Last day of year of the calima season.
    pub summer_end_doy: f64,
    /// Episode starts per day inside the summer window.
    pub calima_rate_per_day_summer: f64,
    /// Episode starts per day outside the summer window.
    pub calima_rate_per_day_other: f64,
    /// Mean episode length, days.
    pub calima_mean_duration_days: f64,
    /// Median episode peak concentration, µg/m³.
    pub calima_peak_median_ug_m3: f64,
    /// Log-space sigma of the episode peak.
    pub calima_peak_log_sigma: f64,
}

impl Default for SiteClimate {
    fn default() -> Self {
        Self::la_palma()
    }
}

impl SiteClimate {
    /// Roque de los Muchachos, La Palma (~2400 m, ~774 hPa): dry above the
    /// inversion, winter storms, summer calima. About 20 % weather downtime.
    pub fn la_palma() -> Self {
        Self {
            name: "la_palma".to_owned(),
            latitude_deg: 28.76,
            longitude_deg: -17.88,
            altitude_m: 2396.0,
            temperature: TemperatureRegime::default(),
            pressure: PressureRegime::default(),
            humidity: HumidityRegime::default(),
            wind: WindRegime::default(),
            dust: DustRegime::default(),
        }
    }

    /// A dusty desert-margin site: high background aerosol that often sits
    /// just under the dome's safety limit, frequent calima, dry.
    pub fn dusty_desert() -> Self {
        let mut c = Self::la_palma();
        c.name = "dusty_desert".to_owned();
        c.latitude_deg = 24.6;
        c.longitude_deg = 72.7;
        c.altitude_m = 1680.0;
        c.temperature.annual_mean_c = 18.0;
        c.temperature.diurnal_amplitude_c = 5.0;
        c.pressure.mean_hpa = 830.0;
        c.humidity.fair_rh_median_pct = 25.0;
        c.humidity.humid_episodes_per_year = 10.0;
        c.dust.background_median_ug_m3 = 7.5;
        c.dust.background_log_sigma = 0.3;
        c.dust.background_counts_m3 = 6.0e6;
        c.dust.calima_rate_per_day_summer = 0.10;
        c.dust.calima_rate_per_day_other = 0.04;
        c.dust.calima_peak_median_ug_m3 = 90.0;
        c
    }

    /// A humid maritime site: frequent fog and cloud, little dust, long
    /// humidity downtime and much dew-point exposure.
    pub fn humid_coastal() -> Self {
        let mut c = Self::la_palma();
        c.name = "humid_coastal".to_owned();
        c.latitude_deg = -33.9;
        c.longitude_deg = 18.5;
        c.altitude_m = 900.0;
        c.temperature.annual_mean_c = 14.0;
        c.temperature.warmest_day_of_year = 30.0;
        c.pressure.mean_hpa = 915.0;
        c.humidity.fair_rh_median_pct = 62.0;
        c.humidity.fair_rh_log_sigma = 0.15;
        c.humidity.humid_episodes_per_year = 60.0;
        c.humidity.winter_weight = 0.5;
        c.dust.background_median_ug_m3 = 1.5;
        c.dust.summer_start_doy = 335.0;
        c.dust.summer_end_doy = 60.0;
        c.dust.calima_rate_per_day_summer = 0.01;
        c.dust.calima_rate_per_day_other = 0.005;
        c.dust.calima_peak_median_ug_m3 = 25.0;
        c
    }

    /// Looks a preset up by name (`la_palma`, `dusty_desert`, `humid_coastal`).
    pub fn preset(name: &str) -> Option<Self> {
        match name {
            "la_palma" => Some(Self::la_palma()),
            "dusty_desert" => Some(Self::dusty_desert()),
            "humid_coastal" => Some(Self::humid_coastal()),
            _ => None,
        }
    }

    /// Whether `doy` lies in the calima (summer) window, which may wrap the new year.
    pub fn in_dust_season(&self, doy: f64) -> bool {
        let (a, b) = (self.dust.summer_start_doy, self.dust.summer_end_doy);
        if a <= b {
            doy >= a && doy <= b
        } else {
            doy >= a || doy <= b
        }
    }

    /// Checks ranges; returns the first offending field and why.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        let positive = [
            (
                "climate.temperature.anomaly_tau_hours",
                self.temperature.anomaly_tau_hours,
            ),
            ("climate.pressure.tau_hours", self.pressure.tau_hours),
            ("climate.pressure.mean_hpa", self.pressure.mean_hpa),
            (
                "climate.humidity.anomaly_tau_hours",
                self.humidity.anomaly_tau_hours,
            ),
            (
                "climate.humidity.relax_tau_hours",
                self.humidity.relax_tau_hours,
            ),
            (
                "climate.humidity.humid_episode_mean_hours",
                self.humidity.humid_episode_mean_hours,
            ),
            (
                "climate.humidity.fair_rh_median_pct",
                self.humidity.fair_rh_median_pct,
            ),
            ("climate.wind.median_m_s", self.wind.median_m_s),
            ("climate.wind.tau_hours", self.wind.tau_hours),
            ("climate.wind.gust_factor", self.wind.gust_factor),
            (
                "climate.dust.background_median_ug_m3",
                self.dust.background_median_ug_m3,
            ),
            (
                "climate.dust.background_tau_hours",
                self.dust.background_tau_hours,
            ),
            (
                "climate.dust.background_counts_m3",
                self.dust.background_counts_m3,
            ),
            (
                "climate.dust.calima_mean_duration_days",
                self.dust.calima_mean_duration_days,
            ),
            (
                "climate.dust.calima_peak_median_ug_m3",
                self.dust.calima_peak_median_ug_m3,
            ),
        ];
        for (field, v) in positive {
            if !(v.is_finite() && v > 0.0) {
                return Err((field, format!("must be a positive number, got {v}")));
            }
        }
        let non_negative = [
            (
                "climate.humidity.humid_episodes_per_year",
                self.humidity.humid_episodes_per_year,
            ),
            (
                "climate.dust.calima_rate_per_day_summer",
                self.dust.calima_rate_per_day_summer,
            ),
            (
                "climate.dust.calima_rate_per_day_other",
                self.dust.calima_rate_per_day_other,
            ),
            (
                "climate.temperature.anomaly_sigma_c",
                self.temperature.anomaly_sigma_c,
            ),
            ("climate.wind.log_sigma", self.wind.log_sigma),
            (
                "climate.dust.background_log_sigma",
                self.dust.background_log_sigma,
            ),
        ];
        for (field, v) in non_negative {
            if !(v.is_finite() && v >= 0.0) {
                return Err((field, format!("must be a non-negative number, got {v}")));
            }
        }
        if !(-90.0..=90.0).contains(&self.latitude_deg) {
            return Err((
                "climate.latitude_deg",
                format!("{} is outside [-90, 90]", self.latitude_deg),
            ));
        }
        let h = &self.humidity;
        if !(0.0 < h.humid_rh_min_pct
            && h.humid_rh_min_pct <= h.humid_rh_max_pct
            && h.humid_rh_max_pct <= 100.0)
        {
            return Err((
                "climate.humidity.humid_rh_min_pct",
                format!(
                    "need 0 < min ({}) <= max ({}) <= 100",
                    h.humid_rh_min_pct, h.humid_rh_max_pct
                ),
            ));
        }
        if !(0.0..=1.0).contains(&h.winter_weight) {
            return Err((
                "climate.humidity.winter_weight",
                format!("{} is outside [0, 1]", h.winter_weight),
            ));
        }
        Ok(())
    }
}

impl Default for TemperatureRegime {
    fn default() -> Self {
        Self {
            annual_mean_c: 9.0,
            seasonal_amplitude_c: 6.0,
            warmest_day_of_year: 215.0,
            diurnal_amplitude_c: 2.5,
            anomaly_sigma_c: 2.0,
            anomaly_tau_hours: 36.0,
        }
    }
}

impl Default for PressureRegime {
    fn default() -> Self {
        Self {
            mean_hpa: 774.0,
            sigma_hpa: 2.5,
            tau_hours: 72.0,
            storm_drop_hpa: 4.0,
        }
    }
}

impl Default for HumidityRegime {
    fn default() -> Self {
        Self {
            fair_rh_median_pct: 35.0,
            fair_rh_log_sigma: 0.35,
            anomaly_tau_hours: 8.0,
            humid_episodes_per_year: 32.0,
            winter_weight: 0.7,
            humid_episode_mean_hours: 40.0,
            humid_rh_min_pct: 84.0,
            humid_rh_max_pct: 100.0,
            humid_rh_sigma_pct: 3.0,
            relax_tau_hours: 1.0,
        }
    }
}

impl Default for WindRegime {
    fn default() -> Self {
        Self {
            median_m_s: 6.0,
            winter_increase: 0.25,
            log_sigma: 0.5,
            tau_hours: 8.0,
            gust_factor: 1.3,
            gust_factor_sigma: 0.08,
            prevailing_direction_deg: 30.0,
            direction_sigma_deg: 50.0,
            storm_factor: 1.3,
        }
    }
}

impl Default for DustRegime {
    fn default() -> Self {
        Self {
            background_median_ug_m3: 2.5,
            background_log_sigma: 0.5,
            background_tau_hours: 24.0,
            background_counts_m3: 3.0e6,
            counts_exponent: 1.5,
            summer_start_doy: 152.0,
            summer_end_doy: 273.0,
            calima_rate_per_day_summer: 0.045,
            calima_rate_per_day_other: 0.012,
            calima_mean_duration_days: 2.5,
            calima_peak_median_ug_m3: 60.0,
            calima_peak_log_sigma: 0.8,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_validate_and_round_trip() {
        for name in ["la_palma", "dusty_desert", "humid_coastal"] {
            let c = SiteClimate::preset(name).expect("preset exists");
            c.validate().expect("preset is valid");
            let json = serde_json::to_string(&c).expect("serialise");
            let back: SiteClimate = serde_json::from_str(&json).expect("parse");
            assert_eq!(back, c);
        }
        assert!(SiteClimate::preset("mars").is_none());
        let partial: SiteClimate =
            serde_json::from_str(r#"{"dust":{"background_median_ug_m3":4.0}}"#).expect("parse");
        assert_eq!(partial.dust.background_median_ug_m3, 4.0);
        assert_eq!(partial.pressure.mean_hpa, 774.0);
    }

    #[test]
    fn dust_season_window_wraps() {
        let lp = SiteClimate::la_palma();
        assert!(lp.in_dust_season(200.0));
        assert!(!lp.in_dust_season(20.0));
        let south = SiteClimate::humid_coastal();
        assert!(south.in_dust_season(10.0));
        assert!(south.in_dust_season(350.0));
        assert!(!south.in_dust_season(180.0));
    }

    #[test]
    fn validate_names_the_field() {
        let mut c = SiteClimate::la_palma();
        c.wind.median_m_s = -1.0;
        let (field, _) = c.validate().expect_err("negative wind rejected");
        assert_eq!(field, "climate.wind.median_m_s");
    }
}

//! Stochastic weather processes driven by a [`SiteClimate`].
//!
//! Each slowly varying quantity is a standardised Ornstein–Uhlenbeck process
//! `x`, advanced exactly for any step `dt`:
//! `x ← a·x + sqrt(1 − a²)·N(0,1)` with `a = exp(−dt/τ)`, so the result does
//! not depend on the step size statistically. Episodes (humid spells, calima)
//! start as Poisson processes (`P(start in dt) = rate·dt`) whose rate follows
//! the season; see [`super::climate`] for the parameters.
//!
//! ```text
//! T    = mean + A_s·cos(2π(doy − warmest)/yr) + A_d·cos(2π(h − 15)/24) + σ_T·x_T (+2 calima, −1.5 humid)
//! RH  → target with τ_relax; target = median·exp(σ_rh·x_rh) (×0.6 calima) in fair weather,
//!       level + σ_h·x_rh in a humid episode
//! wind = median·(1 + w·winter)·exp(σ_w·x_w) (×storm in a humid episode); gust = wind·(g + σ_g·N)
//! dust = median·exp(σ_d·x_d) + peak·sqrt(sin(πu))·exp(0.3·x_c)   (u: progress through an episode)
//! Td   = c·γ/(b − γ), γ = ln(RH/100) + b·T/(c + T), b = 17.62, c = 243.12 °C (Magnus)
//! ```

use serde::{Deserialize, Serialize};

use super::climate::SiteClimate;
use super::event::Event;
use super::rng::SimRng;
use super::sun::{DAY_S, day_of_year, local_solar_hour, seasonal_cos};

/// Hours in a mean year.
const HOURS_PER_YEAR: f64 = 8_766.0;

/// Weather at the site, as a perfect weather station would read it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Weather {
    /// Sustained (10-minute mean) wind speed, m/s.
    pub wind_speed_m_s: f64,
    /// Gust speed, m/s.
    pub wind_gust_m_s: f64,
    /// Direction the wind comes from, degrees in `[0, 360)`.
    pub wind_direction_deg: f64,
    /// Relative humidity, %.
    pub relative_humidity_pct: f64,
    /// Air temperature, °C.
    pub air_temperature_c: f64,
    /// Dew point, °C.
    pub dew_point_c: f64,
    /// Station pressure, hPa.
    pub pressure_hpa: f64,
    /// Dust (PM10) concentration, µg/m³.
    pub dust_ug_m3: f64,
    /// Particle counts (≥ 0.3 µm), m⁻³.
    pub dust_counts_m3: f64,
    /// A calima episode is under way.
    pub calima_active: bool,
    /// A humid (fog/storm) episode is under way.
    pub humid_episode: bool,
}

/// Dew point over water (Magnus formula, Sonntag constants), °C.
pub fn dew_point_c(air_temperature_c: f64, relative_humidity_pct: f64) -> f64 {
    const B: f64 = 17.62;
    const C: f64 = 243.12;
    let rh = relative_humidity_pct.clamp(0.1, 100.0) / 100.0;
    let gamma = rh.ln() + B * air_temperature_c / (C + air_temperature_c);
    C * gamma / (B - gamma)
}

#[derive(Debug, Clone, Copy)]
struct HumidEpisode {
    end_s: f64,
    level_pct: f64,
}

#[derive(Debug, Clone, Copy)]
struct Calima {
    start_s: f64,
    end_s: f64,
    peak_ug_m3: f64,
}

/// A scripted calima episode waiting for its start time.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ForcedCalima {
    pub start_s: f64,
    pub duration_s: f64,
    pub peak_ug_m3: f64,
}

/// Exact OU decay coefficients for one step size.
#[derive(Debug, Clone, Copy, Default)]
struct Decay {
    dt_s: f64,
    // (a, sqrt(1 - a²)) per process
    temp: (f64, f64),
    rh: (f64, f64),
    wind: (f64, f64),
    dir: (f64, f64),
    press: (f64, f64),
    dust: (f64, f64),
    calima: (f64, f64),
    relax: f64,
}

fn ou(dt_s: f64, tau_hours: f64) -> (f64, f64) {
    let a = (-dt_s / (tau_hours * 3600.0)).exp();
    (a, (1.0 - a * a).max(0.0).sqrt())
}

impl Decay {
    fn new(dt_s: f64, c: &SiteClimate) -> Self {
        Self {
            dt_s,
            temp: ou(dt_s, c.temperature.anomaly_tau_hours),
            rh: ou(dt_s, c.humidity.anomaly_tau_hours),
            wind: ou(dt_s, c.wind.tau_hours),
            dir: ou(dt_s, 12.0),
            press: ou(dt_s, c.pressure.tau_hours),
            dust: ou(dt_s, c.dust.background_tau_hours),
            calima: ou(dt_s, 6.0),
            relax: 1.0 - (-dt_s / (c.humidity.relax_tau_hours * 3600.0)).exp(),
        }
    }
}

/// What a weather step reports back to the environment.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct WeatherTick {
    pub calima_started: bool,
}

/// The hidden state of the weather processes.
#[derive(Debug, Clone)]
pub(crate) struct WeatherModel {
    x_temp: f64,
    x_rh: f64,
    x_wind: f64,
    x_dir: f64,
    x_press: f64,
    x_dust: f64,
    x_calima: f64,
    rh: f64,
    humid: Option<HumidEpisode>,
    calima: Option<Calima>,
    forced: Vec<ForcedCalima>,
    decay: Decay,
}

impl WeatherModel {
    /// Starts every process in its stationary distribution.
    pub(crate) fn new(climate: &SiteClimate, rng: &mut SimRng) -> Self {
        let x_rh = rng.normal();
        let h = &climate.humidity;
        Self {
            x_temp: rng.normal(),
            x_rh,
            x_wind: rng.normal(),
            x_dir: rng.normal(),
            x_press: rng.normal(),
            x_dust: rng.normal(),
            x_calima: rng.normal(),
            rh: (h.fair_rh_median_pct * (h.fair_rh_log_sigma * x_rh).exp()).clamp(2.0, 100.0),
            humid: None,
            calima: None,
            forced: Vec::new(),
            decay: Decay::default(),
        }
    }

    /// Schedules a scripted calima episode (kept sorted by start).
    pub(crate) fn force_calima(&mut self, forced: ForcedCalima) {
        let at = self.forced.partition_point(|f| f.start_s <= forced.start_s);
        self.forced.insert(at, forced);
    }

    /// Advances the processes by `dt_s` to time `t_s` and writes the readings to `out`.
    pub(crate) fn advance(
        &mut self,
        t_s: f64,
        dt_s: f64,
        c: &SiteClimate,
        rng: &mut SimRng,
        out: &mut Weather,
        events: &mut Vec<Event>,
    ) -> WeatherTick {
        if self.decay.dt_s.to_bits() != dt_s.to_bits() {
            self.decay = Decay::new(dt_s, c);
        }
        let d = self.decay;
        let at_unix_ns = (t_s * 1e9).round() as i64;
        let dt_h = dt_s / 3600.0;
        let doy = day_of_year(t_s);
        let season = seasonal_cos(doy, c.temperature.warmest_day_of_year);
        let winter = -season;
        let mut tick = WeatherTick::default();

        // Humid episodes.
        if self.humid.is_some_and(|h| t_s >= h.end_s) {
            self.humid = None;
        }
        if self.humid.is_none() {
            let h = &c.humidity;
            let rate =
                h.humid_episodes_per_year / HOURS_PER_YEAR * (1.0 + h.winter_weight * winter);
            if rng.chance(rate * dt_h) {
                let hours = rng.exponential(h.humid_episode_mean_hours).max(2.0);
                self.humid = Some(HumidEpisode {
                    end_s: t_s + hours * 3600.0,
                    level_pct: rng.range(h.humid_rh_min_pct, h.humid_rh_max_pct),
                });
            }
        }

        // Calima: scripted episodes take precedence over drawn ones.
        if let Some(cal) = self.calima
            && t_s >= cal.end_s
        {
            self.calima = None;
            events.push(Event::CalimaEnded { at_unix_ns });
        }
        if self.forced.first().is_some_and(|f| f.start_s <= t_s) {
            let f = self.forced.remove(0);
            if self.calima.take().is_some() {
                events.push(Event::CalimaEnded { at_unix_ns });
            }
            tick.calima_started = self.start_calima(t_s, f.duration_s, f.peak_ug_m3, true, events);
        } else if self.calima.is_none() {
            let rate = if c.in_dust_season(doy) {
                c.dust.calima_rate_per_day_summer
            } else {
                c.dust.calima_rate_per_day_other
            };
            if rng.chance(rate * dt_s / DAY_S) {
                let days = rng.exponential(c.dust.calima_mean_duration_days).max(0.5);
                let peak = rng.lognormal(
                    c.dust.calima_peak_median_ug_m3,
                    c.dust.calima_peak_log_sigma,
                );
                tick.calima_started = self.start_calima(t_s, days * DAY_S, peak, false, events);
            }
        }

        // Ornstein–Uhlenbeck anomalies.
        self.x_temp = d.temp.0 * self.x_temp + d.temp.1 * rng.normal();
        self.x_rh = d.rh.0 * self.x_rh + d.rh.1 * rng.normal();
        self.x_wind = d.wind.0 * self.x_wind + d.wind.1 * rng.normal();
        self.x_dir = d.dir.0 * self.x_dir + d.dir.1 * rng.normal();
        self.x_press = d.press.0 * self.x_press + d.press.1 * rng.normal();
        self.x_dust = d.dust.0 * self.x_dust + d.dust.1 * rng.normal();

        let calima_on = self.calima.is_some();
        let humid_on = self.humid.is_some();
        let tr = &c.temperature;
        let hour = local_solar_hour(t_s, c.longitude_deg);
        let mut temp = tr.annual_mean_c
            + tr.seasonal_amplitude_c * season
            + tr.diurnal_amplitude_c * (std::f64::consts::TAU * (hour - 15.0) / 24.0).cos()
            + tr.anomaly_sigma_c * self.x_temp;
        if calima_on {
            temp += 2.0;
        }
        if humid_on {
            temp -= 1.5;
        }

        let h = &c.humidity;
        let target = match self.humid {
            Some(ep) => ep.level_pct + h.humid_rh_sigma_pct * self.x_rh,
            None => {
                let dry = if calima_on { 0.6 } else { 1.0 };
                dry * h.fair_rh_median_pct * (h.fair_rh_log_sigma * self.x_rh).exp()
            }
        };
        self.rh += (target.clamp(2.0, 100.0) - self.rh) * d.relax;

        let w = &c.wind;
        let storm = if humid_on { w.storm_factor } else { 1.0 };
        let speed = w.median_m_s
            * (1.0 + w.winter_increase * winter)
            * (w.log_sigma * self.x_wind).exp()
            * storm;
        let gust = speed * (w.gust_factor + w.gust_factor_sigma * rng.normal()).max(1.0);
        let direction =
            (w.prevailing_direction_deg + w.direction_sigma_deg * self.x_dir).rem_euclid(360.0);

        let p = &c.pressure;
        let pressure =
            p.mean_hpa + p.sigma_hpa * self.x_press - if humid_on { p.storm_drop_hpa } else { 0.0 };

        let dc = &c.dust;
        let mut dust = dc.background_median_ug_m3 * (dc.background_log_sigma * self.x_dust).exp();
        if let Some(cal) = self.calima {
            self.x_calima = d.calima.0 * self.x_calima + d.calima.1 * rng.normal();
            let u = ((t_s - cal.start_s) / (cal.end_s - cal.start_s)).clamp(0.0, 1.0);
            let profile = (std::f64::consts::PI * u).sin().max(0.0).sqrt();
            dust += cal.peak_ug_m3 * profile * (0.3 * self.x_calima).exp();
        }

        *out = Weather {
            wind_speed_m_s: speed,
            wind_gust_m_s: gust,
            wind_direction_deg: direction,
            relative_humidity_pct: self.rh,
            air_temperature_c: temp,
            dew_point_c: dew_point_c(temp, self.rh),
            pressure_hpa: pressure,
            dust_ug_m3: dust,
            dust_counts_m3: out.dust_counts_m3,
            calima_active: calima_on,
            humid_episode: humid_on,
        };
        tick
    }

    fn start_calima(
        &mut self,
        t_s: f64,
        duration_s: f64,
        peak_ug_m3: f64,
        forced: bool,
        events: &mut Vec<Event>,
    ) -> bool {
        self.calima = Some(Calima {
            start_s: t_s,
            end_s: t_s + duration_s,
            peak_ug_m3,
        });
        events.push(Event::CalimaStarted {
            at_unix_ns: (t_s * 1e9).round() as i64,
            peak_ug_m3,
            duration_hours: duration_s / 3600.0,
            forced,
        });
        true
    }
}

/// Particle counts for a mass concentration: `counts·(dust/median)^exponent`.
pub fn dust_counts_m3(c: &SiteClimate, dust_ug_m3: f64) -> f64 {
    let d = &c.dust;
    d.background_counts_m3
        * (dust_ug_m3.max(0.0) / d.background_median_ug_m3).powf(d.counts_exponent)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::rng::Stream;

    #[test]
    fn dew_point_matches_reference_values() {
        // 20 °C at 50 % -> 9.3 °C; 5 °C at 90 % -> 3.5 °C
        assert!((dew_point_c(20.0, 50.0) - 9.26).abs() < 0.1);
        assert!((dew_point_c(5.0, 90.0) - 3.5).abs() < 0.1);
        assert!((dew_point_c(10.0, 100.0) - 10.0).abs() < 1e-9);
    }

    #[test]
    fn forced_calima_starts_on_time_and_raises_dust() {
        let c = SiteClimate::la_palma();
        let mut rng = SimRng::new(3, Stream::Weather);
        let mut m = WeatherModel::new(&c, &mut rng);
        let t0 = 1_700_000_000.0;
        m.force_calima(ForcedCalima {
            start_s: t0 + 3600.0,
            duration_s: 86_400.0,
            peak_ug_m3: 200.0,
        });
        let mut w = Weather::default();
        let mut events = Vec::new();
        let mut peak = 0.0_f64;
        for k in 1..=(30 * 60) {
            m.advance(
                t0 + 60.0 * f64::from(k),
                60.0,
                &c,
                &mut rng,
                &mut w,
                &mut events,
            );
            peak = peak.max(w.dust_ug_m3);
        }
        let started: Vec<_> = events
            .iter()
            .filter(|e| matches!(e, Event::CalimaStarted { forced: true, .. }))
            .collect();
        assert_eq!(started.len(), 1);
        assert_eq!(started[0].at_unix_ns(), ((t0 + 3600.0) * 1e9) as i64);
        assert!(
            events
                .iter()
                .any(|e| matches!(e, Event::CalimaEnded { .. }))
        );
        assert!(peak > 100.0, "peak dust {peak}");
        assert!(!w.calima_active);
    }

    #[test]
    fn counts_scale_superlinearly() {
        let c = SiteClimate::la_palma();
        let bg = dust_counts_m3(&c, c.dust.background_median_ug_m3);
        assert!((bg - 3.0e6).abs() < 1.0);
        let storm = dust_counts_m3(&c, 100.0 * c.dust.background_median_ug_m3);
        assert!((storm / bg - 1000.0).abs() < 1e-6);
    }
}

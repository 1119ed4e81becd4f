//! The shared environment model: one seeded, deterministic simulation of a
//! telescope site (weather, dome, mirror segments, maintenance) with no I/O
//! and no wall clock.
//!
//! It drives the simulated devices of the live fog-node (possibly in
//! accelerated time) and `fog-node simulate`, which writes the training
//! tables of the mirror health model for years of simulated time. The same
//! equations are therefore the ground truth the model learns.
//!
//! ```no_run
//! use fog_node::sim::{Environment, EnvironmentConfig};
//! let mut env = Environment::new(EnvironmentConfig::default()).expect("valid config");
//! for _ in 0..24 * 60 {
//!     env.step(60.0);
//!     for event in env.drain_events() { /* forward to devices */ let _ = event; }
//! }
//! println!("R650 of segment 1: {:.2} %", env.state().segments[0].reflectivity.nm650);
//! ```
//!
//! # Sub-steps
//!
//! [`Environment::step`] splits `dt` into `n = ceil(dt / 60 s)` equal
//! sub-steps. Each sub-step, in order: weather ([`weather`]) → sun → dome
//! rules ([`dome`]) → segment physics ([`mirror`]) → maintenance
//! ([`maintenance`]). Derived values (reflectivity per wavelength, ages,
//! piston/tip/tilt, particle counts) are refreshed once at the end of the
//! step. A given seed and call sequence always yields the same states and
//! events; different step sizes give statistically equivalent but not
//! identical trajectories.
//!
//! # Physics in one place
//!
//! * Weather: Ornstein–Uhlenbeck anomalies around seasonal and diurnal
//!   means, Poisson humid episodes (winter) and calima episodes (summer);
//!   see [`weather`] and [`climate`].
//! * Dome: open only at night (sun below −12°), holds for RH (close ≥ 90 %,
//!   reopen ≤ 80 % after 20 min below 90 %), dew point (glass within 2 °C),
//!   wind (> 20 m/s sustained, > 22 m/s gusts) and dust (≥ 12 µg/m³); see [`dome`].
//! * Mirror: `dust += k_d·s·D·f·dt` (the dust dose while open), humidity and
//!   dew film, ageing haze, and corrosion `∝ dust·moisture`; reflectivity
//!   `R(λ) = R_fresh(λ) − Σ L_b (650/λ)^α_b`; cleaning recovers
//!   `min(U(2.5, 3), η·recoverable)`; recoat restores fresh; see [`mirror`].
//! * Maintenance: CO₂ cleaning every 45 ± 15 days, reflectometer every 42
//!   days and after each maintenance, recoat at 3 points of loss or 4 years;
//!   see [`maintenance`].
//!
//! # Calibration against DOMAIN.md (asserted in `fog-node/tests/sim_*.rs`)
//!
//! | DOMAIN.md | model with default constants |
//! |---|---|
//! | weather downtime ~20 % of nights | La Palma 20–22 % of night hours (test: 10–35 %) |
//! | well maintained: −1 to −2 points/yr | La Palma, default policy: 1.3–1.6 points at 650 nm in year one |
//! | dusty / poorly maintained: −0.5 to −1 point/month | `dusty_desert`, no cleaning: 0.6–0.8 (0.4–0.6 in short June nights) |
//! | cleaning recovers 2.5–3 points, never to fresh | cap U(2.5, 3.0) when ≥ 2.7–3.8 points are recoverable; permanent buckets stay |
//! | recoat every 1–4 years / at 3 points | La Palma reaches 3 points after ~2.3 years |
//! | > 75 % summer and > 90 % other nights dust free | La Palma ~88 % and ~96 % |
//! | dust background ~3×10⁶ counts/m³, ×1000 in storms | `counts = 3e6·(D/2.5)^1.5` |

pub mod climate;
mod config;
pub mod dome;
pub mod event;
pub mod maintenance;
pub mod mirror;
pub(crate) mod rng;
pub mod state;
pub mod sun;
pub mod weather;

pub use climate::SiteClimate;
pub use config::EnvironmentConfig;
pub use dome::{CloseReason, DomePolicy, DomeState, DomeStatus};
pub use event::{Event, MaintenanceKind};
pub use maintenance::{
    CleaningMethod, CleaningPolicy, MaintenancePolicy, MaintenanceSchedule, RecoatPolicy,
};
pub use mirror::{MirrorPhysics, SegmentInit};
pub use state::{
    EnvState, Exposure, LossBreakdown, Reflectivity, SegmentState, SiteTotals, WAVELENGTHS_NM,
};
pub use weather::Weather;

use dome::DomeInputs;
use maintenance::MaintenanceCtx;
use mirror::{BandWeights, FigureDrivers, MirrorStep, ThermalCache};
use rng::{SimRng, Stream};
use weather::{ForcedCalima, WeatherModel};

/// Longest internal sub-step, seconds.
pub const MAX_SUBSTEP_S: f64 = 60.0;

/// Errors of the environment model.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SimError {
    /// A configuration value is out of range.
    #[error("invalid environment config: {field}: {reason}")]
    InvalidConfig {
        /// Dotted path of the field.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A segment position outside `1..=segments`.
    #[error("segment {segment} does not exist (the mirror has segments 1..={segments})")]
    NoSuchSegment {
        /// The position asked for.
        segment: u32,
        /// Number of segments.
        segments: u32,
    },
    /// A hook argument is out of range.
    #[error("invalid argument to {hook}: {reason}")]
    InvalidArgument {
        /// The hook called.
        hook: &'static str,
        /// What is wrong.
        reason: String,
    },
}

/// Result of the environment model.
pub type Result<T> = std::result::Result<T, SimError>;

/// A simulated site. See the module docs.
#[derive(Debug, Clone)]
pub struct Environment {
    config: EnvironmentConfig,
    state: EnvState,
    weather: WeatherModel,
    schedule: MaintenanceSchedule,
    weights: BandWeights,
    thermal: ThermalCache,
    weather_rng: SimRng,
    maintenance_rng: SimRng,
    measure_rng: SimRng,
    events: Vec<Event>,
}

impl Environment {
    /// Builds the site at `config.start_unix_s`.
    pub fn new(config: EnvironmentConfig) -> Result<Self> {
        config.validate()?;
        let mut weather_rng = SimRng::new(config.seed, Stream::Weather);
        let mut maintenance_rng = SimRng::new(config.seed, Stream::Maintenance);
        let mut segment_rng = SimRng::new(config.seed, Stream::Segments);
        let measure_rng = SimRng::new(config.seed, Stream::Measurement);
        let start_s = config.start_unix_s as f64;
        let mut weather = WeatherModel::new(&config.climate, &mut weather_rng);
        let mut w = Weather::default();
        let mut scratch = Vec::new();
        // One silent update fills in the readings at the start time.
        weather.advance(
            start_s,
            MAX_SUBSTEP_S,
            &config.climate,
            &mut weather_rng,
            &mut w,
            &mut scratch,
        );
        w.dust_counts_m3 = weather::dust_counts_m3(&config.climate, w.dust_ug_m3);
        let weights = BandWeights::new(&config.physics);
        let default_init = SegmentInit::default();
        let segments = (0..config.segments as usize)
            .map(|i| {
                let init = config.initial_segments.get(i).unwrap_or(&default_init);
                mirror::new_segment(
                    i,
                    init,
                    &config.physics,
                    &weights,
                    &mut segment_rng,
                    start_s,
                    w.air_temperature_c,
                )
            })
            .collect();
        let sun = sun::solar_elevation_deg(
            start_s,
            config.climate.latitude_deg,
            config.climate.longitude_deg,
        );
        let schedule = MaintenanceSchedule::new(&config.maintenance, &mut maintenance_rng, start_s);
        let state = EnvState {
            time_unix_ns: config.start_unix_s.saturating_mul(1_000_000_000),
            sun_elevation_deg: sun,
            is_night: sun < config.dome.night_sun_elevation_deg,
            weather: w,
            dome: DomeStatus::default(),
            segments,
            totals: SiteTotals::default(),
        };
        Ok(Self {
            config,
            state,
            weather,
            schedule,
            weights,
            thermal: ThermalCache::default(),
            weather_rng,
            maintenance_rng,
            measure_rng,
            events: Vec::new(),
        })
    }

    /// The configuration the site was built from.
    pub fn config(&self) -> &EnvironmentConfig {
        &self.config
    }

    /// The state after the last step.
    pub fn state(&self) -> &EnvState {
        &self.state
    }

    /// What maintenance is due next.
    pub fn maintenance_schedule(&self) -> &MaintenanceSchedule {
        &self.schedule
    }

    /// Events since the last drain, in time order.
    pub fn drain_events(&mut self) -> std::vec::Drain<'_, Event> {
        self.events.drain(..)
    }

    /// Events since the last drain, without removing them.
    pub fn pending_events(&self) -> &[Event] {
        &self.events
    }

    /// Advances simulated time by `dt_seconds` in sub-steps of at most 60 s
    /// (cost is proportional to the number of sub-steps: about 0.4 µs each
    /// for 18 segments in release). A non-finite or non-positive
    /// `dt_seconds` does nothing.
    pub fn step(&mut self, dt_seconds: f64) {
        if !(dt_seconds.is_finite() && dt_seconds > 0.0) {
            return;
        }
        let total_ns = (dt_seconds * 1e9).round() as i64;
        if total_ns <= 0 {
            return;
        }
        let n = (dt_seconds / MAX_SUBSTEP_S).ceil().max(1.0) as i64;
        let sub_ns = total_ns / n;
        let mut done = 0;
        for k in 0..n {
            let this_ns = if k == n - 1 { total_ns - done } else { sub_ns };
            done += this_ns;
            self.substep(this_ns);
        }
        self.refresh();
    }

    fn substep(&mut self, dt_ns: i64) {
        let c = &self.config;
        let s = &mut self.state;
        s.time_unix_ns += dt_ns;
        let now_s = s.time_unix_ns as f64 / 1e9;
        let dt_s = dt_ns as f64 / 1e9;
        let dt_h = dt_s / 3600.0;

        let tick = self.weather.advance(
            now_s,
            dt_s,
            &c.climate,
            &mut self.weather_rng,
            &mut s.weather,
            &mut self.events,
        );
        if tick.calima_started {
            s.totals.calima_events += 1;
            for seg in &mut s.segments {
                seg.since_cleaning.calima_events += 1;
                seg.since_recoat.calima_events += 1;
            }
        }
        s.sun_elevation_deg =
            sun::solar_elevation_deg(now_s, c.climate.latitude_deg, c.climate.longitude_deg);
        s.is_night = s.sun_elevation_deg < c.dome.night_sun_elevation_deg;

        let w = s.weather;
        let min_spread = s
            .segments
            .iter()
            .map(|seg| seg.glass_temperature_c - w.dew_point_c)
            .fold(f64::INFINITY, f64::min);
        let inputs = DomeInputs {
            is_night: s.is_night,
            relative_humidity_pct: w.relative_humidity_pct,
            min_dew_spread_c: min_spread,
            wind_speed_m_s: w.wind_speed_m_s,
            wind_gust_m_s: w.wind_gust_m_s,
            dust_ug_m3: w.dust_ug_m3,
        };
        // Shutter position over the sub-step: mean of start and end.
        let before = s.dome.open_fraction();
        dome::update_dome(&mut s.dome, &c.dome, &inputs, now_s, dt_s, &mut self.events);
        let open_fraction = 0.5 * (before + s.dome.open_fraction());

        let t = &mut s.totals;
        t.hours += dt_h;
        if s.is_night {
            t.night_hours += dt_h;
            if s.dome.holds.any() {
                t.weather_closed_night_hours += dt_h;
            }
        }
        t.open_hours += open_fraction * dt_h;
        t.dust_dose_ug_m3_h += w.dust_ug_m3 * open_fraction * dt_h;

        let step = MirrorStep {
            dt_s,
            open_fraction,
            dust_ug_m3: w.dust_ug_m3,
            humid: w.relative_humidity_pct > 80.0,
            air_temperature_c: w.air_temperature_c,
            dew_point_c: w.dew_point_c,
        };
        mirror::advance_segments(&mut s.segments, &c.physics, &mut self.thermal, &step);

        let mut ctx = MaintenanceCtx {
            policy: &c.maintenance,
            physics: &c.physics,
            weights: &self.weights,
            rng: &mut self.maintenance_rng,
            measure_rng: &mut self.measure_rng,
            events: &mut self.events,
        };
        let closed = s.dome.percent_open <= 0.0;
        ctx.run_due(
            &mut self.schedule,
            &mut s.segments,
            now_s,
            s.sun_elevation_deg,
            closed,
        );
    }

    fn refresh(&mut self) {
        let s = &mut self.state;
        let now_s = s.time_unix_ns as f64 / 1e9;
        let w = &mut s.weather;
        w.dust_counts_m3 = weather::dust_counts_m3(&self.config.climate, w.dust_ug_m3);
        let drivers = FigureDrivers::new(
            now_s,
            w.air_temperature_c,
            w.wind_speed_m_s,
            s.dome.open_fraction(),
        );
        for seg in &mut s.segments {
            mirror::refresh_segment(seg, &self.weights, now_s, &drivers);
        }
    }

    fn segment_index(&self, segment: u32) -> Result<usize> {
        let n = self.config.segments;
        if segment == 0 || segment > n {
            return Err(SimError::NoSuchSegment {
                segment,
                segments: n,
            });
        }
        Ok(segment as usize - 1)
    }

    fn apply_maintenance(&mut self, segment: u32, kind: MaintenanceKind) -> Result<()> {
        let i = self.segment_index(segment)?;
        let now_s = self.state.unix_seconds();
        let mut ctx = MaintenanceCtx {
            policy: &self.config.maintenance,
            physics: &self.config.physics,
            weights: &self.weights,
            rng: &mut self.maintenance_rng,
            measure_rng: &mut self.measure_rng,
            events: &mut self.events,
        };
        let seg = &mut self.state.segments[i];
        match kind {
            MaintenanceKind::Cleaning => ctx.clean(seg, now_s),
            MaintenanceKind::Recoat => {
                ctx.recoat(seg, now_s);
                self.schedule
                    .pending_recoats
                    .retain(|p| p.segment != segment);
            }
        }
        self.refresh();
        Ok(())
    }

    /// Cleans segment `segment` (1-based) now, whatever the time of day.
    pub fn clean_now(&mut self, segment: u32) -> Result<()> {
        self.apply_maintenance(segment, MaintenanceKind::Cleaning)
    }

    /// Recoats segment `segment` (1-based) now: fresh reflectivity, counters reset.
    pub fn recoat_now(&mut self, segment: u32) -> Result<()> {
        self.apply_maintenance(segment, MaintenanceKind::Recoat)
    }

    /// Measures segment `segment` (1-based) with the reflectometer now.
    pub fn measure_now(&mut self, segment: u32) -> Result<Reflectivity> {
        let i = self.segment_index(segment)?;
        let values = mirror::measure(
            &self.state.segments[i],
            &self.config.physics,
            &self.weights,
            &mut self.measure_rng,
        );
        self.events.push(Event::ReflectometerMeasurement {
            at_unix_ns: self.state.time_unix_ns,
            segment,
            values,
        });
        Ok(values)
    }

    /// Schedules a calima episode starting at `start_unix_s` lasting
    /// `duration_s` with peak concentration `peak_ug_m3`; it replaces any
    /// natural episode under way when it starts. A start in the past starts
    /// on the next sub-step.
    pub fn force_calima(
        &mut self,
        start_unix_s: i64,
        duration_s: f64,
        peak_ug_m3: f64,
    ) -> Result<()> {
        if !(duration_s.is_finite() && duration_s > 0.0) {
            return Err(SimError::InvalidArgument {
                hook: "force_calima",
                reason: format!("duration {duration_s} s must be positive"),
            });
        }
        if !(peak_ug_m3.is_finite() && peak_ug_m3 >= 0.0) {
            return Err(SimError::InvalidArgument {
                hook: "force_calima",
                reason: format!("peak {peak_ug_m3} ug/m3 must be non-negative"),
            });
        }
        self.weather.force_calima(ForcedCalima {
            start_s: start_unix_s as f64,
            duration_s,
            peak_ug_m3,
        });
        Ok(())
    }
}

//! `fog-node simulate`: runs the shared environment model ([`crate::sim`]) in
//! accelerated time for several site presets and writes the training table
//! of the mirror health model (`ml/train/`).
//!
//! # What is simulated
//!
//! One [`Environment`] per site preset (`la_palma`, `dusty_desert`,
//! `humid_coastal`), each with its own seed derived from the run seed and the
//! site name ([`site_seed`]), so a site's table does not depend on which
//! other sites are in the run. Per segment, drawn from DOMAIN.md ranges:
//! fresh reflectivity at 650 nm 90.5–92.0 % (bare aluminium), microroughness
//! 10–30 Å RMS, surface figure error 8–18 nm RMS (a manufacturing feature the
//! physics does not use), coating age 0–1000 days, days since cleaning
//! 0–60 days. Maintenance:
//!
//! * cleanings per segment on its own [`CleaningPolicy`]: diligent
//!   (every 20–35 days), standard (40–60), sporadic (90–150) or never, so the
//!   table spans well and poorly maintained mirrors; a due cleaning is done at
//!   the daily snapshot if the dome is closed and the sun above 5°, else the
//!   next day;
//! * reflectometer campaigns every 28, 42 or 56 days (per site) and after each
//!   maintenance, and recoats decided by the model's [`RecoatPolicy`] (3 points
//!   of measured loss or 4 years).
//!
//! With `--climate-variants K`, each preset also gets K telescopes with a
//! randomised climate, named `<preset>~<k>` ([`climate_variant`]): domain
//! randomisation, so a model trained on some presets has seen climates
//! between them (`ml/train/train.sh` uses K = 4 and holds out whole families).
//!
//! Cost: about 0.5 s of CPU per simulated telescope-year of 18 segments
//! in release (a minute of simulated time per environment step, plus a
//! `horizon` tail); sites run on parallel threads.
//!
//! The run is deterministic for a given seed: no wall clock, no I/O but the
//! output file.
//!
//! # The table
//!
//! One row per segment per day, at [`ROW_HOUR_UTC`]:00 UTC, ordered by site
//! (as given), day, segment. Columns: `site, segment, day` (ISO date), the
//! feature columns [`FEATURE_COLUMNS`] (the contract of
//! `obs_ml::features::FEATURES`, same order), then the targets
//! `reflectivity_650_pct`, `days_to_threshold` and, for convenience,
//! `threshold_650_pct`. A missing value is an empty cell (only
//! `last_measured_*` before a segment's first reflectometer reading).
//!
//! Features are what the hub can compute from its own data
//! (`cloud-hub/src/ingest/exposure.rs`), and with the same definitions:
//!
//! * open-dome hours `∫ fraction open dt`, dust dose `∫ dust·fraction open dt`,
//!   humid hours (RH > 80 %), dew-risk hours (glass within 2 °C of the dew
//!   point) come from the model's [`crate::sim::Exposure`] counters, which
//!   integrate exactly those quantities (checked against an independent
//!   integration of the state in `fog-node/tests/simulate_exposure.rs`);
//! * calima events are NOT the model's episode count (an episode whose dust
//!   never reaches 20 µg/m³ is invisible to the hub, and a noisy one can cross
//!   twice): they are counted from the dust reading after every minute with
//!   the hub's rule, [`CalimaCounter`] (start at ≥ 20 µg/m³, end below 12);
//! * "maintenance" is the last cleaning or recoat; exposure starts when the
//!   site starts reporting (the start of the run), as it does at the hub, so
//!   a coating older than the run has since-recoat exposure from the start
//!   only and `cleanings_since_recoat` counts cleanings seen in the run;
//! * `coating_age_days` and `days_since_recoat` are equal here (every recoat
//!   is a new coating); the hub takes the first from the manufacturing record
//!   and the second from its maintenance table;
//! * `season_sin`/`season_cos` are `sin/cos(2π·doy/365.2425)` with
//!   `doy` = [`crate::sim::sun::day_of_year`] of the row time.
//!
//! # Targets
//!
//! `reflectivity_650_pct` is the true reflectivity at the row time.
//! `days_to_threshold` is counterfactual: how many days until the segment
//! would fall below `threshold = max(fresh₆₅₀ − 3, 80 %)` if nobody cleaned
//! or recoated it. The weather does not depend on the mirror, so it is
//! computed from the daily loss increments with the recoveries of cleanings
//! and recoats added back: with `D(d)` the cumulative sum of those
//! increments, `days_to_threshold(d) = min{d' > d : R(d) − (D(d') − D(d)) <
//! threshold} − d`, 0 when `R(d)` is already below, capped at the horizon
//! (365 days by default; a row whose segment does not cross within the
//! horizon gets the cap: right-censored). The run simulates `horizon` extra
//! days after the last written day so every row's window is complete.
//! Approximation: corrosion grows with the loose dust on the glass, which a
//! cleaning removes, so after a cleaning the increments are somewhat smaller
//! than without it; the target is then slightly optimistic (too many days).

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::sim::{
    CleaningMethod, CleaningPolicy, Environment, EnvironmentConfig, Event, MaintenancePolicy,
    RecoatPolicy, Reflectivity, SegmentInit, SimError, SiteClimate, sun,
};

/// The feature columns, in order: must equal `obs_ml::features::FEATURES`
/// (checked by `ml/tests/contract.rs`).
pub const FEATURE_COLUMNS: [&str; 20] = [
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

/// Target columns after the features.
pub const TARGET_COLUMNS: [&str; 3] = [
    "reflectivity_650_pct",
    "days_to_threshold",
    "threshold_650_pct",
];

/// Site presets simulated by default.
pub const DEFAULT_SITES: [&str; 3] = ["la_palma", "dusty_desert", "humid_coastal"];

/// Hour of the day (UTC) of every row; daytime at the three presets.
pub const ROW_HOUR_UTC: u32 = 12;

/// The maintenance threshold is this many points below fresh...
pub const THRESHOLD_DROP_POINTS: f64 = 3.0;
/// ...but never below this reflectivity, %.
pub const THRESHOLD_FLOOR_PCT: f64 = 80.0;
/// Default cap of `days_to_threshold`, days.
pub const DEFAULT_HORIZON_DAYS: u32 = 365;

/// Dust concentration that starts a calima event at the hub, µg/m³.
pub const CALIMA_START_UG_M3: f64 = 20.0;
/// Dust concentration below which the hub ends a calima event, µg/m³.
pub const CALIMA_END_UG_M3: f64 = 12.0;

const DAY_S: f64 = 86_400.0;
const STEP_S: f64 = 60.0;
const STEPS_PER_DAY: u32 = (DAY_S / STEP_S) as u32;
const MAINTENANCE_MIN_SUN_DEG: f64 = 5.0;

/// Errors of `fog-node simulate`.
#[derive(Debug, thiserror::Error)]
pub enum SimulateError {
    /// A command-line value is out of range.
    #[error("invalid simulate argument {arg}: {reason}")]
    InvalidArgument {
        /// The flag.
        arg: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A site name that is not a preset.
    #[error("unknown site preset {name:?} (known: {})", DEFAULT_SITES.join(", "))]
    UnknownSite {
        /// The name given.
        name: String,
    },
    /// The environment model refused its configuration.
    #[error("site {site}: {source}")]
    Environment {
        /// The site preset.
        site: String,
        /// The model's error.
        source: SimError,
    },
    /// Writing the table failed.
    #[error("cannot write training table {}: {source}", path.display())]
    Io {
        /// The output file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A site worker thread died.
    #[error("simulation of site {site} panicked")]
    Worker {
        /// The site preset.
        site: String,
    },
}

/// Result of `fog-node simulate`.
pub type Result<T> = std::result::Result<T, SimulateError>;

/// What to simulate.
#[derive(Debug, Clone, PartialEq)]
pub struct SimulateConfig {
    /// Mirror segments per site.
    pub segments: u32,
    /// Simulated years of rows per site.
    pub years: f64,
    /// Run seed; each site's seed is derived from it ([`site_seed`]).
    pub seed: u64,
    /// Site presets, in output order.
    pub sites: Vec<String>,
    /// Cap of `days_to_threshold`, days (also the extra days simulated).
    pub horizon_days: u32,
    /// Extra telescopes per preset with a randomised climate
    /// ([`climate_variant`]), named `<preset>~<k>`; 0 = the presets only.
    pub climate_variants: u32,
    /// Output CSV file.
    pub out: PathBuf,
}

impl SimulateConfig {
    /// Defaults for everything but the output file: 18 segments, 3 years,
    /// seed 1, the three presets, a 365-day horizon.
    pub fn new(out: impl Into<PathBuf>) -> Self {
        Self {
            segments: 18,
            years: 3.0,
            seed: 1,
            sites: DEFAULT_SITES.iter().map(|s| (*s).to_owned()).collect(),
            horizon_days: DEFAULT_HORIZON_DAYS,
            climate_variants: 0,
            out: out.into(),
        }
    }

    /// Days with rows per site.
    pub fn days(&self) -> u32 {
        (self.years * 365.0).round() as u32
    }

    fn validate(&self) -> Result<Vec<SiteClimate>> {
        let bad = |arg, reason: String| SimulateError::InvalidArgument { arg, reason };
        if !(1..=999).contains(&self.segments) {
            return Err(bad(
                "--segments",
                format!("{} is outside 1..=999", self.segments),
            ));
        }
        if !(self.years.is_finite() && self.years > 0.0 && self.years <= 50.0) {
            return Err(bad("--years", format!("{} is outside (0, 50]", self.years)));
        }
        if self.days() == 0 {
            return Err(bad("--years", format!("{} is less than a day", self.years)));
        }
        if !(1..=3650).contains(&self.horizon_days) {
            return Err(bad(
                "--horizon-days",
                format!("{} is outside 1..=3650", self.horizon_days),
            ));
        }
        if self.sites.is_empty() {
            return Err(bad("--sites", "no site given".to_owned()));
        }
        if self.climate_variants > 20 {
            return Err(bad(
                "--climate-variants",
                format!("{} is outside 0..=20", self.climate_variants),
            ));
        }
        let mut climates = Vec::new();
        for (i, name) in self.sites.iter().enumerate() {
            if self.sites[..i].contains(name) {
                return Err(bad("--sites", format!("{name} is listed twice")));
            }
            let climate = SiteClimate::preset(name)
                .ok_or_else(|| SimulateError::UnknownSite { name: name.clone() })?;
            for k in 1..=self.climate_variants {
                climates.push(climate_variant(&climate, k, self.seed));
            }
            climates.insert(climates.len() - self.climate_variants as usize, climate);
        }
        Ok(climates)
    }
}

/// What a run produced.
#[derive(Debug, Clone, PartialEq)]
pub struct SimulateSummary {
    /// Rows written (without the header).
    pub rows: usize,
    /// Per site, in output order.
    pub sites: Vec<SiteSummary>,
    /// Wall time of the run.
    pub elapsed: Duration,
}

/// Counts for one site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteSummary {
    /// Preset name.
    pub site: String,
    /// Seed of its environment.
    pub seed: u64,
    /// Rows written.
    pub rows: usize,
    /// Segment cleanings over the whole run (including the horizon tail).
    pub cleanings: u32,
    /// Segment recoats over the whole run.
    pub recoats: u32,
    /// Hub-style calima events over the rows' days.
    pub calima_events: u32,
}

/// Seed of site `name`'s environment for run seed `seed`
/// (SplitMix64 of the seed xor the FNV-1a hash of the name).
pub fn site_seed(seed: u64, name: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    let mut z = (seed ^ h).wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Variant `k` of a preset climate for domain randomisation, named
/// `<preset>~<k>`, all factors log-uniform: dust background ×[0.3, 3.3],
/// calima rates ×[0.3, 3], calima peaks ×[0.7, 1.4], humid episodes per
/// year ×[0.33, 3], fair-weather RH ×[0.6, 1.7] (at most 75 %), median wind
/// ×[0.8, 1.25]; annual mean temperature ±3 °C (uniform). The ranges are wide
/// on purpose (domain randomisation): every preset's variants overlap the
/// other presets' climates, so a model trained on some families has seen
/// dust and humidity in combinations like those of a held-out one. Location,
/// seasons and the dome rules are the preset's. Drawn from the site seed of
/// the variant's name.
pub fn climate_variant(preset: &SiteClimate, k: u32, seed: u64) -> SiteClimate {
    let name = format!("{}~{k}", preset.name);
    let mut rng = ChaCha8Rng::seed_from_u64(site_seed(seed, &name));
    rng.set_stream(12);
    let mut draws = [0.0_f64; 7];
    for d in &mut draws {
        *d = rng.random();
    }
    let log_uniform = |u: f64, lo: f64, hi: f64| (lo.ln() + u * (hi.ln() - lo.ln())).exp();
    let dust = log_uniform(draws[0], 0.3, 3.3);
    let calima = log_uniform(draws[1], 0.3, 3.0);
    let peak = log_uniform(draws[2], 0.7, 1.4);
    let humid = log_uniform(draws[3], 0.33, 3.0);
    let rh = log_uniform(draws[4], 0.6, 1.7);
    let wind = log_uniform(draws[5], 0.8, 1.25);
    let temperature = 6.0 * (draws[6] - 0.5);
    let mut c = preset.clone();
    c.name = name;
    c.dust.background_median_ug_m3 *= dust;
    c.dust.background_counts_m3 *= dust.powf(c.dust.counts_exponent);
    c.dust.calima_rate_per_day_summer *= calima;
    c.dust.calima_rate_per_day_other *= calima;
    c.dust.calima_peak_median_ug_m3 *= peak;
    c.humidity.humid_episodes_per_year *= humid;
    c.humidity.fair_rh_median_pct = (c.humidity.fair_rh_median_pct * rh).min(75.0);
    c.wind.median_m_s *= wind;
    c.temperature.annual_mean_c += temperature;
    c
}

/// Counts calima events from successive dust readings with the hub's rule
/// (`cloud-hub/src/ingest/exposure.rs`): an event starts when dust reaches
/// [`CALIMA_START_UG_M3`] outside an event and ends when it falls below
/// [`CALIMA_END_UG_M3`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CalimaCounter {
    in_event: bool,
    /// Events started so far.
    pub events: u32,
}

impl CalimaCounter {
    /// Folds one reading in; returns whether an event started.
    pub fn observe(&mut self, dust_ug_m3: f64) -> bool {
        if !self.in_event && dust_ug_m3 >= CALIMA_START_UG_M3 {
            self.in_event = true;
            self.events += 1;
            true
        } else {
            if self.in_event && dust_ug_m3 < CALIMA_END_UG_M3 {
                self.in_event = false;
            }
            false
        }
    }
}

/// Runs the simulation and writes the table to `config.out`.
pub fn run(config: &SimulateConfig) -> Result<SimulateSummary> {
    let started = Instant::now();
    let climates = config.validate()?;
    let tables = run_sites(config, climates)?;
    let rows = write_table(&config.out, &tables)?;
    Ok(SimulateSummary {
        rows,
        sites: tables.into_iter().map(|t| t.summary).collect(),
        elapsed: started.elapsed(),
    })
}

/// Simulates the sites on up to `available_parallelism` threads.
fn run_sites(config: &SimulateConfig, climates: Vec<SiteClimate>) -> Result<Vec<SiteTable>> {
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, climates.len());
    let jobs: Vec<(usize, SiteClimate)> = climates.into_iter().enumerate().collect();
    let mut results: Vec<Option<Result<SiteTable>>> = (0..jobs.len()).map(|_| None).collect();
    for chunk in jobs.chunks(workers) {
        std::thread::scope(|scope| {
            let handles: Vec<_> = chunk
                .iter()
                .map(|(i, climate)| {
                    (
                        *i,
                        climate.name.clone(),
                        scope.spawn(|| simulate_site(config, climate)),
                    )
                })
                .collect();
            for (i, site, handle) in handles {
                results[i] = Some(handle.join().unwrap_or(Err(SimulateError::Worker { site })));
            }
        });
    }
    results
        .into_iter()
        .map(|r| {
            r.unwrap_or_else(|| {
                Err(SimulateError::Worker {
                    site: String::new(),
                })
            })
        })
        .collect()
}

/// A segment's draws and maintenance plan.
struct SegmentPlan {
    init: SegmentInit,
    figure_error_nm: f64,
    cleaning: Option<CleaningPolicy>,
    next_cleaning_s: f64,
}

/// What is tracked per segment between rows.
#[derive(Default)]
struct Tracker {
    /// Last reflectometer reading at 650 nm and its time, Unix s.
    last_measurement: Option<(f64, f64)>,
    /// Hub calima count at the last maintenance.
    calima_at_maintenance: u32,
    /// Reflectivity recovered by maintenance since the last row, points.
    recovered: f64,
    /// True R650 at the last row.
    prev_r650: f64,
    /// Cumulative loss increments without recoveries, points.
    cumulative_loss: f64,
}

/// The simulated rows of one site.
struct SiteTable {
    summary: SiteSummary,
    segments: usize,
    /// `[day][segment]` features (NaN = missing), days with rows only.
    features: Vec<[f64; 20]>,
    /// True R650 per `[day][segment]`, days with rows only.
    reflectivity: Vec<f64>,
    /// `days_to_threshold` per `[day][segment]`.
    days_to_threshold: Vec<u32>,
    thresholds: Vec<f64>,
    start_unix_s: i64,
}

fn draw_plans(rng: &mut ChaCha8Rng, segments: u32, start_s: f64) -> Vec<SegmentPlan> {
    (0..segments)
        .map(|_| {
            let fresh650: f64 = rng.random_range(90.5..92.0);
            let shift = fresh650 - Reflectivity::FRESH_ALUMINIUM.nm650;
            let fresh = Reflectivity::from_array(
                Reflectivity::FRESH_ALUMINIUM
                    .to_array()
                    .map(|v| v + shift + rng.random_range(-0.15..0.15)),
            );
            let fresh = Reflectivity {
                nm650: fresh650,
                ..fresh
            };
            let coating_age_days: f64 = rng.random_range(0.0..1000.0);
            let days_since_cleaning = rng.random_range(0.0..60.0_f64).min(coating_age_days);
            let init = SegmentInit {
                fresh,
                coating_age_days,
                days_since_cleaning,
                microroughness_angstrom: rng.random_range(10.0..30.0),
                initial_loss_650: None,
            };
            let figure_error_nm = (12.5 + 2.5 * normal(rng)).clamp(8.0, 18.0);
            let method = if rng.random_bool(0.7) {
                CleaningMethod::Co2Snow
            } else {
                CleaningMethod::Wash
            };
            let class: f64 = rng.random();
            let cleaning = if class < 0.25 {
                Some((rng.random_range(20.0..35.0), 5.0))
            } else if class < 0.60 {
                Some((rng.random_range(40.0..60.0), 15.0))
            } else if class < 0.85 {
                Some((rng.random_range(90.0..150.0), 30.0))
            } else {
                None
            }
            .map(|(interval_days, jitter_days)| CleaningPolicy {
                method,
                interval_days,
                jitter_days,
            });
            let next_cleaning_s = cleaning.as_ref().map_or(f64::INFINITY, |c| {
                start_s + rng.random_range(0.1..1.0) * c.interval_days * DAY_S
            });
            SegmentPlan {
                init,
                figure_error_nm,
                cleaning,
                next_cleaning_s,
            }
        })
        .collect()
}

fn normal(rng: &mut ChaCha8Rng) -> f64 {
    // Box–Muller; 1 − u keeps the logarithm finite.
    let u: f64 = 1.0 - rng.random::<f64>();
    let v: f64 = rng.random();
    (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
}

fn simulate_site(config: &SimulateConfig, climate: &SiteClimate) -> Result<SiteTable> {
    let site = climate.name.clone();
    let seed = site_seed(config.seed, &site);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(11);
    let defaults = EnvironmentConfig::default();
    let start_unix_s = defaults.start_unix_s;
    let first_row_s = start_unix_s as f64 + f64::from(ROW_HOUR_UTC) * 3600.0;
    let mut plans = draw_plans(&mut rng, config.segments, first_row_s);
    let reflectometer_days = [28.0, 42.0, 56.0][rng.random_range(0..3usize)];
    let env_config = EnvironmentConfig {
        seed,
        segments: config.segments,
        climate: climate.clone(),
        maintenance: MaintenancePolicy {
            cleaning: None,
            recoat: Some(RecoatPolicy::default()),
            reflectometer_interval_days: Some(reflectometer_days),
            measure_after_maintenance: true,
            min_sun_elevation_deg: MAINTENANCE_MIN_SUN_DEG,
        },
        initial_segments: plans.iter().map(|p| p.init.clone()).collect(),
        ..defaults
    };
    let mut env = Environment::new(env_config).map_err(|source| SimulateError::Environment {
        site: site.clone(),
        source,
    })?;

    let n = config.segments as usize;
    let row_days = config.days() as usize;
    let total_days = row_days + config.horizon_days as usize;
    let mut trackers: Vec<Tracker> = env
        .state()
        .segments
        .iter()
        .map(|s| Tracker {
            prev_r650: s.reflectivity.nm650,
            ..Tracker::default()
        })
        .collect();
    let mut calima = CalimaCounter::default();
    let mut summary = SiteSummary {
        site: site.clone(),
        seed,
        rows: row_days * n,
        cleanings: 0,
        recoats: 0,
        calima_events: 0,
    };
    let mut features = Vec::with_capacity(row_days * n);
    let mut reflectivity = Vec::with_capacity(row_days * n);
    let mut cumulative = Vec::with_capacity(total_days * n);
    let mut thresholds = Vec::with_capacity(n);
    for s in &env.state().segments {
        thresholds.push((s.fresh.nm650 - THRESHOLD_DROP_POINTS).max(THRESHOLD_FLOOR_PCT));
    }

    // The first row is at 12:00 on the first day; then every 24 h.
    let mut steps_to_row = ROW_HOUR_UTC * 3600 / STEP_S as u32;
    for day in 0..total_days {
        for _ in 0..steps_to_row {
            env.step(STEP_S);
            absorb_events(&mut env, &mut trackers, &calima, &mut summary);
            calima.observe(env.state().weather.dust_ug_m3);
        }
        steps_to_row = STEPS_PER_DAY;
        if day < row_days {
            summary.calima_events = calima.events;
        }
        run_due_cleanings(&mut env, &mut plans, &mut rng, &mut summary.cleanings).map_err(
            |source| SimulateError::Environment {
                site: site.clone(),
                source,
            },
        )?;
        absorb_events(&mut env, &mut trackers, &calima, &mut summary);

        let state = env.state();
        let now_s = state.unix_seconds();
        for (i, seg) in state.segments.iter().enumerate() {
            let t = &mut trackers[i];
            let r = seg.reflectivity.nm650;
            // Loss since the last row with the maintenance recoveries added
            // back; never negative (the buckets only grow between maintenance).
            t.cumulative_loss += (t.prev_r650 - r + t.recovered).max(0.0);
            t.recovered = 0.0;
            t.prev_r650 = r;
            cumulative.push(t.cumulative_loss);
            if day < row_days {
                reflectivity.push(r);
                features.push(feature_row(seg, &plans[i], t, calima.events, now_s));
            }
        }
    }

    let days_to_threshold = counterfactual_days(
        &reflectivity,
        &cumulative,
        &thresholds,
        n,
        config.horizon_days,
    );
    Ok(SiteTable {
        summary,
        segments: n,
        features,
        reflectivity,
        days_to_threshold,
        thresholds,
        start_unix_s,
    })
}

/// Cleans every segment whose cleaning is due, when the dome is closed in daylight.
fn run_due_cleanings(
    env: &mut Environment,
    plans: &mut [SegmentPlan],
    rng: &mut ChaCha8Rng,
    cleanings: &mut u32,
) -> std::result::Result<(), SimError> {
    let state = env.state();
    let now_s = state.unix_seconds();
    if state.dome.percent_open > 0.0 || state.sun_elevation_deg < MAINTENANCE_MIN_SUN_DEG {
        return Ok(());
    }
    for (i, plan) in plans.iter_mut().enumerate() {
        let Some(policy) = plan.cleaning.as_ref() else {
            continue;
        };
        if now_s < plan.next_cleaning_s {
            continue;
        }
        env.clean_now(i as u32 + 1)?;
        *cleanings += 1;
        let days = (policy.interval_days
            + rng.random_range(-policy.jitter_days..=policy.jitter_days))
        .max(1.0);
        plan.next_cleaning_s = now_s + days * DAY_S;
    }
    Ok(())
}

/// Applies the events since the last drain to the trackers.
fn absorb_events(
    env: &mut Environment,
    trackers: &mut [Tracker],
    calima: &CalimaCounter,
    summary: &mut SiteSummary,
) {
    for event in env.drain_events() {
        match event {
            Event::Cleaning {
                segment,
                before,
                after,
                ..
            }
            | Event::Recoat {
                segment,
                before,
                after,
                ..
            } => {
                if matches!(event, Event::Recoat { .. }) {
                    summary.recoats += 1;
                }
                if let Some(t) = tracker(trackers, segment) {
                    t.recovered += (after.nm650 - before.nm650).max(0.0);
                    t.calima_at_maintenance = calima.events;
                }
            }
            Event::ReflectometerMeasurement {
                at_unix_ns,
                segment,
                values,
            } => {
                if let Some(t) = tracker(trackers, segment) {
                    t.last_measurement = Some((values.nm650, at_unix_ns as f64 / 1e9));
                }
            }
            _ => {}
        }
    }
}

fn tracker(trackers: &mut [Tracker], segment: u32) -> Option<&mut Tracker> {
    segment
        .checked_sub(1)
        .and_then(|i| trackers.get_mut(i as usize))
}

/// The feature vector of one segment now, in [`FEATURE_COLUMNS`] order.
fn feature_row(
    seg: &crate::sim::SegmentState,
    plan: &SegmentPlan,
    t: &Tracker,
    calima_events: u32,
    now_s: f64,
) -> [f64; 20] {
    let c = &seg.since_cleaning;
    let r = &seg.since_recoat;
    let (last_r, last_age) = match t.last_measurement {
        Some((value, at_s)) => (value, (now_s - at_s) / DAY_S),
        None => (f64::NAN, f64::NAN),
    };
    let phase = std::f64::consts::TAU * sun::day_of_year(now_s) / sun::YEAR_DAYS;
    [
        seg.days_since_recoat,
        seg.fresh.nm650,
        seg.traits.microroughness_angstrom,
        plan.figure_error_nm,
        f64::from(seg.traits.ring),
        seg.days_since_cleaning,
        seg.days_since_recoat,
        f64::from(seg.cleanings_since_recoat),
        c.open_dome_hours,
        c.dust_dose_ug_m3_h,
        f64::from(calima_events.saturating_sub(t.calima_at_maintenance)),
        c.humid_hours,
        c.dew_risk_hours,
        r.dust_dose_ug_m3_h,
        r.humid_hours,
        r.dew_risk_hours,
        last_r,
        last_age,
        phase.sin(),
        phase.cos(),
    ]
}

/// `days_to_threshold` for every row (see the module docs). `cumulative` is
/// `[day][segment]` over rows and the horizon tail; `reflectivity` over rows.
fn counterfactual_days(
    reflectivity: &[f64],
    cumulative: &[f64],
    thresholds: &[f64],
    n: usize,
    horizon: u32,
) -> Vec<u32> {
    let days = reflectivity.len() / n.max(1);
    let total_days = cumulative.len() / n.max(1);
    let mut out = Vec::with_capacity(reflectivity.len());
    let mut series = vec![0.0; total_days];
    let mut per_segment = vec![vec![0u32; days]; n];
    for (s, result) in per_segment.iter_mut().enumerate() {
        for (d, v) in series.iter_mut().enumerate() {
            *v = cumulative[d * n + s];
        }
        for (d, slot) in result.iter_mut().enumerate() {
            let margin = reflectivity[d * n + s] - thresholds[s];
            if margin < 0.0 {
                continue;
            }
            let last = (d + horizon as usize).min(total_days - 1);
            // D is non-decreasing: the first day the loss exceeds the margin.
            let window = &series[d + 1..=last];
            let k = window.partition_point(|&v| v - series[d] <= margin);
            *slot = if k < window.len() {
                (k + 1) as u32
            } else {
                horizon
            };
        }
    }
    for d in 0..days {
        for seg in &per_segment {
            out.push(seg[d]);
        }
    }
    out
}

fn write_table(path: &Path, tables: &[SiteTable]) -> Result<usize> {
    let io = |source| SimulateError::Io {
        path: path.to_path_buf(),
        source,
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    let file = std::fs::File::create(path).map_err(io)?;
    let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
    let mut line = String::with_capacity(512);
    line.push_str("site,segment,day");
    for c in FEATURE_COLUMNS.iter().chain(TARGET_COLUMNS.iter()) {
        line.push(',');
        line.push_str(c);
    }
    line.push('\n');
    w.write_all(line.as_bytes()).map_err(io)?;
    let mut rows = 0;
    for table in tables {
        let n = table.segments;
        let start_day = table.start_unix_s.div_euclid(86_400);
        for (k, f) in table.features.iter().enumerate() {
            let (day, seg) = (k / n, k % n);
            line.clear();
            let _ = write!(
                line,
                "{},{},{}",
                table.summary.site,
                seg + 1,
                iso_date(start_day + day as i64)
            );
            for (j, v) in f.iter().enumerate() {
                line.push(',');
                if v.is_finite() {
                    let _ = match j {
                        4 | 7 | 10 => write!(line, "{v:.0}"),
                        18 | 19 => write!(line, "{v:.6}"),
                        _ => write!(line, "{v:.4}"),
                    };
                }
            }
            let _ = writeln!(
                line,
                ",{:.4},{},{:.4}",
                table.reflectivity[k], table.days_to_threshold[k], table.thresholds[seg]
            );
            w.write_all(line.as_bytes()).map_err(io)?;
            rows += 1;
        }
    }
    w.flush().map_err(io)?;
    Ok(rows)
}

/// ISO date (`YYYY-MM-DD`) of a day count since 1970-01-01 (proleptic Gregorian).
pub fn iso_date(days_since_epoch: i64) -> String {
    // Howard Hinnant's civil_from_days.
    let z = days_since_epoch + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_dates() {
        assert_eq!(iso_date(0), "1970-01-01");
        assert_eq!(iso_date(20_089), "2025-01-01");
        assert_eq!(iso_date(20_089 + 59), "2025-03-01");
        assert_eq!(iso_date(19_782), "2024-02-29");
    }

    #[test]
    fn calima_counter_follows_the_hub_hysteresis() {
        let mut c = CalimaCounter::default();
        for d in [5.0, 25.0, 15.0, 22.0, 5.0, 21.0, 19.0, 11.9, 12.0, 20.0] {
            c.observe(d);
        }
        assert_eq!(c.events, 3);
    }

    #[test]
    fn site_seeds_differ_per_site_and_seed() {
        let a = site_seed(1, "la_palma");
        assert_ne!(a, site_seed(1, "dusty_desert"));
        assert_ne!(a, site_seed(2, "la_palma"));
        assert_eq!(a, site_seed(1, "la_palma"));
    }

    #[test]
    fn counterfactual_days_use_the_cumulative_loss() {
        // one segment, threshold 88, R = 90 on day 0, loss 0.5/day.
        let cumulative: Vec<f64> = (0..10).map(|d| 0.5 * f64::from(d)).collect();
        let reflectivity = vec![90.0, 89.5, 87.0];
        let days = counterfactual_days(&reflectivity, &cumulative, &[88.0], 1, 5);
        // day 0: margin 2 → crossed when D(d') − D(0) > 2 → d' = 5.
        assert_eq!(days, vec![5, 4, 0]);
        let capped = counterfactual_days(&reflectivity, &cumulative, &[88.0], 1, 3);
        assert_eq!(capped, vec![3, 3, 0]);
    }
}

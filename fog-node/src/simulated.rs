//! The simulated device source of `fog-node run`: a dedicated thread that
//! steps the environment model by `tick × time_scale` simulated seconds
//! every `tick` of wall time, samples the simulated devices at the
//! simulated time and sends the samples to the spool writer (waiting while
//! its channel is full). Scripted events (`simulation.inject`) fire when
//! simulated time reaches them.

use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::config::{InjectEvent, InjectKind, SimulationConfig};
use crate::devices::{DeviceConfig, Devices};
use crate::error::{Error, Result};
use crate::sim::{Environment, EnvironmentConfig, SiteClimate};
use crate::spool_writer::SampleSender;
use crate::timefmt::{now_unix_ns, parse_rfc3339_ns};

const NS: i64 = 1_000_000_000;
/// Default length of an injected calima, hours.
const CALIMA_HOURS: f64 = 48.0;
/// Default peak of an injected calima, µg/m³.
const CALIMA_PEAK: f64 = 150.0;

/// The environment and devices of a simulated site, stepped by the caller.
pub struct SimulatedSite {
    env: Environment,
    devices: Devices,
    segments: u32,
    start_ns: i64,
    /// Where the simulation stops (`simulation.end_after_days`).
    end_ns: Option<i64>,
    dt_s: f64,
    /// Clean / recoat events not fired yet, latest first.
    pending: Vec<InjectEvent>,
}

impl SimulatedSite {
    /// Builds the site for `config` with `segments` mirror segments.
    pub fn new(config: &SimulationConfig, segments: u32) -> Result<Self> {
        let bad = |field: &str, reason: String| Error::config(field, reason);
        let start_ns = match &config.start {
            Some(start) => parse_rfc3339_ns(start).map_err(|r| bad("simulation.start", r))?,
            None => now_unix_ns(),
        };
        let climate = SiteClimate::preset(&config.climate).ok_or_else(|| {
            bad(
                "simulation.climate",
                format!("unknown preset {:?}", config.climate),
            )
        })?;
        let mut env = Environment::new(EnvironmentConfig {
            seed: config.seed,
            start_unix_s: start_ns.div_euclid(NS),
            segments,
            climate,
            ..EnvironmentConfig::default()
        })
        .map_err(|e| bad("simulation", e.to_string()))?;
        let mut devices = DeviceConfig {
            segments,
            seed: config.seed,
            weather_hz: config.rates.weather_hz,
            dome_hz: config.rates.dome_hz,
            mount_hz: config.rates.mount_hz,
            segment_hz: config.rates.segment_hz,
            max_catch_up: config.rates.max_catch_up,
            ..DeviceConfig::default()
        };
        devices.camera.fits_dir = config.fits_dir.clone();
        let devices = Devices::new(devices).map_err(|e| bad("simulation", e.to_string()))?;
        let start_s = start_ns.div_euclid(NS);
        let mut pending = Vec::new();
        for event in &config.inject {
            let at_s = start_s + (event.at_sim_day * 86_400.0).round() as i64;
            match event.kind {
                InjectKind::Calima => env
                    .force_calima(
                        at_s,
                        event.duration_h.unwrap_or(CALIMA_HOURS) * 3600.0,
                        event.peak.unwrap_or(CALIMA_PEAK),
                    )
                    .map_err(|e| bad("simulation.inject", e.to_string()))?,
                InjectKind::Clean | InjectKind::Recoat => {
                    if let Some(segment) = event.segment
                        && segment > segments
                    {
                        return Err(bad(
                            "simulation.inject",
                            format!("segment {segment} does not exist (1..={segments})"),
                        ));
                    }
                    pending.push(event.clone());
                }
            }
        }
        pending.sort_by(|a, b| b.at_sim_day.total_cmp(&a.at_sim_day));
        Ok(SimulatedSite {
            env,
            devices,
            segments,
            start_ns,
            end_ns: config
                .end_after_days
                .map(|days| start_ns + (days * 86_400.0 * NS as f64).round() as i64),
            dt_s: config.tick_ms as f64 / 1000.0 * config.time_scale,
            pending,
        })
    }

    /// The samples due at the current simulated time, without stepping.
    pub fn initial_samples(&mut self) -> Vec<obs_proto::v1::Sample> {
        let now = self.env.state().time_unix_ns;
        self.devices.sample(self.env.state(), &[], now)
    }

    /// Advances one tick and returns the samples it produced.
    pub fn tick(&mut self) -> Vec<obs_proto::v1::Sample> {
        let dt_s = match self.end_ns {
            Some(end) => self
                .dt_s
                .min((end - self.env.state().time_unix_ns) as f64 / NS as f64),
            None => self.dt_s,
        };
        if dt_s <= 0.0 {
            return Vec::new();
        }
        self.env.step(dt_s);
        let now = self.env.state().time_unix_ns;
        let sim_day = (now - self.start_ns) as f64 / (86_400.0 * NS as f64);
        while self.pending.last().is_some_and(|e| e.at_sim_day <= sim_day) {
            let Some(event) = self.pending.pop() else {
                break;
            };
            let targets: Vec<u32> = match event.segment {
                Some(segment) => vec![segment],
                None => (1..=self.segments).collect(),
            };
            for segment in targets {
                let result = match event.kind {
                    InjectKind::Recoat => self.env.recoat_now(segment),
                    _ => self.env.clean_now(segment),
                };
                if let Err(error) = result {
                    tracing::warn!(%error, segment, "scripted maintenance failed");
                }
            }
            tracing::info!(kind = ?event.kind, segment = ?event.segment, sim_day, "scripted event fired");
        }
        let events: Vec<_> = self.env.drain_events().collect();
        self.devices.sample(self.env.state(), &events, now)
    }

    /// Simulated time, Unix ns.
    pub fn now_unix_ns(&self) -> i64 {
        self.env.state().time_unix_ns
    }

    /// Whether the simulation reached `simulation.end_after_days`.
    pub fn finished(&self) -> bool {
        self.end_ns.is_some_and(|end| self.now_unix_ns() >= end)
    }
}

/// Starts the device thread; it ends when `stop` is cancelled or the
/// writer is gone, and drops its sender then.
pub fn spawn(
    config: &SimulationConfig,
    segments: u32,
    samples: SampleSender,
    stop: CancellationToken,
) -> Result<JoinHandle<()>> {
    let mut site = SimulatedSite::new(config, segments)?;
    let tick = Duration::from_millis(config.tick_ms);
    tracing::info!(
        segments,
        climate = config.climate,
        time_scale = config.time_scale,
        start = crate::timefmt::rfc3339_from_ns(site.now_unix_ns()),
        "simulated devices starting"
    );
    std::thread::Builder::new()
        .name("sim-devices".into())
        .spawn(move || {
            let first = site.initial_samples();
            if !first.is_empty() && samples.blocking_send(first).is_err() {
                return;
            }
            let mut next = Instant::now() + tick;
            while !stop.is_cancelled() {
                if !sleep_until(next, &stop) {
                    break;
                }
                let batch = site.tick();
                if !batch.is_empty() && samples.blocking_send(batch).is_err() {
                    tracing::info!("spool writer gone, simulated devices stop");
                    break;
                }
                if site.finished() {
                    tracing::info!(
                        sim_time = crate::timefmt::rfc3339_from_ns(site.now_unix_ns()),
                        "simulation reached simulation.end_after_days; the node keeps delivering its backlog"
                    );
                    break;
                }
                next += tick;
                let now = Instant::now();
                if now > next + tick * 10 {
                    tracing::warn!(
                        behind_ms = u64::try_from((now - next).as_millis()).unwrap_or(u64::MAX),
                        "simulated devices fall behind wall time, skipping ahead"
                    );
                    next = now;
                }
            }
            tracing::info!(
                sim_time = crate::timefmt::rfc3339_from_ns(site.now_unix_ns()),
                "simulated devices stopped"
            );
        })
        .map_err(|e| Error::Task {
            task: "simulated devices",
            reason: format!("cannot start its thread: {e}"),
        })
}

/// Sleeps until `deadline` in short slices; false if `stop` came first.
fn sleep_until(deadline: Instant, stop: &CancellationToken) -> bool {
    loop {
        if stop.is_cancelled() {
            return false;
        }
        let now = Instant::now();
        if now >= deadline {
            return true;
        }
        std::thread::sleep((deadline - now).min(Duration::from_millis(50)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_advance_simulated_time_by_tick_times_scale_and_fire_injects() {
        let config = SimulationConfig {
            start: Some("2025-06-15T00:00:00Z".into()),
            time_scale: 3600.0,
            tick_ms: 1000,
            inject: vec![InjectEvent {
                at_sim_day: 0.1,
                kind: InjectKind::Clean,
                segment: Some(3),
                duration_h: None,
                peak: None,
            }],
            ..SimulationConfig::default()
        };
        let mut site = SimulatedSite::new(&config, 6).unwrap();
        let t0 = site.now_unix_ns();
        assert_eq!(t0, 1_749_945_600 * NS);
        assert!(!site.initial_samples().is_empty());
        let mut cleaning = Vec::new();
        for _ in 0..3 {
            let samples = site.tick();
            assert!(
                samples
                    .iter()
                    .all(|s| s.ts_unix_ns > t0 && s.ts_unix_ns <= site.now_unix_ns())
            );
            cleaning.extend(
                samples
                    .into_iter()
                    .filter(|s| s.device == "m1/maintenance/1" && s.attribute == "event"),
            );
        }
        assert_eq!(site.now_unix_ns() - t0, 3 * 3600 * NS);
        assert_eq!(cleaning.len(), 1, "the scripted cleaning is reported once");
        let text = format!("{:?}", cleaning[0].value);
        assert!(text.contains("\\\"segment\\\":3"), "{text}");
    }

    #[test]
    fn the_simulation_stops_exactly_at_its_end() {
        let config = SimulationConfig {
            start: Some("2025-06-15T00:00:00Z".into()),
            time_scale: 3600.0,
            tick_ms: 1000,
            end_after_days: Some(0.1),
            ..SimulationConfig::default()
        };
        let mut site = SimulatedSite::new(&config, 6).unwrap();
        let t0 = site.now_unix_ns();
        site.initial_samples();
        for _ in 0..2 {
            assert!(!site.finished());
            assert!(!site.tick().is_empty());
        }
        assert!(!site.finished());
        let last = site.tick();
        assert!(site.finished());
        assert_eq!(site.now_unix_ns() - t0, 8640 * NS, "a short last step");
        assert!(last.iter().all(|s| s.ts_unix_ns <= t0 + 8640 * NS));
        assert!(site.tick().is_empty(), "nothing after the end");
        assert_eq!(site.now_unix_ns() - t0, 8640 * NS);
    }

    #[test]
    fn lower_rates_sample_an_accelerated_tick_completely() {
        use crate::config::DeviceRates;
        let config = SimulationConfig {
            start: Some("2025-06-15T00:00:00Z".into()),
            time_scale: 3600.0,
            tick_ms: 1000,
            rates: DeviceRates {
                weather_hz: 1.0 / 120.0,
                dome_hz: 1.0 / 120.0,
                mount_hz: 0.0,
                segment_hz: 1.0 / 600.0,
                max_catch_up: 60,
            },
            ..SimulationConfig::default()
        };
        let mut site = SimulatedSite::new(&config, 18).unwrap();
        site.initial_samples();
        let samples = site.tick();
        let count = |device: &str, attribute: &str| {
            samples
                .iter()
                .filter(|s| s.device == device && s.attribute == attribute)
                .count()
        };
        // One simulated hour: every 2 minutes, every 10 minutes, never.
        assert_eq!(count("weather/station/1", "dust_concentration"), 30);
        assert_eq!(count("dome/shutter/1", "percentage_open"), 30);
        assert_eq!(count("m1/segment/07", "glass_temperature"), 6);
        assert_eq!(count("mount/azimuth/1", "position"), 0);
        assert_eq!(site.devices.stats().skipped, 0, "nothing skipped");
    }
}

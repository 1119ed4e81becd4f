//! The demo's three telescopes and the `fog-node run` configuration each
//! gets: its climate, seed, accelerated clock, device rates and the
//! scripted events (a calima at one site, a cleaning at another).

use std::path::Path;

/// Mirror segments per telescope (6 in the inner ring, 12 in the outer).
pub const SEGMENTS: u32 = 18;
/// Segments in the inner ring (positions 1-6).
pub const INNER_RING: u32 = 6;
/// Node id of every demo fog-node.
pub const NODE_ID: &str = "fog-1";

/// Simulated seconds covered by one tick at most: at one hour, the device
/// rates below stay within `max_catch_up` samples per tick.
const MAX_TICK_SIM_S: f64 = 3600.0;
/// Wall time between two simulation steps, bounds.
const TICK_MS: (u64, u64) = (50, 1000);

/// Device rates of the demo nodes, Hz of simulated time: weather and dome
/// every 2 minutes (the hub holds an input for at most 120 s when it
/// integrates exposure), mount and segment sensors every 10 minutes. About
/// 19 000 samples per simulated day and telescope.
const WEATHER_HZ: f64 = 1.0 / 120.0;
const DOME_HZ: f64 = 1.0 / 120.0;
const MOUNT_HZ: f64 = 1.0 / 600.0;
const SEGMENT_HZ: f64 = 1.0 / 600.0;

/// A scripted event, placed at a fraction of the demo's simulated days so
/// that a short run has it too.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scripted {
    /// A Saharan dust episode: starts at `at` × days, lasts `hours` (at most
    /// a third of the run), peaks at `peak_ug_m3`.
    Calima {
        at: f64,
        hours: f64,
        peak_ug_m3: f64,
    },
    /// Site staff clean every segment at `at` × days; the fog-node reports
    /// it and the hub records it as `site:<site>` maintenance.
    Cleaning { at: f64 },
}

/// One demo telescope.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Telescope {
    /// Site id.
    pub site: &'static str,
    /// Display name.
    pub name: &'static str,
    pub latitude_deg: f64,
    pub longitude_deg: f64,
    pub altitude_m: f64,
    /// `fog-node` climate preset.
    pub climate: &'static str,
    /// Seed of the site's simulation.
    pub seed: u64,
    pub scripted: Option<Scripted>,
}

/// The three telescopes of the demo: two on the Canaries in the La Palma
/// climate (one cleaned half-way through), and Calar Alto in Almería, a
/// dusty desert-margin site that Saharan dust reaches often, with a calima.
pub const TELESCOPES: [Telescope; 3] = [
    Telescope {
        site: "lapalma",
        name: "Roque de los Muchachos, La Palma",
        latitude_deg: 28.7606,
        longitude_deg: -17.8814,
        altitude_m: 2396.0,
        climate: "la_palma",
        seed: 11,
        scripted: Some(Scripted::Cleaning { at: 0.5 }),
    },
    Telescope {
        site: "tenerife",
        name: "Teide Observatory, Tenerife",
        latitude_deg: 28.3003,
        longitude_deg: -16.5122,
        altitude_m: 2390.0,
        climate: "la_palma",
        seed: 23,
        scripted: None,
    },
    Telescope {
        site: "calaralto",
        name: "Calar Alto, Almería",
        latitude_deg: 37.2236,
        longitude_deg: -2.5463,
        altitude_m: 2168.0,
        climate: "dusty_desert",
        seed: 37,
        scripted: Some(Scripted::Calima {
            at: 0.25,
            hours: 48.0,
            peak_ug_m3: 250.0,
        }),
    },
];

/// The demo's accelerated clock.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Clock {
    /// Simulated start, Unix seconds.
    pub start_unix_s: i64,
    /// Simulated days to run.
    pub days: f64,
    /// Simulated seconds per wall second.
    pub time_scale: f64,
    /// Wall milliseconds per simulation step.
    pub tick_ms: u64,
}

impl Clock {
    /// `days` simulated days in `minutes` wall minutes from `start_unix_s`.
    pub fn new(start_unix_s: i64, days: f64, minutes: f64) -> Clock {
        let time_scale = days * 86_400.0 / (minutes * 60.0);
        let tick_ms =
            ((MAX_TICK_SIM_S / time_scale * 1000.0).floor() as u64).clamp(TICK_MS.0, TICK_MS.1);
        Clock {
            start_unix_s,
            days,
            time_scale,
            tick_ms,
        }
    }

    /// The simulated end, Unix seconds.
    pub fn end_unix_s(&self) -> i64 {
        self.start_unix_s + (self.days * 86_400.0).round() as i64
    }

    /// Simulated days between the start and `unix_s`.
    pub fn day_of(&self, unix_s: i64) -> f64 {
        (unix_s - self.start_unix_s) as f64 / 86_400.0
    }
}

/// `text` as a TOML string (quoted and escaped).
fn toml_str(text: &str) -> String {
    toml::Value::String(text.to_owned()).to_string()
}

/// RFC 3339 of `unix_s` (UTC).
pub fn rfc3339(unix_s: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix_s)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| unix_s.to_string())
}

impl Scripted {
    /// The `[[simulation.inject]]` entry for a run of `days`.
    fn inject_toml(&self, days: f64) -> String {
        match *self {
            Scripted::Calima {
                at,
                hours,
                peak_ug_m3,
            } => format!(
                "[[simulation.inject]]\nat_sim_day = {:?}\nkind = \"calima\"\nduration_h = {:?}\npeak = {:?}\n",
                at * days,
                hours.min(days * 24.0 / 3.0),
                peak_ug_m3
            ),
            Scripted::Cleaning { at } => format!(
                "[[simulation.inject]]\nat_sim_day = {:?}\nkind = \"clean\"\n",
                at * days
            ),
        }
    }

    /// In words, for a run of `days`.
    pub fn describe(&self, days: f64) -> String {
        match *self {
            Scripted::Calima {
                at,
                hours,
                peak_ug_m3,
            } => format!(
                "calima on day {:.1} ({:.0} h, peak {peak_ug_m3:.0} µg/m³)",
                at * days,
                hours.min(days * 24.0 / 3.0)
            ),
            Scripted::Cleaning { at } => {
                format!("all segments cleaned on day {:.1}", at * days)
            }
        }
    }
}

impl Telescope {
    /// The `fog-node run` configuration of this telescope; with `stop`,
    /// its simulation ends after the clock's days.
    pub fn node_config(&self, state_dir: &Path, clock: &Clock, stop: bool) -> String {
        let mut text = format!(
            "# fog-node of the demo telescope {site} ({name}); written by `cloud-hub demo`.\n\
             state_dir = {state_dir}\n\n\
             [spool]\nsegment_bytes = 16777216\nmax_bytes = 1073741824\n\n\
             [batching]\nmax_samples = 2000\nmax_delay_ms = 1000\n\n\
             [uplink]\nbackoff_min_ms = 200\nbackoff_max_ms = 2000\nstatus_interval_ms = 2000\n\n\
             [simulation]\nenabled = true\nclimate = {climate}\nseed = {seed}\n\
             time_scale = {time_scale:?}\ntick_ms = {tick_ms}\nsegments = {SEGMENTS}\nstart = {start}\n{end}\n\
             [simulation.rates]\nweather_hz = {WEATHER_HZ:?}\ndome_hz = {DOME_HZ:?}\n\
             mount_hz = {MOUNT_HZ:?}\nsegment_hz = {SEGMENT_HZ:?}\nmax_catch_up = 60\n\n",
            site = self.site,
            name = self.name,
            state_dir = toml_str(&state_dir.to_string_lossy()),
            climate = toml_str(self.climate),
            seed = self.seed,
            time_scale = clock.time_scale,
            tick_ms = clock.tick_ms,
            start = toml_str(&rfc3339(clock.start_unix_s)),
            end = if stop {
                format!("end_after_days = {:?}\n", clock.days)
            } else {
                String::new()
            },
        );
        if let Some(scripted) = &self.scripted {
            text.push_str(&scripted.inject_toml(clock.days));
            text.push('\n');
        }
        text.push_str("[tango]\nenabled = false\n\n[status]\ninterval_ms = 2000\n");
        text
    }

    /// Where it is, in words.
    pub fn coordinates(&self) -> String {
        let ns = if self.latitude_deg >= 0.0 { 'N' } else { 'S' };
        let ew = if self.longitude_deg >= 0.0 { 'E' } else { 'W' };
        format!(
            "{:.4}° {ns}, {:.4}° {ew}, {:.0} m",
            self.latitude_deg.abs(),
            self.longitude_deg.abs(),
            self.altitude_m
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_month_in_four_minutes_steps_at_most_an_hour_per_tick() {
        let clock = Clock::new(1_725_148_800, 30.0, 4.0);
        assert_eq!(clock.time_scale, 10_800.0);
        assert_eq!(clock.tick_ms, 333);
        assert!(clock.tick_ms as f64 / 1000.0 * clock.time_scale <= MAX_TICK_SIM_S);
        assert_eq!(clock.end_unix_s() - clock.start_unix_s, 30 * 86_400);
        // Real time at most one step a second.
        assert_eq!(Clock::new(0, 1.0, 1440.0).tick_ms, 1000);
    }

    #[test]
    fn the_node_config_has_the_clock_rates_and_scripted_event() {
        let clock = Clock::new(1_725_148_800, 6.0, 1.0);
        let text = TELESCOPES[2].node_config(Path::new("/tmp/a \"b\""), &clock, true);
        let value: toml::Table = toml::from_str(&text).unwrap();
        assert_eq!(value["state_dir"].as_str(), Some("/tmp/a \"b\""));
        let sim = value["simulation"].as_table().unwrap();
        assert_eq!(sim["time_scale"].as_float(), Some(8640.0));
        assert_eq!(sim["start"].as_str(), Some("2024-09-01T00:00:00Z"));
        assert_eq!(sim["end_after_days"].as_float(), Some(6.0));
        let rate = sim["rates"]["weather_hz"].as_float().unwrap();
        assert_eq!((1e9 / rate).round(), 120e9, "exactly every 120 s");
        let inject = sim["inject"].as_array().unwrap();
        assert_eq!(inject[0]["kind"].as_str(), Some("calima"));
        assert_eq!(inject[0]["at_sim_day"].as_float(), Some(1.5));
        assert_eq!(inject[0]["duration_h"].as_float(), Some(48.0));
        let short = Clock::new(0, 3.0, 1.0);
        let text = TELESCOPES[2].node_config(Path::new("/x"), &short, false);
        assert!(text.contains("duration_h = 24.0"), "{text}");
        assert!(!text.contains("end_after_days"), "runs on: {text}");
    }

    #[test]
    fn site_ids_are_valid_and_events_are_at_two_sites() {
        for t in &TELESCOPES {
            obs_common::site::validate_site_id(t.site).unwrap();
        }
        let calima = TELESCOPES
            .iter()
            .filter(|t| matches!(t.scripted, Some(Scripted::Calima { .. })))
            .count();
        let cleaning = TELESCOPES
            .iter()
            .filter(|t| matches!(t.scripted, Some(Scripted::Cleaning { .. })))
            .count();
        assert_eq!((calima, cleaning), (1, 1));
    }
}

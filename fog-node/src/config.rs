//! [`NodeConfig`]: everything `fog-node run` reads, layered as defaults →
//! TOML file → environment (`OBS_NODE__SECTION__KEY`) → [`NodeConfig::validate`].
//!
//! The identity (site, node id, hub and broker endpoints, certificates) is
//! not configuration: it comes from enrolment and lives in
//! `{state_dir}/identity/` (see [`crate::identity`]).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::sim::SiteClimate;
use crate::spool::{MAX_SEGMENT_BYTES, MIN_SEGMENT_BYTES, SpoolConfig};

/// Prefix of the environment variables that override the file.
pub const ENV_PREFIX: &str = "OBS_NODE";

/// Configuration of `fog-node run`. See the [module docs](self).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NodeConfig {
    /// Holds `identity/`, `spool/` and `status.json`.
    pub state_dir: PathBuf,
    /// Size bounds and group commit of the spool.
    pub spool: SpoolSettings,
    /// When the writer seals a batch.
    pub batching: BatchingConfig,
    /// The MQTT uplink to the hub.
    pub uplink: UplinkConfig,
    /// The simulated devices.
    pub simulation: SimulationConfig,
    /// The local listener for Tango device companions.
    pub tango: TangoConfig,
    /// The `status.json` writer.
    pub status: StatusConfig,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            state_dir: PathBuf::from("/var/lib/fog-node"),
            spool: SpoolSettings::default(),
            batching: BatchingConfig::default(),
            uplink: UplinkConfig::default(),
            simulation: SimulationConfig::default(),
            tango: TangoConfig::default(),
            status: StatusConfig::default(),
        }
    }
}

/// The spool knobs of [`SpoolConfig`] (its directory, site and node id come
/// from the state dir and the identity).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SpoolSettings {
    /// A segment file is sealed before it grows past this.
    pub segment_bytes: u64,
    /// Bound on all segment files; past it the oldest data is dropped and
    /// reported to the hub in a gap record.
    pub max_bytes: u64,
    /// Longest a sealed batch waits for its fsync (group commit).
    pub fsync_interval_ms: u64,
    /// Unsynced bytes after which the writer syncs at once.
    pub fsync_bytes: u64,
}

impl Default for SpoolSettings {
    fn default() -> Self {
        let spool = SpoolConfig::default();
        SpoolSettings {
            segment_bytes: spool.segment_bytes,
            max_bytes: spool.max_bytes,
            fsync_interval_ms: u64::try_from(spool.fsync_interval.as_millis()).unwrap_or(100),
            fsync_bytes: spool.fsync_bytes,
        }
    }
}

/// When the spool writer seals the samples it has gathered into a batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BatchingConfig {
    /// Seal as soon as this many samples are waiting.
    pub max_samples: usize,
    /// Seal when the oldest waiting sample has waited this long.
    pub max_delay_ms: u64,
    /// Messages (sample vectors) the writer's channel holds; a full channel
    /// makes producers wait (backpressure), nothing is dropped.
    pub channel_capacity: usize,
}

impl Default for BatchingConfig {
    fn default() -> Self {
        BatchingConfig {
            max_samples: 2000,
            max_delay_ms: 1000,
            channel_capacity: 64,
        }
    }
}

/// The MQTT uplink.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UplinkConfig {
    /// Batches published and not yet acknowledged by the hub, at most.
    pub window: usize,
    /// Without ack progress for this long, everything above the last ack
    /// is sent again.
    pub ack_timeout_ms: u64,
    /// Reconnect delay bounds; the delay is drawn uniformly from
    /// `[backoff_min_ms, min(backoff_max_ms, backoff_min_ms · 2^attempt)]`.
    pub backoff_min_ms: u64,
    /// Upper bound of the reconnect delay.
    pub backoff_max_ms: u64,
    /// Most batches per second (0 = unlimited), for thin uplinks catching up.
    pub max_batches_per_s: f64,
    /// Most payload bytes per second (0 = unlimited).
    pub max_bytes_per_s: u64,
    /// MQTT keep-alive.
    pub keep_alive_s: u64,
    /// Longest wait for the TCP + TLS + CONNACK exchange.
    pub connect_timeout_s: u64,
    /// How often the retained ONLINE status is refreshed.
    pub status_interval_ms: u64,
    /// Most payload bytes read from the spool per refill of the window.
    pub read_bytes: usize,
    /// On shutdown, how long the uplink may wait for acks of what is in flight.
    pub shutdown_grace_ms: u64,
}

impl Default for UplinkConfig {
    fn default() -> Self {
        UplinkConfig {
            window: 32,
            ack_timeout_ms: 10_000,
            backoff_min_ms: 500,
            backoff_max_ms: 60_000,
            max_batches_per_s: 0.0,
            max_bytes_per_s: 0,
            keep_alive_s: 30,
            connect_timeout_s: 10,
            status_interval_ms: 30_000,
            read_bytes: 4 * 1024 * 1024,
            shutdown_grace_ms: 3_000,
        }
    }
}

impl UplinkConfig {
    /// `ack_timeout_ms` as a duration.
    pub fn ack_timeout(&self) -> Duration {
        Duration::from_millis(self.ack_timeout_ms)
    }
}

/// What a scripted simulation event does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InjectKind {
    /// A forced calima (Saharan dust) episode.
    Calima,
    /// Clean a segment (or all).
    Clean,
    /// Recoat a segment (or all).
    Recoat,
}

/// One scripted event of the simulation, for demos.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InjectEvent {
    /// Simulated days after the simulation start.
    pub at_sim_day: f64,
    /// What happens.
    pub kind: InjectKind,
    /// Segment (1-based) for `clean` / `recoat`; all segments when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment: Option<u32>,
    /// Length of a calima, hours (default 48).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_h: Option<f64>,
    /// Peak dust of a calima, µg/m³ (default 150).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak: Option<f64>,
}

/// The simulated devices of `fog-node run`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SimulationConfig {
    /// Run the environment model and the simulated devices.
    pub enabled: bool,
    /// Climate preset: `la_palma`, `dusty_desert` or `humid_coastal`.
    pub climate: String,
    /// Seed of every random stream.
    pub seed: u64,
    /// Simulated seconds per wall-clock second (1 = real time, 720 = a
    /// month in an hour).
    pub time_scale: f64,
    /// Wall-clock time between two steps of the model.
    pub tick_ms: u64,
    /// Mirror segments; default: the enrolment's `mirror_segments`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub segments: Option<u32>,
    /// Simulated start time, RFC 3339; default: now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
    /// Simulated days after which the devices stop (the node keeps
    /// running and delivers its backlog); default: never.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_after_days: Option<f64>,
    /// Folder for one FITS file per simulated exposure; none by default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fits_dir: Option<PathBuf>,
    /// Scripted events (calima, cleaning, recoat).
    pub inject: Vec<InjectEvent>,
    /// Sampling rates of the simulated devices, in simulated time.
    pub rates: DeviceRates,
}

/// How often the simulated devices sample, in Hz of simulated time. At a
/// high `time_scale` the defaults (1 Hz) make a flood of samples and, past
/// `max_catch_up` per tick, leave gaps; lower rates keep an accelerated
/// run complete. The hub integrates exposure over gaps of at most 120 s, so
/// keep the weather station and the dome at 1/120 Hz or faster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeviceRates {
    /// Weather station (wind, humidity, dew point, dust), Hz.
    pub weather_hz: f64,
    /// Dome `percentage_open`, Hz.
    pub dome_hz: f64,
    /// Mount axes, Hz.
    pub mount_hz: f64,
    /// Mirror segment sensors (piston, tip, tilt, glass temperature), Hz.
    pub segment_hz: f64,
    /// Most samples per periodic device per tick; the rest are skipped and counted.
    pub max_catch_up: u32,
}

impl Default for DeviceRates {
    fn default() -> Self {
        let devices = crate::devices::DeviceConfig::default();
        DeviceRates {
            weather_hz: devices.weather_hz,
            dome_hz: devices.dome_hz,
            mount_hz: devices.mount_hz,
            segment_hz: devices.segment_hz,
            max_catch_up: devices.max_catch_up,
        }
    }
}

impl Default for SimulationConfig {
    fn default() -> Self {
        SimulationConfig {
            enabled: true,
            climate: "la_palma".to_owned(),
            seed: 1,
            time_scale: 1.0,
            tick_ms: 1000,
            segments: None,
            start: None,
            end_after_days: None,
            fits_dir: None,
            inject: Vec::new(),
            rates: DeviceRates::default(),
        }
    }
}

/// The Tango JSON adapter: a local plain-TCP MQTT listener.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TangoConfig {
    /// Start the listener.
    pub enabled: bool,
    /// Address to listen on; keep it on loopback (no TLS, no auth).
    pub listen: SocketAddr,
    /// Largest MQTT packet accepted.
    pub max_packet_bytes: usize,
    /// Most simultaneous client connections.
    pub max_connections: usize,
}

impl Default for TangoConfig {
    fn default() -> Self {
        TangoConfig {
            enabled: false,
            listen: SocketAddr::from(([127, 0, 0, 1], 1884)),
            max_packet_bytes: 64 * 1024,
            max_connections: 64,
        }
    }
}

/// The `status.json` writer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StatusConfig {
    /// How often `{state_dir}/status.json` is rewritten.
    pub interval_ms: u64,
}

impl Default for StatusConfig {
    fn default() -> Self {
        StatusConfig { interval_ms: 2000 }
    }
}

impl NodeConfig {
    /// Loads defaults, then `file`, then `OBS_NODE__...` variables, and
    /// validates the result.
    pub fn load(file: Option<&Path>) -> Result<NodeConfig> {
        Ok(obs_common::config::load(ENV_PREFIX, file)?)
    }

    /// The defaults as TOML, for `fog-node print-default-config`.
    pub fn default_toml() -> Result<String> {
        Ok(obs_common::config::render_default::<NodeConfig>()?)
    }

    /// `{state_dir}/identity`.
    pub fn identity_dir(&self) -> PathBuf {
        self.state_dir.join("identity")
    }

    /// `{state_dir}/spool`.
    pub fn spool_dir(&self) -> PathBuf {
        self.state_dir.join("spool")
    }

    /// `{state_dir}/status.json`.
    pub fn status_path(&self) -> PathBuf {
        self.state_dir.join(crate::status::STATUS_FILE)
    }

    /// The spool configuration for `site` / `node_id`.
    pub fn spool_config(&self, site: &str, node_id: &str) -> SpoolConfig {
        SpoolConfig {
            dir: self.spool_dir(),
            site: site.to_owned(),
            node_id: node_id.to_owned(),
            segment_bytes: self.spool.segment_bytes,
            max_bytes: self.spool.max_bytes,
            fsync_interval: Duration::from_millis(self.spool.fsync_interval_ms),
            fsync_bytes: self.spool.fsync_bytes,
        }
    }

    /// Rejects values that parse but cannot work; the error names the field.
    pub fn validate(&self) -> Result<()> {
        let bad = |field: &str, reason: String| Err(Error::config(field, reason));
        if self.state_dir.as_os_str().is_empty() {
            return bad("state_dir", "must not be empty".into());
        }
        let s = &self.spool;
        if !(MIN_SEGMENT_BYTES..=MAX_SEGMENT_BYTES).contains(&s.segment_bytes) {
            return bad(
                "spool.segment_bytes",
                format!(
                    "must be between {MIN_SEGMENT_BYTES} and {MAX_SEGMENT_BYTES}, got {}",
                    s.segment_bytes
                ),
            );
        }
        if s.max_bytes < 2 * s.segment_bytes {
            return bad(
                "spool.max_bytes",
                format!(
                    "must be at least 2 * spool.segment_bytes, got {}",
                    s.max_bytes
                ),
            );
        }
        if s.fsync_interval_ms == 0 {
            return bad("spool.fsync_interval_ms", "must be at least 1".into());
        }
        if s.fsync_bytes == 0 {
            return bad("spool.fsync_bytes", "must be at least 1".into());
        }
        let b = &self.batching;
        if !(1..=100_000).contains(&b.max_samples) {
            return bad(
                "batching.max_samples",
                format!("must be 1..=100000, got {}", b.max_samples),
            );
        }
        if b.max_delay_ms == 0 {
            return bad("batching.max_delay_ms", "must be at least 1".into());
        }
        if b.channel_capacity == 0 {
            return bad("batching.channel_capacity", "must be at least 1".into());
        }
        self.validate_uplink()?;
        self.validate_simulation()?;
        let t = &self.tango;
        if t.max_packet_bytes < 128 {
            return bad(
                "tango.max_packet_bytes",
                format!("must be at least 128, got {}", t.max_packet_bytes),
            );
        }
        if t.max_connections == 0 {
            return bad("tango.max_connections", "must be at least 1".into());
        }
        if self.status.interval_ms == 0 {
            return bad("status.interval_ms", "must be at least 1".into());
        }
        Ok(())
    }

    fn validate_uplink(&self) -> Result<()> {
        let bad = |field: &str, reason: String| Err(Error::config(field, reason));
        let u = &self.uplink;
        if !(1..=1024).contains(&u.window) {
            return bad(
                "uplink.window",
                format!("must be 1..=1024, got {}", u.window),
            );
        }
        if u.ack_timeout_ms < 100 {
            return bad(
                "uplink.ack_timeout_ms",
                format!("must be at least 100, got {}", u.ack_timeout_ms),
            );
        }
        if u.backoff_min_ms == 0 {
            return bad("uplink.backoff_min_ms", "must be at least 1".into());
        }
        if u.backoff_max_ms < u.backoff_min_ms {
            return bad(
                "uplink.backoff_max_ms",
                format!(
                    "must be at least uplink.backoff_min_ms ({}), got {}",
                    u.backoff_min_ms, u.backoff_max_ms
                ),
            );
        }
        if !(u.max_batches_per_s.is_finite() && u.max_batches_per_s >= 0.0) {
            return bad(
                "uplink.max_batches_per_s",
                format!("must be a non-negative number, got {}", u.max_batches_per_s),
            );
        }
        if !(1..=65_535).contains(&u.keep_alive_s) {
            return bad(
                "uplink.keep_alive_s",
                format!("must be 1..=65535, got {}", u.keep_alive_s),
            );
        }
        if u.connect_timeout_s == 0 {
            return bad("uplink.connect_timeout_s", "must be at least 1".into());
        }
        if u.status_interval_ms < 100 {
            return bad(
                "uplink.status_interval_ms",
                format!("must be at least 100, got {}", u.status_interval_ms),
            );
        }
        if u.read_bytes < 1024 {
            return bad(
                "uplink.read_bytes",
                format!("must be at least 1024, got {}", u.read_bytes),
            );
        }
        Ok(())
    }

    fn validate_simulation(&self) -> Result<()> {
        let bad = |field: &str, reason: String| Err(Error::config(field, reason));
        let sim = &self.simulation;
        if SiteClimate::preset(&sim.climate).is_none() {
            return bad(
                "simulation.climate",
                format!(
                    "unknown preset {:?} (use la_palma, dusty_desert or humid_coastal)",
                    sim.climate
                ),
            );
        }
        if !(sim.time_scale.is_finite() && sim.time_scale > 0.0 && sim.time_scale <= 1e7) {
            return bad(
                "simulation.time_scale",
                format!("must be in (0, 1e7], got {}", sim.time_scale),
            );
        }
        if !(10..=3_600_000).contains(&sim.tick_ms) {
            return bad(
                "simulation.tick_ms",
                format!("must be 10..=3600000, got {}", sim.tick_ms),
            );
        }
        if let Some(segments) = sim.segments
            && !(1..=99).contains(&segments)
        {
            return bad(
                "simulation.segments",
                format!("must be 1..=99, got {segments}"),
            );
        }
        if let Some(start) = &sim.start {
            crate::timefmt::parse_rfc3339_ns(start).map_err(|reason| {
                Error::config("simulation.start", format!("{start:?}: {reason}"))
            })?;
        }
        if let Some(days) = sim.end_after_days
            && !(days.is_finite() && days > 0.0)
        {
            return bad(
                "simulation.end_after_days",
                format!("must be positive, got {days}"),
            );
        }
        for (field, hz) in [
            ("simulation.rates.weather_hz", sim.rates.weather_hz),
            ("simulation.rates.dome_hz", sim.rates.dome_hz),
            ("simulation.rates.mount_hz", sim.rates.mount_hz),
            ("simulation.rates.segment_hz", sim.rates.segment_hz),
        ] {
            if !(hz.is_finite() && (0.0..=1000.0).contains(&hz)) {
                return bad(field, format!("must be 0..=1000 Hz, got {hz}"));
            }
        }
        if sim.rates.max_catch_up == 0 {
            return bad("simulation.rates.max_catch_up", "must be at least 1".into());
        }
        for (i, event) in sim.inject.iter().enumerate() {
            let field = format!("simulation.inject[{i}]");
            if !(event.at_sim_day.is_finite() && event.at_sim_day >= 0.0) {
                return bad(
                    &format!("{field}.at_sim_day"),
                    format!("must be a non-negative number, got {}", event.at_sim_day),
                );
            }
            if let Some(d) = event.duration_h
                && !(d.is_finite() && d > 0.0)
            {
                return bad(
                    &format!("{field}.duration_h"),
                    format!("must be positive, got {d}"),
                );
            }
            if let Some(p) = event.peak
                && !(p.is_finite() && p >= 0.0)
            {
                return bad(
                    &format!("{field}.peak"),
                    format!("must be non-negative, got {p}"),
                );
            }
            if event.segment == Some(0) {
                return bad(&format!("{field}.segment"), "segments are 1-based".into());
            }
        }
        Ok(())
    }
}

impl obs_common::config::Validate for NodeConfig {
    fn validate(&self) -> obs_common::Result<()> {
        NodeConfig::validate(self).map_err(|error| match error {
            Error::Config { field, reason } => obs_common::Error::ConfigValue { field, reason },
            other => obs_common::Error::ConfigValue {
                field: "config".into(),
                reason: other.to_string(),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_render_as_toml() {
        NodeConfig::default().validate().unwrap();
        let text = NodeConfig::default_toml().unwrap();
        for key in [
            "state_dir",
            "[spool]",
            "[batching]",
            "max_samples = 2000",
            "[uplink]",
            "window = 32",
            "[simulation]",
            "[tango]",
        ] {
            assert!(text.contains(key), "{key} missing from\n{text}");
        }
        let back: NodeConfig = toml::from_str(&text).unwrap();
        assert_eq!(back, NodeConfig::default());
    }

    #[test]
    fn validation_names_the_field() {
        type Change = Box<dyn Fn(&mut NodeConfig)>;
        let cases: Vec<(&str, Change)> = vec![
            ("uplink.window", Box::new(|c| c.uplink.window = 0)),
            (
                "uplink.backoff_max_ms",
                Box::new(|c| c.uplink.backoff_max_ms = 1),
            ),
            (
                "batching.max_samples",
                Box::new(|c| c.batching.max_samples = 0),
            ),
            ("spool.max_bytes", Box::new(|c| c.spool.max_bytes = 1)),
            (
                "simulation.climate",
                Box::new(|c| c.simulation.climate = "mars".into()),
            ),
            (
                "simulation.time_scale",
                Box::new(|c| c.simulation.time_scale = 0.0),
            ),
            (
                "simulation.start",
                Box::new(|c| c.simulation.start = Some("yesterday".into())),
            ),
            (
                "simulation.inject[0].at_sim_day",
                Box::new(|c| {
                    c.simulation.inject = vec![InjectEvent {
                        at_sim_day: -1.0,
                        kind: InjectKind::Clean,
                        segment: None,
                        duration_h: None,
                        peak: None,
                    }]
                }),
            ),
            (
                "simulation.rates.dome_hz",
                Box::new(|c| c.simulation.rates.dome_hz = -1.0),
            ),
            (
                "tango.max_connections",
                Box::new(|c| c.tango.max_connections = 0),
            ),
        ];
        for (field, change) in cases {
            let mut config = NodeConfig::default();
            change(&mut config);
            let error = config.validate().unwrap_err().to_string();
            assert!(error.contains(&format!("{field}:")), "{field}: {error}");
        }
    }

    #[test]
    fn the_file_overrides_defaults_and_unknown_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.toml");
        std::fs::write(
            &path,
            "[uplink]\nwindow = 8\n[simulation]\ntime_scale = 720.0\n",
        )
        .unwrap();
        let config = NodeConfig::load(Some(&path)).unwrap();
        assert_eq!(config.uplink.window, 8);
        assert_eq!(config.simulation.time_scale, 720.0);
        std::fs::write(&path, "[uplink]\nwindoww = 8\n").unwrap();
        let error = NodeConfig::load(Some(&path)).unwrap_err().to_string();
        assert!(error.contains("windoww"), "{error}");
    }

    #[test]
    fn the_shipped_example_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("node.example.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        let config: NodeConfig = toml::from_str(&text).unwrap();
        config.validate().unwrap();
        assert!(config.tango.enabled);
        assert_eq!(config.simulation.inject.len(), 2);
    }
}

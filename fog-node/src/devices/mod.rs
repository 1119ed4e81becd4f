//! Simulated telescope devices: turn the environment state into
//! `obs_proto::v1::Sample`s the way the real Tango devices would.
//!
//! # Naming scheme
//!
//! Devices are Tango-style `domain/family/member`; every attribute carries a
//! unit and a [`Quality`]; every device also has a `state` attribute (a Tango
//! DevState string) sent on change and on the first call.
//!
//! | device | attribute | unit | when |
//! |---|---|---|---|
//! | `weather/station/1` | `wind_speed`, `wind_gust` | `m/s` | `weather_hz` (1 Hz) |
//! | | `wind_direction` | `deg` | |
//! | | `relative_humidity` | `%` | |
//! | | `air_temperature`, `dew_point` | `degC` | |
//! | | `pressure` | `hPa` | |
//! | | `dust_concentration` | `ug/m3` | |
//! | | `dust_counts` | `m-3` | |
//! | | `state` | | `ON` / `ALARM`, on change |
//! | `dome/shutter/1` | `state` | | `OPEN` / `CLOSED` / `MOVING`, on change |
//! | | `percentage_open` | `%` | `dome_hz` (1 Hz), CHANGING while moving |
//! | | `close_reason` | | `none`, `daytime`, `wind`, `humidity`, `dew_point`, `dust`, on change |
//! | `mount/azimuth/1`, `mount/altitude/1` | `position`, `setpoint` | `deg` | `mount_hz` (1 Hz) |
//! | | `speed` | `deg/s` | |
//! | | `motor_current` | `A` | |
//! | | `state` | | `STANDBY` (parked) / `MOVING` (slewing) / `ON` (tracking) |
//! | `m1/segment/NN` (NN = 01..) | `piston` | `nm` | `segment_hz` (1 Hz) |
//! | | `tip`, `tilt` | `urad` | |
//! | | `glass_temperature` | `degC` | WARNING within 2 °C of the dew point |
//! | `m1/reflectometer/1` | `segNN_470nm`, `segNN_530nm`, `segNN_650nm`, `segNN_880nm` | `%` | per measurement event |
//! | `m1/maintenance/1` | `event` | | per cleaning/recoat: JSON `{"kind","segment","before","after"}` |
//! | `instrument/camera/1` | `exposure_started` (exposure number) | | per exposure, open-dome nights |
//! | | `exptime` | `s` | |
//! | | `filter` | | |
//! | | `airmass` | | |
//! | | `ccd_temperature` | `degC` | |
//! | | `photometric_zero_point` | `mag` | drifts with mean M1 reflectivity |
//! | | `fits_file` | | file name, when a FITS folder is configured |
//! | | `state` | | `ON` / `RUNNING` |
//!
//! Reflectometer attribute names put the segment first so one segment's
//! four bands sort together: `seg07_650nm` is segment 7 at 650 nm.
//! The maintenance JSON's reflectivity objects use the keys `470nm`,
//! `530nm`, `650nm`, `880nm`.
//!
//! # Rates
//!
//! Each periodic device keeps its own schedule: the first call emits at
//! `now`, later calls emit at every scheduled time in `(last, now]`, so a
//! 1 s tick at 1 Hz gives one sample per attribute per tick, slower rates
//! decimate and faster rates emit several timestamped samples per tick (at
//! most `max_catch_up` per device per call; the rest are skipped and counted).

mod config;
pub mod fits;
mod mirror;
mod site;
mod telescope;

use obs_proto::v1::{Quality, Sample, sample::Value};
use serde::Serialize;

pub use config::{CameraConfig, DeviceConfig, DeviceError, FilterConfig, QualityThresholds};

use crate::sim::rng::{SimRng, Stream};
use crate::sim::{EnvState, Event};

/// Counters of the device layer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct DeviceStats {
    /// Samples produced.
    pub samples: u64,
    /// Exposures taken.
    pub exposures: u64,
    /// FITS files written.
    pub fits_written: u64,
    /// FITS files that failed to write (each logged with its path).
    pub fits_failed: u64,
    /// Periodic samples skipped because a call covered more than `max_catch_up` periods.
    pub skipped: u64,
}

/// What every device sees on one call.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ctx<'a> {
    pub cfg: &'a DeviceConfig,
    pub state: &'a EnvState,
    pub now: i64,
}

/// A periodic emission schedule.
#[derive(Debug, Clone)]
pub(crate) struct Rate {
    period_ns: Option<i64>,
    next_ns: Option<i64>,
}

impl Rate {
    pub(crate) fn new(hz: f64) -> Self {
        let period_ns = (hz.is_finite() && hz > 0.0).then(|| ((1e9 / hz).round() as i64).max(1));
        Self {
            period_ns,
            next_ns: None,
        }
    }

    /// Scheduled times in `(last call, now]` into `out`; returns how many were skipped.
    pub(crate) fn due(&mut self, now_ns: i64, cap: u32, out: &mut Vec<i64>) -> u64 {
        out.clear();
        let Some(period) = self.period_ns else {
            return 0;
        };
        let next = self.next_ns.get_or_insert(now_ns);
        if *next > now_ns.saturating_add(period) {
            // the caller's clock went backwards: restart the schedule
            *next = now_ns;
        }
        while *next <= now_ns && out.len() < cap as usize {
            out.push(*next);
            *next += period;
        }
        if *next <= now_ns {
            let skipped = (now_ns - *next) / period + 1;
            *next = now_ns + period;
            return skipped as u64;
        }
        0
    }
}

/// Builds one sample.
pub(crate) fn sample(
    device: &str,
    attribute: &str,
    ts: i64,
    value: Value,
    unit: &str,
    quality: Quality,
) -> Sample {
    Sample {
        device: device.to_owned(),
        attribute: attribute.to_owned(),
        ts_unix_ns: ts,
        value: Some(value),
        unit: unit.to_owned(),
        quality: quality as i32,
    }
}

/// VALID, WARNING at or above `warning`, ALARM at or above `alarm`.
pub(crate) fn level(v: f64, warning: f64, alarm: f64) -> Quality {
    if v >= alarm {
        Quality::Alarm
    } else if v >= warning {
        Quality::Warning
    } else {
        Quality::Valid
    }
}

/// Emits `state` on change (and the first time).
#[derive(Debug, Clone, Default)]
pub(crate) struct StateAttr {
    last: Option<&'static str>,
}

impl StateAttr {
    pub(crate) fn emit(
        &mut self,
        device: &str,
        ts: i64,
        state: &'static str,
        out: &mut Vec<Sample>,
    ) {
        self.emit_attr(device, "state", ts, state, out);
    }

    pub(crate) fn emit_attr(
        &mut self,
        device: &str,
        attr: &str,
        ts: i64,
        value: &'static str,
        out: &mut Vec<Sample>,
    ) {
        if self.last != Some(value) {
            self.last = Some(value);
            out.push(sample(
                device,
                attr,
                ts,
                Value::StringValue(value.to_owned()),
                "",
                Quality::Valid,
            ));
        }
    }

    /// `true` the first time only (for states that never change).
    pub(crate) fn emit_once(&mut self, _ts: i64) -> bool {
        let first = self.last.is_none();
        self.last = Some("ON");
        first
    }
}

/// Sensor noise source.
#[derive(Debug, Clone)]
pub(crate) struct Noise {
    rng: SimRng,
    enabled: bool,
}

impl Noise {
    /// `sigma·N(0,1)` when noise is on, else 0.
    pub(crate) fn n(&mut self, sigma: f64) -> f64 {
        if self.enabled {
            sigma * self.rng.normal()
        } else {
            0.0
        }
    }

    pub(crate) fn rng(&mut self) -> &mut SimRng {
        &mut self.rng
    }
}

/// All simulated devices of one telescope.
#[derive(Debug, Clone)]
pub struct Devices {
    config: DeviceConfig,
    noise: Noise,
    ticks: Vec<i64>,
    site: site::SiteDevices,
    telescope: telescope::TelescopeDevices,
    mirror: mirror::MirrorDevices,
    stats: DeviceStats,
}

impl Devices {
    /// Builds the devices; fails on an invalid config.
    pub fn new(config: DeviceConfig) -> Result<Self, DeviceError> {
        config.validate()?;
        let noise = Noise {
            rng: SimRng::new(config.seed, Stream::Devices),
            enabled: config.sensor_noise,
        };
        Ok(Self {
            site: site::SiteDevices::new(&config),
            telescope: telescope::TelescopeDevices::new(&config),
            mirror: mirror::MirrorDevices::new(&config),
            config,
            noise,
            ticks: Vec::new(),
            stats: DeviceStats::default(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &DeviceConfig {
        &self.config
    }

    /// Counters since construction.
    pub fn stats(&self) -> DeviceStats {
        self.stats
    }

    /// Every device name this set can emit.
    pub fn device_names(&self) -> Vec<String> {
        let mut names = vec![
            site::WEATHER.to_owned(),
            site::DOME.to_owned(),
            telescope::AZIMUTH.to_owned(),
            telescope::ALTITUDE.to_owned(),
            telescope::CAMERA.to_owned(),
        ];
        names.extend(mirror::segment_names(self.config.segments));
        names.push(mirror::REFLECTOMETER.to_owned());
        names.push(mirror::MAINTENANCE.to_owned());
        names
    }

    /// Samples due at `now_unix_ns` for the environment `state`, plus one
    /// event sample per relevant `event` (timestamped at the event).
    /// Call it every simulated tick with the events drained since the last call.
    pub fn sample(&mut self, state: &EnvState, events: &[Event], now_unix_ns: i64) -> Vec<Sample> {
        let mut out = Vec::new();
        let ctx = Ctx {
            cfg: &self.config,
            state,
            now: now_unix_ns,
        };
        let (noise, ticks) = (&mut self.noise, &mut self.ticks);
        self.stats.skipped += self.site.sample(&ctx, noise, ticks, &mut out);
        let tel = self.telescope.sample(&ctx, noise, ticks, &mut out);
        self.stats.skipped += tel.skipped;
        self.stats.exposures += tel.exposures;
        self.stats.fits_written += tel.fits_written;
        self.stats.fits_failed += tel.fits_failed;
        self.stats.skipped += self.mirror.sample(&ctx, events, noise, ticks, &mut out);
        self.stats.samples += out.len() as u64;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_emits_per_period_and_decimates() {
        let s = 1_000_000_000;
        let mut r = Rate::new(1.0);
        let mut out = Vec::new();
        let mut n = 0;
        for k in 0..60 {
            r.due(k * s, 60, &mut out);
            n += out.len();
        }
        assert_eq!(n, 60);

        let mut slow = Rate::new(0.1);
        let mut n = 0;
        for k in 0..60 {
            slow.due(k * s, 60, &mut out);
            n += out.len();
        }
        assert_eq!(n, 6);

        let mut fast = Rate::new(10.0);
        fast.due(0, 60, &mut out);
        assert_eq!(out, vec![0]);
        fast.due(s, 60, &mut out);
        assert_eq!(out.len(), 10);
        assert_eq!(out.first(), Some(&(s / 10)));
        assert_eq!(out.last(), Some(&s));

        let skipped = fast.due(100 * s, 60, &mut out);
        assert_eq!(out.len(), 60);
        assert_eq!(skipped, 990 - 60);

        assert_eq!(Rate::new(0.0).due(s, 60, &mut out), 0);
        assert!(out.is_empty());
    }

    #[test]
    fn config_validation_names_fields() {
        assert_eq!(DeviceConfig::default().validate(), Ok(()));
        let mut c = DeviceConfig::default();
        c.camera.filters[0].band_nm = 500;
        assert!(
            matches!(c.validate(), Err(DeviceError::InvalidConfig { field, .. }) if field == "camera.filters")
        );
        let c = DeviceConfig {
            mount_hz: f64::NAN,
            ..DeviceConfig::default()
        };
        assert!(
            matches!(c.validate(), Err(DeviceError::InvalidConfig { field, .. }) if field == "mount_hz")
        );
        let json = serde_json::to_string(&DeviceConfig::default()).expect("serialise");
        let back: DeviceConfig = serde_json::from_str(&json).expect("parse");
        assert_eq!(back, DeviceConfig::default());
    }
}

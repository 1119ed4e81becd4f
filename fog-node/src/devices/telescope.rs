//! `mount/azimuth/1`, `mount/altitude/1` and `instrument/camera/1`.
//!
//! On open-dome nights the camera takes exposures back to back (an exposure
//! time and a filter per exposure, then `overhead_s`), each on a new random
//! pointing that the mount slews to at 2°/s and then tracks. Otherwise the
//! mount parks at the zenith (azimuth 0°). The photometric zero point is
//! `zp = zp_fresh(filter) + 2.5·log10(R̄(λ) / R_fresh_Al(λ)) + N(0, 0.01)`,
//! with `R̄` the mean true M1 reflectivity in the filter's band.

use obs_proto::v1::{Quality, Sample, sample::Value};
use tracing::warn;

use super::fits::{self, ExposureHeader};
use super::{Ctx, DeviceConfig, Noise, Rate, StateAttr, sample};
use crate::sim::{DomeState, EnvState, Reflectivity, WAVELENGTHS_NM};

/// Azimuth axis device name.
pub(crate) const AZIMUTH: &str = "mount/azimuth/1";
/// Altitude axis device name.
pub(crate) const ALTITUDE: &str = "mount/altitude/1";
/// Camera device name.
pub(crate) const CAMERA: &str = "instrument/camera/1";

const SLEW_DEG_S: f64 = 2.0;
const PARK: (f64, f64) = (0.0, 90.0);

/// Airmass at altitude `alt_deg` (Pickering 2002).
pub(crate) fn airmass(alt_deg: f64) -> f64 {
    let h = alt_deg.clamp(0.0, 90.0);
    1.0 / (h + 244.0 / (165.0 + 47.0 * h.powf(1.1)))
        .to_radians()
        .sin()
}

#[derive(Debug, Clone, Copy)]
struct Target {
    az: f64,
    alt: f64,
    alt_rate: f64,
}

#[derive(Debug, Clone)]
struct Axis {
    device: &'static str,
    position: f64,
    setpoint: f64,
    speed: f64,
    wraps: bool,
    state: StateAttr,
}

impl Axis {
    fn new(device: &'static str, position: f64, wraps: bool) -> Self {
        Self {
            device,
            position,
            setpoint: position,
            speed: 0.0,
            wraps,
            state: StateAttr::default(),
        }
    }

    fn error(&self) -> f64 {
        let d = self.setpoint - self.position;
        if self.wraps {
            (d + 180.0).rem_euclid(360.0) - 180.0
        } else {
            d
        }
    }

    fn advance(&mut self, dt_s: f64) {
        let max = SLEW_DEG_S * dt_s;
        let step = self.error().clamp(-max, max);
        self.position += step;
        if self.wraps {
            self.position = self.position.rem_euclid(360.0);
        }
        self.speed = if dt_s > 0.0 { step / dt_s } else { 0.0 };
    }

    fn slewing(&self) -> bool {
        self.error().abs() > 0.01
    }
}

/// What a camera/mount call reports back.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct TelescopeTick {
    pub skipped: u64,
    pub exposures: u64,
    pub fits_written: u64,
    pub fits_failed: u64,
}

#[derive(Debug, Clone)]
pub(crate) struct TelescopeDevices {
    rate: Rate,
    az: Axis,
    alt: Axis,
    target: Option<Target>,
    last_now: Option<i64>,
    next_exposure_ns: Option<i64>,
    exposing_until_ns: i64,
    exposure_number: u64,
    camera_state: StateAttr,
}

impl TelescopeDevices {
    pub(crate) fn new(cfg: &DeviceConfig) -> Self {
        Self {
            rate: Rate::new(cfg.mount_hz),
            az: Axis::new(AZIMUTH, PARK.0, true),
            alt: Axis::new(ALTITUDE, PARK.1, false),
            target: None,
            last_now: None,
            next_exposure_ns: None,
            exposing_until_ns: i64::MIN,
            exposure_number: 0,
            camera_state: StateAttr::default(),
        }
    }

    pub(crate) fn sample(
        &mut self,
        ctx: &Ctx<'_>,
        noise: &mut Noise,
        ticks: &mut Vec<i64>,
        out: &mut Vec<Sample>,
    ) -> TelescopeTick {
        let (cfg, state, now) = (ctx.cfg, ctx.state, ctx.now);
        let mut tick = TelescopeTick::default();
        let observing = cfg.camera.enabled && state.is_night && state.dome.state == DomeState::Open;
        if observing {
            self.expose(cfg, state, now, noise, out, &mut tick);
        } else {
            self.next_exposure_ns = None;
            self.target = None;
        }
        let camera_busy = now < self.exposing_until_ns;
        self.camera_state
            .emit(CAMERA, now, if camera_busy { "RUNNING" } else { "ON" }, out);

        // Kinematics over the time since the last call.
        let dt_s = self
            .last_now
            .map_or(0.0, |t| ((now - t) as f64 / 1e9).clamp(0.0, 3600.0));
        self.last_now = Some(now);
        match self.target.as_mut() {
            Some(t) => {
                t.az = (t.az + 0.004 * dt_s).rem_euclid(360.0);
                t.alt = (t.alt + t.alt_rate * dt_s).clamp(20.0, 88.0);
                self.az.setpoint = t.az;
                self.alt.setpoint = t.alt;
            }
            None => {
                self.az.setpoint = PARK.0;
                self.alt.setpoint = PARK.1;
            }
        }
        self.az.advance(dt_s);
        self.alt.advance(dt_s);

        tick.skipped = self.rate.due(now, cfg.max_catch_up, ticks);
        let wind_load = 0.002 * state.weather.wind_speed_m_s.powi(2) * state.dome.open_fraction();
        let tracking = self.target.is_some();
        for axis in [&mut self.az, &mut self.alt] {
            let slewing = axis.slewing();
            let mode = if slewing {
                "MOVING"
            } else if tracking {
                "ON"
            } else {
                "STANDBY"
            };
            axis.state.emit(axis.device, now, mode, out);
            let q = if slewing {
                Quality::Changing
            } else {
                Quality::Valid
            };
            for &ts in ticks.iter() {
                let current = if tracking || slewing {
                    0.3 + 1.2 * axis.speed.abs() + wind_load
                } else {
                    0.05
                };
                let current = (current + noise.n(0.02)).max(0.0);
                let pos = axis.position + noise.n(0.0005);
                let pos = if axis.wraps {
                    pos.rem_euclid(360.0)
                } else {
                    pos
                };
                out.push(sample(
                    axis.device,
                    "position",
                    ts,
                    Value::DoubleValue(pos),
                    "deg",
                    q,
                ));
                out.push(sample(
                    axis.device,
                    "setpoint",
                    ts,
                    Value::DoubleValue(axis.setpoint),
                    "deg",
                    Quality::Valid,
                ));
                out.push(sample(
                    axis.device,
                    "speed",
                    ts,
                    Value::DoubleValue(axis.speed),
                    "deg/s",
                    q,
                ));
                out.push(sample(
                    axis.device,
                    "motor_current",
                    ts,
                    Value::DoubleValue(current),
                    "A",
                    Quality::Valid,
                ));
            }
        }
        tick
    }

    fn expose(
        &mut self,
        cfg: &DeviceConfig,
        state: &EnvState,
        now: i64,
        noise: &mut Noise,
        out: &mut Vec<Sample>,
        tick: &mut TelescopeTick,
    ) {
        let cam = &cfg.camera;
        let mean = state.mean_reflectivity().to_array();
        let fresh = Reflectivity::FRESH_ALUMINIUM.to_array();
        let mut next = self.next_exposure_ns.unwrap_or(now);
        let mut started = 0;
        while next <= now && started < cfg.max_catch_up {
            started += 1;
            let rng = noise.rng();
            let exptime = cam.exposure_times_s[(rng.uniform() * cam.exposure_times_s.len() as f64)
                as usize
                % cam.exposure_times_s.len()];
            let filter = &cam.filters[(self.exposure_number % cam.filters.len() as u64) as usize];
            let target = Target {
                az: rng.range(0.0, 360.0),
                alt: rng.range(35.0, 85.0),
                alt_rate: rng.range(-0.004, 0.004),
            };
            self.target = Some(target);
            self.exposure_number += 1;
            tick.exposures += 1;
            let x = airmass(target.alt);
            let band = WAVELENGTHS_NM
                .iter()
                .position(|&l| l == filter.band_nm)
                .unwrap_or(2);
            let zp =
                filter.zero_point_mag + 2.5 * (mean[band] / fresh[band]).log10() + noise.n(0.01);
            let ccd = cam.ccd_setpoint_c + noise.n(0.05);
            let ts = next;
            let n = self.exposure_number;
            out.push(sample(
                CAMERA,
                "exposure_started",
                ts,
                Value::IntValue(n as i64),
                "",
                Quality::Valid,
            ));
            out.push(sample(
                CAMERA,
                "exptime",
                ts,
                Value::DoubleValue(exptime),
                "s",
                Quality::Valid,
            ));
            out.push(sample(
                CAMERA,
                "filter",
                ts,
                Value::StringValue(filter.name.clone()),
                "",
                Quality::Valid,
            ));
            out.push(sample(
                CAMERA,
                "airmass",
                ts,
                Value::DoubleValue(x),
                "",
                Quality::Valid,
            ));
            out.push(sample(
                CAMERA,
                "ccd_temperature",
                ts,
                Value::DoubleValue(ccd),
                "degC",
                Quality::Valid,
            ));
            out.push(sample(
                CAMERA,
                "photometric_zero_point",
                ts,
                Value::DoubleValue(zp),
                "mag",
                Quality::Valid,
            ));
            if let Some(dir) = &cam.fits_dir {
                let header = ExposureHeader {
                    date_obs: fits::iso8601_utc(ts),
                    exptime_s: exptime,
                    filter: filter.name.clone(),
                    airmass: x,
                    telescope: cam.telescope.clone(),
                    instrument: cam.instrument.clone(),
                    ccd_temperature_c: ccd,
                    exposure_number: n,
                };
                let [w, h] = cam.image_size;
                let bytes = fits::build_fits(&header, w, h);
                let stamp: String = header
                    .date_obs
                    .chars()
                    .filter(char::is_ascii_digit)
                    .take(14)
                    .collect();
                let name = format!("{}_{}_{n:06}.fits", cam.instrument, stamp);
                match fits::write_fits(dir, &name, &bytes) {
                    Ok(_) => {
                        tick.fits_written += 1;
                        out.push(sample(
                            CAMERA,
                            "fits_file",
                            ts,
                            Value::StringValue(name),
                            "",
                            Quality::Valid,
                        ));
                    }
                    Err(error) => {
                        tick.fits_failed += 1;
                        warn!(%error, exposure = n, "failed to write fits file");
                    }
                }
            }
            let cycle_ns = ((exptime + cam.overhead_s) * 1e9) as i64;
            self.exposing_until_ns = ts + (exptime * 1e9) as i64;
            next = ts + cycle_ns.max(1);
        }
        if next <= now {
            next = now;
        }
        self.next_exposure_ns = Some(next);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn airmass_is_one_at_zenith_and_two_at_thirty_degrees() {
        assert!((airmass(90.0) - 1.0).abs() < 1e-3);
        assert!((airmass(30.0) - 1.995).abs() < 0.01);
    }

    #[test]
    fn azimuth_takes_the_short_way() {
        let mut a = Axis::new(AZIMUTH, 350.0, true);
        a.setpoint = 10.0;
        a.advance(5.0);
        assert!((a.position - 0.0).abs() < 1e-9 || (a.position - 360.0).abs() < 1e-9);
        a.advance(5.0);
        assert!((a.position - 10.0).abs() < 1e-9);
        assert!(!a.slewing());
    }
}

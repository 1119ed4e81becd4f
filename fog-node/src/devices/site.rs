//! `weather/station/1` and `dome/shutter/1`.

use obs_proto::v1::{Quality, Sample, sample::Value};

use super::{Ctx, DeviceConfig, Noise, Rate, StateAttr, level, sample};
use crate::sim::DomeState;

/// Weather station device name.
pub(crate) const WEATHER: &str = "weather/station/1";
/// Dome shutter device name.
pub(crate) const DOME: &str = "dome/shutter/1";

#[derive(Debug, Clone)]
pub(crate) struct SiteDevices {
    weather_rate: Rate,
    dome_rate: Rate,
    weather_state: StateAttr,
    dome_state: StateAttr,
    dome_reason: StateAttr,
}

impl SiteDevices {
    pub(crate) fn new(cfg: &DeviceConfig) -> Self {
        Self {
            weather_rate: Rate::new(cfg.weather_hz),
            dome_rate: Rate::new(cfg.dome_hz),
            weather_state: StateAttr::default(),
            dome_state: StateAttr::default(),
            dome_reason: StateAttr::default(),
        }
    }

    /// Appends due samples; returns the number of skipped periodic samples.
    pub(crate) fn sample(
        &mut self,
        ctx: &Ctx<'_>,
        noise: &mut Noise,
        ticks: &mut Vec<i64>,
        out: &mut Vec<Sample>,
    ) -> u64 {
        let (cfg, state, now) = (ctx.cfg, ctx.state, ctx.now);
        let mut skipped = self.weather_rate.due(now, cfg.max_catch_up, ticks);
        let w = &state.weather;
        let t = &cfg.thresholds;
        let mut alarm = false;
        for &ts in ticks.iter() {
            let speed = (w.wind_speed_m_s + noise.n(0.2)).max(0.0);
            let gust = (w.wind_gust_m_s + noise.n(0.3)).max(speed);
            let rh = (w.relative_humidity_pct + noise.n(0.5)).clamp(0.0, 100.0);
            let dust = (w.dust_ug_m3 * (1.0 + noise.n(0.03))).max(0.0);
            let counts = (w.dust_counts_m3 * (1.0 + noise.n(0.05))).max(0.0);
            let q_wind = level(speed, t.wind_warning_m_s, t.wind_alarm_m_s);
            let q_gust = level(gust, t.gust_warning_m_s, t.gust_alarm_m_s);
            let q_rh = level(rh, t.humidity_warning_pct, t.humidity_alarm_pct);
            let q_dust = level(dust, t.dust_warning_ug_m3, t.dust_alarm_ug_m3);
            alarm = [q_wind, q_gust, q_rh, q_dust].contains(&Quality::Alarm);
            let dir = (w.wind_direction_deg + noise.n(3.0)).rem_euclid(360.0);
            let readings = [
                ("wind_speed", speed, "m/s", q_wind),
                ("wind_gust", gust, "m/s", q_gust),
                ("wind_direction", dir, "deg", Quality::Valid),
                ("relative_humidity", rh, "%", q_rh),
                (
                    "air_temperature",
                    w.air_temperature_c + noise.n(0.05),
                    "degC",
                    Quality::Valid,
                ),
                (
                    "dew_point",
                    w.dew_point_c + noise.n(0.1),
                    "degC",
                    Quality::Valid,
                ),
                (
                    "pressure",
                    w.pressure_hpa + noise.n(0.1),
                    "hPa",
                    Quality::Valid,
                ),
                ("dust_concentration", dust, "ug/m3", q_dust),
                ("dust_counts", counts, "m-3", q_dust),
            ];
            for (attr, v, unit, q) in readings {
                out.push(sample(WEATHER, attr, ts, Value::DoubleValue(v), unit, q));
            }
        }
        if let Some(&ts) = ticks.last() {
            self.weather_state
                .emit(WEATHER, ts, if alarm { "ALARM" } else { "ON" }, out);
        }

        let dome = &state.dome;
        self.dome_state.emit(DOME, now, dome.state.as_str(), out);
        let reason = dome.closed_reason.map_or("none", |r| r.as_str());
        self.dome_reason
            .emit_attr(DOME, "close_reason", now, reason, out);
        skipped += self.dome_rate.due(now, cfg.max_catch_up, ticks);
        let q = if dome.state == DomeState::Moving {
            Quality::Changing
        } else {
            Quality::Valid
        };
        for &ts in ticks.iter() {
            out.push(sample(
                DOME,
                "percentage_open",
                ts,
                Value::DoubleValue(dome.percent_open),
                "%",
                q,
            ));
        }
        skipped
    }
}

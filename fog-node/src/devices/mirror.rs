//! `m1/segment/NN`, `m1/reflectometer/1` and `m1/maintenance/1`.

use obs_proto::v1::{Quality, Sample, sample::Value};

use super::{Ctx, DeviceConfig, Noise, Rate, StateAttr, sample};
use crate::sim::{Event, MaintenanceKind, Reflectivity, WAVELENGTHS_NM};

/// Reflectometer device name.
pub(crate) const REFLECTOMETER: &str = "m1/reflectometer/1";
/// Maintenance event device name.
pub(crate) const MAINTENANCE: &str = "m1/maintenance/1";

/// `m1/segment/01` ... for `n` segments.
pub(crate) fn segment_names(n: u32) -> Vec<String> {
    (1..=n).map(|i| format!("m1/segment/{i:02}")).collect()
}

/// `segNN_{λ}nm` attribute names for a segment position.
fn reflectometer_attrs(position: u32) -> [String; 4] {
    WAVELENGTHS_NM.map(|l| format!("seg{position:02}_{l}nm"))
}

/// The compact JSON of a maintenance event sample.
pub(crate) fn maintenance_json(
    kind: MaintenanceKind,
    segment: u32,
    before: &Reflectivity,
    after: &Reflectivity,
) -> String {
    serde_json::json!({
        "kind": kind,
        "segment": segment,
        "before": before,
        "after": after,
    })
    .to_string()
}

#[derive(Debug, Clone)]
pub(crate) struct MirrorDevices {
    names: Vec<String>,
    rate: Rate,
    segment_state: StateAttr,
    reflectometer_state: StateAttr,
    maintenance_state: StateAttr,
}

impl MirrorDevices {
    pub(crate) fn new(cfg: &DeviceConfig) -> Self {
        Self {
            names: segment_names(cfg.segments),
            rate: Rate::new(cfg.segment_hz),
            segment_state: StateAttr::default(),
            reflectometer_state: StateAttr::default(),
            maintenance_state: StateAttr::default(),
        }
    }

    /// Appends due samples; returns the number of skipped periodic samples.
    pub(crate) fn sample(
        &mut self,
        ctx: &Ctx<'_>,
        events: &[Event],
        noise: &mut Noise,
        ticks: &mut Vec<i64>,
        out: &mut Vec<Sample>,
    ) -> u64 {
        let (cfg, state, now) = (ctx.cfg, ctx.state, ctx.now);
        let skipped = self.rate.due(now, cfg.max_catch_up, ticks);
        if self.segment_state.emit_once(now) {
            for name in &self.names {
                out.push(sample(
                    name,
                    "state",
                    now,
                    Value::StringValue("ON".to_owned()),
                    "",
                    Quality::Valid,
                ));
            }
        }
        self.reflectometer_state.emit(REFLECTOMETER, now, "ON", out);
        self.maintenance_state.emit(MAINTENANCE, now, "ON", out);
        let piston_warn = cfg.thresholds.piston_warning_nm;
        for &ts in ticks.iter() {
            for (name, seg) in self.names.iter().zip(&state.segments) {
                let piston = seg.piston_nm + noise.n(2.0);
                let q_piston = if piston.abs() > piston_warn {
                    Quality::Warning
                } else {
                    Quality::Valid
                };
                let q_glass = if seg.dew_risk {
                    Quality::Warning
                } else {
                    Quality::Valid
                };
                out.push(sample(
                    name,
                    "piston",
                    ts,
                    Value::DoubleValue(piston),
                    "nm",
                    q_piston,
                ));
                out.push(sample(
                    name,
                    "tip",
                    ts,
                    Value::DoubleValue(seg.tip_urad + noise.n(0.01)),
                    "urad",
                    Quality::Valid,
                ));
                out.push(sample(
                    name,
                    "tilt",
                    ts,
                    Value::DoubleValue(seg.tilt_urad + noise.n(0.01)),
                    "urad",
                    Quality::Valid,
                ));
                let glass = seg.glass_temperature_c + noise.n(0.02);
                out.push(sample(
                    name,
                    "glass_temperature",
                    ts,
                    Value::DoubleValue(glass),
                    "degC",
                    q_glass,
                ));
            }
        }
        for event in events {
            match event {
                Event::ReflectometerMeasurement {
                    at_unix_ns,
                    segment,
                    values,
                } => {
                    for (attr, v) in reflectometer_attrs(*segment).iter().zip(values.to_array()) {
                        out.push(sample(
                            REFLECTOMETER,
                            attr,
                            *at_unix_ns,
                            Value::DoubleValue(v),
                            "%",
                            Quality::Valid,
                        ));
                    }
                }
                Event::Cleaning {
                    at_unix_ns,
                    segment,
                    before,
                    after,
                } => {
                    let json = maintenance_json(MaintenanceKind::Cleaning, *segment, before, after);
                    out.push(sample(
                        MAINTENANCE,
                        "event",
                        *at_unix_ns,
                        Value::StringValue(json),
                        "",
                        Quality::Valid,
                    ));
                }
                Event::Recoat {
                    at_unix_ns,
                    segment,
                    before,
                    after,
                } => {
                    let json = maintenance_json(MaintenanceKind::Recoat, *segment, before, after);
                    out.push(sample(
                        MAINTENANCE,
                        "event",
                        *at_unix_ns,
                        Value::StringValue(json),
                        "",
                        Quality::Valid,
                    ));
                }
                _ => {}
            }
        }
        skipped
    }
}

//! What each mirror position lives through, integrated from the site's
//! telemetry as it arrives: open-dome hours, dust dose while open, calima
//! episodes, humid hours and dew-risk hours.
//!
//! The totals are cumulative per position since the site's first sample and
//! are stored once per hour (`exposure ((site, position), hour)`), so the
//! exposure between two times is the difference of two rows. Like rollups,
//! they are a pure function of the batches applied in order: replaying a
//! batch from the same state writes the same rows.
//!
//! Integration holds each input at its last value until the next sample of
//! any input; a hold is capped at [`MAX_HOLD_NS`] so that missing data does
//! not count as exposure.

use std::collections::BTreeMap;

use obs_proto::v1::Sample;
use serde::{Deserialize, Serialize};

use super::rollup::numeric_value;

/// Longest interval an input value is held for.
pub const MAX_HOLD_NS: i64 = 120 * 1_000_000_000;
/// Relative humidity above which an hour counts as humid, %.
pub const HUMID_RH_PCT: f64 = 80.0;
/// Mirror within this many °C of the dew point counts as dew risk.
pub const DEW_MARGIN_C: f64 = 2.0;
/// Dust concentration that starts a calima episode, µg/m³ (the warning level).
pub const CALIMA_START_UG_M3: f64 = 20.0;
/// Dust concentration below which an episode has ended, µg/m³ (the safety level).
pub const CALIMA_END_UG_M3: f64 = 12.0;

const WEATHER: &str = "weather/station/1";
const DOME: &str = "dome/shutter/1";
const NS_PER_HOUR: f64 = 3_600_000_000_000.0;

/// Cumulative exposure of one position.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ExposureTotals {
    pub open_dome_hours: f64,
    pub dust_dose_ug_m3_h: f64,
    pub calima_events: u32,
    pub humid_hours: f64,
    pub dew_risk_hours: f64,
    pub days_with_data: u32,
}

impl ExposureTotals {
    /// What accumulated between `earlier` and `self`.
    pub fn since(&self, earlier: &ExposureTotals) -> ExposureTotals {
        ExposureTotals {
            open_dome_hours: self.open_dome_hours - earlier.open_dome_hours,
            dust_dose_ug_m3_h: self.dust_dose_ug_m3_h - earlier.dust_dose_ug_m3_h,
            calima_events: self.calima_events.saturating_sub(earlier.calima_events),
            humid_hours: self.humid_hours - earlier.humid_hours,
            dew_risk_hours: self.dew_risk_hours - earlier.dew_risk_hours,
            days_with_data: self.days_with_data.saturating_sub(earlier.days_with_data),
        }
    }
}

/// One exposure row to write: the totals of `position` at the end of the
/// data seen in the hour starting at `hour_start` (Unix seconds).
#[derive(Debug, Clone, PartialEq)]
pub struct ExposureRow {
    pub position: u32,
    pub hour_start: i64,
    pub totals: ExposureTotals,
}

/// The inputs as last seen, and the running totals.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ExposureState {
    last_ts_ns: Option<i64>,
    open_fraction: Option<f64>,
    dust_ug_m3: Option<f64>,
    rh_pct: Option<f64>,
    dew_point_c: Option<f64>,
    glass_c: BTreeMap<u32, f64>,
    in_calima: bool,
    totals: BTreeMap<u32, ExposureTotals>,
}

enum Input {
    OpenPct(f64),
    Dust(f64),
    Rh(f64),
    DewPoint(f64),
    Glass(u32, f64),
}

/// Mirror position of a `m1/segment/NN` device.
pub fn segment_position(device: &str) -> Option<u32> {
    let position: u32 = device.strip_prefix("m1/segment/")?.parse().ok()?;
    (position > 0).then_some(position)
}

fn input_of(sample: &Sample) -> Option<Input> {
    let value = numeric_value(sample)?;
    match (sample.device.as_str(), sample.attribute.as_str()) {
        (DOME, "percentage_open") => Some(Input::OpenPct(value)),
        (WEATHER, "dust_concentration") => Some(Input::Dust(value)),
        (WEATHER, "relative_humidity") => Some(Input::Rh(value)),
        (WEATHER, "dew_point") => Some(Input::DewPoint(value)),
        (device, "glass_temperature") => segment_position(device).map(|p| Input::Glass(p, value)),
        _ => None,
    }
}

fn hour_of(ts_ns: i64) -> i64 {
    ts_ns.div_euclid(3_600_000_000_000) * 3600
}

fn day_of(ts_ns: i64) -> i64 {
    ts_ns.div_euclid(86_400_000_000_000)
}

impl ExposureState {
    /// Current totals per position.
    pub fn totals(&self) -> &BTreeMap<u32, ExposureTotals> {
        &self.totals
    }

    /// Folds a batch in; returns one row per position for every hour the
    /// batch's data reached.
    pub fn apply(&mut self, samples: &[Sample]) -> Vec<ExposureRow> {
        let mut inputs: Vec<(i64, Input)> = samples
            .iter()
            .filter_map(|s| input_of(s).map(|input| (s.ts_unix_ns, input)))
            .collect();
        inputs.sort_by_key(|(ts, _)| *ts);
        let mut rows = Vec::new();
        for (ts, input) in inputs {
            if let Some(last) = self.last_ts_ns.filter(|last| ts > *last) {
                if hour_of(ts) != hour_of(last) {
                    self.snapshot(hour_of(last), &mut rows);
                }
                self.integrate(last, ts);
            }
            if self.last_ts_ns.is_none_or(|last| ts >= last) {
                self.last_ts_ns = Some(ts);
            }
            self.set(input);
        }
        if let Some(last) = self.last_ts_ns.filter(|_| !samples.is_empty()) {
            self.snapshot(hour_of(last), &mut rows);
        }
        rows.dedup_by(|b, a| a.position == b.position && a.hour_start == b.hour_start);
        rows
    }

    fn set(&mut self, input: Input) {
        match input {
            Input::OpenPct(pct) => self.open_fraction = Some((pct / 100.0).clamp(0.0, 1.0)),
            Input::Dust(dust) => {
                self.dust_ug_m3 = Some(dust);
                if !self.in_calima && dust >= CALIMA_START_UG_M3 {
                    self.in_calima = true;
                    for totals in self.totals.values_mut() {
                        totals.calima_events += 1;
                    }
                } else if self.in_calima && dust < CALIMA_END_UG_M3 {
                    self.in_calima = false;
                }
            }
            Input::Rh(rh) => self.rh_pct = Some(rh),
            Input::DewPoint(dew) => self.dew_point_c = Some(dew),
            Input::Glass(position, temp) => {
                self.glass_c.insert(position, temp);
                let in_calima = self.in_calima;
                self.totals
                    .entry(position)
                    .or_insert_with(|| ExposureTotals {
                        // A position first seen during an episode lives through it.
                        calima_events: u32::from(in_calima),
                        ..Default::default()
                    });
            }
        }
    }

    fn integrate(&mut self, from_ns: i64, to_ns: i64) {
        let hours = (to_ns - from_ns).min(MAX_HOLD_NS) as f64 / NS_PER_HOUR;
        let new_day = day_of(to_ns) != day_of(from_ns);
        let open = self.open_fraction.unwrap_or(0.0);
        let dust = self.dust_ug_m3.unwrap_or(0.0);
        let humid = self.rh_pct.is_some_and(|rh| rh > HUMID_RH_PCT);
        for (position, totals) in self.totals.iter_mut() {
            totals.open_dome_hours += hours * open;
            totals.dust_dose_ug_m3_h += hours * open * dust;
            if humid {
                totals.humid_hours += hours;
            }
            let dew_risk = match (self.glass_c.get(position), self.dew_point_c) {
                (Some(glass), Some(dew)) => glass - dew < DEW_MARGIN_C,
                _ => false,
            };
            if dew_risk {
                totals.dew_risk_hours += hours;
            }
            if new_day || totals.days_with_data == 0 {
                totals.days_with_data += 1;
            }
        }
    }

    fn snapshot(&self, hour_start: i64, rows: &mut Vec<ExposureRow>) {
        rows.extend(self.totals.iter().map(|(position, totals)| ExposureRow {
            position: *position,
            hour_start,
            totals: *totals,
        }));
    }
}

#[cfg(test)]
mod tests {
    use obs_proto::v1::sample;

    use super::*;

    const S: i64 = 1_000_000_000;

    fn at(device: &str, attribute: &str, ts_s: i64, value: f64) -> Sample {
        Sample {
            device: device.into(),
            attribute: attribute.into(),
            ts_unix_ns: ts_s * S,
            value: Some(sample::Value::DoubleValue(value)),
            ..Default::default()
        }
    }

    /// One minute of 1 Hz data with the given dome opening, dust and RH.
    fn minute(
        start_s: i64,
        open_pct: f64,
        dust: f64,
        rh: f64,
        glass: f64,
        dew: f64,
    ) -> Vec<Sample> {
        (0..60)
            .flat_map(|i| {
                let t = start_s + i;
                [
                    at(DOME, "percentage_open", t, open_pct),
                    at(WEATHER, "dust_concentration", t, dust),
                    at(WEATHER, "relative_humidity", t, rh),
                    at(WEATHER, "dew_point", t, dew),
                    at("m1/segment/01", "glass_temperature", t, glass),
                    at("m1/segment/02", "glass_temperature", t, glass + 5.0),
                ]
            })
            .collect()
    }

    #[test]
    fn an_open_dusty_humid_hour_accumulates_each_quantity() {
        let mut state = ExposureState::default();
        let mut rows = Vec::new();
        for m in 0..60 {
            rows = state.apply(&minute(m * 60, 100.0, 30.0, 85.0, 5.0, 4.0));
        }
        let p1 = state.totals()[&1];
        let p2 = state.totals()[&2];
        // 3599 one-second intervals in the hour.
        let hours = 3599.0 / 3600.0;
        assert!((p1.open_dome_hours - hours).abs() < 1e-9, "{p1:?}");
        assert!((p1.dust_dose_ug_m3_h - 30.0 * hours).abs() < 1e-6, "{p1:?}");
        assert!((p1.humid_hours - hours).abs() < 1e-9);
        assert!(
            (p1.dew_risk_hours - hours).abs() < 1e-9,
            "glass 1 °C above dew point"
        );
        assert_eq!(p2.dew_risk_hours, 0.0, "glass 6 °C above dew point");
        assert_eq!(p1.calima_events, 1);
        assert_eq!(rows.len(), 2, "one row per position");
        assert_eq!(rows[0].hour_start, 0);
    }

    #[test]
    fn a_closed_dome_gathers_no_dust_and_gaps_are_capped() {
        let mut state = ExposureState::default();
        state.apply(&minute(0, 0.0, 500.0, 50.0, 10.0, 0.0));
        // Ten hours later, open: the closed state is held for two minutes at
        // most, then the open minute counts its 59 intervals.
        state.apply(&minute(36_000, 100.0, 0.0, 50.0, 10.0, 0.0));
        let p1 = state.totals()[&1];
        assert_eq!(p1.dust_dose_ug_m3_h, 0.0);
        let expected_open = 59.0 / 3600.0;
        assert!((p1.open_dome_hours - expected_open).abs() < 1e-9, "{p1:?}");
    }

    #[test]
    fn crossing_an_hour_writes_rows_for_both_hours() {
        let mut state = ExposureState::default();
        let rows = state.apply(&minute(3570, 100.0, 0.0, 50.0, 10.0, 0.0));
        let hours: Vec<_> = rows.iter().map(|r| (r.position, r.hour_start)).collect();
        assert_eq!(hours, vec![(1, 0), (2, 0), (1, 3600), (2, 3600)]);
        assert!(rows[0].totals.open_dome_hours < rows[2].totals.open_dome_hours);
    }

    #[test]
    fn replaying_from_the_same_state_gives_the_same_rows() {
        let mut state = ExposureState::default();
        state.apply(&minute(0, 100.0, 25.0, 85.0, 5.0, 4.0));
        let before = state.clone();
        let batch = minute(60, 50.0, 5.0, 60.0, 5.0, 4.0);
        let first = state.apply(&batch);
        let mut again = before;
        assert_eq!(again.apply(&batch), first);
        assert_eq!(again, state);
    }

    #[test]
    fn calima_episodes_count_once_with_hysteresis() {
        let mut state = ExposureState::default();
        let dust = |t, v| at(WEATHER, "dust_concentration", t, v);
        state.apply(&[at("m1/segment/01", "glass_temperature", 0, 5.0)]);
        state.apply(&[
            dust(1, 25.0),
            dust(2, 15.0),
            dust(3, 22.0),
            dust(4, 5.0),
            dust(5, 21.0),
        ]);
        assert_eq!(state.totals()[&1].calima_events, 2);
    }

    #[test]
    fn positions_come_from_segment_devices() {
        assert_eq!(segment_position("m1/segment/07"), Some(7));
        assert_eq!(segment_position("m1/segment/00"), None);
        assert_eq!(segment_position("m2/segment/07"), None);
    }
}

//! Dome shutter rules (DOMAIN.md): open only at night and only while no
//! weather hold is active.
//!
//! | hold | closes when | clears when |
//! |---|---|---|
//! | humidity | RH ≥ 90 % | RH ≤ 80 % and RH has stayed < 90 % for 20 min |
//! | dew point | any segment's glass within 2 °C of the dew point | every segment ≥ 3 °C above it, and no segment within 2 °C for 20 min |
//! | wind | sustained > 20 m/s or gust > 22 m/s | sustained ≤ 18 and gust ≤ 20, and no close condition for 30 min |
//! | dust | dust ≥ 12 µg/m³ (the safety limit; the 20 µg/m³ warning level is reported as ALARM by the station) | dust ≤ 10 µg/m³ and no close condition for 30 min |
//!
//! Night is sun elevation below `night_sun_elevation_deg` (default −12°,
//! nautical twilight). The shutter moves at `100 / travel_seconds` % per second.
//! Holds are evaluated on the environment's sub-steps (≤ 60 s), so waits are
//! resolved to the sub-step.

use serde::{Deserialize, Serialize};

use super::event::Event;

/// Margin between glass temperature and dew point under which a segment is at dew risk, °C.
pub const DEW_RISK_MARGIN_C: f64 = 2.0;

/// Operating rules of the dome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DomePolicy {
    /// The dome may open while the sun is below this elevation, degrees.
    pub night_sun_elevation_deg: f64,
    /// Close at or above this RH, %.
    pub humidity_close_pct: f64,
    /// Reopen only at or below this RH, %.
    pub humidity_reopen_pct: f64,
    /// ... and only after RH has been below the close level this long, minutes.
    pub humidity_wait_minutes: f64,
    /// Close when a segment's glass is within this margin of the dew point, °C.
    pub dew_close_margin_c: f64,
    /// Reopen only when every segment is at least this far above the dew point, °C.
    pub dew_reopen_margin_c: f64,
    /// ... and the close condition has not held for this long, minutes.
    pub dew_wait_minutes: f64,
    /// Close above this sustained wind speed, m/s.
    pub wind_close_m_s: f64,
    /// Close above this gust speed, m/s.
    pub gust_close_m_s: f64,
    /// Reopen only at or below this sustained speed, m/s.
    pub wind_reopen_m_s: f64,
    /// Reopen only at or below this gust speed, m/s.
    pub gust_reopen_m_s: f64,
    /// Wait after the last wind close condition, minutes.
    pub wind_wait_minutes: f64,
    /// Close at or above this dust concentration, µg/m³; `None` never closes for dust.
    pub dust_close_ug_m3: Option<f64>,
    /// Reopen only at or below this concentration, µg/m³.
    pub dust_reopen_ug_m3: f64,
    /// Wait after the last dust close condition, minutes.
    pub dust_wait_minutes: f64,
    /// Time for a full open or close, seconds.
    pub travel_seconds: f64,
}

impl Default for DomePolicy {
    fn default() -> Self {
        Self {
            night_sun_elevation_deg: -12.0,
            humidity_close_pct: 90.0,
            humidity_reopen_pct: 80.0,
            humidity_wait_minutes: 20.0,
            dew_close_margin_c: DEW_RISK_MARGIN_C,
            dew_reopen_margin_c: 3.0,
            dew_wait_minutes: 20.0,
            wind_close_m_s: 20.0,
            gust_close_m_s: 22.0,
            wind_reopen_m_s: 18.0,
            gust_reopen_m_s: 20.0,
            wind_wait_minutes: 30.0,
            dust_close_ug_m3: Some(12.0),
            dust_reopen_ug_m3: 10.0,
            dust_wait_minutes: 30.0,
            travel_seconds: 120.0,
        }
    }
}

/// Shutter state as the dome device reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DomeState {
    /// Fully open.
    Open,
    /// Fully closed.
    Closed,
    /// Opening or closing.
    Moving,
}

impl DomeState {
    /// `OPEN`, `CLOSED` or `MOVING`.
    pub fn as_str(self) -> &'static str {
        match self {
            DomeState::Open => "OPEN",
            DomeState::Closed => "CLOSED",
            DomeState::Moving => "MOVING",
        }
    }
}

/// Why the dome is (being) closed; the first that applies, in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CloseReason {
    /// The sun is up (or in twilight).
    Daytime,
    /// Sustained wind or gusts.
    Wind,
    /// Relative humidity.
    Humidity,
    /// Mirror close to the dew point.
    DewPoint,
    /// Dust above the safety limit.
    Dust,
}

impl CloseReason {
    /// Lower-case name, e.g. `dew_point`.
    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::Daytime => "daytime",
            CloseReason::Wind => "wind",
            CloseReason::Humidity => "humidity",
            CloseReason::DewPoint => "dew_point",
            CloseReason::Dust => "dust",
        }
    }
}

/// One weather hold with its hysteresis.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Hold {
    /// The hold keeps the dome closed.
    pub active: bool,
    /// Last time the close condition held, Unix seconds.
    pub last_close_condition_unix_s: f64,
}

impl Hold {
    fn update(&mut self, now_s: f64, close: bool, reopen_ok: bool, wait_minutes: f64) {
        if close {
            self.active = true;
            self.last_close_condition_unix_s = now_s;
        } else if self.active
            && reopen_ok
            && now_s - self.last_close_condition_unix_s >= wait_minutes * 60.0
        {
            self.active = false;
        }
    }
}

/// The weather holds of the dome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct DomeHolds {
    /// Humidity hold.
    pub humidity: Hold,
    /// Dew-point hold.
    pub dew_point: Hold,
    /// Wind hold.
    pub wind: Hold,
    /// Dust hold.
    pub dust: Hold,
}

impl DomeHolds {
    /// Any weather hold active.
    pub fn any(&self) -> bool {
        self.humidity.active || self.dew_point.active || self.wind.active || self.dust.active
    }

    fn reason(&self, is_night: bool) -> Option<CloseReason> {
        if !is_night {
            Some(CloseReason::Daytime)
        } else if self.wind.active {
            Some(CloseReason::Wind)
        } else if self.humidity.active {
            Some(CloseReason::Humidity)
        } else if self.dew_point.active {
            Some(CloseReason::DewPoint)
        } else if self.dust.active {
            Some(CloseReason::Dust)
        } else {
            None
        }
    }
}

/// The dome now.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DomeStatus {
    /// Open, closed or moving.
    pub state: DomeState,
    /// Shutter opening, 0–100 %.
    pub percent_open: f64,
    /// Why the dome is closed or closing; `None` while it is open or opening.
    pub closed_reason: Option<CloseReason>,
    /// The weather holds and their timers.
    pub holds: DomeHolds,
}

impl Default for DomeStatus {
    fn default() -> Self {
        Self {
            state: DomeState::Closed,
            percent_open: 0.0,
            closed_reason: Some(CloseReason::Daytime),
            holds: DomeHolds::default(),
        }
    }
}

impl DomeStatus {
    /// Fraction of the aperture exposed, 0–1.
    pub fn open_fraction(&self) -> f64 {
        self.percent_open / 100.0
    }
}

/// What the dome decides on.
#[derive(Debug, Clone, Copy)]
pub struct DomeInputs {
    /// Sun below the opening elevation.
    pub is_night: bool,
    /// Relative humidity, %.
    pub relative_humidity_pct: f64,
    /// Smallest (glass temperature − dew point) over the segments, °C.
    pub min_dew_spread_c: f64,
    /// Sustained wind, m/s.
    pub wind_speed_m_s: f64,
    /// Gust, m/s.
    pub wind_gust_m_s: f64,
    /// Dust, µg/m³.
    pub dust_ug_m3: f64,
}

/// Advances the dome by `dt_s` ending at `now_s`, pushing Opened/Closed events on command changes.
pub fn update_dome(
    status: &mut DomeStatus,
    policy: &DomePolicy,
    inputs: &DomeInputs,
    now_s: f64,
    dt_s: f64,
    events: &mut Vec<Event>,
) {
    let p = policy;
    let h = &mut status.holds;
    let rh = inputs.relative_humidity_pct;
    h.humidity.update(
        now_s,
        rh >= p.humidity_close_pct,
        rh <= p.humidity_reopen_pct,
        p.humidity_wait_minutes,
    );
    let spread = inputs.min_dew_spread_c;
    h.dew_point.update(
        now_s,
        spread < p.dew_close_margin_c,
        spread >= p.dew_reopen_margin_c,
        p.dew_wait_minutes,
    );
    let (ws, gust) = (inputs.wind_speed_m_s, inputs.wind_gust_m_s);
    h.wind.update(
        now_s,
        ws > p.wind_close_m_s || gust > p.gust_close_m_s,
        ws <= p.wind_reopen_m_s && gust <= p.gust_reopen_m_s,
        p.wind_wait_minutes,
    );
    match p.dust_close_ug_m3 {
        Some(limit) => h.dust.update(
            now_s,
            inputs.dust_ug_m3 >= limit,
            inputs.dust_ug_m3 <= p.dust_reopen_ug_m3,
            p.dust_wait_minutes,
        ),
        None => h.dust.active = false,
    }

    let reason = h.reason(inputs.is_night);
    let want_open = reason.is_none();
    let was_opening = status.closed_reason.is_none();
    let at_unix_ns = (now_s * 1e9).round() as i64;
    if want_open && !was_opening {
        events.push(Event::DomeOpened { at_unix_ns });
    } else if let Some(r) = reason
        && was_opening
    {
        events.push(Event::DomeClosed {
            at_unix_ns,
            reason: r,
        });
    }
    status.closed_reason = reason;

    let travel = 100.0 * dt_s / p.travel_seconds.max(1e-3);
    status.percent_open = if want_open {
        (status.percent_open + travel).min(100.0)
    } else {
        (status.percent_open - travel).max(0.0)
    };
    status.state = if status.percent_open >= 100.0 {
        DomeState::Open
    } else if status.percent_open <= 0.0 {
        DomeState::Closed
    } else {
        DomeState::Moving
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs(rh: f64) -> DomeInputs {
        DomeInputs {
            is_night: true,
            relative_humidity_pct: rh,
            min_dew_spread_c: 10.0,
            wind_speed_m_s: 5.0,
            wind_gust_m_s: 6.0,
            dust_ug_m3: 2.0,
        }
    }

    /// Steps one minute at a time through an RH series; returns percent open after each.
    fn run(status: &mut DomeStatus, rh: &[f64], t0: f64) -> Vec<f64> {
        let policy = DomePolicy::default();
        let mut events = Vec::new();
        rh.iter()
            .enumerate()
            .map(|(k, &v)| {
                update_dome(
                    status,
                    &policy,
                    &inputs(v),
                    t0 + 60.0 * (k as f64 + 1.0),
                    60.0,
                    &mut events,
                );
                status.percent_open
            })
            .collect()
    }

    #[test]
    fn humidity_hysteresis_follows_the_rule() {
        let mut s = DomeStatus::default();
        // open in dry air
        let open = run(&mut s, &[40.0; 3], 0.0);
        assert_eq!(open[2], 100.0);
        assert_eq!(s.state, DomeState::Open);
        // RH reaches 90 -> closes
        run(&mut s, &[90.0], 180.0);
        assert_eq!(s.closed_reason, Some(CloseReason::Humidity));
        // RH falls to 85 for 30 min: below 90 but above 80 -> stays closed
        let p = run(&mut s, &[85.0; 30], 240.0);
        assert!(p.iter().all(|&v| v == 0.0), "{p:?}");
        // RH drops to 79 but only 19 min after last >= 90 would be too early:
        // last >= 90 was at t=240; now t>=2040 so the 20 min wait has passed -> opens
        run(&mut s, &[79.0], 2040.0);
        assert_eq!(s.closed_reason, None);

        // Fresh case: 90 then straight to 75: must wait 20 min after the 90 reading.
        let mut s = DomeStatus::default();
        run(&mut s, &[40.0; 3], 0.0);
        run(&mut s, &[95.0], 180.0); // t = 240
        let p = run(&mut s, &[75.0; 25], 240.0); // t = 300 .. 1740
        let first_open_minute = p.iter().position(|&v| v > 0.0).expect("reopens");
        // minute k is at t = 300 + 60k; needs t - 240 >= 1200 -> k >= 19
        assert_eq!(first_open_minute, 19, "{p:?}");
    }

    #[test]
    fn closed_by_day_wind_dew_and_dust() {
        let policy = DomePolicy::default();
        let mut events = Vec::new();
        let cases = [
            (
                DomeInputs {
                    is_night: false,
                    ..inputs(40.0)
                },
                CloseReason::Daytime,
            ),
            (
                DomeInputs {
                    wind_speed_m_s: 21.0,
                    ..inputs(40.0)
                },
                CloseReason::Wind,
            ),
            (
                DomeInputs {
                    wind_gust_m_s: 23.0,
                    ..inputs(40.0)
                },
                CloseReason::Wind,
            ),
            (
                DomeInputs {
                    min_dew_spread_c: 1.5,
                    ..inputs(40.0)
                },
                CloseReason::DewPoint,
            ),
            (
                DomeInputs {
                    dust_ug_m3: 15.0,
                    ..inputs(40.0)
                },
                CloseReason::Dust,
            ),
        ];
        for (input, want) in cases {
            let mut s = DomeStatus::default();
            update_dome(&mut s, &policy, &input, 60.0, 60.0, &mut events);
            assert_eq!(s.closed_reason, Some(want));
            assert_eq!(s.percent_open, 0.0);
            assert_eq!(s.state, DomeState::Closed);
        }
    }

    #[test]
    fn shutter_moves_over_travel_time_and_reports_events() {
        let policy = DomePolicy::default();
        let mut s = DomeStatus::default();
        let mut events = Vec::new();
        update_dome(&mut s, &policy, &inputs(40.0), 60.0, 60.0, &mut events);
        assert_eq!(s.state, DomeState::Moving);
        assert_eq!(s.percent_open, 50.0);
        assert_eq!(
            events,
            vec![Event::DomeOpened {
                at_unix_ns: 60_000_000_000
            }]
        );
        update_dome(&mut s, &policy, &inputs(40.0), 120.0, 60.0, &mut events);
        assert_eq!(s.state, DomeState::Open);
        update_dome(&mut s, &policy, &inputs(95.0), 180.0, 60.0, &mut events);
        assert_eq!(
            events.last(),
            Some(&Event::DomeClosed {
                at_unix_ns: 180_000_000_000,
                reason: CloseReason::Humidity
            })
        );
        assert_eq!(events.len(), 2);
    }
}

//! Things that happened during a step, drained with
//! [`super::Environment::drain_events`].

use serde::{Deserialize, Serialize};

use super::dome::CloseReason;
use super::state::Reflectivity;

/// What kind of maintenance a [`Event::Cleaning`] or [`Event::Recoat`] was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MaintenanceKind {
    /// CO₂ snow or wash: removes most loose dust and film.
    Cleaning,
    /// Strip and recoat: restores the fresh reflectivity.
    Recoat,
}

/// One event; every variant carries the simulated time it happened at.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// The shutter started opening (fully open `travel_seconds` later).
    DomeOpened {
        /// Unix ns.
        at_unix_ns: i64,
    },
    /// The shutter started closing, and why.
    DomeClosed {
        /// Unix ns.
        at_unix_ns: i64,
        /// The primary reason.
        reason: CloseReason,
    },
    /// A calima (Saharan dust) episode began.
    CalimaStarted {
        /// Unix ns.
        at_unix_ns: i64,
        /// Peak concentration of the episode, µg/m³.
        peak_ug_m3: f64,
        /// Planned length, hours.
        duration_hours: f64,
        /// Scripted through `force_calima` rather than drawn.
        forced: bool,
    },
    /// The calima episode ended.
    CalimaEnded {
        /// Unix ns.
        at_unix_ns: i64,
    },
    /// A segment was cleaned; true reflectivity before and after.
    Cleaning {
        /// Unix ns.
        at_unix_ns: i64,
        /// Segment position, 1-based.
        segment: u32,
        /// True reflectivity before, %.
        before: Reflectivity,
        /// True reflectivity after, %.
        after: Reflectivity,
    },
    /// A segment was recoated; true reflectivity before and after.
    Recoat {
        /// Unix ns.
        at_unix_ns: i64,
        /// Segment position, 1-based.
        segment: u32,
        /// True reflectivity before, %.
        before: Reflectivity,
        /// True reflectivity after (the fresh values), %.
        after: Reflectivity,
    },
    /// The reflectometer measured a segment (true value plus instrument noise).
    ReflectometerMeasurement {
        /// Unix ns.
        at_unix_ns: i64,
        /// Segment position, 1-based.
        segment: u32,
        /// Measured reflectivity, %.
        values: Reflectivity,
    },
}

impl Event {
    /// When the event happened, Unix ns.
    pub fn at_unix_ns(&self) -> i64 {
        match self {
            Event::DomeOpened { at_unix_ns }
            | Event::DomeClosed { at_unix_ns, .. }
            | Event::CalimaStarted { at_unix_ns, .. }
            | Event::CalimaEnded { at_unix_ns }
            | Event::Cleaning { at_unix_ns, .. }
            | Event::Recoat { at_unix_ns, .. }
            | Event::ReflectometerMeasurement { at_unix_ns, .. } => *at_unix_ns,
        }
    }
}

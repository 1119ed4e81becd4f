//! Maintenance a site reports itself: a fog-node device tells the hub about
//! a cleaning or recoat it performed as a sample of device
//! `m1/maintenance/1`, attribute `event`, whose string value is compact JSON:
//!
//! ```json
//! {"kind":"cleaning","segment":7,
//!  "before":{"470nm":86.7,"530nm":86.5,"650nm":85.5,"880nm":80.3},
//!  "after":{"470nm":89.6,"530nm":89.5,"650nm":88.0,"880nm":83.3}}
//! ```
//!
//! `kind` is `cleaning`, `recoat` or `inspection`; `segment` is the mirror
//! position (1-based); `before` / `after` are reflectivities in percent
//! keyed by wavelength (`<nm>nm`), either may be missing. The sample's time
//! is the event's time. Unknown keys are ignored (newer fog-nodes may say
//! more).
//!
//! [`parse_event`] is pure and never panics on any input. [`SiteMaintenance`]
//! turns the events of an accepted batch into maintenance records of the
//! serial installed at that site and position at that time (source
//! `site:<site>`). It runs where a batch is applied — the embedded ingest and
//! the Kafka sink — *before* the batch's rows and state are written, so a
//! crash in between replays the batch and rewrites the same records
//! (idempotent by `(serial, at, kind)`), and a store failure leaves the batch
//! unwritten to be retried. A malformed event, or one for a position where no
//! segment is installed, is logged with the site and seq, counted, and
//! skipped: it never stops the batch.

use std::collections::BTreeMap;
use std::sync::Arc;

use obs_proto::v1::{Sample, TelemetryBatch, sample};
use serde::Deserialize;

use crate::store::StoreResult;
use crate::store::segments::{
    MaintenanceKind, MaintenanceOutcome, MaintenanceRecord, ReflectivityByWavelength, SegmentStore,
};

/// The device that reports maintenance.
pub const DEVICE: &str = "m1/maintenance/1";
/// Its attribute carrying one event.
pub const ATTRIBUTE: &str = "event";
/// Longest event JSON accepted, in bytes.
pub const MAX_EVENT_BYTES: usize = 4096;
/// Highest mirror position an event may name.
pub const MAX_POSITION: u32 = 100;
/// Wavelengths a reading may be given at, nm.
pub const WAVELENGTH_RANGE_NM: std::ops::RangeInclusive<u32> = 200..=20_000;

/// One maintenance event as reported by a site.
#[derive(Debug, Clone, PartialEq)]
pub struct SiteMaintenanceEvent {
    pub kind: MaintenanceKind,
    /// Mirror position, 1-based.
    pub position: u32,
    pub at_unix_ns: i64,
    pub before: ReflectivityByWavelength,
    pub after: ReflectivityByWavelength,
}

/// Why an event sample could not be read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EventError {
    #[error("the value is not a string")]
    NotAString,
    #[error("the event is {len} bytes, more than {MAX_EVENT_BYTES}")]
    TooLong { len: usize },
    #[error("invalid json: {0}")]
    Json(String),
    #[error("kind {0:?} is not cleaning, recoat or inspection")]
    UnknownKind(String),
    #[error("segment {0} is not a mirror position (1..={MAX_POSITION})")]
    BadSegment(u64),
    #[error("{field}: {reason}")]
    BadReading { field: String, reason: String },
}

#[derive(Deserialize)]
struct RawEvent {
    kind: String,
    segment: u64,
    #[serde(default)]
    before: Option<BTreeMap<String, f64>>,
    #[serde(default)]
    after: Option<BTreeMap<String, f64>>,
}

/// Checks one reflectivity reading: a wavelength in [`WAVELENGTH_RANGE_NM`]
/// and a finite percentage in 0..=100.
pub fn check_reading(wavelength_nm: u32, percent: f64) -> Result<(), String> {
    if !WAVELENGTH_RANGE_NM.contains(&wavelength_nm) {
        return Err(format!(
            "wavelength {wavelength_nm} nm is out of range {}..={} nm",
            WAVELENGTH_RANGE_NM.start(),
            WAVELENGTH_RANGE_NM.end()
        ));
    }
    if !(percent.is_finite() && (0.0..=100.0).contains(&percent)) {
        return Err(format!(
            "reflectivity {percent} % at {wavelength_nm} nm is out of range 0..=100 %"
        ));
    }
    Ok(())
}

fn readings(
    field: &str,
    raw: Option<BTreeMap<String, f64>>,
) -> Result<ReflectivityByWavelength, EventError> {
    let bad = |reason: String| EventError::BadReading {
        field: field.to_owned(),
        reason,
    };
    raw.unwrap_or_default()
        .into_iter()
        .map(|(key, percent)| {
            let nm = key
                .strip_suffix("nm")
                .and_then(|n| n.parse::<u32>().ok())
                .ok_or_else(|| bad(format!("key {key:?} is not a wavelength like \"650nm\"")))?;
            check_reading(nm, percent).map_err(bad)?;
            Ok((nm, percent))
        })
        .collect()
}

/// Reads one event's JSON; `at_unix_ns` is the sample's time.
pub fn parse_event(json: &str, at_unix_ns: i64) -> Result<SiteMaintenanceEvent, EventError> {
    if json.len() > MAX_EVENT_BYTES {
        return Err(EventError::TooLong { len: json.len() });
    }
    let raw: RawEvent = serde_json::from_str(json).map_err(|e| EventError::Json(e.to_string()))?;
    let kind = MaintenanceKind::parse(&raw.kind).ok_or(EventError::UnknownKind(raw.kind))?;
    let position = u32::try_from(raw.segment)
        .ok()
        .filter(|p| (1..=MAX_POSITION).contains(p))
        .ok_or(EventError::BadSegment(raw.segment))?;
    Ok(SiteMaintenanceEvent {
        kind,
        position,
        at_unix_ns,
        before: readings("before", raw.before)?,
        after: readings("after", raw.after)?,
    })
}

/// Whether `sample` is a maintenance event sample.
pub fn is_event(sample: &Sample) -> bool {
    sample.device == DEVICE && sample.attribute == ATTRIBUTE
}

/// Reads an event sample.
pub fn event_of(sample: &Sample) -> Result<SiteMaintenanceEvent, EventError> {
    match &sample.value {
        Some(sample::Value::StringValue(json)) => parse_event(json, sample.ts_unix_ns),
        _ => Err(EventError::NotAString),
    }
}

/// What [`SiteMaintenance::apply`] did with one batch's events.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SiteMaintenanceReport {
    /// New maintenance records.
    pub recorded: usize,
    /// Events already recorded (a replayed batch).
    pub duplicates: usize,
    /// Events that could not be read.
    pub malformed: usize,
    /// Events for a position with no segment installed at the time.
    pub unknown_segment: usize,
    /// Events whose key holds a different stored event (kept as it was).
    pub conflicts: usize,
}

/// Records the maintenance events of accepted batches.
#[derive(Clone)]
pub struct SiteMaintenance {
    store: Arc<dyn SegmentStore>,
}

impl SiteMaintenance {
    pub fn new(store: Arc<dyn SegmentStore>) -> Self {
        SiteMaintenance { store }
    }

    /// Records every event of `batch` (from `site`); see the module docs.
    /// Only store failures are errors.
    pub async fn apply(
        &self,
        site: &str,
        batch: &TelemetryBatch,
    ) -> StoreResult<SiteMaintenanceReport> {
        let mut report = SiteMaintenanceReport::default();
        for sample in batch.samples.iter().filter(|s| is_event(s)) {
            let (seq, ts) = (batch.seq, sample.ts_unix_ns);
            let event = match event_of(sample) {
                Ok(event) => event,
                Err(error) => {
                    tracing::warn!(%error, site, seq, ts, "malformed maintenance event skipped");
                    crate::metrics::site_maintenance(site, "malformed");
                    report.malformed += 1;
                    continue;
                }
            };
            let position = event.position;
            let Some(installed) = self.store.installation_at(site, position, ts).await? else {
                tracing::warn!(
                    site,
                    seq,
                    ts,
                    position,
                    kind = event.kind.as_str(),
                    "maintenance event for a position with no installed segment skipped"
                );
                crate::metrics::site_maintenance(site, "unknown_segment");
                report.unknown_segment += 1;
                continue;
            };
            let record = MaintenanceRecord {
                serial: installed.serial,
                kind: event.kind,
                at_unix_ns: ts,
                before: event.before,
                after: event.after,
                notes: String::new(),
                source: format!("site:{site}"),
                site: site.to_owned(),
                position,
                coating_batch: String::new(),
                recorded_at_unix_ns: crate::time::now_unix_ns(),
            };
            match self.store.record_maintenance(&record).await? {
                MaintenanceOutcome::Created => {
                    tracing::info!(
                        site,
                        seq,
                        position,
                        serial = record.serial,
                        kind = record.kind.as_str(),
                        "site maintenance recorded"
                    );
                    crate::metrics::site_maintenance(site, "recorded");
                    report.recorded += 1;
                }
                MaintenanceOutcome::AlreadyRecorded(_) => {
                    crate::metrics::site_maintenance(site, "duplicate");
                    report.duplicates += 1;
                }
                MaintenanceOutcome::Conflict(existing) => {
                    tracing::warn!(
                        site,
                        seq,
                        position,
                        serial = record.serial,
                        kind = record.kind.as_str(),
                        existing_source = existing.source,
                        "a different maintenance event with the same time is recorded; kept it"
                    );
                    crate::metrics::site_maintenance(site, "conflict");
                    report.conflicts += 1;
                }
            }
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const NOT: &str = r#"{"kind":"cleaning","segment":7,"before":{"470nm":86.7,"530nm":86.5,"650nm":85.5,"880nm":80.3},"after":{"470nm":89.6,"530nm":89.5,"650nm":88.0,"880nm":83.3}}"#;

    #[test]
    fn reads_the_fog_nodes_event_json() {
        let event = parse_event(NOT, 42).unwrap();
        assert_eq!(event.kind, MaintenanceKind::Cleaning);
        assert_eq!((event.position, event.at_unix_ns), (7, 42));
        assert_eq!(event.before[&650], 85.5);
        assert_eq!(event.after[&880], 83.3);
        let recoat = parse_event(r#"{"kind":"recoat","segment":1,"extra":true}"#, 0).unwrap();
        assert!(recoat.before.is_empty() && recoat.after.is_empty());
    }

    #[test]
    fn malformed_events_say_what_is_wrong() {
        let cases = [
            ("{", "invalid json"),
            (r#"{"kind":"polish","segment":1}"#, "kind \"polish\""),
            (
                r#"{"kind":"cleaning","segment":0}"#,
                "segment 0 is not a mirror position",
            ),
            (r#"{"kind":"cleaning","segment":-3}"#, "invalid json"),
            (
                r#"{"kind":"cleaning","segment":2,"before":{"red":1}}"#,
                "before: key \"red\"",
            ),
            (
                r#"{"kind":"cleaning","segment":2,"after":{"650nm":130}}"#,
                "after: reflectivity 130 % at 650 nm is out of range 0..=100 %",
            ),
        ];
        for (json, expected) in cases {
            let error = parse_event(json, 0).unwrap_err().to_string();
            assert!(error.contains(expected), "{json}: {error}");
        }
        let long = format!("{{\"kind\":\"{}\"}}", "x".repeat(MAX_EVENT_BYTES));
        assert!(matches!(
            parse_event(&long, 0),
            Err(EventError::TooLong { .. })
        ));
        let not_text = Sample {
            device: DEVICE.into(),
            attribute: ATTRIBUTE.into(),
            value: Some(sample::Value::DoubleValue(1.0)),
            ..Default::default()
        };
        assert!(is_event(&not_text));
        assert_eq!(event_of(&not_text), Err(EventError::NotAString));
    }

    proptest! {
        /// Arbitrary text, and arbitrary JSON shaped like an event, never
        /// make the parser panic; whatever it accepts is within range.
        #[test]
        fn arbitrary_input_never_panics(text in ".{0,300}", ts in any::<i64>()) {
            let _ = parse_event(&text, ts);
        }

        #[test]
        fn accepted_events_are_in_range(
            kind in prop::sample::select(vec!["cleaning", "recoat", "inspection", "x"]),
            segment in any::<i64>(),
            nm in any::<i32>(),
            pct in any::<f64>(),
        ) {
            let json = serde_json::json!({
                "kind": kind, "segment": segment, "before": { format!("{nm}nm"): pct },
            });
            if let Ok(event) = parse_event(&json.to_string(), 0) {
                prop_assert!((1..=MAX_POSITION).contains(&event.position));
                for (nm, pct) in &event.before {
                    prop_assert!(check_reading(*nm, *pct).is_ok());
                }
            }
        }
    }
}

//! Mirror segments: versioned manufacturing records, installations at
//! telescope positions and maintenance events, behind [`SegmentStore`].
//!
//! Logical tables (the CQL of the Cassandra store; the embedded store keeps
//! the same rows in SQLite, with one `installations` table and an index for
//! the by-serial path):
//!
//! ```text
//! segments                ((serial))                     the current version
//! segment_versions        ((serial), version)            every version, 1 = first upload
//! installations           ((site), position, installed_at DESC)
//! installations_by_serial ((serial), installed_at DESC)
//! maintenance             ((serial), at, kind)           cleaning | recoat | inspection
//! ```
//!
//! The rules live here, once, as pure functions both stores call
//! ([`rules`]): an identical re-upload is "unchanged", a changed record
//! needs `replace` and becomes the next version (the previous one is kept);
//! a serial is installed at one position at a time, and installing over an
//! occupied position or installing a serial that is installed elsewhere
//! closes that installation; maintenance is idempotent by
//! `(serial, at, kind)`.
//!
//! Atomicity: the embedded store applies one [`SegmentStore::put_segment_records`]
//! call in one transaction. Cassandra has no multi-partition transaction: it
//! reads every current record first, decides every outcome, and only then
//! writes (each record's version row, then its current row). A crash or a
//! failed write in that last phase leaves part of the records written;
//! re-running the same upload is idempotent (the written ones come back
//! "unchanged", the rest are stored). Installations are written there as one
//! logged batch, which Cassandra applies completely or not at all.

pub mod rules;

use std::collections::BTreeMap;

use async_trait::async_trait;
use obs_manufacturing::SegmentRecord;
use prost::Message;

pub use self::rules::{
    FieldChange, InstallPlan, InstallRefusal, changed_fields, decide_put, plan_installation,
};
use super::StoreResult;

/// One version of a segment's manufacturing record, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredSegment {
    pub record: SegmentRecord,
    /// 1 for the first upload; each replace adds one.
    pub version: u32,
    pub uploaded_at_unix_ns: i64,
    /// Name of the API token that uploaded it.
    pub uploaded_by: String,
    /// File name the record came from (empty when unknown).
    pub source: String,
}

/// A record of an upload, with its provenance.
#[derive(Debug, Clone, PartialEq)]
pub struct NewSegmentRecord {
    pub record: SegmentRecord,
    pub uploaded_at_unix_ns: i64,
    pub uploaded_by: String,
    pub source: String,
}

impl NewSegmentRecord {
    /// The stored form of this record as `version`.
    pub fn into_stored(self, version: u32) -> StoredSegment {
        StoredSegment {
            record: self.record,
            version,
            uploaded_at_unix_ns: self.uploaded_at_unix_ns,
            uploaded_by: self.uploaded_by,
            source: self.source,
        }
    }
}

/// How [`SegmentStore::put_segment_records`] treats a batch of records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PutPolicy {
    /// A changed record becomes the next version instead of a conflict.
    pub replace: bool,
    /// Any conflict stores nothing at all.
    pub all_or_nothing: bool,
    /// Decide every outcome but write nothing.
    pub dry_run: bool,
}

/// What happened (or, when nothing was written, would have happened) to one
/// record of a put.
#[derive(Debug, Clone, PartialEq)]
pub enum PutOutcome {
    /// Stored as `version` (1 for a new serial).
    Stored { version: u32 },
    /// Identical to the current `version`; left as it was.
    Unchanged { version: u32 },
    /// Differs from the current `version` and replacing was not allowed.
    Conflict {
        version: u32,
        changes: Vec<FieldChange>,
    },
}

/// The outcome of every record of a put, in order, and whether anything
/// was written.
#[derive(Debug, Clone, PartialEq)]
pub struct PutReport {
    pub outcomes: Vec<PutOutcome>,
    /// False for a dry run, and for an all-or-nothing put with a conflict.
    pub written: bool,
}

impl PutReport {
    /// Whether any outcome is a conflict.
    pub fn has_conflict(&self) -> bool {
        self.outcomes
            .iter()
            .any(|o| matches!(o, PutOutcome::Conflict { .. }))
    }
}

/// A period of a segment at one telescope position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installation {
    pub serial: String,
    pub site: String,
    /// 1-based position in the primary mirror.
    pub position: u32,
    pub installed_at_unix_ns: i64,
    /// `None` while installed.
    pub removed_at_unix_ns: Option<i64>,
}

impl Installation {
    /// Whether the segment was there at `at_unix_ns`.
    pub fn covers(&self, at_unix_ns: i64) -> bool {
        self.installed_at_unix_ns <= at_unix_ns
            && self
                .removed_at_unix_ns
                .is_none_or(|removed| at_unix_ns < removed)
    }
}

/// "Segment `serial` was installed at `site` position `position` at `at`."
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallRequest {
    pub serial: String,
    pub site: String,
    pub position: u32,
    pub at_unix_ns: i64,
}

/// The installation recorded (or found, for a repeated request) and the
/// installations it closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallOutcome {
    pub installation: Installation,
    pub closed: Vec<Installation>,
    /// False when the segment was already installed there.
    pub created: bool,
}

/// Kinds of maintenance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MaintenanceKind {
    /// CO₂ snow or wash: recovers part of the lost reflectivity.
    Cleaning,
    /// Strip and recoat: restores the fresh reflectivity.
    Recoat,
    /// A measurement only.
    Inspection,
}

impl MaintenanceKind {
    /// The stored name: `cleaning`, `recoat`, `inspection`.
    pub fn as_str(self) -> &'static str {
        match self {
            MaintenanceKind::Cleaning => "cleaning",
            MaintenanceKind::Recoat => "recoat",
            MaintenanceKind::Inspection => "inspection",
        }
    }

    /// Parses a stored name.
    pub fn parse(text: &str) -> Option<MaintenanceKind> {
        match text {
            "cleaning" => Some(MaintenanceKind::Cleaning),
            "recoat" => Some(MaintenanceKind::Recoat),
            "inspection" => Some(MaintenanceKind::Inspection),
            _ => None,
        }
    }
}

/// Reflectivity in percent by wavelength in nm.
pub type ReflectivityByWavelength = BTreeMap<u32, f64>;

/// One cleaning, recoat or inspection of a segment.
#[derive(Debug, Clone, PartialEq)]
pub struct MaintenanceRecord {
    pub serial: String,
    pub kind: MaintenanceKind,
    pub at_unix_ns: i64,
    pub before: ReflectivityByWavelength,
    pub after: ReflectivityByWavelength,
    pub notes: String,
    /// `api:<token name>` or `site:<site id>`.
    pub source: String,
    /// Where the segment was installed at the time (empty / 0 if nowhere).
    pub site: String,
    pub position: u32,
    /// For a recoat: the new coating batch (may be empty).
    pub coating_batch: String,
    /// When the hub stored it.
    pub recorded_at_unix_ns: i64,
}

impl MaintenanceRecord {
    /// Whether `other` describes the same event: same key and the same
    /// measurements, notes and coating batch (who reported it, where and
    /// when it was stored do not matter).
    pub fn same_event(&self, other: &MaintenanceRecord) -> bool {
        self.serial == other.serial
            && self.kind == other.kind
            && self.at_unix_ns == other.at_unix_ns
            && self.before == other.before
            && self.after == other.after
            && self.notes == other.notes
            && self.coating_batch == other.coating_batch
    }
}

/// What [`SegmentStore::record_maintenance`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum MaintenanceOutcome {
    /// Stored.
    Created,
    /// The same event was already stored; nothing changed.
    AlreadyRecorded(MaintenanceRecord),
    /// A different event with the same `(serial, at, kind)` is stored; it
    /// was kept.
    Conflict(MaintenanceRecord),
}

/// Segment records, installations and maintenance.
#[async_trait]
pub trait SegmentStore: Send + Sync + 'static {
    /// Stores records (distinct serials) as [`PutPolicy`] says; see
    /// [`decide_put`] for each record's outcome and the module docs for
    /// atomicity.
    async fn put_segment_records(
        &self,
        records: Vec<NewSegmentRecord>,
        policy: PutPolicy,
    ) -> StoreResult<PutReport>;

    /// The current version of `serial`.
    async fn segment(&self, serial: &str) -> StoreResult<Option<StoredSegment>>;

    /// Every version of `serial`, oldest first (the last is the current one).
    async fn segment_versions(&self, serial: &str) -> StoreResult<Vec<StoredSegment>>;

    /// The current version of every segment, ordered by serial.
    async fn segments(&self) -> StoreResult<Vec<StoredSegment>>;

    /// Records an installation by [`plan_installation`]'s rules.
    async fn record_installation(
        &self,
        request: &InstallRequest,
    ) -> StoreResult<Result<InstallOutcome, InstallRefusal>>;

    /// Every installation of `serial`, oldest first.
    async fn installations_of(&self, serial: &str) -> StoreResult<Vec<Installation>>;

    /// The installation at `site` `position` covering `at_unix_ns`, if any.
    async fn installation_at(
        &self,
        site: &str,
        position: u32,
        at_unix_ns: i64,
    ) -> StoreResult<Option<Installation>>;

    /// Stores a maintenance event unless one with its key exists.
    async fn record_maintenance(
        &self,
        event: &MaintenanceRecord,
    ) -> StoreResult<MaintenanceOutcome>;

    /// Every maintenance event of `serial`, oldest first.
    async fn maintenance_of(&self, serial: &str) -> StoreResult<Vec<MaintenanceRecord>>;

    /// [`segment`](Self::segment) and [`maintenance_of`](Self::maintenance_of)
    /// for each of `serials`, in their order (a whole site's segments for
    /// fleet health). Stores override it to read in one go.
    async fn segments_with_maintenance(
        &self,
        serials: &[String],
    ) -> StoreResult<Vec<(Option<StoredSegment>, Vec<MaintenanceRecord>)>> {
        let mut out = Vec::with_capacity(serials.len());
        for serial in serials {
            out.push((
                self.segment(serial).await?,
                self.maintenance_of(serial).await?,
            ));
        }
        Ok(out)
    }
}

/// The stored bytes of a record: its `observatory.v1.SegmentRecord` encoding.
pub fn encode_record(record: &SegmentRecord) -> Vec<u8> {
    obs_proto::v1::SegmentRecord::from(record).encode_to_vec()
}

/// A record from its stored bytes; the error names the serial and field.
pub fn decode_record(bytes: &[u8]) -> Result<SegmentRecord, String> {
    let wire = obs_proto::v1::SegmentRecord::decode(bytes)
        .map_err(|e| format!("undecodable segment record: {e}"))?;
    let serial = wire.serial.clone();
    SegmentRecord::try_from(wire).map_err(|e| format!("segment record {serial}: {e}"))
}

/// Reflectivity readings as stored in the embedded store: JSON
/// `{"650": 85.5, ...}`.
pub fn reflectivity_to_json(values: &ReflectivityByWavelength) -> String {
    let map: serde_json::Map<String, serde_json::Value> = values
        .iter()
        .map(|(nm, pct)| (nm.to_string(), serde_json::json!(pct)))
        .collect();
    serde_json::Value::Object(map).to_string()
}

/// The inverse of [`reflectivity_to_json`].
pub fn reflectivity_from_json(text: &str) -> Result<ReflectivityByWavelength, String> {
    let map: BTreeMap<String, f64> =
        serde_json::from_str(text).map_err(|e| format!("reflectivity {text:?}: {e}"))?;
    map.into_iter()
        .map(|(nm, pct)| {
            nm.parse::<u32>()
                .map(|nm| (nm, pct))
                .map_err(|_| format!("reflectivity wavelength {nm:?} is not a number"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_and_readings_round_trip_through_their_stored_forms() {
        let record = obs_manufacturing::example_record();
        assert_eq!(decode_record(&encode_record(&record)).unwrap(), record);
        assert!(
            decode_record(b"\xff\xff")
                .unwrap_err()
                .contains("undecodable")
        );
        let readings = BTreeMap::from([(470, 86.7), (650, 85.5)]);
        let text = reflectivity_to_json(&readings);
        assert_eq!(text, r#"{"470":86.7,"650":85.5}"#);
        assert_eq!(reflectivity_from_json(&text).unwrap(), readings);
        assert!(reflectivity_from_json(r#"{"red":1.0}"#).is_err());
    }

    #[test]
    fn installations_cover_their_half_open_period() {
        let mut i = Installation {
            serial: "S".into(),
            site: "nrt".into(),
            position: 1,
            installed_at_unix_ns: 10,
            removed_at_unix_ns: Some(20),
        };
        assert!(!i.covers(9) && i.covers(10) && i.covers(19) && !i.covers(20));
        i.removed_at_unix_ns = None;
        assert!(i.covers(i64::MAX));
        assert_eq!(
            MaintenanceKind::parse("recoat"),
            Some(MaintenanceKind::Recoat)
        );
        assert_eq!(MaintenanceKind::parse("polish"), None);
    }
}

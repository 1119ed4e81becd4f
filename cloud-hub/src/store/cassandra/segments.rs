//! [`SegmentStore`] on Cassandra: `segments ((serial))`,
//! `segment_versions ((serial), version)`, `installations ((site), position,
//! installed_at)`, `installations_by_serial ((serial), installed_at)` and
//! `maintenance ((serial), at, kind)`.
//!
//! Cassandra has no transaction across partitions, so a put first reads the
//! current version of every record and decides every outcome, and writes
//! only when the whole put may go ahead (validate everything, then write).
//! Each stored record is written as its version row, then its current row.
//! A crash or a failed write during that last phase leaves part of the
//! records written; re-running the same upload is idempotent: what was
//! written comes back "unchanged" (or, for a version row whose current row
//! was not written yet, is written again with the same version number).
//!
//! An installation and the installations it closes are written as one
//! logged batch (to both installation tables), which Cassandra applies
//! completely or not at all. A maintenance event is inserted with a
//! lightweight transaction (`IF NOT EXISTS`), so two hub processes recording
//! the same `(serial, at, kind)` cannot both create it.
//!
//! Reads and writes of one hub are serialised per call by the service;
//! concurrent installations of one position from two hub replicas are not
//! guarded (installations are recorded by people, one at a time).

use async_trait::async_trait;
use futures::{StreamExt, TryStreamExt, stream};
use scylla::deserialize::row::DeserializeRow;
use scylla::serialize::row::SerializeRow;
use scylla::statement::batch::{Batch, BatchType};
use scylla::statement::prepared::PreparedStatement;
use scylla::value::{CqlValue, Row};

use super::{CassandraStore, WRITE_CONCURRENCY, fail};
use crate::store::StoreResult;
use crate::store::segments::{
    InstallOutcome, InstallPlan, InstallRefusal, InstallRequest, Installation, MaintenanceKind,
    MaintenanceOutcome, MaintenanceRecord, NewSegmentRecord, PutOutcome, PutPolicy, PutReport,
    ReflectivityByWavelength, SegmentStore, StoredSegment, decide_put, decode_record,
    encode_record, plan_installation,
};

/// The tables of this module, for `schema.rs`.
pub fn tables_cql(k: &str) -> Vec<(&'static str, String)> {
    vec![
        (
            "segments",
            format!(
                "CREATE TABLE IF NOT EXISTS {k}.segments (\
                 serial text PRIMARY KEY, version int, record blob, uploaded_at bigint, \
                 uploaded_by text, source text)"
            ),
        ),
        (
            "segment_versions",
            format!(
                "CREATE TABLE IF NOT EXISTS {k}.segment_versions (\
                 serial text, version int, record blob, uploaded_at bigint, \
                 uploaded_by text, source text, \
                 PRIMARY KEY ((serial), version)) WITH CLUSTERING ORDER BY (version ASC)"
            ),
        ),
        (
            "installations",
            format!(
                "CREATE TABLE IF NOT EXISTS {k}.installations (\
                 site text, position int, installed_at bigint, serial text, removed_at bigint, \
                 PRIMARY KEY ((site), position, installed_at)) \
                 WITH CLUSTERING ORDER BY (position ASC, installed_at DESC)"
            ),
        ),
        (
            "installations_by_serial",
            format!(
                "CREATE TABLE IF NOT EXISTS {k}.installations_by_serial (\
                 serial text, installed_at bigint, site text, position int, removed_at bigint, \
                 PRIMARY KEY ((serial), installed_at)) \
                 WITH CLUSTERING ORDER BY (installed_at DESC)"
            ),
        ),
        (
            "maintenance",
            format!(
                "CREATE TABLE IF NOT EXISTS {k}.maintenance (\
                 serial text, at bigint, kind text, \
                 reflectivity_before map<int, double>, reflectivity_after map<int, double>, \
                 notes text, source text, site text, position int, coating_batch text, \
                 recorded_at bigint, \
                 PRIMARY KEY ((serial), at, kind)) WITH CLUSTERING ORDER BY (at ASC, kind ASC)"
            ),
        ),
    ]
}

const SEGMENT_COLUMNS: &str = "version, record, uploaded_at, uploaded_by, source";
const INSTALLATION_COLUMNS: &str = "serial, site, position, installed_at, removed_at";
const MAINTENANCE_COLUMNS: &str = "serial, at, kind, reflectivity_before, reflectivity_after, \
     notes, source, site, position, coating_batch, recorded_at";

type SegmentRow = (i32, Vec<u8>, i64, String, String);
type InstallationRow = (String, String, i32, i64, Option<i64>);
type MaintenanceRow = (
    String,
    i64,
    String,
    Option<std::collections::BTreeMap<i32, f64>>,
    Option<std::collections::BTreeMap<i32, f64>>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<i32>,
    Option<String>,
    Option<i64>,
);

fn segment_of(row: SegmentRow) -> Result<StoredSegment, String> {
    let (version, bytes, uploaded_at_unix_ns, uploaded_by, source) = row;
    Ok(StoredSegment {
        record: decode_record(&bytes)?,
        version: u32::try_from(version).map_err(|_| format!("negative version {version}"))?,
        uploaded_at_unix_ns,
        uploaded_by,
        source,
    })
}

fn installation_of(row: InstallationRow) -> Installation {
    let (serial, site, position, installed_at_unix_ns, removed_at_unix_ns) = row;
    Installation {
        serial,
        site,
        position: u32::try_from(position).unwrap_or(0),
        installed_at_unix_ns,
        removed_at_unix_ns,
    }
}

fn readings_of(map: Option<std::collections::BTreeMap<i32, f64>>) -> ReflectivityByWavelength {
    map.unwrap_or_default()
        .into_iter()
        .filter_map(|(nm, pct)| u32::try_from(nm).ok().map(|nm| (nm, pct)))
        .collect()
}

fn readings_to_cql(readings: &ReflectivityByWavelength) -> std::collections::BTreeMap<i32, f64> {
    readings
        .iter()
        .filter_map(|(nm, pct)| i32::try_from(*nm).ok().map(|nm| (nm, *pct)))
        .collect()
}

fn maintenance_of_row(row: MaintenanceRow) -> Result<MaintenanceRecord, String> {
    let (serial, at, kind, before, after, notes, source, site, position, batch, recorded) = row;
    Ok(MaintenanceRecord {
        kind: MaintenanceKind::parse(&kind)
            .ok_or_else(|| format!("segment {serial}: unknown maintenance kind {kind:?}"))?,
        serial,
        at_unix_ns: at,
        before: readings_of(before),
        after: readings_of(after),
        notes: notes.unwrap_or_default(),
        source: source.unwrap_or_default(),
        site: site.unwrap_or_default(),
        position: position.and_then(|p| u32::try_from(p).ok()).unwrap_or(0),
        coating_batch: batch.unwrap_or_default(),
        recorded_at_unix_ns: recorded.unwrap_or_default(),
    })
}

fn position_cql(position: u32) -> i32 {
    i32::try_from(position).unwrap_or(i32::MAX)
}

impl CassandraStore {
    /// Every row of a (paged) query.
    async fn select_all<T>(
        &self,
        cql: String,
        values: impl SerializeRow,
        operation: &str,
    ) -> StoreResult<Vec<T>>
    where
        T: for<'frame, 'metadata> DeserializeRow<'frame, 'metadata> + 'static,
    {
        self.session()
            .query_iter(cql, values)
            .await
            .map_err(|e| fail(operation, e))?
            .rows_stream::<T>()
            .map_err(|e| fail(operation, e))?
            .try_collect()
            .await
            .map_err(|e| fail(operation, e))
    }

    async fn prepared(&self, cql: String, operation: &str) -> StoreResult<PreparedStatement> {
        let mut statement = self
            .session()
            .prepare(cql)
            .await
            .map_err(|e| fail(operation, e))?;
        statement.set_is_idempotent(true);
        Ok(statement)
    }

    async fn write_segment(
        &self,
        version_insert: &PreparedStatement,
        current_insert: &PreparedStatement,
        s: StoredSegment,
    ) -> StoreResult<()> {
        let operation = || {
            format!(
                "storing version {} of segment {}",
                s.version, s.record.serial
            )
        };
        let version = i32::try_from(s.version).map_err(|e| fail(operation(), e))?;
        let values = (
            s.record.serial.as_str(),
            version,
            encode_record(&s.record),
            s.uploaded_at_unix_ns,
            s.uploaded_by.as_str(),
            s.source.as_str(),
        );
        for statement in [version_insert, current_insert] {
            self.session()
                .execute_unpaged(statement, &values)
                .await
                .map_err(|e| fail(operation(), e))?;
        }
        Ok(())
    }

    /// Reads the current version of `new`'s serial and decides its outcome.
    async fn decide_one(
        &self,
        select: &PreparedStatement,
        new: &NewSegmentRecord,
        replace: bool,
    ) -> StoreResult<PutOutcome> {
        let serial = new.record.serial.as_str();
        let read = || format!("reading segment {serial}");
        let row = self
            .session()
            .execute_unpaged(select, (serial,))
            .await
            .map_err(|e| fail(read(), e))?
            .into_rows_result()
            .map_err(|e| fail(read(), e))?
            .maybe_first_row::<SegmentRow>()
            .map_err(|e| fail(read(), e))?;
        let current = row
            .map(segment_of)
            .transpose()
            .map_err(|e| fail(read(), e))?;
        Ok(decide_put(current.as_ref(), &new.record, replace))
    }

    async fn latest_of_serial(&self, serial: &str) -> StoreResult<Option<Installation>> {
        let cql = format!(
            "SELECT {INSTALLATION_COLUMNS} FROM {}.installations_by_serial WHERE serial = ? LIMIT 1",
            self.keyspace()
        );
        let rows: Vec<InstallationRow> = self
            .select_all(
                cql,
                (serial,),
                &format!("reading installations of {serial}"),
            )
            .await?;
        Ok(rows.into_iter().next().map(installation_of))
    }

    async fn latest_at_position(
        &self,
        site: &str,
        position: u32,
        at_or_before: i64,
    ) -> StoreResult<Option<Installation>> {
        let cql = format!(
            "SELECT {INSTALLATION_COLUMNS} FROM {}.installations WHERE site = ? AND position = ? \
             AND installed_at <= ? LIMIT 1",
            self.keyspace()
        );
        let operation = format!("reading installations of site {site} position {position}");
        let rows: Vec<InstallationRow> = self
            .select_all(
                cql,
                (site, position_cql(position), at_or_before),
                &operation,
            )
            .await?;
        Ok(rows.into_iter().next().map(installation_of))
    }

    async fn maintenance_at(
        &self,
        serial: &str,
        at: i64,
        kind: MaintenanceKind,
    ) -> StoreResult<Option<MaintenanceRecord>> {
        let cql = format!(
            "SELECT {MAINTENANCE_COLUMNS} FROM {}.maintenance WHERE serial = ? AND at = ? AND kind = ?",
            self.keyspace()
        );
        let operation = format!("reading maintenance of {serial}");
        let rows: Vec<MaintenanceRow> = self
            .select_all(cql, (serial, at, kind.as_str()), &operation)
            .await?;
        rows.into_iter()
            .next()
            .map(|row| maintenance_of_row(row).map_err(|e| fail(operation.as_str(), e)))
            .transpose()
    }
}

#[async_trait]
impl SegmentStore for CassandraStore {
    async fn put_segment_records(
        &self,
        records: Vec<NewSegmentRecord>,
        policy: PutPolicy,
    ) -> StoreResult<PutReport> {
        let k = self.keyspace();
        let operation = format!("storing {} segment records", records.len());
        let select = self
            .prepared(
                format!("SELECT {SEGMENT_COLUMNS} FROM {k}.segments WHERE serial = ?"),
                &operation,
            )
            .await?;
        // Phase 1: read every current version and decide.
        let outcomes: Vec<PutOutcome> = stream::iter(0..records.len())
            .map(|i| self.decide_one(&select, &records[i], policy.replace))
            .buffered(WRITE_CONCURRENCY)
            .try_collect()
            .await?;
        let mut report = PutReport {
            outcomes,
            written: false,
        };
        if policy.dry_run || (policy.all_or_nothing && report.has_conflict()) {
            return Ok(report);
        }
        // Phase 2: write what is to be stored.
        let insert = |table: &str| {
            format!("INSERT INTO {k}.{table} (serial, {SEGMENT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)")
        };
        let version_insert = self
            .prepared(insert("segment_versions"), &operation)
            .await?;
        let current_insert = self.prepared(insert("segments"), &operation).await?;
        let to_write: Vec<StoredSegment> = records
            .into_iter()
            .zip(&report.outcomes)
            .filter_map(|(new, outcome)| match outcome {
                PutOutcome::Stored { version } => Some(new.into_stored(*version)),
                _ => None,
            })
            .collect();
        stream::iter(to_write)
            .map(|s| self.write_segment(&version_insert, &current_insert, s))
            .buffer_unordered(WRITE_CONCURRENCY)
            .try_collect::<()>()
            .await?;
        report.written = true;
        Ok(report)
    }

    async fn segment(&self, serial: &str) -> StoreResult<Option<StoredSegment>> {
        let cql = format!(
            "SELECT {SEGMENT_COLUMNS} FROM {}.segments WHERE serial = ?",
            self.keyspace()
        );
        let operation = format!("reading segment {serial}");
        let rows: Vec<SegmentRow> = self.select_all(cql, (serial,), &operation).await?;
        rows.into_iter()
            .next()
            .map(|row| segment_of(row).map_err(|e| fail(operation.as_str(), e)))
            .transpose()
    }

    async fn segment_versions(&self, serial: &str) -> StoreResult<Vec<StoredSegment>> {
        let cql = format!(
            "SELECT {SEGMENT_COLUMNS} FROM {}.segment_versions WHERE serial = ?",
            self.keyspace()
        );
        let operation = format!("reading versions of segment {serial}");
        let rows: Vec<SegmentRow> = self.select_all(cql, (serial,), &operation).await?;
        rows.into_iter()
            .map(|row| segment_of(row).map_err(|e| fail(operation.as_str(), e)))
            .collect()
    }

    /// A paged scan of `segments`: the fleet has thousands of segments at
    /// most, and this is only read by cohort queries.
    async fn segments(&self) -> StoreResult<Vec<StoredSegment>> {
        let cql = format!("SELECT {SEGMENT_COLUMNS} FROM {}.segments", self.keyspace());
        let operation = "reading every segment";
        let rows: Vec<SegmentRow> = self.select_all(cql, (), operation).await?;
        let mut out: Vec<StoredSegment> = rows
            .into_iter()
            .map(|row| segment_of(row).map_err(|e| fail(operation, e)))
            .collect::<StoreResult<_>>()?;
        out.sort_by(|a, b| a.record.serial.cmp(&b.record.serial));
        Ok(out)
    }

    async fn record_installation(
        &self,
        request: &InstallRequest,
    ) -> StoreResult<Result<InstallOutcome, InstallRefusal>> {
        let occupant = self
            .latest_at_position(&request.site, request.position, i64::MAX)
            .await?;
        let serial_latest = self.latest_of_serial(&request.serial).await?;
        let plan = match plan_installation(request, occupant.as_ref(), serial_latest.as_ref()) {
            Ok(plan) => plan,
            Err(refusal) => return Ok(Err(refusal)),
        };
        let (installation, close) = match plan {
            InstallPlan::Existing(installation) => {
                return Ok(Ok(InstallOutcome {
                    installation,
                    closed: Vec::new(),
                    created: false,
                }));
            }
            InstallPlan::New {
                installation,
                close,
            } => (installation, close),
        };
        let k = self.keyspace();
        let operation = format!(
            "installing segment {} at site {} position {}",
            request.serial, request.site, request.position
        );
        let by_position = self
            .prepared(
                format!(
                    "INSERT INTO {k}.installations ({INSTALLATION_COLUMNS}) VALUES (?, ?, ?, ?, ?)"
                ),
                &operation,
            )
            .await?;
        let by_serial = self
            .prepared(
                format!(
                    "INSERT INTO {k}.installations_by_serial ({INSTALLATION_COLUMNS}) \
                     VALUES (?, ?, ?, ?, ?)"
                ),
                &operation,
            )
            .await?;
        let mut batch = Batch::new(BatchType::Logged);
        let mut values = Vec::new();
        for i in close.iter().chain(std::iter::once(&installation)) {
            let row = (
                i.serial.clone(),
                i.site.clone(),
                position_cql(i.position),
                i.installed_at_unix_ns,
                i.removed_at_unix_ns,
            );
            batch.append_statement(by_position.clone());
            values.push(row.clone());
            batch.append_statement(by_serial.clone());
            values.push(row);
        }
        self.session()
            .batch(&batch, values)
            .await
            .map_err(|e| fail(operation, e))?;
        Ok(Ok(InstallOutcome {
            installation,
            closed: close,
            created: true,
        }))
    }

    async fn installations_of(&self, serial: &str) -> StoreResult<Vec<Installation>> {
        let cql = format!(
            "SELECT {INSTALLATION_COLUMNS} FROM {}.installations_by_serial WHERE serial = ?",
            self.keyspace()
        );
        let rows: Vec<InstallationRow> = self
            .select_all(
                cql,
                (serial,),
                &format!("reading installations of {serial}"),
            )
            .await?;
        let mut out: Vec<Installation> = rows.into_iter().map(installation_of).collect();
        out.reverse();
        Ok(out)
    }

    async fn installation_at(
        &self,
        site: &str,
        position: u32,
        at_unix_ns: i64,
    ) -> StoreResult<Option<Installation>> {
        Ok(self
            .latest_at_position(site, position, at_unix_ns)
            .await?
            .filter(|i| i.covers(at_unix_ns)))
    }

    async fn record_maintenance(
        &self,
        event: &MaintenanceRecord,
    ) -> StoreResult<MaintenanceOutcome> {
        let judge = |existing: MaintenanceRecord| {
            if existing.same_event(event) {
                MaintenanceOutcome::AlreadyRecorded(existing)
            } else {
                MaintenanceOutcome::Conflict(existing)
            }
        };
        if let Some(existing) = self
            .maintenance_at(&event.serial, event.at_unix_ns, event.kind)
            .await?
        {
            return Ok(judge(existing));
        }
        let operation = || {
            format!(
                "recording a {} of segment {}",
                event.kind.as_str(),
                event.serial
            )
        };
        let cql = format!(
            "INSERT INTO {}.maintenance ({MAINTENANCE_COLUMNS}) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) IF NOT EXISTS",
            self.keyspace()
        );
        let e = event;
        let values = (
            e.serial.as_str(),
            e.at_unix_ns,
            e.kind.as_str(),
            readings_to_cql(&e.before),
            readings_to_cql(&e.after),
            e.notes.as_str(),
            e.source.as_str(),
            e.site.as_str(),
            position_cql(e.position),
            e.coating_batch.as_str(),
            e.recorded_at_unix_ns,
        );
        // The first column of a conditional insert's answer is `[applied]`.
        let row = self
            .session()
            .query_unpaged(cql, values)
            .await
            .map_err(|e| fail(operation(), e))?
            .into_rows_result()
            .map_err(|e| fail(operation(), e))?
            .maybe_first_row::<Row>()
            .map_err(|e| fail(operation(), e))?;
        match row.and_then(|row| row.columns.into_iter().next().flatten()) {
            Some(CqlValue::Boolean(true)) => Ok(MaintenanceOutcome::Created),
            Some(CqlValue::Boolean(false)) => {
                // Another writer got there between the read and the insert.
                let existing = self
                    .maintenance_at(&event.serial, event.at_unix_ns, event.kind)
                    .await?
                    .ok_or_else(|| fail(operation(), "the conflicting event vanished"))?;
                Ok(judge(existing))
            }
            other => Err(fail(
                operation(),
                format!("unexpected answer to a conditional insert: {other:?}"),
            )),
        }
    }

    async fn maintenance_of(&self, serial: &str) -> StoreResult<Vec<MaintenanceRecord>> {
        let cql = format!(
            "SELECT {MAINTENANCE_COLUMNS} FROM {}.maintenance WHERE serial = ?",
            self.keyspace()
        );
        let operation = format!("reading maintenance of {serial}");
        let rows: Vec<MaintenanceRow> = self.select_all(cql, (serial,), &operation).await?;
        rows.into_iter()
            .map(|row| maintenance_of_row(row).map_err(|e| fail(operation.as_str(), e)))
            .collect()
    }
}

//! [`SegmentStore`] on SQLite: every put and every installation is one
//! transaction, so an atomic upload stores all of its records or none.

use std::collections::HashMap;

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, Row, Transaction, params};

use super::{SqliteStore, json_list};
use crate::store::StoreResult;
use crate::store::segments::{
    InstallOutcome, InstallPlan, InstallRefusal, InstallRequest, Installation, MaintenanceKind,
    MaintenanceOutcome, MaintenanceRecord, NewSegmentRecord, PutOutcome, PutPolicy, PutReport,
    SegmentStore, StoredSegment, decide_put, decode_record, encode_record, plan_installation,
    reflectivity_from_json, reflectivity_to_json,
};

const SEGMENT_COLUMNS: &str = "version, record, uploaded_at, uploaded_by, source";
const INSTALLATION_COLUMNS: &str = "serial, site, position, installed_at, removed_at";
const MAINTENANCE_COLUMNS: &str = "serial, at, kind, reflectivity_before, reflectivity_after, \
     notes, source, site, position, coating_batch, recorded_at";

fn conversion(column: usize, error: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(column, rusqlite::types::Type::Text, error.into())
}

/// Reads `SEGMENT_COLUMNS`.
fn segment_from_row(row: &Row<'_>) -> rusqlite::Result<StoredSegment> {
    let bytes: Vec<u8> = row.get(1)?;
    Ok(StoredSegment {
        version: row.get(0)?,
        record: decode_record(&bytes).map_err(|e| conversion(1, e))?,
        uploaded_at_unix_ns: row.get(2)?,
        uploaded_by: row.get(3)?,
        source: row.get(4)?,
    })
}

/// Reads `INSTALLATION_COLUMNS`.
fn installation_from_row(row: &Row<'_>) -> rusqlite::Result<Installation> {
    Ok(Installation {
        serial: row.get(0)?,
        site: row.get(1)?,
        position: row.get(2)?,
        installed_at_unix_ns: row.get(3)?,
        removed_at_unix_ns: row.get(4)?,
    })
}

/// Reads `MAINTENANCE_COLUMNS`.
fn maintenance_from_row(row: &Row<'_>) -> rusqlite::Result<MaintenanceRecord> {
    let kind: String = row.get(2)?;
    let before: String = row.get(3)?;
    let after: String = row.get(4)?;
    Ok(MaintenanceRecord {
        serial: row.get(0)?,
        at_unix_ns: row.get(1)?,
        kind: MaintenanceKind::parse(&kind)
            .ok_or_else(|| conversion(2, format!("unknown maintenance kind {kind:?}")))?,
        before: reflectivity_from_json(&before).map_err(|e| conversion(3, e))?,
        after: reflectivity_from_json(&after).map_err(|e| conversion(4, e))?,
        notes: row.get(5)?,
        source: row.get(6)?,
        site: row.get(7)?,
        position: row.get(8)?,
        coating_batch: row.get(9)?,
        recorded_at_unix_ns: row.get(10)?,
    })
}

fn current_segment(conn: &Connection, serial: &str) -> rusqlite::Result<Option<StoredSegment>> {
    conn.prepare_cached(&format!(
        "SELECT {SEGMENT_COLUMNS} FROM segments WHERE serial = ?1"
    ))?
    .query_row([serial], segment_from_row)
    .optional()
}

fn write_segment(tx: &Transaction<'_>, s: &StoredSegment) -> rusqlite::Result<()> {
    let bytes = encode_record(&s.record);
    let values = params![
        s.record.serial,
        s.version,
        bytes,
        s.uploaded_at_unix_ns,
        s.uploaded_by,
        s.source
    ];
    tx.prepare_cached(&format!(
        "INSERT OR REPLACE INTO segment_versions (serial, {SEGMENT_COLUMNS}) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
    ))?
    .execute(values)?;
    tx.prepare_cached(&format!(
        "INSERT OR REPLACE INTO segments (serial, {SEGMENT_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
    ))?
    .execute(values)?;
    Ok(())
}

fn put(
    conn: &mut Connection,
    records: Vec<NewSegmentRecord>,
    policy: PutPolicy,
) -> rusqlite::Result<PutReport> {
    let tx = conn.transaction()?;
    let mut outcomes = Vec::with_capacity(records.len());
    for new in &records {
        let current = current_segment(&tx, &new.record.serial)?;
        outcomes.push(decide_put(current.as_ref(), &new.record, policy.replace));
    }
    let mut report = PutReport {
        outcomes,
        written: false,
    };
    if policy.dry_run || (policy.all_or_nothing && report.has_conflict()) {
        return Ok(report);
    }
    for (new, outcome) in records.into_iter().zip(&report.outcomes) {
        if let PutOutcome::Stored { version } = outcome {
            write_segment(&tx, &new.into_stored(*version))?;
        }
    }
    tx.commit()?;
    report.written = true;
    Ok(report)
}

fn latest_at_position(
    conn: &Connection,
    site: &str,
    position: u32,
    at_or_before: i64,
) -> rusqlite::Result<Option<Installation>> {
    conn.prepare_cached(&format!(
        "SELECT {INSTALLATION_COLUMNS} FROM installations WHERE site = ?1 AND position = ?2 \
         AND installed_at <= ?3 ORDER BY installed_at DESC LIMIT 1"
    ))?
    .query_row(params![site, position, at_or_before], installation_from_row)
    .optional()
}

fn latest_of_serial(conn: &Connection, serial: &str) -> rusqlite::Result<Option<Installation>> {
    conn.prepare_cached(&format!(
        "SELECT {INSTALLATION_COLUMNS} FROM installations WHERE serial = ?1 \
         ORDER BY installed_at DESC LIMIT 1"
    ))?
    .query_row([serial], installation_from_row)
    .optional()
}

fn install(
    conn: &mut Connection,
    request: &InstallRequest,
) -> rusqlite::Result<Result<InstallOutcome, InstallRefusal>> {
    let tx = conn.transaction()?;
    let occupant = latest_at_position(&tx, &request.site, request.position, i64::MAX)?;
    let serial_latest = latest_of_serial(&tx, &request.serial)?;
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
    for closed in &close {
        tx.execute(
            "UPDATE installations SET removed_at = ?1 WHERE site = ?2 AND position = ?3 \
             AND installed_at = ?4",
            params![
                closed.removed_at_unix_ns,
                closed.site,
                closed.position,
                closed.installed_at_unix_ns
            ],
        )?;
    }
    let i = &installation;
    tx.execute(
        &format!(
            "INSERT INTO installations ({INSTALLATION_COLUMNS}) VALUES (?1, ?2, ?3, ?4, NULL)"
        ),
        params![i.serial, i.site, i.position, i.installed_at_unix_ns],
    )?;
    tx.commit()?;
    Ok(Ok(InstallOutcome {
        installation,
        closed: close,
        created: true,
    }))
}

fn maintain(
    conn: &mut Connection,
    event: &MaintenanceRecord,
) -> rusqlite::Result<MaintenanceOutcome> {
    let tx = conn.transaction()?;
    let existing = tx
        .prepare_cached(&format!(
            "SELECT {MAINTENANCE_COLUMNS} FROM maintenance WHERE serial = ?1 AND at = ?2 AND kind = ?3"
        ))?
        .query_row(
            params![event.serial, event.at_unix_ns, event.kind.as_str()],
            maintenance_from_row,
        )
        .optional()?;
    if let Some(existing) = existing {
        return Ok(if existing.same_event(event) {
            MaintenanceOutcome::AlreadyRecorded(existing)
        } else {
            MaintenanceOutcome::Conflict(existing)
        });
    }
    let e = event;
    tx.execute(
        &format!(
            "INSERT INTO maintenance ({MAINTENANCE_COLUMNS}) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
        ),
        params![
            e.serial,
            e.at_unix_ns,
            e.kind.as_str(),
            reflectivity_to_json(&e.before),
            reflectivity_to_json(&e.after),
            e.notes,
            e.source,
            e.site,
            e.position,
            e.coating_batch,
            e.recorded_at_unix_ns
        ],
    )?;
    tx.commit()?;
    Ok(MaintenanceOutcome::Created)
}

#[async_trait]
impl SegmentStore for SqliteStore {
    async fn put_segment_records(
        &self,
        records: Vec<NewSegmentRecord>,
        policy: PutPolicy,
    ) -> StoreResult<PutReport> {
        let operation = format!("storing {} segment records", records.len());
        self.write(&operation, move |conn| put(conn, records, policy))
            .await
    }

    async fn segment(&self, serial: &str) -> StoreResult<Option<StoredSegment>> {
        let serial = serial.to_owned();
        self.read(&format!("reading segment {serial}"), move |conn| {
            current_segment(conn, &serial)
        })
        .await
    }

    async fn segment_versions(&self, serial: &str) -> StoreResult<Vec<StoredSegment>> {
        let serial = serial.to_owned();
        self.read(
            &format!("reading versions of segment {serial}"),
            move |conn| {
                let mut stmt = conn.prepare_cached(&format!(
                "SELECT {SEGMENT_COLUMNS} FROM segment_versions WHERE serial = ?1 ORDER BY version"
            ))?;
                let rows = stmt.query_map([serial], segment_from_row)?;
                rows.collect()
            },
        )
        .await
    }

    async fn segments(&self) -> StoreResult<Vec<StoredSegment>> {
        self.read("reading every segment", move |conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {SEGMENT_COLUMNS} FROM segments ORDER BY serial"
            ))?;
            let rows = stmt.query_map([], segment_from_row)?;
            rows.collect()
        })
        .await
    }

    async fn record_installation(
        &self,
        request: &InstallRequest,
    ) -> StoreResult<Result<InstallOutcome, InstallRefusal>> {
        let request = request.clone();
        let operation = format!(
            "installing segment {} at site {} position {}",
            request.serial, request.site, request.position
        );
        self.write(&operation, move |conn| install(conn, &request))
            .await
    }

    async fn installations_of(&self, serial: &str) -> StoreResult<Vec<Installation>> {
        let serial = serial.to_owned();
        self.read(&format!("reading installations of {serial}"), move |conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {INSTALLATION_COLUMNS} FROM installations WHERE serial = ?1 \
                 ORDER BY installed_at"
            ))?;
            let rows = stmt.query_map([serial], installation_from_row)?;
            rows.collect()
        })
        .await
    }

    async fn installation_at(
        &self,
        site: &str,
        position: u32,
        at_unix_ns: i64,
    ) -> StoreResult<Option<Installation>> {
        let site = site.to_owned();
        let operation = format!("reading the installation at site {site} position {position}");
        self.read(&operation, move |conn| {
            Ok(latest_at_position(conn, &site, position, at_unix_ns)?
                .filter(|i| i.covers(at_unix_ns)))
        })
        .await
    }

    async fn record_maintenance(
        &self,
        event: &MaintenanceRecord,
    ) -> StoreResult<MaintenanceOutcome> {
        let event = event.clone();
        let operation = format!(
            "recording a {} of segment {}",
            event.kind.as_str(),
            event.serial
        );
        self.write(&operation, move |conn| maintain(conn, &event))
            .await
    }

    async fn maintenance_of(&self, serial: &str) -> StoreResult<Vec<MaintenanceRecord>> {
        let serial = serial.to_owned();
        self.read(&format!("reading maintenance of {serial}"), move |conn| {
            maintenance(conn, &serial)
        })
        .await
    }

    async fn segments_with_maintenance(
        &self,
        serials: &[String],
    ) -> StoreResult<Vec<(Option<StoredSegment>, Vec<MaintenanceRecord>)>> {
        let list = json_list(serials);
        let operation = format!("reading {} segments with their maintenance", serials.len());
        let (segments, events) = self
            .read(&operation, move |conn| {
                let mut stmt = conn.prepare_cached(&format!(
                    "SELECT {SEGMENT_COLUMNS}, serial FROM segments \
                     WHERE serial IN (SELECT value FROM json_each(?1))"
                ))?;
                let segments = stmt
                    .query_map([&list], |row| {
                        Ok((row.get::<_, String>(5)?, segment_from_row(row)?))
                    })?
                    .collect::<rusqlite::Result<HashMap<_, _>>>()?;
                let mut stmt = conn.prepare_cached(&format!(
                    "SELECT {MAINTENANCE_COLUMNS} FROM maintenance \
                     WHERE serial IN (SELECT value FROM json_each(?1)) ORDER BY serial, at, kind"
                ))?;
                let mut events: HashMap<String, Vec<MaintenanceRecord>> = HashMap::new();
                for event in stmt.query_map([&list], maintenance_from_row)? {
                    let event = event?;
                    events.entry(event.serial.clone()).or_default().push(event);
                }
                Ok((segments, events))
            })
            .await?;
        Ok(serials
            .iter()
            .map(|serial| {
                (
                    segments.get(serial).cloned(),
                    events.get(serial).cloned().unwrap_or_default(),
                )
            })
            .collect())
    }
}

fn maintenance(conn: &Connection, serial: &str) -> rusqlite::Result<Vec<MaintenanceRecord>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {MAINTENANCE_COLUMNS} FROM maintenance WHERE serial = ?1 ORDER BY at, kind"
    ))?;
    let rows = stmt.query_map([serial], maintenance_from_row)?;
    rows.collect()
}

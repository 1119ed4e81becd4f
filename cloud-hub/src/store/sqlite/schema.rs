//! The embedded store's schema: the logical tables of the Cassandra keyspace,
//! applied as numbered migrations tracked by `PRAGMA user_version`.

use rusqlite::Connection;

/// Each entry moves the schema from version `index` to `index + 1`.
const MIGRATIONS: &[&str] = &[
    // 1: telemetry
    "
    CREATE TABLE samples (
        site TEXT NOT NULL, device TEXT NOT NULL, attribute TEXT NOT NULL, ts INTEGER NOT NULL,
        value_double REAL, value_int INTEGER, value_bool INTEGER, value_text TEXT,
        unit TEXT NOT NULL, quality INTEGER NOT NULL,
        PRIMARY KEY (site, device, attribute, ts)
    ) WITHOUT ROWID;
    CREATE TABLE rollup_1m (
        site TEXT NOT NULL, device TEXT NOT NULL, attribute TEXT NOT NULL, bucket INTEGER NOT NULL,
        min REAL NOT NULL, max REAL NOT NULL, sum REAL NOT NULL, count INTEGER NOT NULL,
        PRIMARY KEY (site, device, attribute, bucket)
    ) WITHOUT ROWID;
    CREATE TABLE rollup_1h (
        site TEXT NOT NULL, device TEXT NOT NULL, attribute TEXT NOT NULL, bucket INTEGER NOT NULL,
        min REAL NOT NULL, max REAL NOT NULL, sum REAL NOT NULL, count INTEGER NOT NULL,
        PRIMARY KEY (site, device, attribute, bucket)
    ) WITHOUT ROWID;
    CREATE TABLE latest (
        site TEXT NOT NULL, device TEXT NOT NULL, attribute TEXT NOT NULL, ts INTEGER NOT NULL,
        value_double REAL, value_int INTEGER, value_bool INTEGER, value_text TEXT,
        unit TEXT NOT NULL, quality INTEGER NOT NULL,
        PRIMARY KEY (site, device, attribute)
    ) WITHOUT ROWID;
    CREATE TABLE exposure (
        site TEXT NOT NULL, position INTEGER NOT NULL, hour INTEGER NOT NULL,
        open_dome_hours REAL NOT NULL, dust_dose_ug_m3_h REAL NOT NULL,
        calima_events INTEGER NOT NULL, humid_hours REAL NOT NULL,
        dew_risk_hours REAL NOT NULL, days_with_data INTEGER NOT NULL,
        PRIMARY KEY (site, position, hour)
    ) WITHOUT ROWID;
    CREATE TABLE ingest_progress (
        site TEXT PRIMARY KEY NOT NULL,
        state TEXT NOT NULL,
        updated_at INTEGER NOT NULL
    );
    CREATE TABLE dead_letters (
        id INTEGER PRIMARY KEY,
        site TEXT, topic TEXT NOT NULL, at INTEGER NOT NULL,
        reason TEXT NOT NULL, payload BLOB NOT NULL
    );
    CREATE INDEX dead_letters_by_site ON dead_letters (site);
    ",
    // 2: access
    "
    CREATE TABLE api_tokens (
        id TEXT PRIMARY KEY NOT NULL, name TEXT NOT NULL, role TEXT NOT NULL,
        secret_sha256 TEXT NOT NULL, created_at INTEGER NOT NULL, revoked INTEGER NOT NULL
    );
    CREATE TABLE audit_log (
        id INTEGER PRIMARY KEY, at INTEGER NOT NULL, token_id TEXT NOT NULL, caller TEXT NOT NULL,
        role TEXT NOT NULL, method TEXT NOT NULL, subject TEXT NOT NULL
    );
    ",
    // 3: registry (enrolment): sites, hashed join tokens, issued certificates, revocations
    "
    CREATE TABLE sites (
        site TEXT PRIMARY KEY NOT NULL, display_name TEXT NOT NULL,
        latitude_deg REAL, longitude_deg REAL, altitude_m REAL,
        mirror_segments INTEGER NOT NULL, state TEXT NOT NULL, created_at INTEGER NOT NULL,
        enrolled_at INTEGER, revoked_at INTEGER, revoke_reason TEXT NOT NULL,
        certificate_not_after INTEGER
    );
    CREATE TABLE join_tokens (
        id TEXT PRIMARY KEY NOT NULL, secret_sha256 TEXT NOT NULL, site TEXT NOT NULL,
        created_at INTEGER NOT NULL, expires_at INTEGER NOT NULL, used_at INTEGER,
        created_by TEXT NOT NULL, reenroll INTEGER NOT NULL
    );
    CREATE TABLE site_certificates (
        site TEXT NOT NULL, serial TEXT NOT NULL,
        issued_at INTEGER NOT NULL, not_after INTEGER NOT NULL,
        PRIMARY KEY (site, serial)
    ) WITHOUT ROWID;
    CREATE TABLE revocations (
        site TEXT NOT NULL, at INTEGER NOT NULL, reason TEXT NOT NULL, revoked_by TEXT NOT NULL,
        PRIMARY KEY (site, at)
    ) WITHOUT ROWID;
    ",
    // 4: segments (manufacturing records and their versions, installations,
    // maintenance); the Cassandra tables of `store::segments`, with one
    // installations table indexed both ways
    "
    CREATE TABLE segments (
        serial TEXT PRIMARY KEY NOT NULL, version INTEGER NOT NULL, record BLOB NOT NULL,
        uploaded_at INTEGER NOT NULL, uploaded_by TEXT NOT NULL, source TEXT NOT NULL
    );
    CREATE TABLE segment_versions (
        serial TEXT NOT NULL, version INTEGER NOT NULL, record BLOB NOT NULL,
        uploaded_at INTEGER NOT NULL, uploaded_by TEXT NOT NULL, source TEXT NOT NULL,
        PRIMARY KEY (serial, version)
    ) WITHOUT ROWID;
    CREATE TABLE installations (
        site TEXT NOT NULL, position INTEGER NOT NULL, installed_at INTEGER NOT NULL,
        serial TEXT NOT NULL, removed_at INTEGER,
        PRIMARY KEY (site, position, installed_at)
    ) WITHOUT ROWID;
    CREATE UNIQUE INDEX installations_by_serial ON installations (serial, installed_at);
    CREATE TABLE maintenance (
        serial TEXT NOT NULL, at INTEGER NOT NULL, kind TEXT NOT NULL,
        reflectivity_before TEXT NOT NULL, reflectivity_after TEXT NOT NULL,
        notes TEXT NOT NULL, source TEXT NOT NULL, site TEXT NOT NULL, position INTEGER NOT NULL,
        coating_batch TEXT NOT NULL, recorded_at INTEGER NOT NULL,
        PRIMARY KEY (serial, at, kind)
    ) WITHOUT ROWID;
    ",
    // 5: predictions of the health model with their lineage
    "
    CREATE TABLE predictions (
        site TEXT NOT NULL, position INTEGER NOT NULL, at INTEGER NOT NULL,
        serial TEXT NOT NULL, computed_at INTEGER NOT NULL,
        reflectivity_650_pct REAL NOT NULL, days_to_threshold REAL NOT NULL,
        threshold_650_pct REAL NOT NULL, model_sha256 TEXT NOT NULL, model_version TEXT NOT NULL,
        completeness REAL NOT NULL, features TEXT NOT NULL, risk TEXT NOT NULL,
        risk_reason TEXT NOT NULL,
        PRIMARY KEY (site, position, at)
    ) WITHOUT ROWID;
    CREATE INDEX predictions_by_serial ON predictions (serial, at);
    ",
];

/// The schema version this build writes.
pub const VERSION: usize = MIGRATIONS.len();

/// Brings the database to [`VERSION`]; refuses a database from a newer build.
pub fn migrate(conn: &mut Connection) -> Result<(), String> {
    let current: usize = conn
        .query_row("PRAGMA user_version", [], |row| row.get::<_, i64>(0))
        .map_err(|e| format!("reading the schema version: {e}"))?
        .try_into()
        .map_err(|_| "negative schema version".to_string())?;
    if current > VERSION {
        return Err(format!(
            "schema version {current} is newer than this build's {VERSION}; upgrade the hub"
        ));
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(current) {
        let tx = conn
            .transaction()
            .map_err(|e| format!("starting migration {}: {e}", index + 1))?;
        tx.execute_batch(sql)
            .and_then(|()| tx.pragma_update(None, "user_version", (index + 1) as i64))
            .and_then(|()| tx.commit())
            .map_err(|e| format!("migration {}: {e}", index + 1))?;
    }
    Ok(())
}

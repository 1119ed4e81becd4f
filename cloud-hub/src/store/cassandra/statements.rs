//! Every statement the store runs, prepared once at connect.
//!
//! Table names are qualified with the keyspace, so the session needs no
//! `USE`. Statements that write absolute values are marked idempotent, which
//! lets the driver retry them after a timeout; the dead-letter insert (a
//! server-side `now()` id) and the counter update are not.

use scylla::client::session::Session;
use scylla::errors::PrepareError;
use scylla::statement::prepared::PreparedStatement;

use super::rows::{EXPOSURE_COLUMNS, SAMPLE_COLUMNS, SampleValue};

/// Rows fetched per page by the paged reads.
const PAGE_SIZE: i32 = 5_000;

/// The prepared statements of one keyspace.
#[derive(Debug)]
pub struct Statements {
    /// site, device, attribute, day, ts, value, unit, quality
    pub insert_sample: SampleInserts,
    /// site, device, attribute, ts, 4 values, unit, quality, write time µs
    pub insert_latest: PreparedStatement,
    /// site, device, attribute, day, bucket, min, max, sum, count
    pub insert_rollup_1m: PreparedStatement,
    /// site, device, attribute, month, bucket, min, max, sum, count
    pub insert_rollup_1h: PreparedStatement,
    /// site, position, hour, totals
    pub insert_exposure: PreparedStatement,
    /// site, state, updated_at
    pub insert_progress: PreparedStatement,
    /// site, day, at, topic, reason, payload
    pub insert_dead_letter: PreparedStatement,
    /// site
    pub count_dead_letter: PreparedStatement,
    /// site, device, attribute, day, from ts, to ts, limit
    pub select_samples: PreparedStatement,
    /// site, device, attribute, day, from bucket, to bucket, limit
    pub select_rollup_1m: PreparedStatement,
    /// site, device, attribute, month, from bucket, to bucket, limit
    pub select_rollup_1h: PreparedStatement,
    /// site
    pub select_latest: PreparedStatement,
    /// site, position, at hour
    pub select_exposure_at: PreparedStatement,
    /// site
    pub select_progress: PreparedStatement,
    /// (none)
    pub select_progress_sites: PreparedStatement,
    /// (none)
    pub select_dead_letter_counts: PreparedStatement,
}

/// The raw-sample inserts, one per value type (see [`SampleValue`]).
#[derive(Debug)]
pub struct SampleInserts {
    double: PreparedStatement,
    int: PreparedStatement,
    bool: PreparedStatement,
    text: PreparedStatement,
    null: PreparedStatement,
}

impl SampleInserts {
    /// The insert that binds `value`.
    pub fn of(&self, value: &SampleValue) -> &PreparedStatement {
        match value {
            SampleValue::Double(_) => &self.double,
            SampleValue::Int(_) => &self.int,
            SampleValue::Bool(_) => &self.bool,
            SampleValue::Text(_) => &self.text,
            SampleValue::Null => &self.null,
        }
    }

    async fn prepare(session: &Session, k: &str) -> Result<Self, PrepareError> {
        let insert = |values: &str| {
            let cql = format!(
                "INSERT INTO {k}.samples (site, device, attribute, day, ts, {values}, unit, \
                 quality) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
            );
            prepare(session, cql, true)
        };
        Ok(SampleInserts {
            double: insert("value_double").await?,
            int: insert("value_int").await?,
            bool: insert("value_bool").await?,
            text: insert("value_text").await?,
            null: prepare(
                session,
                format!(
                    "INSERT INTO {k}.samples (site, device, attribute, day, ts, value_double, \
                     value_int, value_bool, value_text, unit, quality) \
                     VALUES (?, ?, ?, ?, ?, ?, null, null, null, ?, ?)"
                ),
                true,
            )
            .await?,
        })
    }
}

/// The partition of `dead_letter_counts` holding every site's counter.
pub const DEAD_LETTER_SHARD: i32 = 0;

async fn prepare(
    session: &Session,
    cql: String,
    idempotent: bool,
) -> Result<PreparedStatement, PrepareError> {
    let mut statement = session.prepare(cql).await?;
    statement.set_is_idempotent(idempotent);
    statement.set_page_size(PAGE_SIZE);
    Ok(statement)
}

impl Statements {
    /// Prepares every statement against the tables of `k`.
    pub async fn prepare(session: &Session, k: &str) -> Result<Self, PrepareError> {
        let rollup_insert = |table: &str, partition: &str| {
            format!(
                "INSERT INTO {k}.{table} (site, device, attribute, {partition}, bucket, \
                 min, max, sum, count) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
            )
        };
        let rollup_select = |table: &str, partition: &str| {
            format!(
                "SELECT bucket, min, max, sum, count FROM {k}.{table} WHERE site = ? \
                 AND device = ? AND attribute = ? AND {partition} = ? \
                 AND bucket >= ? AND bucket < ? LIMIT ?"
            )
        };
        Ok(Statements {
            insert_sample: SampleInserts::prepare(session, k).await?,
            insert_latest: prepare(
                session,
                format!(
                    "INSERT INTO {k}.latest (site, device, attribute, ts, value_double, \
                     value_int, value_bool, value_text, unit, quality) \
                     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) USING TIMESTAMP ?"
                ),
                true,
            )
            .await?,
            insert_rollup_1m: prepare(session, rollup_insert("rollup_1m", "day"), true).await?,
            insert_rollup_1h: prepare(session, rollup_insert("rollup_1h", "month"), true).await?,
            insert_exposure: prepare(
                session,
                format!(
                    "INSERT INTO {k}.exposure (site, position, hour, {EXPOSURE_COLUMNS}) \
                     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
                ),
                true,
            )
            .await?,
            insert_progress: prepare(
                session,
                format!(
                    "INSERT INTO {k}.ingest_progress (site, state, updated_at) VALUES (?, ?, ?)"
                ),
                true,
            )
            .await?,
            insert_dead_letter: prepare(
                session,
                format!(
                    "INSERT INTO {k}.dead_letters (site, day, at, id, topic, reason, payload) \
                     VALUES (?, ?, ?, now(), ?, ?, ?)"
                ),
                false,
            )
            .await?,
            count_dead_letter: prepare(
                session,
                format!(
                    "UPDATE {k}.dead_letter_counts SET letters = letters + 1 \
                     WHERE shard = {DEAD_LETTER_SHARD} AND site = ?"
                ),
                false,
            )
            .await?,
            select_samples: prepare(
                session,
                format!(
                    "SELECT {SAMPLE_COLUMNS} FROM {k}.samples WHERE site = ? AND device = ? \
                     AND attribute = ? AND day = ? AND ts >= ? AND ts < ? LIMIT ?"
                ),
                true,
            )
            .await?,
            select_rollup_1m: prepare(session, rollup_select("rollup_1m", "day"), true).await?,
            select_rollup_1h: prepare(session, rollup_select("rollup_1h", "month"), true).await?,
            select_latest: prepare(
                session,
                format!("SELECT {SAMPLE_COLUMNS} FROM {k}.latest WHERE site = ?"),
                true,
            )
            .await?,
            select_exposure_at: prepare(
                session,
                format!(
                    "SELECT {EXPOSURE_COLUMNS} FROM {k}.exposure WHERE site = ? AND position = ? \
                     AND hour <= ? ORDER BY hour DESC LIMIT 1"
                ),
                true,
            )
            .await?,
            select_progress: prepare(
                session,
                format!("SELECT state FROM {k}.ingest_progress WHERE site = ?"),
                true,
            )
            .await?,
            select_progress_sites: prepare(
                session,
                format!("SELECT site FROM {k}.ingest_progress"),
                true,
            )
            .await?,
            select_dead_letter_counts: prepare(
                session,
                format!(
                    "SELECT site, letters FROM {k}.dead_letter_counts \
                     WHERE shard = {DEAD_LETTER_SHARD}"
                ),
                true,
            )
            .await?,
        })
    }
}

//! The telemetry tables of the keyspace, created idempotently at connect
//! (`CREATE ... IF NOT EXISTS`) with CQL that Cassandra 4/5 and ScyllaDB
//! both accept.
//!
//! ```text
//! samples          ((site, device, attribute, day), ts)     TWCS 1 day, TTL
//! rollup_1m        ((site, day), device, attribute, bucket)
//! rollup_1h        ((site, month), device, attribute, bucket)
//! latest           ((site), device, attribute)             written USING TIMESTAMP
//! exposure         ((site, position), hour DESC)
//! ingest_progress  ((site))
//! dead_letters     ((site, day), at DESC, id)              site '' = unknown
//! dead_letter_counts ((shard), site)                        counter, one partition
//! api_tokens       ((id))
//! audit_log        ((day), at DESC, id)
//! sites            ((shard), site)                          one partition (shard = 0)
//! join_tokens      ((id))                                   used_at set by an LWT
//! site_certificates ((site), serial)
//! revocations      ((site), at)
//! segments         ((serial))                               current record version
//! segment_versions ((serial), version)
//! installations    ((site), position, installed_at DESC)
//! installations_by_serial ((serial), installed_at DESC)
//! maintenance      ((serial), at, kind)
//! ```
//!
//! `day` is the UTC day number and `month` the month number since 1970-01
//! (see `keys.rs`); `ts` and `at` are Unix nanoseconds, `bucket` and `hour`
//! Unix seconds, as in the embedded store.
//!
//! A dead letter whose topic named no site is kept under the site id `''`
//! (a key column cannot be null; site ids are never empty, see
//! `obs_common::site`). Cassandra refuses an empty value as a whole
//! single-column partition key, which is one reason `dead_letters` is
//! partitioned by site *and* day (of `at`); the other is that a site sending
//! garbage cannot grow one partition without bound.
//!
//! The keyspace is created with `SimpleStrategy` and the configured
//! replication factor only when it does not exist. Production clusters
//! should create it beforehand with `NetworkTopologyStrategy` (one factor per
//! data centre), e.g. `CREATE KEYSPACE observatory WITH replication =
//! {'class': 'NetworkTopologyStrategy', 'dc1': 3}`; an existing keyspace's
//! replication is never changed here.
//!
//! Raw samples expire `sample_ttl_days` after they were *written* (the
//! table's `default_time_to_live`), so a backfill of old data is kept that
//! long from the backfill (0 days: never); rollups never expire. TWCS groups SSTables by
//! write time, which for live telemetry is the sample time.
//!
//! Rollups are partitioned by site and day (month), not by series: a batch's
//! rollups are then one or two single-partition batches instead of one per
//! series (61 requests for 1000 samples of 20 series became 23). A partition
//! holds series x 1440 minute rows (100 series: 144,000 rows, about 10 MB) or
//! series x 744 hour rows. Rollup tables created before this layout, with
//! one partition per series and day (month), answer the same statements.
//!
//! A table that exists keeps its options: changing
//! `sample_ttl_days` later needs an `ALTER TABLE samples WITH
//! default_time_to_live = ...` (connect warns when they differ).

use scylla::client::session::Session;
use tracing::{info, warn};

use super::BACKEND;
use crate::store::{StoreError, StoreResult};

/// Longest TTL Cassandra accepts (20 years), in days.
pub const MAX_SAMPLE_TTL_DAYS: u32 = 7_300;

/// Longest keyspace name Cassandra accepts.
const MAX_KEYSPACE_LEN: usize = 48;

/// The keyspace name as Cassandra stores it (unquoted identifiers are
/// lower-cased), or why it cannot be used. Only `[A-Za-z0-9_]` is accepted,
/// which also keeps the name safe to splice into CQL.
pub fn keyspace_name(name: &str) -> Result<String, String> {
    let valid = !name.is_empty()
        && name.len() <= MAX_KEYSPACE_LEN
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if valid {
        Ok(name.to_ascii_lowercase())
    } else {
        Err(format!(
            "keyspace name {name:?} must be 1 to {MAX_KEYSPACE_LEN} characters of letters, digits and _"
        ))
    }
}

/// `CREATE KEYSPACE IF NOT EXISTS` with SimpleStrategy.
pub fn keyspace_cql(keyspace: &str, replication_factor: u32) -> String {
    format!(
        "CREATE KEYSPACE IF NOT EXISTS {keyspace} WITH replication = \
         {{'class': 'SimpleStrategy', 'replication_factor': {replication_factor}}}"
    )
}

/// The `CREATE TABLE IF NOT EXISTS` statements, named by table.
pub fn tables_cql(keyspace: &str, sample_ttl_seconds: u32) -> Vec<(&'static str, String)> {
    let k = keyspace;
    vec![
        (
            "samples",
            format!(
                "CREATE TABLE IF NOT EXISTS {k}.samples (\
                 site text, device text, attribute text, day int, ts bigint, \
                 value_double double, value_int bigint, value_bool boolean, value_text text, \
                 unit text, quality int, \
                 PRIMARY KEY ((site, device, attribute, day), ts)) \
                 WITH CLUSTERING ORDER BY (ts ASC) \
                 AND compaction = {{'class': 'TimeWindowCompactionStrategy', \
                 'compaction_window_unit': 'DAYS', 'compaction_window_size': 1}} \
                 AND default_time_to_live = {sample_ttl_seconds}"
            ),
        ),
        (
            "rollup_1m",
            format!(
                "CREATE TABLE IF NOT EXISTS {k}.rollup_1m (\
                 site text, device text, attribute text, day int, bucket bigint, \
                 min double, max double, sum double, count bigint, \
                 PRIMARY KEY ((site, day), device, attribute, bucket))"
            ),
        ),
        (
            "rollup_1h",
            format!(
                "CREATE TABLE IF NOT EXISTS {k}.rollup_1h (\
                 site text, device text, attribute text, month int, bucket bigint, \
                 min double, max double, sum double, count bigint, \
                 PRIMARY KEY ((site, month), device, attribute, bucket))"
            ),
        ),
        (
            "latest",
            format!(
                "CREATE TABLE IF NOT EXISTS {k}.latest (\
                 site text, device text, attribute text, ts bigint, \
                 value_double double, value_int bigint, value_bool boolean, value_text text, \
                 unit text, quality int, \
                 PRIMARY KEY ((site), device, attribute))"
            ),
        ),
        (
            "exposure",
            format!(
                "CREATE TABLE IF NOT EXISTS {k}.exposure (\
                 site text, position int, hour bigint, \
                 open_dome_hours double, dust_dose_ug_m3_h double, calima_events bigint, \
                 humid_hours double, dew_risk_hours double, days_with_data bigint, \
                 PRIMARY KEY ((site, position), hour)) \
                 WITH CLUSTERING ORDER BY (hour DESC)"
            ),
        ),
        (
            "ingest_progress",
            format!(
                "CREATE TABLE IF NOT EXISTS {k}.ingest_progress (\
                 site text PRIMARY KEY, state text, updated_at bigint)"
            ),
        ),
        (
            "dead_letters",
            format!(
                "CREATE TABLE IF NOT EXISTS {k}.dead_letters (\
                 site text, day int, at bigint, id timeuuid, topic text, reason text, \
                 payload blob, \
                 PRIMARY KEY ((site, day), at, id)) \
                 WITH CLUSTERING ORDER BY (at DESC, id ASC)"
            ),
        ),
        (
            "dead_letter_counts",
            format!(
                "CREATE TABLE IF NOT EXISTS {k}.dead_letter_counts (\
                 shard int, site text, letters counter, \
                 PRIMARY KEY ((shard), site))"
            ),
        ),
        (
            "api_tokens",
            format!(
                "CREATE TABLE IF NOT EXISTS {k}.api_tokens (\
                 id text PRIMARY KEY, name text, role text, secret_sha256 text, \
                 created_at bigint, revoked boolean)"
            ),
        ),
        (
            "audit_log",
            format!(
                "CREATE TABLE IF NOT EXISTS {k}.audit_log (\
                 day int, at bigint, id timeuuid, token_id text, caller text, role text, \
                 method text, subject text, \
                 PRIMARY KEY ((day), at, id)) WITH CLUSTERING ORDER BY (at DESC, id DESC)"
            ),
        ),
        // Registry (enrolment): see `registry.rs`. Every site lives in one
        // partition (`shard = 0`): the hub lists them all every few seconds.
        (
            "sites",
            format!(
                "CREATE TABLE IF NOT EXISTS {k}.sites (\
                 shard int, site text, display_name text, latitude_deg double, \
                 longitude_deg double, altitude_m double, mirror_segments int, state text, \
                 created_at bigint, enrolled_at bigint, revoked_at bigint, revoke_reason text, \
                 certificate_not_after bigint, \
                 PRIMARY KEY ((shard), site))"
            ),
        ),
        (
            "join_tokens",
            format!(
                "CREATE TABLE IF NOT EXISTS {k}.join_tokens (\
                 id text PRIMARY KEY, secret_sha256 text, site text, created_at bigint, \
                 expires_at bigint, used_at bigint, created_by text, reenroll boolean)"
            ),
        ),
        (
            "site_certificates",
            format!(
                "CREATE TABLE IF NOT EXISTS {k}.site_certificates (\
                 site text, serial text, issued_at bigint, not_after bigint, \
                 PRIMARY KEY ((site), serial))"
            ),
        ),
        (
            "revocations",
            format!(
                "CREATE TABLE IF NOT EXISTS {k}.revocations (\
                 site text, at bigint, reason text, revoked_by text, \
                 PRIMARY KEY ((site), at)) WITH CLUSTERING ORDER BY (at ASC)"
            ),
        ),
    ]
    .into_iter()
    // Segment records, installations, maintenance: see `segments.rs`.
    .chain(super::segments::tables_cql(k))
    .chain(super::predictions::tables_cql(k))
    .collect()
}

/// Creates the keyspace (if missing) and every table (if missing).
pub async fn create(
    session: &Session,
    keyspace: &str,
    replication_factor: u32,
    sample_ttl_days: u32,
) -> StoreResult<()> {
    let run = |what: String, cql: String| async move {
        session
            .query_unpaged(cql, &[])
            .await
            .map(|_| ())
            .map_err(|e| StoreError::new(BACKEND, what, e))
    };
    run(
        format!("creating keyspace {keyspace}"),
        keyspace_cql(keyspace, replication_factor),
    )
    .await?;
    let ttl_seconds = sample_ttl_days * 86_400;
    for (table, cql) in tables_cql(keyspace, ttl_seconds) {
        run(format!("creating table {keyspace}.{table}"), cql).await?;
    }
    warn_on_option_drift(session, keyspace, replication_factor, ttl_seconds).await;
    Ok(())
}

/// Logs where the existing schema differs from the configuration (an
/// existing keyspace or table is left as it is). Best effort: a failure to
/// read `system_schema` is only logged.
async fn warn_on_option_drift(
    session: &Session,
    keyspace: &str,
    replication_factor: u32,
    ttl_seconds: u32,
) {
    let replication = session
        .query_unpaged(
            "SELECT replication FROM system_schema.keyspaces WHERE keyspace_name = ?",
            (keyspace,),
        )
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r.into_rows_result().map_err(|e| e.to_string()))
        .and_then(|rows| {
            rows.maybe_first_row::<(std::collections::HashMap<String, String>,)>()
                .map_err(|e| e.to_string())
        });
    match replication {
        Ok(Some((replication,))) => info!(
            keyspace,
            ?replication,
            configured_replication_factor = replication_factor,
            "cassandra keyspace ready"
        ),
        Ok(None) => warn!(
            keyspace,
            "keyspace missing from system_schema after creation"
        ),
        Err(error) => warn!(%error, keyspace, "could not read the keyspace replication"),
    }
    let ttl = session
        .query_unpaged(
            "SELECT default_time_to_live FROM system_schema.tables \
             WHERE keyspace_name = ? AND table_name = 'samples'",
            (keyspace,),
        )
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r.into_rows_result().map_err(|e| e.to_string()))
        .and_then(|rows| rows.maybe_first_row::<(i32,)>().map_err(|e| e.to_string()));
    match ttl {
        Ok(Some((existing,))) if i64::from(existing) != i64::from(ttl_seconds) => warn!(
            keyspace,
            existing_ttl_seconds = existing,
            configured_ttl_seconds = ttl_seconds,
            "samples table keeps its existing default_time_to_live; alter it to apply the configured one"
        ),
        Ok(_) => {}
        Err(error) => warn!(%error, keyspace, "could not read the samples table ttl"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyspace_names_are_checked_and_lower_cased() {
        assert_eq!(keyspace_name("Observatory_1").unwrap(), "observatory_1");
        for bad in ["", "obs-hub", "obs; DROP KEYSPACE x", &"k".repeat(49)] {
            let error = keyspace_name(bad).unwrap_err();
            assert!(error.contains("keyspace name"), "{error}");
        }
    }

    #[test]
    fn every_statement_is_idempotent_and_qualified() {
        assert!(keyspace_cql("obs", 3).contains("'replication_factor': 3"));
        let tables = tables_cql("obs", 86_400);
        assert_eq!(tables.len(), 22);
        for (table, cql) in &tables {
            assert!(
                cql.starts_with(&format!("CREATE TABLE IF NOT EXISTS obs.{table} (")),
                "{cql}"
            );
        }
        assert!(tables[0].1.contains("default_time_to_live = 86400"));
        assert!(tables[0].1.contains("TimeWindowCompactionStrategy"));
    }
}

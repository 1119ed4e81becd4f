//! [`TelemetryStore`] on SQLite: one transaction per batch.

use std::collections::HashMap;

use async_trait::async_trait;
use obs_proto::v1::{Sample, TelemetryBatch, sample};
use rusqlite::{OptionalExtension, Row, Transaction, params};

use super::{SqliteStore, json_list};
use crate::ingest::{
    Aggregate, BatchWrites, ExposureTotals, IngestCounters, LateBucket, Resolution, SiteState,
};
use crate::store::{DeadLetter, RollupPoint, SeriesQuery, StoreError, StoreResult, TelemetryStore};

fn rollup_table(resolution: Resolution) -> &'static str {
    match resolution {
        Resolution::Minute => "rollup_1m",
        Resolution::Hour => "rollup_1h",
    }
}

type ValueColumns = (Option<f64>, Option<i64>, Option<bool>, Option<String>);

fn value_columns(sample: &Sample) -> ValueColumns {
    match &sample.value {
        Some(sample::Value::DoubleValue(v)) => (Some(*v), None, None, None),
        Some(sample::Value::IntValue(v)) => (None, Some(*v), None, None),
        Some(sample::Value::BoolValue(v)) => (None, None, Some(*v), None),
        Some(sample::Value::StringValue(v)) => (None, None, None, Some(v.clone())),
        None => (None, None, None, None),
    }
}

/// Reads a sample from columns device, attribute, ts, value_double,
/// value_int, value_bool, value_text, unit, quality.
fn sample_from_row(row: &Row<'_>) -> rusqlite::Result<Sample> {
    let value = if let Some(v) = row.get::<_, Option<f64>>(3)? {
        Some(sample::Value::DoubleValue(v))
    } else if let Some(v) = row.get::<_, Option<i64>>(4)? {
        Some(sample::Value::IntValue(v))
    } else if let Some(v) = row.get::<_, Option<bool>>(5)? {
        Some(sample::Value::BoolValue(v))
    } else {
        row.get::<_, Option<String>>(6)?
            .map(sample::Value::StringValue)
    };
    Ok(Sample {
        device: row.get(0)?,
        attribute: row.get(1)?,
        ts_unix_ns: row.get(2)?,
        value,
        unit: row.get(7)?,
        quality: row.get(8)?,
    })
}

const INSERT_SAMPLE: &str = "INSERT OR REPLACE INTO samples (site, device, attribute, ts, \
     value_double, value_int, value_bool, value_text, unit, quality) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)";

/// A `latest` row changes only for a sample as new or newer.
const UPSERT_LATEST: &str = "INSERT INTO latest (site, device, attribute, ts, value_double, \
     value_int, value_bool, value_text, unit, quality) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) \
     ON CONFLICT (site, device, attribute) DO UPDATE SET ts = excluded.ts, \
     value_double = excluded.value_double, value_int = excluded.value_int, \
     value_bool = excluded.value_bool, value_text = excluded.value_text, \
     unit = excluded.unit, quality = excluded.quality WHERE excluded.ts >= latest.ts";

/// Runs `sql` ([`INSERT_SAMPLE`] or [`UPSERT_LATEST`]) for each of `samples`.
fn write_samples(
    tx: &Transaction<'_>,
    sql: &str,
    site: &str,
    samples: &[Sample],
) -> rusqlite::Result<()> {
    let mut insert = tx.prepare_cached(sql)?;
    for s in samples {
        let (d, i, b, t) = value_columns(s);
        let values = params![
            site,
            s.device,
            s.attribute,
            s.ts_unix_ns,
            d,
            i,
            b,
            t,
            s.unit,
            s.quality
        ];
        insert.execute(values)?;
    }
    Ok(())
}

fn write_rollup(
    tx: &Transaction<'_>,
    site: &str,
    resolution: Resolution,
    device: &str,
    attribute: &str,
    bucket: i64,
    a: &Aggregate,
) -> rusqlite::Result<()> {
    let sql = format!(
        "INSERT OR REPLACE INTO {} (site, device, attribute, bucket, min, max, sum, count) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        rollup_table(resolution)
    );
    tx.prepare_cached(&sql)?.execute(params![
        site,
        device,
        attribute,
        bucket,
        a.min,
        a.max,
        a.sum,
        a.count as i64
    ])?;
    Ok(())
}

/// Recomputes a bucket from the raw samples (after late data).
fn recompute(tx: &Transaction<'_>, site: &str, late: &LateBucket) -> rusqlite::Result<()> {
    let from = late.bucket_start.saturating_mul(1_000_000_000);
    let to = (late.bucket_start + late.resolution.seconds()).saturating_mul(1_000_000_000);
    let aggregate: Option<Aggregate> = tx
        .prepare_cached(
            "SELECT min(v), max(v), sum(v), count(v) FROM (SELECT coalesce(value_double, value_int, \
             value_bool) AS v FROM samples WHERE site = ?1 AND device = ?2 AND attribute = ?3 \
             AND ts >= ?4 AND ts < ?5) WHERE v IS NOT NULL AND v = v AND abs(v) < 1e308",
        )?
        .query_row(
            params![site, late.series.device, late.series.attribute, from, to],
            |row| {
                let count: i64 = row.get(3)?;
                Ok((count > 0).then(|| -> rusqlite::Result<Aggregate> {
                    Ok(Aggregate {
                        min: row.get(0)?,
                        max: row.get(1)?,
                        sum: row.get(2)?,
                        count: count as u64,
                    })
                }))
            },
        )?
        .transpose()?;
    if let Some(a) = aggregate {
        write_rollup(
            tx,
            site,
            late.resolution,
            &late.series.device,
            &late.series.attribute,
            late.bucket_start,
            &a,
        )?;
    }
    Ok(())
}

fn write_state(tx: &Transaction<'_>, site: &str, state: &SiteState) -> rusqlite::Result<()> {
    let json = serde_json::to_string(state)
        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
    tx.prepare_cached(
        "INSERT OR REPLACE INTO ingest_progress (site, state, updated_at) VALUES (?1, ?2, ?3)",
    )?
    .execute(params![site, json, crate::time::now_unix_ns()])?;
    Ok(())
}

fn range(query: &SeriesQuery) -> (i64, i64) {
    (query.from_ns, query.to_ns)
}

#[async_trait]
impl TelemetryStore for SqliteStore {
    async fn load_site_state(&self, site: &str) -> StoreResult<Option<SiteState>> {
        let site_owned = site.to_owned();
        let json: Option<String> = self
            .read("loading ingest state", move |conn| {
                conn.query_row(
                    "SELECT state FROM ingest_progress WHERE site = ?1",
                    [site_owned],
                    |row| row.get(0),
                )
                .optional()
            })
            .await?;
        json.map(|text| serde_json::from_str(&text))
            .transpose()
            .map_err(|e| {
                StoreError::new("sqlite", format!("decoding ingest state of site {site}"), e)
            })
    }

    async fn sites_with_state(&self) -> StoreResult<Vec<String>> {
        self.read("listing sites", |conn| {
            let mut stmt = conn.prepare("SELECT site FROM ingest_progress ORDER BY site")?;
            let rows = stmt.query_map([], |row| row.get(0))?;
            rows.collect()
        })
        .await
    }

    async fn ingest_counters(
        &self,
        sites: &[String],
    ) -> StoreResult<HashMap<String, IngestCounters>> {
        let list = json_list(sites);
        let rows: Vec<(String, String)> = self
            .read("reading ingest counters", move |conn| {
                let mut stmt = conn.prepare_cached(
                    "SELECT site, json_extract(state, '$.counters') FROM ingest_progress \
                     WHERE site IN (SELECT value FROM json_each(?1))",
                )?;
                let rows = stmt.query_map([list], |row| Ok((row.get(0)?, row.get(1)?)))?;
                rows.collect()
            })
            .await?;
        rows.into_iter()
            .map(|(site, json)| {
                let counters = serde_json::from_str(&json).map_err(|e| {
                    StoreError::new(
                        "sqlite",
                        format!("decoding ingest counters of site {site}"),
                        e,
                    )
                })?;
                Ok((site, counters))
            })
            .collect()
    }

    async fn write_batch(
        &self,
        batch: &TelemetryBatch,
        writes: &BatchWrites,
        state: Option<&SiteState>,
    ) -> StoreResult<()> {
        let site = batch.site.clone();
        let samples = batch.samples.clone();
        let latest = writes.latest.clone();
        let rollups = writes.rollups.clone();
        let late = writes.late.clone();
        let exposure = writes.exposure.clone();
        let state = state.cloned();
        let operation = format!("writing batch seq {} of site {site}", batch.seq);
        self.write(&operation, move |conn| {
            let tx = conn.transaction()?;
            write_samples(&tx, INSERT_SAMPLE, &site, &samples)?;
            write_samples(&tx, UPSERT_LATEST, &site, &latest)?;
            for row in &rollups {
                write_rollup(
                    &tx,
                    &site,
                    row.resolution,
                    &row.series.device,
                    &row.series.attribute,
                    row.bucket_start,
                    &row.aggregate,
                )?;
            }
            for bucket in &late {
                recompute(&tx, &site, bucket)?;
            }
            {
                let mut insert = tx.prepare_cached(
                    "INSERT OR REPLACE INTO exposure (site, position, hour, open_dome_hours, \
                     dust_dose_ug_m3_h, calima_events, humid_hours, dew_risk_hours, days_with_data) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                )?;
                for row in &exposure {
                    let t = &row.totals;
                    insert.execute(params![
                        site,
                        row.position,
                        row.hour_start,
                        t.open_dome_hours,
                        t.dust_dose_ug_m3_h,
                        t.calima_events,
                        t.humid_hours,
                        t.dew_risk_hours,
                        t.days_with_data
                    ])?;
                }
            }
            if let Some(state) = &state {
                write_state(&tx, &site, state)?;
            }
            tx.commit()
        })
        .await
    }

    async fn write_site_state(&self, site: &str, state: &SiteState) -> StoreResult<()> {
        let site = site.to_owned();
        let state = state.clone();
        self.write("writing ingest state", move |conn| {
            let tx = conn.transaction()?;
            write_state(&tx, &site, &state)?;
            tx.commit()
        })
        .await
    }

    async fn query_samples(&self, query: &SeriesQuery) -> StoreResult<Vec<Sample>> {
        let q = query.clone();
        self.read("querying samples", move |conn| {
            let (from, to) = range(&q);
            let mut stmt = conn.prepare_cached(
                "SELECT device, attribute, ts, value_double, value_int, value_bool, value_text, \
                 unit, quality FROM samples WHERE site = ?1 AND device = ?2 AND attribute = ?3 \
                 AND ts >= ?4 AND ts < ?5 ORDER BY ts LIMIT ?6",
            )?;
            let rows = stmt.query_map(
                params![q.site, q.device, q.attribute, from, to, q.limit as i64],
                sample_from_row,
            )?;
            rows.collect()
        })
        .await
    }

    async fn query_rollups(
        &self,
        query: &SeriesQuery,
        resolution: Resolution,
    ) -> StoreResult<Vec<RollupPoint>> {
        let q = query.clone();
        self.read("querying rollups", move |conn| {
            let width = resolution.seconds();
            // A bucket is returned when it starts inside [from, to).
            let from = q.from_ns.div_euclid(1_000_000_000);
            let from = from + (width - from.rem_euclid(width)) % width;
            let to = q.to_ns.div_euclid(1_000_000_000);
            let sql = format!(
                "SELECT bucket, min, max, sum, count FROM {} WHERE site = ?1 AND device = ?2 \
                 AND attribute = ?3 AND bucket >= ?4 AND bucket < ?5 ORDER BY bucket LIMIT ?6",
                rollup_table(resolution)
            );
            let mut stmt = conn.prepare_cached(&sql)?;
            let rows = stmt.query_map(
                params![q.site, q.device, q.attribute, from, to, q.limit as i64],
                |row| {
                    Ok(RollupPoint {
                        bucket_start: row.get(0)?,
                        aggregate: Aggregate {
                            min: row.get(1)?,
                            max: row.get(2)?,
                            sum: row.get(3)?,
                            count: row.get::<_, i64>(4)? as u64,
                        },
                    })
                },
            )?;
            rows.collect()
        })
        .await
    }

    async fn latest(&self, site: &str) -> StoreResult<Vec<Sample>> {
        let site = site.to_owned();
        self.read("reading latest values", move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT device, attribute, ts, value_double, value_int, value_bool, value_text, \
                 unit, quality FROM latest WHERE site = ?1 ORDER BY device, attribute",
            )?;
            let rows = stmt.query_map([site], sample_from_row)?;
            rows.collect()
        })
        .await
    }

    async fn exposure_at(
        &self,
        site: &str,
        position: u32,
        at_unix_s: i64,
    ) -> StoreResult<Option<ExposureTotals>> {
        let site = site.to_owned();
        self.read("reading exposure", move |conn| {
            conn.query_row(
                "SELECT open_dome_hours, dust_dose_ug_m3_h, calima_events, humid_hours, \
                 dew_risk_hours, days_with_data FROM exposure WHERE site = ?1 AND position = ?2 \
                 AND hour <= ?3 ORDER BY hour DESC LIMIT 1",
                params![site, position, at_unix_s],
                |row| {
                    Ok(ExposureTotals {
                        open_dome_hours: row.get(0)?,
                        dust_dose_ug_m3_h: row.get(1)?,
                        calima_events: row.get(2)?,
                        humid_hours: row.get(3)?,
                        dew_risk_hours: row.get(4)?,
                        days_with_data: row.get(5)?,
                    })
                },
            )
            .optional()
        })
        .await
    }

    async fn record_dead_letter(&self, letter: &DeadLetter) -> StoreResult<()> {
        let letter = letter.clone();
        self.write("recording a dead letter", move |conn| {
            conn.execute(
                "INSERT INTO dead_letters (site, topic, at, reason, payload) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![letter.site, letter.topic, letter.at_unix_ns, letter.reason, letter.payload],
            )?;
            Ok(())
        })
        .await
    }

    async fn dead_letter_counts(&self) -> StoreResult<Vec<(Option<String>, u64)>> {
        self.read("counting dead letters", |conn| {
            let mut stmt = conn.prepare("SELECT site, count(*) FROM dead_letters GROUP BY site")?;
            let rows = stmt.query_map([], |row| Ok((row.get(0)?, row.get::<_, i64>(1)? as u64)))?;
            rows.collect()
        })
        .await
    }
}

//! Writing a batch: raw samples, latest values, rollups, late-bucket
//! recomputations and exposure rows in one round (the samples before the
//! rest when a late bucket is recomputed from them), then (only if all of
//! those succeeded) the site's state, when the caller gives it.
//!
//! Rows are grouped per partition into unlogged batches of at most
//! [`MAX_BATCH_ROWS`] rows (a single-partition batch is applied as one
//! mutation) and sent with at most [`WRITE_CONCURRENCY`] requests in flight.
//! Within a batch of telemetry, the last row for a key wins, as with
//! `INSERT OR REPLACE`; across batches the session's monotonic client-side
//! timestamps order the writes, except `latest`, which is written `USING
//! TIMESTAMP` of the sample (in µs) so the newest sample wins whatever order
//! the writes arrive in.

use std::collections::{BTreeMap, BTreeSet};

use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt, TryStreamExt, stream};
use obs_proto::v1::TelemetryBatch;
use scylla::errors::ExecutionError;
use scylla::serialize::row::SerializeRow;
use scylla::statement::batch::{Batch, BatchStatement, BatchType};
use scylla::statement::prepared::PreparedStatement;

use super::keys::{day_of_ns, day_of_s, month_of_s};
use super::rows::{SampleRow, SampleValue, value_binds};
use super::{CassandraStore, MAX_BATCH_ROWS, WRITE_CONCURRENCY, fail};
use crate::ingest::rollup::numeric_value;
use crate::ingest::{Aggregate, BatchWrites, LateBucket, Resolution, SiteState};
use crate::store::StoreResult;

type Task<'a> = BoxFuture<'a, StoreResult<()>>;

/// Runs `tasks` with at most [`WRITE_CONCURRENCY`] in flight; the first
/// error stops the rest.
async fn run_bounded(tasks: Vec<Task<'_>>) -> StoreResult<()> {
    stream::iter(tasks)
        .buffer_unordered(WRITE_CONCURRENCY)
        .try_collect::<()>()
        .await
}

/// Groups rows by partition, the last row for a clustering key winning,
/// and cuts each partition into chunks of at most [`MAX_BATCH_ROWS`].
fn partition_chunks<P: Ord, C: Ord, R>(rows: impl IntoIterator<Item = (P, C, R)>) -> Vec<Vec<R>> {
    let mut partitions: BTreeMap<P, BTreeMap<C, R>> = BTreeMap::new();
    for (partition, clustering, row) in rows {
        partitions
            .entry(partition)
            .or_default()
            .insert(clustering, row);
    }
    let mut chunks = Vec::new();
    for rows in partitions.into_values() {
        let mut chunk = Vec::with_capacity(rows.len().min(MAX_BATCH_ROWS));
        for row in rows.into_values() {
            if chunk.len() == MAX_BATCH_ROWS {
                chunks.push(std::mem::take(&mut chunk));
            }
            chunk.push(row);
        }
        if !chunk.is_empty() {
            chunks.push(chunk);
        }
    }
    chunks
}

/// site, device, attribute, partition, bucket, min, max, sum, count.
type RollupValues<'a> = (&'a str, &'a str, &'a str, i32, i64, f64, f64, f64, i64);

/// The values of a rollup insert.
fn rollup_values<'a>(
    site: &'a str,
    device: &'a str,
    attribute: &'a str,
    partition: i32,
    bucket: i64,
    a: &Aggregate,
) -> RollupValues<'a> {
    let count = i64::try_from(a.count).unwrap_or(i64::MAX);
    (
        site, device, attribute, partition, bucket, a.min, a.max, a.sum, count,
    )
}

impl CassandraStore {
    /// Writes `rows`, each with its statement: one request for one row, an
    /// unlogged batch for more (callers pass rows of one partition only).
    async fn write_rows<V: SerializeRow>(
        &self,
        rows: Vec<(&PreparedStatement, V)>,
    ) -> Result<(), ExecutionError> {
        if let [(statement, row)] = rows.as_slice() {
            return self
                .session()
                .execute_unpaged(statement, row)
                .await
                .map(drop);
        }
        if rows.is_empty() {
            return Ok(());
        }
        let (statements, values): (Vec<_>, Vec<_>) = rows
            .into_iter()
            .map(|(statement, row)| (BatchStatement::PreparedStatement(statement.clone()), row))
            .unzip();
        let mut batch = Batch::new_with_statements(BatchType::Unlogged, statements);
        batch.set_is_idempotent(true);
        self.session().batch(&batch, values).await.map(drop)
    }

    /// A task writing one chunk of rows; its error names `operation`.
    fn chunk_task<'a, V: SerializeRow + Send + Sync + 'a>(
        &'a self,
        chunk: Vec<(&'a PreparedStatement, V)>,
        operation: String,
    ) -> Task<'a> {
        async move { self.write_rows(chunk).await.map_err(|e| fail(operation, e)) }.boxed()
    }

    /// Everything of [`TelemetryStore::write_batch`](crate::store::TelemetryStore::write_batch).
    pub(super) async fn write_batch_rows(
        &self,
        batch: &TelemetryBatch,
        writes: &BatchWrites,
        state: Option<&SiteState>,
    ) -> StoreResult<()> {
        let (site, seq) = (batch.site.as_str(), batch.seq);

        // 1. Raw samples, latest values, rollups and exposure, in one round
        // of requests; but recomputing a late bucket reads the raw samples,
        // so with late buckets the samples go first.
        let mut tasks = self.sample_tasks(batch);
        tasks.extend(self.latest_tasks(site, seq, writes));
        if !writes.late.is_empty() {
            run_bounded(std::mem::take(&mut tasks)).await?;
        }
        tasks.extend(self.rollup_tasks(site, seq, writes));
        for bucket in &writes.late {
            tasks.push(self.recompute(site, seq, bucket).boxed());
        }
        tasks.extend(self.exposure_tasks(site, seq, writes)?);
        run_bounded(tasks).await?;

        // 2. The state, last: it decides whether the batch counts as applied.
        let Some(state) = state else {
            return Ok(());
        };
        self.write_state(site, state).await.map_err(|e| {
            fail(
                format!("writing ingest state after batch seq {seq} of site {site}"),
                e,
            )
        })
    }

    /// Raw samples, one task per partition chunk.
    fn sample_tasks<'a>(&'a self, batch: &'a TelemetryBatch) -> Vec<Task<'a>> {
        let (site, seq) = (batch.site.as_str(), batch.seq);
        let inserts = &self.statements().insert_sample;
        let rows = batch.samples.iter().map(|s| {
            let (device, attribute) = (s.device.as_str(), s.attribute.as_str());
            let day = day_of_ns(s.ts_unix_ns);
            let value = SampleValue::of(s);
            let row = (
                site,
                device,
                attribute,
                day,
                s.ts_unix_ns,
                value,
                s.unit.as_str(),
                s.quality,
            );
            (
                (device, attribute, day),
                s.ts_unix_ns,
                (inserts.of(&value), row),
            )
        });
        partition_chunks(rows)
            .into_iter()
            .map(|chunk| {
                let (_, (_, device, attribute, day, ..)) = chunk[0];
                let operation = format!(
                    "writing samples of {device} {attribute} day {day} \
                     (batch seq {seq} of site {site})"
                );
                self.chunk_task(chunk, operation)
            })
            .collect()
    }

    /// Latest values: the newest sample of each series, written `USING
    /// TIMESTAMP` of its time in µs (all rows are in the site's partition).
    fn latest_tasks<'a>(
        &'a self,
        site: &'a str,
        seq: u64,
        writes: &'a BatchWrites,
    ) -> Vec<Task<'a>> {
        let rows = writes.latest.iter().map(|s| {
            let (device, attribute) = (s.device.as_str(), s.attribute.as_str());
            let (d, i, b, t) = value_binds(s);
            let write_time_us = s.ts_unix_ns.div_euclid(1_000);
            let row = (
                site,
                device,
                attribute,
                s.ts_unix_ns,
                d,
                i,
                b,
                t,
                s.unit.as_str(),
                s.quality,
                write_time_us,
            );
            (
                (),
                (device, attribute),
                (&self.statements().insert_latest, row),
            )
        });
        partition_chunks(rows)
            .into_iter()
            .map(|chunk| {
                let operation = format!("writing latest values (batch seq {seq} of site {site})");
                self.chunk_task(chunk, operation)
            })
            .collect()
    }

    /// Rollup rows from the open-bucket state. A bucket that is also
    /// recomputed in this batch is skipped: the recomputation (from every raw
    /// sample, this batch's included) supersedes it, and so the two writes
    /// need no ordering.
    fn rollup_tasks<'a>(
        &'a self,
        site: &'a str,
        seq: u64,
        writes: &'a BatchWrites,
    ) -> Vec<Task<'a>> {
        let late: BTreeSet<(&str, &str, Resolution, i64)> = writes
            .late
            .iter()
            .map(|l| {
                (
                    l.series.device.as_str(),
                    l.series.attribute.as_str(),
                    l.resolution,
                    l.bucket_start,
                )
            })
            .collect();
        let mut tasks = Vec::new();
        for resolution in [Resolution::Minute, Resolution::Hour] {
            let (statement, partition_of) = self.rollup_target(resolution);
            let rows = writes
                .rollups
                .iter()
                .filter(|r| r.resolution == resolution)
                .map(|r| {
                    let (device, attribute) =
                        (r.series.device.as_str(), r.series.attribute.as_str());
                    ((device, attribute), r.bucket_start, &r.aggregate)
                })
                .filter(|((device, attribute), bucket, _)| {
                    !late.contains(&(*device, *attribute, resolution, *bucket))
                })
                .map(|((device, attribute), bucket, a)| {
                    let partition = partition_of(bucket);
                    let row = rollup_values(site, device, attribute, partition, bucket, a);
                    (partition, (device, attribute, bucket), (statement, row))
                });
            for chunk in partition_chunks(rows) {
                let operation =
                    format!("writing {resolution:?} rollups (batch seq {seq} of site {site})");
                tasks.push(self.chunk_task(chunk, operation));
            }
        }
        tasks
    }

    /// The rollup table of `resolution`: its insert and its partition key.
    fn rollup_target(&self, resolution: Resolution) -> (&PreparedStatement, fn(i64) -> i32) {
        match resolution {
            Resolution::Minute => (&self.statements().insert_rollup_1m, day_of_s),
            Resolution::Hour => (&self.statements().insert_rollup_1h, month_of_s),
        }
    }

    /// Exposure rows, one task per position chunk.
    fn exposure_tasks<'a>(
        &'a self,
        site: &'a str,
        seq: u64,
        writes: &'a BatchWrites,
    ) -> StoreResult<Vec<Task<'a>>> {
        let mut rows = Vec::with_capacity(writes.exposure.len());
        for row in &writes.exposure {
            let position = i32::try_from(row.position).map_err(|e| {
                fail(
                    format!(
                        "writing exposure of position {} (batch seq {seq} of site {site})",
                        row.position
                    ),
                    e,
                )
            })?;
            let t = &row.totals;
            let values = (
                site,
                position,
                row.hour_start,
                t.open_dome_hours,
                t.dust_dose_ug_m3_h,
                i64::from(t.calima_events),
                t.humid_hours,
                t.dew_risk_hours,
                i64::from(t.days_with_data),
            );
            let statement = &self.statements().insert_exposure;
            rows.push((position, row.hour_start, (statement, values)));
        }
        Ok(partition_chunks(rows)
            .into_iter()
            .map(|chunk| {
                let operation = format!("writing exposure (batch seq {seq} of site {site})");
                self.chunk_task(chunk, operation)
            })
            .collect())
    }

    /// Recomputes a bucket from its raw samples (they all lie in one day
    /// partition) and writes it, like the embedded store's
    /// `coalesce(value_double, value_int, value_bool)`: numbers and booleans
    /// as 0/1, non-finite values and strings skipped. Writes nothing when no
    /// sample of the bucket has a numeric value.
    async fn recompute(&self, site: &str, seq: u64, late: &LateBucket) -> StoreResult<()> {
        let (device, attribute) = (late.series.device.as_str(), late.series.attribute.as_str());
        let operation = || {
            format!(
                "recomputing the {:?} bucket {} of {device} {attribute} (batch seq {seq} of site {site})",
                late.resolution, late.bucket_start
            )
        };
        let from = late.bucket_start.saturating_mul(1_000_000_000);
        let to = (late.bucket_start + late.resolution.seconds()).saturating_mul(1_000_000_000);
        let day = day_of_ns(from);
        let statements = self.statements();
        let mut rows = self
            .session()
            .execute_iter(
                statements.select_samples.clone(),
                (site, device, attribute, day, from, to, i32::MAX),
            )
            .await
            .map_err(|e| fail(operation(), e))?
            .rows_stream::<SampleRow>()
            .map_err(|e| fail(operation(), e))?;
        let mut aggregate: Option<Aggregate> = None;
        while let Some(row) = rows.try_next().await.map_err(|e| fail(operation(), e))? {
            let Some(value) = numeric_value(&row.into_sample()) else {
                continue;
            };
            match aggregate.as_mut() {
                Some(a) => a.add(value),
                None => aggregate = Some(Aggregate::of(value)),
            }
        }
        let Some(a) = aggregate else {
            return Ok(());
        };
        let (statement, partition_of) = self.rollup_target(late.resolution);
        let row = rollup_values(
            site,
            device,
            attribute,
            partition_of(late.bucket_start),
            late.bucket_start,
            &a,
        );
        self.session()
            .execute_unpaged(statement, row)
            .await
            .map(drop)
            .map_err(|e| fail(operation(), e))
    }

    /// Writes the state of `site` as JSON, exactly as the embedded store.
    pub(super) async fn write_state(
        &self,
        site: &str,
        state: &SiteState,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let json = serde_json::to_string(state)?;
        self.session()
            .execute_unpaged(
                &self.statements().insert_progress,
                (site, json, crate::time::now_unix_ns()),
            )
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_hold_one_partition_at_most_the_batch_size_and_the_last_row_wins() {
        let rows = (0..250).map(|i| ("p1", i, i)).chain([
            ("p2", 0, 1000),
            ("p2", 0, 1001),
            ("p1", 3, 9999),
        ]);
        let chunks = partition_chunks(rows);
        let sizes: Vec<usize> = chunks.iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![100, 100, 50, 1]);
        assert_eq!(
            chunks[0][3], 9999,
            "a later row for the same key replaces it"
        );
        assert_eq!(chunks[3], vec![1001]);
    }
}

//! [`TelemetryStore`] on Cassandra: the write path is in `write.rs`; here
//! are the reads, the state and the dead letters.
//!
//! Time-range reads visit the partitions of the range oldest first (days for
//! raw samples and minute rollups, months for hour rollups), each with a
//! `LIMIT` of what is still wanted, and stop as soon as `limit` rows are in.

use std::time::Instant;

use async_trait::async_trait;
use futures::TryStreamExt;
use obs_proto::v1::{Sample, TelemetryBatch};
use scylla::statement::prepared::PreparedStatement;
use scylla::value::Counter;
use tracing::debug;

use super::keys::{day_of_ns, day_of_s, days_of_ns_range, month_of_s, partitions_of_s_range};
use super::rows::{
    ExposureRowCql, RollupRowCql, SampleRow, dead_letter_site, dead_letter_site_back,
};
use super::{CassandraStore, MAX_PARTITIONS_PER_QUERY, fail};
use crate::ingest::{BatchWrites, ExposureTotals, Resolution, SiteState};
use crate::store::{DeadLetter, RollupPoint, SeriesQuery, StoreResult, TelemetryStore};

type DynError = Box<dyn std::error::Error + Send + Sync>;

/// Refuses a query over more partitions than [`MAX_PARTITIONS_PER_QUERY`].
fn check_span(range: &std::ops::RangeInclusive<i32>, unit: &str) -> Result<(), DynError> {
    let span = i64::from(*range.end()) - i64::from(*range.start()) + 1;
    if span > MAX_PARTITIONS_PER_QUERY {
        return Err(format!(
            "the time range spans {span} {unit} partitions, more than the \
             {MAX_PARTITIONS_PER_QUERY} one query reads; narrow it"
        )
        .into());
    }
    Ok(())
}

/// `LIMIT` of a partition query: what is still wanted.
fn remaining(limit: usize, have: usize) -> i32 {
    i32::try_from(limit.saturating_sub(have)).unwrap_or(i32::MAX)
}

impl CassandraStore {
    async fn read_samples(&self, q: &SeriesQuery) -> Result<Vec<Sample>, DynError> {
        let mut out = Vec::new();
        let Some(days) = days_of_ns_range(q.from_ns, q.to_ns).filter(|_| q.limit > 0) else {
            return Ok(out);
        };
        check_span(&days, "day")?;
        for day in days {
            let values = (
                q.site.as_str(),
                q.device.as_str(),
                q.attribute.as_str(),
                day,
                q.from_ns,
                q.to_ns,
                remaining(q.limit, out.len()),
            );
            let mut rows = self
                .session()
                .execute_iter(self.statements().select_samples.clone(), values)
                .await?
                .rows_stream::<SampleRow>()?;
            while let Some(row) = rows.try_next().await? {
                out.push(row.into_sample());
                if out.len() >= q.limit {
                    return Ok(out);
                }
            }
        }
        Ok(out)
    }

    async fn read_rollups(
        &self,
        q: &SeriesQuery,
        resolution: Resolution,
    ) -> Result<Vec<RollupPoint>, DynError> {
        // A bucket is returned when it starts inside [from, to), with the
        // bounds rounded exactly as the embedded store rounds them.
        let width = resolution.seconds();
        let from = q.from_ns.div_euclid(1_000_000_000);
        let from = from + (width - from.rem_euclid(width)) % width;
        let to = q.to_ns.div_euclid(1_000_000_000);
        let (statement, partition_of, unit): (&PreparedStatement, fn(i64) -> i32, _) =
            match resolution {
                Resolution::Minute => (&self.statements().select_rollup_1m, day_of_s, "day"),
                Resolution::Hour => (&self.statements().select_rollup_1h, month_of_s, "month"),
            };
        let mut out = Vec::new();
        let Some(partitions) =
            partitions_of_s_range(from, to, partition_of).filter(|_| q.limit > 0)
        else {
            return Ok(out);
        };
        check_span(&partitions, unit)?;
        for partition in partitions {
            let values = (
                q.site.as_str(),
                q.device.as_str(),
                q.attribute.as_str(),
                partition,
                from,
                to,
                remaining(q.limit, out.len()),
            );
            let mut rows = self
                .session()
                .execute_iter(statement.clone(), values)
                .await?
                .rows_stream::<RollupRowCql>()?;
            while let Some(row) = rows.try_next().await? {
                let aggregate = row
                    .aggregate()
                    .ok_or_else(|| format!("bucket {} has a negative count", row.bucket))?;
                out.push(RollupPoint {
                    bucket_start: row.bucket,
                    aggregate,
                });
                if out.len() >= q.limit {
                    return Ok(out);
                }
            }
        }
        Ok(out)
    }

    async fn read_state(&self, site: &str) -> Result<Option<SiteState>, DynError> {
        let json = self
            .session()
            .execute_unpaged(&self.statements().select_progress, (site,))
            .await?
            .into_rows_result()?
            .maybe_first_row::<(Option<String>,)>()?
            .and_then(|(state,)| state);
        Ok(json.map(|text| serde_json::from_str(&text)).transpose()?)
    }

    async fn read_sites(&self) -> Result<Vec<String>, DynError> {
        // One small row per site: a scan of this table is a scan of the sites.
        let mut sites: Vec<String> = self
            .session()
            .execute_iter(self.statements().select_progress_sites.clone(), ())
            .await?
            .rows_stream::<(String,)>()?
            .map_ok(|(site,)| site)
            .try_collect()
            .await?;
        sites.sort();
        Ok(sites)
    }

    async fn read_latest(&self, site: &str) -> Result<Vec<Sample>, DynError> {
        // Clustering order (device, attribute) is the order of the embedded store.
        Ok(self
            .session()
            .execute_iter(self.statements().select_latest.clone(), (site,))
            .await?
            .rows_stream::<SampleRow>()?
            .map_ok(SampleRow::into_sample)
            .try_collect()
            .await?)
    }

    async fn read_exposure(
        &self,
        site: &str,
        position: u32,
        at_unix_s: i64,
    ) -> Result<Option<ExposureTotals>, DynError> {
        let Ok(position) = i32::try_from(position) else {
            return Ok(None); // never written: positions are stored as int
        };
        let row = self
            .session()
            .execute_unpaged(
                &self.statements().select_exposure_at,
                (site, position, at_unix_s),
            )
            .await?
            .into_rows_result()?
            .maybe_first_row::<ExposureRowCql>()?;
        row.map(|r| r.totals().ok_or("a stored count does not fit u32".into()))
            .transpose()
    }

    async fn add_dead_letter(&self, letter: &DeadLetter) -> Result<(), DynError> {
        let site = dead_letter_site(letter.site.as_deref());
        let statements = self.statements();
        self.session()
            .execute_unpaged(
                &statements.insert_dead_letter,
                (
                    site,
                    day_of_ns(letter.at_unix_ns),
                    letter.at_unix_ns,
                    letter.topic.as_str(),
                    letter.reason.as_str(),
                    letter.payload.as_slice(),
                ),
            )
            .await?;
        self.session()
            .execute_unpaged(&statements.count_dead_letter, (site,))
            .await?;
        Ok(())
    }

    async fn read_dead_letter_counts(&self) -> Result<Vec<(Option<String>, u64)>, DynError> {
        Ok(self
            .session()
            .execute_iter(self.statements().select_dead_letter_counts.clone(), ())
            .await?
            .rows_stream::<(String, Option<Counter>)>()?
            .map_ok(|(site, letters)| {
                let count = letters.map_or(0, |Counter(n)| u64::try_from(n).unwrap_or(0));
                (dead_letter_site_back(site), count)
            })
            .try_collect()
            .await?)
    }
}

#[async_trait]
impl TelemetryStore for CassandraStore {
    async fn load_site_state(&self, site: &str) -> StoreResult<Option<SiteState>> {
        self.read_state(site)
            .await
            .map_err(|e| fail(format!("loading ingest state of site {site}"), e))
    }

    async fn sites_with_state(&self) -> StoreResult<Vec<String>> {
        self.read_sites()
            .await
            .map_err(|e| fail("listing sites with ingest state", e))
    }

    async fn write_batch(
        &self,
        batch: &TelemetryBatch,
        writes: &BatchWrites,
        state: Option<&SiteState>,
    ) -> StoreResult<()> {
        let started = Instant::now();
        self.write_batch_rows(batch, writes, state).await?;
        debug!(
            site = %batch.site,
            seq = batch.seq,
            samples = batch.samples.len(),
            rollups = writes.rollups.len(),
            late = writes.late.len(),
            exposure = writes.exposure.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "wrote batch"
        );
        Ok(())
    }

    async fn write_site_state(&self, site: &str, state: &SiteState) -> StoreResult<()> {
        self.write_state(site, state)
            .await
            .map_err(|e| fail(format!("writing ingest state of site {site}"), e))
    }

    async fn query_samples(&self, query: &SeriesQuery) -> StoreResult<Vec<Sample>> {
        self.read_samples(query).await.map_err(|e| {
            fail(
                format!(
                    "querying samples of {} {} of site {}",
                    query.device, query.attribute, query.site
                ),
                e,
            )
        })
    }

    async fn query_rollups(
        &self,
        query: &SeriesQuery,
        resolution: Resolution,
    ) -> StoreResult<Vec<RollupPoint>> {
        self.read_rollups(query, resolution).await.map_err(|e| {
            fail(
                format!(
                    "querying {resolution:?} rollups of {} {} of site {}",
                    query.device, query.attribute, query.site
                ),
                e,
            )
        })
    }

    async fn latest(&self, site: &str) -> StoreResult<Vec<Sample>> {
        self.read_latest(site)
            .await
            .map_err(|e| fail(format!("reading latest values of site {site}"), e))
    }

    async fn exposure_at(
        &self,
        site: &str,
        position: u32,
        at_unix_s: i64,
    ) -> StoreResult<Option<ExposureTotals>> {
        self.read_exposure(site, position, at_unix_s)
            .await
            .map_err(|e| {
                fail(
                    format!("reading exposure of position {position} of site {site}"),
                    e,
                )
            })
    }

    async fn record_dead_letter(&self, letter: &DeadLetter) -> StoreResult<()> {
        self.add_dead_letter(letter).await.map_err(|e| {
            fail(
                format!(
                    "recording a dead letter of site {} from topic {}",
                    dead_letter_site(letter.site.as_deref()),
                    letter.topic
                ),
                e,
            )
        })
    }

    async fn dead_letter_counts(&self) -> StoreResult<Vec<(Option<String>, u64)>> {
        self.read_dead_letter_counts()
            .await
            .map_err(|e| fail("counting dead letters", e))
    }
}

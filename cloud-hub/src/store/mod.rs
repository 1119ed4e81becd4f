//! Where the hub keeps what it ingests: one trait per concern, implemented by
//! the embedded SQLite store and the Cassandra store, chosen once at start-up
//! from [`StoreConfig`].

pub mod cassandra;
#[doc(hidden)]
pub mod conformance;
pub mod predictions;
pub mod registry;
pub mod segments;
pub mod sqlite;

use std::collections::HashMap;

use async_trait::async_trait;
use obs_proto::v1::{Sample, TelemetryBatch};
use serde::{Deserialize, Serialize};

use crate::ingest::{
    Aggregate, BatchWrites, ExposureTotals, IngestCounters, Resolution, SiteState,
};

/// Which store to use.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum StoreConfig {
    /// SQLite in the data directory (the embedded default).
    Sqlite {
        /// File name, relative to the data directory unless absolute.
        #[serde(default = "default_sqlite_file")]
        file: String,
    },
    /// Apache Cassandra or ScyllaDB.
    Cassandra {
        /// Contact points, `host:port`.
        nodes: Vec<String>,
        #[serde(default = "default_keyspace")]
        keyspace: String,
        #[serde(default = "default_replication_factor")]
        replication_factor: u32,
        /// Days raw samples are kept (TTL); rollups are kept.
        #[serde(default = "default_sample_ttl_days")]
        sample_ttl_days: u32,
    },
}

fn default_sqlite_file() -> String {
    "hub.sqlite".into()
}
fn default_keyspace() -> String {
    "observatory".into()
}
fn default_replication_factor() -> u32 {
    1
}
fn default_sample_ttl_days() -> u32 {
    400
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig::Sqlite {
            file: default_sqlite_file(),
        }
    }
}

/// A store operation that failed; says which backend and what it was doing.
#[derive(Debug, thiserror::Error)]
#[error("{backend} store: {operation}: {source}")]
pub struct StoreError {
    pub backend: &'static str,
    pub operation: String,
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

impl StoreError {
    pub fn new(
        backend: &'static str,
        operation: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        StoreError {
            backend,
            operation: operation.into(),
            source: source.into(),
        }
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// One series over a time range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeriesQuery {
    pub site: String,
    pub device: String,
    pub attribute: String,
    /// Inclusive start, Unix ns.
    pub from_ns: i64,
    /// Exclusive end, Unix ns.
    pub to_ns: i64,
    pub limit: usize,
}

/// A rollup bucket read back.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RollupPoint {
    /// Bucket start, Unix seconds.
    pub bucket_start: i64,
    pub aggregate: Aggregate,
}

/// Something the hub refused to store, kept with its reason.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    /// The site of the topic it came on, when the topic named one.
    pub site: Option<String>,
    pub topic: String,
    pub at_unix_ns: i64,
    pub reason: String,
    pub payload: Vec<u8>,
}

/// Telemetry: raw samples, rollups, latest values, exposure, progress.
#[async_trait]
pub trait TelemetryStore: Send + Sync + 'static {
    /// The state last written for `site`, if any.
    async fn load_site_state(&self, site: &str) -> StoreResult<Option<SiteState>>;

    /// Sites that have ingest state.
    async fn sites_with_state(&self) -> StoreResult<Vec<String>>;

    /// The ingest counters of each of `sites` that has state, without the
    /// rest of its state (fleet health reads only these). Stores override
    /// it to read in one go.
    async fn ingest_counters(
        &self,
        sites: &[String],
    ) -> StoreResult<HashMap<String, IngestCounters>> {
        let mut out = HashMap::new();
        for site in sites {
            if let Some(state) = self.load_site_state(site).await? {
                out.insert(site.clone(), state.counters);
            }
        }
        Ok(out)
    }

    /// Writes an accepted batch: raw samples, the rows of `writes` (latest
    /// values, rollups, exposure), the recomputation of late buckets, and
    /// last `state` if given (in the same transaction where the store has
    /// them). Without a state, the caller writes one later (the sink does
    /// so with a batch of no samples carrying the rows it kept back); until
    /// then the stored state does not count the batch, and a replay of it
    /// from there leaves every table as it is. Writing the same batch with the same inputs
    /// again leaves every table as it was.
    async fn write_batch(
        &self,
        batch: &TelemetryBatch,
        writes: &BatchWrites,
        state: Option<&SiteState>,
    ) -> StoreResult<()>;

    /// Writes only the state of `site` (after a rejected batch).
    async fn write_site_state(&self, site: &str, state: &SiteState) -> StoreResult<()>;

    /// Raw samples of a series, oldest first, at most `limit`.
    async fn query_samples(&self, query: &SeriesQuery) -> StoreResult<Vec<Sample>>;

    /// Rollups of a series, oldest first, at most `limit`.
    async fn query_rollups(
        &self,
        query: &SeriesQuery,
        resolution: Resolution,
    ) -> StoreResult<Vec<RollupPoint>>;

    /// Latest value of every attribute of `site`.
    async fn latest(&self, site: &str) -> StoreResult<Vec<Sample>>;

    /// Cumulative exposure of a position at the end of the last hour that
    /// starts at or before `at_unix_s`.
    async fn exposure_at(
        &self,
        site: &str,
        position: u32,
        at_unix_s: i64,
    ) -> StoreResult<Option<ExposureTotals>>;

    /// Keeps a refused message with its reason.
    async fn record_dead_letter(&self, letter: &DeadLetter) -> StoreResult<()>;

    /// Dead letters recorded per site (`None` = no site known).
    async fn dead_letter_counts(&self) -> StoreResult<Vec<(Option<String>, u64)>>;
}

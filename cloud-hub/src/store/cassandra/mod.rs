//! The distributed store: Apache Cassandra 4/5 or ScyllaDB through the
//! scylla driver.
//!
//! It keeps the same logical tables as the embedded store (see `schema.rs`
//! for the CQL) and gives the same answers: `conformance::telemetry_store_suite`
//! runs against both. Where SQLite has a transaction per batch, this store
//! relies on what the ingest module guarantees: every row of a batch is an
//! absolute value. [`TelemetryStore::write_batch`] writes, with bounded
//! concurrency, the raw samples, latest values, rollups and exposure rows in
//! one round (the samples first when a late bucket is recomputed from them),
//! and only after all of them succeeded the site's `ingest_progress` state.
//! A failure or crash in between leaves the old state, so the batch is
//! replayed and rewrites the same rows.
//!
//! Dead letters are kept in `dead_letters ((site, day), at, id)` (site `''`
//! when the topic named none) and counted in `dead_letter_counts`, a counter
//! table whose single partition (`shard = 0`) holds one counter per site:
//! counting and listing the sites with dead letters is one partition read,
//! never a scan of `dead_letters`. Counters are not idempotent, so the
//! counter update is never retried by the driver; a write that fails after
//! being applied may leave the count one off from the rows (dead letters are
//! diagnostics).
//!
//! [`TelemetryStore::write_batch`]: crate::store::TelemetryStore::write_batch

mod access;
mod keys;
mod predictions;
mod registry;
mod rows;
mod schema;
mod segments;
mod statements;
mod telemetry;
mod write;

use std::sync::Arc;
use std::time::Duration;

use scylla::client::execution_profile::ExecutionProfile;
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::policies::timestamp_generator::MonotonicTimestampGenerator;
use scylla::statement::Consistency;
use tracing::info;

use self::statements::Statements;
use super::{StoreError, StoreResult};

pub use self::schema::MAX_SAMPLE_TTL_DAYS;

const BACKEND: &str = "cassandra";

/// Consistency of every read and write. `LOCAL_QUORUM` makes a write that
/// succeeded visible to every later read in the same data centre (both
/// reach a majority of its replicas), which late-bucket recomputation and a
/// restart's `load_site_state` rely on; with RF 1 (a single dev node) it is
/// simply that node.
pub const CONSISTENCY: Consistency = Consistency::LocalQuorum;

/// Default bound on establishing a connection to a contact point.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Client-side bound on a single request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// Requests in flight at once while writing one batch.
const WRITE_CONCURRENCY: usize = 16;

/// Rows per unlogged batch; a batch only ever holds rows of one partition.
const MAX_BATCH_ROWS: usize = 100;

/// Most partitions one query reads (day partitions for raw samples and
/// minute rollups, about ten years): a longer range is refused rather than
/// read one partition at a time for minutes.
const MAX_PARTITIONS_PER_QUERY: i64 = 3_700;

/// The Cassandra store; cheap to clone (one shared session).
#[derive(Clone)]
pub struct CassandraStore {
    inner: Arc<Inner>,
}

struct Inner {
    session: Session,
    keyspace: String,
    nodes: Vec<String>,
    statements: Statements,
}

impl std::fmt::Debug for CassandraStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CassandraStore")
            .field("nodes", &self.inner.nodes)
            .field("keyspace", &self.inner.keyspace)
            .finish()
    }
}

impl CassandraStore {
    /// Connects to `nodes` (`host:port`), creates the keyspace (if missing,
    /// `SimpleStrategy` with `replication_factor`) and the tables (if
    /// missing), and prepares every statement. `sample_ttl_days` is the
    /// default TTL of raw samples (0 keeps them forever).
    pub async fn connect(
        nodes: &[String],
        keyspace: &str,
        replication_factor: u32,
        sample_ttl_days: u32,
    ) -> StoreResult<Self> {
        Self::connect_with_timeout(
            nodes,
            keyspace,
            replication_factor,
            sample_ttl_days,
            DEFAULT_CONNECT_TIMEOUT,
        )
        .await
    }

    /// [`connect`](Self::connect) with a bound on establishing a connection.
    pub async fn connect_with_timeout(
        nodes: &[String],
        keyspace: &str,
        replication_factor: u32,
        sample_ttl_days: u32,
        connect_timeout: Duration,
    ) -> StoreResult<Self> {
        let contact = if nodes.is_empty() {
            "no contact points".to_owned()
        } else {
            nodes.join(", ")
        };
        let invalid = |error: String| {
            StoreError::new(
                BACKEND,
                format!("configuring cassandra at {contact}"),
                error,
            )
        };
        let keyspace = schema::keyspace_name(keyspace).map_err(invalid)?;
        if nodes.is_empty() {
            return Err(invalid("no contact points configured (nodes = [])".into()));
        }
        if replication_factor == 0 {
            return Err(invalid("replication_factor must be at least 1".into()));
        }
        if sample_ttl_days > MAX_SAMPLE_TTL_DAYS {
            return Err(invalid(format!(
                "sample_ttl_days {sample_ttl_days} is above cassandra's maximum TTL of \
                 {MAX_SAMPLE_TTL_DAYS} days"
            )));
        }

        let profile = ExecutionProfile::builder()
            .consistency(CONSISTENCY)
            .request_timeout(Some(REQUEST_TIMEOUT))
            .build();
        let builder = SessionBuilder::new()
            .known_nodes(nodes)
            .connection_timeout(connect_timeout)
            .default_execution_profile_handle(profile.into_handle())
            .timestamp_generator(Arc::new(MonotonicTimestampGenerator::new()))
            .keyspaces_to_fetch([keyspace.clone()]);
        let connecting = builder.build();
        // The driver bounds each connection attempt; this bounds the whole
        // start (name resolution, metadata) should a node accept and hang.
        let session = tokio::time::timeout(connect_timeout * 3, connecting)
            .await
            .map_err(|_| {
                StoreError::new(
                    BACKEND,
                    format!("connecting to cassandra at {contact}"),
                    format!("no answer within {:?}", connect_timeout * 3),
                )
            })?
            .map_err(|e| {
                StoreError::new(BACKEND, format!("connecting to cassandra at {contact}"), e)
            })?;

        schema::create(&session, &keyspace, replication_factor, sample_ttl_days).await?;
        let statements = Statements::prepare(&session, &keyspace)
            .await
            .map_err(|e| {
                StoreError::new(
                    BACKEND,
                    format!("preparing statements on keyspace {keyspace} at {contact}"),
                    e,
                )
            })?;
        info!(nodes = %contact, keyspace, "connected to cassandra");
        Ok(CassandraStore {
            inner: Arc::new(Inner {
                session,
                keyspace,
                nodes: nodes.to_vec(),
                statements,
            }),
        })
    }

    /// The keyspace this store uses (lower-cased, as Cassandra names it).
    pub fn keyspace(&self) -> &str {
        &self.inner.keyspace
    }

    fn session(&self) -> &Session {
        &self.inner.session
    }

    fn statements(&self) -> &Statements {
        &self.inner.statements
    }
}

/// A store error of this backend.
fn fail(
    operation: impl Into<String>,
    source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
) -> StoreError {
    StoreError::new(BACKEND, operation, source)
}

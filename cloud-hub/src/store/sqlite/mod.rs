//! The embedded store: SQLite (bundled) in WAL mode with `synchronous=FULL`,
//! so a committed transaction survives a power cut before the hub acks it.
//!
//! rusqlite is blocking: every call runs on the blocking thread pool, with
//! one connection for writes and one for reads (WAL lets them overlap).

mod access;
mod predictions;
mod registry;
mod schema;
mod segments;
mod telemetry;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::Connection;

use super::{StoreError, StoreResult};

const BACKEND: &str = "sqlite";

/// The embedded store.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    writer: Mutex<Connection>,
    reader: Mutex<Connection>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.inner.path)
            .finish()
    }
}

/// `items` as one JSON array, bound as a single parameter and read back
/// with `json_each`: a list of any length in one statement.
fn json_list(items: &[String]) -> String {
    serde_json::Value::from(items.to_vec()).to_string()
}

fn open_connection(path: &Path) -> Result<Connection, rusqlite::Error> {
    let conn = Connection::open(path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    Ok(conn)
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and migrates it.
    pub fn open(path: &Path) -> StoreResult<Self> {
        let fail = |operation: &str, error: String| {
            StoreError::new(BACKEND, format!("{operation} {}", path.display()), error)
        };
        let mut writer = open_connection(path).map_err(|e| fail("opening", e.to_string()))?;
        schema::migrate(&mut writer).map_err(|e| fail("migrating", e))?;
        let reader = open_connection(path).map_err(|e| fail("opening", e.to_string()))?;
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                path: path.to_owned(),
                writer: Mutex::new(writer),
                reader: Mutex::new(reader),
            }),
        })
    }

    /// Runs `f` with the write connection on the blocking pool.
    async fn write<T, F>(&self, operation: &str, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let inner = self.inner.clone();
        let operation_name = operation.to_owned();
        tokio::task::spawn_blocking(move || {
            let mut conn = inner.writer.lock().map_err(|_| {
                StoreError::new(BACKEND, operation_name.clone(), "writer lock poisoned")
            })?;
            f(&mut conn).map_err(|e| StoreError::new(BACKEND, operation_name, e))
        })
        .await
        .map_err(|e| StoreError::new(BACKEND, operation, e))?
    }

    /// Runs `f` with the read connection on the blocking pool.
    async fn read<T, F>(&self, operation: &str, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let inner = self.inner.clone();
        let operation_name = operation.to_owned();
        tokio::task::spawn_blocking(move || {
            let conn = inner.reader.lock().map_err(|_| {
                StoreError::new(BACKEND, operation_name.clone(), "reader lock poisoned")
            })?;
            f(&conn).map_err(|e| StoreError::new(BACKEND, operation_name, e))
        })
        .await
        .map_err(|e| StoreError::new(BACKEND, operation, e))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn passes_the_telemetry_store_suite() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("hub.sqlite")).unwrap();
        crate::store::conformance::telemetry_store_suite(&store, "nrt").await;
        crate::store::conformance::prediction_store_suite(&store, "nrt").await;
        crate::store::conformance::access_store_suite(&store).await;
        crate::store::conformance::registry_store_suite(&store, "nrt").await;
        crate::store::conformance::segment_store_suite(&store, "nrt").await;
    }

    #[tokio::test]
    async fn reopening_keeps_data_and_a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hub.sqlite");
        let store = SqliteStore::open(&path).unwrap();
        drop(store);
        SqliteStore::open(&path).unwrap();
        let conn = Connection::open(&path).unwrap();
        conn.pragma_update(None, "user_version", 99).unwrap();
        let error = SqliteStore::open(&path).unwrap_err().to_string();
        assert!(error.contains("schema version 99 is newer"), "{error}");
        assert!(error.contains("hub.sqlite"), "{error}");
    }
}

//! [`AccessStore`] on Cassandra: `api_tokens ((id))` and
//! `audit_log ((day), at, id)`.

use async_trait::async_trait;

use super::keys::day_of_ns;
use super::{CassandraStore, fail};
use crate::access::{AccessStore, ApiToken, AuditEntry, Role};
use crate::store::StoreResult;

/// Days of audit log `audit_log(limit)` looks back over.
const AUDIT_LOOKBACK_DAYS: i32 = 31;

fn role_of(text: &str) -> StoreResult<Role> {
    Role::parse(text).ok_or_else(|| fail("reading a role", format!("unknown role {text:?}")))
}

#[async_trait]
impl AccessStore for CassandraStore {
    async fn insert_api_token(&self, t: &ApiToken) -> StoreResult<()> {
        let cql = format!(
            "INSERT INTO {}.api_tokens (id, name, role, secret_sha256, created_at, revoked) \
             VALUES (?, ?, ?, ?, ?, ?)",
            self.keyspace()
        );
        self.session()
            .query_unpaged(
                cql,
                (
                    &t.id,
                    &t.name,
                    t.role.as_str(),
                    &t.secret_sha256,
                    t.created_at_unix_ns,
                    t.revoked,
                ),
            )
            .await
            .map(|_| ())
            .map_err(|e| fail("storing an api token", e))
    }

    async fn find_api_token(&self, id: &str) -> StoreResult<Option<ApiToken>> {
        let cql = format!(
            "SELECT id, name, role, secret_sha256, created_at, revoked FROM {}.api_tokens WHERE id = ?",
            self.keyspace()
        );
        let row = self
            .session()
            .query_unpaged(cql, (id,))
            .await
            .map_err(|e| fail("reading an api token", e))?
            .into_rows_result()
            .map_err(|e| fail("reading an api token", e))?
            .maybe_first_row::<(String, String, String, String, i64, bool)>()
            .map_err(|e| fail("reading an api token", e))?;
        row.map(
            |(id, name, role, secret_sha256, created_at_unix_ns, revoked)| {
                Ok(ApiToken {
                    id,
                    name,
                    role: role_of(&role)?,
                    secret_sha256,
                    created_at_unix_ns,
                    revoked,
                })
            },
        )
        .transpose()
    }

    async fn append_audit(&self, e: &AuditEntry) -> StoreResult<()> {
        let cql = format!(
            "INSERT INTO {}.audit_log (day, at, id, token_id, caller, role, method, subject) \
             VALUES (?, ?, now(), ?, ?, ?, ?, ?)",
            self.keyspace()
        );
        self.session()
            .query_unpaged(
                cql,
                (
                    day_of_ns(e.at_unix_ns),
                    e.at_unix_ns,
                    &e.token_id,
                    &e.caller,
                    e.role.as_str(),
                    &e.method,
                    &e.subject,
                ),
            )
            .await
            .map(|_| ())
            .map_err(|e| fail("writing the audit log", e))
    }

    async fn audit_log(&self, limit: usize) -> StoreResult<Vec<AuditEntry>> {
        let cql = format!(
            "SELECT at, token_id, caller, role, method, subject FROM {}.audit_log WHERE day = ? LIMIT ?",
            self.keyspace()
        );
        let today = day_of_ns(crate::time::now_unix_ns());
        let mut entries = Vec::new();
        for day in (today - AUDIT_LOOKBACK_DAYS..=today).rev() {
            if entries.len() >= limit {
                break;
            }
            let rows = self
                .session()
                .query_unpaged(cql.clone(), (day, (limit - entries.len()) as i32))
                .await
                .map_err(|e| fail("reading the audit log", e))?
                .into_rows_result()
                .map_err(|e| fail("reading the audit log", e))?;
            for row in rows
                .rows::<(i64, String, String, String, String, String)>()
                .map_err(|e| fail("reading the audit log", e))?
            {
                let (at_unix_ns, token_id, caller, role, method, subject) =
                    row.map_err(|e| fail("reading the audit log", e))?;
                entries.push(AuditEntry {
                    at_unix_ns,
                    token_id,
                    caller,
                    role: role_of(&role)?,
                    method,
                    subject,
                });
            }
        }
        Ok(entries)
    }
}

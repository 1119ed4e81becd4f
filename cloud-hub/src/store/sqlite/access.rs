//! [`AccessStore`] on SQLite.

use async_trait::async_trait;
use rusqlite::{OptionalExtension, params};

use super::SqliteStore;
use crate::access::{AccessStore, ApiToken, AuditEntry, Role};
use crate::store::StoreResult;

fn role_of(text: String) -> rusqlite::Result<Role> {
    Role::parse(&text).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            0,
            rusqlite::types::Type::Text,
            format!("unknown role {text:?}").into(),
        )
    })
}

#[async_trait]
impl AccessStore for SqliteStore {
    async fn insert_api_token(&self, token: &ApiToken) -> StoreResult<()> {
        let t = token.clone();
        self.write("storing an api token", move |conn| {
            conn.execute(
                "INSERT INTO api_tokens (id, name, role, secret_sha256, created_at, revoked) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    t.id,
                    t.name,
                    t.role.as_str(),
                    t.secret_sha256,
                    t.created_at_unix_ns,
                    t.revoked
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn find_api_token(&self, id: &str) -> StoreResult<Option<ApiToken>> {
        let id = id.to_owned();
        self.read("reading an api token", move |conn| {
            conn.query_row(
                "SELECT id, name, role, secret_sha256, created_at, revoked FROM api_tokens WHERE id = ?1",
                [id],
                |row| {
                    Ok(ApiToken {
                        id: row.get(0)?,
                        name: row.get(1)?,
                        role: role_of(row.get(2)?)?,
                        secret_sha256: row.get(3)?,
                        created_at_unix_ns: row.get(4)?,
                        revoked: row.get(5)?,
                    })
                },
            )
            .optional()
        })
        .await
    }

    async fn append_audit(&self, entry: &AuditEntry) -> StoreResult<()> {
        let e = entry.clone();
        self.write("writing the audit log", move |conn| {
            conn.execute(
                "INSERT INTO audit_log (at, token_id, caller, role, method, subject) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    e.at_unix_ns,
                    e.token_id,
                    e.caller,
                    e.role.as_str(),
                    e.method,
                    e.subject
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn audit_log(&self, limit: usize) -> StoreResult<Vec<AuditEntry>> {
        self.read("reading the audit log", move |conn| {
            let mut stmt = conn.prepare(
                "SELECT at, token_id, caller, role, method, subject FROM audit_log \
                 ORDER BY id DESC LIMIT ?1",
            )?;
            let rows = stmt.query_map([limit as i64], |row| {
                Ok(AuditEntry {
                    at_unix_ns: row.get(0)?,
                    token_id: row.get(1)?,
                    caller: row.get(2)?,
                    role: role_of(row.get(3)?)?,
                    method: row.get(4)?,
                    subject: row.get(5)?,
                })
            })?;
            rows.collect()
        })
        .await
    }
}

//! [`RegistryStore`] on SQLite (migration 3): `sites`, `join_tokens`,
//! `site_certificates`, `revocations`.

use async_trait::async_trait;
use rusqlite::{OptionalExtension, Row, params};

use super::SqliteStore;
use crate::store::StoreResult;
use crate::store::registry::{
    JoinTokenRecord, RegistryStore, Revocation, SiteCertificate, SiteLocation, SiteRecord,
    SiteState,
};

const SITE_COLUMNS: &str = "site, display_name, latitude_deg, longitude_deg, altitude_m, \
     mirror_segments, state, created_at, enrolled_at, revoked_at, revoke_reason, \
     certificate_not_after";

const TOKEN_COLUMNS: &str =
    "id, secret_sha256, site, created_at, expires_at, used_at, created_by, reenroll";

fn conversion(column: usize, message: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(column, rusqlite::types::Type::Text, message.into())
}

fn site_of_row(row: &Row<'_>) -> rusqlite::Result<SiteRecord> {
    let state: String = row.get(6)?;
    let location = match (
        row.get::<_, Option<f64>>(2)?,
        row.get::<_, Option<f64>>(3)?,
        row.get::<_, Option<f64>>(4)?,
    ) {
        (Some(latitude_deg), Some(longitude_deg), Some(altitude_m)) => Some(SiteLocation {
            latitude_deg,
            longitude_deg,
            altitude_m,
        }),
        _ => None,
    };
    Ok(SiteRecord {
        site: row.get(0)?,
        display_name: row.get(1)?,
        location,
        mirror_segments: row.get(5)?,
        state: SiteState::parse(&state)
            .ok_or_else(|| conversion(6, format!("unknown site state {state:?}")))?,
        created_at_unix_ns: row.get(7)?,
        enrolled_at_unix_ns: row.get(8)?,
        revoked_at_unix_ns: row.get(9)?,
        revoke_reason: row.get(10)?,
        certificate_not_after_unix_ns: row.get(11)?,
    })
}

fn token_of_row(row: &Row<'_>) -> rusqlite::Result<JoinTokenRecord> {
    Ok(JoinTokenRecord {
        id: row.get(0)?,
        secret_sha256: row.get(1)?,
        site: row.get(2)?,
        created_at_unix_ns: row.get(3)?,
        expires_at_unix_ns: row.get(4)?,
        used_at_unix_ns: row.get(5)?,
        created_by: row.get(6)?,
        reenroll: row.get(7)?,
    })
}

#[async_trait]
impl RegistryStore for SqliteStore {
    async fn put_site(&self, site: &SiteRecord) -> StoreResult<()> {
        let s = site.clone();
        let operation = format!("storing site {}", s.site);
        self.write(&operation, move |conn| {
            let location = s.location;
            conn.execute(
                &format!(
                    "INSERT OR REPLACE INTO sites ({SITE_COLUMNS}) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"
                ),
                params![
                    s.site,
                    s.display_name,
                    location.map(|l| l.latitude_deg),
                    location.map(|l| l.longitude_deg),
                    location.map(|l| l.altitude_m),
                    s.mirror_segments,
                    s.state.as_str(),
                    s.created_at_unix_ns,
                    s.enrolled_at_unix_ns,
                    s.revoked_at_unix_ns,
                    s.revoke_reason,
                    s.certificate_not_after_unix_ns,
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn get_site(&self, site: &str) -> StoreResult<Option<SiteRecord>> {
        let site = site.to_owned();
        let operation = format!("reading site {site}");
        self.read(&operation, move |conn| {
            conn.query_row(
                &format!("SELECT {SITE_COLUMNS} FROM sites WHERE site = ?1"),
                [site],
                site_of_row,
            )
            .optional()
        })
        .await
    }

    async fn list_sites(&self) -> StoreResult<Vec<SiteRecord>> {
        self.read("listing sites", move |conn| {
            let mut stmt =
                conn.prepare(&format!("SELECT {SITE_COLUMNS} FROM sites ORDER BY site"))?;
            let rows = stmt.query_map([], site_of_row)?;
            rows.collect()
        })
        .await
    }

    async fn insert_join_token(&self, token: &JoinTokenRecord) -> StoreResult<()> {
        let t = token.clone();
        let operation = format!("storing join token {} of site {}", t.id, t.site);
        self.write(&operation, move |conn| {
            conn.execute(
                &format!(
                    "INSERT INTO join_tokens ({TOKEN_COLUMNS}) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
                ),
                params![
                    t.id,
                    t.secret_sha256,
                    t.site,
                    t.created_at_unix_ns,
                    t.expires_at_unix_ns,
                    t.used_at_unix_ns,
                    t.created_by,
                    t.reenroll
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn find_join_token(&self, id: &str) -> StoreResult<Option<JoinTokenRecord>> {
        let id = id.to_owned();
        let operation = format!("reading join token {id}");
        self.read(&operation, move |conn| {
            conn.query_row(
                &format!("SELECT {TOKEN_COLUMNS} FROM join_tokens WHERE id = ?1"),
                [id],
                token_of_row,
            )
            .optional()
        })
        .await
    }

    async fn consume_join_token(&self, id: &str, site: &str, at_unix_ns: i64) -> StoreResult<bool> {
        let (id, site) = (id.to_owned(), site.to_owned());
        let operation = format!("using join token {id} of site {site}");
        self.write(&operation, move |conn| {
            let tx = conn.transaction()?;
            let changed = tx.execute(
                "UPDATE join_tokens SET used_at = ?1 \
                 WHERE id = ?2 AND site = ?3 AND used_at IS NULL",
                params![at_unix_ns, id, site],
            )?;
            tx.commit()?;
            Ok(changed == 1)
        })
        .await
    }

    async fn record_certificate(&self, certificate: &SiteCertificate) -> StoreResult<()> {
        let c = certificate.clone();
        let operation = format!("recording certificate {} of site {}", c.serial_hex, c.site);
        self.write(&operation, move |conn| {
            conn.execute(
                "INSERT OR REPLACE INTO site_certificates (site, serial, issued_at, not_after) \
                 VALUES (?1, ?2, ?3, ?4)",
                params![
                    c.site,
                    c.serial_hex,
                    c.issued_at_unix_ns,
                    c.not_after_unix_ns
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn site_certificates(&self, site: &str) -> StoreResult<Vec<SiteCertificate>> {
        let site = site.to_owned();
        let operation = format!("reading certificates of site {site}");
        self.read(&operation, move |conn| {
            let mut stmt = conn.prepare(
                "SELECT site, serial, issued_at, not_after FROM site_certificates \
                 WHERE site = ?1 ORDER BY issued_at, serial",
            )?;
            let rows = stmt.query_map([site], |row| {
                Ok(SiteCertificate {
                    site: row.get(0)?,
                    serial_hex: row.get(1)?,
                    issued_at_unix_ns: row.get(2)?,
                    not_after_unix_ns: row.get(3)?,
                })
            })?;
            rows.collect()
        })
        .await
    }

    async fn record_revocation(&self, revocation: &Revocation) -> StoreResult<()> {
        let r = revocation.clone();
        let operation = format!("recording the revocation of site {}", r.site);
        self.write(&operation, move |conn| {
            conn.execute(
                "INSERT OR REPLACE INTO revocations (site, at, reason, revoked_by) \
                 VALUES (?1, ?2, ?3, ?4)",
                params![r.site, r.at_unix_ns, r.reason, r.revoked_by],
            )?;
            Ok(())
        })
        .await
    }

    async fn revocations(&self, site: &str) -> StoreResult<Vec<Revocation>> {
        let site = site.to_owned();
        let operation = format!("reading revocations of site {site}");
        self.read(&operation, move |conn| {
            let mut stmt = conn.prepare(
                "SELECT site, at, reason, revoked_by FROM revocations WHERE site = ?1 ORDER BY at",
            )?;
            let rows = stmt.query_map([site], |row| {
                Ok(Revocation {
                    site: row.get(0)?,
                    at_unix_ns: row.get(1)?,
                    reason: row.get(2)?,
                    revoked_by: row.get(3)?,
                })
            })?;
            rows.collect()
        })
        .await
    }
}

//! [`RegistryStore`] on Cassandra: `sites ((shard), site)`,
//! `join_tokens ((id))`, `site_certificates ((site), serial)`,
//! `revocations ((site), at)`.
//!
//! A join token is consumed with a lightweight transaction
//! (`UPDATE ... IF used_at = null AND site = ?`): Paxos makes exactly one of
//! any number of concurrent `Enroll` calls see `[applied] = true`, on any
//! hub replica. The `site` condition also keeps the update from creating a
//! row for an id that does not exist (its site would be null).

use async_trait::async_trait;
use scylla::value::{CqlValue, Row};

use super::{CassandraStore, fail};
use crate::store::StoreResult;
use crate::store::registry::{
    JoinTokenRecord, RegistryStore, Revocation, SiteCertificate, SiteLocation, SiteRecord,
    SiteState,
};

/// The partition of `sites` holding every site.
const SITES_SHARD: i32 = 0;

const SITE_COLUMNS: &str = "site, display_name, latitude_deg, longitude_deg, altitude_m, \
     mirror_segments, state, created_at, enrolled_at, revoked_at, revoke_reason, \
     certificate_not_after";

const TOKEN_COLUMNS: &str =
    "id, secret_sha256, site, created_at, expires_at, used_at, created_by, reenroll";

type SiteRow = (
    String,
    Option<String>,
    Option<f64>,
    Option<f64>,
    Option<f64>,
    Option<i32>,
    Option<String>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<String>,
    Option<i64>,
);

type TokenRow = (
    String,
    Option<String>,
    Option<String>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<String>,
    Option<bool>,
);

fn site_of_row(row: SiteRow) -> StoreResult<SiteRecord> {
    let (
        site,
        display_name,
        lat,
        lon,
        alt,
        segments,
        state,
        created,
        enrolled,
        revoked,
        reason,
        not_after,
    ) = row;
    let state_text = state.unwrap_or_default();
    let state = SiteState::parse(&state_text).ok_or_else(|| {
        fail(
            format!("reading site {site}"),
            format!("unknown site state {state_text:?}"),
        )
    })?;
    let location = match (lat, lon, alt) {
        (Some(latitude_deg), Some(longitude_deg), Some(altitude_m)) => Some(SiteLocation {
            latitude_deg,
            longitude_deg,
            altitude_m,
        }),
        _ => None,
    };
    Ok(SiteRecord {
        site,
        display_name: display_name.unwrap_or_default(),
        location,
        mirror_segments: segments.map_or(0, |n| n.max(0) as u32),
        state,
        created_at_unix_ns: created.unwrap_or_default(),
        enrolled_at_unix_ns: enrolled,
        revoked_at_unix_ns: revoked,
        revoke_reason: reason.unwrap_or_default(),
        certificate_not_after_unix_ns: not_after,
    })
}

fn token_of_row(row: TokenRow) -> JoinTokenRecord {
    let (id, secret_sha256, site, created, expires, used, created_by, reenroll) = row;
    JoinTokenRecord {
        id,
        secret_sha256: secret_sha256.unwrap_or_default(),
        site: site.unwrap_or_default(),
        created_at_unix_ns: created.unwrap_or_default(),
        expires_at_unix_ns: expires.unwrap_or_default(),
        used_at_unix_ns: used,
        created_by: created_by.unwrap_or_default(),
        reenroll: reenroll.unwrap_or_default(),
    }
}

#[async_trait]
impl RegistryStore for CassandraStore {
    async fn put_site(&self, s: &SiteRecord) -> StoreResult<()> {
        let cql = format!(
            "INSERT INTO {}.sites (shard, {SITE_COLUMNS}) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            self.keyspace()
        );
        let location = s.location;
        self.session()
            .query_unpaged(
                cql,
                (
                    SITES_SHARD,
                    &s.site,
                    &s.display_name,
                    location.map(|l| l.latitude_deg),
                    location.map(|l| l.longitude_deg),
                    location.map(|l| l.altitude_m),
                    i32::try_from(s.mirror_segments).unwrap_or(i32::MAX),
                    s.state.as_str(),
                    s.created_at_unix_ns,
                    s.enrolled_at_unix_ns,
                    s.revoked_at_unix_ns,
                    &s.revoke_reason,
                    s.certificate_not_after_unix_ns,
                ),
            )
            .await
            .map(|_| ())
            .map_err(|e| fail(format!("storing site {}", s.site), e))
    }

    async fn get_site(&self, site: &str) -> StoreResult<Option<SiteRecord>> {
        let operation = || format!("reading site {site}");
        let cql = format!(
            "SELECT {SITE_COLUMNS} FROM {}.sites WHERE shard = ? AND site = ?",
            self.keyspace()
        );
        let row = self
            .session()
            .query_unpaged(cql, (SITES_SHARD, site))
            .await
            .map_err(|e| fail(operation(), e))?
            .into_rows_result()
            .map_err(|e| fail(operation(), e))?
            .maybe_first_row::<SiteRow>()
            .map_err(|e| fail(operation(), e))?;
        row.map(site_of_row).transpose()
    }

    async fn list_sites(&self) -> StoreResult<Vec<SiteRecord>> {
        let cql = format!(
            "SELECT {SITE_COLUMNS} FROM {}.sites WHERE shard = ?",
            self.keyspace()
        );
        let rows = self
            .session()
            .query_unpaged(cql, (SITES_SHARD,))
            .await
            .map_err(|e| fail("listing sites", e))?
            .into_rows_result()
            .map_err(|e| fail("listing sites", e))?;
        let mut sites = Vec::new();
        for row in rows
            .rows::<SiteRow>()
            .map_err(|e| fail("listing sites", e))?
        {
            sites.push(site_of_row(row.map_err(|e| fail("listing sites", e))?)?);
        }
        Ok(sites)
    }

    async fn insert_join_token(&self, t: &JoinTokenRecord) -> StoreResult<()> {
        let cql = format!(
            "INSERT INTO {}.join_tokens ({TOKEN_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            self.keyspace()
        );
        self.session()
            .query_unpaged(
                cql,
                (
                    &t.id,
                    &t.secret_sha256,
                    &t.site,
                    t.created_at_unix_ns,
                    t.expires_at_unix_ns,
                    t.used_at_unix_ns,
                    &t.created_by,
                    t.reenroll,
                ),
            )
            .await
            .map(|_| ())
            .map_err(|e| fail(format!("storing join token {} of site {}", t.id, t.site), e))
    }

    async fn find_join_token(&self, id: &str) -> StoreResult<Option<JoinTokenRecord>> {
        let operation = || format!("reading join token {id}");
        let cql = format!(
            "SELECT {TOKEN_COLUMNS} FROM {}.join_tokens WHERE id = ?",
            self.keyspace()
        );
        let row = self
            .session()
            .query_unpaged(cql, (id,))
            .await
            .map_err(|e| fail(operation(), e))?
            .into_rows_result()
            .map_err(|e| fail(operation(), e))?
            .maybe_first_row::<TokenRow>()
            .map_err(|e| fail(operation(), e))?;
        Ok(row.map(token_of_row))
    }

    async fn consume_join_token(&self, id: &str, site: &str, at_unix_ns: i64) -> StoreResult<bool> {
        let operation = || format!("using join token {id} of site {site}");
        let cql = format!(
            "UPDATE {}.join_tokens SET used_at = ? WHERE id = ? IF used_at = null AND site = ?",
            self.keyspace()
        );
        // The first column of a conditional update's answer is `[applied]`;
        // the others (the current values when not applied) vary.
        let row = self
            .session()
            .query_unpaged(cql, (at_unix_ns, id, site))
            .await
            .map_err(|e| fail(operation(), e))?
            .into_rows_result()
            .map_err(|e| fail(operation(), e))?
            .maybe_first_row::<Row>()
            .map_err(|e| fail(operation(), e))?;
        match row.and_then(|row| row.columns.into_iter().next().flatten()) {
            Some(CqlValue::Boolean(applied)) => Ok(applied),
            other => Err(fail(
                operation(),
                format!("unexpected answer to a conditional update: {other:?}"),
            )),
        }
    }

    async fn record_certificate(&self, c: &SiteCertificate) -> StoreResult<()> {
        let cql = format!(
            "INSERT INTO {}.site_certificates (site, serial, issued_at, not_after) \
             VALUES (?, ?, ?, ?)",
            self.keyspace()
        );
        self.session()
            .query_unpaged(
                cql,
                (
                    &c.site,
                    &c.serial_hex,
                    c.issued_at_unix_ns,
                    c.not_after_unix_ns,
                ),
            )
            .await
            .map(|_| ())
            .map_err(|e| {
                fail(
                    format!("recording certificate {} of site {}", c.serial_hex, c.site),
                    e,
                )
            })
    }

    async fn site_certificates(&self, site: &str) -> StoreResult<Vec<SiteCertificate>> {
        let operation = || format!("reading certificates of site {site}");
        let cql = format!(
            "SELECT serial, issued_at, not_after FROM {}.site_certificates WHERE site = ?",
            self.keyspace()
        );
        let rows = self
            .session()
            .query_unpaged(cql, (site,))
            .await
            .map_err(|e| fail(operation(), e))?
            .into_rows_result()
            .map_err(|e| fail(operation(), e))?;
        let mut certificates = Vec::new();
        for row in rows
            .rows::<(String, Option<i64>, Option<i64>)>()
            .map_err(|e| fail(operation(), e))?
        {
            let (serial_hex, issued, not_after) = row.map_err(|e| fail(operation(), e))?;
            certificates.push(SiteCertificate {
                site: site.to_owned(),
                serial_hex,
                issued_at_unix_ns: issued.unwrap_or_default(),
                not_after_unix_ns: not_after.unwrap_or_default(),
            });
        }
        certificates.sort_by(|a, b| {
            (a.issued_at_unix_ns, &a.serial_hex).cmp(&(b.issued_at_unix_ns, &b.serial_hex))
        });
        Ok(certificates)
    }

    async fn record_revocation(&self, r: &Revocation) -> StoreResult<()> {
        let cql = format!(
            "INSERT INTO {}.revocations (site, at, reason, revoked_by) VALUES (?, ?, ?, ?)",
            self.keyspace()
        );
        self.session()
            .query_unpaged(cql, (&r.site, r.at_unix_ns, &r.reason, &r.revoked_by))
            .await
            .map(|_| ())
            .map_err(|e| fail(format!("recording the revocation of site {}", r.site), e))
    }

    async fn revocations(&self, site: &str) -> StoreResult<Vec<Revocation>> {
        let operation = || format!("reading revocations of site {site}");
        let cql = format!(
            "SELECT at, reason, revoked_by FROM {}.revocations WHERE site = ?",
            self.keyspace()
        );
        let rows = self
            .session()
            .query_unpaged(cql, (site,))
            .await
            .map_err(|e| fail(operation(), e))?
            .into_rows_result()
            .map_err(|e| fail(operation(), e))?;
        let mut revocations = Vec::new();
        for row in rows
            .rows::<(i64, Option<String>, Option<String>)>()
            .map_err(|e| fail(operation(), e))?
        {
            let (at_unix_ns, reason, revoked_by) = row.map_err(|e| fail(operation(), e))?;
            revocations.push(Revocation {
                site: site.to_owned(),
                at_unix_ns,
                reason: reason.unwrap_or_default(),
                revoked_by: revoked_by.unwrap_or_default(),
            });
        }
        Ok(revocations)
    }
}

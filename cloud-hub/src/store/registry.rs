//! What enrolment remembers: sites and their state, join tokens (only the
//! hash of their secret), the serials of every certificate issued to a site
//! (for the revocation list) and the revocations themselves.
//!
//! Both stores implement [`RegistryStore`] and pass
//! `conformance::registry_store_suite`. The one operation that must be
//! atomic across hub replicas is [`RegistryStore::consume_join_token`]: a
//! SQLite conditional update in a transaction, a Cassandra lightweight
//! transaction (`UPDATE ... IF used_at = null`), so two concurrent `Enroll`
//! calls with one token cannot both succeed.

use async_trait::async_trait;

use super::StoreResult;

/// Where a site is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SiteState {
    /// A join token exists; the node has not enrolled yet.
    Pending,
    /// Enrolled: its certificates are renewed and its batches stored.
    Active,
    /// Revoked: refused everywhere until it is enrolled again.
    Revoked,
}

impl SiteState {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            SiteState::Pending => "pending",
            SiteState::Active => "active",
            SiteState::Revoked => "revoked",
        }
    }

    /// Parses a stored name.
    pub fn parse(text: &str) -> Option<SiteState> {
        match text {
            "pending" => Some(SiteState::Pending),
            "active" => Some(SiteState::Active),
            "revoked" => Some(SiteState::Revoked),
            _ => None,
        }
    }
}

/// Where a telescope stands (WGS84).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SiteLocation {
    pub latitude_deg: f64,
    pub longitude_deg: f64,
    pub altitude_m: f64,
}

/// One site as the registry knows it.
#[derive(Debug, Clone, PartialEq)]
pub struct SiteRecord {
    pub site: String,
    pub display_name: String,
    pub location: Option<SiteLocation>,
    pub mirror_segments: u32,
    pub state: SiteState,
    pub created_at_unix_ns: i64,
    /// Last successful `Enroll`.
    pub enrolled_at_unix_ns: Option<i64>,
    pub revoked_at_unix_ns: Option<i64>,
    /// Why it was revoked (empty unless revoked).
    pub revoke_reason: String,
    /// Expiry of the newest certificate issued to it.
    pub certificate_not_after_unix_ns: Option<i64>,
}

impl SiteRecord {
    /// A pending site created now.
    pub fn pending(site: &str, now_unix_ns: i64) -> Self {
        SiteRecord {
            site: site.to_owned(),
            display_name: String::new(),
            location: None,
            mirror_segments: 18,
            state: SiteState::Pending,
            created_at_unix_ns: now_unix_ns,
            enrolled_at_unix_ns: None,
            revoked_at_unix_ns: None,
            revoke_reason: String::new(),
            certificate_not_after_unix_ns: None,
        }
    }
}

/// A join token as stored: never its secret, only the secret's SHA-256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinTokenRecord {
    pub id: String,
    /// Hex SHA-256 of the secret.
    pub secret_sha256: String,
    /// The one site this token enrols.
    pub site: String,
    pub created_at_unix_ns: i64,
    pub expires_at_unix_ns: i64,
    /// Set once, by the `Enroll` that used it.
    pub used_at_unix_ns: Option<i64>,
    /// Name of the API token that created it.
    pub created_by: String,
    /// Created for a site that had enrolled before.
    pub reenroll: bool,
}

/// A certificate issued to a site: what a revocation list needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteCertificate {
    pub site: String,
    /// Serial number, lower-case hex of its big-endian bytes.
    pub serial_hex: String,
    pub issued_at_unix_ns: i64,
    pub not_after_unix_ns: i64,
}

/// One revocation of a site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocation {
    pub site: String,
    pub at_unix_ns: i64,
    pub reason: String,
    /// Name of the API token that revoked it.
    pub revoked_by: String,
}

/// Sites, join tokens, issued certificates and revocations.
#[async_trait]
pub trait RegistryStore: Send + Sync + 'static {
    /// Inserts or replaces the record of `site.site`.
    async fn put_site(&self, site: &SiteRecord) -> StoreResult<()>;

    /// The record of `site`, if any.
    async fn get_site(&self, site: &str) -> StoreResult<Option<SiteRecord>>;

    /// Every site, ordered by id.
    async fn list_sites(&self) -> StoreResult<Vec<SiteRecord>>;

    /// Stores a new join token.
    async fn insert_join_token(&self, token: &JoinTokenRecord) -> StoreResult<()>;

    /// The token with `id`, if any.
    async fn find_join_token(&self, id: &str) -> StoreResult<Option<JoinTokenRecord>>;

    /// Marks token `id` of `site` used at `at_unix_ns` if nobody has used
    /// it yet; `true` for exactly one caller, however many race.
    async fn consume_join_token(&self, id: &str, site: &str, at_unix_ns: i64) -> StoreResult<bool>;

    /// Remembers a certificate issued to a site.
    async fn record_certificate(&self, certificate: &SiteCertificate) -> StoreResult<()>;

    /// Certificates issued to `site`, oldest first.
    async fn site_certificates(&self, site: &str) -> StoreResult<Vec<SiteCertificate>>;

    /// Appends a revocation to the site's history.
    async fn record_revocation(&self, revocation: &Revocation) -> StoreResult<()>;

    /// Revocations of `site`, oldest first.
    async fn revocations(&self, site: &str) -> StoreResult<Vec<Revocation>>;
}

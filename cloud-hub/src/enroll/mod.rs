//! Enrolment: join tokens, certificates for sites, renewal, revocation.
//!
//! ```text
//! obsctl sites join-token ──CreateJoinToken (admin)──► token ID.SECRET (stored hashed), site pending
//! fog-node enroll ──Enroll(token, CSR)──► token checked, CSR signed for the token's site,
//!                                          token consumed (atomic), site active, Kafka topic
//! fog-node run ──RenewCertificate (mTLS, client certificate)──► fresh certificate if active
//! obsctl sites revoke ──RevokeSite (admin)──► store, SiteRegistry (bridge + broker refuse at once),
//!                                             live session closed, CRL rewritten
//! ```
//!
//! The gRPC adapter is `api::enrollment`; errors become statuses in
//! `api::status`. Every refusal is logged with its precise reason; what the
//! caller is told about a join token never says which check failed.

pub mod crl;
mod error;
pub mod sites;
pub mod token;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use obs_common::pki::CertificateAuthority;
use obs_common::site::{topic_prefix, validate_site_id};

pub use self::crl::RevocationList;
pub use self::error::EnrollError;
use self::error::invalid;
pub use self::sites::SiteRegistry;
use self::token::MintedJoinToken;
use crate::live::LiveSites;
use crate::store::registry::{
    RegistryStore, Revocation, SiteCertificate, SiteLocation, SiteRecord, SiteState,
};
use crate::stream::kafka::KafkaLog;

/// Join token lifetime when the request sets none.
pub const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(3600);
/// Longest join token lifetime.
pub const MAX_TOKEN_TTL: Duration = Duration::from_secs(7 * 86_400);
/// Mirror segments when the request sets none.
pub const DEFAULT_MIRROR_SEGMENTS: u32 = 18;
/// Most mirror segments a site may declare.
pub const MAX_MIRROR_SEGMENTS: u32 = 1_000;
/// Longest display name, bytes.
const MAX_DISPLAY_NAME: usize = 200;
/// Longest revocation reason, bytes.
const MAX_REASON: usize = 500;

/// Closes a site's live MQTT session where the broker allows it.
#[async_trait]
pub trait SessionCloser: Send + Sync + 'static {
    /// Closes the session of `site`, if any.
    async fn close(&self, site: &str);
}

/// Where fog-nodes reach the broker (handed out at enrolment).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerEndpoint {
    pub host: String,
    pub port: u16,
}

/// What enrolment needs from the configuration.
#[derive(Debug, Clone)]
pub struct EnrollSettings {
    /// `host:port` fog-nodes use for gRPC (put in the join command).
    pub grpc_endpoint: String,
    pub broker: BrokerEndpoint,
    /// Lifetime of a site certificate.
    pub node_certificate: Duration,
}

/// A join token request (the API's fields, checked here).
#[derive(Debug, Clone, Default)]
pub struct JoinTokenRequest {
    pub site: String,
    pub display_name: String,
    pub location: Option<SiteLocation>,
    /// `None`: [`DEFAULT_TOKEN_TTL`].
    pub ttl: Option<Duration>,
    pub reenroll: bool,
    /// 0: keep the site's (18 for a new site).
    pub mirror_segments: u32,
}

/// A created join token.
#[derive(Debug, Clone)]
pub struct CreatedJoinToken {
    /// `ID.SECRET`, shown once.
    pub token: String,
    pub token_id: String,
    pub expires_at_unix_ns: i64,
    /// The exact line to run on the fog-node.
    pub join_command: String,
    pub ca_hash: String,
}

/// What an enrolled or renewed node receives.
#[derive(Debug, Clone)]
pub struct IssuedSite {
    pub site: String,
    pub chain_pem: String,
    pub ca_pem: String,
    pub not_after_unix_ns: i64,
    pub broker: BrokerEndpoint,
    pub topic_prefix: String,
    pub mirror_segments: u32,
}

/// A site with whether its node is connected now.
#[derive(Debug, Clone)]
pub struct ListedSite {
    pub record: SiteRecord,
    pub connected: bool,
}

/// The enrolment service's state and logic.
pub struct Enrollment {
    settings: EnrollSettings,
    ca: CertificateAuthority,
    ca_hash: String,
    store: Arc<dyn RegistryStore>,
    sites: SiteRegistry,
    crl: RevocationList,
    live: LiveSites,
    topics: Option<Arc<KafkaLog>>,
    sessions: Option<Arc<dyn SessionCloser>>,
}

impl std::fmt::Debug for Enrollment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Enrollment")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// The parts [`Enrollment`] works with.
pub struct EnrollmentParts {
    pub settings: EnrollSettings,
    pub ca: CertificateAuthority,
    pub store: Arc<dyn RegistryStore>,
    pub sites: SiteRegistry,
    pub crl: RevocationList,
    pub live: LiveSites,
    /// The Kafka log in Kafka mode: site topics are created at enrolment.
    pub topics: Option<Arc<KafkaLog>>,
    /// The embedded broker's session closer.
    pub sessions: Option<Arc<dyn SessionCloser>>,
}

fn duration_ns(duration: Duration) -> i64 {
    i64::try_from(duration.as_nanos()).unwrap_or(i64::MAX)
}

impl Enrollment {
    pub fn new(parts: EnrollmentParts) -> Result<Self, EnrollError> {
        let ca_hash = parts
            .ca
            .ca_hash()
            .map_err(|e| EnrollError::Internal(e.to_string()))?;
        Ok(Enrollment {
            settings: parts.settings,
            ca: parts.ca,
            ca_hash,
            store: parts.store,
            sites: parts.sites,
            crl: parts.crl,
            live: parts.live,
            topics: parts.topics,
            sessions: parts.sessions,
        })
    }

    /// The registry the bridge and broker consult.
    pub fn sites(&self) -> &SiteRegistry {
        &self.sites
    }

    /// Rewrites the CRL from the store.
    pub async fn write_crl(&self) -> Result<usize, EnrollError> {
        let sites = self.store.list_sites().await?;
        self.crl.write(self.store.as_ref(), &sites).await
    }

    /// Reloads the [`SiteRegistry`] every [`sites::REFRESH_INTERVAL`] until
    /// `stop`, and rewrites the CRL whenever the revoked sites changed (a
    /// revocation made through another hub replica).
    pub async fn keep_fresh(self: Arc<Self>, stop: tokio_util::sync::CancellationToken) {
        let mut revoked = self.sites.revoked();
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(sites::REFRESH_INTERVAL) => {}
            }
            let records = match self.sites.refresh().await {
                Ok(records) => records,
                Err(error) => {
                    tracing::warn!(%error, "cannot refresh the site registry; keeping the last one");
                    continue;
                }
            };
            let now = self.sites.revoked();
            if now != revoked {
                match self.crl.write(self.store.as_ref(), &records).await {
                    Ok(listed) => {
                        tracing::info!(revoked_sites = now.len(), listed, "revoked sites changed");
                        revoked = now;
                    }
                    Err(error) => tracing::error!(%error, "cannot rewrite the revocation list"),
                }
            }
        }
    }

    /// `CreateJoinToken`: a single-use token bound to `request.site`.
    pub async fn create_join_token(
        &self,
        request: JoinTokenRequest,
        created_by: &str,
    ) -> Result<CreatedJoinToken, EnrollError> {
        let site = request.site.as_str();
        validate_site_id(site).map_err(|e| invalid("site", e.to_string()))?;
        if request.display_name.len() > MAX_DISPLAY_NAME {
            return Err(invalid(
                "display_name",
                format!("longer than {MAX_DISPLAY_NAME} bytes"),
            ));
        }
        if let Some(location) = &request.location {
            check_location(location)?;
        }
        if request.mirror_segments > MAX_MIRROR_SEGMENTS {
            return Err(invalid(
                "mirror_segments",
                format!(
                    "{} is more than {MAX_MIRROR_SEGMENTS}",
                    request.mirror_segments
                ),
            ));
        }
        let ttl = request.ttl.unwrap_or(DEFAULT_TOKEN_TTL);
        if ttl.is_zero() || ttl > MAX_TOKEN_TTL {
            return Err(invalid(
                "ttl",
                format!(
                    "{} s is outside 1 s ..= {} s",
                    ttl.as_secs_f64(),
                    MAX_TOKEN_TTL.as_secs()
                ),
            ));
        }
        let now = crate::time::now_unix_ns();
        let existing = self.store.get_site(site).await?;
        if let Some(record) = &existing
            && record.state != SiteState::Pending
            && !request.reenroll
        {
            return Err(EnrollError::AlreadyEnrolled {
                site: site.to_owned(),
                state: record.state.as_str(),
            });
        }
        let mut record = existing.unwrap_or_else(|| SiteRecord::pending(site, now));
        if !request.display_name.is_empty() {
            record.display_name = request.display_name.clone();
        }
        if request.location.is_some() {
            record.location = request.location;
        }
        if request.mirror_segments > 0 {
            record.mirror_segments = request.mirror_segments;
        }
        let minted =
            MintedJoinToken::mint(site, now, duration_ns(ttl), created_by, request.reenroll);
        self.store.insert_join_token(&minted.record).await?;
        self.store.put_site(&record).await?;
        tracing::info!(
            site,
            token_id = minted.record.id,
            ttl_s = ttl.as_secs(),
            reenroll = request.reenroll,
            created_by,
            "join token created"
        );
        Ok(CreatedJoinToken {
            join_command: format!(
                "fog-node enroll --hub {} --token {} --ca-hash {}",
                self.settings.grpc_endpoint, minted.token, self.ca_hash
            ),
            token: minted.token,
            token_id: minted.record.id,
            expires_at_unix_ns: minted.record.expires_at_unix_ns,
            ca_hash: self.ca_hash.clone(),
        })
    }

    /// `Enroll`: exchanges a join token and a CSR for a certificate of the
    /// token's site. The token is consumed only once the CSR was signed.
    pub async fn enroll(
        &self,
        token_text: &str,
        csr_pem: &str,
        node_id: &str,
    ) -> Result<IssuedSite, EnrollError> {
        let shown_id: String = token_text
            .split('.')
            .next()
            .unwrap_or_default()
            .chars()
            .take(token::ID_LEN)
            .collect();
        let refuse = |reason: &str| {
            tracing::warn!(token_id = shown_id, node_id, reason, "enroll refused");
            EnrollError::TokenRefused {
                token_id: shown_id.clone(),
            }
        };
        let Some((id, secret)) = token::split(token_text) else {
            return Err(refuse("malformed token"));
        };
        let Some(token) = self.store.find_join_token(id).await? else {
            return Err(refuse("unknown token id"));
        };
        if !crate::access::secret_matches(&token.secret_sha256, secret) {
            return Err(refuse("wrong token secret"));
        }
        if token.used_at_unix_ns.is_some() {
            return Err(refuse("token already used"));
        }
        let now = crate::time::now_unix_ns();
        if token.expires_at_unix_ns <= now {
            return Err(refuse("token expired"));
        }
        let site = token.site.clone();
        let mut record = self
            .store
            .get_site(&site)
            .await?
            .unwrap_or_else(|| SiteRecord::pending(&site, now));
        if record
            .revoked_at_unix_ns
            .is_some_and(|revoked_at| token.created_at_unix_ns <= revoked_at)
        {
            return Err(refuse("token created before the site was revoked"));
        }
        // Sign first: a CSR the hub refuses does not use up the token.
        let issued = self
            .ca
            .sign_site_csr(csr_pem, &site, self.settings.node_certificate)
            .map_err(|e| {
                tracing::warn!(site, token_id = id, node_id, error = %e, "enroll refused: bad csr");
                invalid("csr_pem", e.to_string())
            })?;
        let facts = crl::pem_certificate_facts(&issued.cert_pem).map_err(EnrollError::Internal)?;
        if let Some(topics) = &self.topics {
            topics.ensure_site(&site).await.map_err(|e| {
                EnrollError::Unavailable(format!("creating the kafka topic of site {site}: {e}"))
            })?;
        }
        if !self.store.consume_join_token(id, &site, now).await? {
            return Err(refuse("token already used (concurrent enroll)"));
        }
        self.store
            .record_certificate(&SiteCertificate {
                site: site.clone(),
                serial_hex: facts.serial_hex.clone(),
                issued_at_unix_ns: now,
                not_after_unix_ns: facts.not_after_unix_ns,
            })
            .await?;
        record.state = SiteState::Active;
        record.enrolled_at_unix_ns = Some(now);
        record.certificate_not_after_unix_ns = Some(facts.not_after_unix_ns);
        self.store.put_site(&record).await?;
        self.sites.set(&site, SiteState::Active);
        tracing::info!(
            site,
            token_id = id,
            node_id,
            serial = facts.serial_hex,
            "site enrolled"
        );
        Ok(self.issued(&record, issued.cert_pem, facts.not_after_unix_ns))
    }

    fn issued(&self, record: &SiteRecord, chain_pem: String, not_after: i64) -> IssuedSite {
        IssuedSite {
            site: record.site.clone(),
            chain_pem,
            ca_pem: self.ca.cert_pem().to_owned(),
            not_after_unix_ns: not_after,
            broker: self.settings.broker.clone(),
            topic_prefix: topic_prefix(&record.site),
            mirror_segments: if record.mirror_segments == 0 {
                DEFAULT_MIRROR_SEGMENTS
            } else {
                record.mirror_segments
            },
        }
    }

    /// `RenewCertificate`: a fresh certificate for the site named by the
    /// caller's client certificate (`peer_der`), if that site is active.
    pub async fn renew(
        &self,
        peer_der: Option<&[u8]>,
        csr_pem: &str,
    ) -> Result<IssuedSite, EnrollError> {
        let Some(der) = peer_der else {
            tracing::warn!(reason = "no client certificate", "renewal refused");
            return Err(EnrollError::NoClientCertificate(
                "RenewCertificate needs the site's client certificate (mTLS)".into(),
            ));
        };
        let facts = crl::certificate_facts(der).map_err(EnrollError::NoClientCertificate)?;
        let Some(site) = facts.site else {
            tracing::warn!(
                serial = facts.serial_hex,
                reason = "certificate names no site",
                "renewal refused"
            );
            return Err(EnrollError::NoClientCertificate(
                "the client certificate names no site".into(),
            ));
        };
        let record = self.store.get_site(&site).await?;
        let refused = |reason: &str| {
            tracing::warn!(site, serial = facts.serial_hex, reason, "renewal refused");
            EnrollError::SiteRefused {
                site: site.clone(),
                reason: reason.to_owned(),
            }
        };
        let mut record = match record {
            Some(record) if record.state == SiteState::Active => record,
            Some(record) if record.state == SiteState::Revoked => {
                return Err(refused("is revoked; it must be enrolled again"));
            }
            _ => return Err(refused("is not enrolled")),
        };
        let issued = self
            .ca
            .sign_site_csr(csr_pem, &site, self.settings.node_certificate)
            .map_err(|e| invalid("csr_pem", e.to_string()))?;
        let facts = crl::pem_certificate_facts(&issued.cert_pem).map_err(EnrollError::Internal)?;
        let now = crate::time::now_unix_ns();
        self.store
            .record_certificate(&SiteCertificate {
                site: site.clone(),
                serial_hex: facts.serial_hex.clone(),
                issued_at_unix_ns: now,
                not_after_unix_ns: facts.not_after_unix_ns,
            })
            .await?;
        record.certificate_not_after_unix_ns = Some(facts.not_after_unix_ns);
        self.store.put_site(&record).await?;
        tracing::info!(site, serial = facts.serial_hex, "certificate renewed");
        Ok(self.issued(&record, issued.cert_pem, facts.not_after_unix_ns))
    }

    /// `RevokeSite`: refused everywhere from now on; returns the revocation
    /// time and the live sessions closed.
    pub async fn revoke(
        &self,
        site: &str,
        reason: &str,
        revoked_by: &str,
    ) -> Result<(i64, u32), EnrollError> {
        validate_site_id(site).map_err(|e| invalid("site", e.to_string()))?;
        if reason.len() > MAX_REASON {
            return Err(invalid("reason", format!("longer than {MAX_REASON} bytes")));
        }
        let Some(mut record) = self.store.get_site(site).await? else {
            return Err(EnrollError::UnknownSite {
                site: site.to_owned(),
            });
        };
        let now = crate::time::now_unix_ns();
        record.state = SiteState::Revoked;
        record.revoked_at_unix_ns = Some(now);
        record.revoke_reason = reason.to_owned();
        // The store first: a refresh never brings an older state back.
        self.store
            .record_revocation(&Revocation {
                site: site.to_owned(),
                at_unix_ns: now,
                reason: reason.to_owned(),
                revoked_by: revoked_by.to_owned(),
            })
            .await?;
        self.store.put_site(&record).await?;
        self.sites.set(site, SiteState::Revoked);
        // A batch that passed the check just before is finished first.
        self.sites.drain_ingest().await;
        let mut closed = 0;
        if let Some(sessions) = &self.sessions {
            if self.live.get(site).connected() {
                closed = 1;
            }
            sessions.close(site).await;
        }
        tracing::warn!(
            site,
            reason,
            revoked_by,
            sessions_closed = closed,
            "site revoked"
        );
        let listed = self.write_crl().await.map_err(|e| {
            EnrollError::Internal(format!(
                "site {site} is revoked, but the revocation list was not written: {e}"
            ))
        })?;
        tracing::info!(site, listed, "revocation list updated");
        Ok((now, closed))
    }

    /// `ListSites`.
    pub async fn list(&self) -> Result<Vec<ListedSite>, EnrollError> {
        Ok(self
            .store
            .list_sites()
            .await?
            .into_iter()
            .map(|record| ListedSite {
                connected: record.state == SiteState::Active
                    && self.live.get(&record.site).connected(),
                record,
            })
            .collect())
    }
}

fn check_location(location: &SiteLocation) -> Result<(), EnrollError> {
    let in_range =
        |value: f64, min: f64, max: f64| value.is_finite() && (min..=max).contains(&value);
    if !in_range(location.latitude_deg, -90.0, 90.0) {
        return Err(invalid(
            "location.latitude_deg",
            "must be within -90 ..= 90",
        ));
    }
    if !in_range(location.longitude_deg, -180.0, 180.0) {
        return Err(invalid(
            "location.longitude_deg",
            "must be within -180 ..= 180",
        ));
    }
    if !in_range(location.altitude_m, -500.0, 9_000.0) {
        return Err(invalid(
            "location.altitude_m",
            "must be within -500 ..= 9000",
        ));
    }
    Ok(())
}

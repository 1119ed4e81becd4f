//! The revocation list (CRL, PEM) for external brokers, and reading the
//! site and serial out of a certificate.
//!
//! `{data_dir}/pki/crl.pem` lists every certificate issued to a site before
//! that site's last revocation and not yet expired, signed by the hub CA.
//! It is written at start (possibly empty: Mosquitto's `crlfile` must
//! exist) and on every revocation this hub makes or learns of. Mosquitto
//! 2.0 reads it when it starts and again on `SIGHUP` (see
//! `infra/mosquitto/README.md`). The embedded broker does not use it: it
//! asks the [`SiteRegistry`](super::sites::SiteRegistry) at every connect.

use std::path::{Path, PathBuf};
use std::time::Duration;

use obs_common::pki::site_uri;
use rcgen::{
    CertificateRevocationListParams, Issuer, KeyIdMethod, KeyPair, RevokedCertParams, SerialNumber,
};
use time::OffsetDateTime;
use x509_parser::extensions::{GeneralName, ParsedExtension};

use super::EnrollError;
use crate::store::registry::{RegistryStore, SiteRecord};

/// How long a written CRL is valid (`nextUpdate`). OpenSSL, and so
/// Mosquitto, refuses every client once the CRL it loaded has expired: the
/// hub rewrites it at every start and every revocation, and the broker must
/// be reloaded at least this often.
pub const CRL_VALIDITY: Duration = Duration::from_secs(365 * 86_400);

/// File name of the CRL in the PKI directory.
pub const CRL_FILE: &str = "crl.pem";

/// Writes the hub's CRL.
pub struct RevocationList {
    path: PathBuf,
    issuer: Issuer<'static, KeyPair>,
    /// The CA certificate's subject key identifier, written as the CRL's
    /// authority key identifier: OpenSSL ignores a CRL whose AKI differs
    /// from the issuer's SKI ("unable to get certificate CRL").
    key_id: KeyIdMethod,
}

impl std::fmt::Debug for RevocationList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RevocationList")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn crl_error(path: &Path, reason: impl std::fmt::Display) -> EnrollError {
    EnrollError::Internal(format!("revocation list {}: {reason}", path.display()))
}

fn time_of_ns(ns: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ns)).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

impl RevocationList {
    /// A CRL at `path` signed by the CA (certificate and PKCS#8 key, PEM).
    pub fn new(path: PathBuf, ca_cert_pem: &str, ca_key_pem: &str) -> Result<Self, EnrollError> {
        let key = KeyPair::from_pem(ca_key_pem).map_err(|e| crl_error(&path, e))?;
        let issuer = Issuer::from_ca_cert_pem(ca_cert_pem, key).map_err(|e| crl_error(&path, e))?;
        let ca_der = obs_common::tls::parse_certificates(ca_cert_pem, "ca certificate")
            .map_err(|e| crl_error(&path, e))?;
        let (_, ca) = x509_parser::parse_x509_certificate(ca_der[0].as_ref())
            .map_err(|e| crl_error(&path, e))?;
        let key_id = ca
            .extensions()
            .iter()
            .find_map(|ext| match ext.parsed_extension() {
                ParsedExtension::SubjectKeyIdentifier(id) => {
                    Some(KeyIdMethod::PreSpecified(id.0.to_vec()))
                }
                _ => None,
            })
            .unwrap_or(KeyIdMethod::Sha256);
        Ok(RevocationList {
            path,
            issuer,
            key_id,
        })
    }

    /// Where the CRL is written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Rewrites the CRL from `sites` (and their certificates in `store`);
    /// returns how many certificates it lists.
    pub async fn write(
        &self,
        store: &dyn RegistryStore,
        sites: &[SiteRecord],
    ) -> Result<usize, EnrollError> {
        let now = OffsetDateTime::now_utc();
        let now_ns = crate::time::now_unix_ns();
        let mut revoked = Vec::new();
        for site in sites {
            let Some(revoked_at) = site.revoked_at_unix_ns else {
                continue;
            };
            for certificate in store.site_certificates(&site.site).await? {
                if certificate.issued_at_unix_ns > revoked_at
                    || certificate.not_after_unix_ns <= now_ns
                {
                    continue;
                }
                let serial =
                    hex::decode(&certificate.serial_hex).map_err(|e| crl_error(&self.path, e))?;
                revoked.push(RevokedCertParams {
                    serial_number: SerialNumber::from_slice(&serial),
                    revocation_time: time_of_ns(revoked_at),
                    reason_code: None,
                    invalidity_date: None,
                });
            }
        }
        let count = revoked.len();
        let number = now.unix_timestamp().max(1).to_be_bytes();
        let params = CertificateRevocationListParams {
            this_update: now - Duration::from_secs(300),
            next_update: now + CRL_VALIDITY,
            crl_number: SerialNumber::from_slice(&number),
            issuing_distribution_point: None,
            revoked_certs: revoked,
            key_identifier_method: self.key_id.clone(),
        };
        let pem = params
            .signed_by(&self.issuer)
            .and_then(|crl| crl.pem())
            .map_err(|e| crl_error(&self.path, e))?;
        crate::pki::write_private(&self.path, &pem, 0o644).map_err(|e| crl_error(&self.path, e))?;
        tracing::info!(path = %self.path.display(), revoked_certificates = count, "revocation list written");
        Ok(count)
    }
}

/// What the hub reads from a certificate it issued to a site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateFacts {
    /// The site of its URI SAN (`urn:observatory:site:{site}`), or of its CN.
    pub site: Option<String>,
    /// Lower-case hex of the serial number, without leading zero bytes.
    pub serial_hex: String,
    pub not_after_unix_ns: i64,
}

/// Reads the first certificate of `der`.
pub fn certificate_facts(der: &[u8]) -> Result<CertificateFacts, String> {
    let (_, cert) =
        x509_parser::parse_x509_certificate(der).map_err(|e| format!("certificate: {e}"))?;
    let serial = cert.tbs_certificate.raw_serial();
    let first = serial
        .iter()
        .position(|b| *b != 0)
        .unwrap_or(serial.len().saturating_sub(1));
    let from_uri = cert
        .subject_alternative_name()
        .ok()
        .flatten()
        .and_then(|ext| {
            ext.value.general_names.iter().find_map(|name| match name {
                GeneralName::URI(uri) => uri.strip_prefix(&site_uri("")).map(str::to_owned),
                _ => None,
            })
        });
    let from_cn = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_owned);
    // A site certificate names its site in both; when both are present
    // they must agree.
    let site = match (from_uri, from_cn) {
        (Some(uri), Some(cn)) if uri == cn => Some(uri),
        (Some(_), Some(_)) => None,
        (Some(uri), None) => Some(uri),
        (None, _) => None,
    };
    Ok(CertificateFacts {
        site,
        serial_hex: hex::encode(&serial[first..]),
        not_after_unix_ns: cert
            .validity()
            .not_after
            .timestamp()
            .saturating_mul(1_000_000_000),
    })
}

/// [`certificate_facts`] of the first certificate of a PEM chain.
pub fn pem_certificate_facts(pem: &str) -> Result<CertificateFacts, String> {
    let certs =
        obs_common::tls::parse_certificates(pem, "certificate").map_err(|e| e.to_string())?;
    certificate_facts(certs[0].as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;
    use obs_common::pki::{CertificateAuthority, NodeKey};

    #[test]
    fn a_site_certificate_names_its_site_and_serial() {
        let ca = CertificateAuthority::generate("t", Duration::from_secs(3600)).unwrap();
        let csr = NodeKey::generate().unwrap().csr_pem("other").unwrap();
        let issued = ca
            .sign_site_csr(&csr, "nrt", Duration::from_secs(60))
            .unwrap();
        let facts = pem_certificate_facts(&issued.cert_pem).unwrap();
        assert_eq!(facts.site.as_deref(), Some("nrt"));
        assert!(!facts.serial_hex.is_empty() && !facts.serial_hex.starts_with("00"));
        assert_eq!(
            facts.not_after_unix_ns / 1_000_000_000,
            issued.not_after.unix_timestamp()
        );
        // The hub's own bridge certificate names no site.
        let hub = ca
            .issue_client("cloud-hub", None, Duration::from_secs(60))
            .unwrap();
        assert_eq!(pem_certificate_facts(&hub.cert_pem).unwrap().site, None);
    }

    #[tokio::test]
    async fn the_crl_lists_certificates_issued_before_a_revocation_under_the_cas_key_id() {
        use crate::store::registry::{SiteCertificate, SiteState};
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::sqlite::SqliteStore::open(&dir.path().join("h.sqlite")).unwrap();
        let ca = CertificateAuthority::generate("t", Duration::from_secs(3600)).unwrap();
        let crl =
            RevocationList::new(dir.path().join(CRL_FILE), ca.cert_pem(), &ca.key_pem()).unwrap();
        let now = crate::time::now_unix_ns();
        let mut record = SiteRecord::pending("nrt", now);
        for (serial, issued) in [("01aa", now - 10), ("02bb", now + 10)] {
            store
                .record_certificate(&SiteCertificate {
                    site: "nrt".into(),
                    serial_hex: serial.into(),
                    issued_at_unix_ns: issued,
                    not_after_unix_ns: now + 3_600_000_000_000,
                })
                .await
                .unwrap();
        }
        assert_eq!(
            crl.write(&store, std::slice::from_ref(&record))
                .await
                .unwrap(),
            0
        );
        record.state = SiteState::Revoked;
        record.revoked_at_unix_ns = Some(now);
        assert_eq!(crl.write(&store, &[record]).await.unwrap(), 1);

        let pem = std::fs::read(crl.path()).unwrap();
        let (_, pem) = x509_parser::pem::parse_x509_pem(&pem).unwrap();
        let (_, parsed) = x509_parser::parse_x509_crl(&pem.contents).unwrap();
        let serials: Vec<String> = parsed
            .iter_revoked_certificates()
            .map(|r| hex::encode(r.raw_serial()))
            .collect();
        assert_eq!(
            serials,
            vec!["01aa"],
            "issued after the revocation: not listed"
        );
        let ca_der = obs_common::tls::parse_certificates(ca.cert_pem(), "ca").unwrap();
        let (_, ca_cert) = x509_parser::parse_x509_certificate(ca_der[0].as_ref()).unwrap();
        let ski = ca_cert
            .extensions()
            .iter()
            .find_map(|e| match e.parsed_extension() {
                ParsedExtension::SubjectKeyIdentifier(id) => Some(id.0.to_vec()),
                _ => None,
            });
        let aki = parsed
            .extensions()
            .iter()
            .find_map(|e| match e.parsed_extension() {
                ParsedExtension::AuthorityKeyIdentifier(aki) => {
                    aki.key_identifier.as_ref().map(|k| k.0.to_vec())
                }
                _ => None,
            });
        assert!(aki.is_some());
        assert_eq!(aki, ski, "the CRL names its issuer by the CA's key id");
    }
}

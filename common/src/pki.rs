//! The hub's certificate authority and the fog-node's key pair.
//!
//! Keys are ECDSA P-256 (PKCS#8). A fog-node makes its own key and sends only
//! a CSR; the CA replaces the CSR's subject with the site it was enrolled
//! for, so nothing a node asks for in its CSR ends up in its certificate.

use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    PKCS_ECDSA_P256_SHA256, PKCS_ECDSA_P384_SHA384, PKCS_ED25519, SanType, SerialNumber,
};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::site::validate_site_id;

/// Errors of certificate handling; each names what it was working on.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("{what}: no PEM certificate found")]
    NoCertificate { what: String },
    #[error("{what}: {source}")]
    Rcgen {
        what: String,
        #[source]
        source: rcgen::Error,
    },
    #[error("csr: key algorithm {algorithm} is not accepted (use ECDSA P-256/P-384 or Ed25519)")]
    WeakKey { algorithm: String },
    #[error(transparent)]
    Site(#[from] crate::Error),
}

type Result<T> = std::result::Result<T, PkiError>;

fn rcgen_error(what: impl Into<String>) -> impl FnOnce(rcgen::Error) -> PkiError {
    let what = what.into();
    move |source| PkiError::Rcgen { what, source }
}

/// `sha256:<hex>` of the DER of the first certificate in `cert_pem`: how a
/// fog-node pins the hub CA before it sends anything.
pub fn ca_hash(cert_pem: &str) -> Result<String> {
    let der = first_certificate(cert_pem, "ca certificate")?;
    Ok(format!(
        "sha256:{}",
        hex::encode(Sha256::digest(der.as_ref()))
    ))
}

fn first_certificate(pem: &str, what: &str) -> Result<CertificateDer<'static>> {
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .next()
        .and_then(|cert| cert.ok())
        .ok_or_else(|| PkiError::NoCertificate { what: what.into() })
}

/// URI SAN naming a site in its certificate.
pub fn site_uri(site: &str) -> String {
    format!("urn:observatory:site:{site}")
}

/// A certificate with its private key, both PEM.
#[derive(Clone)]
pub struct IssuedCertificate {
    pub cert_pem: String,
    pub key_pem: String,
    pub not_after: OffsetDateTime,
}

impl std::fmt::Debug for IssuedCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedCertificate")
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

/// A CA that signs site, server and service certificates.
pub struct CertificateAuthority {
    cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateAuthority")
            .finish_non_exhaustive()
    }
}

impl CertificateAuthority {
    /// A new self-signed CA valid for `validity`.
    pub fn generate(common_name: &str, validity: Duration) -> Result<Self> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(rcgen_error("ca key"))?;
        let mut params = CertificateParams::default();
        params.distinguished_name = name(common_name, Some("observatory"));
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        set_validity(&mut params, validity);
        let cert = params
            .self_signed(&key)
            .map_err(rcgen_error("ca certificate"))?;
        Ok(CertificateAuthority {
            cert_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        })
    }

    /// Loads a CA from its certificate and PKCS#8 key.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self> {
        let key = KeyPair::from_pem(key_pem).map_err(rcgen_error("ca key"))?;
        let issuer =
            Issuer::from_ca_cert_pem(cert_pem, key).map_err(rcgen_error("ca certificate"))?;
        Ok(CertificateAuthority {
            cert_pem: cert_pem.to_owned(),
            issuer,
        })
    }

    /// The CA certificate (PEM).
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA private key (PKCS#8 PEM), for writing to a 0600 file.
    pub fn key_pem(&self) -> String {
        self.issuer.key().serialize_pem()
    }

    /// `sha256:<hex>` of the CA certificate.
    pub fn ca_hash(&self) -> Result<String> {
        ca_hash(&self.cert_pem)
    }

    /// Signs a fog-node's CSR for `site`. Only the CSR's public key is used:
    /// the subject becomes CN = O = site with the URI SAN of the site.
    pub fn sign_site_csr(
        &self,
        csr_pem: &str,
        site: &str,
        validity: Duration,
    ) -> Result<IssuedCertificate> {
        validate_site_id(site)?;
        let csr = CertificateSigningRequestParams::from_pem(csr_pem).map_err(rcgen_error("csr"))?;
        let algorithm = csr.public_key.algorithm();
        const ACCEPTED: [&rcgen::SignatureAlgorithm; 3] = [
            &PKCS_ECDSA_P256_SHA256,
            &PKCS_ECDSA_P384_SHA384,
            &PKCS_ED25519,
        ];
        if !ACCEPTED.contains(&algorithm) {
            return Err(PkiError::WeakKey {
                algorithm: format!("{algorithm:?}"),
            });
        }
        let mut params = site_params(site, validity)?;
        params.distinguished_name = name(site, Some(site));
        let signed = CertificateSigningRequestParams {
            params,
            public_key: csr.public_key,
        };
        let not_after = signed.params.not_after;
        let cert = signed
            .signed_by(&self.issuer)
            .map_err(rcgen_error(format!("certificate for site {site}")))?;
        Ok(IssuedCertificate {
            cert_pem: cert.pem(),
            key_pem: String::new(),
            not_after,
        })
    }

    /// Issues a client certificate with a key made here: for the hub's own
    /// bridge client (CN `cloud-hub`) and for tests. `organization` is the
    /// embedded broker's tenant.
    pub fn issue_client(
        &self,
        common_name: &str,
        organization: Option<&str>,
        validity: Duration,
    ) -> Result<IssuedCertificate> {
        let key =
            KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(rcgen_error("client key"))?;
        let mut params = CertificateParams::default();
        params.distinguished_name = name(common_name, organization);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.serial_number = Some(random_serial());
        set_validity(&mut params, validity);
        self.sign(params, key, common_name)
    }

    /// Issues a TLS server certificate for `names` (DNS names or IP addresses).
    pub fn issue_server(&self, names: &[String], validity: Duration) -> Result<IssuedCertificate> {
        let key =
            KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(rcgen_error("server key"))?;
        let mut params =
            CertificateParams::new(names.to_vec()).map_err(rcgen_error("server names"))?;
        params.distinguished_name = name("observatory hub", Some("observatory"));
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.serial_number = Some(random_serial());
        set_validity(&mut params, validity);
        self.sign(params, key, "server")
    }

    fn sign(
        &self,
        params: CertificateParams,
        key: KeyPair,
        what: &str,
    ) -> Result<IssuedCertificate> {
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(rcgen_error(format!("certificate for {what}")))?;
        Ok(IssuedCertificate {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            not_after: params.not_after,
        })
    }
}

fn site_params(site: &str, validity: Duration) -> Result<CertificateParams> {
    let mut params = CertificateParams::default();
    let uri = site_uri(site)
        .try_into()
        .map_err(rcgen_error(format!("uri san of site {site}")))?;
    params.subject_alt_names = vec![SanType::URI(uri)];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.serial_number = Some(random_serial());
    set_validity(&mut params, validity);
    Ok(params)
}

fn name(common_name: &str, organization: Option<&str>) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, common_name);
    if let Some(organization) = organization {
        name.push(DnType::OrganizationName, organization);
    }
    name
}

/// Valid from five minutes ago (clock skew) for `validity`.
fn set_validity(params: &mut CertificateParams, validity: Duration) {
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::from_secs(300);
    params.not_after = now + validity;
}

fn random_serial() -> SerialNumber {
    let mut bytes: [u8; 16] = rand::random();
    bytes[0] &= 0x7f; // positive
    SerialNumber::from_slice(&bytes)
}

/// A fog-node's own key pair; only its CSR ever leaves the machine.
pub struct NodeKey {
    key: KeyPair,
}

impl std::fmt::Debug for NodeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeKey").finish_non_exhaustive()
    }
}

impl NodeKey {
    /// A new ECDSA P-256 key.
    pub fn generate() -> Result<Self> {
        let key =
            KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(rcgen_error("node key"))?;
        Ok(NodeKey { key })
    }

    /// Loads a PKCS#8 PEM key.
    pub fn from_pem(key_pem: &str) -> Result<Self> {
        let key = KeyPair::from_pem(key_pem).map_err(rcgen_error("node key"))?;
        Ok(NodeKey { key })
    }

    /// The private key (PKCS#8 PEM), to be written to a 0600 file.
    pub fn key_pem(&self) -> String {
        self.key.serialize_pem()
    }

    /// The public key (SPKI PEM).
    pub fn public_key_pem(&self) -> String {
        self.key.public_key_pem()
    }

    /// A CSR for this key; the hub ignores its subject.
    pub fn csr_pem(&self, node_id: &str) -> Result<String> {
        let mut params = CertificateParams::default();
        params.distinguished_name = name(node_id, None);
        let csr = params
            .serialize_request(&self.key)
            .map_err(rcgen_error("csr"))?;
        csr.pem().map_err(rcgen_error("csr"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(86_400);

    fn subject_and_sans(cert_pem: &str) -> (String, Vec<String>) {
        let der = first_certificate(cert_pem, "test").unwrap();
        let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).unwrap();
        let sans = cert
            .subject_alternative_name()
            .unwrap()
            .map(|ext| {
                ext.value
                    .general_names
                    .iter()
                    .map(|name| name.to_string())
                    .collect()
            })
            .unwrap_or_default();
        (cert.subject().to_string(), sans)
    }

    #[test]
    fn site_certificate_ignores_the_csr_subject() {
        let ca = CertificateAuthority::generate("test ca", DAY).unwrap();
        let node = NodeKey::generate().unwrap();
        // A node asking to be another site gets its enrolled site's name.
        let csr = node.csr_pem("othersite").unwrap();
        let issued = ca.sign_site_csr(&csr, "nrt", DAY).unwrap();
        let (subject, sans) = subject_and_sans(&issued.cert_pem);
        assert_eq!(subject, "CN=nrt, O=nrt");
        assert_eq!(sans, vec!["URI(urn:observatory:site:nrt)".to_string()]);
        assert!(issued.key_pem.is_empty(), "the hub never holds a node key");
    }

    #[test]
    fn ca_round_trips_through_pem_and_keeps_its_hash() {
        let ca = CertificateAuthority::generate("test ca", DAY).unwrap();
        let loaded = CertificateAuthority::from_pem(ca.cert_pem(), &ca.key_pem()).unwrap();
        let hash = loaded.ca_hash().unwrap();
        assert_eq!(hash, ca.ca_hash().unwrap());
        assert!(
            hash.starts_with("sha256:") && hash.len() == 7 + 64,
            "{hash}"
        );
    }

    #[test]
    fn bad_inputs_are_named() {
        let ca = CertificateAuthority::generate("test ca", DAY).unwrap();
        let error = ca.sign_site_csr("garbage", "nrt", DAY).unwrap_err();
        assert!(error.to_string().starts_with("csr:"), "{error}");
        let csr = NodeKey::generate().unwrap().csr_pem("n").unwrap();
        let error = ca.sign_site_csr(&csr, "Bad-Site", DAY).unwrap_err();
        assert!(error.to_string().contains("\"Bad-Site\""), "{error}");
        let error = ca_hash("not pem").unwrap_err();
        assert!(error.to_string().contains("ca certificate"), "{error}");
    }
}

//! rustls configurations with the one crypto provider of the workspace (ring).

use std::sync::Arc;

use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Errors building a TLS configuration; `what` names the input (usually a path).
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{what}: no PEM certificate found")]
    NoCertificate { what: String },
    #[error("{what}: no PEM private key found")]
    NoKey { what: String },
    #[error("{what}: {source}")]
    Rustls {
        what: String,
        #[source]
        source: rustls::Error,
    },
}

type Result<T> = std::result::Result<T, TlsError>;

/// The ring provider, used by every TLS endpoint of the workspace.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Every certificate in `pem`; `what` names the source for errors.
pub fn parse_certificates(pem: &str, what: &str) -> Result<Vec<CertificateDer<'static>>> {
    let certs: Vec<_> = CertificateDer::pem_slice_iter(pem.as_bytes())
        .filter_map(|cert| cert.ok())
        .collect();
    if certs.is_empty() {
        return Err(TlsError::NoCertificate { what: what.into() });
    }
    Ok(certs)
}

/// The first private key in `pem` (PKCS#8, SEC1 or PKCS#1).
pub fn parse_private_key(pem: &str, what: &str) -> Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|_| TlsError::NoKey { what: what.into() })
}

/// Trust store holding the certificates of `ca_pem`.
pub fn root_store(ca_pem: &str, what: &str) -> Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    for cert in parse_certificates(ca_pem, what)? {
        roots.add(cert).map_err(|source| TlsError::Rustls {
            what: what.into(),
            source,
        })?;
    }
    Ok(roots)
}

/// A client configuration trusting only `ca_pem`, presenting `identity`
/// (certificate chain PEM, private key PEM) when given.
pub fn client_config(ca_pem: &str, identity: Option<(&str, &str)>) -> Result<rustls::ClientConfig> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|source| TlsError::Rustls {
            what: "tls versions".into(),
            source,
        })?
        .with_root_certificates(root_store(ca_pem, "ca certificate")?);
    match identity {
        None => Ok(builder.with_no_client_auth()),
        Some((chain_pem, key_pem)) => builder
            .with_client_auth_cert(
                parse_certificates(chain_pem, "client certificate")?,
                parse_private_key(key_pem, "client key")?,
            )
            .map_err(|source| TlsError::Rustls {
                what: "client certificate".into(),
                source,
            }),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::pki::CertificateAuthority;

    #[test]
    fn client_config_accepts_an_issued_identity() {
        let ca = CertificateAuthority::generate("t", Duration::from_secs(60)).unwrap();
        let issued = ca
            .issue_client("nrt", Some("nrt"), Duration::from_secs(60))
            .unwrap();
        let config = client_config(ca.cert_pem(), Some((&issued.cert_pem, &issued.key_pem)));
        assert!(config.unwrap().client_auth_cert_resolver.has_certs());
    }

    #[test]
    fn missing_pem_content_is_named() {
        let error = client_config("nothing here", None).unwrap_err();
        assert_eq!(
            error.to_string(),
            "ca certificate: no PEM certificate found"
        );
        let error = parse_private_key("-----BEGIN NOTHING-----", "/etc/key.pem").unwrap_err();
        assert_eq!(error.to_string(), "/etc/key.pem: no PEM private key found");
    }
}

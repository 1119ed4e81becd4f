//! TLS channels to the hub's gRPC port, for the fog-node and `obsctl`.
//!
//! tonic's `ClientTlsConfig` cannot take a custom certificate verifier, and
//! a first contact needs one: before a client trusts (or sends) anything it
//! pins the hub CA by the hash the operator was given (`--ca-hash`). So the
//! channel is built with `Endpoint::connect_with_connector` over our own
//! connector — TCP, then tokio-rustls with our `ClientConfig` (ALPN `h2`) —
//! and tonic speaks HTTP/2 over the stream it is handed.

use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use sha2::{Digest, Sha256};
use tokio::net::TcpStream;
use tonic::transport::{Channel, Endpoint};

use crate::tls::TlsError;

/// Longest wait for TCP + TLS.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait for one RPC.
const RPC_TIMEOUT: Duration = Duration::from_secs(60);

/// Errors reaching the hub; each names the hub or the flag.
#[derive(Debug, thiserror::Error)]
pub enum GrpcError {
    #[error("{flag}: {value:?}: {reason}")]
    BadArgument {
        flag: &'static str,
        value: String,
        reason: String,
    },
    #[error("hub {hub}: {reason}")]
    Connect { hub: String, reason: String },
    #[error(transparent)]
    Tls(#[from] TlsError),
}

/// Parses `sha256:<64 hex>` into the digest.
pub fn parse_ca_hash(text: &str) -> Result<[u8; 32], GrpcError> {
    let bad = |reason: &str| GrpcError::BadArgument {
        flag: "--ca-hash",
        value: text.to_owned(),
        reason: reason.into(),
    };
    let hex_part = text
        .trim()
        .strip_prefix("sha256:")
        .ok_or_else(|| bad("must start with sha256:"))?;
    let bytes = hex::decode(hex_part).map_err(|_| bad("is not hexadecimal"))?;
    bytes.try_into().map_err(|_| bad("must have 64 hex digits"))
}

/// Accepts the server only if its chain contains a certificate whose
/// SHA-256 (of the DER) is the pin, and the server certificate verifies
/// against that certificate as the only trusted root (webpki, name checked).
#[derive(Debug)]
pub struct PinnedCaVerifier {
    pin: [u8; 32],
    provider: Arc<CryptoProvider>,
}

impl PinnedCaVerifier {
    /// A verifier pinning the CA whose certificate hashes to `pin`.
    pub fn new(pin: [u8; 32]) -> Self {
        PinnedCaVerifier {
            pin,
            provider: crate::tls::provider(),
        }
    }
}

impl ServerCertVerifier for PinnedCaVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let ca = std::iter::once(end_entity)
            .chain(intermediates)
            .find(|cert| Sha256::digest(cert.as_ref()).as_slice() == self.pin)
            .ok_or_else(|| {
                rustls::Error::General(
                    "the hub presented no certificate matching the pinned --ca-hash".into(),
                )
            })?;
        let mut roots = RootCertStore::empty();
        roots.add(ca.clone().into_owned())?;
        let webpki =
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), self.provider.clone())
                .build()
                .map_err(|e| rustls::Error::General(format!("pinned ca: {e}")))?;
        webpki.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A client configuration that trusts only the pinned CA, without a client
/// certificate.
pub fn pinned_config(pin: [u8; 32]) -> Result<rustls::ClientConfig, GrpcError> {
    let mut config = rustls::ClientConfig::builder_with_provider(crate::tls::provider())
        .with_safe_default_protocol_versions()
        .map_err(|source| TlsError::Rustls {
            what: "tls versions".into(),
            source,
        })?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PinnedCaVerifier::new(pin)))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}

/// A client configuration trusting `ca_pem`, presenting `identity` (chain,
/// key) when given.
pub fn ca_config(
    ca_pem: &str,
    identity: Option<(&str, &str)>,
) -> Result<rustls::ClientConfig, GrpcError> {
    let mut config = crate::tls::client_config(ca_pem, identity)?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}

/// Splits `host:port` (IPv6 in brackets) and checks the host as a TLS name.
pub fn split_hub(hub: &str) -> Result<(String, ServerName<'static>), GrpcError> {
    let bad = |reason: String| GrpcError::BadArgument {
        flag: "--hub",
        value: hub.to_owned(),
        reason,
    };
    let (host, port) = hub
        .rsplit_once(':')
        .ok_or_else(|| bad("must be HOST:PORT".into()))?;
    port.parse::<u16>()
        .map_err(|_| bad(format!("bad port {port:?}")))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let name =
        ServerName::try_from(host.to_owned()).map_err(|e| bad(format!("bad host name: {e}")))?;
    Ok((hub.to_owned(), name))
}

/// A gRPC channel to `hub` over TLS with `config`; every call is bounded
/// by a 60 s timeout.
pub async fn connect(hub: &str, config: rustls::ClientConfig) -> Result<Channel, GrpcError> {
    connect_with_timeout(hub, config, Some(RPC_TIMEOUT)).await
}

/// [`connect`] with another bound on each call (`None`: unbounded, for long
/// client-streaming uploads whose answer comes only at their end).
pub async fn connect_with_timeout(
    hub: &str,
    config: rustls::ClientConfig,
    rpc_timeout: Option<Duration>,
) -> Result<Channel, GrpcError> {
    let (address, server_name) = split_hub(hub)?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let mut endpoint = Endpoint::from_shared(format!("http://{hub}"))
        .map_err(|e| GrpcError::Connect {
            hub: hub.to_owned(),
            reason: format!("bad endpoint: {e}"),
        })?
        .connect_timeout(CONNECT_TIMEOUT);
    if let Some(timeout) = rpc_timeout {
        endpoint = endpoint.timeout(timeout);
    }
    let service = tower::service_fn(move |_uri: tonic::codegen::http::Uri| {
        let connector = connector.clone();
        let address = address.clone();
        let server_name = server_name.clone();
        async move {
            let tcp = TcpStream::connect(&address).await?;
            tcp.set_nodelay(true)?;
            let tls = connector.connect(server_name, tcp).await?;
            Ok::<_, std::io::Error>(TokioIo::new(tls))
        }
    });
    endpoint
        .connect_with_connector(service)
        .await
        .map_err(|e| GrpcError::Connect {
            hub: hub.to_owned(),
            reason: describe(&e),
        })
}

/// An error with its causes, so that a TLS failure says what failed.
pub fn describe(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ca_hash_and_hub_are_checked() {
        let hash = format!("sha256:{}", "ab".repeat(32));
        assert_eq!(parse_ca_hash(&hash).unwrap(), [0xab; 32]);
        for bad in ["ab".repeat(32), "sha256:xyz".into(), "sha256:abcd".into()] {
            let error = parse_ca_hash(&bad).unwrap_err().to_string();
            assert!(error.contains("--ca-hash"), "{error}");
        }
        assert!(split_hub("127.0.0.1:50051").is_ok());
        assert!(split_hub("hub.example.org:50051").is_ok());
        assert!(split_hub("[::1]:50051").is_ok());
        let error = split_hub("hub.example.org").unwrap_err().to_string();
        assert!(
            error.contains("--hub") && error.contains("HOST:PORT"),
            "{error}"
        );
    }
}

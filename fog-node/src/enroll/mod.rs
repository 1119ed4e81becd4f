//! Enrolment and certificate renewal, the node's side of `EnrollmentService`.
//!
//! `fog-node enroll --hub HOST:PORT --token ID.SECRET --ca-hash sha256:HEX`:
//! 1. makes the node's key pair here and writes `identity/node.key` (0600);
//! 2. connects to the hub's gRPC TLS port, accepting the server only if its
//!    chain holds the CA pinned by `--ca-hash` and the server certificate
//!    verifies against it ([`obs_common::grpc::PinnedCaVerifier`]) — nothing is
//!    sent before that;
//! 3. calls `Enroll{token, csr_pem, node_id, fog_node_version}` (only the
//!    CSR, i.e. the public key, leaves the node);
//! 4. checks that the returned CA is the pinned one, and writes the
//!    identity ([`Identity::install`]).
//!
//! Renewal ([`renew`], run by [`renewal_task`] inside `fog-node run` once 2/3
//! of the certificate's lifetime has passed) calls `RenewCertificate` over
//! mTLS with a CSR for the same key, saves the new chain atomically and asks
//! the uplink to reconnect with it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use obs_common::pki::NodeKey;
use obs_proto::v1::enrollment_service_client::EnrollmentServiceClient;
use obs_proto::v1::{EnrollRequest, RenewCertificateRequest};
use time::OffsetDateTime;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};
use crate::identity::{self, Enrollment, Identity, MqttSettings};
use crate::metrics::{self, NodeMetrics};
use crate::timefmt::{rfc3339, rfc3339_from_ns};
use obs_common::grpc::{self, GrpcError, describe};

/// An [`Error::Enroll`] for `hub`.
fn enroll_error(hub: &str, reason: impl Into<String>) -> Error {
    Error::Enroll {
        hub: hub.to_owned(),
        reason: reason.into(),
    }
}

impl From<GrpcError> for Error {
    fn from(error: GrpcError) -> Self {
        match error {
            GrpcError::BadArgument {
                flag,
                value,
                reason,
            } => Error::config(flag, format!("{value:?}: {reason}")),
            GrpcError::Connect { hub, reason } => Error::Enroll { hub, reason },
            GrpcError::Tls(error) => Error::Tls(error),
        }
    }
}

/// Shortest time between two renewals.
pub const MIN_RENEWAL_INTERVAL: Duration = Duration::from_secs(30);

/// What `fog-node enroll` was given.
#[derive(Debug, Clone)]
pub struct EnrollOptions {
    /// The hub's gRPC endpoint, `host:port`.
    pub hub: String,
    /// The join token, `ID.SECRET`.
    pub token: String,
    /// `sha256:<hex>` of the hub CA certificate.
    pub ca_hash: String,
    pub state_dir: PathBuf,
    /// Default: the host name.
    pub node_id: Option<String>,
}

/// Enrols the node (see the [module docs](self)) and returns its identity.
pub async fn enroll(options: &EnrollOptions) -> Result<Identity> {
    let pin = grpc::parse_ca_hash(&options.ca_hash)?;
    let hub = &options.hub;
    grpc::split_hub(hub)?;
    if options.token.trim().is_empty() || !options.token.contains('.') {
        return Err(Error::config("--token", "must be ID.SECRET"));
    }
    if Identity::exists(&options.state_dir) {
        return Err(Error::config(
            "--state-dir",
            format!(
                "{} already holds an enrolled identity; move it away to enrol again",
                Identity::dir(&options.state_dir).display()
            ),
        ));
    }
    let node_id = options.node_id.clone().unwrap_or_else(default_node_id);
    identity::validate_node_id(&node_id).map_err(|reason| Error::config("--node-id", reason))?;
    let key = local_key(&options.state_dir)?;
    let csr_pem = key.csr_pem(&node_id)?;

    let channel = grpc::connect(hub, grpc::pinned_config(pin)?).await?;
    let mut client = EnrollmentServiceClient::new(channel);
    let response = client
        .enroll(EnrollRequest {
            token: options.token.trim().to_owned(),
            csr_pem,
            node_id: node_id.clone(),
            fog_node_version: env!("CARGO_PKG_VERSION").to_owned(),
        })
        .await
        .map_err(|status| enroll_error(hub, format!("Enroll refused: {}", status.message())))?
        .into_inner();

    let returned = obs_common::pki::ca_hash(&response.ca_certificate_pem)
        .map_err(|e| enroll_error(hub, format!("the returned CA: {e}")))?;
    if returned != format!("sha256:{}", hex::encode(pin)) {
        return Err(enroll_error(
            hub,
            format!("the returned CA hashes to {returned}, not the pinned --ca-hash"),
        ));
    }
    let mqtt = response
        .mqtt
        .ok_or_else(|| enroll_error(hub, "the response has no MQTT endpoint"))?;
    let enrollment = Enrollment {
        site: response.site,
        node_id,
        hub_grpc: hub.clone(),
        mqtt: MqttSettings {
            host: mqtt.host,
            port: u16::try_from(mqtt.port)
                .map_err(|_| enroll_error(hub, format!("bad MQTT port {}", mqtt.port)))?,
            topic_prefix: mqtt.topic_prefix,
            client_id: mqtt.client_id,
        },
        mirror_segments: if response.mirror_segments == 0 {
            18
        } else {
            response.mirror_segments
        },
        certificate_not_after: not_after_text(
            response.certificate_not_after.as_ref(),
            &response.certificate_chain_pem,
        ),
    };
    let identity = Identity::install(
        &options.state_dir,
        enrollment,
        &response.certificate_chain_pem,
        &response.ca_certificate_pem,
        &key.key_pem(),
    )?;
    tracing::info!(
        site = identity.enrollment.site,
        node_id = identity.enrollment.node_id,
        not_after = identity.enrollment.certificate_not_after,
        dir = %Identity::dir(&options.state_dir).display(),
        "enrolled"
    );
    Ok(identity)
}

/// The key in `identity/node.key` if an earlier attempt left one, else a
/// new one written there (0600) before anything is sent.
fn local_key(state_dir: &std::path::Path) -> Result<NodeKey> {
    let dir = Identity::dir(state_dir);
    let path = dir.join(identity::KEY_FILE);
    if path.exists() {
        let pem = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, "read", e))?;
        return NodeKey::from_pem(&pem).map_err(|e| Error::BadFile {
            path,
            reason: e.to_string(),
        });
    }
    let key = NodeKey::generate()?;
    identity::create_private_dir(&dir)?;
    identity::write_atomically(&path, key.key_pem().as_bytes(), 0o600)?;
    Ok(key)
}

/// The host name (cut to the node id alphabet), or `fog-node`.
fn default_node_id() -> String {
    let host: String = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap_or_default()
        .trim()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || "-_.".contains(*c))
        .take(64)
        .collect();
    if host.is_empty() {
        "fog-node".to_owned()
    } else {
        host
    }
}

/// `not_after` from the response, or from the leaf certificate.
fn not_after_text(timestamp: Option<&prost_types::Timestamp>, chain_pem: &str) -> String {
    if let Some(ts) = timestamp
        && ts.seconds > 0
    {
        return rfc3339_from_ns(ts.seconds.saturating_mul(1_000_000_000));
    }
    leaf_not_after(chain_pem).map_or_else(String::new, rfc3339)
}

fn leaf_not_after(chain_pem: &str) -> Option<OffsetDateTime> {
    let certs = obs_common::tls::parse_certificates(chain_pem, "chain").ok()?;
    let (_, leaf) = x509_parser::parse_x509_certificate(certs[0].as_ref()).ok()?;
    Some(leaf.validity().not_after.to_datetime())
}

/// Renews the certificate over mTLS and saves the new chain.
pub async fn renew(identity: &mut Identity) -> Result<()> {
    let hub = identity.enrollment.hub_grpc.clone();
    let config = grpc::ca_config(
        &identity.ca_pem,
        Some((&identity.cert_chain_pem, identity.key_pem())),
    )?;
    let key = NodeKey::from_pem(identity.key_pem())?;
    let csr_pem = key.csr_pem(&identity.enrollment.node_id)?;
    let channel = grpc::connect(&hub, config).await?;
    let response = EnrollmentServiceClient::new(channel)
        .renew_certificate(RenewCertificateRequest { csr_pem })
        .await
        .map_err(|status| {
            enroll_error(
                &hub,
                format!("RenewCertificate refused: {}", status.message()),
            )
        })?
        .into_inner();
    let not_after = not_after_text(
        response.certificate_not_after.as_ref(),
        &response.certificate_chain_pem,
    );
    identity.replace_certificate(&response.certificate_chain_pem, &not_after)?;
    tracing::info!(
        site = identity.enrollment.site,
        not_after,
        "certificate renewed"
    );
    Ok(())
}

/// When to renew a certificate valid from `not_before` to `not_after`:
/// once 2/3 of its lifetime has passed.
pub fn renewal_time(not_before: OffsetDateTime, not_after: OffsetDateTime) -> OffsetDateTime {
    not_before + (not_after - not_before) * 2 / 3
}

/// Renews the certificate at 2/3 of its lifetime, again and again, until
/// `stop`; after a renewal it notifies `reconnect`. Failures are retried
/// every `retry` (a tenth of the remaining lifetime at most).
pub async fn renewal_task(
    state_dir: PathBuf,
    metrics: Arc<NodeMetrics>,
    reconnect: Arc<Notify>,
    stop: CancellationToken,
) {
    let mut failures = 0u32;
    let mut renewed = false;
    loop {
        let wait = match Identity::load(&state_dir).and_then(|id| id.certificate_validity()) {
            Ok((not_before, not_after)) => {
                let now = OffsetDateTime::now_utc();
                let at = renewal_time(not_before, not_after);
                if failures > 0 {
                    let remaining = (not_after - now).max(time::Duration::ZERO);
                    let retry: time::Duration = (remaining / 10_i32)
                        .clamp(time::Duration::seconds(5), time::Duration::minutes(10));
                    Duration::try_from(retry).unwrap_or(Duration::from_secs(60))
                } else {
                    Duration::try_from((at - now).max(time::Duration::ZERO)).unwrap_or_default()
                }
            }
            Err(error) => {
                tracing::warn!(%error, "cannot read the certificate to schedule its renewal");
                Duration::from_secs(300)
            }
        };
        // A certificate shorter-lived than the hub's clock-skew margin would
        // be due again at once: never renew more often than this.
        let wait = if renewed {
            wait.max(MIN_RENEWAL_INTERVAL)
        } else {
            wait
        };
        tracing::debug!(wait_s = wait.as_secs(), "next certificate renewal");
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        let result = match Identity::load(&state_dir) {
            Ok(mut identity) => renew(&mut identity).await,
            Err(error) => Err(error),
        };
        match result {
            Ok(()) => {
                failures = 0;
                renewed = true;
                metrics::inc(&metrics.renewals);
                reconnect.notify_one();
            }
            Err(error) => {
                failures += 1;
                metrics::inc(&metrics.renewal_errors);
                tracing::warn!(
                    error = describe(&error),
                    failures,
                    "certificate renewal failed"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn renews_at_two_thirds_of_the_lifetime() {
        let nb = datetime!(2025-01-01 0:00 UTC);
        assert_eq!(
            renewal_time(nb, datetime!(2025-01-02 0:00 UTC)),
            datetime!(2025-01-01 16:00 UTC)
        );
        assert_eq!(
            renewal_time(nb, datetime!(2025-01-01 0:03 UTC)),
            datetime!(2025-01-01 0:02 UTC)
        );
    }
}

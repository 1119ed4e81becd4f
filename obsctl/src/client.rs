//! The connection to the hub: TLS pinned by `--ca-hash` or trusting
//! `--ca-file`, and the bearer API token on every call.

use obs_common::grpc;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;

use crate::cli::Connection;

/// A channel to the hub and the token to present.
#[derive(Clone)]
pub struct Hub {
    pub channel: Channel,
    token: Option<String>,
}

impl Hub {
    /// Connects as `connection` says; every call is bounded by 60 s.
    pub async fn connect(connection: &Connection) -> anyhow::Result<Hub> {
        Self::connect_with_timeout(connection, Some(std::time::Duration::from_secs(60))).await
    }

    /// [`Hub::connect`] with another bound on each call (`None` for uploads,
    /// whose answer comes only once the whole file is sent).
    pub async fn connect_with_timeout(
        connection: &Connection,
        rpc_timeout: Option<std::time::Duration>,
    ) -> anyhow::Result<Hub> {
        let config = match (&connection.ca_hash, &connection.ca_file) {
            (Some(hash), _) => grpc::pinned_config(grpc::parse_ca_hash(hash)?)?,
            (None, Some(path)) => {
                let pem = std::fs::read_to_string(path)
                    .map_err(|e| anyhow::anyhow!("--ca-file {}: {e}", path.display()))?;
                grpc::ca_config(&pem, None)?
            }
            (None, None) => anyhow::bail!(
                "how to trust the hub: pass --ca-hash sha256:... (OBS_CA_HASH, printed by `cloud-hub print-ca-hash`) or --ca-file (OBS_CA_FILE)"
            ),
        };
        let channel = grpc::connect_with_timeout(&connection.hub, config, rpc_timeout).await?;
        Ok(Hub {
            channel,
            token: connection.token.clone(),
        })
    }

    /// `message` as a request carrying the bearer token.
    pub fn request<T>(&self, message: T) -> anyhow::Result<tonic::Request<T>> {
        let mut request = tonic::Request::new(message);
        if let Some(token) = &self.token {
            let value: MetadataValue<_> = format!("Bearer {token}")
                .parse()
                .map_err(|_| anyhow::anyhow!("--token: not a valid header value"))?;
            request.metadata_mut().insert("authorization", value);
        }
        Ok(request)
    }
}

/// A gRPC failure as a one-line error: the status code and the hub's message.
pub fn status_error(call: &str, status: tonic::Status) -> anyhow::Error {
    anyhow::anyhow!("{call}: {:?}: {}", status.code(), status.message())
}

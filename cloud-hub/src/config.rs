//! The hub's configuration: defaults, then the TOML file, then environment
//! variables `OBS_HUB__SECTION__KEY` (see `obs_common::config`).

use std::net::SocketAddr;
use std::path::PathBuf;

use obs_common::config::Validate;
use serde::{Deserialize, Serialize};

use crate::ingest::BatchLimits;
use crate::store::StoreConfig;
use crate::stream::StreamConfig;

/// Prefix of the hub's environment variables.
pub const ENV_PREFIX: &str = "OBS_HUB";

/// Everything `cloud-hub serve` needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HubConfig {
    /// Where the CA, certificates and the embedded store live.
    pub data_dir: PathBuf,
    /// Host name or address fog-nodes use to reach this hub; it is put in
    /// the server certificate and handed out at enrolment.
    pub public_host: String,
    pub grpc: GrpcConfig,
    pub http: HttpConfig,
    pub mqtt: MqttConfig,
    pub stream: StreamConfig,
    pub store: StoreConfig,
    pub limits: BatchLimits,
    pub pki: PkiConfig,
    pub health: HealthConfig,
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig {
            data_dir: PathBuf::from("hub-data"),
            public_host: "localhost".into(),
            grpc: GrpcConfig::default(),
            http: HttpConfig::default(),
            mqtt: MqttConfig::default(),
            stream: StreamConfig::default(),
            store: StoreConfig::default(),
            limits: BatchLimits::default(),
            pki: PkiConfig::default(),
            health: HealthConfig::default(),
        }
    }
}

/// The gRPC API (TLS).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GrpcConfig {
    pub listen: SocketAddr,
}

impl Default for GrpcConfig {
    fn default() -> Self {
        GrpcConfig {
            listen: SocketAddr::from(([0, 0, 0, 0], 50051)),
        }
    }
}

/// The HTTP port: health, readiness, metrics (unauthenticated: bind it to
/// an operations network) and the dashboard (viewer token).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    pub listen: SocketAddr,
    /// Serve the read-only dashboard (`/`, `/site/{site}`, `/api/...`);
    /// `false` answers 404 there.
    pub dashboard: bool,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
            dashboard: true,
        }
    }
}

/// Where fog-nodes publish: the embedded broker or an external one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum MqttConfig {
    /// rumqttd inside the hub: TLS with client certificates signed by the
    /// hub CA, tenant isolation by the certificate's O field.
    Embedded {
        #[serde(default = "default_mqtt_listen")]
        listen: SocketAddr,
    },
    /// Mosquitto or EMQX: the hub connects as the privileged client
    /// `cloud-hub` (a certificate it issues itself from its CA) and reads
    /// every site through a shared subscription. The broker must trust the
    /// hub CA for client certificates and enforce the per-site ACL shipped
    /// in `infra/mosquitto/`.
    External {
        host: String,
        port: u16,
        /// Shared-subscription group; hub replicas in one group share the load.
        #[serde(default = "default_shared_group")]
        shared_group: String,
        /// CA that signed the broker's server certificate (PEM); the hub CA
        /// when not set.
        #[serde(default)]
        broker_ca: Option<PathBuf>,
    },
}

fn default_shared_group() -> String {
    "hub".into()
}

fn default_mqtt_listen() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 8883))
}

impl Default for MqttConfig {
    fn default() -> Self {
        MqttConfig::Embedded {
            listen: default_mqtt_listen(),
        }
    }
}

/// The mirror health engine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HealthConfig {
    /// Run the model. Without it the hub still ingests, but fleet health
    /// has no predictions.
    pub enabled: bool,
    /// The ONNX model; a relative path is looked for in the working
    /// directory, then upwards from the hub executable's directory.
    pub model: PathBuf,
    /// `libonnxruntime.so.1.31.1`; when unset, `OBS_ORT_DYLIB`, then the
    /// project's `.venv` (see `obs_ml::runtime::locate`).
    pub onnxruntime: Option<PathBuf>,
    /// Seconds between evaluations of every site.
    pub interval_s: u64,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            enabled: true,
            model: PathBuf::from("ml/models/mirror_health.onnx"),
            onnxruntime: None,
            interval_s: 30,
        }
    }
}

impl HealthConfig {
    /// The model file: as given if it exists, else (a relative path only)
    /// found upwards from the working directory, then from the executable's
    /// directory.
    pub fn model_path(&self) -> PathBuf {
        if self.model.is_absolute() || self.model.exists() {
            return self.model.clone();
        }
        let starts = [std::env::current_dir().ok(), std::env::current_exe().ok()];
        starts
            .iter()
            .flatten()
            .flat_map(|start| start.ancestors())
            .map(|dir| dir.join(&self.model))
            .find(|candidate| candidate.exists())
            .unwrap_or_else(|| self.model.clone())
    }
}

/// The hub CA and the certificates it issues.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PkiConfig {
    /// Hours a fog-node certificate is valid.
    pub node_certificate_hours: u32,
    /// An existing CA certificate (PEM) to use instead of the one the hub
    /// creates in its data directory; set together with `ca_key`.
    pub ca_cert: Option<PathBuf>,
    /// Its PKCS#8 private key (mode 0600).
    pub ca_key: Option<PathBuf>,
}

impl PkiConfig {
    /// The supplied CA files, if configured.
    pub fn supplied_ca(&self) -> Option<(&std::path::Path, &std::path::Path)> {
        self.ca_cert.as_deref().zip(self.ca_key.as_deref())
    }
}

impl Default for PkiConfig {
    fn default() -> Self {
        PkiConfig {
            node_certificate_hours: 24,
            ca_cert: None,
            ca_key: None,
        }
    }
}

impl Validate for HubConfig {
    fn validate(&self) -> obs_common::Result<()> {
        let invalid = |field: &str, reason: &str| {
            Err(obs_common::Error::ConfigValue {
                field: field.into(),
                reason: reason.into(),
            })
        };
        if self.public_host.is_empty() {
            return invalid("public_host", "must name this hub's host");
        }
        if self.pki.node_certificate_hours == 0 || self.pki.node_certificate_hours > 24 * 366 {
            return invalid("pki.node_certificate_hours", "must be between 1 and 8784");
        }
        if self.pki.ca_cert.is_some() != self.pki.ca_key.is_some() {
            return invalid("pki.ca_cert", "ca_cert and ca_key go together");
        }
        if self.health.interval_s == 0 {
            return invalid("health.interval_s", "must be at least 1");
        }
        if self.limits.max_batch_bytes < 1024 {
            return invalid("limits.max_batch_bytes", "must be at least 1024");
        }
        if let StreamConfig::Kafka(kafka) = &self.stream
            && let Err(reason) = kafka.validate()
        {
            return invalid("stream.topic_namespace", &reason);
        }
        if let StreamConfig::Kafka(kafka) = &self.stream
            && kafka.retention_hours == 0
        {
            return invalid(
                "stream.retention_hours",
                "must be at least 1: Kafka keeps acknowledged batches that long for the sink",
            );
        }
        if let StoreConfig::Cassandra { nodes, .. } = &self.store
            && nodes.is_empty()
        {
            return invalid("store.nodes", "needs at least one contact point");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_render_and_load_back() {
        let text = obs_common::config::render_default::<HubConfig>().unwrap();
        let parsed: HubConfig = toml::from_str(&text).unwrap();
        assert_eq!(parsed, HubConfig::default());
        assert!(
            text.contains("[mqtt]") && text.contains("kind = \"embedded\""),
            "{text}"
        );
    }

    #[test]
    fn kafka_topics_keep_batches_thirty_days_unless_told_and_never_zero() {
        let config: HubConfig =
            toml::from_str("[stream]\nkind = \"kafka\"\nbootstrap = \"k:9092\"\n").unwrap();
        let StreamConfig::Kafka(kafka) = &config.stream else {
            panic!("kafka")
        };
        assert_eq!(kafka.retention_hours, 720);
        let zero: HubConfig = toml::from_str(
            "[stream]\nkind = \"kafka\"\nbootstrap = \"k:9092\"\nretention_hours = 0\n",
        )
        .unwrap();
        let error = zero.validate().unwrap_err().to_string();
        assert!(error.contains("stream.retention_hours"), "{error}");
    }

    #[test]
    fn the_dashboard_is_on_by_default_and_can_be_switched_off() {
        assert!(HubConfig::default().http.dashboard);
        let config: HubConfig = toml::from_str("[http]\ndashboard = false\n").unwrap();
        assert!(!config.http.dashboard);
        assert_eq!(config.http.listen, HttpConfig::default().listen);
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused() {
        let unknown = toml::from_str::<HubConfig>("[grpc]\nlisten = \"127.0.0.1:1\"\nport = 3\n");
        assert!(unknown.unwrap_err().to_string().contains("port"));
        let config = HubConfig {
            public_host: String::new(),
            ..Default::default()
        };
        let error = config.validate().unwrap_err().to_string();
        assert!(error.contains("public_host"), "{error}");
    }
}

//! `cloud-hub serve`: wires the configured parts together and runs them
//! until shutdown.
//!
//! Tasks and channels:
//! ```text
//! embedded:  rumqttd thread ─link─► read_link ─mpsc<Inbound>─► DirectIngest ─► store
//!                                                                   └─► Ack (link publish)
//! kafka:     rumqttd thread ─link─► read_link ─mpsc<Inbound>─► KafkaBridge ─► obs.telemetry.{site}
//!                                      Ack after acks=all ◄─ delivery reports ┘
//!            obs.telemetry.* ─► sink consumer ─mpsc per site─► site worker ─► store, offset
//! gRPC server (tonic) ─► store (queries), LiveSites (node status)
//! HTTP (axum) ─► /healthz, /readyz (store, Kafka, BrokerStatus), /metrics,
//!            dashboard (the gRPC services' ApiContext, read only)
//!            EnrollmentService ─► registry store, SiteRegistry ◄─ bridge, broker connect hook
//!            SiteRegistry ◄─ refresh from the store every 3 s (other replicas' revocations)
//! ```
//! Shutdown: the token stops the gRPC server and the ingest loop; a batch
//! being written is finished first, so nothing acknowledged is lost.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::access::AccessStore;
use crate::api::{self, ApiContext};
use crate::bridge::direct::DirectIngest;
use crate::bridge::kafka::KafkaBridge;
use crate::config::{HubConfig, MqttConfig};
use crate::enroll::{
    BrokerEndpoint, EnrollSettings, Enrollment, EnrollmentParts, RevocationList, SessionCloser,
    SiteRegistry,
};
use crate::health::HealthEngine;
use crate::ingest::maintenance::SiteMaintenance;
use crate::ingress::{BrokerStatus, embedded, external};
use crate::live::LiveSites;
use crate::pki::HubPki;
use crate::sink;
use crate::store::cassandra::CassandraStore;
use crate::store::predictions::PredictionStore;
use crate::store::registry::RegistryStore;
use crate::store::segments::SegmentStore;
use crate::store::sqlite::SqliteStore;
use crate::store::{StoreConfig, TelemetryStore};
use crate::stream::StreamConfig;
use crate::stream::kafka::KafkaLog;

/// Depth of the channel between the broker and the ingest task: the broker
/// waits (and fog-nodes wait for acks) when the store is slower than this.
const INBOUND_QUEUE: usize = 1024;

/// The stores the hub runs on, behind their traits.
pub struct Stores {
    pub telemetry: Arc<dyn TelemetryStore>,
    pub access: Arc<dyn AccessStore>,
    pub registry: Arc<dyn RegistryStore>,
    pub segments: Arc<dyn SegmentStore>,
    pub predictions: Arc<dyn PredictionStore>,
}

/// Opens the configured store.
pub async fn open_stores(config: &HubConfig) -> anyhow::Result<Stores> {
    match &config.store {
        StoreConfig::Sqlite { file } => {
            let path = config.data_dir.join(file);
            let store = Arc::new(SqliteStore::open(&path)?);
            Ok(Stores {
                telemetry: store.clone(),
                access: store.clone(),
                segments: store.clone(),
                predictions: store.clone(),
                registry: store,
            })
        }
        StoreConfig::Cassandra {
            nodes,
            keyspace,
            replication_factor,
            sample_ttl_days,
        } => {
            let store = Arc::new(
                CassandraStore::connect(nodes, keyspace, *replication_factor, *sample_ttl_days)
                    .await?,
            );
            Ok(Stores {
                telemetry: store.clone(),
                access: store.clone(),
                segments: store.clone(),
                predictions: store.clone(),
                registry: store,
            })
        }
    }
}

/// Loads ONNX Runtime and the health model; `None` when disabled. A
/// missing or wrong library or model is an error naming what was searched.
pub fn start_health(
    config: &HubConfig,
    stores: &Stores,
) -> anyhow::Result<Option<Arc<HealthEngine>>> {
    if !config.health.enabled {
        tracing::warn!(
            "health engine disabled (health.enabled = false): fleet health has no predictions"
        );
        return Ok(None);
    }
    let runtime = obs_ml::Runtime::load(&obs_ml::RuntimeConfig {
        library_path: config.health.onnxruntime.clone(),
    })
    .context("loading ONNX Runtime for the health model (or set health.enabled = false)")?;
    let path = config.health.model_path();
    let model = obs_ml::HealthModel::load(&path, &runtime)
        .with_context(|| format!("loading the health model {}", path.display()))?;
    tracing::info!(
        model = %path.display(),
        sha256 = model.sha256(),
        version = model.version(),
        onnxruntime = %runtime.library_path().display(),
        "health model loaded (trained on simulated data)"
    );
    Ok(Some(Arc::new(HealthEngine {
        model: Arc::new(model),
        telemetry: stores.telemetry.clone(),
        segments: stores.segments.clone(),
        registry: stores.registry.clone(),
        predictions: stores.predictions.clone(),
    })))
}

/// Creates the data directory.
pub fn prepare_data_dir(data_dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating the data directory {}", data_dir.display()))
}

/// Server names for the hub's TLS certificate.
pub fn server_names(config: &HubConfig) -> Vec<String> {
    let mut names = vec![
        config.public_host.clone(),
        "localhost".into(),
        "127.0.0.1".into(),
    ];
    names.dedup();
    names
}

/// The enrolment service over the hub CA (its CRL in the PKI directory).
fn start_enrollment(
    config: &HubConfig,
    pki: &HubPki,
    stores: &Stores,
    sites: SiteRegistry,
    live: &LiveSites,
    topics: Option<Arc<KafkaLog>>,
    sessions: Option<Arc<dyn SessionCloser>>,
) -> anyhow::Result<Enrollment> {
    let broker = match &config.mqtt {
        MqttConfig::Embedded { listen } => BrokerEndpoint {
            host: config.public_host.clone(),
            port: listen.port(),
        },
        MqttConfig::External { host, port, .. } => BrokerEndpoint {
            host: host.clone(),
            port: *port,
        },
    };
    let settings = EnrollSettings {
        grpc_endpoint: format!("{}:{}", config.public_host, config.grpc.listen.port()),
        broker,
        node_certificate: std::time::Duration::from_secs(
            u64::from(config.pki.node_certificate_hours) * 3600,
        ),
    };
    let ca_key = pki.ca.key_pem();
    let crl_path = pki.paths.dir.join(crate::enroll::crl::CRL_FILE);
    let crl = RevocationList::new(crl_path, pki.ca.cert_pem(), &ca_key)?;
    let ca = obs_common::pki::CertificateAuthority::from_pem(pki.ca.cert_pem(), &ca_key)?;
    Ok(Enrollment::new(EnrollmentParts {
        settings,
        ca,
        store: stores.registry.clone(),
        sites,
        crl,
        live: live.clone(),
        topics,
        sessions,
    })?)
}

/// Runs the hub until `shutdown` is cancelled.
pub async fn run(config: HubConfig, shutdown: CancellationToken) -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    crate::metrics::install();
    prepare_data_dir(&config.data_dir)?;
    let pki = HubPki::load_or_create(
        &config.data_dir,
        config.pki.supplied_ca(),
        &server_names(&config),
    )?;
    tracing::info!(ca_hash = pki.ca_hash(), data_dir = %config.data_dir.display(), "hub starting");
    let stores = open_stores(&config).await?;
    let live = LiveSites::default();
    // Loaded before the broker and the bridge start: both refuse sites
    // that are not active.
    let sites = SiteRegistry::load(stores.registry.clone())
        .await
        .context("loading the site registry")?;
    let mut sessions: Option<Arc<dyn SessionCloser>> = None;
    let mut topics = None;

    let (inbound_tx, inbound_rx) = mpsc::channel(INBOUND_QUEUE);
    let broker_status = BrokerStatus::down_until_up("the broker has not started");
    let outbound = match &config.mqtt {
        MqttConfig::Embedded { listen } => {
            let broker = embedded::start(
                *listen,
                &pki.paths,
                sites.clone(),
                inbound_tx,
                broker_status.clone(),
                shutdown.clone(),
            )?;
            sessions = Some(broker.sessions);
            broker.outbound
        }
        MqttConfig::External {
            host,
            port,
            shared_group,
            broker_ca,
        } => {
            let broker_ca = match broker_ca {
                Some(path) => std::fs::read_to_string(path)
                    .with_context(|| format!("reading mqtt.broker_ca {}", path.display()))?,
                None => pki.ca.cert_pem().to_owned(),
            };
            external::start(
                external::ExternalBroker {
                    host: host.clone(),
                    port: *port,
                    shared_group: shared_group.clone(),
                    broker_ca_pem: broker_ca,
                },
                &pki.ca,
                inbound_tx,
                broker_status.clone(),
                shutdown.clone(),
            )?
        }
    };
    let mut tasks = tokio::task::JoinSet::new();
    match &config.stream {
        StreamConfig::None => {
            let ingest = DirectIngest::new(
                stores.telemetry.clone(),
                outbound,
                config.limits,
                live.clone(),
                sites.clone(),
            )
            .with_site_maintenance(SiteMaintenance::new(stores.segments.clone()));
            tasks.spawn(ingest.run(inbound_rx, shutdown.clone()));
        }
        StreamConfig::Kafka(kafka) => {
            let log = Arc::new(KafkaLog::connect(kafka).await?);
            topics = Some(log.clone());
            let bridge = KafkaBridge::new(
                log,
                stores.telemetry.clone(),
                outbound,
                config.limits,
                live.clone(),
                sites.clone(),
            );
            tasks.spawn(bridge.run(inbound_rx, shutdown.clone()));
            let (kafka, store, stop) = (kafka.clone(), stores.telemetry.clone(), shutdown.clone());
            let maintenance = SiteMaintenance::new(stores.segments.clone());
            tasks.spawn(async move {
                if let Err(error) = sink::run(kafka, store, maintenance, stop.clone()).await {
                    tracing::error!(%error, "sink failed; stopping the hub");
                    stop.cancel();
                }
            });
        }
    }

    let stream = topics.clone();
    let enrollment = Arc::new(start_enrollment(
        &config, &pki, &stores, sites, &live, topics, sessions,
    )?);
    enrollment
        .write_crl()
        .await
        .context("writing the revocation list at start")?;
    tasks.spawn(enrollment.clone().keep_fresh(shutdown.clone()));
    let health = start_health(&config, &stores)?;
    if let Some(engine) = &health {
        let interval = std::time::Duration::from_secs(config.health.interval_s);
        tasks.spawn(engine.as_ref().clone().run(interval, shutdown.clone()));
    }
    let context = ApiContext {
        auth: crate::access::Authenticator::new(stores.access.clone()),
        telemetry: stores.telemetry.clone(),
        live,
        enrollment,
        segments: stores.segments.clone(),
        mirror_layout: Arc::new(crate::api::manufacturing::RegistryLayout(
            stores.registry.clone(),
        )),
        registry: stores.registry.clone(),
        predictions: stores.predictions.clone(),
        health,
    };
    let http_context = crate::http::HttpContext {
        store: stores.telemetry.clone(),
        stream,
        broker: broker_status,
        dashboard: config.http.dashboard.then(|| context.clone()),
    };
    let (http_listen, http_stop) = (config.http.listen, shutdown.clone());
    tasks.spawn(async move {
        if let Err(error) = crate::http::serve(http_listen, http_context, http_stop.clone()).await {
            tracing::error!(%error, %http_listen, "http server failed; stopping the hub");
            http_stop.cancel();
        }
    });
    let api_result = api::serve(config.grpc.listen, &pki.paths, context, shutdown.clone()).await;
    shutdown.cancel();
    while let Some(joined) = tasks.join_next().await {
        if let Err(error) = joined {
            tracing::error!(%error, "a hub task failed");
        }
    }
    api_result?;
    tracing::info!("hub stopped");
    Ok(())
}

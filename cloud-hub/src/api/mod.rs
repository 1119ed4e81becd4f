//! The gRPC API (TLS on `grpc.listen`): every service, reflection and
//! `grpc.health.v1`. Every call checks its caller's role first.

pub mod enrollment;
pub mod fleet;
pub mod manufacturing;
mod status;
pub mod telemetry;

use std::net::SocketAddr;
use std::sync::Arc;

use obs_proto::v1::enrollment_service_server::EnrollmentServiceServer;
use obs_proto::v1::fleet_health_service_server::FleetHealthServiceServer;
use obs_proto::v1::manufacturing_service_server::ManufacturingServiceServer;
use obs_proto::v1::telemetry_service_server::TelemetryServiceServer;
use tokio_util::sync::CancellationToken;
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};

pub use self::status::manufacturing_status;
pub use self::status::{enroll_status, http_status, store_status, time_from_ns, time_to_ns};
use crate::access::Authenticator;
use crate::enroll::Enrollment;
use crate::health::HealthEngine;
use crate::live::LiveSites;
use crate::pki::PkiPaths;
use crate::store::TelemetryStore;
use crate::store::predictions::PredictionStore;
use crate::store::registry::RegistryStore;
use crate::store::segments::SegmentStore;

/// What the services need.
#[derive(Clone)]
pub struct ApiContext {
    pub auth: Authenticator,
    pub telemetry: Arc<dyn TelemetryStore>,
    pub live: LiveSites,
    pub enrollment: Arc<Enrollment>,
    pub segments: Arc<dyn SegmentStore>,
    /// Segments of each site's mirror, for installation positions.
    pub mirror_layout: Arc<dyn manufacturing::MirrorLayout>,
    pub registry: Arc<dyn RegistryStore>,
    pub predictions: Arc<dyn PredictionStore>,
    /// The health engine, when enabled.
    pub health: Option<Arc<HealthEngine>>,
}

/// Errors starting the API.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("grpc server on {listen}: {reason}")]
    Serve { listen: SocketAddr, reason: String },
}

/// Serves the API on `listen` until `shutdown`.
pub async fn serve(
    listen: SocketAddr,
    pki: &PkiPaths,
    context: ApiContext,
    shutdown: CancellationToken,
) -> Result<(), ApiError> {
    let fail = |reason: String| ApiError::Serve { listen, reason };
    let read = |path: &std::path::Path| {
        std::fs::read_to_string(path).map_err(|e| fail(format!("{}: {e}", path.display())))
    };
    let identity = Identity::from_pem(read(&pki.server_cert)?, read(&pki.server_key)?);
    // Client certificates are optional: fog-nodes present theirs to
    // `RenewCertificate`; operators and first enrolments use tokens.
    let tls = ServerTlsConfig::new()
        .identity(identity)
        .client_ca_root(Certificate::from_pem(read(&pki.ca_cert)?))
        .client_auth_optional(true);
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<TelemetryServiceServer<telemetry::TelemetryApi>>()
        .await;
    health_reporter
        .set_serving::<EnrollmentServiceServer<enrollment::EnrollmentApi>>()
        .await;
    health_reporter
        .set_serving::<ManufacturingServiceServer<manufacturing::ManufacturingApi>>()
        .await;
    health_reporter
        .set_serving::<FleetHealthServiceServer<fleet::FleetApi>>()
        .await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(obs_proto::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| fail(e.to_string()))?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| fail(e.to_string()))?;
    tracing::info!(%listen, "grpc api listening (tls)");
    Server::builder()
        .tls_config(tls)
        .map_err(|e| fail(e.to_string()))?
        .add_service(health_service)
        .add_service(reflection)
        .add_service(ManufacturingServiceServer::new(
            manufacturing::ManufacturingApi::new(
                context.auth.clone(),
                context.segments.clone(),
                context.telemetry.clone(),
            )
            .with_layout(context.mirror_layout.clone())
            .with_predictions(context.predictions.clone()),
        ))
        .add_service(FleetHealthServiceServer::new(fleet::FleetApi::new(
            context.clone(),
        )))
        .add_service(EnrollmentServiceServer::new(
            enrollment::EnrollmentApi::new(context.clone()),
        ))
        .add_service(TelemetryServiceServer::new(telemetry::TelemetryApi::new(
            context,
        )))
        .serve_with_incoming_shutdown(
            // An incoming stream bypasses the builder's TCP_NODELAY; without
            // it a response of several segments waits out the client's
            // delayed ACK (40 ms on Linux).
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
            shutdown.cancelled_owned(),
        )
        .await
        .map_err(|e| fail(e.to_string()))
}

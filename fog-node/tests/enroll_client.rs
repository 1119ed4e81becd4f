//! The enrolment client against an in-test `EnrollmentService` over TLS that
//! presents `[server certificate, CA]`, with a CA from
//! `obs_common::pki::CertificateAuthority`.

// Test helpers outside #[test] functions may unwrap too.
#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fog_node::enroll::{EnrollOptions, enroll, renew, renewal_task};
use fog_node::identity::Identity;
use fog_node::metrics::{NodeMetrics, get};
use obs_common::pki::CertificateAuthority;
use obs_proto::v1::enrollment_service_server::{EnrollmentService, EnrollmentServiceServer};
use obs_proto::v1::*;
use prost::Message;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateSigningRequestDer, PrivateKeyDer};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tonic::transport::{Certificate, Server, ServerTlsConfig};
use tonic::{Request, Response, Status};
use x509_parser::prelude::FromDer;

const TOKEN: &str = "tok1.s3cret";
const SITE: &str = "enrtest";

/// What the test server saw.
#[derive(Default)]
struct Seen {
    enroll_calls: AtomicUsize,
    renew_calls: AtomicUsize,
    /// Encoded requests, exactly as received.
    requests: Mutex<Vec<Vec<u8>>>,
    /// CN of the client certificate of each renewal.
    renew_peers: Mutex<Vec<String>>,
}

struct TestService {
    ca: Arc<CertificateAuthority>,
    validity: Duration,
    seen: Arc<Seen>,
}

fn timestamp(at: time::OffsetDateTime) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: at.unix_timestamp(),
        nanos: 0,
    }
}

#[tonic::async_trait]
impl EnrollmentService for TestService {
    async fn create_join_token(
        &self,
        _: Request<CreateJoinTokenRequest>,
    ) -> Result<Response<CreateJoinTokenResponse>, Status> {
        Err(Status::unimplemented("test"))
    }

    async fn enroll(
        &self,
        request: Request<EnrollRequest>,
    ) -> Result<Response<EnrollResponse>, Status> {
        self.seen.enroll_calls.fetch_add(1, Ordering::SeqCst);
        let request = request.into_inner();
        self.seen
            .requests
            .lock()
            .unwrap()
            .push(request.encode_to_vec());
        if request.token != TOKEN {
            return Err(Status::permission_denied("unknown join token"));
        }
        if request.csr_pem.contains("PRIVATE KEY") {
            return Err(Status::invalid_argument("a private key was sent"));
        }
        let issued = self
            .ca
            .sign_site_csr(&request.csr_pem, SITE, self.validity)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        Ok(Response::new(EnrollResponse {
            site: SITE.into(),
            certificate_chain_pem: issued.cert_pem,
            ca_certificate_pem: self.ca.cert_pem().into(),
            certificate_not_after: Some(timestamp(issued.not_after)),
            mqtt: Some(MqttEndpoint {
                host: "127.0.0.1".into(),
                port: 8884,
                topic_prefix: obs_common::site::topic_prefix(SITE),
                client_id: SITE.into(),
            }),
            mirror_segments: 36,
        }))
    }

    async fn renew_certificate(
        &self,
        request: Request<RenewCertificateRequest>,
    ) -> Result<Response<RenewCertificateResponse>, Status> {
        self.seen.renew_calls.fetch_add(1, Ordering::SeqCst);
        let peer = request
            .peer_certs()
            .and_then(|certs| certs.first().cloned())
            .ok_or_else(|| Status::unauthenticated("no client certificate"))?;
        let (_, cert) = x509_parser::parse_x509_certificate(peer.as_ref())
            .map_err(|e| Status::unauthenticated(e.to_string()))?;
        let cn = cert
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .unwrap_or_default()
            .to_owned();
        self.seen.renew_peers.lock().unwrap().push(cn.clone());
        let issued = self
            .ca
            .sign_site_csr(&request.into_inner().csr_pem, &cn, self.validity)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        Ok(Response::new(RenewCertificateResponse {
            certificate_chain_pem: issued.cert_pem,
            certificate_not_after: Some(timestamp(issued.not_after)),
        }))
    }

    async fn revoke_site(
        &self,
        _: Request<RevokeSiteRequest>,
    ) -> Result<Response<RevokeSiteResponse>, Status> {
        Err(Status::unimplemented("test"))
    }

    async fn list_sites(
        &self,
        _: Request<ListSitesRequest>,
    ) -> Result<Response<ListSitesResponse>, Status> {
        Err(Status::unimplemented("test"))
    }
}

struct TestHub {
    addr: String,
    ca: Arc<CertificateAuthority>,
    seen: Arc<Seen>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestHub {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A TLS gRPC server presenting `[server cert, CA]`; client certificates are
/// optional (enrolment has none, renewal has the node's).
async fn start_hub(validity: Duration) -> TestHub {
    let ca = Arc::new(
        CertificateAuthority::generate("test hub ca", Duration::from_secs(86_400)).unwrap(),
    );
    let server = ca
        .issue_server(
            &["127.0.0.1".into(), "localhost".into()],
            Duration::from_secs(86_400),
        )
        .unwrap();
    let chain = format!("{}{}", server.cert_pem, ca.cert_pem());
    let tls = ServerTlsConfig::new()
        .identity(tonic::transport::Identity::from_pem(chain, &server.key_pem))
        .client_ca_root(Certificate::from_pem(ca.cert_pem()))
        .client_auth_optional(true);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let seen = Arc::new(Seen::default());
    let service = TestService {
        ca: ca.clone(),
        validity,
        seen: seen.clone(),
    };
    let router = Server::builder()
        .tls_config(tls)
        .unwrap()
        .add_service(EnrollmentServiceServer::new(service));
    let task = tokio::spawn(async move {
        router
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
            .await
            .unwrap();
    });
    TestHub {
        addr,
        ca,
        seen,
        task,
    }
}

fn options(hub: &TestHub, state_dir: &std::path::Path, ca_hash: String) -> EnrollOptions {
    EnrollOptions {
        hub: hub.addr.clone(),
        token: TOKEN.into(),
        ca_hash,
        state_dir: state_dir.to_owned(),
        node_id: Some("node-7".into()),
    }
}

/// The 32-byte private scalar inside a PKCS#8 EC key (ECPrivateKey:
/// `02 01 01 04 20 <scalar>`).
fn private_scalar(key_pem: &str) -> Vec<u8> {
    let der = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).unwrap();
    let bytes = der.secret_der();
    let marker = [0x02, 0x01, 0x01, 0x04, 0x20];
    let at = bytes
        .windows(marker.len())
        .position(|w| w == marker)
        .expect("an EC private key")
        + marker.len();
    bytes[at..at + 32].to_vec()
}

#[tokio::test]
async fn enroll_writes_the_identity_with_a_private_key_file() {
    let hub = start_hub(Duration::from_secs(3600)).await;
    let dir = tempfile::tempdir().unwrap();
    let identity = enroll(&options(&hub, dir.path(), hub.ca.ca_hash().unwrap()))
        .await
        .unwrap();
    assert_eq!(hub.seen.enroll_calls.load(Ordering::SeqCst), 1);

    let id_dir = dir.path().join("identity");
    for file in ["node.key", "node.pem", "ca.pem", "enrollment.json"] {
        assert!(id_dir.join(file).exists(), "{file} missing");
    }
    let mode = std::fs::metadata(id_dir.join("node.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "key mode {mode:o}");
    let dir_mode = std::fs::metadata(&id_dir).unwrap().permissions().mode();
    assert_eq!(dir_mode & 0o777, 0o700, "identity dir mode {dir_mode:o}");
    let loaded = Identity::load(dir.path()).unwrap();
    let e = &loaded.enrollment;
    assert_eq!((e.site.as_str(), e.node_id.as_str()), (SITE, "node-7"));
    assert_eq!(e.hub_grpc, hub.addr);
    assert_eq!(e.mqtt.topic_prefix, format!("/tenants/{SITE}/obs/v1"));
    assert_eq!((e.mqtt.port, e.mirror_segments), (8884, 36));
    assert_eq!(loaded.ca_pem, hub.ca.cert_pem());
    assert_eq!(e, &identity.enrollment);
    let (_, not_after) = loaded.certificate_validity().unwrap();
    assert_eq!(
        e.certificate_not_after,
        fog_node::timefmt::rfc3339(not_after)
    );

    // A second enrolment into the same state dir is refused, without a call.
    let error = enroll(&options(&hub, dir.path(), hub.ca.ca_hash().unwrap()))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("already holds an enrolled identity"),
        "{error}"
    );
    assert_eq!(hub.seen.enroll_calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_wrong_ca_hash_fails_before_anything_reaches_the_hub() {
    let hub = start_hub(Duration::from_secs(3600)).await;
    let dir = tempfile::tempdir().unwrap();
    let other = CertificateAuthority::generate("some other ca", Duration::from_secs(3600)).unwrap();
    let error = enroll(&options(&hub, dir.path(), other.ca_hash().unwrap()))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("no certificate matching the pinned --ca-hash"),
        "{error}"
    );
    assert_eq!(
        hub.seen.enroll_calls.load(Ordering::SeqCst),
        0,
        "the request must not reach the server"
    );
    assert!(hub.seen.requests.lock().unwrap().is_empty());
    assert!(!Identity::exists(dir.path()));

    // the same node then enrols with the right pin (and keeps its key)
    let key_before = std::fs::read_to_string(dir.path().join("identity/node.key")).unwrap();
    enroll(&options(&hub, dir.path(), hub.ca.ca_hash().unwrap()))
        .await
        .unwrap();
    let key_after = std::fs::read_to_string(dir.path().join("identity/node.key")).unwrap();
    assert_eq!(key_before, key_after);
}

#[tokio::test]
async fn only_a_public_key_leaves_the_node() {
    let hub = start_hub(Duration::from_secs(3600)).await;
    let dir = tempfile::tempdir().unwrap();
    let identity = enroll(&options(&hub, dir.path(), hub.ca.ca_hash().unwrap()))
        .await
        .unwrap();
    let requests = hub.seen.requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 1);
    let bytes = &requests[0];
    let request = EnrollRequest::decode(bytes.as_slice()).unwrap();
    assert_eq!(request.token, TOKEN);
    assert!(!String::from_utf8_lossy(bytes).contains("PRIVATE KEY"));

    let scalar = private_scalar(identity.key_pem());
    let csr_der = CertificateSigningRequestDer::from_pem_slice(request.csr_pem.as_bytes()).unwrap();
    for haystack in [bytes.as_slice(), csr_der.as_ref()] {
        assert!(
            !haystack
                .windows(scalar.len())
                .any(|w| w == scalar.as_slice()),
            "the private key's scalar was sent"
        );
    }
    // the CSR carries the node's public key
    let (_, csr) =
        x509_parser::certification_request::X509CertificationRequest::from_der(csr_der.as_ref())
            .unwrap();
    let key = obs_common::pki::NodeKey::from_pem(identity.key_pem()).unwrap();
    let spki =
        rustls::pki_types::SubjectPublicKeyInfoDer::from_pem_slice(key.public_key_pem().as_bytes())
            .unwrap();
    assert_eq!(
        csr.certification_request_info.subject_pki.raw,
        spki.as_ref()
    );
}

#[tokio::test]
async fn renew_replaces_the_certificate_over_mtls() {
    let hub = start_hub(Duration::from_secs(3600)).await;
    let dir = tempfile::tempdir().unwrap();
    let mut identity = enroll(&options(&hub, dir.path(), hub.ca.ca_hash().unwrap()))
        .await
        .unwrap();
    let old_chain = identity.cert_chain_pem.clone();
    let old_key = identity.key_pem().to_owned();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    renew(&mut identity).await.unwrap();
    assert_eq!(hub.seen.renew_calls.load(Ordering::SeqCst), 1);
    assert_eq!(*hub.seen.renew_peers.lock().unwrap(), vec![SITE.to_owned()]);

    let loaded = Identity::load(dir.path()).unwrap();
    assert_ne!(loaded.cert_chain_pem, old_chain, "node.pem replaced");
    assert_eq!(loaded.cert_chain_pem, identity.cert_chain_pem);
    assert_eq!(loaded.key_pem(), old_key, "the key stays");
    let (_, not_after) = loaded.certificate_validity().unwrap();
    assert_eq!(
        loaded.enrollment.certificate_not_after,
        fog_node::timefmt::rfc3339(not_after)
    );
}

#[tokio::test]
async fn the_renewal_task_renews_a_short_lived_certificate_and_asks_for_a_reconnect() {
    // 1 s of validity (plus the CA's 5 min of clock-skew margin before):
    // past 2/3 of its lifetime at once.
    let hub = start_hub(Duration::from_secs(1)).await;
    let dir = tempfile::tempdir().unwrap();
    enroll(&options(&hub, dir.path(), hub.ca.ca_hash().unwrap()))
        .await
        .unwrap();
    let before = std::fs::read_to_string(dir.path().join("identity/node.pem")).unwrap();
    let metrics = Arc::new(NodeMetrics::default());
    let reconnect = Arc::new(Notify::new());
    let stop = CancellationToken::new();
    let task = tokio::spawn(renewal_task(
        dir.path().to_owned(),
        metrics.clone(),
        reconnect.clone(),
        stop.clone(),
    ));
    tokio::time::timeout(Duration::from_secs(20), reconnect.notified())
        .await
        .expect("a reconnect is requested after the renewal");
    let after = std::fs::read_to_string(dir.path().join("identity/node.pem")).unwrap();
    assert_ne!(before, after);
    assert_eq!(get(&metrics.renewals), 1);
    // renewals are spaced: no second call right away
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(hub.seen.renew_calls.load(Ordering::SeqCst), 1);
    stop.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn the_enroll_command_enrols_and_a_bad_token_is_reported() {
    let hub = start_hub(Duration::from_secs(3600)).await;
    let dir = tempfile::tempdir().unwrap();
    let run = |token: &str, state_dir: &std::path::Path| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_fog-node"));
        command
            .args(["enroll", "--hub", &hub.addr, "--token", token, "--ca-hash"])
            .arg(hub.ca.ca_hash().unwrap())
            .arg("--state-dir")
            .arg(state_dir)
            .args(["--node-id", "cli-node"]);
        // the server runs on this runtime: wait for the child off it
        tokio::task::spawn_blocking(move || command.output())
    };
    let output = run(TOKEN, dir.path()).await.unwrap().unwrap();
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains(&format!("enrolled site {SITE} as node cli-node")),
        "{stdout}"
    );
    assert!(Identity::load(dir.path()).is_ok());

    let other = tempfile::tempdir().unwrap();
    let output = run("tok1.wrong", other.path()).await.unwrap().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("unknown join token"), "{stderr}");
    assert!(!Identity::exists(other.path()));
}

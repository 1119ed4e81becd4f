//! Attacks on enrolment, each refused and logged with its reason: reused,
//! expired, wrong-secret, unknown and raced join tokens; a token used to ask
//! for another site; a CSR naming another site; gRPC calls without a token
//! or with the wrong role; renewal without or with a foreign certificate;
//! MQTT clients without a certificate, with a foreign CA's, with an expired
//! one, and a site publishing under another site's prefix.

mod support;

use std::time::Duration;

use obs_proto::v1::enrollment_service_client::EnrollmentServiceClient;
use obs_proto::v1::{
    CreateJoinTokenRequest, EnrollRequest, GetIngestStatsRequest, ListSitesRequest,
    RenewCertificateRequest, RevokeSiteRequest,
};
use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, Issuer, KeyPair, SanType,
};
use support::{FakeNode, Hub, Mode, authed, batch, site_identity, unique_site};
use tonic::Code;

const WAIT: Duration = Duration::from_secs(30);

/// Subject and SANs of the first certificate of a chain.
fn names(chain_pem: &str) -> (String, Vec<String>) {
    let der = obs_common::tls::parse_certificates(chain_pem, "chain").expect("pem")[0].clone();
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).expect("x509");
    let sans = cert
        .subject_alternative_name()
        .expect("san")
        .map(|ext| {
            ext.value
                .general_names
                .iter()
                .map(|n| n.to_string())
                .collect()
        })
        .unwrap_or_default();
    (cert.subject().to_string(), sans)
}

/// A CSR that asks, in every field it has, to be `victim`: (CSR, key).
fn csr_claiming(victim: &str) -> (String, String) {
    let key = KeyPair::generate().expect("key");
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, victim);
    dn.push(DnType::OrganizationName, victim);
    params.distinguished_name = dn;
    params.subject_alt_names = vec![SanType::URI(
        format!("urn:observatory:site:{victim}")
            .try_into()
            .expect("uri"),
    )];
    let csr = params.serialize_request(&key).expect("csr");
    (csr.pem().expect("pem"), key.serialize_pem())
}

/// A certificate of `site` signed by the hub CA whose validity ended
/// yesterday: (chain, key).
fn expired_identity(hub: &Hub, site: &str) -> (String, String) {
    let (ca_cert, ca_key) = hub.ca_pem();
    let issuer = Issuer::from_ca_cert_pem(&ca_cert, KeyPair::from_pem(&ca_key).expect("ca key"))
        .expect("issuer");
    let key = KeyPair::generate().expect("key");
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, site);
    dn.push(DnType::OrganizationName, site);
    params.distinguished_name = dn;
    params.subject_alt_names = vec![SanType::URI(
        format!("urn:observatory:site:{site}")
            .try_into()
            .expect("uri"),
    )];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - Duration::from_secs(2 * 86_400);
    params.not_after = now - Duration::from_secs(86_400);
    let cert = params.signed_by(&key, &issuer).expect("sign");
    (cert.pem(), key.serialize_pem())
}

fn enroll_request(token: &str, csr_pem: String, node_id: &str) -> EnrollRequest {
    EnrollRequest {
        token: token.into(),
        csr_pem,
        node_id: node_id.into(),
        fog_node_version: "attack".into(),
    }
}

fn fresh_csr() -> String {
    obs_common::pki::NodeKey::generate()
        .expect("key")
        .csr_pem("node-1")
        .expect("csr")
}

/// Asserts a refused join token: UNAUTHENTICATED, a message that does not
/// say which check failed, and the precise reason in the hub's log.
fn assert_token_refused(hub: &Hub, status: &tonic::Status, token_id: &str, logged: &str) {
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    let message = status.message();
    assert!(
        message.contains(token_id) && message.contains("not valid"),
        "{message}"
    );
    for detail in ["expired\"", "secret", "already used\"", "unknown token"] {
        assert!(
            !message.contains(detail),
            "the caller is told too much: {message}"
        );
    }
    let log = hub.log();
    assert!(
        log.lines()
            .any(|l| l.contains("enroll refused") && l.contains(token_id) && l.contains(logged)),
        "no log line with reason {logged:?} for token {token_id}:\n{log}"
    );
}

#[tokio::test]
async fn join_tokens_are_single_use_expiring_secret_and_bound_to_their_site() {
    let hub = Hub::start_in(Mode::Embedded);
    let admin = hub.token("admin");
    let mut api = hub.enrollment().await;

    // Reused token.
    let site = unique_site("ru");
    let token = hub.join_token(&admin, &site).await;
    hub.enroll_with(&token.token, "node-1").await;
    let status = api
        .enroll(enroll_request(&token.token, fresh_csr(), "node-2"))
        .await
        .expect_err("a used token");
    assert_token_refused(&hub, &status, &token.token_id, "token already used");

    // Expired token (1 s).
    let site = unique_site("ex");
    let request = CreateJoinTokenRequest {
        site: site.clone(),
        ttl: Some(prost_types::Duration {
            seconds: 1,
            nanos: 0,
        }),
        ..Default::default()
    };
    let expiring = api
        .create_join_token(authed(request, &admin))
        .await
        .expect("1 s token")
        .into_inner();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let status = api
        .enroll(enroll_request(&expiring.token, fresh_csr(), "node-1"))
        .await
        .expect_err("an expired token");
    assert_token_refused(&hub, &status, &expiring.token_id, "token expired");

    // Right id, wrong secret; an id that does not exist.
    let site = unique_site("ws");
    let token = hub.join_token(&admin, &site).await;
    let forged = format!("{}.{}", token.token_id, "0123456789abcdef");
    let status = api
        .enroll(enroll_request(&forged, fresh_csr(), "node-1"))
        .await
        .expect_err("a wrong secret");
    assert_token_refused(&hub, &status, &token.token_id, "wrong token secret");
    let status = api
        .enroll(enroll_request("zzzzzz.0123456789abcdef", fresh_csr(), "n"))
        .await
        .expect_err("an unknown token");
    assert_token_refused(&hub, &status, "zzzzzz", "unknown token id");

    // A CSR the hub cannot sign is refused without using up the token.
    let status = api
        .enroll(enroll_request(&token.token, "garbage".into(), "node-1"))
        .await
        .expect_err("a bad csr");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().starts_with("csr_pem:"),
        "{}",
        status.message()
    );
    let (enrolled, _) = hub.enroll_with(&token.token, "node-1").await;
    assert_eq!(enrolled.site, site);

    // A token for one site asked for another (CSR subject, SAN and node id
    // all name the victim): the certificate names the token's site only,
    // and the victim's own pending token is untouched.
    let victim = unique_site("vi");
    let victim_token = hub.join_token(&admin, &victim).await;
    let site = unique_site("ot");
    let token = hub.join_token(&admin, &site).await;
    let (csr, _key) = csr_claiming(&victim);
    let response = api
        .enroll(enroll_request(&token.token, csr, &victim))
        .await
        .expect("enrol with the token's site")
        .into_inner();
    assert_eq!(response.site, site);
    assert_eq!(response.mqtt.expect("mqtt").client_id, site);
    let (subject, sans) = names(&response.certificate_chain_pem);
    assert_eq!(subject, format!("CN={site}, O={site}"));
    assert_eq!(sans, vec![format!("URI(urn:observatory:site:{site})")]);
    let sites = api
        .list_sites(authed(ListSitesRequest {}, &admin))
        .await
        .expect("list")
        .into_inner()
        .sites;
    let state_of = |name: &str| sites.iter().find(|s| s.site == name).map(|s| s.state);
    assert_eq!(
        state_of(&victim),
        Some(obs_proto::v1::SiteState::Pending as i32)
    );
    assert_eq!(
        state_of(&site),
        Some(obs_proto::v1::SiteState::Active as i32)
    );
    let (victim_enrolled, _) = hub.enroll_with(&victim_token.token, "node-1").await;
    assert_eq!(victim_enrolled.site, victim);

    // Eight concurrent Enroll calls with one token: exactly one succeeds.
    let site = unique_site("rc");
    let token = hub.join_token(&admin, &site).await;
    let mut racers = tokio::task::JoinSet::new();
    for i in 0..8 {
        let (mut client, token) = (api.clone(), token.token.clone());
        racers.spawn(async move {
            client
                .enroll(enroll_request(&token, fresh_csr(), &format!("node-{i}")))
                .await
        });
    }
    let results = racers.join_all().await;
    let won = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(won, 1, "{results:?}");
    assert!(
        results
            .iter()
            .filter_map(|r| r.as_ref().err())
            .all(|s| s.code() == Code::Unauthenticated)
    );

    // An active site needs an explicit re-enrolment; bad requests name the field.
    let request = CreateJoinTokenRequest {
        site: site.clone(),
        ..Default::default()
    };
    let status = api
        .create_join_token(authed(request.clone(), &admin))
        .await
        .expect_err("an active site");
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(
        status.message().contains("reenroll"),
        "{}",
        status.message()
    );
    let again = CreateJoinTokenRequest {
        reenroll: true,
        ..request
    };
    let token = api
        .create_join_token(authed(again, &admin))
        .await
        .expect("re-enrolment token")
        .into_inner();
    hub.enroll_with(&token.token, "node-new").await;
    for (bad, field) in [
        (
            CreateJoinTokenRequest {
                site: "Site-03".into(),
                ..Default::default()
            },
            "site:",
        ),
        (
            CreateJoinTokenRequest {
                site: unique_site("tt"),
                ttl: Some(prost_types::Duration {
                    seconds: 8 * 86_400,
                    nanos: 0,
                }),
                ..Default::default()
            },
            "ttl:",
        ),
    ] {
        let status = api
            .create_join_token(authed(bad, &admin))
            .await
            .expect_err("invalid");
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(status.message().starts_with(field), "{}", status.message());
    }
}

#[tokio::test]
async fn enrolment_administration_needs_the_admin_role() {
    let hub = Hub::start_in(Mode::Embedded);
    let mut api = hub.enrollment().await;
    let site = "nrt".to_string();
    let create = || CreateJoinTokenRequest {
        site: site.clone(),
        ..Default::default()
    };
    let revoke = || RevokeSiteRequest {
        site: site.clone(),
        reason: "test".into(),
    };
    let status = api
        .create_join_token(tonic::Request::new(create()))
        .await
        .expect_err("no token");
    assert_eq!(status.code(), Code::Unauthenticated);
    assert!(
        status.message().contains("role admin"),
        "{}",
        status.message()
    );
    for role in ["viewer", "optics"] {
        let token = hub.token(role);
        let statuses = [
            api.create_join_token(authed(create(), &token))
                .await
                .expect_err("create"),
            api.revoke_site(authed(revoke(), &token))
                .await
                .expect_err("revoke"),
            api.list_sites(authed(ListSitesRequest {}, &token))
                .await
                .expect_err("list"),
        ];
        for status in statuses {
            assert_eq!(status.code(), Code::PermissionDenied, "{role}: {status:?}");
            assert!(
                status.message().contains("needs role admin")
                    && status.message().contains(&format!("has role {role}")),
                "{}",
                status.message()
            );
        }
    }
    let status = api
        .revoke_site(authed(revoke(), &hub.token("admin")))
        .await
        .expect_err("unknown site");
    assert_eq!(status.code(), Code::NotFound);
}

#[tokio::test]
async fn renewal_needs_the_sites_own_valid_certificate_and_an_active_site() {
    let hub = Hub::start_in(Mode::Embedded);
    let admin = hub.token("admin");
    let site = unique_site("rn");
    let (cert, key) = hub.enroll_site(&site).await;
    let renew = || RenewCertificateRequest {
        csr_pem: obs_common::pki::NodeKey::from_pem(&key)
            .expect("key")
            .csr_pem("node-1")
            .expect("csr"),
    };

    let mut with_cert = EnrollmentServiceClient::new(hub.channel(Some((&cert, &key))).await);
    let renewed = with_cert
        .renew_certificate(renew())
        .await
        .expect("renewal over mTLS")
        .into_inner();
    let (subject, _) = names(&renewed.certificate_chain_pem);
    assert_eq!(subject, format!("CN={site}, O={site}"));
    assert_ne!(renewed.certificate_chain_pem, cert);

    // Without a client certificate.
    let status = hub
        .enrollment()
        .await
        .renew_certificate(renew())
        .await
        .expect_err("no certificate");
    assert_eq!(status.code(), Code::Unauthenticated);
    assert!(
        status.message().contains("client certificate"),
        "{}",
        status.message()
    );

    // A foreign CA's or an expired certificate: the TLS handshake fails.
    let foreign = obs_common::pki::CertificateAuthority::generate("foreign", WAIT).expect("ca");
    let (foreign_cert, foreign_key) = site_identity(&foreign, &site);
    let (expired_cert, expired_key) = expired_identity(&hub, &site);
    for (what, chain, key) in [
        ("foreign", &foreign_cert, &foreign_key),
        ("expired", &expired_cert, &expired_key),
    ] {
        let endpoint =
            tonic::transport::Channel::from_shared(format!("https://127.0.0.1:{}", hub.grpc_port))
                .expect("uri")
                .tls_config(
                    tonic::transport::ClientTlsConfig::new()
                        .ca_certificate(tonic::transport::Certificate::from_pem(
                            hub.ca().cert_pem(),
                        ))
                        .identity(tonic::transport::Identity::from_pem(chain, key))
                        .domain_name("localhost"),
                )
                .expect("tls");
        let refused = match endpoint.connect().await {
            Err(_) => true,
            Ok(channel) => EnrollmentServiceClient::new(channel)
                .renew_certificate(renew())
                .await
                .is_err(),
        };
        assert!(refused, "a {what} certificate must not renew");
    }

    // Revoked: renewals stop.
    hub.enrollment()
        .await
        .revoke_site(authed(
            RevokeSiteRequest {
                site: site.clone(),
                reason: "test".into(),
            },
            &admin,
        ))
        .await
        .expect("revoke");
    let status = with_cert
        .renew_certificate(renew())
        .await
        .expect_err("revoked");
    assert_eq!(status.code(), Code::PermissionDenied);
    assert!(status.message().contains("revoked"), "{}", status.message());
    assert!(
        hub.log()
            .lines()
            .any(|l| l.contains("renewal refused") && l.contains(&site))
    );
}

async fn refused(node: &mut FakeNode) -> bool {
    let changed = tokio::time::timeout(WAIT, node.errors.changed()).await;
    changed.is_ok()
        && node.errors.borrow().is_some()
        && node.wait_ack(1, Duration::from_millis(300)).await.is_err()
}

#[tokio::test]
async fn the_embedded_broker_refuses_strangers_expired_certificates_and_foreign_prefixes() {
    let hub = Hub::start_in(Mode::Embedded);
    let viewer = hub.token("viewer");
    let ca = hub.ca();
    let a = unique_site("pa");
    let b = unique_site("pb");
    let (cert_a, key_a) = hub.enroll_site(&a).await;
    hub.enroll_site(&b).await;

    // No certificate, a foreign CA's, an expired one of an active site, and
    // one of the hub CA for a site that never enrolled.
    let foreign = obs_common::pki::CertificateAuthority::generate("foreign", WAIT).expect("ca");
    let foreign_identity = site_identity(&foreign, &a);
    let expired = expired_identity(&hub, &a);
    let never = site_identity(&ca, "neverenrolled");
    for (what, site, identity) in [
        ("no certificate", a.as_str(), None),
        ("foreign ca", a.as_str(), Some(&foreign_identity)),
        ("expired", a.as_str(), Some(&expired)),
        ("never enrolled", "neverenrolled", Some(&never)),
    ] {
        let identity = identity.map(|(c, k)| (c.as_str(), k.as_str()));
        let mut node = FakeNode::connect(site, hub.mqtt_port, ca.cert_pem(), identity).await;
        node.publish(&batch(site, 1, 18, 0)).await;
        assert!(refused(&mut node).await, "{what}: must be refused");
    }
    assert!(
        hub.log()
            .lines()
            .any(|l| l.contains("mqtt connect refused") && l.contains("neverenrolled")),
        "the refusal is logged with its reason"
    );

    // Site a publishing under site b's prefix: dropped by the broker.
    let mut node =
        FakeNode::connect(&a, hub.mqtt_port, ca.cert_pem(), Some((&cert_a, &key_a))).await;
    node.publish(&batch(&a, 1, 18, 0)).await;
    node.wait_ack(1, WAIT)
        .await
        .expect("a's own batch is acked");
    node.publish_raw(
        &format!("/tenants/{b}/obs/v1/up/telemetry"),
        prost::Message::encode_to_vec(&batch(&b, 1, 18, 0)),
    )
    .await;
    tokio::time::timeout(WAIT, node.errors.changed())
        .await
        .expect("the broker drops a")
        .ok();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stats = hub
        .telemetry()
        .await
        .get_ingest_stats(authed(
            GetIngestStatsRequest {
                sites: vec![a.clone(), b.clone()],
            },
            &viewer,
        ))
        .await
        .expect("stats")
        .into_inner();
    let stored: Vec<u64> = stats.sites.iter().map(|s| s.samples_stored).collect();
    assert_eq!(stored, vec![18, 0], "nothing under b's prefix was stored");
}

#[tokio::test]
async fn mosquitto_refuses_expired_and_foreign_certificates_and_confines_sites_to_their_prefix() {
    let hub = Hub::start_in(Mode::MosquittoKafkaCassandra);
    let viewer = hub.token("viewer");
    let ca = hub.ca();
    let a = unique_site("ma");
    let b = unique_site("mb");
    let (cert_a, key_a) = hub.enroll_site(&a).await;
    hub.enroll_site(&b).await;

    let foreign = obs_common::pki::CertificateAuthority::generate("foreign", WAIT).expect("ca");
    let foreign_identity = site_identity(&foreign, &a);
    let expired = expired_identity(&hub, &a);
    for (what, identity) in [
        ("no certificate", None),
        ("foreign ca", Some(&foreign_identity)),
        ("expired", Some(&expired)),
    ] {
        let identity = identity.map(|(c, k)| (c.as_str(), k.as_str()));
        let mut node = FakeNode::connect(&a, hub.mqtt_port, ca.cert_pem(), identity).await;
        node.publish(&batch(&a, 1, 18, 0)).await;
        assert!(refused(&mut node).await, "{what}: must be refused");
    }

    // a under b's prefix: Mosquitto's ACL drops it (with a normal PUBACK),
    // so nothing reaches the hub; only the hub's own Ack counts.
    let mut node =
        FakeNode::connect(&a, hub.mqtt_port, ca.cert_pem(), Some((&cert_a, &key_a))).await;
    node.publish(&batch(&a, 1, 18, 0)).await;
    node.wait_ack(1, Duration::from_secs(60))
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", hub.log()));
    node.publish_raw(
        &format!("/tenants/{b}/obs/v1/up/telemetry"),
        prost::Message::encode_to_vec(&batch(&b, 1, 18, 0)),
    )
    .await;
    node.publish(&batch(&a, 2, 18, 0)).await;
    node.wait_ack(2, Duration::from_secs(60))
        .await
        .expect("a's next batch");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let stored = loop {
        let stats = hub
            .telemetry()
            .await
            .get_ingest_stats(authed(
                GetIngestStatsRequest {
                    sites: vec![a.clone(), b.clone()],
                },
                &viewer,
            ))
            .await
            .expect("stats")
            .into_inner();
        let stored: Vec<u64> = stats.sites.iter().map(|s| s.samples_stored).collect();
        if stored[0] >= 36 || std::time::Instant::now() > deadline {
            break stored;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(stored, vec![36, 0], "nothing under b's prefix was stored");
}

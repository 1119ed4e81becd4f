//! The real Mosquitto started by `scripts/services.sh` carries QoS 1 telemetry
//! over mutual TLS, keeps each site to its own topic prefix and refuses
//! clients without a certificate from its CA.

use std::time::Duration;

use obs_common::pki::{CertificateAuthority, IssuedCertificate, NodeKey};
use obs_common::site::SiteTopics;
use obs_proto::v1::TelemetryBatch;
use obs_tests::{Seen, TestClient, mosquitto_addr, mosquitto_ca, unique};
use prost::Message as _;
use rumqttc::QoS;

const WAIT: Duration = Duration::from_secs(15);
const DAY: Duration = Duration::from_secs(86_400);

/// A site identity made the production way: the node's own key, a CSR, the
/// CA's signature.
fn site_identity(ca: &CertificateAuthority, site: &str) -> (IssuedCertificate, String) {
    let key = NodeKey::generate().unwrap();
    let csr = key.csr_pem("node-1").unwrap();
    (ca.sign_site_csr(&csr, site, DAY).unwrap(), key.key_pem())
}

fn batch(site: &str, seq: u64) -> Vec<u8> {
    TelemetryBatch {
        site: site.into(),
        node_id: "node-1".into(),
        seq,
        ..Default::default()
    }
    .encode_to_vec()
}

/// The hub's view, limited to `sites` so that tests running in parallel do
/// not see each other's messages.
async fn hub_subscriber(ca: &CertificateAuthority, sites: &[&str]) -> TestClient {
    let hub = ca.issue_client("cloud-hub", None, DAY).unwrap();
    let mut client = TestClient::start(
        &unique("hub-"),
        mosquitto_addr(),
        ca.cert_pem(),
        Some((&hub.cert_pem, &hub.key_pem)),
    )
    .unwrap();
    for site in sites {
        client
            .client
            .subscribe(format!("/tenants/{site}/obs/v1/up/#"), QoS::AtLeastOnce)
            .await
            .unwrap();
        client
            .wait_for(WAIT, |seen| matches!(seen, Seen::Subscribed))
            .await
            .unwrap();
    }
    client
}

#[tokio::test]
async fn site_publishes_qos1_over_mtls_and_the_hub_receives_it() {
    let ca = mosquitto_ca().unwrap();
    let site = "mtlsa";
    let mut hub = hub_subscriber(&ca, &[site]).await;
    let (cert, key) = site_identity(&ca, site);
    let mut node = TestClient::start(
        site,
        mosquitto_addr(),
        ca.cert_pem(),
        Some((&cert.cert_pem, &key)),
    )
    .unwrap();
    let topics = SiteTopics::for_site(site);
    node.client
        .publish(&topics.telemetry, QoS::AtLeastOnce, false, batch(site, 1))
        .await
        .unwrap();
    node.wait_for(WAIT, |seen| matches!(seen, Seen::PubAck(_)))
        .await
        .unwrap();

    let seen = hub
        .wait_for(WAIT, |seen| matches!(seen, Seen::Publish { .. }))
        .await
        .unwrap();
    let Some(Seen::Publish { topic, payload }) = seen.last() else {
        unreachable!()
    };
    assert_eq!(topic, &topics.telemetry);
    let received = TelemetryBatch::decode(payload.as_slice()).unwrap();
    assert_eq!((received.site.as_str(), received.seq), (site, 1));
}

#[tokio::test]
async fn a_site_cannot_publish_under_another_sites_prefix() {
    let ca = mosquitto_ca().unwrap();
    let site = "mtlsb";
    let mut hub = hub_subscriber(&ca, &[site, "victim"]).await;
    let (cert, key) = site_identity(&ca, site);
    let mut node = TestClient::start(
        site,
        mosquitto_addr(),
        ca.cert_pem(),
        Some((&cert.cert_pem, &key)),
    )
    .unwrap();

    // Mosquitto acknowledges a denied publish like any other (PUBACK) ...
    let foreign = SiteTopics::for_site("victim");
    node.client
        .publish(
            &foreign.telemetry,
            QoS::AtLeastOnce,
            false,
            batch("victim", 1),
        )
        .await
        .unwrap();
    node.wait_for(WAIT, |seen| matches!(seen, Seen::PubAck(_)))
        .await
        .unwrap();
    // ... but never delivers it: the next thing the hub sees is the site's
    // own, later publish.
    let own = SiteTopics::for_site(site);
    node.client
        .publish(&own.telemetry, QoS::AtLeastOnce, false, batch(site, 2))
        .await
        .unwrap();
    let seen = hub
        .wait_for(WAIT, |seen| matches!(seen, Seen::Publish { .. }))
        .await
        .unwrap();
    let topics: Vec<_> = seen
        .iter()
        .filter_map(|seen| match seen {
            Seen::Publish { topic, .. } => Some(topic.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(topics, vec![own.telemetry.as_str()]);
    let later = tokio::time::timeout(Duration::from_millis(500), hub.events.recv()).await;
    assert!(later.is_err(), "nothing else may arrive: {later:?}");
}

async fn assert_refused(client_id: &str, identity: Option<(&str, &str)>, ca_pem: &str) {
    let mut client = TestClient::start(client_id, mosquitto_addr(), ca_pem, identity).unwrap();
    let seen = client
        .wait_for(WAIT, |seen| {
            matches!(seen, Seen::Connected | Seen::Error(_))
        })
        .await
        .unwrap();
    assert!(
        matches!(seen.last(), Some(Seen::Error(_))),
        "{client_id} must be refused before CONNACK: {seen:?}"
    );
}

#[tokio::test]
async fn clients_without_a_certificate_or_with_a_foreign_ca_are_refused() {
    let ca = mosquitto_ca().unwrap();
    assert_refused("nocert", None, ca.cert_pem()).await;

    let foreign = CertificateAuthority::generate("foreign ca", DAY).unwrap();
    let (cert, key) = site_identity(&foreign, "mtlsc");
    assert_refused("foreignca", Some((&cert.cert_pem, &key)), ca.cert_pem()).await;
}

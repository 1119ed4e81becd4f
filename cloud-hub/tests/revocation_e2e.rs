//! Revocation, measured: once `RevokeSite` returns, nothing more of the
//! site is stored (its in-flight batches are refused with
//! `REJECT_CODE_SITE_NOT_ACTIVE`), its live session on the embedded broker
//! is closed and it cannot connect again; through Mosquitto the hub refuses
//! its batches at once and the broker refuses new connections after it
//! reloads the CRL the hub wrote (`SIGHUP`). Each test prints what it
//! measured (`cargo test -- --nocapture`).

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use obs_proto::v1::{GetIngestStatsRequest, RejectCode, RevokeSiteRequest};
use support::{FakeNode, Hub, Mode, authed, batch, free_port, unique_site};

const WAIT: Duration = Duration::from_secs(60);
const PER_BATCH: usize = 18;

async fn stored(hub: &Hub, viewer: &str, site: &str) -> (u64, u64) {
    let stats = hub
        .telemetry()
        .await
        .get_ingest_stats(authed(
            GetIngestStatsRequest {
                sites: vec![site.into()],
            },
            viewer,
        ))
        .await
        .expect("stats")
        .into_inner();
    (stats.sites[0].samples_stored, stats.sites[0].dead_lettered)
}

/// Publishes batches `from..=to` of `site`, `pause` apart, in a task.
fn publish_stream(
    node: &FakeNode,
    site: &str,
    range: std::ops::RangeInclusive<u64>,
    pause: Duration,
) -> tokio::task::JoinHandle<()> {
    let (client, site) = (node.client.clone(), site.to_owned());
    tokio::spawn(async move {
        let topic = obs_common::site::SiteTopics::for_site(&site).telemetry;
        for seq in range {
            let payload = prost::Message::encode_to_vec(&batch(&site, seq, PER_BATCH, 0));
            if client
                .publish(topic.clone(), rumqttc::QoS::AtLeastOnce, false, payload)
                .await
                .is_err()
            {
                return;
            }
            tokio::time::sleep(pause).await;
        }
    })
}

async fn revoke(hub: &Hub, admin: &str, site: &str) -> (Instant, u32) {
    let response = hub
        .enrollment()
        .await
        .revoke_site(authed(
            RevokeSiteRequest {
                site: site.into(),
                reason: "stolen fog-node".into(),
            },
            admin,
        ))
        .await
        .expect("revoke")
        .into_inner();
    (Instant::now(), response.sessions_closed)
}

#[tokio::test]
async fn embedded_a_revoked_site_is_refused_at_once_live_and_at_reconnect() {
    let hub = Hub::start_in(Mode::Embedded);
    let (admin, viewer) = (hub.token("admin"), hub.token("viewer"));
    let ca = hub.ca();
    let site = unique_site("rv");
    let (cert, key) = hub.enroll_site(&site).await;
    let mut node =
        FakeNode::connect(&site, hub.mqtt_port, ca.cert_pem(), Some((&cert, &key))).await;
    let stream = publish_stream(&node, &site, 1..=2000, Duration::from_millis(2));
    node.wait_ack(20, WAIT)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", hub.log()));

    let asked = Instant::now();
    let (returned, _) = revoke(&hub, &admin, &site).await;
    let (at_return, _) = stored(&hub, &viewer, &site).await;
    let mut errors = node.errors.clone();
    errors.borrow_and_update();
    tokio::time::timeout(WAIT, errors.changed())
        .await
        .expect("the live session is closed")
        .expect("error channel");
    let closed_after = returned.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    stream.abort();
    let (later, dead_lettered) = stored(&hub, &viewer, &site).await;
    assert_eq!(later, at_return, "nothing stored after RevokeSite returned");
    assert_eq!(at_return % PER_BATCH as u64, 0);
    assert!(
        at_return >= 20 * PER_BATCH as u64 && at_return < 2000 * PER_BATCH as u64,
        "{at_return}"
    );

    // Reconnecting with the same certificate is refused at the CONNECT.
    drop(node);
    let started = Instant::now();
    let mut again =
        FakeNode::connect(&site, hub.mqtt_port, ca.cert_pem(), Some((&cert, &key))).await;
    let mut again_errors = again.errors.clone();
    tokio::time::timeout(WAIT, again_errors.changed())
        .await
        .expect("refused")
        .expect("error channel");
    let refused_after = started.elapsed();
    again.publish(&batch(&site, 5000, PER_BATCH, 0)).await;
    assert!(again.wait_ack(5000, Duration::from_secs(2)).await.is_err());
    assert_eq!(stored(&hub, &viewer, &site).await.0, at_return);
    let log = hub.log();
    assert!(
        log.lines()
            .any(|l| l.contains("mqtt connect refused") && l.contains(&site)),
        "{log}"
    );
    assert!(
        log.lines()
            .any(|l| l.contains("site revoked") && l.contains("stolen fog-node"))
    );
    eprintln!(
        "embedded: RevokeSite took {:?}; live session closed {:?} after it returned; \
         samples stored at return {at_return} and 2 s later {later}; in-flight batches \
         dead-lettered {dead_lettered}; a reconnect refused within {refused_after:?}",
        returned - asked,
        closed_after,
    );
}

/// A Mosquitto of this test, rendered like the dev broker (same
/// certificates and ACL), whose `crlfile` is the hub's CRL.
struct OwnMosquitto {
    port: u16,
    log: PathBuf,
    child: Child,
}

impl OwnMosquitto {
    fn start(dir: &Path, port: u16, crl: &Path) -> OwnMosquitto {
        let template = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../.dev/mosquitto/mosquitto.conf"
        );
        let text = std::fs::read_to_string(template)
            .unwrap_or_else(|e| panic!("{template}: {e} (run scripts/services.sh up)"));
        let data = dir.join("data");
        std::fs::create_dir_all(&data).expect("data dir");
        let log = dir.join("mosquitto.log");
        let mut out: String = text
            .lines()
            .filter(|l| !l.starts_with("crlfile "))
            .map(|line| {
                if line.starts_with("listener ") {
                    format!("listener {port} 127.0.0.1\n")
                } else if line.starts_with("persistence_location ") {
                    format!("persistence_location {}/\n", data.display())
                } else if line.starts_with("log_dest ") {
                    format!("log_dest file {}\n", log.display())
                } else {
                    format!("{line}\n")
                }
            })
            .collect();
        out.push_str(&format!("crlfile {}\n", crl.display()));
        let config = dir.join("mosquitto.conf");
        std::fs::write(&config, out).expect("mosquitto.conf");
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mosquitto");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "mosquitto did not start: {}",
                log.display()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        OwnMosquitto { port, log, child }
    }

    /// `SIGHUP`: Mosquitto reloads its configuration and the CRL.
    fn reload(&self) {
        let status = Command::new("kill")
            .args(["-HUP", &self.child.id().to_string()])
            .status()
            .expect("kill -HUP");
        assert!(status.success());
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for OwnMosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether a new client of `site` (client id `probe-{seq}`, so that it
/// takes no session over) gets a batch acknowledged by the hub, i.e. the
/// broker let it in; `false` as soon as its connection fails.
async fn broker_admits(
    port: u16,
    ca_pem: &str,
    site: &str,
    identity: (&str, &str),
    seq: u64,
) -> bool {
    let probe = format!("probe{seq}");
    let node = FakeNode::connect_as(&probe, site, port, ca_pem, Some(identity)).await;
    node.publish(&batch(site, seq, PER_BATCH, 0)).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if node
            .history
            .lock()
            .map(|h| {
                h.iter()
                    .any(|(_, ack)| ack.rejected.iter().any(|r| r.seq == seq))
            })
            .unwrap_or(false)
        {
            return true;
        }
        if node.errors.borrow().is_some() {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    false
}

#[tokio::test]
async fn mosquitto_a_revoked_sites_batches_are_refused_at_once_and_its_connections_after_the_crl_reload()
 {
    let dir = tempfile::tempdir().expect("dir");
    let port = free_port();
    let hub = Hub::start_on_mosquitto(port);
    let crl = hub.data_dir().join("pki/crl.pem");
    assert!(crl.exists(), "the hub writes its CRL at start");
    let broker = OwnMosquitto::start(dir.path(), port, &crl);
    let (admin, viewer) = (hub.token("admin"), hub.token("viewer"));
    let ca = hub.ca();
    let site = unique_site("mr");
    let (cert, key) = hub.enroll_site(&site).await;
    let mut node = FakeNode::connect(&site, broker.port, ca.cert_pem(), Some((&cert, &key))).await;
    let stream = publish_stream(&node, &site, 1..=3000, Duration::from_millis(10));
    node.wait_ack(10, WAIT)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", hub.log()));

    let crl_before = std::fs::read(&crl).expect("crl");
    let (returned, sessions_closed) = revoke(&hub, &admin, &site).await;
    assert_eq!(
        sessions_closed, 0,
        "mosquitto sessions cannot be closed by the hub"
    );
    assert_ne!(
        std::fs::read(&crl).expect("crl"),
        crl_before,
        "the CRL was rewritten"
    );

    // The live session stays up, but its batches are refused from now on.
    let first_rejection = loop {
        let seen = node.history.lock().ok().and_then(|h| {
            h.iter()
                .find(|(_, ack)| {
                    ack.rejected
                        .iter()
                        .any(|r| r.code == RejectCode::SiteNotActive as i32)
                })
                .map(|(at, _)| *at)
        });
        if let Some(at) = seen {
            break at;
        }
        assert!(returned.elapsed() < WAIT, "no rejection\n{}", hub.log());
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    stream.abort();
    let accepted = node.acked();
    let rejected: Vec<u64> = node
        .history
        .lock()
        .map(|h| {
            h.iter()
                .flat_map(|(_, ack)| ack.rejected.iter().map(|r| r.seq))
                .collect()
        })
        .unwrap_or_default();
    assert!(!rejected.is_empty());
    assert!(
        rejected.iter().all(|seq| *seq > accepted),
        "every refused batch comes after every accepted one: accepted {accepted}, rejected {rejected:?}"
    );
    // Kafka mode: the sink writes what was acked before the revocation, and nothing else.
    let want = accepted * PER_BATCH as u64;
    let deadline = Instant::now() + WAIT;
    let mut now_stored = stored(&hub, &viewer, &site).await.0;
    while now_stored < want && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        now_stored = stored(&hub, &viewer, &site).await.0;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let settled = stored(&hub, &viewer, &site).await.0;
    assert_eq!((now_stored, settled), (want, want), "{}", hub.log());

    // New connections: admitted until the broker reloads the CRL, refused after.
    let identity = (cert.as_str(), key.as_str());
    let before_reload = broker_admits(broker.port, ca.cert_pem(), &site, identity, 9001).await;
    let hup = Instant::now();
    broker.reload();
    let mut refused_after = None;
    for attempt in 0..50u64 {
        if !broker_admits(broker.port, ca.cert_pem(), &site, identity, 9100 + attempt).await {
            refused_after = Some(hup.elapsed());
            break;
        }
    }
    let refused_after = refused_after.expect("refused after the CRL reload");
    assert!(
        broker.log().contains("certificate verify failed"),
        "{}",
        broker.log()
    );
    // The session opened before the reload: still up? (Mosquitto does not
    // re-check live sessions against a new CRL.)
    node.publish(&batch(&site, 9500, PER_BATCH, 0)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let live_after_reload = node
        .history
        .lock()
        .map(|h| {
            h.iter()
                .any(|(_, a)| a.rejected.iter().any(|r| r.seq == 9500))
        })
        .unwrap_or(false);
    assert_eq!(
        stored(&hub, &viewer, &site).await.0,
        want,
        "still nothing more stored"
    );
    eprintln!(
        "mosquitto: first SITE_NOT_ACTIVE ack {:?} after RevokeSite returned; samples stored \
         {want} (= the {accepted} batches acked before); new connection before SIGHUP admitted \
         by the broker: {before_reload}; refused {refused_after:?} after SIGHUP; the session \
         opened before the reload still up after it: {live_after_reload}",
        first_rejection.saturating_duration_since(returned),
    );
    assert!(
        before_reload,
        "mosquitto reads the CRL only at start and on SIGHUP"
    );
    assert!(
        live_after_reload,
        "mosquitto does not re-check live sessions against a reloaded CRL"
    );
}

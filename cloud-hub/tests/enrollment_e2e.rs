//! Full enrolment with the real binaries: `obsctl sites join-token` prints
//! the line, the real `fog-node enroll` runs it (pinning the CA by hash,
//! sending only a CSR), `fog-node run` streams simulated telescope
//! telemetry over mTLS, and the hub stores it under the site — through the
//! embedded broker and through Mosquitto. Also: no fog-node private key
//! ever reaches the hub (its data, database and log hold none).
//!
//! `fog-node` and `obsctl` are taken from the same target directory as
//! `cloud-hub` (`cargo test --workspace` builds every binary; otherwise run
//! `cargo build -p fog-node -p obsctl` first).

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use obs_proto::v1::{GetIngestStatsRequest, QueryTelemetryRequest, Resolution};
use support::{Hub, Mode, authed, unique_site};

const WAIT: Duration = Duration::from_secs(90);

/// A binary of the workspace next to `cloud-hub`.
fn sibling_bin(name: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_BIN_EXE_cloud-hub")).with_file_name(name);
    assert!(
        path.exists(),
        "{} is missing: build it with `cargo build -p {name}` (cargo test --workspace does)",
        path.display()
    );
    path
}

fn run(command: &mut Command) -> Output {
    let output = command.output().expect("run a binary");
    assert!(
        output.status.success(),
        "{command:?} failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// `obsctl` against `hub` with `token`, the CA pinned by hash.
fn obsctl(hub: &Hub, token: &str, args: &[&str]) -> Output {
    let ca_hash = hub.ca().ca_hash().expect("ca hash");
    run(Command::new(sibling_bin("obsctl"))
        .args(args)
        .env("OBS_HUB", format!("127.0.0.1:{}", hub.grpc_port))
        .env("OBS_TOKEN", token)
        .env("OBS_CA_HASH", ca_hash)
        .env_remove("OBS_CA_FILE"))
}

/// A `fog-node run` child, killed on drop.
struct RunningNode {
    child: Child,
    log: PathBuf,
}

impl RunningNode {
    fn start(state_dir: &Path) -> RunningNode {
        let config = state_dir.join("node.toml");
        std::fs::write(
            &config,
            format!(
                "state_dir = {state_dir:?}\n\
                 [batching]\nmax_samples = 500\nmax_delay_ms = 200\n\
                 [uplink]\nbackoff_min_ms = 100\nbackoff_max_ms = 1000\nstatus_interval_ms = 1000\n\
                 [simulation]\nenabled = true\nclimate = \"la_palma\"\ntime_scale = 600.0\ntick_ms = 200\n\
                 [tango]\nenabled = false\n"
            ),
        )
        .expect("node config");
        let log = state_dir.join("node.log");
        let child = Command::new(sibling_bin("fog-node"))
            .args(["run", "--config"])
            .arg(&config)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("node log"))
            .spawn()
            .expect("spawn fog-node run");
        RunningNode { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for RunningNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every file under `dir` (recursively) whose bytes contain `needle`.
fn files_containing(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(files_containing(&path, needle));
        } else if std::fs::read(&path)
            .map(|bytes| bytes.windows(needle.len()).any(|w| w == needle))
            .unwrap_or(false)
        {
            found.push(path);
        }
    }
    found
}

async fn full_enrolment(mode: Mode) {
    let hub = Hub::start_in(mode);
    let admin = hub.token("admin");
    let viewer = hub.token("viewer");
    let site = unique_site("en");

    // The operator: one command, one line to hand to the telescope.
    let output = obsctl(
        &hub,
        &admin,
        &[
            "sites",
            "join-token",
            "--site",
            &site,
            "--name",
            "Test telescope",
            "--lat",
            "28.76",
            "--lon",
            "-17.88",
            "--alt",
            "2396",
            "--segments",
            "6",
            "--ttl",
            "10m",
        ],
    );
    let line = String::from_utf8(output.stdout).expect("utf8");
    let line = line.trim();
    let ca_hash = hub.ca().ca_hash().expect("ca hash");
    assert!(
        line.starts_with(&format!(
            "fog-node enroll --hub 127.0.0.1:{} --token ",
            hub.grpc_port
        )) && line.ends_with(&format!("--ca-hash {ca_hash}")),
        "{line}"
    );

    // The telescope: the printed line, as is, with the real binary.
    let node_dir = tempfile::tempdir().expect("node dir");
    let state_dir = node_dir.path().join("state");
    let mut words = line.split_whitespace();
    assert_eq!(words.next(), Some("fog-node"));
    let enroll = run(Command::new(sibling_bin("fog-node"))
        .args(words)
        .arg("--state-dir")
        .arg(&state_dir)
        .args(["--node-id", "node-1"])
        .env("RUST_LOG", "info"));
    eprintln!(
        "fog-node enroll: {}",
        String::from_utf8_lossy(&enroll.stderr)
    );
    let key_path = state_dir.join("identity/node.key");
    let key_mode = std::fs::metadata(&key_path)
        .expect("node key")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(key_mode, 0o600, "the node key is private to the node");
    let enrollment: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(state_dir.join("identity/enrollment.json")).expect("enrollment"),
    )
    .expect("json");
    assert_eq!(enrollment["site"], site.as_str());
    assert_eq!(enrollment["mqtt"]["client_id"], site.as_str());
    assert_eq!(enrollment["mqtt"]["port"], u64::from(hub.mqtt_port));
    assert_eq!(
        enrollment["mqtt"]["topic_prefix"],
        format!("/tenants/{site}/obs/v1")
    );
    assert_eq!(enrollment["mirror_segments"], 6);

    // The node streams; the hub stores its data under the site.
    let node = RunningNode::start(&state_dir);
    let deadline = Instant::now() + WAIT;
    let mut api = hub.telemetry().await;
    let samples = loop {
        let query = QueryTelemetryRequest {
            site: site.clone(),
            device: "weather/station/1".into(),
            attribute: "relative_humidity".into(),
            resolution: Resolution::Raw as i32,
            limit: 1000,
            ..Default::default()
        };
        let found = api
            .query_telemetry(authed(query, &viewer))
            .await
            .expect("query")
            .into_inner()
            .samples;
        if found.len() >= 5 {
            break found;
        }
        assert!(
            Instant::now() < deadline,
            "no data of {site} stored\nhub:\n{}\nnode:\n{}",
            hub.log(),
            node.log()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert!(samples.iter().all(|s| s.unit == "%"));
    let stats = api
        .get_ingest_stats(authed(
            GetIngestStatsRequest {
                sites: vec![site.clone()],
            },
            &viewer,
        ))
        .await
        .expect("stats")
        .into_inner();
    assert!(stats.sites[0].samples_stored >= 5, "{stats:?}");
    assert_eq!(stats.sites[0].site, site);

    // The operator sees the site active, with what the token named.
    let listed = obsctl(&hub, &admin, &["sites", "list", "--format", "json"]);
    let sites: serde_json::Value = serde_json::from_slice(&listed.stdout).expect("json");
    let entry = sites
        .as_array()
        .expect("a list")
        .iter()
        .find(|s| s["site"] == site.as_str())
        .unwrap_or_else(|| panic!("{site} missing from {sites}"));
    assert_eq!(entry["state"], "active");
    assert_eq!(entry["display_name"], "Test telescope");
    assert_eq!(entry["mirror_segments"], 6);
    assert_eq!(entry["latitude_deg"], 28.76);
    assert!(entry["certificate_not_after"].is_string(), "{entry}");

    // Revoked with obsctl: from then on nothing more of the site is stored.
    let revoked = obsctl(
        &hub,
        &admin,
        &[
            "sites",
            "revoke",
            &site,
            "--reason",
            "decommissioned",
            "--format",
            "json",
        ],
    );
    let revoked: serde_json::Value = serde_json::from_slice(&revoked.stdout).expect("json");
    assert_eq!(revoked["site"], site.as_str());
    assert!(revoked["revoked_at"].is_string(), "{revoked}");
    let stored_at_revoke = api
        .get_ingest_stats(authed(
            GetIngestStatsRequest {
                sites: vec![site.clone()],
            },
            &viewer,
        ))
        .await
        .expect("stats")
        .into_inner()
        .sites[0]
        .samples_stored;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let later = api
        .get_ingest_stats(authed(
            GetIngestStatsRequest {
                sites: vec![site.clone()],
            },
            &viewer,
        ))
        .await
        .expect("stats")
        .into_inner()
        .sites[0]
        .samples_stored;
    if mode == Mode::Embedded {
        assert_eq!(
            later, stored_at_revoke,
            "nothing stored after the revocation"
        );
    }
    let listed = obsctl(&hub, &admin, &["sites", "list", "--format", "json"]);
    let sites: serde_json::Value = serde_json::from_slice(&listed.stdout).expect("json");
    assert!(
        sites
            .as_array()
            .expect("a list")
            .iter()
            .any(|s| s["site"] == site.as_str() && s["state"] == "revoked"),
        "{sites}"
    );
    drop(node);

    // No private key of the node crossed the wire: the hub's files and its
    // log hold no copy of it, and the only private keys in its data
    // directory are its own (CA, server).
    let node_key = std::fs::read_to_string(&key_path).expect("node key");
    let body: String = node_key
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect::<Vec<_>>()
        .join("\n");
    let first_line = body.lines().next().expect("a key body line");
    assert!(
        files_containing(hub.dir.path(), first_line.as_bytes()).is_empty(),
        "the node key is in the hub's files"
    );
    let mut keys: Vec<String> = files_containing(&hub.data_dir(), b"PRIVATE KEY")
        .iter()
        .filter_map(|p| p.strip_prefix(hub.data_dir()).ok())
        .map(|p| p.display().to_string())
        .collect();
    keys.sort();
    let expected: Vec<String> = match mode {
        Mode::MosquittoKafkaCassandra => vec!["pki/server.key".into()],
        _ => vec!["pki/ca.key".into(), "pki/server.key".into()],
    };
    assert_eq!(keys, expected, "only the hub's own keys");
    assert!(!hub.log().contains("PRIVATE KEY"));
}

#[tokio::test]
async fn embedded_a_node_enrolled_with_the_printed_line_streams_and_its_data_is_stored() {
    full_enrolment(Mode::Embedded).await;
}

#[tokio::test]
async fn mosquitto_a_node_enrolled_with_the_printed_line_streams_and_its_data_is_stored() {
    full_enrolment(Mode::MosquittoKafkaCassandra).await;
}

#[tokio::test]
async fn obsctl_refuses_to_run_without_a_way_to_trust_the_hub() {
    let output = Command::new(sibling_bin("obsctl"))
        .args(["--hub", "127.0.0.1:1", "sites", "list"])
        .env_remove("OBS_CA_HASH")
        .env_remove("OBS_CA_FILE")
        .output()
        .expect("obsctl");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--ca-hash") && stderr.contains("--ca-file"),
        "{stderr}"
    );
}

//! `cloud-hub demo` end to end with the real binaries: six simulated days
//! in a minute on free ports; the printed fleet-health table is compared
//! number by number with what the hub answers afterwards (restarted on the
//! demo's data), the calima site needs maintenance soonest, the scripted
//! cleaning is in a lifecycle as site-reported maintenance, and no child
//! process is left behind — after the end, after Ctrl-C, and when the demo
//! runs from code with a cancellation token.
//!
//! `fog-node` is taken from the target directory of `cloud-hub`
//! (`cargo build --bins` or `cargo test --workspace` builds it).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cloud_hub::demo::sites::Scripted;
use cloud_hub::demo::{Binaries, DemoOptions, Outcome, PortRequest, TELESCOPES};
use obs_proto::v1::fleet_health_service_client::FleetHealthServiceClient;
use obs_proto::v1::manufacturing_service_client::ManufacturingServiceClient;
use obs_proto::v1::telemetry_service_client::TelemetryServiceClient;
use obs_proto::v1::{
    GetFleetHealthRequest, GetFleetHealthResponse, GetIngestStatsRequest,
    GetSegmentLifecycleRequest, MaintenanceKind, Risk,
};
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

/// One demo at a time: each runs a hub and three fog-nodes.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn cloud_hub() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_cloud-hub"))
}

fn binaries() -> Binaries {
    let binaries = Binaries::beside(&cloud_hub());
    assert!(
        binaries.fog_node.exists(),
        "{} is missing: build it with `cargo build --bins` (cargo test --workspace does)",
        binaries.fog_node.display()
    );
    binaries
}

/// A `cloud-hub demo` child whose stdout lines are collected; killed on drop.
struct DemoProcess {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    reader: Option<std::thread::JoinHandle<()>>,
    stderr: PathBuf,
}

impl DemoProcess {
    fn start(data_dir: &Path, args: &[&str]) -> DemoProcess {
        binaries();
        let stderr = data_dir.with_extension("stderr");
        let mut child = Command::new(cloud_hub())
            .arg("demo")
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--grpc-port", "0", "--http-port", "0", "--mqtt-port", "0"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).expect("stderr file"))
            .spawn()
            .expect("spawn cloud-hub demo");
        let stdout = child.stdout.take().expect("stdout");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                sink.lock().expect("lines").push(line);
            }
        });
        DemoProcess {
            child,
            lines,
            reader: Some(reader),
            stderr,
        }
    }

    fn output(&self) -> Vec<String> {
        self.lines.lock().expect("lines").clone()
    }

    fn describe(&self) -> String {
        format!(
            "stdout:\n{}\nstderr:\n{}",
            self.output().join("\n"),
            std::fs::read_to_string(&self.stderr).unwrap_or_default()
        )
    }

    /// Waits until a stdout line contains `needle`.
    fn wait_for_line(&mut self, needle: &str, within: Duration) {
        let deadline = Instant::now() + within;
        while !self.output().iter().any(|l| l.contains(needle)) {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "the demo exited ({status}) before {needle:?}\n{}",
                    self.describe()
                );
            }
            assert!(
                Instant::now() < deadline,
                "no {needle:?} within {within:?}\n{}",
                self.describe()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Waits for the exit; all of stdout has been read then.
    fn wait(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                if let Some(reader) = self.reader.take() {
                    let _ = reader.join();
                }
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the demo did not end within {within:?}\n{}",
                self.describe()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for DemoProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn demo_json(data_dir: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(data_dir.join("demo.json")).expect("demo.json");
    serde_json::from_str(&text).expect("demo.json is json")
}

fn pids(info: &serde_json::Value) -> Vec<u64> {
    let mut pids = vec![info["hub_pid"].as_u64().expect("hub pid")];
    pids.extend(
        info["sites"]
            .as_array()
            .expect("sites")
            .iter()
            .map(|s| s["node_pid"].as_u64().expect("node pid")),
    );
    pids
}

/// Fails if a process with `pid` still runs a demo binary.
fn assert_gone(pids: &[u64]) {
    for pid in pids {
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        assert!(
            !(cmdline.contains("fog-node") || cmdline.contains("cloud-hub")),
            "process {pid} is left behind: {cmdline}"
        );
    }
}

fn send_signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// `cloud-hub serve` on a finished demo's data, on a fresh gRPC port.
struct Hub {
    child: Child,
    grpc_port: u16,
}

impl Hub {
    fn start(data_dir: &Path) -> Hub {
        let grpc_port = free_port();
        let log = std::fs::File::create(data_dir.join("hub-again.log")).expect("log");
        let child = Command::new(cloud_hub())
            .args(["serve", "--config"])
            .arg(data_dir.join("hub.toml"))
            .env("OBS_HUB__GRPC__LISTEN", format!("127.0.0.1:{grpc_port}"))
            .env(
                "OBS_HUB__HTTP__LISTEN",
                format!("127.0.0.1:{}", free_port()),
            )
            .env(
                "OBS_HUB__MQTT__LISTEN",
                format!("127.0.0.1:{}", free_port()),
            )
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn cloud-hub serve");
        Hub { child, grpc_port }
    }

    async fn channel(&self, ca_file: &Path) -> Channel {
        let ca = std::fs::read_to_string(ca_file).expect("ca");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let config = obs_common::grpc::ca_config(&ca, None).expect("tls");
            match obs_common::grpc::connect(&format!("127.0.0.1:{}", self.grpc_port), config).await
            {
                Ok(channel) => return channel,
                Err(error) => assert!(Instant::now() < deadline, "hub again: {error}"),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn authed<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("header"),
    );
    request
}

/// One telescope of a printed table: its header line split in words and
/// its urgent segments as (position·tail, risk, R650, days).
#[derive(Debug)]
struct PrintedSite {
    words: Vec<String>,
    urgent: Vec<[String; 4]>,
}

/// The telescopes of the table titled `title` (the last one).
fn printed_table(lines: &[String], title: &str) -> Vec<PrintedSite> {
    let start = lines
        .iter()
        .rposition(|l| l.starts_with(&format!("── {title} ·")))
        .unwrap_or_else(|| panic!("no {title:?} table in\n{}", lines.join("\n")));
    lines[start + 1..]
        .chunks(2)
        .take(TELESCOPES.len())
        .map(|pair| {
            let words = pair[0].split_whitespace().map(str::to_owned).collect();
            let urgent = pair[1]
                .split_whitespace()
                .collect::<Vec<_>>()
                .chunks(4)
                .map(|c| [0, 1, 2, 3].map(|i| c.get(i).copied().unwrap_or("").to_owned()))
                .collect();
            PrintedSite { words, urgent }
        })
        .collect()
}

fn risk_letter(risk: i32) -> &'static str {
    match Risk::try_from(risk) {
        Ok(Risk::Ok) => "O",
        Ok(Risk::Watch) => "W",
        Ok(Risk::CleanSoon) => "C",
        Ok(Risk::Recoat) => "R",
        _ => "-",
    }
}

fn site_of(scripted: fn(&Scripted) -> bool) -> &'static str {
    TELESCOPES
        .iter()
        .find(|t| t.scripted.as_ref().is_some_and(scripted))
        .map(|t| t.site)
        .expect("a scripted site")
}

#[tokio::test(flavor = "multi_thread")]
async fn the_demo_runs_three_telescopes_and_prints_only_the_hubs_numbers() {
    let _one = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().join("demo");
    let started = Instant::now();
    let mut demo = DemoProcess::start(&data_dir, &["--days", "6", "--minutes", "1"]);
    let status = demo.wait(Duration::from_secs(180));
    let lines = demo.output();
    eprintln!(
        "demo took {:.0} s:\n{}",
        started.elapsed().as_secs_f64(),
        lines.join("\n")
    );
    assert!(status.success(), "{status}\n{}", demo.describe());
    let info = demo_json(&data_dir);
    assert_gone(&pids(&info));
    let text = lines.join("\n");
    for needle in [
        "demo finished: every telescope reached its simulated days",
        &format!(
            "data      {}",
            data_dir.canonicalize().expect("dir").display()
        ),
        "hub log   ",
        "obsctl fleet health",
        "OBS_CA_HASH=sha256:",
        "dashboard http://127.0.0.1:",
    ] {
        assert!(text.contains(needle), "{needle:?} missing");
    }
    let tables = lines
        .iter()
        .filter(|l| l.starts_with("── fleet health ·"))
        .count();
    assert!(tables >= 5, "a table every 5 s: {tables}");

    // The hub again, on the demo's data: the final table's numbers are its.
    let hub = Hub::start(&data_dir);
    let channel = hub
        .channel(Path::new(info["ca_file"].as_str().expect("ca file")))
        .await;
    let viewer = info["tokens"]["viewer"].as_str().expect("viewer token");
    let fleet: GetFleetHealthResponse = FleetHealthServiceClient::new(channel.clone())
        .get_fleet_health(authed(GetFleetHealthRequest::default(), viewer))
        .await
        .expect("GetFleetHealth")
        .into_inner();
    let ingest = TelemetryServiceClient::new(channel.clone())
        .get_ingest_stats(authed(GetIngestStatsRequest::default(), viewer))
        .await
        .expect("GetIngestStats")
        .into_inner();
    let printed = printed_table(&lines, "final fleet health");
    assert_eq!(fleet.sites.len(), 3, "three telescopes");
    assert_eq!(printed.len(), 3);
    let end = info["sim_end_unix_s"].as_i64().expect("end");
    let mut mean_days = Vec::new();
    for (site, shown) in fleet.sites.iter().zip(&printed) {
        assert_eq!(site.segments.len(), 18, "{}: every segment", site.site);
        assert!(
            site.segments.iter().all(|s| s.prediction.is_some()),
            "{}: every segment predicted",
            site.site
        );
        let as_of = site.as_of.as_ref().expect("as of").seconds;
        assert!(
            (end - 120..=end).contains(&as_of),
            "{}: ends at day 6",
            site.site
        );
        let at = time::OffsetDateTime::from_unix_timestamp(as_of).expect("time");
        let samples = ingest
            .sites
            .iter()
            .find(|s| s.site == site.site)
            .expect("ingest stats")
            .samples_stored;
        let expected_words = [
            site.site.clone(),
            format!(
                "{:04}-{:02}-{:02}",
                at.year(),
                u8::from(at.month()),
                at.day()
            ),
            format!("{:02}:{:02}Z", at.hour(), at.minute()),
            "day".into(),
            "6.0/6".into(),
            "offline".into(),
            samples
                .to_string()
                .as_bytes()
                .rchunks(3)
                .rev()
                .map(|c| String::from_utf8_lossy(c).into_owned())
                .collect::<Vec<_>>()
                .join(","),
            "samples".into(),
            "backlog".into(),
            "0".into(),
            "18".into(),
            "predicted".into(),
        ];
        assert_eq!(shown.words, expected_words, "{}", site.site);
        assert_eq!(shown.urgent.len(), 5, "{}: five most urgent", site.site);
        for (segment, entry) in site.segments.iter().zip(&shown.urgent) {
            let p = segment.prediction.as_ref().expect("prediction");
            let expected = [
                format!(
                    "{:02}·{}",
                    segment.position,
                    &segment.serial[segment.serial.len() - 4..]
                ),
                risk_letter(segment.risk).to_owned(),
                format!("{:.1}", p.reflectivity_650_pct),
                format!("{:.0}d", p.days_to_threshold),
            ];
            assert_eq!(entry, &expected, "{}", site.site);
        }
        let days: f64 = site
            .segments
            .iter()
            .filter_map(|s| s.prediction.as_ref())
            .map(|p| p.days_to_threshold)
            .sum::<f64>()
            / 18.0;
        mean_days.push((site.site.clone(), days));
    }
    eprintln!("mean days to threshold: {mean_days:?}");
    let calima = site_of(|s| matches!(s, Scripted::Calima { .. }));
    let calima_days = mean_days
        .iter()
        .find(|(s, _)| s == calima)
        .map(|(_, d)| *d)
        .expect("calima site");
    for (site, days) in &mean_days {
        if site != calima {
            assert!(
                calima_days < *days,
                "{calima} (calima) needs maintenance sooner than {site}: {mean_days:?}"
            );
        }
    }

    // The scripted cleaning reached the hub as the site's own report.
    let cleaned = site_of(|s| matches!(s, Scripted::Cleaning { .. }));
    let serial = info["sites"]
        .as_array()
        .expect("sites")
        .iter()
        .find(|s| s["site"] == cleaned)
        .and_then(|s| s["segments"][0][1].as_str())
        .expect("a segment of the cleaned site")
        .to_owned();
    let lifecycle = ManufacturingServiceClient::new(channel)
        .get_segment_lifecycle(authed(
            GetSegmentLifecycleRequest {
                serial: serial.clone(),
            },
            viewer,
        ))
        .await
        .expect("lifecycle")
        .into_inner();
    let by_site: Vec<_> = lifecycle
        .maintenance
        .iter()
        .filter(|m| m.source == format!("site:{cleaned}"))
        .collect();
    assert!(
        by_site
            .iter()
            .any(|m| m.kind == MaintenanceKind::Cleaning as i32 && m.site == cleaned),
        "{serial}: {:?}",
        lifecycle.maintenance
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_stops_the_demo_cleanly() {
    let _one = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().join("demo");
    let mut demo = DemoProcess::start(&data_dir, &["--days", "30", "--minutes", "4"]);
    demo.wait_for_line("── fleet health ·", Duration::from_secs(60));
    let info = demo_json(&data_dir);
    let pids = pids(&info);
    send_signal(demo.child.id(), "-INT");
    let status = demo.wait(Duration::from_secs(60));
    assert!(status.success(), "{status}\n{}", demo.describe());
    let text = demo.output().join("\n");
    assert!(text.contains("── fleet health when stopped ·"), "{text}");
    assert!(text.contains("demo stopped"), "{text}");
    assert_gone(&pids);
    // The fog-nodes were stopped with SIGTERM and said so.
    for site in info["sites"].as_array().expect("sites") {
        let log = std::fs::read_to_string(site["node_log"].as_str().expect("log")).expect("log");
        assert!(log.contains("node stopped"), "{log}");
    }
}

/// The status and headers of a GET of `url` (`http://127.0.0.1:PORT/...`).
async fn http_head(url: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url.strip_prefix("http://").expect("http url");
    let (authority, path) = rest.split_at(rest.find('/').expect("a path"));
    let mut stream = tokio::net::TcpStream::connect(authority)
        .await
        .expect("http port");
    let request = format!("GET {path} HTTP/1.0\r\nHost: {authority}\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("read");
    let head = response
        .split("\r\n\r\n")
        .next()
        .unwrap_or_default()
        .to_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    (status, head)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_demo_runs_from_code_until_its_token_is_cancelled() {
    let _one = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let options = DemoOptions {
        data_dir: Some(dir.path().join("demo")),
        keep_running: true,
        ports: PortRequest {
            grpc: Some(0),
            http: Some(0),
            mqtt: Some(0),
        },
        print: false,
        ..DemoOptions::new(binaries())
    };
    let shutdown = CancellationToken::new();
    let demo = cloud_hub::demo::Demo::start(options, &shutdown)
        .await
        .expect("demo starts");
    let info = demo.info().clone();
    assert_eq!(info.sites.len(), 3);
    let (status, head) = http_head(&info.dashboard_url()).await;
    assert_eq!(status, 303, "the printed dashboard address logs in: {head}");
    assert!(head.contains("obs_dashboard_token="), "{head}");
    assert!(info.ca_hash.starts_with("sha256:"));
    let running = tokio::spawn(demo.run(shutdown.clone()));
    tokio::time::sleep(Duration::from_secs(8)).await;
    shutdown.cancel();
    let report = tokio::time::timeout(Duration::from_secs(60), running)
        .await
        .expect("ends after cancel")
        .expect("join")
        .expect("demo report");
    assert_eq!(report.outcome, Outcome::Interrupted);
    let last = report.last.expect("a last snapshot");
    assert_eq!(last.fleet.sites.len(), 3);
    assert!(
        last.ingest.sites.iter().all(|s| s.samples_stored > 0),
        "{:?}",
        last.ingest
    );
    assert_gone(&info.pids().into_iter().map(u64::from).collect::<Vec<_>>());
}

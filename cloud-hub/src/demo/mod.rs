//! `cloud-hub demo`: the whole system on one machine, with the real
//! binaries and the real flows.
//!
//! ```text
//! demo ──spawn──► cloud-hub serve (embedded: rumqttd + SQLite, loopback)   {data_dir}/hub.log
//!   │ cloud-hub admin token (admin, optics, viewer)
//!   │ CreateJoinToken ×3 ──► `fog-node enroll ...` line, run as is ──► {data_dir}/nodes/{site}/
//!   │ UploadSegmentRecords (samples) · RecordInstallation ×54
//!   ├─spawn──► fog-node run ×3 (simulated devices, accelerated clock,
//!   │          a calima at one site, a cleaning at another) ──mTLS MQTT──► hub
//!   └─every second GetIngestStats (progress, end), every --refresh-s
//!     GetFleetHealth(refresh) ──► table on stdout
//! end (simulated days reached, or Ctrl-C / the caller's token):
//!   SIGTERM to the fog-nodes (they flush), final table, SIGTERM to the hub
//! ```
//!
//! Run it from code with [`Demo::start`] (returns once everything is up,
//! with the ports, tokens and paths in [`DemoInfo`]) and [`Demo::run`], or
//! [`run`] for both. Child processes run in their own process group (a
//! terminal's Ctrl-C reaches only the demo, which stops them in order) and
//! are killed when the [`Demo`] is dropped.

pub mod process;
pub mod setup;
pub mod sites;
pub mod table;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use obs_proto::v1::fleet_health_service_client::FleetHealthServiceClient;
use obs_proto::v1::telemetry_service_client::TelemetryServiceClient;
use obs_proto::v1::{GetFleetHealthRequest, GetIngestStatsRequest, GetIngestStatsResponse};
use serde::Serialize;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

use self::process::ChildProcess;
pub use self::process::{Binaries, PortRequest, Ports};
use self::setup::authed;
pub use self::sites::{Clock, TELESCOPES, Telescope};
use self::table::Console;
pub use self::table::Snapshot;

/// Simulated start of every demo run: the same each run, a month after the
/// last sample segment passed acceptance (2024-07-31).
pub const SIM_START_UNIX_S: i64 = 1_725_148_800; // 2024-09-01T00:00:00Z
/// When the segments were installed: the day before the simulation starts.
pub const INSTALLED_UNIX_S: i64 = SIM_START_UNIX_S - 86_400;
/// When they were cleaned after the installation.
pub const CLEANED_UNIX_S: i64 = INSTALLED_UNIX_S + 6 * 3600;
/// How long a child gets to exit after SIGTERM.
const STOP_GRACE: Duration = Duration::from_secs(15);
/// How often the hub's ingest counters are read.
const POLL: Duration = Duration::from_secs(1);
/// A site has reached the end once its last sample is this close to it
/// (the weather station samples every 120 s of simulated time).
const END_SLACK_S: i64 = 120;
/// No new sample for this long means the pipeline is stuck.
const STALL: Duration = Duration::from_secs(90);

/// What to run.
#[derive(Debug, Clone, PartialEq)]
pub struct DemoOptions {
    /// Where everything goes; a new directory under the system's temporary
    /// directory when `None`. Must be new or empty.
    pub data_dir: Option<PathBuf>,
    /// Simulated days.
    pub days: f64,
    /// Wall-clock minutes to simulate them in.
    pub minutes: f64,
    /// Time between two fleet-health tables.
    pub refresh: Duration,
    /// Keep everything running after the simulated days, until shutdown.
    pub keep_running: bool,
    pub ports: PortRequest,
    pub binaries: Binaries,
    /// Segment records to upload; the shipped samples when `None`.
    pub records: Option<PathBuf>,
    /// Children log JSON lines (`--log-json`).
    pub log_json: bool,
    /// Print the tables and progress bars (off for a demo run from code).
    pub print: bool,
}

impl DemoOptions {
    /// The defaults of `cloud-hub demo` with `binaries`: 30 simulated days
    /// in 4 minutes, a table every 5 s, the hub's default ports when free.
    pub fn new(binaries: Binaries) -> DemoOptions {
        DemoOptions {
            data_dir: None,
            days: 30.0,
            minutes: 4.0,
            refresh: Duration::from_secs(5),
            keep_running: false,
            ports: PortRequest::default(),
            binaries,
            records: None,
            log_json: false,
            print: true,
        }
    }

    fn validate(&self) -> anyhow::Result<Clock> {
        if !(self.days.is_finite() && self.days > 0.0 && self.days <= 3650.0) {
            bail!("--days must be in (0, 3650], got {}", self.days);
        }
        if !(self.minutes.is_finite() && self.minutes > 0.0) {
            bail!("--minutes must be positive, got {}", self.minutes);
        }
        if self.refresh.is_zero() {
            bail!("--refresh-s must be at least 1");
        }
        let clock = Clock::new(SIM_START_UNIX_S, self.days, self.minutes);
        if clock.time_scale > 1e7 {
            bail!(
                "{} simulated days in {} minutes is {:.0}× real time; the fog-node allows 1e7",
                self.days,
                self.minutes,
                clock.time_scale
            );
        }
        Ok(clock)
    }
}

/// The API tokens the demo minted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DemoTokens {
    pub admin: String,
    pub optics: String,
    pub viewer: String,
}

/// One demo telescope as running.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DemoSite {
    pub site: String,
    pub name: String,
    /// Installed segments: (position, serial).
    pub segments: Vec<(u32, String)>,
    pub state_dir: PathBuf,
    pub node_config: PathBuf,
    pub node_log: PathBuf,
    pub node_pid: u32,
}

/// Where a running demo is: ports, tokens, paths, process ids. Also
/// written to `{data_dir}/demo.json` (mode 0600).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DemoInfo {
    pub data_dir: PathBuf,
    pub hub_config: PathBuf,
    pub hub_log: PathBuf,
    pub hub_pid: u32,
    pub ports: PortsInfo,
    /// `sha256:<hex>` of the hub CA.
    pub ca_hash: String,
    pub ca_file: PathBuf,
    pub tokens: DemoTokens,
    pub sites: Vec<DemoSite>,
    /// Simulated start and end, Unix seconds.
    pub sim_start_unix_s: i64,
    pub sim_end_unix_s: i64,
    pub time_scale: f64,
}

/// The hub's ports (serialisable).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PortsInfo {
    pub grpc: u16,
    pub http: u16,
    pub mqtt: u16,
}

impl DemoInfo {
    /// `127.0.0.1:{grpc}`.
    pub fn grpc_endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.ports.grpc)
    }

    /// The dashboard page with the viewer token, which the hub moves into a
    /// cookie on the first visit.
    pub fn dashboard_url(&self) -> String {
        format!(
            "http://127.0.0.1:{}/?token={}",
            self.ports.http, self.tokens.viewer
        )
    }

    /// The `obsctl` line that shows the fleet again (viewer token).
    pub fn obsctl_line(&self) -> String {
        format!(
            "OBS_HUB={} OBS_TOKEN={} OBS_CA_HASH={} obsctl fleet health",
            self.grpc_endpoint(),
            self.tokens.viewer,
            self.ca_hash
        )
    }

    /// Process ids of the hub and the fog-nodes.
    pub fn pids(&self) -> Vec<u32> {
        std::iter::once(self.hub_pid)
            .chain(self.sites.iter().map(|s| s.node_pid))
            .collect()
    }
}

/// How a demo ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Every telescope reached the simulated days.
    DaysReached,
    /// Stopped by Ctrl-C / the caller's token.
    Interrupted,
}

/// What a finished demo leaves.
#[derive(Debug, Clone)]
pub struct DemoReport {
    pub info: DemoInfo,
    pub outcome: Outcome,
    /// The hub's last answers, read after the fog-nodes stopped.
    pub last: Option<Snapshot>,
    /// Wall time from the fog-nodes' start to the end.
    pub wall: Duration,
}

/// A running demo: the hub and the fog-nodes are up.
pub struct Demo {
    info: DemoInfo,
    options: DemoOptions,
    clock: Clock,
    hub: ChildProcess,
    nodes: Vec<ChildProcess>,
    channel: Channel,
    console: Console,
    started: Instant,
}

/// The demo's data directory: as given (new or empty), or a new one.
fn prepare_data_dir(given: Option<&Path>) -> anyhow::Result<PathBuf> {
    let dir = match given {
        Some(dir) => {
            if dir.exists() {
                let mut entries = std::fs::read_dir(dir)
                    .with_context(|| format!("reading the data directory {}", dir.display()))?;
                if entries.next().is_some() {
                    bail!(
                        "the data directory {} is not empty: give a new or empty one \
                         (to look at a finished demo again: cloud-hub serve --config {}/hub.toml)",
                        dir.display(),
                        dir.display()
                    );
                }
            }
            dir.to_path_buf()
        }
        None => {
            let stamp = time::OffsetDateTime::now_utc();
            std::env::temp_dir().join(format!(
                "obs-demo-{:04}{:02}{:02}-{:02}{:02}{:02}-{}",
                stamp.year(),
                u8::from(stamp.month()),
                stamp.day(),
                stamp.hour(),
                stamp.minute(),
                stamp.second(),
                std::process::id()
            ))
        }
    };
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("creating the data directory {}", dir.display()))?;
    let dir = dir
        .canonicalize()
        .with_context(|| format!("resolving {}", dir.display()))?;
    Ok(dir)
}

fn interrupted(shutdown: &CancellationToken) -> anyhow::Result<()> {
    if shutdown.is_cancelled() {
        bail!("interrupted during set-up");
    }
    Ok(())
}

fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    file.write_all(text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

impl Demo {
    /// Starts the hub, mints tokens, enrols three telescopes, uploads and
    /// installs their segments and starts their fog-nodes. Returns when all
    /// of it runs; `shutdown` aborts the set-up.
    pub async fn start(options: DemoOptions, shutdown: &CancellationToken) -> anyhow::Result<Demo> {
        let clock = options.validate()?;
        options.binaries.check()?;
        let console = Console::new(options.print);
        let data_dir = prepare_data_dir(options.data_dir.as_deref())?;
        let hub_dir = data_dir.join("hub");
        let hub_config = data_dir.join("hub.toml");
        let hub_log = data_dir.join("hub.log");
        let ca_file = hub_dir.join("pki").join("ca.pem");

        let (ports, notes) = process::pick_ports(options.ports)?;
        for note in notes {
            console.print(&format!("note: {note}"));
        }
        setup::write_hub_config(&hub_config, &setup::hub_config(&hub_dir, ports))?;
        let mut command = Command::new(&options.binaries.cloud_hub);
        if options.log_json {
            command.arg("--log-json");
        }
        command.args(["serve", "--config"]).arg(&hub_config).env(
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
        );
        let mut hub = ChildProcess::spawn("the hub (cloud-hub serve)", &mut command, &hub_log)?;
        console.print(&format!(
            "hub: pid {} · gRPC 127.0.0.1:{} · HTTP 127.0.0.1:{} · MQTT 127.0.0.1:{} · embedded (rumqttd + SQLite) · log {}",
            hub.pid(),
            ports.grpc,
            ports.http,
            ports.mqtt,
            hub_log.display()
        ));
        let (channel, ca_hash) = setup::wait_for_hub(&mut hub, ports.grpc, &ca_file).await?;
        interrupted(shutdown)?;

        let binaries = &options.binaries;
        let tokens = DemoTokens {
            admin: setup::mint_token(binaries, &hub_config, "admin", "demo-operator").await?,
            optics: setup::mint_token(binaries, &hub_config, "optics", "demo-optics").await?,
            viewer: setup::mint_token(binaries, &hub_config, "viewer", "demo-viewer").await?,
        };
        console.print("tokens: admin, optics and viewer minted with `cloud-hub admin token`");
        interrupted(shutdown)?;

        let mut sites = Vec::new();
        for telescope in &TELESCOPES {
            let node_dir = data_dir.join("nodes").join(telescope.site);
            std::fs::create_dir_all(&node_dir)
                .with_context(|| format!("creating {}", node_dir.display()))?;
            let state_dir = node_dir.join("state");
            let node_log = node_dir.join("node.log");
            let line = setup::join_command(&channel, &tokens.admin, telescope).await?;
            setup::enroll(binaries, &line, &state_dir, &node_log).await?;
            console.print(&format!(
                "enrolled {:<10} {} ({}) with `fog-node enroll --hub {} --token … --ca-hash {}`",
                telescope.site,
                telescope.name,
                telescope.coordinates(),
                setup::hub_of(&line).unwrap_or_default(),
                ca_hash
            ));
            sites.push(DemoSite {
                site: telescope.site.into(),
                name: telescope.name.into(),
                segments: Vec::new(),
                node_config: node_dir.join("node.toml"),
                state_dir,
                node_log,
                node_pid: 0,
            });
            interrupted(shutdown)?;
        }

        let records_path = options
            .records
            .clone()
            .unwrap_or_else(setup::sample_records);
        let records = setup::read_records(&records_path)?;
        let source = records_path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let uploaded = setup::upload(&channel, &tokens.optics, &source, &records).await?;
        let assigned = setup::assign_segments(&records, sites.len())?;
        for (site, segments) in sites.iter_mut().zip(assigned) {
            setup::install(
                &channel,
                &tokens.optics,
                &site.site,
                &segments,
                INSTALLED_UNIX_S,
            )
            .await?;
            setup::clean_at_installation(&channel, &tokens.optics, &segments, CLEANED_UNIX_S)
                .await?;
            site.segments = segments;
        }
        console.print(&format!(
            "segments: {} records of {} uploaded (stored {}, unchanged {}); {} installed at each \
             telescope on {} and cleaned on {}",
            uploaded.received,
            records_path.display(),
            uploaded.stored,
            uploaded.unchanged,
            sites::SEGMENTS,
            table::short_time(INSTALLED_UNIX_S),
            table::short_time(CLEANED_UNIX_S)
        ));
        interrupted(shutdown)?;

        let mut nodes = Vec::new();
        for (site, telescope) in sites.iter_mut().zip(&TELESCOPES) {
            let config = telescope.node_config(&site.state_dir, &clock, !options.keep_running);
            std::fs::write(&site.node_config, config)
                .with_context(|| format!("writing {}", site.node_config.display()))?;
            let mut command = Command::new(&binaries.fog_node);
            if options.log_json {
                command.arg("--log-json");
            }
            command
                .args(["run", "--config"])
                .arg(&site.node_config)
                .env(
                    "RUST_LOG",
                    std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
                );
            let node = ChildProcess::spawn(
                &format!("the fog-node of {}", site.site),
                &mut command,
                &site.node_log,
            )?;
            site.node_pid = node.pid();
            let scripted = telescope
                .scripted
                .map(|s| format!(" · {}", s.describe(clock.days)))
                .unwrap_or_default();
            console.print(&format!(
                "fog-node {:<10} pid {} · climate {} · seed {}{scripted} · log {}",
                site.site,
                node.pid(),
                telescope.climate,
                telescope.seed,
                site.node_log.display()
            ));
            nodes.push(node);
        }
        let started = Instant::now();

        let info = DemoInfo {
            data_dir: data_dir.clone(),
            hub_config,
            hub_log,
            hub_pid: hub.pid(),
            ports: PortsInfo {
                grpc: ports.grpc,
                http: ports.http,
                mqtt: ports.mqtt,
            },
            ca_hash,
            ca_file,
            tokens,
            sites,
            sim_start_unix_s: clock.start_unix_s,
            sim_end_unix_s: clock.end_unix_s(),
            time_scale: clock.time_scale,
        };
        let json = serde_json::to_string_pretty(&info).context("describing the demo")?;
        write_private(&data_dir.join("demo.json"), &json)?;
        console.print(&format!(
            "simulating {} days from {} at {:.0}× real time ({} s per step) in about {} min; \
             dashboard {} · query with\n  {}\n{}",
            table::days_text(clock.days),
            table::short_time(clock.start_unix_s),
            clock.time_scale,
            clock.tick_ms as f64 / 1000.0,
            table::days_text(options.minutes),
            info.dashboard_url(),
            info.obsctl_line(),
            table::LEGEND
        ));
        Ok(Demo {
            info,
            options,
            clock,
            hub,
            nodes,
            channel,
            console,
            started,
        })
    }

    /// Where the demo is.
    pub fn info(&self) -> &DemoInfo {
        &self.info
    }

    /// Shows the fleet until the simulated days are reached (or, with
    /// `keep_running`, until `shutdown`), then stops the fog-nodes, prints
    /// the final table and stops the hub.
    pub async fn run(mut self, shutdown: CancellationToken) -> anyhow::Result<DemoReport> {
        let sites: Vec<&str> = TELESCOPES.iter().map(|t| t.site).collect();
        self.console.start_progress(&sites, &self.clock);
        let watched = self.watch(&shutdown).await;
        let stopped = self.stop_nodes().await;
        let last = match (&watched, &stopped) {
            (Ok(_), Ok(())) => Some(self.snapshot().await),
            _ => None,
        };
        self.console.finish_progress();
        let last = match last {
            Some(Ok(snapshot)) => {
                let title = match watched {
                    Ok(Outcome::DaysReached) => "final fleet health",
                    _ => "fleet health when stopped",
                };
                self.console
                    .print(&table::render(&snapshot, &self.clock, title));
                Some(snapshot)
            }
            Some(Err(error)) => {
                self.console
                    .print(&format!("cannot read the final fleet health: {error:#}"));
                None
            }
            None => None,
        };
        let hub_stopped = self.hub.stop(STOP_GRACE).await;
        let outcome = watched?;
        stopped?;
        let status = hub_stopped?;
        if !status.success() {
            bail!(
                "the hub exited with {status}; see {}",
                self.info.hub_log.display()
            );
        }
        let info = &self.info;
        self.console.print(&format!(
            "{}\ndata      {}\nhub log   {}\nnode logs {}\ndashboard {} (while a hub runs on this data)\n\
             look again: cloud-hub serve --config {}\n            {}",
            match outcome {
                Outcome::DaysReached => "demo finished: every telescope reached its simulated days",
                Outcome::Interrupted => "demo stopped",
            },
            info.data_dir.display(),
            info.hub_log.display(),
            info.data_dir.join("nodes/*/node.log").display(),
            info.dashboard_url(),
            info.hub_config.display(),
            info.obsctl_line()
        ));
        Ok(DemoReport {
            info: self.info.clone(),
            outcome,
            last,
            wall: self.started.elapsed(),
        })
    }

    /// The loop while the simulation runs.
    async fn watch(&mut self, shutdown: &CancellationToken) -> anyhow::Result<Outcome> {
        let mut ticker = tokio::time::interval(POLL);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut next_table = Instant::now() + self.options.refresh;
        let mut progress = (0u64, Instant::now());
        let mut announced = false;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(Outcome::Interrupted),
                _ = ticker.tick() => {}
            }
            self.hub.check_running()?;
            for node in &mut self.nodes {
                node.check_running()?;
            }
            let ingest = self.ingest_stats().await?;
            self.console.update_progress(&ingest, &self.clock);
            let stored: u64 = ingest.sites.iter().map(|s| s.samples_stored).sum();
            if stored > progress.0 {
                progress = (stored, Instant::now());
            } else if progress.1.elapsed() > STALL {
                bail!(
                    "no new sample reached the hub for {STALL:?}; see {} and {}",
                    self.info.hub_log.display(),
                    self.info.data_dir.join("nodes/*/node.log").display()
                );
            }
            let reached = self.info.sites.iter().all(|site| {
                ingest.sites.iter().any(|s| {
                    s.site == site.site
                        && s.last_sample_at
                            .as_ref()
                            .is_some_and(|t| t.seconds >= self.clock.end_unix_s() - END_SLACK_S)
                })
            });
            if reached && !self.options.keep_running {
                return Ok(Outcome::DaysReached);
            }
            if Instant::now() >= next_table {
                next_table = Instant::now() + self.options.refresh;
                let snapshot = self.snapshot().await?;
                self.console
                    .print(&table::render(&snapshot, &self.clock, "fleet health"));
            }
            if reached && !announced {
                announced = true;
                self.console.print(&format!(
                    "every telescope reached {} simulated days; still running (--keep-running), Ctrl-C stops",
                    table::days_text(self.clock.days)
                ));
            }
        }
    }

    /// SIGTERM to every fog-node at once; each flushes its spool and waits
    /// for the hub's acks before it exits.
    async fn stop_nodes(&mut self) -> anyhow::Result<()> {
        let stops = self.nodes.iter_mut().map(|node| async {
            let status = node.stop(STOP_GRACE).await?;
            if !status.success() {
                bail!(
                    "{} exited with {status}; see {}",
                    node.name(),
                    node.log().display()
                );
            }
            Ok(())
        });
        for result in futures::future::join_all(stops).await {
            result?;
        }
        Ok(())
    }

    async fn ingest_stats(&self) -> anyhow::Result<GetIngestStatsResponse> {
        let request = GetIngestStatsRequest::default();
        Ok(TelemetryServiceClient::new(self.channel.clone())
            .get_ingest_stats(authed(request, &self.info.tokens.viewer)?)
            .await
            .context("GetIngestStats")?
            .into_inner())
    }

    /// The hub's fleet health (the model run first) and ingest counters.
    async fn snapshot(&self) -> anyhow::Result<Snapshot> {
        let request = GetFleetHealthRequest {
            refresh: true,
            ..Default::default()
        };
        let fleet = FleetHealthServiceClient::new(self.channel.clone())
            .get_fleet_health(authed(request, &self.info.tokens.viewer)?)
            .await
            .context("GetFleetHealth")?
            .into_inner();
        let ingest = self.ingest_stats().await?;
        Ok(Snapshot {
            elapsed: self.started.elapsed(),
            fleet,
            ingest,
        })
    }
}

/// Starts the demo and runs it to its end (see [`Demo`]).
pub async fn run(options: DemoOptions, shutdown: CancellationToken) -> anyhow::Result<DemoReport> {
    let demo = Demo::start(options, &shutdown).await?;
    demo.run(shutdown).await
}

/// A token cancelled on Ctrl-C, SIGTERM or SIGHUP (a closed terminal): the
/// demo's children are in their own process group and get no signal from
/// the terminal, so the demo must always get to stop them.
pub fn shutdown_on_signals() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let (term, hangup) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::hangup()),
        );
        match (term, hangup) {
            (Ok(mut term), Ok(mut hangup)) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                    _ = hangup.recv() => {}
                }
            }
            _ => {
                tracing::warn!("cannot listen for SIGTERM or SIGHUP; only Ctrl-C stops the demo");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
        cancel.cancel();
    });
    token
}

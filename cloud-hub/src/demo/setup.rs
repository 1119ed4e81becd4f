//! Setting the demo up the way an operator and an optics centre would:
//! the hub's config, API tokens minted with `cloud-hub admin token`, join
//! tokens through `CreateJoinToken`, the printed `fog-node enroll` line run
//! as is, the sample manufacturing records uploaded through
//! `UploadSegmentRecords` and 18 segments installed at each telescope.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use obs_manufacturing::{ImportOptions, SegmentRecord};
use obs_proto::v1::enrollment_service_client::EnrollmentServiceClient;
use obs_proto::v1::manufacturing_service_client::ManufacturingServiceClient;
use obs_proto::v1::upload_segment_records_request::Item;
use obs_proto::v1::{
    CreateJoinTokenRequest, Location, MaintenanceEvent, MaintenanceKind, RecordInstallationRequest,
    RecordMaintenanceRequest, SegmentRecordRow, UploadOptions, UploadSegmentRecordsRequest,
    UploadSegmentRecordsResponse,
};
use tonic::transport::Channel;

use super::process::{Binaries, ChildProcess, Ports, run_captured, run_logged};
use super::sites::{INNER_RING, NODE_ID, SEGMENTS, Telescope};
use crate::config::{GrpcConfig, HttpConfig, HubConfig, MqttConfig};
use crate::store::StoreConfig;
use crate::stream::StreamConfig;

/// Longest wait for the hub's gRPC port after it started.
const HUB_START: Duration = Duration::from_secs(60);

/// The embedded-mode configuration of the demo hub, on loopback only.
pub fn hub_config(hub_dir: &Path, ports: Ports) -> HubConfig {
    let on = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
    HubConfig {
        data_dir: hub_dir.to_path_buf(),
        public_host: "127.0.0.1".into(),
        grpc: GrpcConfig {
            listen: on(ports.grpc),
        },
        http: HttpConfig {
            listen: on(ports.http),
            ..HttpConfig::default()
        },
        mqtt: MqttConfig::Embedded {
            listen: on(ports.mqtt),
        },
        stream: StreamConfig::None,
        store: StoreConfig::Sqlite {
            file: "hub.sqlite".into(),
        },
        ..HubConfig::default()
    }
}

/// Writes `config` as TOML to `path`.
pub fn write_hub_config(path: &Path, config: &HubConfig) -> anyhow::Result<()> {
    let text = toml::to_string(config).context("rendering the demo hub config")?;
    let text = format!(
        "# The demo hub (embedded mode: rumqttd + SQLite, loopback only); written by\n\
         # `cloud-hub demo`. Start it again with `cloud-hub serve --config {}`.\n{text}",
        path.display()
    );
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// Waits until the hub answers on gRPC (its CA exists by then) and
/// returns a channel trusting that CA, with the CA's `sha256:` hash.
pub async fn wait_for_hub(
    hub: &mut ChildProcess,
    grpc_port: u16,
    ca_file: &Path,
) -> anyhow::Result<(Channel, String)> {
    let deadline = Instant::now() + HUB_START;
    let endpoint = format!("127.0.0.1:{grpc_port}");
    loop {
        hub.check_running()?;
        if let Ok(ca_pem) = std::fs::read_to_string(ca_file) {
            let config = obs_common::grpc::ca_config(&ca_pem, None)?;
            match obs_common::grpc::connect(&endpoint, config).await {
                Ok(channel) => {
                    let ca_hash = obs_common::pki::ca_hash(&ca_pem)?;
                    return Ok((channel, ca_hash));
                }
                Err(error) if Instant::now() > deadline => {
                    bail!(
                        "the hub does not answer on {endpoint} after {HUB_START:?}: {error}; see {}",
                        hub.log().display()
                    )
                }
                Err(_) => {}
            }
        } else if Instant::now() > deadline {
            bail!(
                "the hub made no CA at {} within {HUB_START:?}; see {}",
                ca_file.display(),
                hub.log().display()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Mints an API token with `cloud-hub admin token` (as an operator on the
/// hub machine would).
pub async fn mint_token(
    binaries: &Binaries,
    hub_config: &Path,
    role: &str,
    name: &str,
) -> anyhow::Result<String> {
    let mut command = Command::new(&binaries.cloud_hub);
    command
        .args(["admin", "token", "--role", role, "--name", name, "--config"])
        .arg(hub_config);
    let what = format!("cloud-hub admin token --role {role}");
    let out = tokio::task::spawn_blocking(move || run_captured(&what, &mut command)).await??;
    let token = out.trim().to_owned();
    if token.is_empty() {
        bail!("cloud-hub admin token --role {role} printed no token");
    }
    Ok(token)
}

/// Adds a bearer token to a request.
pub fn authed<T>(message: T, token: &str) -> anyhow::Result<tonic::Request<T>> {
    let mut request = tonic::Request::new(message);
    let value = format!("Bearer {token}")
        .parse()
        .context("an API token that is not valid in a header")?;
    request.metadata_mut().insert("authorization", value);
    Ok(request)
}

/// `CreateJoinToken` for `telescope`: the `fog-node enroll ...` line to run.
pub async fn join_command(
    channel: &Channel,
    admin: &str,
    telescope: &Telescope,
) -> anyhow::Result<String> {
    let request = CreateJoinTokenRequest {
        site: telescope.site.into(),
        display_name: telescope.name.into(),
        location: Some(Location {
            latitude_deg: telescope.latitude_deg,
            longitude_deg: telescope.longitude_deg,
            altitude_m: telescope.altitude_m,
        }),
        mirror_segments: SEGMENTS,
        ..Default::default()
    };
    let response = EnrollmentServiceClient::new(channel.clone())
        .create_join_token(authed(request, admin)?)
        .await
        .with_context(|| format!("CreateJoinToken for {}", telescope.site))?
        .into_inner();
    Ok(response.join_command)
}

/// Runs the printed `fog-node enroll` line with the real binary, the
/// node's state in `state_dir`; output appended to `log`.
pub async fn enroll(
    binaries: &Binaries,
    join_command: &str,
    state_dir: &Path,
    log: &Path,
) -> anyhow::Result<()> {
    let mut words = join_command.split_whitespace();
    if words.next() != Some("fog-node") || words.next() != Some("enroll") {
        bail!("the hub's join command is not a `fog-node enroll` line: {join_command:?}");
    }
    let mut command = Command::new(&binaries.fog_node);
    command
        .arg("enroll")
        .args(words)
        .arg("--state-dir")
        .arg(state_dir)
        .args(["--node-id", NODE_ID]);
    let (what, log) = (
        format!("fog-node enroll ({})", state_dir.display()),
        log.to_path_buf(),
    );
    tokio::task::spawn_blocking(move || run_logged(&what, &mut command, &log)).await?
}

/// The `--hub HOST:PORT` of a join line.
pub fn hub_of(join_command: &str) -> Option<&str> {
    let mut words = join_command.split_whitespace();
    words.find(|w| *w == "--hub")?;
    words.next()
}

/// The sample records: `manufacturing/samples/segments.csv` in the working
/// directory or above the executable, else where this crate was built.
pub fn sample_records() -> PathBuf {
    let relative = Path::new("manufacturing/samples/segments.csv");
    let mut starts = Vec::new();
    if let Ok(cwd) = std::env::current_dir() {
        starts.push(cwd);
    }
    if let Ok(exe) = std::env::current_exe() {
        starts.extend(exe.parent().map(Path::to_path_buf));
    }
    starts
        .iter()
        .flat_map(|start| start.ancestors())
        .map(|dir| dir.join(relative))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(obs_manufacturing::sample_csv_path)
}

/// Reads the records of `path`; an unreadable row is an error.
pub fn read_records(path: &Path) -> anyhow::Result<Vec<(u64, SegmentRecord)>> {
    let records = obs_manufacturing::open(path, &ImportOptions::default())
        .with_context(|| format!("opening the segment records {}", path.display()))?;
    records
        .map(|item| item.with_context(|| format!("reading {}", path.display())))
        .collect()
}

/// Uploads `records` through `UploadSegmentRecords` (atomic) with the
/// optics token.
pub async fn upload(
    channel: &Channel,
    optics: &str,
    source: &str,
    records: &[(u64, SegmentRecord)],
) -> anyhow::Result<UploadSegmentRecordsResponse> {
    let mut messages = vec![UploadSegmentRecordsRequest {
        item: Some(Item::Options(UploadOptions {
            source: source.into(),
            ..Default::default()
        })),
    }];
    messages.extend(
        records
            .iter()
            .map(|(row, record)| UploadSegmentRecordsRequest {
                item: Some(Item::Row(SegmentRecordRow {
                    row: *row,
                    record: Some(record.into()),
                })),
            }),
    );
    let response = ManufacturingServiceClient::new(channel.clone())
        .upload_segment_records(authed(tokio_stream::iter(messages), optics)?)
        .await
        .context("UploadSegmentRecords")?
        .into_inner();
    if response.rolled_back || response.rejected > 0 {
        let errors: Vec<String> = response
            .errors
            .iter()
            .map(|e| format!("row {} {} {}: {}", e.row, e.serial, e.field, e.reason))
            .collect();
        bail!(
            "the hub refused the sample records ({} rejected): {}",
            response.rejected,
            errors.join("; ")
        );
    }
    Ok(response)
}

/// The segments of each telescope: the accepted records in production
/// order, ring 1 at positions 1-6 and ring 2 at 7-18, a distinct set per
/// telescope. Returns per telescope its (position, serial) list.
pub fn assign_segments(
    records: &[(u64, SegmentRecord)],
    telescopes: usize,
) -> anyhow::Result<Vec<Vec<(u32, String)>>> {
    let accepted = records
        .iter()
        .map(|(_, r)| r)
        .filter(|r| r.acceptance_passed);
    let (inner, outer): (Vec<&SegmentRecord>, Vec<&SegmentRecord>) =
        accepted.partition(|r| r.ring == 1);
    let (n_inner, n_outer) = (INNER_RING as usize, (SEGMENTS - INNER_RING) as usize);
    if inner.len() < n_inner * telescopes || outer.len() < n_outer * telescopes {
        bail!(
            "the records hold {} accepted ring-1 and {} ring-2 segments; {telescopes} telescopes need {} and {}",
            inner.len(),
            outer.len(),
            n_inner * telescopes,
            n_outer * telescopes
        );
    }
    Ok((0..telescopes)
        .map(|k| {
            let ring1 = &inner[k * n_inner..(k + 1) * n_inner];
            let ring2 = &outer[k * n_outer..(k + 1) * n_outer];
            ring1
                .iter()
                .chain(ring2)
                .zip(1..)
                .map(|(record, position)| (position, record.serial.clone()))
                .collect()
        })
        .collect())
}

/// Records the installation of `segments` at `site` at `at_unix_s`.
pub async fn install(
    channel: &Channel,
    optics: &str,
    site: &str,
    segments: &[(u32, String)],
    at_unix_s: i64,
) -> anyhow::Result<()> {
    let mut client = ManufacturingServiceClient::new(channel.clone());
    for (position, serial) in segments {
        let request = RecordInstallationRequest {
            site: site.into(),
            position: *position,
            serial: serial.clone(),
            at: Some(prost_types::Timestamp {
                seconds: at_unix_s,
                nanos: 0,
            }),
        };
        client
            .record_installation(authed(request, optics)?)
            .await
            .with_context(|| {
                format!("RecordInstallation of {serial} at {site} position {position}")
            })?;
    }
    Ok(())
}

/// Records that site staff cleaned `segments` when they were installed
/// (`at_unix_s`), so that the health model's "days since cleaning" and
/// "exposure since maintenance" both start there rather than at the
/// coating, months before any telemetry.
pub async fn clean_at_installation(
    channel: &Channel,
    optics: &str,
    segments: &[(u32, String)],
    at_unix_s: i64,
) -> anyhow::Result<()> {
    let mut client = ManufacturingServiceClient::new(channel.clone());
    for (_, serial) in segments {
        let event = MaintenanceEvent {
            serial: serial.clone(),
            kind: MaintenanceKind::Cleaning as i32,
            at: Some(prost_types::Timestamp {
                seconds: at_unix_s,
                nanos: 0,
            }),
            notes: "cleaned (CO2 snow) after installation".into(),
            ..Default::default()
        };
        client
            .record_maintenance(authed(
                RecordMaintenanceRequest { event: Some(event) },
                optics,
            )?)
            .await
            .with_context(|| format!("RecordMaintenance (cleaning) of {serial}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_telescope_gets_its_own_ring_ordered_segments() {
        let records = read_records(&obs_manufacturing::sample_csv_path()).unwrap();
        assert_eq!(records.len(), 66);
        let sets = assign_segments(&records, 3).unwrap();
        let mut all: Vec<&String> = sets.iter().flatten().map(|(_, s)| s).collect();
        assert_eq!(all.len(), 54);
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 54, "54 distinct serials");
        let ring = |serial: &str| {
            records
                .iter()
                .find(|(_, r)| r.serial == serial)
                .map(|(_, r)| (r.ring, r.acceptance_passed))
        };
        for set in &sets {
            let positions: Vec<u32> = set.iter().map(|(p, _)| *p).collect();
            assert_eq!(positions, (1..=18).collect::<Vec<_>>());
            for (position, serial) in set {
                let expected = if *position <= INNER_RING { 1 } else { 2 };
                assert_eq!(
                    ring(serial),
                    Some((expected, true)),
                    "{serial} at {position}"
                );
            }
        }
        assert!(assign_segments(&records, 4).is_err(), "not enough for four");
    }

    #[test]
    fn the_hub_config_is_embedded_on_loopback_and_loads_back() {
        let dir = tempfile::tempdir().unwrap();
        let ports = Ports {
            grpc: 1,
            http: 2,
            mqtt: 3,
        };
        let path = dir.path().join("hub.toml");
        write_hub_config(&path, &hub_config(&dir.path().join("hub"), ports)).unwrap();
        let loaded: HubConfig =
            obs_common::config::load("OBS_DEMO_TEST_NONE", Some(&path)).unwrap();
        assert_eq!(loaded.grpc.listen.to_string(), "127.0.0.1:1");
        assert_eq!(loaded.http.listen.to_string(), "127.0.0.1:2");
        assert_eq!(
            loaded.mqtt,
            MqttConfig::Embedded {
                listen: "127.0.0.1:3".parse().unwrap()
            }
        );
        assert_eq!(loaded.stream, StreamConfig::None);
        assert!(matches!(loaded.store, StoreConfig::Sqlite { .. }));
        assert!(loaded.health.enabled);
    }
}

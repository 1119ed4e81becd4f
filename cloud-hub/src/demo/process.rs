//! The demo's child processes: the hub and the fog-nodes (real binaries),
//! each writing to its own log file and running in its own process group,
//! so that a Ctrl-C in the terminal reaches only the demo, which then stops
//! them in order (fog-nodes first, so that they flush, then the hub). A
//! child still running when its handle is dropped is killed and reaped.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// How often a stopping child is looked at.
const POLL: Duration = Duration::from_millis(50);

/// Environment variable prefixes of the hub's and the fog-node's
/// configuration: the demo writes complete config files and does not let
/// the caller's environment switch them to other backends or paths.
const CONFIG_ENV_PREFIXES: [&str; 2] = ["OBS_HUB__", "OBS_NODE__"];

/// The binaries the demo runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binaries {
    /// `cloud-hub` (for `serve` and `admin token`).
    pub cloud_hub: PathBuf,
    /// `fog-node` (for `enroll` and `run`).
    pub fog_node: PathBuf,
}

impl Binaries {
    /// `cloud-hub` is the running executable, `fog-node` lies next to it.
    pub fn beside_current_exe() -> anyhow::Result<Binaries> {
        let exe = std::env::current_exe().context("finding the cloud-hub executable")?;
        Ok(Binaries::beside(&exe))
    }

    /// `cloud_hub` and the `fog-node` in the same directory (tests pass
    /// `env!("CARGO_BIN_EXE_cloud-hub")`).
    pub fn beside(cloud_hub: &Path) -> Binaries {
        Binaries {
            cloud_hub: cloud_hub.to_path_buf(),
            fog_node: cloud_hub.with_file_name("fog-node"),
        }
    }

    /// Fails with what to do when a binary is missing.
    pub fn check(&self) -> anyhow::Result<()> {
        for (name, path) in [("cloud-hub", &self.cloud_hub), ("fog-node", &self.fog_node)] {
            if !path.is_file() {
                bail!(
                    "{name} not found at {}: build it with `cargo build --bins` \
                     (scripts/demo.sh does)",
                    path.display()
                );
            }
        }
        Ok(())
    }
}

/// Removes the configuration variables of the hub and the fog-node, and
/// turns colours off (the children log to files).
pub fn clean_env(command: &mut Command) -> &mut Command {
    command.env("NO_COLOR", "1");
    for (name, _) in std::env::vars_os() {
        let name_text = name.to_string_lossy();
        if CONFIG_ENV_PREFIXES.iter().any(|p| name_text.starts_with(p)) {
            command.env_remove(&name);
        }
    }
    command
}

/// Opens `path` for appending (creating it).
fn append(path: &Path) -> anyhow::Result<File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening the log {}", path.display()))
}

/// The last `max_lines` lines of `path` (at most 64 KiB are read).
pub fn log_tail(path: &Path, max_lines: usize) -> String {
    let Ok(mut file) = File::open(path) else {
        return String::new();
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = file.seek(SeekFrom::Start(len.saturating_sub(64 * 1024)));
    let mut bytes = Vec::new();
    let _ = file.read_to_end(&mut bytes);
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(max_lines)..].join("\n")
}

/// Runs `command` to its end with its output appended to `log`; an error
/// names `what` and quotes the end of the log.
pub fn run_logged(what: &str, command: &mut Command, log: &Path) -> anyhow::Result<()> {
    let out = append(log)?;
    let err = out
        .try_clone()
        .with_context(|| format!("opening the log {}", log.display()))?;
    let status = clean_env(command)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .status()
        .with_context(|| format!("starting {what}"))?;
    if !status.success() {
        bail!(
            "{what} failed ({status}); {}:\n{}",
            log.display(),
            log_tail(log, 20)
        );
    }
    Ok(())
}

/// Runs `command` to its end and returns its standard output; an error
/// names `what` and quotes its standard error.
pub fn run_captured(what: &str, command: &mut Command) -> anyhow::Result<String> {
    let output = clean_env(command)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("starting {what}"))?;
    if !output.status.success() {
        bail!(
            "{what} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// A long-running child: killed and reaped when dropped.
#[derive(Debug)]
pub struct ChildProcess {
    name: String,
    log: PathBuf,
    child: Option<Child>,
    pid: u32,
}

impl ChildProcess {
    /// Starts `command` as `name` in its own process group, stdout and
    /// stderr appended to `log`.
    pub fn spawn(name: &str, command: &mut Command, log: &Path) -> anyhow::Result<ChildProcess> {
        let out = append(log)?;
        let err = out
            .try_clone()
            .with_context(|| format!("opening the log {}", log.display()))?;
        let child = clean_env(command)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0)
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        tracing::debug!(name, pid = child.id(), log = %log.display(), "child process started");
        Ok(ChildProcess {
            name: name.to_owned(),
            log: log.to_path_buf(),
            pid: child.id(),
            child: Some(child),
        })
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Its name, e.g. `fog-node lapalma`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its log file.
    pub fn log(&self) -> &Path {
        &self.log
    }

    /// An error when it has exited on its own (quoting its log).
    pub fn check_running(&mut self) -> anyhow::Result<()> {
        let Some(child) = self.child.as_mut() else {
            bail!("{} was already stopped", self.name);
        };
        match child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => {
                self.child = None;
                bail!(
                    "{} exited unexpectedly ({status}); {}:\n{}",
                    self.name,
                    self.log.display(),
                    log_tail(&self.log, 20)
                )
            }
            Err(error) => bail!("cannot look at {}: {error}", self.name),
        }
    }

    /// Sends SIGTERM and waits up to `grace` for the exit, then kills it.
    /// Returns its exit status. The handle stays owned until the child is
    /// reaped, so a dropped (cancelled) stop still kills it on drop.
    pub async fn stop(&mut self, grace: Duration) -> anyhow::Result<ExitStatus> {
        let deadline = Instant::now() + grace;
        let mut signalled = false;
        loop {
            let Some(child) = self.child.as_mut() else {
                bail!("{} was already stopped", self.name);
            };
            match child.try_wait() {
                Ok(Some(status)) => {
                    self.child = None;
                    return Ok(status);
                }
                Ok(None) if !signalled => {
                    signalled = true;
                    if let Some(pid) = i32::try_from(self.pid)
                        .ok()
                        .and_then(rustix::process::Pid::from_raw)
                    {
                        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
                    }
                }
                Ok(None) if Instant::now() < deadline => tokio::time::sleep(POLL).await,
                Ok(None) => {
                    tracing::warn!(
                        name = self.name,
                        pid = self.pid,
                        "no exit after SIGTERM, killing"
                    );
                    let _ = child.kill();
                    let status = child
                        .wait()
                        .with_context(|| format!("waiting for {}", self.name));
                    self.child = None;
                    return status;
                }
                Err(error) => bail!("cannot wait for {}: {error}", self.name),
            }
        }
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The hub's three ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ports {
    pub grpc: u16,
    pub http: u16,
    pub mqtt: u16,
}

/// Ports asked for: `None` takes the hub's default when it is free and any
/// free port otherwise; `Some(0)` any free port; `Some(p)` exactly `p`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PortRequest {
    pub grpc: Option<u16>,
    pub http: Option<u16>,
    pub mqtt: Option<u16>,
}

/// The hub's default ports.
pub const DEFAULT_PORTS: Ports = Ports {
    grpc: 50051,
    http: 8080,
    mqtt: 8883,
};

/// Picks the ports on 127.0.0.1; returns them and a note for each default
/// that was taken and replaced.
pub fn pick_ports(request: PortRequest) -> anyhow::Result<(Ports, Vec<String>)> {
    let mut notes = Vec::new();
    // Held until all three are chosen, so that no two picks coincide.
    let mut held = Vec::new();
    let mut pick = |what: &str, wanted: Option<u16>, default: u16| -> anyhow::Result<u16> {
        let listener = match wanted {
            Some(port) => TcpListener::bind(("127.0.0.1", port))
                .with_context(|| format!("the {what} port 127.0.0.1:{port} is not free"))?,
            None => match TcpListener::bind(("127.0.0.1", default)) {
                Ok(listener) => listener,
                Err(_) => {
                    let listener = TcpListener::bind(("127.0.0.1", 0))
                        .with_context(|| format!("finding a free {what} port"))?;
                    let port = listener.local_addr()?.port();
                    notes.push(format!("{what} port {default} is taken, using {port}"));
                    listener
                }
            },
        };
        let port = listener.local_addr()?.port();
        held.push(listener);
        Ok(port)
    };
    let ports = Ports {
        grpc: pick("gRPC", request.grpc, DEFAULT_PORTS.grpc)?,
        http: pick("HTTP", request.http, DEFAULT_PORTS.http)?,
        mqtt: pick("MQTT", request.mqtt, DEFAULT_PORTS.mqtt)?,
    };
    Ok((ports, notes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_taken_default_port_is_replaced_and_said_so() {
        let busy = TcpListener::bind(("127.0.0.1", 0)).unwrap();
        let port = busy.local_addr().unwrap().port();
        let error = pick_ports(PortRequest {
            grpc: Some(port),
            ..Default::default()
        })
        .unwrap_err();
        assert!(
            error.to_string().contains(&format!("127.0.0.1:{port}")),
            "{error}"
        );
        let (ports, _) = pick_ports(PortRequest {
            grpc: Some(0),
            http: Some(0),
            mqtt: Some(0),
        })
        .unwrap();
        assert!(ports.grpc != ports.http && ports.http != ports.mqtt && ports.grpc != ports.mqtt);
    }

    #[test]
    fn a_missing_fog_node_says_how_to_build_it() {
        let dir = tempfile::tempdir().unwrap();
        let hub = dir.path().join("cloud-hub");
        std::fs::write(&hub, "").unwrap();
        let error = Binaries::beside(&hub).check().unwrap_err().to_string();
        assert!(error.contains("fog-node not found"), "{error}");
        assert!(error.contains("cargo build --bins"), "{error}");
    }

    #[tokio::test]
    async fn a_child_is_stopped_with_sigterm_and_killed_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("sleep.log");
        let mut child =
            ChildProcess::spawn("sleep", Command::new("sleep").arg("30"), &log).unwrap();
        child.check_running().unwrap();
        let status = child.stop(Duration::from_secs(5)).await.unwrap();
        assert!(!status.success(), "ended by SIGTERM: {status}");
        let pid = {
            let other =
                ChildProcess::spawn("sleep", Command::new("sleep").arg("30"), &log).unwrap();
            other.pid()
        };
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "killed and reaped on drop"
        );
    }
}

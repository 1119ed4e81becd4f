//! `{state_dir}/status.json`: the running node rewrites it every
//! `status.interval_ms` (atomically), and `fog-node status` reads it.
//!
//! The spool is locked by the running node, so `fog-node status` trusts
//! the file while the spool is locked; when it is not (no node running) it
//! opens the spool itself for fresh numbers and marks the report stopped.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::config::NodeConfig;
use crate::error::{Error, Result};
use crate::identity::Identity;
use crate::spool::{Spool, SpoolError, SpoolStats};
use crate::tango::TangoSnapshot;
use crate::timefmt::{now_unix_ns, rfc3339_from_ns};
use crate::uplink::UplinkSnapshot;

/// File name inside the state dir.
pub const STATUS_FILE: &str = "status.json";

/// The spool part of the report.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpoolView {
    pub spooled_seq: u64,
    pub durable_seq: u64,
    pub acked_seq: u64,
    pub backlog_batches: u64,
    pub backlog_bytes: u64,
    pub gap_samples: u64,
    pub dropped_batches: u64,
    pub quarantined: u64,
    pub segments: u64,
    pub total_bytes: u64,
}

impl From<&SpoolStats> for SpoolView {
    fn from(s: &SpoolStats) -> Self {
        SpoolView {
            spooled_seq: s.spooled_seq,
            durable_seq: s.durable_seq,
            acked_seq: s.acked_seq,
            backlog_batches: s.backlog_batches,
            backlog_bytes: s.backlog_bytes,
            gap_samples: s.gap_samples,
            dropped_batches: s.dropped_batches,
            quarantined: s.quarantined,
            segments: s.segments,
            total_bytes: s.total_bytes,
        }
    }
}

/// Contents of `status.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusReport {
    /// Whether a node was running when this was written.
    pub running: bool,
    pub pid: u32,
    /// When this was written, RFC 3339.
    pub updated_at: String,
    pub site: String,
    pub node_id: String,
    pub spool: SpoolView,
    pub uplink: UplinkSnapshot,
    /// Expiry of the node certificate, RFC 3339.
    pub certificate_not_after: String,
    /// The Tango adapter, when enabled.
    pub tango: Option<TangoSnapshot>,
    /// Every counter of [`crate::metrics`] by name.
    pub counters: BTreeMap<String, u64>,
}

impl StatusReport {
    /// Stamps the report with the current time and this process.
    pub fn stamp(&mut self, running: bool) {
        self.running = running;
        self.pid = std::process::id();
        self.updated_at = rfc3339_from_ns(now_unix_ns());
    }
}

/// Writes `report` to `path` atomically.
pub fn write(path: &Path, report: &StatusReport) -> Result<()> {
    let mut json = serde_json::to_vec_pretty(report).map_err(|e| Error::BadFile {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    json.push(b'\n');
    crate::identity::write_atomically(path, &json, 0o644)
}

/// Reads `path`.
pub fn read(path: &Path) -> Result<StatusReport> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, "read", e))?;
    serde_json::from_str(&text).map_err(|e| Error::BadFile {
        path: path.to_owned(),
        reason: e.to_string(),
    })
}

/// What `fog-node status` shows: the running node's `status.json`, or,
/// when no node holds the spool, the spool's own numbers.
pub fn collect(config: &NodeConfig) -> Result<StatusReport> {
    let identity = Identity::load(&config.state_dir)?;
    let path = config.status_path();
    let last = read(&path).ok();
    let spool_config = config.spool_config(&identity.enrollment.site, &identity.enrollment.node_id);
    match Spool::open(spool_config) {
        Err(SpoolError::Locked { .. }) => last.ok_or_else(|| Error::BadFile {
            path: path.clone(),
            reason: "the node is running but has not written its status yet".into(),
        }),
        Err(error) => Err(error.into()),
        Ok((spool, _)) => {
            let stats = spool.stats();
            drop(spool);
            let mut report = last.unwrap_or_default();
            report.site = identity.enrollment.site.clone();
            report.node_id = identity.enrollment.node_id.clone();
            report.certificate_not_after = identity.enrollment.certificate_not_after.clone();
            report.spool = SpoolView::from(&stats);
            report.running = false;
            report.uplink.connected = false;
            report.uplink.in_flight = 0;
            Ok(report)
        }
    }
}

/// The report as an aligned two-column table.
pub fn render_table(report: &StatusReport) -> String {
    let mut rows: Vec<(String, String)> = Vec::new();
    let mut row = |k: &str, v: String| rows.push((k.to_owned(), v));
    let time = |ns: i64| {
        if ns == 0 {
            "never".to_owned()
        } else {
            rfc3339_from_ns(ns)
        }
    };
    row("node", format!("{} / {}", report.site, report.node_id));
    row(
        "running",
        if report.running {
            format!("yes (pid {}, status of {})", report.pid, report.updated_at)
        } else {
            "no".to_owned()
        },
    );
    let s = &report.spool;
    row("spooled seq", s.spooled_seq.to_string());
    row("durable seq", s.durable_seq.to_string());
    row("acked seq", s.acked_seq.to_string());
    row(
        "backlog",
        format!("{} batches, {} bytes", s.backlog_batches, s.backlog_bytes),
    );
    row(
        "spool size",
        format!("{} segments, {} bytes", s.segments, s.total_bytes),
    );
    row(
        "lost to the size bound",
        format!("{} samples in {} batches", s.gap_samples, s.dropped_batches),
    );
    row("quarantined", s.quarantined.to_string());
    let u = &report.uplink;
    row(
        "uplink",
        if u.connected {
            format!("connected, {} in flight", u.in_flight)
        } else {
            "disconnected".to_owned()
        },
    );
    row("last connect", time(u.last_connect_unix_ns));
    row("last ack", time(u.last_ack_unix_ns));
    row(
        "last error",
        u.last_error.clone().unwrap_or_else(|| "none".into()),
    );
    row("certificate expires", report.certificate_not_after.clone());
    if let Some(t) = &report.tango {
        let malformed: Vec<String> = t
            .malformed
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        row(
            "tango adapter",
            format!(
                "{} accepted, malformed: {}",
                t.accepted,
                if malformed.is_empty() {
                    "none".to_owned()
                } else {
                    malformed.join(", ")
                }
            ),
        );
    }
    for (name, value) in &report.counters {
        row(name, value.to_string());
    }
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    let mut out = String::new();
    for (k, v) in rows {
        let _ = writeln!(out, "{k:<width$}  {v}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_the_file_and_renders() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(STATUS_FILE);
        let mut report = StatusReport {
            site: "nrt".into(),
            node_id: "node-1".into(),
            spool: SpoolView {
                spooled_seq: 12,
                acked_seq: 9,
                backlog_batches: 3,
                ..SpoolView::default()
            },
            uplink: UplinkSnapshot {
                connected: true,
                last_error: Some("tls: certificate revoked".into()),
                ..UplinkSnapshot::default()
            },
            tango: Some(TangoSnapshot {
                accepted: 5,
                malformed: BTreeMap::from([("bad_json".to_owned(), 2)]),
                ..TangoSnapshot::default()
            }),
            ..StatusReport::default()
        };
        report.stamp(true);
        write(&path, &report).unwrap();
        assert_eq!(read(&path).unwrap(), report);
        let table = render_table(&report);
        assert!(table.contains("acked seq"), "{table}");
        assert!(table.contains("3 batches"), "{table}");
        assert!(table.contains("bad_json 2"), "{table}");
        assert!(table.contains("tls: certificate revoked"), "{table}");
        let error = read(&dir.path().join("none.json")).unwrap_err().to_string();
        assert!(error.contains("none.json"), "{error}");
    }
}

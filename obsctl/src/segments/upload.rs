//! `obsctl segments upload FILE`: the file is read by obs-manufacturing's
//! streaming importer on a blocking thread and its records go straight into
//! the gRPC client stream through a bounded channel, so memory holds a few
//! hundred records whatever the file's size. Rows the importer cannot parse
//! are sent as client-side errors: the hub counts them as rejected (and, in
//! an atomic upload, stores nothing), and they come back in the one summary
//! with the hub's own findings.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use obs_manufacturing::{Format, ImportOptions};
use obs_proto::v1::manufacturing_service_client::ManufacturingServiceClient;
use obs_proto::v1::upload_segment_records_request::Item;
use obs_proto::v1::{SegmentRecordRow, UploadOptions, UploadSegmentRecordsRequest};
use serde::Serialize;
use tokio::sync::mpsc;

use crate::client::{Hub, status_error};

/// Messages queued between the file reader and the gRPC stream.
pub const QUEUE: usize = 256;

/// What to upload and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadRequest {
    pub path: PathBuf,
    /// Store the valid records and report the others (default: all or nothing).
    pub partial: bool,
    /// Store a changed record as a new version (the old one is kept).
    pub replace: bool,
    /// Ignore unknown columns / keys.
    pub allow_extra: bool,
}

/// Counts the bytes read from the file (and moves a progress bar).
pub struct Counting<R> {
    inner: R,
    read: Arc<AtomicU64>,
    progress: Option<ProgressBar>,
}

impl<R> Counting<R> {
    pub fn new(inner: R, read: Arc<AtomicU64>, progress: Option<ProgressBar>) -> Self {
        Counting {
            inner,
            read,
            progress,
        }
    }
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let total = self.read.fetch_add(n as u64, Ordering::Relaxed) + n as u64;
        if let Some(progress) = &self.progress {
            progress.set_position(total);
        }
        Ok(n)
    }
}

/// What the file reader did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadReport {
    /// Records parsed and sent.
    pub rows: u64,
    /// Rows (or file-level problems) sent as client-side errors.
    pub client_errors: u64,
    /// A problem that ended the reading early (bad header, broken structure).
    pub fatal: Option<String>,
}

/// The upload options message for `request`.
pub fn options_message(request: &UploadRequest) -> UploadSegmentRecordsRequest {
    UploadSegmentRecordsRequest {
        item: Some(Item::Options(UploadOptions {
            partial: request.partial,
            replace: request.replace,
            source: file_name(&request.path),
        })),
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

/// Reads records from `reader` and sends them (after the options) into `tx`,
/// blocking while the channel is full; stops early when the receiver is
/// gone (the hub refused the upload) or at a fatal import error.
pub fn read_into<R: Read>(
    reader: R,
    request: &UploadRequest,
    format: Format,
    tx: &mpsc::Sender<UploadSegmentRecordsRequest>,
) -> ReadReport {
    let mut report = ReadReport::default();
    if tx.blocking_send(options_message(request)).is_err() {
        return report;
    }
    let options = ImportOptions {
        allow_extra: request.allow_extra,
        format: Some(format),
    };
    let file = request.path.display().to_string();
    for item in obs_manufacturing::read(reader, &file, format, &options) {
        let message = match item {
            Ok((row, record)) => {
                report.rows += 1;
                Item::Row(SegmentRecordRow {
                    row,
                    record: Some(obs_proto::v1::SegmentRecord::from(&record)),
                })
            }
            Err(error) => {
                report.client_errors += 1;
                if error.is_fatal() {
                    report.fatal = Some(error.to_string());
                }
                let mut wire = error.to_record_error();
                // File-level errors keep their whole message (file, line).
                if wire.row == 0 {
                    wire.reason = error.to_string();
                }
                Item::ClientError(wire)
            }
        };
        let sent = tx.blocking_send(UploadSegmentRecordsRequest {
            item: Some(message),
        });
        if sent.is_err() || report.fatal.is_some() {
            break;
        }
    }
    report
}

/// One error of the summary.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RowError {
    pub row: u64,
    pub serial: String,
    pub field: String,
    pub reason: String,
}

/// What an upload did, as printed.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct UploadSummary {
    pub file: String,
    pub bytes: u64,
    pub received: u32,
    pub stored: u32,
    pub unchanged: u32,
    pub rejected: u32,
    pub rolled_back: bool,
    pub errors_truncated: bool,
    pub errors: Vec<RowError>,
    pub seconds: f64,
    pub records_per_second: f64,
}

fn progress_bar(len: u64, show: bool) -> Option<ProgressBar> {
    if !show {
        return None;
    }
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template(
        "{bytes}/{total_bytes} [{bar:30}] {bytes_per_sec}, eta {eta} {msg}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    Some(bar)
}

/// Uploads the file of `request`; `progress` draws a bar on stderr (when it
/// is a terminal).
pub async fn upload(
    hub: &Hub,
    request: &UploadRequest,
    progress: bool,
) -> anyhow::Result<UploadSummary> {
    let path = &request.path;
    let format = Format::from_path(path).ok_or_else(|| {
        anyhow::anyhow!(
            "{}: unknown format: name the file .csv, .json or .jsonl",
            path.display()
        )
    })?;
    let file =
        File::open(path).map_err(|e| anyhow::anyhow!("{}: cannot open: {e}", path.display()))?;
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let bar = progress_bar(len, progress);
    let read = Arc::new(AtomicU64::new(0));
    let reader = Counting::new(io::BufReader::new(file), read.clone(), bar.clone());
    let (tx, rx) = mpsc::channel(QUEUE);
    let started = Instant::now();
    let reading = {
        let request = request.clone();
        tokio::task::spawn_blocking(move || read_into(reader, &request, format, &tx))
    };
    let mut client = ManufacturingServiceClient::new(hub.channel.clone());
    let answer = client
        .upload_segment_records(hub.request(tokio_stream::wrappers::ReceiverStream::new(rx))?)
        .await;
    let report = reading
        .await
        .map_err(|e| anyhow::anyhow!("{}: the reader failed: {e}", path.display()))?;
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let response = answer
        .map_err(|s| status_error("UploadSegmentRecords", s))?
        .into_inner();
    if let Some(fatal) = &report.fatal {
        eprintln!("{fatal}; the rest of the file was not read");
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok(UploadSummary {
        file: path.display().to_string(),
        bytes: read.load(Ordering::Relaxed),
        received: response.received,
        stored: response.stored,
        unchanged: response.unchanged,
        rejected: response.rejected,
        rolled_back: response.rolled_back,
        errors_truncated: response.errors_truncated,
        errors: response
            .errors
            .into_iter()
            .map(|e| RowError {
                row: e.row,
                serial: e.serial,
                field: e.field,
                reason: e.reason,
            })
            .collect(),
        seconds,
        records_per_second: if seconds > 0.0 {
            f64::from(response.received) / seconds
        } else {
            0.0
        },
    })
}

/// The summary as text: the counts, then each error.
pub fn render(summary: &UploadSummary) -> String {
    let mut out = format!(
        "{}: received {}, stored {}, unchanged {}, rejected {} ({:.1} s, {:.0} records/s)\n",
        summary.file,
        summary.received,
        summary.stored,
        summary.unchanged,
        summary.rejected,
        summary.seconds,
        summary.records_per_second
    );
    if summary.rolled_back {
        out.push_str("nothing was stored: an atomic upload stores all records or none (fix the errors, or use --partial)\n");
    }
    for e in &summary.errors {
        let at = if e.row == 0 {
            String::from("file")
        } else {
            format!("row {}", e.row)
        };
        let serial = if e.serial.is_empty() {
            String::new()
        } else {
            format!(" {}", e.serial)
        };
        let field = if e.field.is_empty() {
            String::new()
        } else {
            format!(" {}:", e.field)
        };
        out.push_str(&format!("  {at}{serial}{field} {}\n", e.reason));
    }
    if summary.errors_truncated {
        out.push_str("  (more errors not shown; the counts include them)\n");
    }
    out
}

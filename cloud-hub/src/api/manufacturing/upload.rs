//! `UploadSegmentRecords`: one client stream, validated row by row on the
//! hub (the client is never trusted), stored all-or-nothing or partially.
//!
//! The first message is `UploadOptions`; every later one is a row (or a
//! client-side parse error). Each row is converted, validated with
//! `obs_manufacturing::validate`, and checked for a serial already seen in
//! this upload. Then:
//!
//! - **atomic** (the default): valid rows are kept until the stream ends,
//!   since one bad row anywhere must store nothing. That is what bounds an
//!   atomic upload: at most [`UploadLimits::max_atomic_rows`] rows and
//!   [`UploadLimits::max_atomic_bytes`] of encoded records are held;
//!   beyond, the call fails with `RESOURCE_EXHAUSTED` and stores nothing
//!   (use `partial`, or split the file). At the end, if any row had an error,
//!   the kept rows are only checked against the store (a dry run, so that
//!   changed records without `replace` are reported too) and nothing is
//!   stored (`rolled_back`); otherwise all are put in one store call, which
//!   again stores nothing if a changed record lacks `replace`.
//! - **partial**: valid rows are put in chunks of
//!   [`UploadLimits::chunk_rows`] as they arrive, so memory holds one chunk
//!   and the serials seen (for the duplicate check), up to
//!   [`UploadLimits::max_rows`] rows.
//!
//! Every error comes back with its row, serial, field and reason, up to
//! [`UploadLimits::max_errors`] (`errors_truncated` says when there were
//! more; the counts include them all).

use std::collections::HashMap;

use futures::{Stream, StreamExt};
use obs_manufacturing::{SegmentRecord, ValidationRules};
use obs_proto::v1::upload_segment_records_request::Item;
use obs_proto::v1::{
    RecordError, SegmentRecordRow, UploadOptions, UploadSegmentRecordsRequest,
    UploadSegmentRecordsResponse,
};
use prost::Message;
use tokio::sync::Mutex;
use tonic::Status;

use super::error::ManufacturingError;
use crate::store::segments::{NewSegmentRecord, PutOutcome, PutPolicy, SegmentStore};

/// Bounds of one upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploadLimits {
    /// Rows an atomic upload may hold until its end.
    pub max_atomic_rows: usize,
    /// Encoded bytes of records an atomic upload may hold until its end.
    pub max_atomic_bytes: usize,
    /// Rows of any upload (partial uploads keep every serial seen).
    pub max_rows: usize,
    /// Rows per store call of a partial upload.
    pub chunk_rows: usize,
    /// Errors returned in the response.
    pub max_errors: usize,
}

impl Default for UploadLimits {
    fn default() -> Self {
        UploadLimits {
            max_atomic_rows: 100_000,
            max_atomic_bytes: 64 << 20,
            max_rows: 1_000_000,
            chunk_rows: 500,
            max_errors: 1_000,
        }
    }
}

/// Who uploads, for provenance.
pub struct Uploader<'a> {
    /// Name of the API token.
    pub name: &'a str,
    pub at_unix_ns: i64,
}

struct Session<'a> {
    store: &'a dyn SegmentStore,
    writes: &'a Mutex<()>,
    rules: &'a ValidationRules,
    limits: UploadLimits,
    uploader: &'a Uploader<'a>,
    options: UploadOptions,
    /// First row of each serial seen.
    seen: HashMap<String, u64>,
    /// Valid rows not yet stored.
    pending: Vec<(u64, SegmentRecord)>,
    pending_bytes: usize,
    /// Rows with an error (each counted once).
    bad_rows: u32,
    response: UploadSegmentRecordsResponse,
}

/// Runs one upload from its message stream.
pub async fn upload<S>(
    store: &dyn SegmentStore,
    writes: &Mutex<()>,
    rules: &ValidationRules,
    limits: UploadLimits,
    uploader: &Uploader<'_>,
    mut messages: S,
) -> Result<UploadSegmentRecordsResponse, ManufacturingError>
where
    S: Stream<Item = Result<UploadSegmentRecordsRequest, Status>> + Unpin,
{
    let options = match messages.next().await {
        None => return Ok(UploadSegmentRecordsResponse::default()),
        Some(Err(status)) => return Err(ManufacturingError::Stream(status)),
        Some(Ok(UploadSegmentRecordsRequest {
            item: Some(Item::Options(options)),
        })) => options,
        Some(Ok(_)) => {
            return Err(ManufacturingError::invalid(
                "options",
                "the first message of an upload must be UploadOptions",
            ));
        }
    };
    let mut session = Session {
        store,
        writes,
        rules,
        limits,
        uploader,
        options,
        seen: HashMap::new(),
        pending: Vec::new(),
        pending_bytes: 0,
        bad_rows: 0,
        response: UploadSegmentRecordsResponse::default(),
    };
    while let Some(message) = messages.next().await {
        let message = message.map_err(ManufacturingError::Stream)?;
        match message.item {
            Some(Item::Row(row)) => session.row(row).await?,
            Some(Item::ClientError(error)) => {
                session.count_row()?;
                session.reject(vec![error]);
            }
            Some(Item::Options(_)) => {
                return Err(ManufacturingError::invalid(
                    "options",
                    "UploadOptions may only be the first message",
                ));
            }
            None => return Err(ManufacturingError::invalid("item", "an empty message")),
        }
    }
    session.finish().await
}

impl Session<'_> {
    fn count_row(&mut self) -> Result<u64, ManufacturingError> {
        if self.response.received as usize >= self.limits.max_rows {
            return Err(ManufacturingError::ResourceExhausted(format!(
                "an upload holds at most {} rows; split the file",
                self.limits.max_rows
            )));
        }
        self.response.received += 1;
        Ok(u64::from(self.response.received))
    }

    /// Notes the errors of one row.
    fn reject(&mut self, errors: Vec<RecordError>) {
        self.bad_rows += 1;
        self.response.rejected += 1;
        for error in errors {
            if self.response.errors.len() < self.limits.max_errors {
                self.response.errors.push(error);
            } else {
                self.response.errors_truncated = true;
            }
        }
    }

    async fn row(&mut self, message: SegmentRecordRow) -> Result<(), ManufacturingError> {
        let index = self.count_row()?;
        let row = if message.row == 0 { index } else { message.row };
        let Some(wire) = message.record else {
            self.reject(vec![error(row, "", "record", "is missing")]);
            return Ok(());
        };
        let bytes = wire.encoded_len();
        let serial = wire.serial.clone();
        let duplicate_of = if serial.is_empty() {
            None
        } else {
            match self.seen.get(&serial) {
                Some(first) => Some(*first),
                None => {
                    self.seen.insert(serial.clone(), row);
                    None
                }
            }
        };
        let mut errors = Vec::new();
        if let Some(first) = duplicate_of {
            errors.push(error(
                row,
                &serial,
                "serial",
                &format!("{serial} is a duplicate of row {first} in this upload"),
            ));
        }
        let record = match SegmentRecord::try_from(wire) {
            Ok(record) => Some(record),
            Err(e) => {
                errors.push(e.to_record_error(row, &serial));
                None
            }
        };
        if let Some(record) = &record {
            errors.extend(
                obs_manufacturing::validate(record, self.rules)
                    .iter()
                    .map(|e| e.to_record_error(row, &serial)),
            );
        }
        match record {
            Some(record) if errors.is_empty() => self.keep(row, record, bytes).await,
            _ => {
                self.reject(errors);
                Ok(())
            }
        }
    }

    async fn keep(
        &mut self,
        row: u64,
        record: SegmentRecord,
        bytes: usize,
    ) -> Result<(), ManufacturingError> {
        self.pending.push((row, record));
        self.pending_bytes += bytes;
        if self.options.partial {
            if self.pending.len() >= self.limits.chunk_rows {
                self.flush().await?;
            }
        } else if self.pending.len() > self.limits.max_atomic_rows
            || self.pending_bytes > self.limits.max_atomic_bytes
        {
            return Err(ManufacturingError::ResourceExhausted(format!(
                "an atomic upload holds every row until its end: at most {} rows and {} MiB \
                 (row {row} is beyond); nothing was stored; upload with partial=true or split \
                 the file",
                self.limits.max_atomic_rows,
                self.limits.max_atomic_bytes >> 20
            )));
        }
        Ok(())
    }

    /// Puts the pending rows with `policy` and counts the outcomes.
    async fn put(&mut self, policy: PutPolicy) -> Result<bool, ManufacturingError> {
        let pending = std::mem::take(&mut self.pending);
        self.pending_bytes = 0;
        if pending.is_empty() {
            return Ok(true);
        }
        let rows: Vec<u64> = pending.iter().map(|(row, _)| *row).collect();
        let records = pending
            .into_iter()
            .map(|(_, record)| NewSegmentRecord {
                record,
                uploaded_at_unix_ns: self.uploader.at_unix_ns,
                uploaded_by: self.uploader.name.to_owned(),
                source: self.options.source.clone(),
            })
            .collect::<Vec<_>>();
        let serials: Vec<String> = records.iter().map(|r| r.record.serial.clone()).collect();
        let report = {
            let _writing = self.writes.lock().await;
            self.store.put_segment_records(records, policy).await?
        };
        for ((row, serial), outcome) in rows.into_iter().zip(serials).zip(report.outcomes) {
            match outcome {
                PutOutcome::Stored { .. } if report.written => self.response.stored += 1,
                PutOutcome::Unchanged { .. } if report.written => self.response.unchanged += 1,
                PutOutcome::Stored { .. } | PutOutcome::Unchanged { .. } => {}
                PutOutcome::Conflict { version, changes } => {
                    let errors = changes
                        .iter()
                        .map(|c| {
                            error(
                                row,
                                &serial,
                                &c.field,
                                &format!(
                                    "{serial} differs from stored version {version} \
                                     ({:?} → {:?}); upload with replace=true to keep version \
                                     {version} and store version {}",
                                    c.stored,
                                    c.uploaded,
                                    version + 1
                                ),
                            )
                        })
                        .collect();
                    self.reject(errors);
                }
            }
        }
        Ok(report.written)
    }

    async fn flush(&mut self) -> Result<(), ManufacturingError> {
        let policy = PutPolicy {
            replace: self.options.replace,
            all_or_nothing: false,
            dry_run: false,
        };
        self.put(policy).await.map(drop)
    }

    async fn finish(mut self) -> Result<UploadSegmentRecordsResponse, ManufacturingError> {
        if self.options.partial {
            self.flush().await?;
            return Ok(self.response);
        }
        let policy = PutPolicy {
            replace: self.options.replace,
            all_or_nothing: true,
            dry_run: self.bad_rows > 0,
        };
        // A dry run (rows with errors) writes nothing, nor does a put with a
        // changed record lacking `replace`.
        let written = self.put(policy).await? && self.bad_rows == 0;
        if !written {
            self.response.stored = 0;
            self.response.unchanged = 0;
            self.response.rolled_back = true;
        }
        Ok(self.response)
    }
}

fn error(row: u64, serial: &str, field: &str, reason: &str) -> RecordError {
    RecordError {
        row,
        serial: serial.to_owned(),
        field: field.to_owned(),
        reason: reason.to_owned(),
    }
}

//! CSV import and export: one row per segment under a header of the columns
//! in [`crate::schema::COLUMNS`] (any order; extra wavelengths
//! `fresh_reflectivity_<wavelength>nm_pct` allowed).
//!
//! The header is checked first; missing, unknown (unless `allow_extra`),
//! duplicate and wrong-unit columns are reported together and end the import.
//! Then each row yields a record or its errors (one per bad field, a
//! duplicate serial, a wrong number of fields) and the import goes on.

use std::collections::VecDeque;
use std::io::{self, Read, Write};

use ::csv::{ByteRecord, ErrorKind, ReaderBuilder};

use crate::cell::{cell, check_wavelengths, csv_text, extra_wavelengths, field_order};
use crate::error::{ExportError, FieldError, ImportError, Result};
use crate::import::{ImportOptions, MAX_RECORD_BYTES, SerialTracker};
use crate::parse::{finish, set_text};
use crate::record::SegmentRecord;
use crate::schema::{Field, NameIssue, map_names};

/// Streaming CSV importer; see the module docs.
pub struct CsvRecords<R: Read> {
    file: String,
    reader: ::csv::Reader<LineLimit<R>>,
    allow_extra: bool,
    state: State,
    columns: Vec<Option<Field>>,
    serial_column: Option<usize>,
    pending: VecDeque<ImportError>,
    serials: SerialTracker,
    row: u64,
    record: ByteRecord,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Header,
    Rows,
    Done,
}

impl<R: Read> CsvRecords<R> {
    /// Imports from `reader`; `file` names it in errors.
    pub fn new(reader: R, file: &str, options: &ImportOptions) -> Self {
        let reader = ReaderBuilder::new()
            .has_headers(true)
            .flexible(false)
            .from_reader(LineLimit::new(reader));
        Self {
            file: file.to_owned(),
            reader,
            allow_extra: options.allow_extra,
            state: State::Header,
            columns: Vec::new(),
            serial_column: None,
            pending: VecDeque::new(),
            serials: SerialTracker::default(),
            row: 0,
            record: ByteRecord::new(),
        }
    }

    fn read_header(&mut self) {
        self.state = State::Done;
        let headers = match self.reader.byte_headers() {
            Ok(h) => h.clone(),
            Err(e) => {
                let e = self.fatal(e, 1);
                self.pending.push_back(e);
                return;
            }
        };
        let names: Vec<String> = headers
            .iter()
            .enumerate()
            .map(|(i, h)| {
                let name = String::from_utf8_lossy(h);
                let name = if i == 0 {
                    name.trim_start_matches('\u{feff}')
                } else {
                    &name
                };
                name.trim().to_owned()
            })
            .collect();
        if names.iter().all(|n| n.is_empty()) {
            self.pending.push_back(ImportError::EmptyFile {
                file: self.file.clone(),
            });
            return;
        }
        let map = map_names(names.iter().map(String::as_str), self.allow_extra);
        let file = &self.file;
        self.pending
            .extend(map.issues.into_iter().map(|issue| match issue {
                NameIssue::Unknown(column) => ImportError::UnknownColumn {
                    file: file.clone(),
                    column,
                },
                NameIssue::WrongUnit {
                    name,
                    found,
                    expected,
                    unit,
                } => ImportError::WrongUnit {
                    file: file.clone(),
                    column: name,
                    found,
                    expected,
                    unit: unit.to_owned(),
                },
                NameIssue::Duplicate(column) => ImportError::DuplicateColumn {
                    file: file.clone(),
                    column,
                },
                NameIssue::Missing(column) => ImportError::MissingColumn {
                    file: file.clone(),
                    column: column.to_owned(),
                },
            }));
        if self.pending.is_empty() {
            self.serial_column = map.fields.iter().position(|f| *f == Some(Field::Serial));
            self.columns = map.fields;
            self.state = State::Rows;
        }
    }

    /// A reader error that ends the import.
    fn fatal(&self, e: ::csv::Error, line: u64) -> ImportError {
        let file = self.file.clone();
        match e.into_kind() {
            ErrorKind::Io(source) if LineLimit::<R>::is_limit_error(&source) => {
                ImportError::Structure {
                    file,
                    line,
                    reason: format!("a line is longer than {MAX_RECORD_BYTES} bytes"),
                }
            }
            ErrorKind::Io(source) => ImportError::Io { file, source },
            other => ImportError::Structure {
                file,
                line,
                reason: format!("unreadable csv: {other:?}"),
            },
        }
    }

    fn line(&self) -> u64 {
        self.record.position().map_or(0, |p| p.line())
    }

    /// The record of the current row, or the errors of its fields.
    fn parse_row(&mut self) -> std::result::Result<SegmentRecord, Vec<ImportError>> {
        let (row, line) = (self.row, self.line());
        let serial = self
            .serial_column
            .and_then(|i| self.record.get(i))
            .map(|s| String::from_utf8_lossy(s).into_owned());
        let mut record = SegmentRecord::placeholder();
        let mut errors: Vec<FieldError> = Vec::new();
        for (value, field) in self.record.iter().zip(&self.columns) {
            let Some(field) = *field else { continue };
            let result = match std::str::from_utf8(value) {
                Ok(text) => set_text(&mut record, field, text),
                Err(_) => Err(FieldError::new(field.name(), "", "is not valid UTF-8")),
            };
            if let Err(e) = result {
                errors.push(e);
            }
        }
        if let Some(e) = serial.as_deref().and_then(|s| self.serials.check(s, row)) {
            errors.push(e);
        }
        if errors.is_empty() {
            finish(&mut record);
            return Ok(record);
        }
        Err(errors
            .into_iter()
            .map(|error| ImportError::Field {
                file: self.file.clone(),
                row,
                line,
                serial: serial.clone().filter(|s| !s.is_empty()),
                error: Box::new(error),
            })
            .collect())
    }
}

impl<R: Read> Iterator for CsvRecords<R> {
    type Item = Result<(u64, SegmentRecord)>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(e) = self.pending.pop_front() {
                return Some(Err(e));
            }
            match self.state {
                State::Done => return None,
                State::Header => {
                    self.read_header();
                    continue;
                }
                State::Rows => {}
            }
            match self.reader.read_byte_record(&mut self.record) {
                Ok(false) => self.state = State::Done,
                Ok(true) => {
                    self.row += 1;
                    match self.parse_row() {
                        Ok(record) => return Some(Ok((self.row, record))),
                        Err(errors) => self.pending.extend(errors),
                    }
                }
                Err(e) => {
                    let line = self.line() + 1;
                    if let ErrorKind::UnequalLengths {
                        pos,
                        expected_len,
                        len,
                    } = e.kind()
                    {
                        self.row += 1;
                        self.pending.push_back(ImportError::Malformed {
                            file: self.file.clone(),
                            row: self.row,
                            line: pos.as_ref().map_or(line, |p| p.line()),
                            reason: format!("has {len} fields, the header has {expected_len}"),
                        });
                    } else {
                        let e = self.fatal(e, line);
                        self.pending.push_back(e);
                        self.state = State::Done;
                    }
                }
            }
        }
    }
}

/// A reader that fails once a line grows past [`MAX_RECORD_BYTES`], so one
/// endless line cannot make the CSV reader buffer without bound.
struct LineLimit<R> {
    inner: R,
    run: usize,
}

#[derive(Debug, thiserror::Error)]
#[error("line longer than {MAX_RECORD_BYTES} bytes")]
struct LineTooLong;

impl<R> LineLimit<R> {
    fn new(inner: R) -> Self {
        Self { inner, run: 0 }
    }

    fn is_limit_error(e: &io::Error) -> bool {
        e.get_ref().is_some_and(|inner| inner.is::<LineTooLong>())
    }
}

impl<R: Read> Read for LineLimit<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let mut run = self.run;
        for b in &buf[..n.min(buf.len())] {
            if *b == b'\n' {
                run = 0;
            } else {
                run += 1;
                if run > MAX_RECORD_BYTES {
                    return Err(io::Error::new(io::ErrorKind::InvalidData, LineTooLong));
                }
            }
        }
        self.run = run;
        Ok(n)
    }
}

/// Writes records as CSV, one row each, under the documented header.
pub struct CsvRecordWriter<W: Write> {
    writer: ::csv::Writer<W>,
    fields: Vec<Field>,
}

impl<W: Write> CsvRecordWriter<W> {
    /// A writer of the standard columns; writes the header.
    pub fn new(writer: W) -> std::result::Result<Self, ExportError> {
        Self::with_extra_wavelengths(writer, &[])
    }

    /// A writer with reflectivity columns for `extra_wavelengths` (nm) after
    /// the standard set; writes the header.
    pub fn with_extra_wavelengths(
        writer: W,
        extra_wavelengths: &[u32],
    ) -> std::result::Result<Self, ExportError> {
        let mut extra: Vec<u32> = extra_wavelengths
            .iter()
            .copied()
            .filter(|wl| !crate::schema::is_standard_wavelength(*wl))
            .collect();
        extra.sort_unstable();
        extra.dedup();
        let fields = field_order(&extra);
        let mut writer = ::csv::Writer::from_writer(writer);
        writer.write_record(fields.iter().map(|f| f.name().into_owned()))?;
        Ok(Self { writer, fields })
    }

    /// Writes one record; refuses values the format cannot hold.
    pub fn write(&mut self, record: &SegmentRecord) -> std::result::Result<(), ExportError> {
        let refuse = |error| ExportError::NotRepresentable {
            serial: record.serial.clone(),
            error,
        };
        check_wavelengths(record, &self.fields).map_err(refuse)?;
        let mut row = Vec::with_capacity(self.fields.len());
        for field in &self.fields {
            row.push(csv_text(&cell(record, *field).map_err(refuse)?));
        }
        self.writer.write_record(&row)?;
        Ok(())
    }

    /// Flushes and returns the inner writer.
    pub fn finish(self) -> std::result::Result<W, ExportError> {
        self.writer
            .into_inner()
            .map_err(|e| ExportError::Io(e.into_error()))
    }
}

/// Writes `records` as CSV with columns for every wavelength they carry.
pub fn write_csv<W: Write>(
    writer: W,
    records: &[SegmentRecord],
) -> std::result::Result<W, ExportError> {
    let mut w = CsvRecordWriter::with_extra_wavelengths(writer, &extra_wavelengths(records))?;
    for r in records {
        w.write(r)?;
    }
    w.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_limit_stops_an_endless_line() {
        let data = vec![b'a'; MAX_RECORD_BYTES + 10];
        let mut r = LineLimit::new(&data[..]);
        let mut sink = Vec::new();
        let e = r.read_to_end(&mut sink).unwrap_err();
        assert!(LineLimit::<&[u8]>::is_limit_error(&e));
    }

    #[test]
    fn line_limit_passes_short_lines() {
        let data = "a,b\n".repeat(300_000);
        let mut r = LineLimit::new(data.as_bytes());
        let mut sink = Vec::new();
        assert_eq!(r.read_to_end(&mut sink).unwrap(), data.len());
    }
}

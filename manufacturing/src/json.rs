//! JSON import and export.
//!
//! A record is a flat object whose keys are the CSV column names (units in
//! the keys, checked like CSV headers): numbers as JSON numbers, text, dates
//! (`YYYY-MM-DD`) and enum names as strings, `acceptance_passed` as a boolean,
//! `zernike_nm` as an array of numbers in nm for Noll 1, 2, 3, ... (`null`
//! skips an index). Text may be `null` (empty) and a reflectivity `null` (not
//! measured). A file is either a top-level array of records (`.json`, streamed
//! element by element) or JSON Lines, one record per line (`.jsonl`).
//!
//! Every key is checked per record: missing, unknown (unless `allow_extra`),
//! repeated and wrong-unit keys are errors of that record, which is skipped;
//! the import goes on.

mod scan;

use std::collections::VecDeque;
use std::fmt;
use std::io::{BufReader, Read, Write};

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::Value;

use crate::cell::{Cell, cell, field_order};
use crate::error::{ExportError, FieldError, ImportError, Result};
use crate::import::{ImportOptions, SerialTracker};
use crate::parse::{finish, set_json};
use crate::record::SegmentRecord;
use crate::schema::{Field, NameIssue, is_standard_wavelength, map_names};

use scan::{LineSource, Raw, ValueScanner};

enum Source<R: Read> {
    Values(ValueScanner<BufReader<R>>),
    Lines(LineSource<BufReader<R>>),
}

/// Streaming JSON / JSON Lines importer; see the module docs.
pub struct JsonRecords<R: Read> {
    file: String,
    source: Source<R>,
    allow_extra: bool,
    pending: VecDeque<ImportError>,
    serials: SerialTracker,
    row: u64,
    done: bool,
}

impl<R: Read> JsonRecords<R> {
    /// Imports from `reader`, as JSON Lines when `lines`, else as a JSON array
    /// (or objects one after the other); `file` names it in errors.
    pub fn new(reader: R, file: &str, options: &ImportOptions, lines: bool) -> Self {
        let input = BufReader::with_capacity(64 * 1024, reader);
        let source = if lines {
            Source::Lines(LineSource::new(input))
        } else {
            Source::Values(ValueScanner::new(input))
        };
        Self {
            file: file.to_owned(),
            source,
            allow_extra: options.allow_extra,
            pending: VecDeque::new(),
            serials: SerialTracker::default(),
            row: 0,
            done: false,
        }
    }

    fn raw(&mut self) -> (std::io::Result<Raw>, &[u8]) {
        match &mut self.source {
            Source::Values(s) => (s.next_raw(), &s.buf),
            Source::Lines(s) => (s.next_raw(), &s.buf),
        }
    }

    /// The record in `bytes`, or its errors.
    fn parse(
        &mut self,
        bytes: &[u8],
        line: u64,
    ) -> std::result::Result<SegmentRecord, Vec<ImportError>> {
        let row = self.row;
        let entries = match serde_json::from_slice::<Entries>(bytes) {
            Ok(Entries(entries)) => entries,
            Err(e) => {
                return Err(vec![ImportError::Malformed {
                    file: self.file.clone(),
                    row,
                    line,
                    reason: json_reason(&e, line),
                }]);
            }
        };
        let serial = entries.iter().find_map(|(k, v)| match (k.trim(), v) {
            ("serial", Value::String(s)) if !s.is_empty() => Some(s.clone()),
            _ => None,
        });
        let map = map_names(entries.iter().map(|(k, _)| k.as_str()), self.allow_extra);
        let mut errors: Vec<FieldError> = map.issues.into_iter().map(key_error).collect();
        let mut record = SegmentRecord::placeholder();
        for ((_, value), field) in entries.iter().zip(&map.fields) {
            if let Some(field) = field
                && let Err(e) = set_json(&mut record, *field, value)
            {
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
                serial: serial.clone(),
                error: Box::new(error),
            })
            .collect())
    }
}

impl<R: Read> Iterator for JsonRecords<R> {
    type Item = Result<(u64, SegmentRecord)>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(e) = self.pending.pop_front() {
                return Some(Err(e));
            }
            if self.done {
                return None;
            }
            let file = self.file.clone();
            let (raw, bytes) = self.raw();
            let raw = match raw {
                Ok(raw) => raw,
                Err(source) => {
                    self.done = true;
                    return Some(Err(ImportError::Io { file, source }));
                }
            };
            match raw {
                Raw::Record { line } => {
                    let bytes = bytes.to_vec();
                    self.row += 1;
                    match self.parse(&bytes, line) {
                        Ok(record) => return Some(Ok((self.row, record))),
                        Err(errors) => self.pending.extend(errors),
                    }
                }
                Raw::Bad { line, reason } => {
                    self.row += 1;
                    let row = self.row;
                    return Some(Err(ImportError::Malformed {
                        file,
                        row,
                        line,
                        reason,
                    }));
                }
                Raw::Fatal { line, reason } => {
                    self.done = true;
                    return Some(Err(ImportError::Structure { file, line, reason }));
                }
                Raw::Empty => {
                    self.done = true;
                    return Some(Err(ImportError::EmptyFile { file }));
                }
                Raw::End => self.done = true,
            }
        }
    }
}

/// A serde_json error as a reason with the line in the file.
fn json_reason(e: &serde_json::Error, start_line: u64) -> String {
    if e.is_data() {
        return "is not a JSON object".to_owned();
    }
    let msg = e.to_string();
    let msg = msg
        .rsplit_once(" at line ")
        .map_or(msg.as_str(), |(m, _)| m);
    let line = start_line + (e.line() as u64).saturating_sub(1);
    format!("invalid JSON at line {line} column {}: {msg}", e.column())
}

fn key_error(issue: NameIssue) -> FieldError {
    match issue {
        NameIssue::Unknown(key) => FieldError::new(
            key,
            "",
            "is not a known key (allow_extra ignores unknown keys)",
        ),
        NameIssue::WrongUnit {
            name,
            found,
            expected,
            unit,
        } => FieldError::new(
            name,
            "",
            format!("has {found}, expected `{expected}` ({unit})"),
        ),
        NameIssue::Duplicate(key) => FieldError::new(key, "", "appears more than once"),
        NameIssue::Missing(key) => FieldError::new(key, "", "is missing"),
    }
}

/// The entries of a JSON object in order, repeated keys kept (serde_json's
/// map would keep only the last).
#[derive(Debug)]
struct Entries(Vec<(String, Value)>);

impl<'de> Deserialize<'de> for Entries {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        struct EntriesVisitor;
        impl<'de> Visitor<'de> for EntriesVisitor {
            type Value = Entries;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<Entries, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry::<String, Value>()? {
                    entries.push(entry);
                }
                Ok(Entries(entries))
            }
        }
        deserializer.deserialize_map(EntriesVisitor)
    }
}

/// One record as a JSON object, keys in column order.
struct JsonRecord<'a>(Vec<(Field, Cell<'a>)>);

impl<'a> JsonRecord<'a> {
    fn new(record: &'a SegmentRecord) -> std::result::Result<Self, ExportError> {
        let extra: Vec<u32> = record
            .fresh_reflectivity
            .iter()
            .map(|r| r.wavelength_nm)
            .filter(|wl| !is_standard_wavelength(*wl))
            .collect();
        let mut cells = Vec::new();
        for field in field_order(&extra) {
            let value = cell(record, field).map_err(|error| ExportError::NotRepresentable {
                serial: record.serial.clone(),
                error,
            })?;
            if !cells.iter().any(|(f, _)| *f == field) {
                cells.push((field, value));
            }
        }
        Ok(Self(cells))
    }
}

impl Serialize for JsonRecord<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (field, value) in &self.0 {
            let key = field.name();
            match value {
                Cell::Text(s) => map.serialize_entry(&key, s)?,
                Cell::Number(x) => map.serialize_entry(&key, x)?,
                Cell::Integer(n) => map.serialize_entry(&key, n)?,
                Cell::Bool(b) => map.serialize_entry(&key, b)?,
                Cell::Date(d) => map.serialize_entry(&key, d)?,
                Cell::Zernike(values) => map.serialize_entry(&key, values)?,
                Cell::Absent => map.serialize_entry(&key, &())?,
            }
        }
        map.end()
    }
}

/// `record` as one line of JSON (no trailing newline).
pub fn record_to_json(record: &SegmentRecord) -> std::result::Result<String, ExportError> {
    Ok(serde_json::to_string(&JsonRecord::new(record)?)?)
}

/// Writes `records` as a JSON array, one record per line.
pub fn write_json<W: Write>(
    mut writer: W,
    records: &[SegmentRecord],
) -> std::result::Result<W, ExportError> {
    writer.write_all(b"[")?;
    for (i, r) in records.iter().enumerate() {
        writer.write_all(if i == 0 { b"\n" } else { b",\n" })?;
        writer.write_all(record_to_json(r)?.as_bytes())?;
    }
    writer.write_all(b"\n]\n")?;
    writer.flush()?;
    Ok(writer)
}

/// Writes `records` as JSON Lines.
pub fn write_json_lines<W: Write>(
    mut writer: W,
    records: &[SegmentRecord],
) -> std::result::Result<W, ExportError> {
    for r in records {
        writer.write_all(record_to_json(r)?.as_bytes())?;
        writer.write_all(b"\n")?;
    }
    writer.flush()?;
    Ok(writer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_keys_are_kept() {
        let Entries(e) = serde_json::from_str(r#"{"a": 1, "a": 2}"#).unwrap();
        assert_eq!(e.len(), 2);
    }

    #[test]
    fn json_reasons_point_into_the_file() {
        let e = serde_json::from_slice::<Entries>(b"{\n\"a\": 1,,}").unwrap_err();
        assert_eq!(
            json_reason(&e, 10),
            "invalid JSON at line 11 column 8: key must be a string"
        );
        let e = serde_json::from_slice::<Entries>(b"[1]").unwrap_err();
        assert_eq!(json_reason(&e, 1), "is not a JSON object");
    }

    #[test]
    fn records_serialise_in_column_order() {
        let r = crate::samples::example_record();
        let text = record_to_json(&r).unwrap();
        assert!(
            text.starts_with(r#"{"serial":"CSOA-M1-T2-0007","segment_type":"T2","ring":2,"#),
            "{text}"
        );
        assert!(text.ends_with(r#""acceptance_notes":""}"#), "{text}");
    }
}

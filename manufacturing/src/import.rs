//! Entry points of the importers: choose the format, open a file, iterate.
//!
//! Every importer is an iterator of `Result<(row, SegmentRecord), ImportError>`
//! that reads its input as it goes: memory is bounded by one record (at most
//! [`MAX_RECORD_BYTES`]) plus the serials seen so far (for the duplicate
//! check), never the whole file. Row errors are yielded and the import goes
//! on; fatal errors ([`ImportError::is_fatal`]) end it.

use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::path::Path;

use crate::csv::CsvRecords;
use crate::error::{FieldError, ImportError, Result};
use crate::json::JsonRecords;
use crate::record::SegmentRecord;

/// Largest record (CSV line, JSON value or JSON line) the importers accept.
pub const MAX_RECORD_BYTES: usize = 1 << 20;

/// File formats of the optics centre's exports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// CSV with a header line (`.csv`).
    Csv,
    /// A JSON array of record objects, or objects one after the other (`.json`).
    Json,
    /// One record object per line (`.jsonl`, `.ndjson`).
    JsonLines,
}

impl Format {
    /// The format of a file name's extension (case-insensitive).
    pub fn from_path(path: &Path) -> Option<Format> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "csv" => Some(Format::Csv),
            "json" => Some(Format::Json),
            "jsonl" | "ndjson" => Some(Format::JsonLines),
            _ => None,
        }
    }
}

/// How to import.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportOptions {
    /// Ignore unknown columns (CSV) or keys (JSON) instead of reporting them.
    /// Columns of a known quantity in another unit are errors regardless.
    pub allow_extra: bool,
    /// The format; `None` chooses by the file's extension.
    pub format: Option<Format>,
}

/// Records of one file, in any format.
pub enum Records<R: Read> {
    /// From CSV.
    Csv(CsvRecords<R>),
    /// From JSON or JSON Lines.
    Json(JsonRecords<R>),
}

impl<R: Read> Iterator for Records<R> {
    type Item = Result<(u64, SegmentRecord)>;

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Records::Csv(r) => r.next(),
            Records::Json(r) => r.next(),
        }
    }
}

/// Reads records from `reader` in `format`; `file` names it in errors.
pub fn read<R: Read>(reader: R, file: &str, format: Format, options: &ImportOptions) -> Records<R> {
    match format {
        Format::Csv => Records::Csv(CsvRecords::new(reader, file, options)),
        Format::Json => Records::Json(JsonRecords::new(reader, file, options, false)),
        Format::JsonLines => Records::Json(JsonRecords::new(reader, file, options, true)),
    }
}

/// Opens `path` and reads its records; the format is `options.format` or
/// follows the extension.
pub fn open(path: impl AsRef<Path>, options: &ImportOptions) -> Result<Records<File>> {
    let path = path.as_ref();
    let file = path.display().to_string();
    let format = options
        .format
        .or_else(|| Format::from_path(path))
        .ok_or_else(|| ImportError::UnknownFormat { file: file.clone() })?;
    let reader = File::open(path).map_err(|source| ImportError::Io {
        file: file.clone(),
        source,
    })?;
    Ok(read(reader, &file, format, options))
}

/// Serials seen so far in one file, for the duplicate check.
#[derive(Debug, Default)]
pub(crate) struct SerialTracker {
    first_row: HashMap<String, u64>,
}

impl SerialTracker {
    /// Notes `serial` at `row`; an error when an earlier row had it.
    pub(crate) fn check(&mut self, serial: &str, row: u64) -> Option<FieldError> {
        if serial.is_empty() {
            return None;
        }
        if let Some(first) = self.first_row.get(serial) {
            return Some(FieldError::new(
                "serial",
                serial,
                format!("is a duplicate of row {first} in the same file"),
            ));
        }
        self.first_row.insert(serial.to_owned(), row);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_follows_the_extension() {
        assert_eq!(Format::from_path(Path::new("a/B.CSV")), Some(Format::Csv));
        assert_eq!(Format::from_path(Path::new("b.json")), Some(Format::Json));
        assert_eq!(
            Format::from_path(Path::new("c.jsonl")),
            Some(Format::JsonLines)
        );
        assert_eq!(
            Format::from_path(Path::new("d.ndjson")),
            Some(Format::JsonLines)
        );
        assert_eq!(Format::from_path(Path::new("e.xlsx")), None);
        assert_eq!(Format::from_path(Path::new("noext")), None);
    }

    #[test]
    fn unknown_extension_without_format_is_an_error() {
        let e = open("segments.xlsx", &ImportOptions::default()).err();
        assert!(
            matches!(e, Some(ImportError::UnknownFormat { .. })),
            "{e:?}"
        );
    }

    #[test]
    fn duplicate_serials_name_the_first_row() {
        let mut t = SerialTracker::default();
        assert_eq!(t.check("A-1", 1), None);
        assert_eq!(t.check("", 2), None);
        assert_eq!(t.check("", 3), None);
        let e = t.check("A-1", 4).unwrap();
        assert_eq!(
            e.to_string(),
            "serial: A-1 is a duplicate of row 1 in the same file"
        );
    }
}

//! Errors of this crate: a field-level error shared by validation, parsing and
//! proto conversion, import errors that name the file and row, and export
//! errors.

use std::fmt;
use std::io;

use obs_proto::v1::RecordError;

/// Result of the importers.
pub type Result<T, E = ImportError> = std::result::Result<T, E>;

/// One problem with one field of one record.
///
/// `field` uses the file-format names (`surface_figure_error_nm_rms`,
/// `fresh_reflectivity_650nm_pct`, `zernike_nm`). Displayed as
/// `field: value reason`, e.g.
/// `surface_figure_error_nm_rms: -3 is out of range 0..=100 nm RMS`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Field name as in the file formats.
    pub field: String,
    /// The offending value as text; empty when the value is missing.
    pub value: String,
    /// Why it is wrong, phrased to follow the value.
    pub reason: String,
}

/// Longest value quoted in an error message, in characters.
const MAX_VALUE_CHARS: usize = 80;

impl FieldError {
    /// A new error; long values are shortened so messages stay readable.
    pub fn new(
        field: impl Into<String>,
        value: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        let mut value = value.into();
        if let Some((cut, _)) = value.char_indices().nth(MAX_VALUE_CHARS) {
            value.truncate(cut);
            value.push('…');
        }
        Self {
            field: field.into(),
            value,
            reason: reason.into(),
        }
    }

    /// The message without the field name: `value reason`.
    pub fn message(&self) -> String {
        if self.value.is_empty() {
            self.reason.clone()
        } else {
            format!("{} {}", self.value, self.reason)
        }
    }

    /// As the wire type of an upload response.
    pub fn to_record_error(&self, row: u64, serial: &str) -> RecordError {
        RecordError {
            row,
            serial: serial.to_owned(),
            field: self.field.clone(),
            reason: self.message(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message())
    }
}

impl std::error::Error for FieldError {}

/// An error importing the optics centre's CSV or JSON export.
///
/// Row-level errors ([`ImportError::Field`], [`ImportError::Malformed`]) let the
/// import go on with the next record; the others are fatal and end it
/// ([`ImportError::is_fatal`]). `row` is the 1-based data row (CSV, not
/// counting the header) or record number (JSON array element, JSON Lines
/// record); `line` is the 1-based line of the file where the record starts.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The file could not be read.
    #[error("{file}: read failed: {source}")]
    Io {
        /// File name.
        file: String,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// The file has no header (CSV) or no content at all (JSON).
    #[error("{file}: the file is empty")]
    EmptyFile {
        /// File name.
        file: String,
    },
    /// A required column is missing from the CSV header.
    #[error("{file}: header: missing column `{column}`")]
    MissingColumn {
        /// File name.
        file: String,
        /// The expected column.
        column: String,
    },
    /// A column the format does not know (allowed with `allow_extra`).
    #[error("{file}: header: unknown column `{column}` (allow_extra ignores unknown columns)")]
    UnknownColumn {
        /// File name.
        file: String,
        /// The column found.
        column: String,
    },
    /// A known quantity with a different unit than the format specifies.
    /// Units are checked, never converted.
    #[error("{file}: header: column `{column}` has {found}, expected `{expected}` ({unit})")]
    WrongUnit {
        /// File name.
        file: String,
        /// The column found, e.g. `surface_figure_error_um_rms`.
        column: String,
        /// What was found, e.g. "unit `um_rms`" or "no unit".
        found: String,
        /// The expected column, e.g. `surface_figure_error_nm_rms`.
        expected: String,
        /// The expected unit in words, e.g. `nm RMS`.
        unit: String,
    },
    /// The same column appears twice in the CSV header.
    #[error("{file}: header: duplicate column `{column}`")]
    DuplicateColumn {
        /// File name.
        file: String,
        /// The repeated column.
        column: String,
    },
    /// One record is syntactically broken (wrong number of CSV fields, invalid
    /// JSON); the import goes on with the next record.
    #[error("{file}: row {row} (line {line}): {reason}")]
    Malformed {
        /// File name.
        file: String,
        /// 1-based data row or record number.
        row: u64,
        /// 1-based line where the record starts.
        line: u64,
        /// What is wrong.
        reason: String,
    },
    /// The file's structure is broken beyond the current record (an
    /// unterminated JSON array, a line over the size limit); the import stops.
    #[error("{file}: line {line}: {reason}")]
    Structure {
        /// File name.
        file: String,
        /// 1-based line where the problem was found.
        line: u64,
        /// What is wrong.
        reason: String,
    },
    /// A field of one record is wrong (bad number, date, enum value, unit of a
    /// JSON key, duplicate serial...); the import goes on with the next record.
    #[error("{file}: row {row} (line {line}): {error}")]
    Field {
        /// File name.
        file: String,
        /// 1-based data row or record number.
        row: u64,
        /// 1-based line where the record starts.
        line: u64,
        /// Serial of the record, when it could be read.
        serial: Option<String>,
        /// The field, value and reason (boxed to keep results small).
        error: Box<FieldError>,
    },
    /// The format could not be told from the file name.
    #[error("{file}: unknown format: name the file .csv, .json or .jsonl, or choose the format")]
    UnknownFormat {
        /// File name.
        file: String,
    },
}

impl ImportError {
    /// True when the import stops after this error.
    pub fn is_fatal(&self) -> bool {
        !matches!(
            self,
            ImportError::Field { .. } | ImportError::Malformed { .. }
        )
    }

    /// The 1-based data row or record number, for row-level errors.
    pub fn row(&self) -> Option<u64> {
        match self {
            ImportError::Field { row, .. } | ImportError::Malformed { row, .. } => Some(*row),
            _ => None,
        }
    }

    /// The field (or column) the error is about, when there is one.
    pub fn field(&self) -> Option<&str> {
        match self {
            ImportError::Field { error, .. } => Some(&error.field),
            ImportError::MissingColumn { column, .. }
            | ImportError::UnknownColumn { column, .. }
            | ImportError::WrongUnit { column, .. }
            | ImportError::DuplicateColumn { column, .. } => Some(column),
            _ => None,
        }
    }

    /// As the wire type of an upload response (row 0 for file-level errors).
    pub fn to_record_error(&self) -> RecordError {
        match self {
            ImportError::Field {
                row, serial, error, ..
            } => error.to_record_error(*row, serial.as_deref().unwrap_or_default()),
            other => RecordError {
                row: other.row().unwrap_or(0),
                serial: String::new(),
                field: other.field().unwrap_or_default().to_owned(),
                reason: other.to_string(),
            },
        }
    }
}

/// An error writing records as CSV or JSON.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// Writing failed.
    #[error("write failed: {0}")]
    Io(#[from] io::Error),
    /// The CSV writer failed.
    #[error("csv write failed: {0}")]
    Csv(#[from] ::csv::Error),
    /// The JSON serialiser failed.
    #[error("json write failed: {0}")]
    Json(#[from] serde_json::Error),
    /// The record has a value the file format cannot hold (a non-finite
    /// number, a duplicate Noll index, a wavelength without a column).
    #[error("record {serial}: {error}")]
    NotRepresentable {
        /// Serial of the record.
        serial: String,
        /// The field and why.
        error: FieldError,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_error_displays_field_value_and_reason() {
        let e = FieldError::new("mass_kg", "-3", "is out of range 1..=2000 kg");
        assert_eq!(e.to_string(), "mass_kg: -3 is out of range 1..=2000 kg");
        let e = FieldError::new("serial", "", "is missing");
        assert_eq!(e.to_string(), "serial: is missing");
    }

    #[test]
    fn long_values_are_shortened() {
        let e = FieldError::new("serial", "A".repeat(500), "is too long");
        assert_eq!(e.value.chars().count(), MAX_VALUE_CHARS + 1);
        assert!(e.value.ends_with('…'));
    }

    #[test]
    fn record_error_carries_row_serial_field_and_reason() {
        let e = ImportError::Field {
            file: "a.csv".into(),
            row: 4,
            line: 5,
            serial: Some("CSOA-M1-T1-0001".into()),
            error: Box::new(FieldError::new("mass_kg", "x", "is not a number")),
        };
        assert!(!e.is_fatal());
        let r = e.to_record_error();
        assert_eq!(
            (
                r.row,
                r.serial.as_str(),
                r.field.as_str(),
                r.reason.as_str()
            ),
            (4, "CSOA-M1-T1-0001", "mass_kg", "x is not a number")
        );
        assert_eq!(
            e.to_string(),
            "a.csv: row 4 (line 5): mass_kg: x is not a number"
        );
    }
}

//! Mirror segment manufacturing records: the record model, validation with
//! physical ranges and import from the optics centre's CSV and JSON exports.
//!
//! - [`SegmentRecord`]: every field the optics centre measures, units in the
//!   field names; lossless conversion to and from
//!   [`obs_proto::v1::SegmentRecord`] ([`proto`]).
//! - [`validate()`]: every error of a record as a [`FieldError`] naming the
//!   field, the value and the allowed range; [`warnings`] for soft limits.
//! - [`open`] / [`read`]: streaming importers for CSV, JSON arrays and JSON
//!   Lines yielding `Result<(row, SegmentRecord), ImportError>`; row errors
//!   do not stop the import.
//! - [`write_csv`], [`write_json`], [`write_json_lines`]: the same formats out.
//! - [`samples`]: deterministic sample records and the committed sample files.
//!
//! The file formats, units and validation ranges are documented in the
//! crate's `README.md`.
//!
//! ```
//! use obs_manufacturing::{ImportOptions, ValidationRules, open, sample_csv_path};
//! use time::macros::date;
//!
//! let rules = ValidationRules::new(date!(2025 - 06 - 01));
//! let mut accepted = 0;
//! for item in open(sample_csv_path(), &ImportOptions::default())? {
//!     let (row, record) = item?;
//!     assert!(record.validate(&rules).is_empty(), "row {row}");
//!     accepted += usize::from(record.acceptance_passed);
//! }
//! assert_eq!(accepted, 62);
//! # Ok::<(), obs_manufacturing::ImportError>(())
//! ```

mod cell;
pub mod csv;
pub mod error;
pub mod import;
pub mod json;
mod parse;
pub mod proto;
pub mod record;
pub mod samples;
pub mod schema;
pub mod validate;

pub use crate::csv::{CsvRecordWriter, CsvRecords, write_csv};
pub use crate::error::{ExportError, FieldError, ImportError, Result};
pub use crate::import::{Format, ImportOptions, MAX_RECORD_BYTES, Records, open, read};
pub use crate::json::{JsonRecords, record_to_json, write_json, write_json_lines};
pub use crate::parse::MAX_NOLL_INDEX;
pub use crate::record::{
    CoatingKind, Reflectivity, STANDARD_WAVELENGTHS_NM, SegmentRecord, Substrate, ZernikeTerm,
};
pub use crate::samples::{
    SAMPLE_SEED, example_record, generate_samples, sample_csv_path, sample_json_path,
    sample_jsonl_path,
};
pub use crate::validate::{ValidationRules, validate, warnings};

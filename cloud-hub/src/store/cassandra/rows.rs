//! Rows as bound to the prepared statements and as read back.
//!
//! A sample's value goes to one of four typed columns. Writing nulls to the
//! other three would leave three cell tombstones per row, and a day of 1 Hz
//! data would then trip Cassandra's tombstone thresholds on read; so the
//! unused columns are not written: a raw sample is inserted by the
//! statement of its value's type, which names only that column
//! ([`SampleValue`]), and a latest value binds the other three *unset*. A
//! row rewritten later with a value of another type therefore keeps the
//! old column too, and reads take the value column with the newest write
//! time, which is the one written last, as `INSERT OR REPLACE` in the
//! embedded store (ties, which only a rewrite inside the same microsecond
//! gives, go to double, int, bool, text, the order of SQLite's
//! `coalesce`). A sample without any value writes four nulls.

use obs_proto::v1::{Sample, sample};
use scylla::DeserializeRow;
use scylla::cluster::metadata::ColumnType;
use scylla::serialize::SerializationError;
use scylla::serialize::value::SerializeValue;
use scylla::serialize::writers::{CellWriter, WrittenCellProof};
use scylla::value::MaybeUnset;

use crate::ingest::{Aggregate, ExposureTotals};

/// A sample's value as bound to the raw-sample insert of its type, the
/// one value column that statement names (a sample without a value: the
/// statement that nulls all four, binding `value_double`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SampleValue<'a> {
    Double(f64),
    Int(i64),
    Bool(bool),
    Text(&'a str),
    Null,
}

impl<'a> SampleValue<'a> {
    pub fn of(sample: &'a Sample) -> Self {
        match &sample.value {
            Some(sample::Value::DoubleValue(v)) => Self::Double(*v),
            Some(sample::Value::IntValue(v)) => Self::Int(*v),
            Some(sample::Value::BoolValue(v)) => Self::Bool(*v),
            Some(sample::Value::StringValue(v)) => Self::Text(v),
            None => Self::Null,
        }
    }
}

impl SerializeValue for SampleValue<'_> {
    fn serialize<'b>(
        &self,
        typ: &ColumnType,
        writer: CellWriter<'b>,
    ) -> Result<WrittenCellProof<'b>, SerializationError> {
        match self {
            Self::Double(v) => v.serialize(typ, writer),
            Self::Int(v) => v.serialize(typ, writer),
            Self::Bool(v) => v.serialize(typ, writer),
            Self::Text(v) => v.serialize(typ, writer),
            Self::Null => Ok(writer.set_null()),
        }
    }
}

/// The four value columns of a latest-value INSERT.
pub type ValueBinds<'a> = (
    MaybeUnset<Option<f64>>,
    MaybeUnset<Option<i64>>,
    MaybeUnset<Option<bool>>,
    MaybeUnset<Option<&'a str>>,
);

/// Binds the value of `sample` (see the module docs).
pub fn value_binds(sample: &Sample) -> ValueBinds<'_> {
    use MaybeUnset::{Set, Unset};
    match &sample.value {
        Some(sample::Value::DoubleValue(v)) => (Set(Some(*v)), Unset, Unset, Unset),
        Some(sample::Value::IntValue(v)) => (Unset, Set(Some(*v)), Unset, Unset),
        Some(sample::Value::BoolValue(v)) => (Unset, Unset, Set(Some(*v)), Unset),
        Some(sample::Value::StringValue(v)) => (Unset, Unset, Unset, Set(Some(v.as_str()))),
        None => (Set(None), Set(None), Set(None), Set(None)),
    }
}

/// Columns read into [`SampleRow`], for `samples` and `latest`.
pub const SAMPLE_COLUMNS: &str = "device, attribute, ts, \
     value_double, writetime(value_double) AS wt_double, \
     value_int, writetime(value_int) AS wt_int, \
     value_bool, writetime(value_bool) AS wt_bool, \
     value_text, writetime(value_text) AS wt_text, \
     unit, quality";

/// A sample as read from `samples` or `latest`.
#[derive(Debug, Clone, Default, PartialEq, DeserializeRow)]
pub struct SampleRow {
    pub device: String,
    pub attribute: String,
    pub ts: i64,
    pub value_double: Option<f64>,
    pub wt_double: Option<i64>,
    pub value_int: Option<i64>,
    pub wt_int: Option<i64>,
    pub value_bool: Option<bool>,
    pub wt_bool: Option<i64>,
    pub value_text: Option<String>,
    pub wt_text: Option<i64>,
    pub unit: Option<String>,
    pub quality: Option<i32>,
}

impl SampleRow {
    /// The sample, its value taken from the column written last.
    pub fn into_sample(self) -> Sample {
        let candidates = [
            self.value_double
                .map(|v| (self.wt_double, sample::Value::DoubleValue(v))),
            self.value_int
                .map(|v| (self.wt_int, sample::Value::IntValue(v))),
            self.value_bool
                .map(|v| (self.wt_bool, sample::Value::BoolValue(v))),
            self.value_text
                .map(|v| (self.wt_text, sample::Value::StringValue(v))),
        ];
        let mut value: Option<(Option<i64>, sample::Value)> = None;
        for candidate in candidates.into_iter().flatten() {
            if value.as_ref().is_none_or(|(best, _)| candidate.0 > *best) {
                value = Some(candidate);
            }
        }
        Sample {
            device: self.device,
            attribute: self.attribute,
            ts_unix_ns: self.ts,
            value: value.map(|(_, v)| v),
            unit: self.unit.unwrap_or_default(),
            quality: self.quality.unwrap_or_default(),
        }
    }
}

/// A rollup row as read back.
#[derive(Debug, Clone, Copy, PartialEq, DeserializeRow)]
pub struct RollupRowCql {
    pub bucket: i64,
    pub min: f64,
    pub max: f64,
    pub sum: f64,
    pub count: i64,
}

impl RollupRowCql {
    /// The aggregate; `None` when the stored count is negative (never written so).
    pub fn aggregate(&self) -> Option<Aggregate> {
        Some(Aggregate {
            min: self.min,
            max: self.max,
            sum: self.sum,
            count: u64::try_from(self.count).ok()?,
        })
    }
}

/// Columns read into [`ExposureRowCql`].
pub const EXPOSURE_COLUMNS: &str = "open_dome_hours, dust_dose_ug_m3_h, calima_events, \
     humid_hours, dew_risk_hours, days_with_data";

/// Exposure totals as stored (`u32` counts are kept as `bigint`).
#[derive(Debug, Clone, Copy, PartialEq, DeserializeRow)]
pub struct ExposureRowCql {
    pub open_dome_hours: f64,
    pub dust_dose_ug_m3_h: f64,
    pub calima_events: i64,
    pub humid_hours: f64,
    pub dew_risk_hours: f64,
    pub days_with_data: i64,
}

impl ExposureRowCql {
    /// The totals; `None` when a count does not fit a `u32` (never written so).
    pub fn totals(&self) -> Option<ExposureTotals> {
        Some(ExposureTotals {
            open_dome_hours: self.open_dome_hours,
            dust_dose_ug_m3_h: self.dust_dose_ug_m3_h,
            calima_events: u32::try_from(self.calima_events).ok()?,
            humid_hours: self.humid_hours,
            dew_risk_hours: self.dew_risk_hours,
            days_with_data: u32::try_from(self.days_with_data).ok()?,
        })
    }
}

/// `dead_letters.site` is a key column and cannot be null: a letter whose
/// topic named no site is kept under the empty site id (never a valid one).
pub fn dead_letter_site(site: Option<&str>) -> &str {
    site.unwrap_or("")
}

/// The inverse of [`dead_letter_site`].
pub fn dead_letter_site_back(site: String) -> Option<String> {
    (!site.is_empty()).then_some(site)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row() -> SampleRow {
        SampleRow {
            device: "weather/station/1".into(),
            attribute: "relative_humidity".into(),
            ts: 7,
            unit: Some("%".into()),
            quality: Some(1),
            ..Default::default()
        }
    }

    #[test]
    fn the_value_written_last_wins() {
        let r = SampleRow {
            value_double: Some(1.5),
            wt_double: Some(10),
            value_int: Some(3),
            wt_int: Some(20),
            ..row()
        };
        assert_eq!(
            r.into_sample().value,
            Some(sample::Value::IntValue(3)),
            "int written after the double"
        );
        let r = SampleRow {
            value_double: Some(1.5),
            wt_double: Some(20),
            value_text: Some("x".into()),
            wt_text: Some(20),
            ..row()
        };
        assert_eq!(
            r.into_sample().value,
            Some(sample::Value::DoubleValue(1.5)),
            "a tie goes to coalesce order"
        );
        let s = row().into_sample();
        assert_eq!(
            (s.value, s.unit.as_str(), s.quality, s.ts_unix_ns),
            (None, "%", 1, 7)
        );
    }

    #[test]
    fn only_the_typed_column_is_set() {
        let sample = Sample {
            value: Some(sample::Value::BoolValue(true)),
            ..Default::default()
        };
        assert!(
            matches!(
                value_binds(&sample),
                (
                    MaybeUnset::Unset,
                    MaybeUnset::Unset,
                    MaybeUnset::Set(Some(true)),
                    MaybeUnset::Unset
                )
            ),
            "only value_bool is bound"
        );
        assert!(
            matches!(
                value_binds(&Sample::default()),
                (
                    MaybeUnset::Set(None),
                    MaybeUnset::Set(None),
                    MaybeUnset::Set(None),
                    MaybeUnset::Set(None)
                )
            ),
            "a sample without a value nulls all four"
        );
    }

    #[test]
    fn unknown_dead_letter_sites_round_trip_through_the_empty_id() {
        assert_eq!(dead_letter_site(None), "");
        assert_eq!(dead_letter_site_back(String::new()), None);
        assert_eq!(dead_letter_site_back("nrt".into()), Some("nrt".into()));
    }
}

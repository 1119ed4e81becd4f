//! Time stamps as the node writes and reads them: RFC 3339 for people and
//! files, Unix nanoseconds on the wire.

use std::time::{SystemTime, UNIX_EPOCH};

use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, PrimitiveDateTime, macros::format_description};

/// Now, Unix nanoseconds.
pub fn now_unix_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// Unix nanoseconds as RFC 3339 UTC, e.g. `2025-06-01T00:00:00Z`; out of
/// range values give the Unix epoch.
pub fn rfc3339_from_ns(unix_ns: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(unix_ns))
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
        .format(&Rfc3339)
        .unwrap_or_default()
}

/// A date-time as RFC 3339.
pub fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&Rfc3339).unwrap_or_default()
}

/// Parses RFC 3339 into Unix nanoseconds.
pub fn parse_rfc3339_ns(text: &str) -> Result<i64, String> {
    let at = OffsetDateTime::parse(text.trim(), &Rfc3339)
        .map_err(|e| format!("not an RFC 3339 date-time ({e})"))?;
    ns_of(at)
}

/// Parses a naive `YYYY-MM-DD HH:MM:SS[.fraction]` (also with a `T`),
/// taken as UTC, into Unix nanoseconds.
pub fn parse_naive_utc_ns(text: &str) -> Result<i64, String> {
    let text = text.trim();
    let with_space = format_description!(
        version = 2,
        "[year]-[month]-[day] [hour]:[minute]:[second][optional [.[subsecond]]]"
    );
    let with_t = format_description!(
        version = 2,
        "[year]-[month]-[day]T[hour]:[minute]:[second][optional [.[subsecond]]]"
    );
    let at = PrimitiveDateTime::parse(text, &with_space)
        .or_else(|_| PrimitiveDateTime::parse(text, &with_t))
        .map_err(|e| format!("not a date-time ({e})"))?;
    ns_of(at.assume_utc())
}

fn ns_of(at: OffsetDateTime) -> Result<i64, String> {
    i64::try_from(at.unix_timestamp_nanos()).map_err(|_| "out of range".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_tango_companion_format_and_rfc3339() {
        let naive = parse_naive_utc_ns("2024-08-15 10:57:57.192446").unwrap();
        assert_eq!(naive, 1_723_719_477_192_446_000);
        assert_eq!(
            parse_naive_utc_ns("2024-08-15T10:57:57").unwrap(),
            1_723_719_477_000_000_000
        );
        assert_eq!(
            parse_rfc3339_ns("2024-08-15T12:57:57.192446+02:00").unwrap(),
            naive
        );
        assert!(parse_naive_utc_ns("15/08/2024").is_err());
        assert!(parse_rfc3339_ns("2024-08-15 10:57:57").is_err());
        assert_eq!(rfc3339_from_ns(naive), "2024-08-15T10:57:57.192446Z");
    }
}

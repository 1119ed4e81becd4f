//! Partition keys of the time-series tables: the UTC day of a raw sample or
//! a 1-minute bucket, the UTC month of a 1-hour bucket.
//!
//! Both are plain `int`s (days since 1970-01-01, months since 1970-01) so the
//! CQL is the same on Cassandra 4/5 and ScyllaDB and no date type has to be
//! converted. A bucket never straddles two partitions: minutes and hours
//! both divide a UTC day.

use std::ops::RangeInclusive;

const NS_PER_S: i64 = 1_000_000_000;
const S_PER_DAY: i64 = 86_400;

/// Clamps to `i32`: every day or month of an `i64` nanosecond time fits, this
/// only guards the arithmetic.
fn clamp_i32(value: i64) -> i32 {
    value.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32
}

/// The UTC day (days since 1970-01-01) of a time in Unix nanoseconds.
pub fn day_of_ns(ts_unix_ns: i64) -> i32 {
    clamp_i32(ts_unix_ns.div_euclid(NS_PER_S * S_PER_DAY))
}

/// The UTC day of a time in Unix seconds.
pub fn day_of_s(ts_unix_s: i64) -> i32 {
    clamp_i32(ts_unix_s.div_euclid(S_PER_DAY))
}

/// The UTC month (months since 1970-01) of a time in Unix seconds.
pub fn month_of_s(ts_unix_s: i64) -> i32 {
    let (year, month) = civil_from_days(ts_unix_s.div_euclid(S_PER_DAY));
    clamp_i32((year - 1970) * 12 + i64::from(month) - 1)
}

/// Year and month (1..=12) of a day number, proleptic Gregorian calendar
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month as u32)
}

/// The day partitions holding times in `[from_ns, to_ns)`, oldest first;
/// `None` when the range is empty.
pub fn days_of_ns_range(from_ns: i64, to_ns: i64) -> Option<RangeInclusive<i32>> {
    (from_ns < to_ns).then(|| day_of_ns(from_ns)..=day_of_ns(to_ns - 1))
}

/// The partitions (per `partition_of`) holding bucket starts in
/// `[from_s, to_s)`, oldest first; `None` when the range is empty.
pub fn partitions_of_s_range(
    from_s: i64,
    to_s: i64,
    partition_of: fn(i64) -> i32,
) -> Option<RangeInclusive<i32>> {
    (from_s < to_s).then(|| partition_of(from_s)..=partition_of(to_s - 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY_2026_01_01: i64 = 20_454;

    #[test]
    fn days_floor_towards_negative_infinity() {
        assert_eq!(day_of_ns(0), 0);
        assert_eq!(day_of_ns(-1), -1);
        assert_eq!(day_of_ns(DAY_2026_01_01 * 86_400 * NS_PER_S), 20_454);
        assert_eq!(day_of_ns(DAY_2026_01_01 * 86_400 * NS_PER_S - 1), 20_453);
        assert_eq!(day_of_s(-86_400), -1);
        assert_eq!(day_of_s(-86_401), -2);
        // The extremes of i64 nanoseconds stay inside i32 days.
        assert_eq!(day_of_ns(i64::MAX), 106_751);
        assert_eq!(day_of_ns(i64::MIN), -106_752);
    }

    #[test]
    fn months_follow_the_calendar() {
        let month_of_day = |day: i64| month_of_s(day * 86_400);
        assert_eq!(month_of_day(0), 0, "1970-01");
        assert_eq!(month_of_day(-1), -1, "1969-12");
        assert_eq!(month_of_day(DAY_2026_01_01), 672, "2026-01");
        assert_eq!(month_of_day(DAY_2026_01_01 - 1), 671, "2025-12");
        assert_eq!(month_of_day(19_782), 649, "2024-02-29");
        assert_eq!(month_of_day(19_783), 650, "2024-03-01");
        assert_eq!(month_of_day(11_017), 362, "2000-03-01");
        assert_eq!(month_of_day(-25_509), -839, "1900-02-28");
        assert_eq!(month_of_s(DAY_2026_01_01 * 86_400 - 1), 671);
    }

    #[test]
    fn ranges_cover_first_to_last_and_are_empty_when_reversed() {
        let day = 86_400 * NS_PER_S;
        assert_eq!(days_of_ns_range(0, day), Some(0..=0));
        assert_eq!(days_of_ns_range(0, day + 1), Some(0..=1));
        assert_eq!(days_of_ns_range(-1, 1), Some(-1..=0));
        assert_eq!(days_of_ns_range(5, 5), None);
        assert_eq!(
            partitions_of_s_range(0, 31 * 86_400 + 1, month_of_s),
            Some(0..=1)
        );
        assert_eq!(partitions_of_s_range(10, 0, day_of_s), None);
    }
}

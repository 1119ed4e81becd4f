//! Wall-clock helpers.

use std::time::{SystemTime, UNIX_EPOCH};

/// Now, Unix nanoseconds.
pub fn now_unix_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

//! The one place where domain errors become gRPC statuses, and time
//! conversions of the API.

use prost_types::Timestamp;
use tonic::Status;

use crate::store::StoreError;

/// A store failure: `UNAVAILABLE` (the client may retry), details logged.
pub fn store_status(error: StoreError) -> Status {
    tracing::error!(%error, "store call failed");
    Status::unavailable(format!("store unavailable: {error}"))
}

/// Unix ns of a timestamp (saturating).
pub fn time_to_ns(ts: &Timestamp) -> i64 {
    ts.seconds
        .saturating_mul(1_000_000_000)
        .saturating_add(i64::from(ts.nanos))
}

/// A timestamp from Unix ns.
pub fn time_from_ns(ns: i64) -> Timestamp {
    Timestamp {
        seconds: ns.div_euclid(1_000_000_000),
        nanos: ns.rem_euclid(1_000_000_000) as i32,
    }
}

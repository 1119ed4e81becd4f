//! The cloud-hub: collects every site's telemetry, keeps the mirror segments'
//! manufacturing records and serves fleet-wide mirror health.

pub mod cli;
pub mod ingest;
pub mod store;
pub mod time;

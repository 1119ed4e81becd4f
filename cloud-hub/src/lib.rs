//! The cloud-hub: collects every site's telemetry, keeps the mirror segments'
//! manufacturing records and serves fleet-wide mirror health.

pub mod cli;

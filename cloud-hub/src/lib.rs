//! The cloud-hub: collects every site's telemetry, keeps the mirror segments'
//! manufacturing records and serves fleet-wide mirror health.

pub mod access;
pub mod api;
pub mod bridge;
pub mod cli;
pub mod config;
pub mod dashboard;
pub mod demo;
pub mod enroll;
pub mod health;
pub mod http;
pub mod ingest;
pub mod ingress;
pub mod live;
pub mod metrics;
pub mod pki;
pub mod server;
pub mod sink;
pub mod store;
pub mod stream;
pub mod time;

//! `obsctl`: the operator's gRPC client for the observatory hub.

pub mod cli;
pub mod client;
pub mod fleet;
pub mod output;
pub mod segments;
pub mod sites;
pub mod telemetry;

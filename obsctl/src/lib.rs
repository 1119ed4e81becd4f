//! `obsctl`: the operator's gRPC client for the observatory hub.

pub mod cli;

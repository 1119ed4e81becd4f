//! The fog-node: runs on each telescope's site, bridges its devices to the
//! hub over mTLS MQTT and keeps every sample in a durable spool until the hub
//! acknowledges it.

pub mod cli;
pub mod commands;
pub mod config;
pub mod devices;
pub mod enroll;
pub mod error;
pub mod identity;
pub mod metrics;
pub mod node;
pub mod sim;
pub mod simulate;
pub mod simulated;
pub mod spool;
pub mod spool_writer;
pub mod status;
pub mod tango;
pub mod timefmt;
pub mod uplink;

pub use error::{Error, Result};

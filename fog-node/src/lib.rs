//! The fog-node: runs on each telescope's site, bridges its devices to the
//! hub over mTLS MQTT and keeps every sample in a durable spool until the hub
//! acknowledges it.

pub mod cli;
pub mod devices;
pub mod sim;
pub mod spool;

//! Shared pieces of the observatory hub used by every binary.

pub mod config;
pub mod error;
pub mod grpc;
pub mod logging;
pub mod pki;
pub mod shutdown;
pub mod site;
pub mod tls;

pub use error::{Error, Result};

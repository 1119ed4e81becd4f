//! Where fog-node messages enter the hub: the embedded rumqttd broker (or,
//! later, a client of an external broker). Every ingress hands the bridge
//! [`Inbound`] messages over a bounded channel and publishes acks for it.

pub mod embedded;
pub mod external;

use bytes::Bytes;

/// A message a fog-node published.
#[derive(Debug, Clone)]
pub struct Inbound {
    pub topic: String,
    pub payload: Bytes,
}

/// Publishes hub messages to sites (acks).
pub trait Outbound: Send + Sync + 'static {
    /// Publishes `payload` on `topic`; failures are logged by the caller.
    fn publish(&self, topic: String, payload: Bytes) -> Result<(), String>;
}

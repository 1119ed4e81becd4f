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

/// Whether the ingress can take fog-node messages now, for `/readyz`: the
/// embedded broker's link is alive, or the hub is connected to the
/// external broker. Cheap to clone; set by the ingress, read by the probe.
#[derive(Debug, Clone)]
pub struct BrokerStatus {
    inner: std::sync::Arc<std::sync::RwLock<Result<String, String>>>,
}

impl BrokerStatus {
    /// A status that is down for `reason` until [`up`](Self::up) is called.
    pub fn down_until_up(reason: impl Into<String>) -> Self {
        BrokerStatus {
            inner: std::sync::Arc::new(std::sync::RwLock::new(Err(reason.into()))),
        }
    }

    /// The ingress works: `what` says which (e.g. "embedded link alive").
    pub fn up(&self, what: impl Into<String>) {
        if let Ok(mut state) = self.inner.write() {
            *state = Ok(what.into());
        }
    }

    /// The ingress does not work, for `reason`.
    pub fn down(&self, reason: impl Into<String>) {
        if let Ok(mut state) = self.inner.write() {
            *state = Err(reason.into());
        }
    }

    /// `Ok(what works)` or `Err(why not)`.
    pub fn get(&self) -> Result<String, String> {
        self.inner
            .read()
            .map(|state| state.clone())
            .unwrap_or_else(|_| Err("broker status lock poisoned".into()))
    }
}

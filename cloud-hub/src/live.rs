//! What the hub knows about each site right now, in memory: the last
//! `NodeStatus` it published and when the hub last acknowledged it.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use obs_proto::v1::{NodeState, NodeStatus};

/// Live view of one site.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SiteLive {
    pub status: Option<NodeStatus>,
    pub last_ack_unix_ns: Option<i64>,
    pub dead_lettered: u64,
}

impl SiteLive {
    /// Whether the node's last status says it is online.
    pub fn connected(&self) -> bool {
        self.status
            .as_ref()
            .is_some_and(|s| s.state == NodeState::Online as i32)
    }
}

/// Shared, cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct LiveSites {
    inner: Arc<RwLock<BTreeMap<String, SiteLive>>>,
}

impl LiveSites {
    fn update(&self, site: &str, f: impl FnOnce(&mut SiteLive)) {
        if let Ok(mut map) = self.inner.write() {
            f(map.entry(site.to_owned()).or_default());
        }
    }

    pub fn set_status(&self, site: &str, status: NodeStatus) {
        self.update(site, |live| live.status = Some(status));
    }

    pub fn acked(&self, site: &str, at_unix_ns: i64) {
        self.update(site, |live| live.last_ack_unix_ns = Some(at_unix_ns));
    }

    pub fn dead_lettered(&self, site: &str) {
        self.update(site, |live| live.dead_lettered += 1);
    }

    /// A copy of one site's view.
    pub fn get(&self, site: &str) -> SiteLive {
        self.inner
            .read()
            .ok()
            .and_then(|map| map.get(site).cloned())
            .unwrap_or_default()
    }

    /// Sites seen so far.
    pub fn sites(&self) -> Vec<String> {
        self.inner
            .read()
            .map(|map| map.keys().cloned().collect())
            .unwrap_or_default()
    }
}

//! [`SiteRegistry`]: which sites are active, in memory, for the checks on
//! the hot path (every batch the bridge takes, every MQTT connect of the
//! embedded broker).
//!
//! This hub's own enrolments and revocations update it at once. A refresh
//! task reloads it from the store every [`REFRESH_INTERVAL`], so a
//! revocation made through another hub replica takes effect here within
//! that period; an entry this hub set after a refresh started is never
//! overwritten by that refresh. A site that is not active in memory is
//! looked up in the store before it is refused, so a site enrolled through
//! another replica is admitted at once. The refresh task is
//! [`Enrollment::keep_fresh`](super::Enrollment::keep_fresh).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::store::StoreResult;
use crate::store::registry::{RegistryStore, SiteRecord, SiteState};

/// How often the registry is reloaded from the store.
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(3);

#[derive(Debug, Default)]
struct Known {
    states: HashMap<String, SiteState>,
    /// Bumped by every local change.
    epoch: u64,
    /// Epoch of the last local change of a site.
    changed_at: HashMap<String, u64>,
}

/// Shared, cheap to clone.
#[derive(Clone)]
pub struct SiteRegistry {
    known: Arc<RwLock<Known>>,
    store: Arc<dyn RegistryStore>,
    /// Held (shared) by the bridge while it checks and makes durable one
    /// message; a revocation takes it exclusively once, after changing the
    /// state, so that when `RevokeSite` returns no batch admitted before it
    /// is still being written.
    gate: Arc<tokio::sync::RwLock<()>>,
}

impl std::fmt::Debug for SiteRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SiteRegistry").finish_non_exhaustive()
    }
}

impl SiteRegistry {
    /// An empty registry over `store` (call [`refresh`](Self::refresh) before use).
    pub fn new(store: Arc<dyn RegistryStore>) -> Self {
        SiteRegistry {
            known: Arc::new(RwLock::new(Known::default())),
            store,
            gate: Arc::new(tokio::sync::RwLock::new(())),
        }
    }

    /// A registry loaded from `store`.
    pub async fn load(store: Arc<dyn RegistryStore>) -> StoreResult<Self> {
        let registry = SiteRegistry::new(store);
        registry.refresh().await?;
        Ok(registry)
    }

    /// The state this hub knows for `site`, without asking the store.
    pub fn state(&self, site: &str) -> Option<SiteState> {
        self.known
            .read()
            .ok()
            .and_then(|known| known.states.get(site).copied())
    }

    /// Sites known to be revoked, sorted.
    pub fn revoked(&self) -> Vec<String> {
        let mut sites: Vec<String> = self
            .known
            .read()
            .map(|known| {
                known
                    .states
                    .iter()
                    .filter(|(_, state)| **state == SiteState::Revoked)
                    .map(|(site, _)| site.clone())
                    .collect()
            })
            .unwrap_or_default();
        sites.sort();
        sites
    }

    /// Held by the bridge around the check and write of one message.
    pub async fn ingest_gate(&self) -> tokio::sync::OwnedRwLockReadGuard<()> {
        self.gate.clone().read_owned().await
    }

    /// Waits until no message admitted before now is still being handled.
    pub async fn drain_ingest(&self) {
        drop(self.gate.write().await);
    }

    /// Records a change this hub made (enrolment, revocation) at once.
    pub fn set(&self, site: &str, state: SiteState) {
        if let Ok(mut known) = self.known.write() {
            known.epoch += 1;
            let epoch = known.epoch;
            known.states.insert(site.to_owned(), state);
            known.changed_at.insert(site.to_owned(), epoch);
        }
    }

    /// Whether batches and connections of `site` are admitted: active in
    /// memory, or else active in the store (then remembered).
    pub async fn admits(&self, site: &str) -> bool {
        if self.state(site) == Some(SiteState::Active) {
            return true;
        }
        let epoch = self.epoch();
        match self.store.get_site(site).await {
            Ok(Some(record)) => {
                self.apply(std::iter::once((record.site, record.state)), epoch, false);
                self.state(site) == Some(SiteState::Active)
            }
            Ok(None) => false,
            Err(error) => {
                tracing::warn!(%error, site, "cannot read the site registry; refusing the site");
                false
            }
        }
    }

    fn epoch(&self) -> u64 {
        self.known.read().map(|known| known.epoch).unwrap_or(0)
    }

    /// Applies states read from the store when this hub's epoch was
    /// `started`; sites this hub changed since are kept. With `complete`,
    /// sites missing from `states` are forgotten.
    fn apply(
        &self,
        states: impl IntoIterator<Item = (String, SiteState)>,
        started: u64,
        complete: bool,
    ) {
        let Ok(mut known) = self.known.write() else {
            return;
        };
        let Known {
            states: current,
            changed_at,
            ..
        } = &mut *known;
        let newer = |site: &str| changed_at.get(site).is_some_and(|epoch| *epoch > started);
        let mut next: HashMap<String, SiteState> = if complete {
            current
                .iter()
                .filter(|(site, _)| newer(site))
                .map(|(site, state)| (site.clone(), *state))
                .collect()
        } else {
            std::mem::take(current)
        };
        for (site, state) in states {
            if !newer(&site) {
                next.insert(site, state);
            }
        }
        *current = next;
        changed_at.retain(|_, epoch| *epoch > started);
    }

    /// Reloads every site from the store; returns the records read.
    pub async fn refresh(&self) -> StoreResult<Vec<SiteRecord>> {
        let started = self.epoch();
        let sites = self.store.list_sites().await?;
        self.apply(
            sites.iter().map(|s| (s.site.clone(), s.state)),
            started,
            true,
        );
        Ok(sites)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sqlite::SqliteStore;

    #[tokio::test]
    async fn local_changes_win_over_an_older_refresh_and_the_store_is_asked_on_a_miss() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open(&dir.path().join("hub.sqlite")).unwrap());
        let mut record = SiteRecord::pending("nrt", 1);
        record.state = SiteState::Active;
        store.put_site(&record).await.unwrap();
        let registry = SiteRegistry::load(store.clone()).await.unwrap();
        assert_eq!(registry.state("nrt"), Some(SiteState::Active));

        // A refresh that read the store before a local revocation does not
        // bring the site back.
        let started = registry.epoch();
        registry.set("nrt", SiteState::Revoked);
        registry.apply([("nrt".to_string(), SiteState::Active)], started, true);
        assert_eq!(registry.state("nrt"), Some(SiteState::Revoked));
        assert_eq!(registry.revoked(), vec!["nrt".to_string()]);

        // Enrolled through another replica: admitted after a store lookup.
        let mut other = SiteRecord::pending("lsst", 1);
        other.state = SiteState::Active;
        store.put_site(&other).await.unwrap();
        assert_eq!(registry.state("lsst"), None);
        assert!(registry.admits("lsst").await);
        assert!(!registry.admits("nosuch").await);
        // A revocation as `RevokeSite` makes it: store first, then memory.
        record.state = SiteState::Revoked;
        store.put_site(&record).await.unwrap();
        registry.set("nrt", SiteState::Revoked);
        assert!(!registry.admits("nrt").await);
        registry.refresh().await.unwrap();
        assert_eq!(registry.state("lsst"), Some(SiteState::Active));
        assert_eq!(registry.state("nrt"), Some(SiteState::Revoked));
    }
}

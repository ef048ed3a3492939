//! The persistent backends' cache of clients, read on every request: filled on first
//! lookup, emptied when the database's change counter for clients moved (bumped by
//! triggers, so a client changed by another process or node is seen within
//! [`CLIENT_CACHE_CHECK`]).

use std::collections::HashMap;
use std::sync::RwLock;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use oidc_flow::Client;

/// How often the cache asks the database whether clients changed (one read of a counter):
/// a client removed or changed elsewhere is seen within this time.
pub(crate) const CLIENT_CACHE_CHECK: Duration = Duration::from_secs(1);

/// Clients by id, with the change counter they were read under.
pub(crate) struct ClientCache {
    clients: RwLock<HashMap<String, Client>>,
    /// The `clients` change counter the cache was filled under.
    version: AtomicI64,
    /// When the counter was last read, in milliseconds since `opened`.
    checked_ms: AtomicU64,
    opened: Instant,
    /// Bumped by every [`ClientCache::clear`]: a client read from the database before a
    /// clear may be older than the change that caused it, and is not cached.
    generation: AtomicU64,
}

impl ClientCache {
    /// An empty cache at change counter `version`.
    pub(crate) fn new(version: i64) -> Self {
        Self {
            clients: RwLock::default(),
            version: AtomicI64::new(version),
            checked_ms: AtomicU64::new(0),
            opened: Instant::now(),
            generation: AtomicU64::new(0),
        }
    }

    /// Whether the caller is to read the change counter now: once per
    /// [`CLIENT_CACHE_CHECK`], by one caller; the others keep serving from the cache.
    pub(crate) fn check_due(&self) -> bool {
        let now_ms = u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
        let last = self.checked_ms.load(Ordering::Relaxed);
        let due = now_ms.saturating_sub(last)
            >= u64::try_from(CLIENT_CACHE_CHECK.as_millis()).unwrap_or(u64::MAX);
        due && self
            .checked_ms
            .compare_exchange(last, now_ms, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
    }

    /// Records the change counter just read; empties the cache if it moved.
    pub(crate) fn observe(&self, version: i64) {
        if self.version.swap(version, Ordering::AcqRel) != version {
            self.clear();
        }
    }

    /// The cached client `client_id`.
    pub(crate) fn get(&self, client_id: &str) -> Option<Client> {
        self.clients
            .read()
            .ok()
            .and_then(|m| m.get(client_id).cloned())
    }

    /// The generation to hand to [`ClientCache::insert`]: read it before reading the
    /// client from the database.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Caches `client`, read from the database after [`ClientCache::generation`] said
    /// `generation`, unless the cache was cleared since (the read may predate the change).
    pub(crate) fn insert(&self, client: &Client, generation: u64) {
        if let Ok(mut cache) = self.clients.write()
            && self.generation.load(Ordering::Acquire) == generation
        {
            cache.insert(client.client_id.clone(), client.clone());
        }
    }

    /// Empties the cache (after this process changed a client).
    pub(crate) fn clear(&self) {
        if let Ok(mut cache) = self.clients.write() {
            self.generation.fetch_add(1, Ordering::AcqRel);
            cache.clear();
        }
    }
}

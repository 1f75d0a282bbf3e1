//! Nodes' container lists, kept for a moment between `docker ps` requests.
//!
//! A list read from an engine stays usable while nothing it shows can have
//! changed: the engine's [generation](crate::engine::Engine::generation)
//! is the one read before the list was asked for (it moves on with every
//! changing request the manager sends the engine and with every event the
//! manager sees from it), the engine's events are followed, the node's
//! name is the same, and the list is younger than the cache's age limit
//! (`swarm manage --list-cache`, 2 s by default). The limit bounds how far
//! the `Status` texts (`Up 5 seconds`) lag behind; a list past half of it
//! is still served once, while a fresh one is read in the background.
//! Lists nobody asks for are dropped once too old.
//!
//! Only requests without filters or sizes use it: one list per node and
//! per request path (API version and `all`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use super::listing::NodeListing;

/// What the cache holds for one node and path.
#[derive(Debug)]
pub enum Lookup {
    /// Serve it.
    Fresh(Arc<NodeListing>),
    /// Serve it, and read the node's list again: the caller must call
    /// [`ListCache::store`] or [`ListCache::refresh_failed`].
    Ageing(Arc<NodeListing>),
    /// Read the node's list.
    Missing,
}

/// One node's list as read.
struct Entry {
    listing: Arc<NodeListing>,
    node_name: String,
    generation: u64,
    read_at: Instant,
    refreshing: bool,
}

#[derive(Default)]
struct Entries {
    /// Node ID → request path → list.
    by_node: HashMap<String, HashMap<String, Entry>>,
    /// Whether a task drops the lists that grew too old.
    sweeping: bool,
}

/// Background reads at one time: lists read together age together, and a
/// thousand engines asked at once would hold up the requests being served.
const REFRESHING_AT_ONCE: usize = 8;

/// Nodes' container lists by node and request path.
pub struct ListCache {
    entries: Mutex<Entries>,
    /// How long a list may be served after it was read (zero: never).
    fresh_for: Duration,
    refreshing: Arc<tokio::sync::Semaphore>,
}

impl ListCache {
    /// A cache serving each list for `fresh_for` after it was read, and
    /// reading it again in the background once half of that passed.
    pub fn new(fresh_for: Duration) -> ListCache {
        ListCache {
            entries: Mutex::default(),
            fresh_for,
            refreshing: Arc::new(tokio::sync::Semaphore::new(REFRESHING_AT_ONCE)),
        }
    }

    /// Waits for a turn to read a list in the background (see
    /// [`Lookup::Ageing`]); the turn ends when the permit is dropped.
    pub async fn refresh_turn(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        self.refreshing.clone().acquire_owned().await.ok()
    }

    /// Whether lists are kept at all.
    pub fn enabled(&self) -> bool {
        !self.fresh_for.is_zero()
    }

    /// What it holds for `path` on `node` (named `node_name`), whose engine
    /// is now at `generation`.
    pub fn lookup(&self, node: &str, node_name: &str, path: &str, generation: u64) -> Lookup {
        let mut entries = self.lock();
        let Some(entry) = entries.by_node.get_mut(node).and_then(|p| p.get_mut(path)) else {
            return Lookup::Missing;
        };
        let age = entry.read_at.elapsed();
        if entry.generation != generation || entry.node_name != node_name || age >= self.fresh_for {
            return Lookup::Missing;
        }
        if age >= self.fresh_for / 2 && !entry.refreshing {
            entry.refreshing = true;
            return Lookup::Ageing(entry.listing.clone());
        }
        Lookup::Fresh(entry.listing.clone())
    }

    /// Keeps `listing`, read from `node` for `path` while its engine was at
    /// `generation` (read before the request was sent).
    pub fn store(
        self: &Arc<Self>,
        node: &str,
        node_name: &str,
        path: &str,
        generation: u64,
        listing: Arc<NodeListing>,
    ) {
        if !self.enabled() {
            return;
        }
        let mut entries = self.lock();
        entries.by_node.entry(node.to_string()).or_default().insert(
            path.to_string(),
            Entry {
                listing,
                node_name: node_name.to_string(),
                generation,
                read_at: Instant::now(),
                refreshing: false,
            },
        );
        if !entries.sweeping {
            entries.sweeping = true;
            let cache = Arc::downgrade(self);
            let every = self.fresh_for;
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(every).await;
                    let Some(cache) = cache.upgrade() else {
                        return;
                    };
                    let mut entries = cache.lock();
                    entries.sweep(every);
                    if entries.by_node.is_empty() {
                        entries.sweeping = false;
                        return;
                    }
                }
            });
        }
    }

    /// A background read of `path` on `node` failed: the next request
    /// that finds the list ageing tries again.
    pub fn refresh_failed(&self, node: &str, path: &str) {
        if let Some(entry) = self
            .lock()
            .by_node
            .get_mut(node)
            .and_then(|p| p.get_mut(path))
        {
            entry.refreshing = false;
        }
    }

    /// Drops the lists of nodes for which `keep` is false.
    pub fn retain_nodes(&self, keep: impl Fn(&str) -> bool) {
        self.lock().by_node.retain(|node, _| keep(node));
    }

    /// Containers and bytes held, for tests and figures.
    pub fn held(&self) -> (usize, usize) {
        let entries = self.lock();
        entries
            .by_node
            .values()
            .flat_map(HashMap::values)
            .fold((0, 0), |(n, b), e| {
                (n + e.listing.containers(), b + e.listing.size())
            })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Entries {
    /// Drops the lists older than `fresh_for`.
    fn sweep(&mut self, fresh_for: Duration) {
        self.by_node.retain(|_, paths| {
            paths.retain(|_, e| e.read_at.elapsed() < fresh_for);
            !paths.is_empty()
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listing(body: &str) -> Arc<NodeListing> {
        Arc::new(NodeListing::parse("n1", body.as_bytes()).expect("parses"))
    }

    #[tokio::test(start_paused = true)]
    async fn served_while_unchanged_and_young_then_dropped() {
        const FRESH_FOR: Duration = Duration::from_secs(2);
        const REFRESH_AFTER: Duration = Duration::from_secs(1);
        let cache = Arc::new(ListCache::new(FRESH_FOR));
        let path = "/containers/json?all=1";
        assert!(matches!(cache.lookup("n1", "a", path, 7), Lookup::Missing));
        cache.store("n1", "a", path, 7, listing(r#"[{"Id":"x","Created":1}]"#));
        assert!(
            matches!(cache.lookup("n1", "a", path, 7), Lookup::Fresh(l) if l.containers() == 1)
        );
        // Another path, generation or node name: not the same list.
        assert!(matches!(
            cache.lookup("n1", "a", "/containers/json", 7),
            Lookup::Missing
        ));
        assert!(matches!(cache.lookup("n1", "a", path, 8), Lookup::Missing));
        assert!(matches!(cache.lookup("n1", "b", path, 7), Lookup::Missing));
        assert!(matches!(cache.lookup("n2", "a", path, 7), Lookup::Missing));
        // Ageing: served, and only one request is asked to read it again.
        tokio::time::advance(REFRESH_AFTER).await;
        assert!(matches!(
            cache.lookup("n1", "a", path, 7),
            Lookup::Ageing(_)
        ));
        assert!(matches!(cache.lookup("n1", "a", path, 7), Lookup::Fresh(_)));
        cache.refresh_failed("n1", path);
        assert!(matches!(
            cache.lookup("n1", "a", path, 7),
            Lookup::Ageing(_)
        ));
        // Too old: not served, and swept away.
        tokio::time::advance(FRESH_FOR - REFRESH_AFTER).await;
        assert!(matches!(cache.lookup("n1", "a", path, 7), Lookup::Missing));
        tokio::time::sleep(FRESH_FOR).await;
        assert_eq!(cache.held(), (0, 0));
        // Nodes that left are dropped at once.
        cache.store("n1", "a", path, 7, listing("[]"));
        cache.store("n2", "b", path, 9, listing(r#"[{"Id":"y"}]"#));
        cache.retain_nodes(|n| n == "n1");
        assert!(matches!(cache.lookup("n2", "b", path, 9), Lookup::Missing));
        assert!(matches!(cache.lookup("n1", "a", path, 7), Lookup::Fresh(_)));
        // Zero: nothing kept.
        let off = Arc::new(ListCache::new(Duration::ZERO));
        off.store("n1", "a", path, 7, listing("[]"));
        assert!(matches!(off.lookup("n1", "a", path, 7), Lookup::Missing));
        assert_eq!(off.held(), (0, 0));
    }
}

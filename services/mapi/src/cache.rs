//! A small time-bounded cache for what every submission reads but rarely changes (the node list,
//! the caller's quotes). Changes made through this instance clear it at once; changes made through
//! another replica are seen within the time-to-live.
//!
//! A read that began before a clear never stores its (possibly stale) value: otherwise a node
//! added while a background worker was reading the list would stay invisible for a whole TTL.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long an entry serves before it is read again.
pub const TTL: Duration = Duration::from_secs(5);

/// Most entries kept (quotes are cached per caller identity).
pub const MAX_ENTRIES: usize = 10_000;

/// Entries with the instant they were read, and how many times the cache was cleared.
#[derive(Debug)]
pub struct TtlCache<K, V> {
    state: Mutex<Entries<K, V>>,
}

#[derive(Debug)]
struct Entries<K, V> {
    entries: HashMap<K, (Instant, V)>,
    generation: u64,
}

impl<K, V> Default for TtlCache<K, V> {
    fn default() -> Self {
        Self { state: Mutex::new(Entries { entries: HashMap::new(), generation: 0 }) }
    }
}

impl<K: Eq + Hash + Clone, V: Clone> TtlCache<K, V> {
    fn lock(&self) -> std::sync::MutexGuard<'_, Entries<K, V>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The fresh entry of `key`, else `load`'s value, which is stored unless the cache was cleared
    /// while it loaded (or the cache is full).
    pub async fn get_or_load<E, F: Future<Output = Result<V, E>>>(
        &self,
        key: K,
        load: impl FnOnce() -> F,
    ) -> Result<V, E> {
        let generation = {
            let state = self.lock();
            if let Some((at, v)) = state.entries.get(&key)
                && at.elapsed() < TTL
            {
                return Ok(v.clone());
            }
            state.generation
        };
        let value = load().await?;
        let mut state = self.lock();
        if state.generation == generation {
            state.entries.retain(|_, (at, _)| at.elapsed() < TTL);
            if state.entries.len() < MAX_ENTRIES {
                state.entries.insert(key, (Instant::now(), value.clone()));
            }
        }
        Ok(value)
    }

    /// Forgets everything (after a change made through this instance); reads in flight do not
    /// store what they read.
    pub fn clear(&self) {
        let mut state = self.lock();
        state.entries.clear();
        state.generation += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_read_that_began_before_a_clear_is_not_stored() {
        let cache: TtlCache<(), u32> = TtlCache::default();
        // A slow read of the old value, cleared while it runs.
        let stale = cache
            .get_or_load((), || async {
                cache.clear();
                Ok::<_, ()>(1)
            })
            .await;
        assert_eq!(stale, Ok(1), "the reader gets what it read");
        let fresh = cache.get_or_load((), || async { Ok::<_, ()>(2) }).await;
        assert_eq!(fresh, Ok(2), "but it was not kept");
        let cached = cache.get_or_load((), || async { Ok::<_, ()>(3) }).await;
        assert_eq!(cached, Ok(2), "an undisturbed read is kept");
    }
}
